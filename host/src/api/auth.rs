//! Who may use the API: bearer tokens from `[api] tokens`, each `read` or `control`.
//!
//! - A request without a valid token gets 401, a read token on a control route 403.
//! - Every configured token is compared, in constant time, whatever matched before, so the
//!   answer time tells nothing about which token or how much of it was right.
//! - With no token configured the API is open, which [`check_config`] allows only while the
//!   endpoint listens on a loopback address; the host says so in its first log lines.
//! - Tokens are never logged: the holder's `name` is.
//! - Browsers: a request carrying an `Origin` other than the host it was sent to is refused
//!   (403 `cross_origin`), so another web site cannot make a visitor's browser drop calls (a
//!   bodiless POST needs no CORS preflight) or open the event stream over a WebSocket (not
//!   covered by CORS). While the API is open, the `Host` header must name a loopback host
//!   (403 `host_not_allowed`), which defeats DNS rebinding.

use super::error::ApiError;
use super::ApiState;
use crate::config::{Access, ApiToken, Config};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: the page, health, the OpenAPI document.
    Public,
    /// A read or control token.
    Read,
    /// A control token.
    Control,
}

/// The access rules in force.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No tokens configured: every client may do everything (loopback only).
    Open,
    /// Bearer tokens.
    Tokens(Vec<ApiToken>),
}

impl Auth {
    /// The rules for a configuration.
    pub fn from_config(config: &Config) -> Self {
        if config.api.tokens.is_empty() {
            Auth::Open
        } else {
            Auth::Tokens(config.api.tokens.clone())
        }
    }

    /// Decides on a request's `Authorization` header value; returns the holder's name.
    ///
    /// # Errors
    /// 401 for a missing or unknown token, 403 for a read token where control is needed.
    pub fn check(&self, authorization: Option<&[u8]>, need: Need) -> Result<String, ApiError> {
        if need == Need::Public {
            return Ok(String::new());
        }
        let tokens = match self {
            Auth::Open => return Ok("open".to_owned()),
            Auth::Tokens(tokens) => tokens,
        };
        let Some(value) = authorization else {
            return Err(ApiError::unauthorized(
                "missing_token",
                "send a token as Authorization: Bearer TOKEN",
            ));
        };
        let presented = strip_bearer(value).ok_or_else(|| {
            ApiError::unauthorized("invalid_token", "the Authorization header is not Bearer")
        })?;
        let mut found: Option<&ApiToken> = None;
        for token in tokens {
            // No early exit: every token is compared.
            if token.token.matches(presented) && found.is_none() {
                found = Some(token);
            }
        }
        let token = found
            .ok_or_else(|| ApiError::unauthorized("invalid_token", "the token is not known"))?;
        if need == Need::Control && token.access < Access::Control {
            return Err(ApiError::forbidden(format!(
                "the token of {:?} may only read",
                token.name
            )));
        }
        Ok(token.name.clone())
    }
}

fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at(value.iter().position(|b| *b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// The middleware in front of every route: checks the token against what the route needs.
pub async fn authorize(
    State((state, need)): State<(Arc<ApiState>, Need)>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let auth = state.auth();
    let checked = browser_guard(&auth, &request, need).and_then(|()| auth.check(header, need));
    match checked {
        Ok(_holder) => Ok(next.run(request).await),
        Err(error) => {
            metrics::counter!("tapir_api_auth_failures_total", "code" => error.code).increment(1);
            tracing::debug!(code = error.code, path = %request.uri().path(), "API request refused.");
            Err(error)
        }
    }
}

/// Refuses cross-origin changes and, while the API is open, non-loopback `Host` names.
fn browser_guard(auth: &Auth, request: &Request, need: Need) -> Result<(), ApiError> {
    if need == Need::Public {
        return Ok(());
    }
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    if matches!(auth, Auth::Open) && !is_loopback_host(host) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "host_not_allowed",
            "without tokens the API answers only requests addressed to a loopback host",
        ));
    }
    // Also for reads: a WebSocket is not covered by CORS, so another site's page could
    // otherwise open the event stream of an open API.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if !authority.eq_ignore_ascii_case(host) {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "cross_origin",
                "pages of another origin may not use this API",
            ));
        }
    }
    Ok(())
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Problems of the `[api]` and TLS settings, as (key path, message).
pub fn check_config(config: &Config) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if config.http.enabled && config.api.tokens.is_empty() && !config.http.listen.ip().is_loopback()
    {
        problems.push((
            "http.listen".to_owned(),
            format!(
                "{} is not a loopback address, and [api] has no tokens: the API would be open to \
                 the network; add [[api.tokens]] or listen on 127.0.0.1",
                config.http.listen
            ),
        ));
    }
    for (i, token) in config.api.tokens.iter().enumerate() {
        if token.token.expose().len() < 16 {
            problems.push((
                format!("api.tokens[{i}].token"),
                "a token must have at least 16 characters".to_owned(),
            ));
        }
        if config.api.tokens[..i].iter().any(|t| t.name == token.name) {
            problems.push((
                format!("api.tokens[{i}].name"),
                format!("the name {:?} is given twice", token.name),
            ));
        }
        if config.api.tokens[..i]
            .iter()
            .any(|t| t.token == token.token)
        {
            problems.push((
                format!("api.tokens[{i}].token"),
                "the same token is given twice".to_owned(),
            ));
        }
    }
    match (&config.http.tls_cert, &config.http.tls_key) {
        (Some(_), None) => problems.push((
            "http.tls_cert".to_owned(),
            "tls_cert needs tls_key too".to_owned(),
        )),
        (None, Some(_)) => problems.push((
            "http.tls_key".to_owned(),
            "tls_key needs tls_cert too".to_owned(),
        )),
        (Some(cert), Some(key)) => {
            for (name, path) in [("http.tls_cert", cert), ("http.tls_key", key)] {
                if let Err(error) = std::fs::metadata(path) {
                    problems.push((
                        name.to_owned(),
                        format!("cannot read {}: {error}", path.display()),
                    ));
                }
            }
        }
        (None, None) => {}
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use axum::http::StatusCode;

    fn tokens() -> Auth {
        Auth::Tokens(vec![
            ApiToken {
                name: "crm".into(),
                token: Secret::new("control-token-0123456789"),
                access: Access::Control,
            },
            ApiToken {
                name: "wallboard".into(),
                token: Secret::new("read-token-0123456789"),
                access: Access::Read,
            },
        ])
    }

    #[test]
    fn tokens_decide() {
        let auth = tokens();
        let status = |h: Option<&str>, need| {
            auth.check(h.map(str::as_bytes), need)
                .map(|_| StatusCode::OK)
                .unwrap_or_else(|e| e.status)
        };
        assert_eq!(status(None, Need::Public), StatusCode::OK);
        assert_eq!(status(None, Need::Read), StatusCode::UNAUTHORIZED);
        assert_eq!(
            status(Some("Bearer nope"), Need::Read),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(Some("Basic read-token-0123456789"), Need::Read),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(Some("Bearer read-token-0123456789"), Need::Read),
            StatusCode::OK
        );
        assert_eq!(
            status(Some("bearer read-token-0123456789"), Need::Control),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(Some("Bearer control-token-0123456789"), Need::Control),
            StatusCode::OK
        );
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost:8780",
            "127.0.0.1:8780",
            "127.1.2.3",
            "[::1]:8780",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:8780",
            "192.0.2.1:8780",
            "[2001:db8::1]:80",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn open_api_only_on_loopback() {
        let mut config = Config::empty();
        assert!(check_config(&config).is_empty());
        config.http.listen = "0.0.0.0:8780".parse().expect("addr");
        let problems = check_config(&config);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "http.listen");
        config.api.tokens.push(ApiToken {
            name: "a".into(),
            token: Secret::new("short"),
            access: Access::Read,
        });
        let problems = check_config(&config);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "api.tokens[0].token");
    }
}
