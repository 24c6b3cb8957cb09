//! Dialogs (RFC 3261 §12), sans-I/O: the state a UAC keeps after a 2xx to its INVITE, and the
//! in-dialog requests built from it with loose or strict routing.

use crate::header::{NameAddr, Uri};
use crate::message::{Message, Method};
use thiserror::Error;

/// Why a dialog could not be formed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DialogError {
    /// The 2xx lacks a To tag or a usable Contact.
    #[error("2xx without To tag or Contact")]
    Incomplete,
}

/// A confirmed (or early) dialog, seen from our side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag (From of our requests).
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// Our From header value (with tag).
    pub local: String,
    /// The peer's To header value (with tag).
    pub remote: String,
    /// Last CSeq we used.
    pub local_seq: u32,
    /// Last CSeq the peer used, if it sent any request.
    pub remote_seq: Option<u32>,
    /// The peer's Contact URI.
    pub remote_target: String,
    /// Route set (Record-Route of the 2xx, reversed), as header values.
    pub route_set: Vec<String>,
}

impl Dialog {
    /// The UAC dialog formed by a 2xx (or tagged 1xx) response to our INVITE.
    ///
    /// # Errors
    /// [`DialogError::Incomplete`] without a To tag or Contact.
    pub fn from_uac(invite: &Message, response: &Message) -> Result<Dialog, DialogError> {
        let to = response.to().ok_or(DialogError::Incomplete)?;
        let remote_tag = to.tag().ok_or(DialogError::Incomplete)?.to_owned();
        let from = invite.from().ok_or(DialogError::Incomplete)?;
        let local_tag = from.tag().ok_or(DialogError::Incomplete)?.to_owned();
        let contact = response
            .header_values("Contact")
            .next()
            .and_then(NameAddr::parse)
            .ok_or(DialogError::Incomplete)?;
        let mut route_set: Vec<String> = response
            .header_values("Record-Route")
            .map(str::to_owned)
            .collect();
        route_set.reverse();
        Ok(Dialog {
            call_id: invite.call_id().ok_or(DialogError::Incomplete)?.to_owned(),
            local_tag,
            remote_tag,
            local: invite.header("From").unwrap_or_default().to_owned(),
            remote: response.header("To").unwrap_or_default().to_owned(),
            local_seq: invite.cseq().map(|c| c.seq).unwrap_or(1),
            remote_seq: None,
            remote_target: contact.uri,
            route_set,
        })
    }

    /// True if `msg` is a request inside this dialog (Call-ID and both tags match).
    pub fn matches(&self, msg: &Message) -> bool {
        msg.call_id() == Some(self.call_id.as_str())
            && msg.to().as_ref().and_then(NameAddr::tag) == Some(self.local_tag.as_str())
            && msg.from().as_ref().and_then(NameAddr::tag) == Some(self.remote_tag.as_str())
    }

    /// Checks and records the CSeq of an incoming in-dialog request; false if it is older
    /// than one already seen (answer 500 then, RFC 3261 §12.2.2).
    pub fn accept_remote_seq(&mut self, msg: &Message) -> bool {
        let Some(seq) = msg.cseq().map(|c| c.seq) else {
            return false;
        };
        if self.remote_seq.is_some_and(|s| seq < s) {
            return false;
        }
        self.remote_seq = Some(seq);
        true
    }

