//! REFER's implicit subscription (RFC 3515, RFC 4488, RFC 6665) as seen by the referrer,
//! sans-I/O: the REFER's answer, the NOTIFY sipfrags, and the wait for the final one.
//!
//! - 2xx to the REFER: accepted; with `Refer-Sub: false` done at once (no NOTIFY will come);
//!   otherwise the final NOTIFY is awaited for the notify timeout (a NOTIFY also counts as
//!   acceptance: it can overtake the 202).
//! - a final error to the REFER: refused; no answer at all: unreachable (unless a NOTIFY
//!   already showed acceptance).
//! - sipfrag 1xx: progress; 2xx: done; ≥ 300: failed; `Subscription-State: terminated` without
//!   a final sipfrag: no final status.
//! - NOTIFYs of an earlier REFER in the same dialog (`Event: refer;id=N` with another N) do not
//!   count for this one.

use super::outcome::ReferFailure;
use crate::message::Message;
use crate::refer::{no_subscription, ReferNotify};
use std::time::{Duration, Instant};

/// How a REFER ended well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferDone {
    /// The REFER was accepted with `Refer-Sub: false`: no progress reports came, the
    /// referred call's outcome is not known.
    pub without_reports: bool,
}

/// What a REFER's answer or NOTIFY changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Nothing to report.
    None,
    /// A provisional sipfrag (`100 Trying`, `180 Ringing`, ...).
    Progress {
        /// Status.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The REFER's outcome.
    Done(Result<ReferDone, ReferFailure>),
}

/// One REFER and its subscription.
#[derive(Debug, Clone)]
pub struct ReferSubscription {
    /// CSeq of the REFER (the subscription's `id`).
    refer_seq: u32,
    notify_timeout: Duration,
    accepted: bool,
    deadline: Option<Instant>,
    last: String,
    finished: bool,
}

impl ReferSubscription {
    /// A REFER sent with CSeq `refer_seq`.
    pub fn new(refer_seq: u32, notify_timeout: Duration) -> ReferSubscription {
        ReferSubscription {
            refer_seq,
            notify_timeout,
            accepted: false,
            deadline: None,
            last: "none".into(),
            finished: false,
        }
    }

    /// True once the REFER was accepted (2xx or a NOTIFY).
    pub fn accepted(&self) -> bool {
        self.accepted
    }

