//! The answers RFC 3261 asks of every UAS before a request reaches anyone (§8.2), and the
//! answer to a request that could not be parsed (§8.2, §21.4.1, §21.5.6):
//!
//! - 501 Not Implemented for a method it does not know (with `Allow`);
//! - 416 Unsupported URI Scheme for a Request-URI that is not `sip:`, or `sips:` arriving over
//!   anything but TLS (RFC 3261 §26.2.2: a `sips:` request must have come over TLS);
//! - 420 Bad Extension for a `Require` option it does not support, listed in `Unsupported`
//!   (never for ACK or CANCEL, §8.2.2.3);
//! - 415 Unsupported Media Type for an INVITE whose body is not SDP (with `Accept`);
//! - for unparseable requests: 505 Version Not Supported for another SIP version, 501 for an
//!   unknown method, else 400 with the problem in the reason phrase. ACKs and responses are
//!   never answered; neither is a request without a Via (nowhere to send the answer).
//!
//! Sans-I/O: the endpoint sends what these functions return.

use crate::message::{Message, Method, ParseError, StartLine};

/// The option tags this user agent supports as a UAS (none of the extensions a `Require`
/// could demand: no 100rel/PRACK, no Replaces, no session timers).
pub const SUPPORTED: &[&str] = &[];

/// The body types an incoming INVITE may carry.
pub const ACCEPT: &str = "application/sdp";

/// The answer RFC 3261 §8.2 requires for a well-formed request this UA cannot take, if any,
/// for a request that did not come over TLS. `to_tag` is put on the response's To.
pub fn refuse(req: &Message, to_tag: &str) -> Option<Message> {
    refuse_on(req, to_tag, false)
}

/// [`refuse`] for a request that came over TLS (`secure`) or not: over TLS a `sips:`
/// Request-URI is taken too.
pub fn refuse_on(req: &Message, to_tag: &str, secure: bool) -> Option<Message> {
    let StartLine::Request { method, uri } = &req.start else {
        return None;
    };
    if *method == Method::Ack {
        return None;
    }
    if let Method::Other(_) = method {
        let mut r = Message::response_to(req, 501, "Not Implemented", Some(to_tag));
        r.push("Allow", crate::ALLOW);
        return Some(r);
    }
    let scheme = uri.split_once(':').map(|(s, _)| s).unwrap_or("");
    let sips_ok = secure && scheme.eq_ignore_ascii_case("sips");
    if !scheme.eq_ignore_ascii_case("sip") && !sips_ok {
        return Some(Message::response_to(
            req,
            416,
            "Unsupported URI Scheme",
            Some(to_tag),
        ));
    }
    if *method != Method::Cancel {
        let unsupported: Vec<&str> = req
            .header_values("Require")
            .filter(|opt| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(opt)))
            .collect();
        if !unsupported.is_empty() {
            let mut r = Message::response_to(req, 420, "Bad Extension", Some(to_tag));
            r.push("Unsupported", unsupported.join(", "));
            return Some(r);
        }
    }
    if *method == Method::Invite && !req.body.is_empty() {
        let media = req
            .header("Content-Type")
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let encoded = req
            .header("Content-Encoding")
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
        if media != ACCEPT || encoded {
            let mut r = Message::response_to(req, 415, "Unsupported Media Type", Some(to_tag));
            r.push("Accept", ACCEPT);
            return Some(r);
        }
    }
    None
}

/// The answer to bytes that failed to parse with `error`, if they are a request that can be
/// answered: 505 for another SIP version, 501 for an unknown method, else 400 with the problem
/// as reason phrase (RFC 3261 §21.4.1 asks for the detail there).
pub fn answer_malformed(bytes: &[u8], error: &ParseError, to_tag: &str) -> Option<Message> {
    if matches!(error, ParseError::Incomplete) && bytes.len() < 16 {
        return None;
    }
    let req = Message::salvage_request(bytes)?;
    let (code, reason) = match (error, req.method()) {
        (ParseError::Version(_), _) => (505, "Version Not Supported".to_owned()),
        (_, Some(Method::Other(_))) => (501, "Not Implemented".to_owned()),
        (e, _) => (400, format!("Bad Request ({e})")),
    };
    let mut resp = Message::response_to(&req, code, &reason, Some(to_tag));
    if code == 501 {
        resp.push("Allow", crate::ALLOW);
    }
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(start: &str, extra: &str) -> Message {
        let text = format!(
            "{start}\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nFrom: <sip:a@x>;tag=1\r\n\
             To: <sip:b@y>\r\nCall-ID: c\r\nCSeq: 1 {}\r\n{extra}Content-Length: 0\r\n\r\n",
            start.split(' ').next().unwrap_or("")
        );
        Message::parse(text.as_bytes()).expect("test request parses")
    }

    #[test]
    fn refusals_in_rfc_order() {
        let r = refuse(&req("FOO sip:b@y SIP/2.0", ""), "t").expect("501");
        assert_eq!(r.code(), Some(501));
        assert!(r.header("Allow").is_some());
        let r = refuse(&req("OPTIONS tel:+123 SIP/2.0", ""), "t").expect("416");
        assert_eq!(r.code(), Some(416));
        // sips: only over TLS.
        let sips = req("OPTIONS sips:b@y SIP/2.0", "");
        assert_eq!(refuse(&sips, "t").and_then(|r| r.code()), Some(416));
        assert!(refuse_on(&sips, "t", true).is_none());
        assert_eq!(
            refuse_on(&req("OPTIONS tel:+1 SIP/2.0", ""), "t", true).and_then(|r| r.code()),
            Some(416)
        );
        let r = refuse(
            &req("OPTIONS sip:b@y SIP/2.0", "Require: foo, bar\r\n"),
            "t",
        )
        .expect("420");
        assert_eq!(r.code(), Some(420));
        assert_eq!(r.header("Unsupported"), Some("foo, bar"));
        assert!(refuse(&req("CANCEL sip:b@y SIP/2.0", "Require: foo\r\n"), "t").is_none());
        assert!(refuse(&req("OPTIONS sip:b@y SIP/2.0", ""), "t").is_none());
        assert!(refuse(&req("ACK sip:b@y SIP/2.0", ""), "t").is_none());
    }

    #[test]
    fn malformed_requests_get_400_505_501_and_responses_nothing() {
        let bad = b"OPTIONS sip:b@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKq\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        let e = Message::parse(bad).expect_err("mismatch");
        let r = answer_malformed(bad, &e, "t").expect("answer");
        assert_eq!(r.code(), Some(400));
        assert_eq!(r.call_id(), Some("c"));
        let v = b"OPTIONS sip:b@y SIP/7.0\r\nVia: SIP/7.0/UDP h;branch=z9hG4bKq\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let e = Message::parse(v).expect_err("version");
        assert_eq!(
            answer_malformed(v, &e, "t").and_then(|r| r.code()),
            Some(505)
        );
        let resp = b"SIP/2.0 999 X\r\nVia: SIP/2.0/UDP h\r\n\r\n";
        let e = Message::parse(resp).expect_err("code");
        assert!(answer_malformed(resp, &e, "t").is_none());
        let no_via = b"OPTIONS sip:b@y SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let e = Message::parse(no_via).expect_err("no via");
        assert!(answer_malformed(no_via, &e, "t").is_none());
    }
}
