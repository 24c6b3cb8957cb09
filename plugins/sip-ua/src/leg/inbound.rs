//! The answers of a leg to the requests its peer sends inside the dialog (RFC 3261 §12.2.2),
//! sans-I/O. Out-of-order CSeqs get 500, requests of no dialog of ours 481; a BYE ends the
//! call; re-INVITE and UPDATE get our (media-less) SDP answer and refresh the peer's target;
//! NOTIFY of the `refer` event is accepted for the REFER subscription, other events are refused
//! 489; OPTIONS and INFO get 200; anything else 405 with `Allow`.

use super::sdp::sdp;
use crate::dialog::Dialog;
use crate::header::NameAddr;
use crate::message::{Message, Method};
use crate::refer::ReferNotify;
use std::net::IpAddr;

/// What the request means for the leg beyond its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing.
    None,
    /// The peer hung up (BYE).
    HungUp,
    /// A NOTIFY of the `refer` event (already answered 200).
    Notify(ReferNotify),
}

/// What we are, for the answers: our Contact, the local address for SDP, and the `Server`
/// header when configured.
#[derive(Debug, Clone, Copy)]
pub struct Us<'a> {
    /// Our Contact header value.
    pub contact: &'a str,
    /// The local address (for the SDP's connection line).
    pub ip: IpAddr,
    /// `Server` header value, if configured.
    pub server: Option<&'a str>,
}

/// Answers a request that arrived for the leg's Call-ID. `dialog` is the confirmed dialog, if
/// any; its remote CSeq and target are updated.
pub fn answer(dialog: Option<&mut Dialog>, msg: &Message, us: Us<'_>) -> (Message, Effect) {
    let (mut response, effect) = respond(dialog, msg, us);
    if let Some(s) = us.server {
        response.push("Server", s);
    }
    (response, effect)
}

fn respond(dialog: Option<&mut Dialog>, msg: &Message, us: Us<'_>) -> (Message, Effect) {
    let Some(dialog) = dialog.filter(|d| d.matches(msg)) else {
        let r = Message::response_to(msg, 481, "Call/Transaction Does Not Exist", None);
        return (r, Effect::None);
    };
    if !dialog.accept_remote_seq(msg) {
        // RFC 3261 §12.2.2: a request older than one already seen.
        let r = Message::response_to(msg, 500, "Server Internal Error", None);
        return (r, Effect::None);
    }
    let ok = || Message::response_to(msg, 200, "OK", None);
    match msg.method() {
        Some(Method::Bye) => (ok(), Effect::HungUp),
        Some(m @ (Method::Invite | Method::Update)) => {
            // Target refresh (RFC 3261 §12.2.2): the peer's new Contact is where we send next.
            if let Some(c) = msg.header("Contact").and_then(NameAddr::parse) {
                dialog.remote_target = c.uri;
            }
            let mut r = ok();
            r.push("Contact", us.contact);
            let offer = (!msg.body.is_empty()).then_some(msg.body.as_slice());
            // A re-INVITE without an offer gets ours; an UPDATE without one gets none.
            if offer.is_some() || m == Method::Invite {
                r.set_body("application/sdp", sdp(us.ip, offer).into_bytes());
            }
            (r, Effect::None)
        }
        Some(Method::Notify) => match ReferNotify::read(msg) {
            Some(n) => (ok(), Effect::Notify(n)),
            None => (
                Message::response_to(msg, 489, "Bad Event", None),
                Effect::None,
            ),
        },
        Some(Method::Options) => {
            let mut r = ok();
            r.push("Allow", crate::ALLOW);
            (r, Effect::None)
        }
        Some(Method::Info) => (ok(), Effect::None),
        _ => {
            let mut r = Message::response_to(msg, 405, "Method Not Allowed", None);
            r.push("Allow", crate::ALLOW);
            (r, Effect::None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog() -> Dialog {
        let invite = Message::parse(
            b"INVITE sip:bob@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\
              From: <sip:a@a>;tag=aa\r\nTo: <sip:bob@b>\r\nCall-ID: d1\r\nCSeq: 1 INVITE\r\n\r\n",
        )
        .expect("invite");
        let mut ok = Message::response_to(&invite, 200, "OK", Some("bb"));
        ok.push("Contact", "<sip:bob@10.0.0.9>");
        Dialog::from_uac(&invite, &ok).expect("dialog")
    }

    fn request(method: &str, seq: u32, extra: &str) -> Message {
        Message::parse(
            format!(
                "{method} sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK{seq}\r\n\
                 From: <sip:bob@b>;tag=bb\r\nTo: <sip:a@a>;tag=aa\r\nCall-ID: d1\r\n\
                 CSeq: {seq} {method}\r\n{extra}\r\n"
            )
            .as_bytes(),
        )
        .expect("request")
    }

    const US: Us<'static> = Us {
        contact: "<sip:a@127.0.0.1:5060>",
        ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        server: Some("tapir-test"),
    };

    #[test]
    fn answers_in_dialog_requests() {
        let mut d = dialog();
        let (r, e) = answer(Some(&mut d), &request("BYE", 5, ""), US);
        assert_eq!((r.code(), e), (Some(200), Effect::HungUp));
        assert_eq!(r.header("Server"), Some("tapir-test"));
        // Older CSeq: 500.
        let (r, _) = answer(Some(&mut d), &request("INFO", 4, ""), US);
        assert_eq!(r.code(), Some(500));
        let mut msg = request("INVITE", 6, "Contact: <sip:bob@10.0.0.10>\r\n");
        msg.set_body(
            "application/sdp",
            b"m=audio 1 RTP/AVP 8\r\na=sendonly\r\n".to_vec(),
        );
        let (r, _) = answer(Some(&mut d), &msg, US);
        assert_eq!(r.header("Contact"), Some(US.contact));
        assert!(String::from_utf8_lossy(&r.body).contains("a=recvonly"));
        assert_eq!(d.remote_target, "sip:bob@10.0.0.10", "target refreshed");
        let (r, _) = answer(Some(&mut d), &request("UPDATE", 7, ""), US);
        assert!(r.code() == Some(200) && r.body.is_empty());
        let (r, _) = answer(Some(&mut d), &request("OPTIONS", 8, ""), US);
        assert!(r.header("Allow").is_some());
        let (r, _) = answer(Some(&mut d), &request("NOTIFY", 9, "Event: dialog\r\n"), US);
        assert_eq!(r.code(), Some(489));
        let (r, e) = answer(
            Some(&mut d),
            &request(
                "NOTIFY",
                10,
                "Event: refer\r\nSubscription-State: active\r\n",
            ),
            US,
        );
        assert!(r.code() == Some(200) && matches!(e, Effect::Notify(_)));
        let (r, _) = answer(Some(&mut d), &request("MESSAGE", 11, ""), US);
        assert_eq!(r.code(), Some(405));
        let (r, _) = answer(None, &request("BYE", 12, ""), US);
        assert_eq!(r.code(), Some(481));
    }
}