    /// True once the outcome was reported.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// When the notify timeout ends, if it runs.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.filter(|_| !self.finished)
    }

    /// A new REFER CSeq after a challenge was answered.
    pub fn resent(&mut self, refer_seq: u32) {
        self.refer_seq = refer_seq;
    }

    fn accept(&mut self, now: Instant) {
        self.accepted = true;
        self.deadline
            .get_or_insert_with(|| now + self.notify_timeout);
    }

    fn finish(&mut self, result: Result<ReferDone, ReferFailure>) -> Update {
        if self.finished {
            return Update::None;
        }
        self.finished = true;
        Update::Done(result)
    }

    /// Ends the REFER with `failure` (a challenge that cannot be answered, for one).
    pub fn fail(&mut self, failure: ReferFailure) -> Update {
        self.finish(Err(failure))
    }

    /// A final response to the REFER (challenges are answered before this is called).
    pub fn on_response(&mut self, resp: &Message, now: Instant) -> Update {
        let code = resp.code().unwrap_or(0);
        match code {
            0..=199 => Update::None,
            200..=299 => {
                self.accept(now);
                if no_subscription(resp) {
                    return self.finish(Ok(ReferDone {
                        without_reports: true,
                    }));
                }
                Update::None
            }
            _ => self.finish(Err(ReferFailure::Refused {
                code,
                reason: resp.reason_phrase().to_owned(),
            })),
        }
    }

    /// The REFER got no final response (`detail` says why). Harmless once a NOTIFY showed
    /// that it was accepted.
    pub fn on_no_response(&mut self, detail: String) -> Update {
        if self.accepted {
            return Update::None;
        }
        self.finish(Err(ReferFailure::Unreachable(detail)))
    }

    /// True if `notify` reports on this REFER (its `id`, when it names one, is our CSeq).
    pub fn concerns(&self, notify: &Message) -> bool {
        let id = notify.header("Event").and_then(|e| {
            e.split(';').skip(1).find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("id")
                    .then(|| v.trim().trim_matches('"').to_owned())
            })
        });
        id.is_none_or(|id| id == self.refer_seq.to_string())
    }

    /// A NOTIFY of the `refer` event about this REFER.
    pub fn on_notify(&mut self, n: &ReferNotify, now: Instant) -> Update {
        self.accept(now);
        match &n.frag {
            Some(f) if f.code < 200 => {
                self.last = format!("{} {}", f.code, f.reason);
                if n.terminated {
                    return self.finish(Err(ReferFailure::NoFinalStatus));
                }
                if self.finished {
                    return Update::None;
                }
                Update::Progress {
                    code: f.code,
                    reason: f.reason.clone(),
                }
            }
            Some(f) if f.code < 300 => self.finish(Ok(ReferDone {
                without_reports: false,
            })),
            Some(f) => self.finish(Err(ReferFailure::Failed {
                code: f.code,
                reason: f.reason.clone(),
            })),
            None if n.terminated => self.finish(Err(ReferFailure::NoFinalStatus)),
            None => Update::None,
        }
    }

    /// The notify timeout, if it has run out.
    pub fn on_timer(&mut self, now: Instant) -> Update {
        match self.deadline() {
            Some(d) if now >= d => {
                let failure = ReferFailure::Timeout {
                    secs: self.notify_timeout.as_secs(),
                    last: self.last.clone(),
                };
                self.finish(Err(failure))
            }
            _ => Update::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Method;

    fn notify(frag: &str, state: &str, event: &str) -> ReferNotify {
        let mut n = Message::request(Method::Notify, "sip:a@b");
        n.push("Event", event);
        n.push("Subscription-State", state);
        n.body = frag.as_bytes().to_vec();
        ReferNotify::read(&n).expect("refer notify")
    }

    fn answer(code: u16, extra: Option<(&str, &str)>) -> Message {
        let req = Message::request(Method::Refer, "sip:b@h");
        let mut r = Message::response_to(&req, code, "Reason", None);
        if let Some((n, v)) = extra {
            r.push(n, v);
        }
        r
    }

    #[test]
    fn sipfrags_lead_to_the_outcome() {
        let t0 = Instant::now();
        let mut s = ReferSubscription::new(2, Duration::from_secs(25));
        assert_eq!(s.on_response(&answer(202, None), t0), Update::None);
        assert!(s.accepted());
        assert_eq!(s.deadline(), Some(t0 + Duration::from_secs(25)));
        let ringing = notify("SIP/2.0 180 Ringing\r\n", "active", "refer");
        assert_eq!(
            s.on_notify(&ringing, t0),
            Update::Progress {
                code: 180,
                reason: "Ringing".into()
            }
        );
        let ok = notify("SIP/2.0 200 OK\r\n", "terminated", "refer");
        assert_eq!(
            s.on_notify(&ok, t0),
            Update::Done(Ok(ReferDone {
                without_reports: false
            }))
        );
        assert!(s.finished() && s.deadline().is_none());
        assert_eq!(s.on_notify(&ok, t0), Update::None, "reported once");
    }

    #[test]
    fn failures_and_timeouts() {
        let t0 = Instant::now();
        let mut refused = ReferSubscription::new(2, Duration::from_secs(5));
        assert!(matches!(
            refused.on_response(&answer(603, None), t0),
            Update::Done(Err(ReferFailure::Refused { code: 603, .. }))
        ));
        let mut nosub = ReferSubscription::new(2, Duration::from_secs(5));
        assert_eq!(
            nosub.on_response(&answer(202, Some(("Refer-Sub", "false"))), t0),
            Update::Done(Ok(ReferDone {
                without_reports: true
            }))
        );
        let mut slow = ReferSubscription::new(2, Duration::from_secs(5));
        let trying = notify("SIP/2.0 100 Trying\r\n", "active", "refer;id=2");
        assert!(matches!(
            slow.on_notify(&trying, t0),
            Update::Progress { code: 100, .. }
        ));
        assert_eq!(slow.on_no_response("late".into()), Update::None);
        assert_eq!(slow.on_timer(t0 + Duration::from_secs(4)), Update::None);
        assert_eq!(
            slow.on_timer(t0 + Duration::from_secs(5)),
            Update::Done(Err(ReferFailure::Timeout {
                secs: 5,
                last: "100 Trying".into()
            }))
        );
        let mut ended = ReferSubscription::new(2, Duration::from_secs(5));
        let terminated = notify("", "terminated;reason=noresource", "refer");
        assert_eq!(
            ended.on_notify(&terminated, t0),
            Update::Done(Err(ReferFailure::NoFinalStatus))
        );
        let mut busy = ReferSubscription::new(2, Duration::from_secs(5));
        assert!(matches!(
            busy.on_notify(&notify("SIP/2.0 486 Busy Here", "terminated", "refer"), t0),
            Update::Done(Err(ReferFailure::Failed { code: 486, .. }))
        ));
        let mut silent = ReferSubscription::new(2, Duration::from_secs(5));
        assert_eq!(
            silent.on_no_response("no response to our REFER".into()),
            Update::Done(Err(ReferFailure::Unreachable(
                "no response to our REFER".into()
            )))
        );
    }

    #[test]
    fn notifies_of_another_refer_do_not_count() {
        let s = ReferSubscription::new(7, Duration::from_secs(5));
        let mut n = Message::request(Method::Notify, "sip:a@b");
        n.push("Event", "refer");
        assert!(s.concerns(&n));
        n.set("Event", "refer;id=7");
        assert!(s.concerns(&n));
        n.set("Event", "refer;id=3");
        assert!(!s.concerns(&n));
    }
}
