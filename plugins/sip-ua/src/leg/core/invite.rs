//! The leg's INVITE: its answers (provisional with PRACK, 2xx with ACK, challenges, errors),
//! failover to the next target (RFC 3263 §4.3, decided by [`crate::resolve::Failover`]: a
//! target that is down, stays silent, or answers 503), CANCEL, and 2xx that come late (also
//! from a target we left: ACKed and ended with BYE).

use super::{
    contact_for, prack, Action, Dest, LegCore, LegEvent, LegFailure, Phase, Purpose, Reliable,
    ReqId, Stop, MAX_ATTEMPTS, MAX_AUTH_ANSWERS,
};
use crate::dialog::Dialog;
use crate::digest;
use crate::endpoint::ClientEvent;
use crate::message::{Message, Method};
use crate::resolve::Target;
use std::time::Instant;

impl LegCore {
    pub(super) fn on_invite_event(&mut self, id: ReqId, ev: ClientEvent, now: Instant) {
        if let ClientEvent::Response(resp) = &ev {
            let late = !matches!(self.phase, Phase::Inviting { .. }) || id != self.invite_id;
            if late && resp.code().is_some_and(|c| (200..300).contains(&c)) {
                self.on_late_2xx(resp);
                return;
            }
        }
        if id != self.invite_id {
            return;
        }
        let Phase::Inviting { cancelling, .. } = &self.phase else {
            return;
        };
        let stop = cancelling.map(|(s, _)| s);
        if stop.is_none() && self.attempts < MAX_ATTEMPTS {
            if let Some(next) = self.failover.on_event(&ev) {
                return self.next_target(next, now);
            }
        }
        let resp = match ev {
            ClientEvent::Response(resp) => resp,
            ClientEvent::TransportError(e) => return self.on_invite_silence(e.to_string(), now),
            ClientEvent::Timeout => {
                return self.on_invite_silence("no response to our INVITE".into(), now)
            }
        };
        let Phase::Inviting {
            provisional,
            any_response,
            cancel_sent,
            ..
        } = &mut self.phase
        else {
            return;
        };
        *any_response = true;
        let code = resp.code().unwrap_or(0);
        match code {
            100..=199 => {
                *provisional = true;
                let send_cancel = stop.is_some() && !*cancel_sent;
                if send_cancel {
                    *cancel_sent = true;
                }
                let report = self.on_provisional(&resp);
                if send_cancel {
                    self.send_cancel();
                } else if report && stop.is_none() && code != 100 {
                    self.events.push_back(LegEvent::Progress {
                        code,
                        reason: resp.reason_phrase().to_owned(),
                    });
                }
            }
            200..=299 => self.on_answer(&resp, stop, now),
            401 | 407 if stop.is_none() => self.on_invite_challenge(&resp, now),
            403 if self.auth.is_some() && stop.is_none() => {
                let detail = format!("403 {}", resp.reason_phrase());
                self.fail(
                    LegFailure::Auth {
                        user: self.auth_user(),
                        detail,
                    },
                    now,
                );
            }
            _ => match stop {
                Some(s) => self.cancelled(s, now),
                None => self.fail(
                    LegFailure::Status {
                        code,
                        reason: resp.reason_phrase().to_owned(),
                    },
                    now,
                ),
            },
        }
    }

    /// The INVITE got no final answer (`detail` says why): try the next target while nothing
    /// answered at all (RFC 3263 §4.3), else the leg failed (or the cancel is over).
    pub(super) fn on_invite_silence(&mut self, detail: String, now: Instant) {
        let Phase::Inviting {
            any_response,
            cancelling,
            ..
        } = &self.phase
        else {
            return;
        };
        if let Some((s, _)) = cancelling {
            return self.cancelled(*s, now);
        }
        if !*any_response && self.attempts < MAX_ATTEMPTS {
            if let Some(next) = self.failover.on_event(&ClientEvent::Timeout) {
                return self.next_target(next, now);
            }
        }
        self.fail(LegFailure::Unreachable(detail), now);
    }

