//! The call leg's state machine, sans-I/O: it is told what arrived (responses of its
//! transactions, requests routed to its Call-ID, timers, the driver's commands) with the time,
//! and answers with [`Action`]s for the transport and [`LegEvent`]s for the driver. The async
//! shell ([`super::Leg`]) only moves these; tests drive the core with made-up messages and a
//! virtual clock.
//!
//! An outgoing leg: INVITE (digest answers, failover to the next target while nothing
//! answered), provisional responses (PRACK for reliable ones, RFC 3262), CANCEL on request or
//! after the ring timeout, ACK of the 2xx (again for each retransmission; a 2xx of another
//! fork, or one that arrives after we gave up, is ACKed and ended with BYE), then the dialog:
//! requests of the peer answered ([`super::inbound`]), REFER with its subscription
//! ([`super::subscription`]), BYE with a bounded wait.

use super::inbound::{self, Effect, Us};
use super::outcome::{LegFailure, ReferFailure};
use super::prack::{self, Reliable, ReliableOrder};
use super::subscription::{ReferDone, ReferSubscription, Update};
use super::LegSetup;

mod in_dialog;
mod invite;
use crate::dialog::Dialog;
use crate::endpoint::ClientEvent;
use crate::header::Uri;
use crate::message::{Message, Method};
use crate::resolve::{Failover, Target, Transport};
use crate::transaction::TxKey;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long to wait for the answer to our BYE before the leg counts as released anyway.
pub const BYE_WAIT: Duration = Duration::from_secs(4);
/// How long to wait, once we want to cancel, for a 1xx to CANCEL against and then for the
/// INVITE's final answer.
pub const CANCEL_WAIT: Duration = Duration::from_secs(32);
/// INVITEs one leg sends at most (challenges answered, next targets tried: a resolver hands
/// out at most 16 targets).
pub const MAX_ATTEMPTS: u32 = 20;
/// Challenges one request answers at most (a second only when the first answer was stale).
const MAX_AUTH_ANSWERS: u32 = 2;

/// A client request of the leg, as the transport knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReqId(pub u64);

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// This target.
    Target(Target),
    /// The next hop of a dialog, to be resolved; `fallback` when it does not resolve.
    Hop {
        /// The URI of the hop (first Route, or the remote target).
        uri: Uri,
        /// The leg's own target.
        fallback: Target,
    },
}

/// What the leg asks of the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `msg` in a new client transaction; report with [`LegCore::on_sent`] or
    /// [`LegCore::on_send_failed`], then its events with [`LegCore::on_client`].
    Send {
        /// The leg's name for the transaction.
        id: ReqId,
        /// The request (the transport adds Via).
        msg: Message,
        /// Where.
        dest: Dest,
    },
    /// Send `msg` without a transaction (ACK of a 2xx; a PRACK sent again as it was).
    Resend {
        /// The message.
        msg: Message,
        /// Where.
        dest: Dest,
    },
    /// Answer a request routed to the leg.
    Respond {
        /// Its server transaction.
        key: TxKey,
        /// The response.
        msg: Message,
    },
}

