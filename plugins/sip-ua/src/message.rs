//! SIP messages (RFC 3261 §7): a sans-I/O parser and serializer.
//!
//! A [`Message`] keeps its start line, its headers as (canonical name, raw value) pairs in wire
//! order, and its body. Compact header names are expanded on parse (`i` → `Call-ID`), so lookups
//! need only the long name. The parser never panics: every index is checked and every limit
//! ([`MAX_MESSAGE`], [`MAX_HEADERS`]) is enforced before allocation grows with the input.

mod parse;

use crate::header::{CSeq, NameAddr, Via, ViaRef};
use std::fmt::{self, Write as _};
use thiserror::Error;

pub use parse::head_end;

/// The largest message accepted (head plus body), in bytes.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The most header lines accepted in one message.
pub const MAX_HEADERS: usize = 256;

/// Why bytes are not a SIP message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The head (start line and headers) is not complete yet.
    #[error("incomplete message head")]
    Incomplete,
    /// The message is larger than [`MAX_MESSAGE`] or has more than [`MAX_HEADERS`] headers.
    #[error("message too large")]
    TooLarge,
    /// The head is not UTF-8.
    #[error("message head is not UTF-8")]
    NotUtf8,
    /// The start line is neither a Request-Line nor a Status-Line.
    #[error("bad start line: {0}")]
    StartLine(String),
    /// The start line names a SIP version other than 2.0.
    #[error("SIP version {0} is not supported")]
    Version(String),
    /// The Request-URI is malformed (or a SIP URI carries headers, RFC 3261 §19.1.1).
    #[error("bad Request-URI")]
    RequestUri,
    /// A header line has no colon, or continues a header that does not exist.
    #[error("bad header line")]
    HeaderLine,
    /// A header name holds characters other than token characters.
    #[error("bad header name")]
    HeaderName,
    /// A header value holds a bare CR or another control character outside a quoted-pair.
    #[error("{0} in a header value")]
    HeaderValue(&'static str),
    /// Content-Length is not a number, appears twice, or is larger than the bytes present.
    #[error("bad Content-Length")]
    ContentLength,
    /// A header that may appear once appears more than once, or with several values.
    #[error("more than one {0} header")]
    Duplicate(&'static str),
    /// A header RFC 3261 §8.1.1 requires is missing or unreadable.
    #[error("missing or bad {0} header")]
    Mandatory(&'static str),
    /// A header the stack reads (Via beyond the top, Contact, Max-Forwards) is malformed.
    #[error("bad {0} header")]
    Header(&'static str),
    /// The CSeq method differs from the request's method.
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
}

/// A SIP method. Unknown methods are kept as [`Method::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// CANCEL
    Cancel,
    /// BYE
    Bye,
    /// REFER (RFC 3515)
    Refer,
    /// NOTIFY (RFC 6665)
    Notify,
    /// OPTIONS
    Options,
    /// REGISTER
    Register,
    /// SUBSCRIBE
    Subscribe,
    /// INFO
    Info,
    /// UPDATE
    Update,
    /// MESSAGE
    Message,
    /// PRACK
    Prack,
    /// Any other token.
    Other(String),
}

impl Method {
    /// Parses a method token (case-sensitive, as RFC 3261 says).
    pub fn parse(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "CANCEL" => Method::Cancel,
            "BYE" => Method::Bye,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "SUBSCRIBE" => Method::Subscribe,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "MESSAGE" => Method::Message,
            "PRACK" => Method::Prack,
            other => Method::Other(other.to_owned()),
        }
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Cancel => "CANCEL",
            Method::Bye => "BYE",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Subscribe => "SUBSCRIBE",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Message => "MESSAGE",
            Method::Prack => "PRACK",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD uri SIP/2.0`
    Request {
        /// The method.
        method: Method,
        /// The Request-URI, as written.
        uri: String,
    },
    /// `SIP/2.0 code reason`
    Response {
        /// The status code (100..=699).
        code: u16,
        /// The reason phrase.
        reason: String,
    },
}

/// A SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request-Line or Status-Line.
    pub start: StartLine,
    /// Headers in wire order, names in canonical long form (Content-Length is not kept: it
    /// always follows the body).
    pub headers: Vec<(String, String)>,
    /// The body (Content-Length is recomputed on serialization).
    pub body: Vec<u8>,
}

/// Expands a compact header name and gives well-known names their canonical spelling; other
/// names are title-cased (`content-type` → `Content-Type`). One allocation, for the result.
pub fn canonical_name(name: &str) -> String {
    const COMPACT: &[(&str, &str)] = &[
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("f", "From"),
        ("t", "To"),
        ("v", "Via"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("e", "Content-Encoding"),
        ("k", "Supported"),
        ("s", "Subject"),
        ("r", "Refer-To"),
        ("b", "Referred-By"),
        ("o", "Event"),
        ("u", "Allow-Events"),
        ("x", "Session-Expires"),
    ];
    // Names whose canonical spelling is not plain title case.
    const SPELLED: &[&str] = &["Call-ID", "CSeq", "WWW-Authenticate", "Proxy-Authenticate"];
    if name.len() == 1 {
        if let Some((_, long)) = COMPACT.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            return (*long).to_owned();
        }
    }
    if let Some(known) = SPELLED.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        return (*known).to_owned();
    }
    // Title-case each dash-separated word (Content-Type, Refer-To, ...); names are tokens, so
    // ASCII case mapping is the whole job.
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for ch in name.chars() {
        if upper {
            out.push(ch.to_ascii_uppercase());
        } else {
            out.push(ch.to_ascii_lowercase());
        }
        upper = ch == '-';
    }
    out
}

/// The first comma of `value` outside quoted strings and `<...>`.
fn top_level_comma(value: &str) -> Option<usize> {
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    for (i, ch) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match ch {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => return Some(i),
            _ => {}
        }
    }
    None
}

/// The values of a header line: split at top-level commas (not inside quotes or `<...>`),
/// trimmed, empty ones skipped. Nothing is allocated.
pub fn commas(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let r = rest?;
        let (part, after) = match top_level_comma(r) {
            Some(i) => (&r[..i], r.get(i + 1..)),
            None => (r, None),
        };
        rest = after;
        Some(part.trim())
    })
    .filter(|part| !part.is_empty())
}

/// [`commas`], collected.
pub fn split_commas(value: &str) -> Vec<&str> {
    commas(value).collect()
}

impl Message {
    /// A new request with no headers.
    pub fn request(method: Method, uri: impl Into<String>) -> Message {
        Message {
            start: StartLine::Request {
                method,
                uri: uri.into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A response to `req` (RFC 3261 §8.2.6.2): copies Via, From, To, Call-ID and CSeq;
    /// adds `to_tag` to To when the request's To has none.
    pub fn response_to(req: &Message, code: u16, reason: &str, to_tag: Option<&str>) -> Message {
        let mut headers = Vec::with_capacity(8);
        for (n, v) in &req.headers {
            match n.as_str() {
                "Via" | "From" | "Call-ID" | "CSeq" => headers.push((n.clone(), v.clone())),
                "To" => {
                    let mut to = v.clone();
                    if let (Some(tag), Some(parsed)) = (to_tag, NameAddr::parse(v)) {
                        if parsed.param("tag").is_none() && code > 100 {
                            to.push_str(";tag=");
                            to.push_str(tag);
                        }
                    }
                    headers.push((n.clone(), to));
                }
                _ => {}
            }
        }
        Message {
            start: StartLine::Response {
                code,
                reason: reason.to_owned(),
            },
            headers,
            body: Vec::new(),
        }
    }

    /// The method of a request, or the CSeq method of a response.
    pub fn method(&self) -> Option<Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method.clone()),
            StartLine::Response { .. } => self.cseq().map(|c| c.method),
        }
    }

    /// The status code of a response.
    pub fn code(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response (empty for requests).
    pub fn reason_phrase(&self) -> &str {
        match &self.start {
            StartLine::Response { reason, .. } => reason,
            StartLine::Request { .. } => "",
        }
    }

    /// True for requests.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The first value of a header (name in long form, case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, comma-separated values split apart.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| commas(v))
    }

    /// Every value of a header, one per header line, not split at commas (for headers whose
    /// values contain commas, like `WWW-Authenticate`).
    pub fn header_values_raw<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Appends a header.
    pub fn push(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Puts a header first (used for Via).
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        self.headers.insert(0, (name.to_owned(), value.into()));
    }

    /// Replaces every value of a header with one value.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.headers.push((name.to_owned(), value.into()));
    }

    /// Removes every value of a header.
    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Sets the body and its Content-Type.
    pub fn set_body(&mut self, content_type: &str, body: Vec<u8>) {
        self.set("Content-Type", content_type);
        self.body = body;
    }

    /// The topmost Via.
    pub fn top_via(&self) -> Option<Via> {
        self.header_values("Via").next().and_then(Via::parse)
    }

    /// The top Via read in place (see [`ViaRef`]).
    pub fn top_via_ref(&self) -> Option<ViaRef<'_>> {
        self.header_values("Via").next().and_then(ViaRef::parse)
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    /// The CSeq.
    pub fn cseq(&self) -> Option<CSeq> {
        self.header("CSeq").and_then(CSeq::parse)
    }

    /// The From header.
    pub fn from(&self) -> Option<NameAddr> {
        self.header("From").and_then(NameAddr::parse)
    }

    /// The To header.
    pub fn to(&self) -> Option<NameAddr> {
        self.header("To").and_then(NameAddr::parse)
    }

    /// Serializes to wire format, with a fresh Content-Length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = String::with_capacity(512);
        match &self.start {
            StartLine::Request { method, uri } => {
                let _ = write!(head, "{method} {uri} SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                let _ = write!(head, "SIP/2.0 {code} {reason}\r\n");
            }
        }
        for (n, v) in &self.headers {
            if n.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            head.push_str(n);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        let _ = write!(head, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
t: Bob <sip:bob@127.0.0.1>\r\n\
f: \"Alice\" <sip:alice@127.0.0.1>;tag=1928301774\r\n\
i: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Subject: folded\r\n  continued\r\n\
l: 4\r\n\r\nv=0\r\n";

    #[test]
    fn parses_compact_and_folded_headers() {
        let m = Message::parse(INVITE.as_bytes()).expect("parses");
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.call_id(), Some("a84b4c76e66710"));
        assert_eq!(m.header("subject"), Some("folded continued"));
        assert_eq!(m.body, b"v=0\r".to_vec());
        assert_eq!(
            m.top_via().map(|v| v.branch().map(str::to_owned)),
            Some(Some("z9hG4bK776asdhds".into()))
        );
        assert_eq!(
            m.from().and_then(|f| f.param("tag").map(str::to_owned)),
            Some("1928301774".into())
        );
        let again = Message::parse(&m.to_bytes()).expect("round trip");
        assert_eq!(again, m);
    }

    #[test]
    fn stream_framing_waits_for_body() {
        let bytes = INVITE.as_bytes();
        assert_eq!(
            Message::parse_stream(&bytes[..bytes.len() - 2]),
            Err(ParseError::Incomplete)
        );
        let (_, used) = Message::parse_stream(bytes).expect("complete");
        assert_eq!(used, bytes.len() - 1);
    }

    #[test]
    fn rejects_missing_mandatory_headers_and_bad_lines() {
        assert!(matches!(
            Message::parse(b"SIP/2.0 200 OK\r\n\r\n"),
            Err(ParseError::Mandatory(_))
        ));
        assert!(matches!(
            Message::parse(b"GARBAGE\r\n\r\n"),
            Err(ParseError::StartLine(_))
        ));
        assert!(matches!(
            Message::parse(b"SIP/2.0 99 X\r\n\r\n"),
            Err(ParseError::StartLine(_))
        ));
        let bad_len = INVITE.replace("l: 4", "l: 400");
        assert_eq!(
            Message::parse(bad_len.as_bytes()),
            Err(ParseError::ContentLength)
        );
    }

    #[test]
    fn response_copies_headers_and_adds_tag() {
        let req = Message::parse(INVITE.as_bytes()).expect("parses");
        let resp = Message::response_to(&req, 180, "Ringing", Some("xyz"));
        assert_eq!(
            resp.to().and_then(|t| t.param("tag").map(str::to_owned)),
            Some("xyz".into())
        );
        assert_eq!(resp.cseq().map(|c| c.seq), Some(314159));
        let trying = Message::response_to(&req, 100, "Trying", Some("xyz"));
        assert!(trying.to().is_some_and(|t| t.param("tag").is_none()));
    }

    #[test]
    fn splits_commas_outside_quotes() {
        assert_eq!(
            split_commas("\"a, b\" <sip:x>, <sip:y;p=1,2>, sip:z"),
            vec!["\"a, b\" <sip:x>", "<sip:y;p=1,2>", "sip:z"]
        );
        // Escaped quotes stay inside the quoted string; empty values are skipped.
        assert_eq!(
            split_commas(r#" , "x\", y" <sip:a>,, sip:b , "#),
            vec![r#""x\", y" <sip:a>"#, "sip:b"]
        );
        assert!(split_commas(" , ").is_empty());
        assert_eq!(commas("a,b").nth(1), Some("b"));
    }

    #[test]
    fn header_names_get_their_canonical_spelling() {
        for (written, canonical) in [
            ("i", "Call-ID"),
            ("V", "Via"),
            ("call-id", "Call-ID"),
            ("CALL-ID", "Call-ID"),
            ("cseq", "CSeq"),
            ("www-authenticate", "WWW-Authenticate"),
            ("content-TYPE", "Content-Type"),
            ("X-custom-header", "X-Custom-Header"),
            ("subscription-state", "Subscription-State"),
            ("Via", "Via"),
        ] {
            assert_eq!(canonical_name(written), canonical, "{written}");
        }
    }
}