    /// A silent target's time is up ([`crate::resolve::Failover::deadline`]): the INVITE goes
    /// to the next target; the silent one's transaction is left to end on its own.
    pub(super) fn on_failover_deadline(&mut self, now: Instant) {
        let Phase::Inviting {
            cancelling: None, ..
        } = &self.phase
        else {
            return;
        };
        if self.attempts >= MAX_ATTEMPTS {
            return;
        }
        if let Some(next) = self.failover.on_deadline(now) {
            self.next_target(next, now);
        }
    }

    /// The INVITE again, as a new transaction (new branch, CSeq + 1), to `next`.
    fn next_target(&mut self, next: Target, now: Instant) {
        tracing::info!(call_id = %self.setup.call_id, from = %self.target,
            to = %next, "INVITE goes to the next target (RFC 3263)");
        let local = self
            .locals
            .iter()
            .find(|(t, _)| *t == next)
            .map_or(self.local, |(_, l)| *l);
        self.target = next;
        self.local = local;
        self.contact = contact_for(&self.setup.contact_user, local, next.transport);
        self.invite_seq += 1;
        self.send_invite(now);
    }

    pub(super) fn invite_sent(&self) -> Option<&Message> {
        self.requests
            .iter()
            .find(|r| r.id == self.invite_id)
            .and_then(|r| r.sent.as_ref())
    }

    pub(super) fn on_invite_challenge(&mut self, resp: &Message, now: Instant) {
        let code = resp.code().unwrap_or(0);
        let answers = self
            .requests
            .iter()
            .find(|r| r.id == self.invite_id)
            .map(|r| r.auth_answers)
            .unwrap_or(0)
            .max(u32::from(self.auth.is_some()));
        if (self.auth.is_some() && !digest::is_stale(resp)) || answers >= MAX_AUTH_ANSWERS {
            let detail = format!(
                "challenged again after answering ({code} {})",
                resp.reason_phrase()
            );
            return self.fail(
                LegFailure::Auth {
                    user: self.auth_user(),
                    detail,
                },
                now,
            );
        }
        if self.attempts >= MAX_ATTEMPTS {
            return self.fail(
                LegFailure::Unreachable("too many INVITE attempts".into()),
                now,
            );
        }
        let Some(invite) = self.invite_sent().cloned() else {
            return;
        };
        match digest::answer_challenge(&invite, resp, &self.setup.credentials) {
            Ok(h) => {
                self.auth = Some(h);
                self.invite_seq += 1;
                self.send_invite(now);
                if let Some(r) = self.request_mut(self.invite_id) {
                    r.auth_answers = answers + 1;
                }
            }
            Err(e) => self.fail(
                LegFailure::Auth {
                    user: self.auth_user(),
                    detail: format!("cannot answer the challenge: {e}"),
                },
                now,
            ),
        }
    }

    /// PRACKs a reliable provisional response (RFC 3262 §4). False when the response must not
    /// be reported (a repeat or out of order).
    pub(super) fn on_provisional(&mut self, resp: &Message) -> bool {
        let Some(rseq) = prack::reliable_rseq(resp) else {
            return true;
        };
        let Some(tag) = resp.to().and_then(|t| t.tag().map(str::to_owned)) else {
            return true;
        };
        match self.order.classify(&tag, rseq) {
            Reliable::New => {
                self.send_prack(resp, &tag, rseq);
                true
            }
            Reliable::Repeat => {
                // The UAS has not seen our PRACK yet (lost, or still on its way): send it once
                // more as it was (same CSeq, same RAck, same branch), unless it has been
                // answered. Never a new PRACK (RFC 3262 §4); over UDP its transaction keeps
                // retransmitting by itself, so once is enough (and a peer that answers every
                // copy with the 1xx again cannot start a ping-pong).
                let early = self.early.iter().find(|d| d.remote_tag == tag).cloned();
                let again = self.requests.iter_mut().find(|r| {
                    !r.finished && !r.resent && r.purpose == Purpose::Prack { tag: tag.clone() }
                });
                if let (Some(r), Some(early)) = (again, early) {
                    if let Some(msg) = r.sent.clone() {
                        r.resent = true;
                        let dest = self.hop(&early);
                        self.actions.push_back(Action::Resend { msg, dest });
                    }
                }
                false
            }
            Reliable::OutOfOrder => false,
        }
    }

