//! The leg once its INVITE is out: the driver's commands (cancel, REFER, hang up), our
//! in-dialog requests and their challenges, the peer's requests, and the timers.

use super::{
    inbound, Action, Effect, LegCore, LegEvent, Phase, Purpose, ReferSubscription, ReqId, Stop,
    Update, Us, BYE_WAIT, CANCEL_WAIT, MAX_AUTH_ANSWERS,
};
use crate::digest;
use crate::endpoint::{ClientEvent, Incoming};
use crate::header::NameAddr;
use crate::leg::outcome::ReferFailure;
use crate::message::{Message, Method};
use std::time::Instant;

impl LegCore {
    /// Stops a ringing INVITE: CANCEL now, or as soon as a provisional response shows that
    /// the INVITE arrived. The leg ends with [`LegEvent::Cancelled`] (or with the answer that
    /// crossed the CANCEL). Nothing happens once the INVITE has ended.
    pub fn cancel(&mut self, now: Instant) {
        self.start_cancel(Stop::User, now);
    }

    pub(super) fn start_cancel(&mut self, stop: Stop, now: Instant) {
        let Phase::Inviting {
            provisional,
            cancelling,
            cancel_sent,
            ..
        } = &mut self.phase
        else {
            return;
        };
        if cancelling.is_some() {
            return;
        }
        *cancelling = Some((stop, now + CANCEL_WAIT));
        if *provisional && !*cancel_sent {
            *cancel_sent = true;
            self.send_cancel();
        }
    }

    /// Ends the leg: BYE when the dialog is up (then [`LegEvent::Released`] once it is
    /// answered, or after [`BYE_WAIT`]), else [`LegEvent::Released`] at once. While the INVITE
    /// is still out it is cancelled first and released when it ends.
    pub fn hangup(&mut self, now: Instant) {
        match self.phase {
            Phase::Inviting { .. } => {
                self.release_wanted = true;
                self.cancel(now);
            }
            Phase::Releasing { .. } => {}
            Phase::Confirmed | Phase::Ended => {
                self.release_wanted = false;
                self.refer = None;
                let live = self.dialog.as_mut().filter(|_| !self.remote_gone);
                let Some(dialog) = live else {
                    return self.finish_release();
                };
                let mut bye = dialog.request(Method::Bye);
                let snapshot = dialog.clone();
                let dest = self.hop(&snapshot);
                self.stamp(&mut bye);
                self.send(Purpose::Bye, bye, dest);
                self.phase = Phase::Releasing {
                    until: now + BYE_WAIT,
                };
            }
        }
    }

    fn finish_release(&mut self) {
        self.phase = Phase::Ended;
        self.dialog = None;
        self.events.push_back(LegEvent::Released);
    }

    /// Our BYE is over (answered, failed or timed out).
    pub(super) fn released(&mut self) {
        if matches!(self.phase, Phase::Releasing { .. }) {
            self.finish_release();
        }
    }

    /// Sends REFER (`Refer-To: <to>`, `Referred-By` us) in the confirmed dialog; its outcome
    /// comes as [`LegEvent::ReferProgress`] and [`LegEvent::ReferDone`]. False when there is no
    /// dialog to send it in.
    pub fn refer(&mut self, to: &str) -> bool {
        if !matches!(self.phase, Phase::Confirmed) || self.remote_gone {
            return false;
        }
        let ours = NameAddr::parse(&self.setup.from)
            .map(|n| n.uri)
            .unwrap_or_default();
        let contact = self.contact.clone();
        let Some(dialog) = self.dialog.as_mut() else {
            return false;
        };
        let mut m = dialog.request(Method::Refer);
        let seq = dialog.local_seq;
        let snapshot = dialog.clone();
        let dest = self.hop(&snapshot);
        m.push("Contact", contact);
        m.push("Refer-To", format!("<{to}>"));
        m.push("Referred-By", format!("<{ours}>"));
        self.stamp(&mut m);
        self.send(Purpose::Refer, m, dest);
        self.refer = Some(ReferSubscription::new(seq, self.setup.notify_timeout));
        true
    }

    pub(super) fn refer_update(&mut self, f: impl FnOnce(&mut ReferSubscription) -> Update) {
        let Some(s) = self.refer.as_mut() else {
            return;
        };
        match f(s) {
            Update::None => {}
            Update::Progress { code, reason } => {
                self.events
                    .push_back(LegEvent::ReferProgress { code, reason });
            }
            Update::Done(result) => self.events.push_back(LegEvent::ReferDone(result)),
        }
    }

    /// An event of one of our in-dialog requests (PRACK, REFER, BYE).
    pub(super) fn on_dialog_event(
        &mut self,
        id: ReqId,
        purpose: Purpose,
        ev: ClientEvent,
        now: Instant,
    ) {
        let resp = match ev {
            ClientEvent::Response(resp) => resp,
            ClientEvent::Timeout | ClientEvent::TransportError(_) => {
                let detail = match &ev {
                    ClientEvent::TransportError(e) => e.to_string(),
                    _ => "no response to our REFER".to_owned(),
                };
                match purpose {
                    Purpose::Refer => self.refer_update(|s| s.on_no_response(detail)),
                    Purpose::Bye => self.released(),
                    _ => {}
                }
                return;
            }
        };
        let code = resp.code().unwrap_or(0);
        if code < 200 {
            return;
        }
        if matches!(code, 401 | 407) {
            match self.answer_in_dialog(id, &purpose, &resp) {
                Ok(()) => return,
                Err(detail) => {
                    let user = self.auth_user();
                    match purpose {
                        Purpose::Refer => {
                            return self
                                .refer_update(|s| s.fail(ReferFailure::Auth { user, detail }))
                        }
                        Purpose::Bye => return self.released(),
                        _ => return,
                    }
                }
            }
        }
        match purpose {
            Purpose::Refer => self.refer_update(|s| s.on_response(&resp, now)),
            Purpose::Bye => self.released(),
            _ => {}
        }
    }

