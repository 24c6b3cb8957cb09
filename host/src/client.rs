//! The HTTP client of the commands that talk to a running host (`tapir lines`, `dial`, ...):
//! where the host is, the token from `TAPIR_TOKEN`, JSON in and out, and the event stream.

use crate::secret::Secret;
use serde_json::Value;
use std::path::Path;

/// What can go wrong talking to the host.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The host could not be reached.
    #[error("cannot reach the host at {url}: {detail}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        detail: String,
    },
    /// The host answered with an error.
    #[error("{status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The answer was not what the API sends.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// The client could not be set up (a CA file that cannot be read).
    #[error("{0}")]
    Setup(String),
}

/// A client of one host.
pub struct Client {
    base: String,
    token: Option<Secret>,
    http: reqwest::Client,
}

impl Client {
    /// A client for `base` (`http://127.0.0.1:8780`), with an optional extra CA certificate
    /// (PEM) for hosts with a self-signed certificate.
    ///
    /// # Errors
    /// When the CA file cannot be read or the TLS setup fails.
    pub fn new(base: &str, token: Option<Secret>, ca: Option<&Path>) -> Result<Self, ClientError> {
        crate::http::install_crypto_provider();
        let mut builder =
            reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(5));
        if let Some(ca) = ca {
            let pem = std::fs::read(ca)
                .map_err(|e| ClientError::Setup(format!("cannot read {}: {e}", ca.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| ClientError::Setup(format!("{}: {e}", ca.display())))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Setup(format!("cannot set up HTTP: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token.expose()),
            None => builder,
        }
    }

    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = builder.send().await.map_err(|e| ClientError::Connect {
            url: self.base.clone(),
            detail: error_chain(&e),
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Err(ClientError::Api {
            status,
            code: body["error"]["code"]
                .as_str()
                .unwrap_or("http_error")
                .to_owned(),
            message: body["error"]["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or(text),
        })
    }

    async fn json(response: reqwest::Response) -> Result<Value, ClientError> {
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET path` as JSON.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        let response = self.send(self.request(reqwest::Method::GET, path)).await?;
        Self::json(response).await
    }

    /// `GET path` as JSON, with the `X-Tapir-Total` count of a searched or paged list.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn get_counted(&self, path: &str) -> Result<(Value, Option<u64>), ClientError> {
        let response = self.send(self.request(reqwest::Method::GET, path)).await?;
        let total = response
            .headers()
            .get("x-tapir-total")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Ok((Self::json(response).await?, total))
    }

    /// `POST path` without a body; the status and JSON body whatever the status (for answers
    /// whose error body carries details, like a reload's problems).
    ///
    /// # Errors
    /// When the host cannot be reached or the body is not JSON.
    pub async fn post_any(&self, path: &str) -> Result<(u16, Value), ClientError> {
        let response = self
            .request(reqwest::Method::POST, path)
            .send()
            .await
            .map_err(|e| ClientError::Connect {
                url: self.base.clone(),
                detail: error_chain(&e),
            })?;
        let status = response.status().as_u16();
        Ok((status, Self::json(response).await?))
    }

    /// `POST path` with a JSON body (or none).
    ///
    /// # Errors
    /// See [`ClientError`].
    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        let mut builder = self.request(reqwest::Method::POST, path);
        if let Some(body) = body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = self.send(builder).await?;
        Self::json(response).await
    }

    /// Follows the event stream (SSE) from `after`; calls `on` with each event until it returns
    /// false or the stream ends.
    ///
    /// # Errors
    /// See [`ClientError`]; a `gap` message ends the stream with an `Api` error `history_gap`.
    pub async fn events(
        &self,
        after: Option<u64>,
        mut on: impl FnMut(Value) -> bool,
    ) -> Result<(), ClientError> {
        let path = match after {
            Some(after) => format!("/v1/events?after={after}"),
            None => "/v1/events".to_owned(),
        };
        let mut response = self.send(self.request(reqwest::Method::GET, &path)).await?;
        let mut buffer = String::new();
        loop {
            let chunk = response.chunk().await.map_err(|e| ClientError::Connect {
                url: self.base.clone(),
                detail: error_chain(&e),
            })?;
            let Some(chunk) = chunk else {
                return Ok(());
            };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut data = String::new();
                let mut kind = "message";
                for line in block.lines() {
                    if let Some(rest) = line.strip_prefix("data:") {
                        data.push_str(rest.trim_start());
                    } else if let Some(rest) = line.strip_prefix("event:") {
                        kind = if rest.trim() == "gap" {
                            "gap"
                        } else {
                            "message"
                        };
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let value: Value =
                    serde_json::from_str(&data).map_err(|e| ClientError::Decode(e.to_string()))?;
                if kind == "gap" {
                    return Err(ClientError::Api {
                        status: 410,
                        code: "history_gap".to_owned(),
                        message: format!("events were lost: {value}"),
                    });
                }
                if !on(value) {
                    return Ok(());
                }
            }
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The base URL of the host for a config's `[http]` section: its listen address (loopback
/// when it listens on every address), `https` when TLS is configured.
pub fn base_url(http: &crate::config::HttpConfig) -> String {
    let mut addr = http.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let scheme = if http.tls() { "https" } else { "http" };
    format!("{scheme}://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_uses_loopback_for_wildcard() {
        let mut http = crate::config::HttpConfig {
            listen: "0.0.0.0:9000".parse().expect("addr"),
            ..Default::default()
        };
        assert_eq!(base_url(&http), "http://127.0.0.1:9000");
        http.tls_cert = Some("c.pem".into());
        http.tls_key = Some("k.pem".into());
        assert_eq!(base_url(&http), "https://127.0.0.1:9000");
    }
}
