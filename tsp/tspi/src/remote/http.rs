//! The link's HTTP side: JSON requests to the host's REST API with the bearer token, lists
//! with their `X-Tapir-Seq` position, and the event stream (Server-Sent Events) parsed into
//! events. Every request has a deadline; the stream has one per read, longer than the host's
//! keep-alive interval (15 s), so a host that vanished without closing the connection is
//! noticed too.

use super::RemoteConfig;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tapir_core::{DriverError, ErrorKind};
use tapir_host::secret::Secret;
use tapir_tsp::Sequenced;

/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the stream may stay silent (the host sends a keep-alive every 15 s).
pub const STREAM_SILENCE: Duration = Duration::from_secs(45);

/// What went wrong talking to the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The host could not be reached, or the connection broke.
    #[error("cannot reach the host: {0}")]
    Transport(String),
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
}

impl HttpError {
    /// The error a local request completes with.
    pub fn to_driver_error(&self) -> DriverError {
        match self {
            HttpError::Api { code, message, .. } => {
                let kind =
                    serde_json::from_value::<ErrorKind>(serde_json::Value::String(code.clone()))
                        .unwrap_or(ErrorKind::OperationFailed);
                DriverError::new(kind, format!("the tapir host: {message}"))
            }
            HttpError::Transport(detail) => DriverError::new(
                ErrorKind::Disconnected,
                format!("the tapir host is unreachable: {detail}"),
            ),
            HttpError::Decode(detail) => DriverError::new(
                ErrorKind::OperationFailed,
                format!("the tapir host answered unexpectedly: {detail}"),
            ),
        }
    }

    /// The host refused to resume the stream: the history no longer reaches back.
    pub fn is_history_gap(&self) -> bool {
        matches!(self, HttpError::Api { status: 410, .. })
    }
}

/// A client of one host.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<Secret>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token)
            .finish()
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Client {
    /// A client for the configured host.
    ///
    /// # Errors
    /// The CA file cannot be read or TLS cannot be set up.
    pub fn new(config: &RemoteConfig) -> Result<Self, super::RemoteError> {
        tapir_host::http::install_crypto_provider();
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        if let Some(ca) = &config.ca_cert {
            let pem = std::fs::read(ca).map_err(|e| {
                super::RemoteError::Setup(format!("cannot read {}: {e}", ca.display()))
            })?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| super::RemoteError::Setup(format!("{}: {e}", ca.display())))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| super::RemoteError::Setup(format!("cannot set up HTTP: {}", chain(&e))))?;
        Ok(Self {
            base: config.url.trim_end_matches('/').to_owned(),
            token: config.token.clone(),
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

    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<reqwest::Response, HttpError> {
        let response = builder
            .send()
            .await
            .map_err(|e| HttpError::Transport(chain(&e)))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        Err(HttpError::Api {
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

    /// `GET path` as `T`, with the position (`X-Tapir-Seq`) it is at least as new as.
    ///
    /// # Errors
    /// See [`HttpError`].
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<(T, u64), HttpError> {
        let response = self
            .send(
                self.request(reqwest::Method::GET, path)
                    .timeout(REQUEST_TIMEOUT),
            )
            .await?;
        let seq = response
            .headers()
            .get("x-tapir-seq")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| HttpError::Transport(chain(&e)))?;
        let value = serde_json::from_slice(&bytes).map_err(|e| HttpError::Decode(e.to_string()))?;
        Ok((value, seq))
    }

    /// Sends `method path` with an optional JSON body; returns the JSON answer.
    ///
    /// # Errors
    /// See [`HttpError`].
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, HttpError> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| HttpError::Decode(e.to_string()))?;
        let mut builder = self.request(method, path).timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = self.send(builder).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| HttpError::Transport(chain(&e)))?;
        serde_json::from_slice(&bytes).map_err(|e| HttpError::Decode(e.to_string()))
    }

    /// Opens the event stream after position `after`.
    ///
    /// # Errors
    /// See [`HttpError`]; 410 `history_gap` when the host no longer keeps those events.
    pub async fn stream(&self, after: u64) -> Result<Stream, HttpError> {
        let response = self
            .send(self.request(reqwest::Method::GET, &format!("/v1/events?after={after}")))
            .await?;
        Ok(Stream {
            response,
            parser: SseParser::default(),
        })
    }
}

/// The open event stream.
pub struct Stream {
    response: reqwest::Response,
    parser: SseParser,
}

/// Why the stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The connection closed, broke or stayed silent too long.
    Lost(String),
    /// The host said events were lost (`gap`): resume or reload.
    Gap,
}

