//! Bytes to [`Message`] (RFC 3261 §7): finding the head, framing on streams, header lines with
//! folding undone, and the checks that make a message well formed: token header names, no bare
//! CR or stray control character in values, strict numbers (no sign), single-value headers
//! present once, the mandatory headers readable, the Request-URI well formed.
//!
//! Three entry points share one line splitter: [`Message::parse`] / [`Message::parse_stream`]
//! (strict), [`Message::frame`] (how many bytes of a stream the next message takes), and
//! [`Message::salvage_request`] (enough of a malformed request to answer it).

use super::{canonical_name, commas, Message, Method, ParseError, StartLine};
use super::{MAX_HEADERS, MAX_MESSAGE};
use crate::header::lex::{is_token, is_ws, parse_digits, trim_ws};
use crate::header::{NameAddr, Uri, ViaRef};

/// Headers that may appear once, with one value (RFC 3261 §7.3.1, §20).
const SINGLE: &[&str] = &[
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Length",
];

/// Finds the end of the head: the index just past the blank line, if present.
pub fn head_end(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'\n' {
            if bytes[i + 1] == b'\n' {
                return Some(i + 2);
            }
            if bytes[i + 1] == b'\r' && bytes.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// The keep-alive CRLFs before a message (RFC 5626 §3.5.1), skipped.
fn leading_crlf(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(bytes.len())
}

/// A head split into its start line and header lines (name as written, value unfolded).
struct Lines<'a> {
    start: &'a str,
    headers: Vec<(&'a str, String)>,
}

/// Splits a head into lines. Strict: a bare CR, a line without colon, a continuation without a
/// header, a name that is not a token, or a control character outside a quoted-pair is an
/// error. Lenient (for answering malformed requests): such lines are skipped.
fn split_lines(head: &str, strict: bool) -> Result<Lines<'_>, ParseError> {
    let mut raw = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = raw.next().unwrap_or("");
    if strict && start.contains(|c: char| c.is_control()) {
        return Err(ParseError::StartLine(start.chars().take(80).collect()));
    }
    let mut headers: Vec<(&str, String)> = Vec::new();
    for line in raw {
        if line.is_empty() {
            break;
        }
        if strict && line.contains('\r') {
            return Err(ParseError::HeaderValue("bare CR"));
        }
        if line.starts_with(is_ws) {
            // Folded continuation of the previous header (RFC 3261 §7.3.1).
            match headers.last_mut() {
                Some(last) => {
                    let more = trim_ws(line);
                    if !last.1.is_empty() && !more.is_empty() {
                        last.1.push(' ');
                    }
                    last.1.push_str(more);
                }
                None if strict => return Err(ParseError::HeaderLine),
                None => {}
            }
            continue;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(ParseError::TooLarge);
        }
        let Some((name, value)) = line.split_once(':') else {
            if strict {
                return Err(ParseError::HeaderLine);
            }
            continue;
        };
        // HCOLON = *( SP / HTAB ) ":" SWS
        let name = name.trim_end_matches(is_ws);
        if !is_token(name) {
            if strict {
                return Err(ParseError::HeaderName);
            }
            continue;
        }
        headers.push((name, trim_ws(value).to_owned()));
    }
    if strict {
        for (_, value) in &headers {
            check_value(value)?;
        }
    }
    Ok(Lines { start, headers })
}

/// A control character may stand in a value only as the second half of a quoted-pair
/// (RFC 3261 §25.1: `quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)`).
fn check_value(value: &str) -> Result<(), ParseError> {
    let mut escaped = false;
    for ch in value.chars() {
        if escaped {
            escaped = false;
            if ch == '\r' || ch == '\n' {
                return Err(ParseError::HeaderValue("bare CR"));
            }
            continue;
        }
        if ch == '\\' {
            escaped = true;
        } else if ch.is_control() && ch != '\t' {
            return Err(ParseError::HeaderValue("control character"));
        }
    }
    Ok(())
}

/// The Content-Length of a header list: `Ok(None)` when absent; an error when present twice
/// or not a plain number.
fn content_length(headers: &[(String, String)]) -> Result<Option<usize>, ParseError> {
    let mut found = None;
    for (n, v) in headers {
        if n == "Content-Length" {
            if found.is_some() {
                return Err(ParseError::ContentLength);
            }
            found = Some(parse_digits::<usize>(v, 9).ok_or(ParseError::ContentLength)?);
        }
    }
    Ok(found)
}

impl Message {
    /// Parses one message from a datagram (the body is what Content-Length says, or the rest).
    ///
    /// # Errors
    /// [`ParseError`] when the bytes are not a well-formed SIP message with the mandatory headers.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        let (msg, _) = Self::parse_prefix(bytes, false)?;
        Ok(msg)
    }

    /// Parses one message from the front of a stream buffer and says how many bytes it used.
    /// On a stream, Content-Length is mandatory (RFC 3261 §18.3) and a short body is
    /// [`ParseError::Incomplete`].
    ///
    /// # Errors
    /// [`ParseError::Incomplete`] when more bytes are needed; other variants when the bytes are
    /// not a well-formed message (use [`Self::frame`] to tell a bad message from a bad stream).
    pub fn parse_stream(bytes: &[u8]) -> Result<(Message, usize), ParseError> {
        Self::parse_prefix(bytes, true)
    }

    /// How many bytes the next message on a stream takes (leading keep-alive CRLFs included),
    /// judged only by the head's end and its one Content-Length. A framed message may still be
    /// malformed; the stream after it stays usable.
    ///
    /// # Errors
    /// [`ParseError::Incomplete`] when more bytes are needed; [`ParseError::TooLarge`] or
    /// [`ParseError::ContentLength`] (missing, repeated, not a number) when the stream cannot be
    /// framed any more.
    pub fn frame(bytes: &[u8]) -> Result<usize, ParseError> {
        let skip = leading_crlf(bytes);
        let rest = &bytes[skip..];
        let Some(end) = head_end(rest) else {
            return Err(if rest.len() > MAX_MESSAGE {
                ParseError::TooLarge
            } else {
                ParseError::Incomplete
            });
        };
        if end > MAX_MESSAGE {
            return Err(ParseError::TooLarge);
        }
        let head = String::from_utf8_lossy(&rest[..end]);
        let lines = split_lines(&head, false)?;
        let mut length = None;
        for (name, value) in &lines.headers {
            if canonical_name(name) == "Content-Length" {
                if length.is_some() {
                    return Err(ParseError::ContentLength);
                }
                length = Some(parse_digits::<usize>(value, 9).ok_or(ParseError::ContentLength)?);
            }
        }
        let length = length.ok_or(ParseError::ContentLength)?;
        if end + length > MAX_MESSAGE {
            return Err(ParseError::TooLarge);
        }
        if rest.len() < end + length {
            return Err(ParseError::Incomplete);
        }
        Ok(skip + end + length)
    }

    /// Reads as much of a malformed request as answering it needs (RFC 3261 §8.2.6: Via,
    /// From, To, Call-ID, CSeq are copied into the response): a request line that ends in a
    /// `SIP/` version, a method token other than ACK, and a Via header. The head may lack its
    /// blank line (a datagram ends it); lines that cannot be read are skipped. `None` for
    /// responses, ACKs and anything without a Via (nothing to answer, or nowhere to send it).
    pub fn salvage_request(bytes: &[u8]) -> Option<Message> {
        let skip = leading_crlf(bytes);
        let rest = bytes.get(skip..)?;
        let end = head_end(rest).unwrap_or(rest.len()).min(MAX_MESSAGE);
        let head = String::from_utf8_lossy(&rest[..end]);
        let lines = split_lines(&head, false).ok()?;
        let mut words = lines.start.split(is_ws).filter(|w| !w.is_empty());
        let method = words.next()?;
        let uri = words.next().unwrap_or("*");
        let version = lines.start.split(is_ws).rfind(|w| !w.is_empty())?;
        if !is_token(method)
            || method == "ACK"
            || !version
                .get(..4)
                .is_some_and(|v| v.eq_ignore_ascii_case("SIP/"))
        {
            return None;
        }
        let headers: Vec<(String, String)> = lines
            .headers
            .iter()
            .map(|(n, v)| (canonical_name(n), v.clone()))
            .collect();
        if !headers.iter().any(|(n, _)| n == "Via") {
            return None;
        }
        Some(Message {
            start: StartLine::Request {
                method: Method::parse(method),
                uri: uri.to_owned(),
            },
            headers,
            body: Vec::new(),
        })
    }

    fn parse_prefix(bytes: &[u8], stream: bool) -> Result<(Message, usize), ParseError> {
        let skip = leading_crlf(bytes);
        let rest = &bytes[skip..];
        let Some(end) = head_end(rest) else {
            if rest.len() > MAX_MESSAGE {
                return Err(ParseError::TooLarge);
            }
            return Err(ParseError::Incomplete);
        };
        if end > MAX_MESSAGE {
            return Err(ParseError::TooLarge);
        }
        let head = std::str::from_utf8(&rest[..end]).map_err(|_| ParseError::NotUtf8)?;
        let lines = split_lines(head, true)?;
        let start = parse_start_line(lines.start)?;
        let mut headers: Vec<(String, String)> = lines
            .headers
            .into_iter()
            .map(|(n, v)| (canonical_name(n), v))
            .collect();

        let body_bytes = &rest[end..];
        let (body_len, used) = match content_length(&headers)? {
            Some(n) if n > MAX_MESSAGE => return Err(ParseError::TooLarge),
            Some(n) if n > body_bytes.len() => {
                return Err(if stream {
                    ParseError::Incomplete
                } else {
                    ParseError::ContentLength
                })
            }
            Some(n) => (n, n),
            None if stream => return Err(ParseError::ContentLength),
            None => (body_bytes.len(), body_bytes.len()),
        };
        // Content-Length is implied by the body and rewritten on serialization.
        headers.retain(|(n, _)| n != "Content-Length");
        let msg = Message {
            start,
            headers,
            body: body_bytes[..body_len].to_vec(),
        };
        msg.check()?;
        Ok((msg, skip + end + used))
    }

    /// Checks what every request and response must satisfy, so that later code may rely on it:
    /// single-value headers once, Via (every value), From, To, Call-ID and CSeq readable,
    /// Contact and Max-Forwards well formed when present, the CSeq method equal to the
    /// request's, and a well-formed Request-URI.
    fn check(&self) -> Result<(), ParseError> {
        for name in SINGLE {
            let mut lines = self.headers.iter().filter(|(n, _)| n == name);
            let first = lines.next();
            if lines.next().is_some() {
                return Err(ParseError::Duplicate(name));
            }
            // Several values in one line: From/To split at commas; a Call-ID holds none.
            let several = match (*name, first) {
                ("From" | "To", Some((_, v))) => commas(v).nth(1).is_some(),
                ("Call-ID", Some((_, v))) => v.contains(',') || v.contains(is_ws),
                _ => false,
            };
            if several {
                return Err(ParseError::Duplicate(name));
            }
        }
        let mut vias = 0;
        for value in self.header_values("Via") {
            ViaRef::parse(value).ok_or(ParseError::Mandatory("Via"))?;
            vias += 1;
        }
        if vias == 0 {
            return Err(ParseError::Mandatory("Via"));
        }
        if !self.header("From").is_some_and(NameAddr::valid) {
            return Err(ParseError::Mandatory("From"));
        }
        if !self.header("To").is_some_and(NameAddr::valid) {
            return Err(ParseError::Mandatory("To"));
        }
        if self.call_id().is_none_or(str::is_empty) {
            return Err(ParseError::Mandatory("Call-ID"));
        }
        let Some(cseq) = self.cseq() else {
            return Err(ParseError::Mandatory("CSeq"));
        };
        for value in self.header_values("Contact") {
            if value != "*" && !NameAddr::valid(value) {
                return Err(ParseError::Header("Contact"));
            }
        }
        if let Some(mf) = self.header("Max-Forwards") {
            parse_digits::<u64>(mf, 19).ok_or(ParseError::Header("Max-Forwards"))?;
        }
        if let StartLine::Request { method, uri } = &self.start {
            if *method != cseq.method {
                return Err(ParseError::CSeqMismatch);
            }
            check_request_uri(uri)?;
        }
        Ok(())
    }
}

