//! Trying a request's targets in order (RFC 3263 §4.3): when the current target gives a
//! `503`, times out, or the transport fails before it answered anything, the request is sent
//! again, as a new transaction (a new Via branch), to the next target.
//!
//! [`Failover`] is the sans-I/O decision; call legs keep it next to their own transaction loop
//! (`on_event` for every event of the current transaction, `deadline`/`on_deadline` for a
//! target that stays silent). [`send_non_invite`] runs the whole loop for a simple non-INVITE
//! request (REGISTER).
//!
//! Decision: besides RFC 3263's timeout (Timer B/F, 32 s), a target that answers *nothing at
//! all*, not even `100 Trying`, within the silence limit ([`DnsSettings::failover_timeout`],
//! 4 s by default) is given up for the next one, as proxies do with their final-response
//! timer. Its transaction is left to end on its own timer; nothing is cancelled (RFC 3261
//! §9.1 forbids a CANCEL before a provisional response). The last target is never given up
//! early.
//!
//! [`DnsSettings::failover_timeout`]: super::DnsSettings::failover_timeout

use super::Target;
use crate::endpoint::{ClientEvent, Endpoint};
use crate::message::Message;
use std::time::{Duration, Instant};

/// The targets of one request and where we are in them.
#[derive(Debug, Clone)]
pub struct Failover {
    targets: Vec<Target>,
    at: usize,
    silence: Option<Duration>,
    heard: bool,
    sent_at: Option<Instant>,
}

impl Failover {
    /// Tries `targets` in their order; `silence` gives up a target that sent nothing for that
    /// long (`None`: only the transaction's own timeout). `None` when there is no target.
    pub fn new(targets: Vec<Target>, silence: Option<Duration>) -> Option<Failover> {
        if targets.is_empty() {
            return None;
        }
        Some(Failover {
            targets,
            at: 0,
            silence,
            heard: false,
            sent_at: None,
        })
    }

    /// The target to send to now.
    pub fn current(&self) -> Target {
        // Invariant: `targets` is not empty (checked in `new`) and `at` never passes its end.
        self.targets[self.at]
    }

    /// Targets tried so far, the current one included.
    pub fn tried(&self) -> usize {
        self.at + 1
    }

    /// True when another target is left after the current one.
    pub fn has_next(&self) -> bool {
        self.at + 1 < self.targets.len()
    }

    /// A new transaction went to the current target at `now` (also after a challenge).
    pub fn sent(&mut self, now: Instant) {
        self.heard = false;
        self.sent_at = Some(now);
    }

    /// When the current target counts as silent: set while it has answered nothing and
    /// another target is left.
    pub fn deadline(&self) -> Option<Instant> {
        if self.heard || !self.has_next() {
            return None;
        }
        Some(self.sent_at? + self.silence?)
    }

    /// Reads an event of the current transaction; `Some(next)` when the request must go again,
    /// as a new transaction, to `next` (the current target from now on).
    pub fn on_event(&mut self, ev: &ClientEvent) -> Option<Target> {
        match ev {
            ClientEvent::Response(r) if r.code() == Some(503) => {
                self.advance("it answered 503 Service Unavailable")
            }
            ClientEvent::Response(_) => {
                self.heard = true;
                None
            }
            ClientEvent::Timeout if !self.heard => self.advance("no response in time"),
            ClientEvent::TransportError(e) if !self.heard => self.advance(&e.to_string()),
            ClientEvent::Timeout | ClientEvent::TransportError(_) => None,
        }
    }

    /// Called when [`Failover::deadline`] has passed: `Some(next)` as in
    /// [`Failover::on_event`].
    pub fn on_deadline(&mut self, now: Instant) -> Option<Target> {
        match self.deadline() {
            Some(d) if now >= d => {
                let waited = self.silence.unwrap_or_default();
                self.advance(&format!(
                    "no answer at all within {} ms",
                    waited.as_millis()
                ))
            }
            _ => None,
        }
    }

    fn advance(&mut self, why: &str) -> Option<Target> {
        if !self.has_next() {
            return None;
        }
        let from = self.current();
        self.at += 1;
        self.heard = false;
        self.sent_at = None;
        let to = self.current();
        tracing::info!(from = %from, to = %to, why, "SIP target failed, trying the next (RFC 3263)");
        Some(to)
    }
}

/// A final answer [`send_non_invite`] got.
#[derive(Debug)]
pub struct Answered {
    /// The request as sent (with its Via).
    pub request: Message,
    /// The final response.
    pub response: Message,
    /// Who answered.
    pub target: Target,
}

/// How [`send_non_invite`] ended.
#[derive(Debug)]
pub enum Sent {
    /// A final response (not a `503` that led to another target).
    Final(Box<Answered>),
    /// No target gave a final response: what happened at the last one.
    Failed(String),
}

