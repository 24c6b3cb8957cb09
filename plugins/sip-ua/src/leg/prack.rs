//! Reliable provisional responses (RFC 3262), sans-I/O: recognising a reliable 1xx, the `RAck`
//! that acknowledges it, and the order rule that decides whether a reliable 1xx is new (PRACK
//! it and report it), a repeat of the last one (the UAS did not see our PRACK yet: the pending
//! PRACK goes out again, same CSeq and `RAck`, but no new PRACK is made), or out of order
//! (neither acknowledged nor processed, RFC 3262 §4 with errata 4604).

use crate::message::Message;

/// The option tag of RFC 3262.
pub const OPTION_TAG: &str = "100rel";

/// The `RSeq` of a reliable provisional response: a 101..=199 response with `Require: 100rel`
/// and a readable `RSeq` (1..=2³²−1). `None` for everything else (a `100 Trying` is never
/// reliable).
pub fn reliable_rseq(resp: &Message) -> Option<u32> {
    let code = resp.code()?;
    if !(101..=199).contains(&code) {
        return None;
    }
    let required = resp
        .header_values("Require")
        .any(|o| o.trim().eq_ignore_ascii_case(OPTION_TAG));
    if !required {
        return None;
    }
    resp.header("RSeq")?
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|r| *r > 0)
}

/// The `RAck` value acknowledging the reliable response `rseq` to the INVITE with CSeq number
/// `invite_seq` (RFC 3262 §7.2: `RSeq CSeq-number CSeq-method`).
pub fn rack(rseq: u32, invite_seq: u32) -> String {
    format!("{rseq} {invite_seq} INVITE")
}

/// What a reliable provisional response is, seen against the ones before it on its early
/// dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliable {
    /// The first of its early dialog, or one higher than the last: PRACK it and report it.
    New,
    /// The same `RSeq` as the last: a retransmission.
    Repeat,
    /// Any other `RSeq` (a gap, or older): neither acknowledged nor processed.
    OutOfOrder,
}

/// The last `RSeq` of each early dialog (by the To tag) of one INVITE transaction.
#[derive(Debug, Clone, Default)]
pub struct ReliableOrder {
    last: Vec<(String, u32)>,
}

impl ReliableOrder {
    /// Classifies `rseq` arriving on the early dialog `tag`, and records it when it is new.
    pub fn classify(&mut self, tag: &str, rseq: u32) -> Reliable {
        match self.last.iter_mut().find(|(t, _)| t == tag) {
            None => {
                self.last.push((tag.to_owned(), rseq));
                Reliable::New
            }
            Some((_, last)) if *last == rseq => Reliable::Repeat,
            Some((_, last)) if last.checked_add(1) == Some(rseq) => {
                *last = rseq;
                Reliable::New
            }
            Some(_) => Reliable::OutOfOrder,
        }
    }

    /// Forgets every early dialog (a new INVITE transaction starts its own numbering).
    pub fn clear(&mut self) {
        self.last.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provisional(code: u16, extra: &str) -> Message {
        Message::parse(
            format!(
                "SIP/2.0 {code} Session Progress\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                 From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 3 INVITE\r\n{extra}\r\n"
            )
            .as_bytes(),
        )
        .expect("response")
    }

    #[test]
    fn recognises_reliable_provisional_responses() {
        assert_eq!(
            reliable_rseq(&provisional(183, "Require: 100rel\r\nRSeq: 7\r\n")),
            Some(7)
        );
        assert_eq!(
            reliable_rseq(&provisional(
                180,
                "Require: timer, 100REL\r\nRSeq: 4294967295\r\n"
            )),
            Some(u32::MAX)
        );
        // Not required, no RSeq, a bad RSeq, or a 100: plain provisional responses.
        assert_eq!(
            reliable_rseq(&provisional(183, "Supported: 100rel\r\nRSeq: 7\r\n")),
            None
        );
        assert_eq!(
            reliable_rseq(&provisional(183, "Require: 100rel\r\n")),
            None
        );
        assert_eq!(
            reliable_rseq(&provisional(183, "Require: 100rel\r\nRSeq: x\r\n")),
            None
        );
        assert_eq!(
            reliable_rseq(&provisional(183, "Require: 100rel\r\nRSeq: 0\r\n")),
            None
        );
        assert_eq!(
            reliable_rseq(&provisional(100, "Require: 100rel\r\nRSeq: 1\r\n")),
            None
        );
        assert_eq!(rack(7, 3), "7 3 INVITE");
    }

    #[test]
    fn orders_each_early_dialog_on_its_own() {
        let mut order = ReliableOrder::default();
        assert_eq!(order.classify("a", 10), Reliable::New);
        assert_eq!(order.classify("a", 10), Reliable::Repeat);
        assert_eq!(order.classify("a", 12), Reliable::OutOfOrder);
        assert_eq!(order.classify("a", 11), Reliable::New);
        assert_eq!(order.classify("a", 10), Reliable::OutOfOrder);
        // A second fork numbers independently (RFC 3262 errata 4600).
        assert_eq!(order.classify("b", 500), Reliable::New);
        assert_eq!(order.classify("b", 501), Reliable::New);
        assert_eq!(order.classify("a", 12), Reliable::New);
        assert_eq!(order.classify("a", u32::MAX), Reliable::OutOfOrder);
        order.clear();
        assert_eq!(order.classify("a", 1), Reliable::New);
    }
}
