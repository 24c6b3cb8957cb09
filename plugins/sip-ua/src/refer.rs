//! REFER's implicit subscription (RFC 3515, RFC 4488, RFC 6665), sans-I/O: reading the
//! `message/sipfrag` body of a NOTIFY (RFC 3420) and its `Subscription-State`.

use crate::message::Message;

/// The status line a NOTIFY reports about the referred call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sipfrag {
    /// Status code of the referred call (100..=699).
    pub code: u16,
    /// Reason phrase.
    pub reason: String,
}

impl Sipfrag {
    /// Reads the first line of a sipfrag body: `SIP/2.0 180 Ringing`. `None` when the body does
    /// not start with a Status-Line.
    pub fn parse(body: &[u8]) -> Option<Sipfrag> {
        let text = std::str::from_utf8(body.get(..body.len().min(1024))?).ok()?;
        let line = text.trim_start().lines().next()?.trim();
        let rest = line.strip_prefix("SIP/2.0")?.trim_start();
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code.parse().ok()?;
        (100..=699).contains(&code).then(|| Sipfrag {
            code,
            reason: reason.trim().to_owned(),
        })
    }

    /// True for a final status (≥ 200).
    pub fn is_final(&self) -> bool {
        self.code >= 200
    }
}

/// What one NOTIFY of the `refer` event package tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferNotify {
    /// The sipfrag, if the body had one.
    pub frag: Option<Sipfrag>,
    /// True when `Subscription-State: terminated`.
    pub terminated: bool,
}

impl ReferNotify {
    /// Reads a NOTIFY. `None` when it is not about the `refer` event.
    pub fn read(notify: &Message) -> Option<ReferNotify> {
        let event = notify.header("Event")?;
        let package = event.split(';').next().unwrap_or("").trim();
        if !package.eq_ignore_ascii_case("refer") {
            return None;
        }
        let terminated = notify
            .header("Subscription-State")
            .map(|s| {
                s.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("terminated")
            })
            .unwrap_or(false);
        Some(ReferNotify {
            frag: Sipfrag::parse(&notify.body),
            terminated,
        })
    }
}

/// True if a 2xx to REFER said `Refer-Sub: false` (RFC 4488): no NOTIFY will come.
pub fn no_subscription(response: &Message) -> bool {
    response
        .header("Refer-Sub")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sipfrag_status_lines() {
        assert_eq!(
            Sipfrag::parse(b"SIP/2.0 180 Ringing\r\n"),
            Some(Sipfrag {
                code: 180,
                reason: "Ringing".into()
            })
        );
        assert_eq!(
            Sipfrag::parse(b"SIP/2.0 486 Busy Here"),
            Some(Sipfrag {
                code: 486,
                reason: "Busy Here".into()
            })
        );
        assert_eq!(
            Sipfrag::parse(b"\r\nSIP/2.0 200").map(|f| f.code),
            Some(200)
        );
        assert_eq!(Sipfrag::parse(b"INVITE sip:x SIP/2.0"), None);
        assert_eq!(Sipfrag::parse(b"SIP/2.0 999 Nope"), None);
        assert_eq!(Sipfrag::parse(&[0xff, 0xfe]), None);
    }

    #[test]
    fn reads_refer_notify() {
        let mut n = Message::request(crate::Method::Notify, "sip:a@b");
        n.push("Event", "refer;id=2");
        n.push("Subscription-State", "terminated;reason=noresource");
        n.body = b"SIP/2.0 603 Declined\r\n".to_vec();
        let r = ReferNotify::read(&n).expect("refer event");
        assert!(r.terminated);
        assert_eq!(r.frag.map(|f| f.code), Some(603));
        n.set("Event", "dialog");
        assert!(ReferNotify::read(&n).is_none());
        let mut ok = Message::request(crate::Method::Refer, "sip:x@y");
        ok.push("Refer-Sub", "false");
        assert!(no_subscription(&ok));
    }
}