/// A Request-URI: a SIP(S) URI that parses and carries no headers (RFC 3261 §19.1.1), or
/// another absolute URI (`scheme:` and no whitespace or angle brackets), kept for a 416.
fn check_request_uri(uri: &str) -> Result<(), ParseError> {
    let Some((scheme, _)) = uri.split_once(':') else {
        return Err(ParseError::RequestUri);
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok || uri.contains(['<', '>', '"']) {
        return Err(ParseError::RequestUri);
    }
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        match Uri::parse(uri) {
            Some(u) if u.headers.is_none() => {}
            _ => return Err(ParseError::RequestUri),
        }
    }
    Ok(())
}

/// True for `SIP/2.0` (the protocol name is case-insensitive, RFC 3261 §7.1).
fn is_sip_2(version: &str) -> bool {
    version.eq_ignore_ascii_case("SIP/2.0")
}

/// `SIP/x.y`, any version.
fn is_sip_version(version: &str) -> bool {
    version
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
        && version.get(4..).is_some_and(|v| {
            v.split_once('.').is_some_and(|(a, b)| {
                parse_digits::<u32>(a, 5).is_some() && parse_digits::<u32>(b, 5).is_some()
            })
        })
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    let bad = || ParseError::StartLine(line.chars().take(80).collect());
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
    if let Some((version, rest)) = line.split_once(' ') {
        if is_sip_version(version) {
            if !is_sip_2(version) {
                return Err(ParseError::Version(version.to_owned()));
            }
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let code: u16 = parse_digits(code, 3).ok_or_else(bad)?;
            if !(100..=699).contains(&code) {
                return Err(bad());
            }
            return Ok(StartLine::Response {
                code,
                reason: reason.to_owned(),
            });
        }
    }
    // Request-Line = Method SP Request-URI SP SIP-Version (single spaces, nothing after).
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !is_token(method) || uri.is_empty() {
        return Err(bad());
    }
    if !is_sip_2(version) {
        return Err(if is_sip_version(version) {
            ParseError::Version(version.to_owned())
        } else {
            bad()
        });
    }
    Ok(StartLine::Request {
        method: Method::parse(method),
        uri: uri.to_owned(),
    })
}