/// Sends the non-INVITE request `build(target)` makes, to each target in turn until a final
/// response that is not a reason to move on arrives (a `503` of the last target is returned
/// as it is). Provisional responses are skipped; `limit` guards each transaction besides
/// Timer F.
pub async fn send_non_invite(
    endpoint: &Endpoint,
    failover: &mut Failover,
    mut build: impl FnMut(&Target) -> Message,
    limit: Duration,
) -> Sent {
    'targets: loop {
        let target = failover.current();
        let mut tx = match endpoint.request(build(&target), target).await {
            Ok(tx) => tx,
            Err(e) => return Sent::Failed(e.to_string()),
        };
        failover.sent(Instant::now());
        let guard = tokio::time::Instant::now() + limit;
        loop {
            let silent = failover.deadline().map(tokio::time::Instant::from_std);
            let ev = tokio::select! {
                ev = tx.events.recv() => ev,
                () = sleep_until_opt(silent) => {
                    if failover.on_deadline(Instant::now()).is_some() {
                        continue 'targets;
                    }
                    continue;
                }
                () = tokio::time::sleep_until(guard) => Some(ClientEvent::Timeout),
            };
            let Some(ev) = ev else {
                return Sent::Failed("the transaction ended without a response".into());
            };
            if failover.on_event(&ev).is_some() {
                continue 'targets;
            }
            match ev {
                ClientEvent::Response(r) if r.code().unwrap_or(0) < 200 => {}
                ClientEvent::Response(response) => {
                    return Sent::Final(Box::new(Answered {
                        request: tx.request,
                        response,
                        target,
                    }))
                }
                ClientEvent::Timeout => return Sent::Failed(format!("no answer from {target}")),
                ClientEvent::TransportError(e) => return Sent::Failed(e.to_string()),
            }
        }
    }
}

/// Sleeps until `at`, or forever when it is `None` (for `select!` arms that may be off).
pub async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::TransportError;
    use crate::resolve::Transport;

    fn t(port: u16) -> Target {
        Target {
            transport: Transport::Udp,
            addr: ([127, 0, 0, 1], port).into(),
        }
    }

    fn response(code: u16) -> ClientEvent {
        let text = format!(
            "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\n\
             To: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        ClientEvent::Response(Message::parse(text.as_bytes()).expect("response"))
    }

    #[test]
    fn moves_on_after_503_timeout_and_transport_errors_only() {
        assert!(Failover::new(Vec::new(), None).is_none());
        let mut f = Failover::new(vec![t(1), t(2), t(3), t(4)], None).expect("targets");
        assert_eq!(f.current(), t(1));
        let unreachable = ClientEvent::TransportError(TransportError::Unreachable {
            peer: t(1).addr,
            reason: "port unreachable".into(),
        });
        assert_eq!(f.on_event(&unreachable), Some(t(2)));
        assert_eq!(f.on_event(&ClientEvent::Timeout), Some(t(3)));
        // A provisional answer, then a timeout: the target is alive, no failover.
        assert_eq!(f.on_event(&response(100)), None);
        assert_eq!(f.on_event(&ClientEvent::Timeout), None);
        assert_eq!(f.on_event(&response(503)), Some(t(4)));
        assert_eq!(f.tried(), 4);
        // Other final answers stay where they are; the last target is never left.
        assert_eq!(f.on_event(&response(486)), None);
        assert_eq!(f.on_event(&response(503)), None);
        assert_eq!(f.current(), t(4));
    }

    #[test]
    fn a_silent_target_is_given_up_but_never_the_last() {
        let now = Instant::now();
        let mut f = Failover::new(vec![t(1), t(2)], Some(Duration::from_secs(4))).expect("targets");
        assert_eq!(f.deadline(), None, "nothing sent yet");
        f.sent(now);
        assert_eq!(f.deadline(), Some(now + Duration::from_secs(4)));
        assert_eq!(f.on_deadline(now + Duration::from_secs(3)), None);
        assert_eq!(f.on_deadline(now + Duration::from_secs(4)), Some(t(2)));
        f.sent(now);
        assert_eq!(
            f.deadline(),
            None,
            "the last target waits for its own timeout"
        );
        // Heard from: no deadline either.
        let mut g = Failover::new(vec![t(1), t(2)], Some(Duration::from_secs(1))).expect("targets");
        g.sent(now);
        g.on_event(&response(180));
        assert_eq!(g.deadline(), None);
        // Without a silence limit only the transaction's events move on.
        let mut h = Failover::new(vec![t(1), t(2)], None).expect("targets");
        h.sent(now);
        assert_eq!(h.deadline(), None);
    }
}