/// What the leg tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    /// A provisional response other than 100 (a reliable one once, not its retransmissions).
    Progress {
        /// Status.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The INVITE was answered and ACKed: the dialog is up.
    Answered,
    /// The INVITE failed (this includes the ring timeout). When a 2xx crossed our CANCEL the
    /// dialog is up nonetheless: release the leg.
    Failed(LegFailure),
    /// The INVITE ended after [`LegCore::cancel`] (release the leg: a 2xx may have crossed).
    Cancelled,
    /// The peer hung up (BYE).
    HungUp,
    /// A provisional sipfrag of the REFER's subscription.
    ReferProgress {
        /// Status.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The REFER's outcome.
    ReferDone(Result<ReferDone, ReferFailure>),
    /// The leg holds nothing any more: our BYE was answered (or not within [`BYE_WAIT`]), or
    /// there was nothing to release.
    Released,
    /// The SIP endpoint stopped: nothing more can happen.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    Invite,
    Cancel,
    Prack { tag: String },
    Refer,
    Bye,
    Other,
}

#[derive(Debug)]
struct Request {
    id: ReqId,
    purpose: Purpose,
    /// As sent (with the transport's Via); `None` until the transport took it (the one copy
    /// built travels in [`Action::Send`] and comes back through [`LegCore::on_sent`]).
    sent: Option<Message>,
    auth_answers: u32,
    finished: bool,
    /// Sent once more (a PRACK whose reliable response came again).
    resent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    User,
    RingTimeout,
}

#[derive(Debug)]
enum Phase {
    Inviting {
        provisional: bool,
        any_response: bool,
        cancelling: Option<(Stop, Instant)>,
        cancel_sent: bool,
    },
    Confirmed,
    Releasing {
        until: Instant,
    },
    Ended,
}

/// One outgoing call leg.
#[derive(Debug)]
pub struct LegCore {
    setup: LegSetup,
    /// Which target the INVITE goes to, and when to move on (RFC 3263 §4.3).
    failover: Failover,
    /// Our local address towards each target.
    locals: Vec<(Target, SocketAddr)>,
    target: Target,
    local: SocketAddr,
    contact: String,
    next_id: u64,
    requests: Vec<Request>,
    actions: VecDeque<Action>,
    events: VecDeque<LegEvent>,
    phase: Phase,
    invite_seq: u32,
    invite_id: ReqId,
    auth: Option<(&'static str, String)>,
    attempts: u32,
    placed: bool,
    early: Vec<Dialog>,
    order: ReliableOrder,
    dialog: Option<Dialog>,
    remote_gone: bool,
    refer: Option<ReferSubscription>,
    ring_deadline: Instant,
    release_wanted: bool,
}

fn contact_for(user: &str, local: SocketAddr, transport: Transport) -> String {
    let host = match local.ip() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        std::net::IpAddr::V4(v4) => v4.to_string(),
    };
    let tp = transport
        .uri_param()
        .map(|t| format!(";transport={t}"))
        .unwrap_or_default();
    format!("<sip:{user}@{host}:{}{tp}>", local.port())
}

impl LegCore {
    /// A leg that INVITEs `targets` (best first, each with our local address towards it) and
    /// sends its first INVITE now. `targets` must not be empty.
    pub fn new(setup: LegSetup, targets: Vec<(Target, SocketAddr)>, now: Instant) -> LegCore {
        let mut locals = targets;
        if locals.is_empty() {
            locals.push((
                Target {
                    transport: setup.transport,
                    addr: SocketAddr::from(([127, 0, 0, 1], 5060)),
                },
                SocketAddr::from(([127, 0, 0, 1], 0)),
            ));
        }
        let (target, local) = locals[0];
        let failover = Failover::new(
            locals.iter().map(|(t, _)| *t).collect(),
            setup.failover_silence,
        );
        // Invariant: `locals` is not empty (filled above), so `Failover::new` gave one.
        let failover = failover.expect("a leg always has a target");
        let ring_deadline = now + setup.ring_timeout;
        let contact = contact_for(&setup.contact_user, local, target.transport);
        let mut core = LegCore {
            setup,
            failover,
            locals,
            target,
            local,
            contact,
            next_id: 0,
            requests: Vec::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            phase: Phase::Inviting {
                provisional: false,
                any_response: false,
                cancelling: None,
                cancel_sent: false,
            },
            invite_seq: 1,
            invite_id: ReqId(0),
            auth: None,
            attempts: 0,
            placed: false,
            early: Vec::new(),
            order: ReliableOrder::default(),
            dialog: None,
            remote_gone: false,
            refer: None,
            ring_deadline,
            release_wanted: false,
        };
        core.send_invite(now);
        core
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        &self.setup.call_id
    }

    /// True once the first INVITE went out (the call exists).
    pub fn placed(&self) -> bool {
        self.placed
    }

    /// The target the INVITE went to (the fallback for in-dialog requests).
    pub fn target(&self) -> Target {
        self.target
    }

    /// The transport for hops that do not name one.
    pub fn transport(&self) -> Transport {
        self.setup.transport
    }

    /// The confirmed dialog, while it is up.
    pub fn dialog(&self) -> Option<&Dialog> {
        self.dialog.as_ref()
    }

    /// True once the peer hung up.
    pub fn remote_gone(&self) -> bool {
        self.remote_gone
    }

    /// True once the current REFER was accepted (its 2xx, or a NOTIFY).
    pub fn refer_accepted(&self) -> bool {
        self.refer.as_ref().is_some_and(ReferSubscription::accepted)
    }

    /// True while the INVITE is being cancelled (on request or after the ring timeout).
    pub fn cancelling(&self) -> bool {
        matches!(
            self.phase,
            Phase::Inviting {
                cancelling: Some(_),
                ..
            }
        )
    }

    /// The next action for the transport.
    pub fn pop_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for the driver.
    pub fn pop_event(&mut self) -> Option<LegEvent> {
        self.events.pop_front()
    }

    /// When [`Self::on_timer`] wants to run next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Inviting {
                cancelling: Some((_, until)),
                ..
            } => Some(*until),
            Phase::Inviting { .. } => {
                let silent = self.failover.deadline();
                Some(silent.map_or(self.ring_deadline, |s| s.min(self.ring_deadline)))
            }
            Phase::Releasing { until } => Some(*until),
            Phase::Confirmed | Phase::Ended => None,
        };
        let refer = self.refer.as_ref().and_then(ReferSubscription::deadline);
        phase.into_iter().chain(refer).min()
    }

    fn new_id(&mut self) -> ReqId {
        self.next_id += 1;
        ReqId(self.next_id)
    }

    fn stamp(&self, m: &mut Message) {
        if let Some(ua) = &self.setup.user_agent {
            m.push("User-Agent", ua.clone());
        }
    }

    fn request_mut(&mut self, id: ReqId) -> Option<&mut Request> {
        self.requests.iter_mut().find(|r| r.id == id)
    }

    fn send(&mut self, purpose: Purpose, msg: Message, dest: Dest) -> ReqId {
        let id = self.new_id();
        self.requests.push(Request {
            id,
            purpose,
            sent: None,
            auth_answers: 0,
            finished: false,
            resent: false,
        });
        self.actions.push_back(Action::Send { id, msg, dest });
        id
    }

    fn hop(&self, dialog: &Dialog) -> Dest {
        match dialog.next_hop() {
            Some(uri) => Dest::Hop {
                uri,
                fallback: self.target,
            },
            None => Dest::Target(self.target),
        }
    }

    fn build_invite(&self) -> Message {
        let s = &self.setup;
        let mut m = Message::request(Method::Invite, s.request_uri.clone());
        m.push("Max-Forwards", "70");
        if let Some(r) = &s.route {
            m.push("Route", r.clone());
        }
        m.push("From", s.from.clone());
        m.push("To", format!("<{}>", s.request_uri));
        m.push("Call-ID", s.call_id.clone());
        m.push("CSeq", format!("{} INVITE", self.invite_seq));
        m.push("Contact", self.contact.clone());
        m.push("Allow", crate::ALLOW);
        m.push(
            "Supported",
            if s.prack {
                "replaces, 100rel"
            } else {
                "replaces"
            },
        );
        for (n, v) in &s.headers {
            m.push(n, v.clone());
        }
        if let Some((n, v)) = &self.auth {
            m.push(n, v.clone());
        }
        self.stamp(&mut m);
        m.set_body(
            "application/sdp",
            super::sdp::sdp(self.local.ip(), None).into_bytes(),
        );
        m
    }

    /// Sends the INVITE (again: to the next target, or with credentials). Each attempt is a
    /// transaction of its own: what its predecessor heard does not count for it.
    fn send_invite(&mut self, now: Instant) {
        self.attempts += 1;
        self.failover.sent(now);
        self.early.clear();
        self.order.clear();
        if let Phase::Inviting {
            provisional,
            any_response,
            cancel_sent,
            ..
        } = &mut self.phase
        {
            *provisional = false;
            *any_response = false;
            *cancel_sent = false;
        }
        let invite = self.build_invite();
        self.invite_id = self.send(Purpose::Invite, invite, Dest::Target(self.target));
    }

    /// The transport sent request `id` as `sent` (with its Via).
    pub fn on_sent(&mut self, id: ReqId, sent: Message) {
        if id == self.invite_id {
            self.placed = true;
        }
        if let Some(r) = self.request_mut(id) {
            r.sent = Some(sent);
        }
    }

    /// The transport could not send request `id`.
    pub fn on_send_failed(&mut self, id: ReqId, detail: String, now: Instant) {
        let Some(pos) = self.requests.iter().position(|r| r.id == id) else {
            return;
        };
        let r = self.requests.remove(pos);
        match r.purpose {
            Purpose::Invite if id == self.invite_id => {
                self.fail(LegFailure::Unreachable(detail), now);
            }
            Purpose::Refer => self.refer_update(|s| s.on_no_response(detail)),
            Purpose::Bye => self.released(),
            _ => {}
        }
    }

    /// An event of request `id`'s transaction.
    pub fn on_client(&mut self, id: ReqId, ev: ClientEvent, now: Instant) {
        let Some(purpose) = self
            .requests
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.purpose.clone())
        else {
            return;
        };
        let terminal = match &ev {
            ClientEvent::Response(resp) => resp.code().is_some_and(|c| c >= 200),
            ClientEvent::Timeout | ClientEvent::TransportError(_) => true,
        };
        if terminal {
            if let Some(r) = self.request_mut(id) {
                r.finished = true;
            }
        }
        match purpose {
            Purpose::Invite => self.on_invite_event(id, ev, now),
            Purpose::Cancel | Purpose::Other => {}
            Purpose::Prack { .. } | Purpose::Bye | Purpose::Refer => {
                self.on_dialog_event(id, purpose, ev, now);
            }
        }
    }

    /// Request `id`'s transaction will report nothing more.
    pub fn on_tx_closed(&mut self, id: ReqId, now: Instant) {
        let Some(pos) = self.requests.iter().position(|r| r.id == id) else {
            return;
        };
        let r = self.requests.remove(pos);
        if r.finished {
            return;
        }
        match r.purpose {
            Purpose::Invite if id == self.invite_id => self.on_invite_silence(
                "the INVITE transaction ended without a final response".into(),
                now,
            ),
            Purpose::Refer => self.refer_update(|s| {
                s.on_no_response("the REFER transaction ended without a final response".into())
            }),
            Purpose::Bye => self.released(),
            _ => {}
        }
    }

    fn fail(&mut self, failure: LegFailure, now: Instant) {
        self.phase = Phase::Ended;
        self.events.push_back(LegEvent::Failed(failure));
        self.after_invite(now);
    }

    /// The INVITE ended while we were cancelling.
    fn cancelled(&mut self, stop: Stop, now: Instant) {
        // The ring time ran out while nothing at all had answered (not even 100 Trying): the
        // far end never heard the call (a dead host whose ICMP errors are filtered), so it is
        // unreachable, not a call nobody answered (issue 16.5).
        if let (
            Stop::RingTimeout,
            Phase::Inviting {
                any_response: false,
                ..
            },
        ) = (stop, &self.phase)
        {
            let detail = format!(
                "no response from {} within {} s",
                self.target.addr,
                self.setup.ring_timeout.as_secs()
            );
            return self.fail(LegFailure::Unreachable(detail), now);
        }
        self.phase = if self.dialog.is_some() {
            Phase::Confirmed
        } else {
            Phase::Ended
        };
        self.events.push_back(match stop {
            Stop::User => LegEvent::Cancelled,
            Stop::RingTimeout => LegEvent::Failed(LegFailure::NoAnswer {
                secs: self.setup.ring_timeout.as_secs(),
            }),
        });
        self.after_invite(now);
    }

    /// A release asked for while the INVITE was still out happens once it ended.
    fn after_invite(&mut self, now: Instant) {
        if self.release_wanted {
            self.hangup(now);
        }
    }

    fn auth_user(&self) -> String {
        self.setup.credentials.username.clone()
    }
}