    /// A new in-dialog request with the next CSeq (Via is the transport's job).
    pub fn request(&mut self, method: Method) -> Message {
        self.local_seq = self.local_seq.saturating_add(1);
        let seq = self.local_seq;
        self.build(method, seq)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq` (RFC 3261 §13.2.2.4).
    pub fn ack(&self, invite_seq: u32) -> Message {
        self.build(Method::Ack, invite_seq)
    }

    fn build(&self, method: Method, seq: u32) -> Message {
        // Loose routing (RFC 3261 §12.2.1.1): first route has `lr` → Request-URI is the
        // remote target and the route set goes into Route. Otherwise strict routing.
        let first_lr = self
            .route_set
            .first()
            .and_then(|r| NameAddr::parse(r))
            .and_then(|n| Uri::parse(&n.uri))
            .map(|u| u.params.has("lr"));
        let (ruri, routes): (String, Vec<String>) = match first_lr {
            None if self.route_set.is_empty() => (self.remote_target.clone(), Vec::new()),
            Some(false) => {
                let first = NameAddr::parse(&self.route_set[0])
                    .map(|n| n.uri)
                    .unwrap_or_else(|| self.remote_target.clone());
                let mut rest: Vec<String> = self.route_set[1..].to_vec();
                rest.push(format!("<{}>", self.remote_target));
                (first, rest)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        };
        let mut m = Message::request(method.clone(), ruri);
        m.push("Max-Forwards", "70");
        for r in routes {
            m.push("Route", r);
        }
        m.push("From", self.local.clone());
        m.push("To", self.remote.clone());
        m.push("Call-ID", self.call_id.clone());
        m.push("CSeq", format!("{seq} {method}"));
        m
    }

    /// Where the next in-dialog request goes: the first Route's URI, or the remote target.
    pub fn next_hop(&self) -> Option<Uri> {
        match self.route_set.first() {
            Some(r) => NameAddr::parse(r).and_then(|n| Uri::parse(&n.uri)),
            None => Uri::parse(&self.remote_target),
        }
    }
}

/// A fresh From/To tag.
pub fn new_tag() -> String {
    format!("{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff)
}

/// A fresh Call-ID.
pub fn new_call_id(host: &str) -> String {
    format!("{:016x}{:08x}@{host}", fastrand::u64(..), fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(record_route: &[&str]) -> (Message, Message) {
        let invite = Message::parse(
            b"INVITE sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\
              From: <sip:a@a.example>;tag=aa\r\nTo: <sip:bob@b.example>\r\nCall-ID: d1\r\nCSeq: 4 INVITE\r\n\r\n",
        )
        .expect("invite");
        let mut ok = Message::response_to(&invite, 200, "OK", Some("bb"));
        ok.push("Contact", "<sip:bob@10.0.0.9:5062>");
        for rr in record_route {
            ok.push("Record-Route", *rr);
        }
        (invite, ok)
    }

    #[test]
    fn loose_routing_keeps_target_in_request_uri() {
        let (invite, ok) = pair(&["<sip:p2.example;lr>, <sip:p1.example;lr>"]);
        let mut d = Dialog::from_uac(&invite, &ok).expect("dialog");
        let refer = d.request(Method::Refer);
        assert_eq!(refer.request_uri(), Some("sip:bob@10.0.0.9:5062"));
        let routes: Vec<_> = refer.header_values("Route").collect();
        assert_eq!(routes, ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]);
        assert_eq!(refer.cseq().map(|c| c.seq), Some(5));
        assert_eq!(d.next_hop().map(|u| u.host), Some("p1.example".into()));
        assert_eq!(d.ack(4).cseq().map(|c| c.seq), Some(4));
    }

    #[test]
    fn strict_routing_moves_target_into_route() {
        let (invite, ok) = pair(&["<sip:strict.example>"]);
        let mut d = Dialog::from_uac(&invite, &ok).expect("dialog");
        let bye = d.request(Method::Bye);
        assert_eq!(bye.request_uri(), Some("sip:strict.example"));
        assert_eq!(bye.header("Route"), Some("<sip:bob@10.0.0.9:5062>"));
    }

    #[test]
    fn matches_in_dialog_requests_and_orders_cseq() {
        let (invite, ok) = pair(&[]);
        let mut d = Dialog::from_uac(&invite, &ok).expect("dialog");
        let notify = Message::parse(
            b"NOTIFY sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK2\r\n\
              From: <sip:bob@b.example>;tag=bb\r\nTo: <sip:a@a.example>;tag=aa\r\nCall-ID: d1\r\nCSeq: 10 NOTIFY\r\n\r\n",
        )
        .expect("notify");
        assert!(d.matches(&notify));
        assert!(d.accept_remote_seq(&notify));
        let mut older = notify.clone();
        older.set("CSeq", "9 NOTIFY");
        assert!(!d.accept_remote_seq(&older));
        let mut no_contact = ok.clone();
        no_contact.remove("Contact");
        assert_eq!(
            Dialog::from_uac(&invite, &no_contact),
            Err(DialogError::Incomplete)
        );
    }
}