    pub(super) fn send_prack(&mut self, resp: &Message, tag: &str, rseq: u32) {
        if !self.early.iter().any(|d| d.remote_tag == tag) {
            let Some(invite) = self.invite_sent() else {
                return;
            };
            let early = Dialog::from_uac(invite, resp).ok().or_else(|| {
                // No Contact in the 1xx: the Request-URI stands in for the remote target.
                let mut with_contact = resp.clone();
                with_contact.push("Contact", format!("<{}>", self.setup.request_uri));
                Dialog::from_uac(invite, &with_contact).ok()
            });
            match early {
                Some(d) => self.early.push(d),
                None => return,
            }
        }
        let seq = self.invite_seq;
        let Some(pos) = self.early.iter().position(|d| d.remote_tag == tag) else {
            return;
        };
        let mut prack = self.early[pos].request(Method::Prack);
        prack.push("RAck", prack::rack(rseq, seq));
        self.stamp(&mut prack);
        let dest = self.hop(&self.early[pos]);
        self.send(
            Purpose::Prack {
                tag: tag.to_owned(),
            },
            prack,
            dest,
        );
    }

    pub(super) fn send_cancel(&mut self) {
        let Some(inv) = self.invite_sent() else {
            return;
        };
        let mut c = Message::request(Method::Cancel, inv.request_uri().unwrap_or_default());
        if let Some(v) = inv.header_values("Via").next() {
            c.push("Via", v);
        }
        c.push("Max-Forwards", "70");
        for (n, v) in &inv.headers {
            if n == "Route" {
                c.push("Route", v.clone());
            }
        }
        for n in ["From", "To", "Call-ID"] {
            if let Some(v) = inv.header(n) {
                c.push(n, v);
            }
        }
        let seq = inv.cseq().map(|c| c.seq).unwrap_or(1);
        c.push("CSeq", format!("{seq} CANCEL"));
        self.stamp(&mut c);
        // The CANCEL's own answer is not needed: the INVITE's 487 ends the wait.
        self.send(Purpose::Cancel, c, Dest::Target(self.target));
    }

    pub(super) fn ack(&mut self, dialog: &Dialog) {
        let mut ack = dialog.ack(self.invite_seq);
        self.stamp(&mut ack);
        let dest = self.hop(dialog);
        self.actions.push_back(Action::Resend { msg: ack, dest });
    }

    pub(super) fn on_answer(&mut self, resp: &Message, stop: Option<Stop>, now: Instant) {
        let formed = self
            .invite_sent()
            .map(|inv| Dialog::from_uac(inv, resp).map_err(|e| e.to_string()));
        let mut dialog = match formed {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                return match stop {
                    Some(s) => self.cancelled(s, now),
                    None => self.fail(LegFailure::Unreachable(e), now),
                }
            }
            None => return,
        };
        // CSeq ordering: PRACKs in the early dialogs used numbers above the INVITE's.
        let floor = self.early.iter().map(|d| d.local_seq).max().unwrap_or(0);
        dialog.local_seq = dialog.local_seq.max(floor);
        self.ack(&dialog);
        self.dialog = Some(dialog);
        match stop {
            Some(s) => self.cancelled(s, now),
            None => {
                self.phase = Phase::Confirmed;
                self.events.push_back(LegEvent::Answered);
            }
        }
    }

    /// A 2xx that is not the answer we are waiting for: a retransmission of ours (ACK it
    /// again, RFC 6026 §7.2), or another fork's, or one after we gave up (ACK it and BYE it,
    /// RFC 3261 §13.2.2.4).
    pub(super) fn on_late_2xx(&mut self, resp: &Message) {
        let tag = resp.to().and_then(|t| t.tag().map(str::to_owned));
        if let Some(d) = self.dialog.clone() {
            if tag.as_deref() == Some(d.remote_tag.as_str()) {
                return self.ack(&d);
            }
        }
        let Some(invite) = self.invite_sent() else {
            return;
        };
        let Ok(mut other) = Dialog::from_uac(invite, resp) else {
            return;
        };
        self.ack(&other);
        let mut bye = other.request(Method::Bye);
        self.stamp(&mut bye);
        let dest = self.hop(&other);
        self.send(Purpose::Other, bye, dest);
    }
}