    /// Sends request `id` again, with the dialog's next CSeq and the answer to the challenge in
    /// `resp`. `Err` says why it cannot.
    fn answer_in_dialog(
        &mut self,
        id: ReqId,
        purpose: &Purpose,
        resp: &Message,
    ) -> Result<(), String> {
        let Some((r, sent)) = self
            .requests
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| Some((r, r.sent.as_ref()?)))
        else {
            return Err("unknown request".into());
        };
        let method = sent.method().unwrap_or(Method::Bye);
        if r.auth_answers >= MAX_AUTH_ANSWERS || (r.auth_answers > 0 && !digest::is_stale(resp)) {
            return Err(format!(
                "{method} challenged again ({})",
                resp.code().unwrap_or(0)
            ));
        }
        let answers = r.auth_answers + 1;
        let sent = sent.clone();
        let (name, value) = digest::answer_challenge(&sent, resp, &self.setup.credentials)
            .map_err(|e| format!("cannot answer the challenge: {e}"))?;
        let dialog = match purpose {
            Purpose::Prack { tag } => self.early.iter_mut().find(|d| &d.remote_tag == tag),
            _ => self.dialog.as_mut(),
        }
        .ok_or_else(|| "the dialog has ended".to_owned())?;
        let mut again = dialog.request(method);
        let seq = dialog.local_seq;
        let snapshot = dialog.clone();
        let dest = self.hop(&snapshot);
        for (n, v) in &sent.headers {
            let rebuilt = matches!(
                n.as_str(),
                "Via"
                    | "Max-Forwards"
                    | "Route"
                    | "From"
                    | "To"
                    | "Call-ID"
                    | "CSeq"
                    | "Authorization"
                    | "Proxy-Authorization"
                    | "Content-Type"
                    | "Content-Length"
            );
            if !rebuilt {
                again.push(n, v.clone());
            }
        }
        again.push(name, value);
        if let Some(ct) = sent.header("Content-Type") {
            again.set_body(ct, sent.body.clone());
        }
        if *purpose == Purpose::Refer {
            if let Some(s) = self.refer.as_mut() {
                s.resent(seq);
            }
        }
        let new_id = self.send(purpose.clone(), again, dest);
        if let Some(r) = self.request_mut(new_id) {
            r.auth_answers = answers;
        }
        Ok(())
    }

    /// Something routed to the leg's Call-ID: a request of the peer (answered here), an ACK,
    /// or a response no transaction wanted (a late 2xx).
    pub fn on_incoming(&mut self, inc: Incoming, now: Instant) {
        match inc {
            Incoming::Request { key, msg } => {
                let us = Us {
                    contact: &self.contact,
                    ip: self.local.ip(),
                    server: self.setup.user_agent.as_deref(),
                };
                let (resp, effect) = inbound::answer(self.dialog.as_mut(), &msg, us);
                self.actions.push_back(Action::Respond { key, msg: resp });
                match effect {
                    Effect::HungUp if !self.remote_gone => {
                        self.remote_gone = true;
                        if matches!(self.phase, Phase::Confirmed) {
                            self.events.push_back(LegEvent::HungUp);
                        }
                    }
                    Effect::Notify(n) => {
                        if self.refer.as_ref().is_some_and(|s| s.concerns(&msg)) {
                            self.refer_update(|s| s.on_notify(&n, now));
                        }
                    }
                    Effect::HungUp | Effect::None => {}
                }
            }
            // The shell hands client transaction events to `on_client`.
            Incoming::Ack(_) | Incoming::Client { .. } => {}
            Incoming::StrayResponse(resp) => {
                let invite_2xx = resp.cseq().is_some_and(|c| c.method == Method::Invite)
                    && resp.code().is_some_and(|c| (200..300).contains(&c));
                if invite_2xx {
                    self.on_late_2xx(&resp);
                }
            }
        }
    }

    /// Runs what is due: the ring timeout (CANCEL), the end of the wait after CANCEL, the
    /// notify timeout of a REFER, the end of the wait for our BYE's answer.
    pub fn on_timer(&mut self, now: Instant) {
        self.on_failover_deadline(now);
        match self.phase {
            Phase::Inviting {
                cancelling: None, ..
            } if now >= self.ring_deadline => self.start_cancel(Stop::RingTimeout, now),
            Phase::Inviting {
                cancelling: Some((stop, until)),
                ..
            } if now >= until => {
                // Neither a 1xx to CANCEL against nor a final answer: give up.
                self.cancelled(stop, now);
            }
            Phase::Releasing { until } if now >= until => self.finish_release(),
            _ => {}
        }
        self.refer_update(|s| s.on_timer(now));
    }

    /// The SIP endpoint stopped: the leg is over.
    pub fn on_endpoint_gone(&mut self) {
        if matches!(self.phase, Phase::Ended) && self.dialog.is_none() {
            return;
        }
        self.phase = Phase::Ended;
        self.dialog = None;
        self.refer = None;
        self.events.push_back(LegEvent::Stopped);
    }
}
