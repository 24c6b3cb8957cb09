//! The HTTP(S) client that talks to a phone's web server: one request per connection
//! (`Connection: close`; snom's web server copes badly with kept-alive and parallel
//! connections), bounded in time and body size, Basic or Digest on top.

use crate::config::Scheme;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Largest response body read from a phone (a settings dump is some 100 kB).
const MAX_BODY: usize = 2 * 1024 * 1024;

/// Where a phone's web server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// HTTPS?
    pub tls: bool,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address cannot be parsed.
    #[error("bad address: {0}")]
    Address(String),
    /// No connection (refused, unreachable, timed out).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The exchange failed or took too long.
    #[error("request failed: {0}")]
    Exchange(String),
}

impl Target {
    /// Parses `host`, `host:port`, `[v6]:port` with the default port of `scheme`.
    ///
    /// # Errors
    /// [`HttpError::Address`] for an empty host or bad port.
    pub fn parse(address: &str, scheme: Scheme) -> Result<Target, HttpError> {
        let default = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let bad = || HttpError::Address(address.chars().take(80).collect());
        let (host, port) = if let Some(rest) = address.strip_prefix('[') {
            let (h, r) = rest.split_once(']').ok_or_else(bad)?;
            let port = match r.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if r.is_empty() => default,
                None => return Err(bad()),
            };
            (h.to_owned(), port)
        } else {
            match address.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_owned(), p.parse().map_err(|_| bad())?),
                Some(_) => (address.to_owned(), default),
                None => (address.to_owned(), default),
            }
        };
        if host.is_empty() || host.contains(['/', ' ', '?', '#', '@']) {
            return Err(bad());
        }
        Ok(Target {
            host,
            port,
            tls: scheme == Scheme::Https,
        })
    }

    /// The IP address, if the host is a literal one.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.host.parse().ok()
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A response, reduced to what the driver reads.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request and reads the answer, within `timeout` overall.
///
/// # Errors
/// [`HttpError`] when the phone cannot be reached or the exchange fails.
pub async fn send(
    target: &Target,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    match tokio::time::timeout(timeout, exchange(target, method, path, authorization, body)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Exchange(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

async fn exchange(
    target: &Target,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&str>,
) -> Result<Response, HttpError> {
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| HttpError::Connect(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", target.authority())
        .header("connection", "close")
        .header(
            "user-agent",
            concat!("tapir-snom/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(auth) = authorization {
        builder = builder.header("authorization", auth);
    }
    if body.is_some() {
        builder = builder.header("content-type", "application/xml");
    }
    let request = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
        .map_err(|e| HttpError::Exchange(e.to_string()))?;
    if target.tls {
        let config =
            tls_config().ok_or_else(|| HttpError::Connect("TLS is not available".into()))?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| HttpError::Address(e.to_string()))?;
        let tls = connector
            .connect(name, stream)
            .await
            .map_err(|e| HttpError::Connect(format!("TLS: {e}")))?;
        round_trip(hyper_util::rt::TokioIo::new(tls), request).await
    } else {
        round_trip(hyper_util::rt::TokioIo::new(stream), request).await
    }
}

async fn round_trip<I>(io: I, request: hyper::Request<Full<Bytes>>) -> Result<Response, HttpError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| HttpError::Exchange(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| HttpError::Exchange(e.to_string()))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| HttpError::Exchange(e.to_string()))?
            .to_bytes();
        Ok(Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
    .await;
    driver.abort();
    result
}

fn tls_config() -> Option<Arc<rustls::ClientConfig>> {
    static CONFIG: std::sync::OnceLock<Option<Arc<rustls::ClientConfig>>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            // Phones carry self-signed certificates: the chain is not checked, the
            // handshake signature is.
            let verifier = Arc::new(tapir_sip_ua::tls::AnyCertificate(provider.clone()));
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| {
                    Arc::new(
                        b.dangerous()
                            .with_custom_certificate_verifier(verifier)
                            .with_no_client_auth(),
                    )
                })
                .ok()
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        let t = Target::parse("10.0.0.5", Scheme::Http).expect("parses");
        assert_eq!((t.host.as_str(), t.port, t.tls), ("10.0.0.5", 80, false));
        let t = Target::parse("phone.local:8080", Scheme::Https).expect("parses");
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("phone.local", 8080, true)
        );
        let t = Target::parse("[::1]:81", Scheme::Http).expect("parses");
        assert_eq!((t.host.as_str(), t.port), ("::1", 81));
        assert!(Target::parse("", Scheme::Http).is_err());
        assert!(Target::parse("a:b", Scheme::Http).is_err());
        assert!(Target::parse("a/b", Scheme::Http).is_err());
    }
}