impl Stream {
    /// The next event.
    ///
    /// # Errors
    /// [`StreamEnd`].
    pub async fn next(&mut self) -> Result<Sequenced, StreamEnd> {
        loop {
            match self.parser.next_message() {
                Some(Message::Event(data)) => {
                    return serde_json::from_str(&data).map_err(|e| {
                        StreamEnd::Lost(format!("an event the link cannot read: {e}"))
                    })
                }
                Some(Message::Gap) => return Err(StreamEnd::Gap),
                None => {}
            }
            let chunk = tokio::time::timeout(STREAM_SILENCE, self.response.chunk())
                .await
                .map_err(|_| StreamEnd::Lost("the event stream stayed silent".to_owned()))?
                .map_err(|e| StreamEnd::Lost(chain(&e)))?;
            match chunk {
                Some(bytes) => self.parser.push(&bytes),
                None => return Err(StreamEnd::Lost("the host closed the event stream".into())),
            }
        }
    }
}

/// One Server-Sent Events message the link cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// An event's JSON.
    Event(String),
    /// The `gap` notice.
    Gap,
}

/// Splits the SSE byte stream into messages (comments and keep-alives are skipped).
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, if one has arrived.
    pub fn next_message(&mut self) -> Option<Message> {
        loop {
            let text = &self.buffer;
            let end = find_blank_line(text)?;
            let block: Vec<u8> = self.buffer.drain(..end.1).collect();
            let block = String::from_utf8_lossy(&block[..end.0]).into_owned();
            let mut data = String::new();
            let mut gap = false;
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
                } else if let Some(rest) = line.strip_prefix("event:") {
                    gap = rest.trim() == "gap";
                }
            }
            if gap {
                return Some(Message::Gap);
            }
            if !data.is_empty() {
                return Some(Message::Event(data));
            }
        }
    }
}

/// (end of the block, end of the separator) of the first message in `bytes`.
fn find_blank_line(bytes: &[u8]) -> Option<(usize, usize)> {
    for i in 0..bytes.len() {
        if bytes[i..].starts_with(b"\n\n") {
            return Some((i, i + 2));
        }
        if bytes[i..].starts_with(b"\r\n\r\n") {
            return Some((i, i + 4));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_messages_are_split_across_chunks_and_keep_alives_skipped() {
        let mut p = SseParser::default();
        p.push(b": keep-alive\n\nid: 4\ndata: {\"seq\":4,");
        assert_eq!(p.next_message(), None);
        p.push(b"\"event\":\"line_removed\",\"line\":1}\n\nevent: gap\ndata: {}\n\n");
        assert_eq!(
            p.next_message(),
            Some(Message::Event(
                r#"{"seq":4,"event":"line_removed","line":1}"#.to_owned()
            ))
        );
        assert_eq!(p.next_message(), Some(Message::Gap));
        assert_eq!(p.next_message(), None);
    }

    #[test]
    fn api_error_codes_become_error_kinds() {
        let refused = HttpError::Api {
            status: 409,
            code: "invalid_call_state".into(),
            message: "no".into(),
        };
        assert_eq!(refused.to_driver_error().kind, ErrorKind::InvalidCallState);
        let other = HttpError::Api {
            status: 401,
            code: "invalid_token".into(),
            message: "no".into(),
        };
        assert_eq!(other.to_driver_error().kind, ErrorKind::OperationFailed);
        assert_eq!(
            HttpError::Transport("reset".into()).to_driver_error().kind,
            ErrorKind::Disconnected
        );
        assert!(HttpError::Api {
            status: 410,
            code: "history_gap".into(),
            message: String::new()
        }
        .is_history_gap());
    }
}
