//! The call tracker of one phone, sans I/O: phone events in (Action URLs and uaCSTA events),
//! driver events out.
//!
//! Calls are told apart by `$csta_id` and `$call-id`. A phone restarts its CSTA numbering at 1
//! when it boots, so a CSTA id alone is not a call's identity: an event whose `$call-id`
//! differs from the one known for that CSTA id is another call, and the keys of ended calls
//! are forgotten when the phone reports a start (`setup`) or an identity logging on. An event
//! without either key applies only when the phone has exactly one call; otherwise it is
//! ignored rather than guessed. The phone's quirks are absorbed here: a second `disconnected`
//! for a call already ended, a `missed` after `disconnected`, `onhook`/`offhook` without call
//! data.
//!
//! Ends follow the project's failed-call rule: a call that ends on the phone's side is
//! reported `Disconnected(mode)` and forgotten at once (it holds nothing here); the
//! application's Drop then makes it Idle. Just before the ending state (`Busy`,
//! `Disconnected`) the call's info carries the cause in words ([`Cause`]): the CSTA event and
//! its cause when the phone said why, else a sentence saying what the phone reported. Calls
//! the application dropped, and calls that left the phone by a transfer or a deflection, go
//! straight to Idle.

mod apply;
mod modes;
#[cfg(test)]
mod tests;

pub use modes::{cause_mode, said, Cause};

use crate::action::{user_part, Vars};
use std::collections::VecDeque;
use tapir_core::{
    AddressId, AddressStatus, CallDirection, CallId, CallInfo, CallState, DisconnectMode,
    DriverEvent, LineKey, Party,
};

/// Most calls tracked per phone; a phone shows a handful at most.
pub const MAX_CALLS: usize = 8;
/// How many ended calls are remembered to swallow repeated events.
const ENDED_MEMORY: usize = 16;

/// One call the driver shows for the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// The host's id.
    pub id: CallId,
    /// `$csta_id`, once known.
    pub csta: Option<String>,
    /// `$call-id`, once known.
    pub sip: Option<String>,
    /// The state as last reported.
    pub state: CallState,
    /// The info as last reported.
    pub info: CallInfo,
    /// The host asked to drop it: its end is reported as Idle without Disconnected.
    pub dropping: bool,
    /// Held for a transfer set up by the host.
    pub pending_transfer: bool,
    /// It was connected at some point (an unanswered incoming call that ends was missed).
    pub answered: bool,
    /// Why it failed, when the phone said so (uaCSTA `FailedEvent`/`ConnectionClearedEvent`
    /// cause; the first one told); used when it ends.
    pub cause: Option<Cause>,
}

/// The keys of an ended call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EndedKeys {
    csta: Option<String>,
    sip: Option<String>,
}

/// What the tracker needs from the outside: fresh call ids.
pub trait Ids {
    /// A new call id for a call the phone started.
    fn new_call(&mut self) -> CallId;
}

impl<F: FnMut() -> CallId> Ids for F {
    fn new_call(&mut self) -> CallId {
        self()
    }
}

/// Line-level news besides call events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineNews {
    /// Nothing.
    None,
    /// The phone rebooted: check its configuration.
    Rebooted,
    /// Registration works again.
    Registered,
    /// Registration failed or the identity logged off.
    Unregistered,
}

/// The calls and address state of one phone.
#[derive(Debug, Default)]
pub struct CallTracker {
    calls: Vec<Tracked>,
    ended: VecDeque<EndedKeys>,
    /// A call the host placed (MakeCall, or the consultation call of SetupTransfer) that the
    /// phone has not reported yet: the next new outgoing call is this one.
    pending_make: Option<CallId>,
    /// The held call and its consultation call, after SetupTransfer.
    transfer: Option<(CallId, CallId)>,
    address: AddressStatus,
    /// `user@host` of each identity (address 0 = identity 1), to tell which address a call
    /// belongs to.
    identities: Vec<String>,
}

impl CallTracker {
    /// The calls shown now.
    pub fn calls(&self) -> &[Tracked] {
        &self.calls
    }

    /// One call.
    pub fn get(&self, id: CallId) -> Option<&Tracked> {
        self.calls.iter().find(|c| c.id == id)
    }

    fn get_mut(&mut self, id: CallId) -> Option<&mut Tracked> {
        self.calls.iter_mut().find(|c| c.id == id)
    }

    /// The calls that exist on the phone (not virtual dial-tone calls).
    pub fn live(&self) -> impl Iterator<Item = &Tracked> {
        self.calls
            .iter()
            .filter(|c| !matches!(c.state, CallState::Dialtone(_)) || c.csta.is_some())
    }

    /// The forwarding and DND state as last known.
    pub fn address(&self) -> &AddressStatus {
        &self.address
    }

    /// The held call and consultation call of a pending transfer.
    pub fn transfer(&self) -> Option<(CallId, CallId)> {
        self.transfer
    }

    /// Sets the phone's identities (`sip:user@host`, identity 1 first).
    pub fn set_identities(&mut self, identities: &[String]) {
        self.identities = identities
            .iter()
            .map(|i| i.trim_start_matches("sip:").to_owned())
            .collect();
    }

    /// The host placed a call from `address`: reports it Dialing (or Dialtone without a
    /// number) and binds the phone's next outgoing call to it.
    pub fn start_make(
        &mut self,
        line: &LineKey,
        id: CallId,
        address: AddressId,
        dialtone: bool,
    ) -> Vec<DriverEvent> {
        self.pending_make = Some(id);
        let state = if dialtone {
            CallState::Dialtone(tapir_core::DialToneMode::Normal)
        } else {
            CallState::Dialing
        };
        self.calls.retain(|c| c.id != id);
        self.calls.push(Tracked {
            id,
            csta: None,
            sip: None,
            state,
            info: CallInfo {
                direction: CallDirection::Outgoing,
                address,
                ..CallInfo::default()
            },
            dropping: false,
            pending_transfer: false,
            answered: false,
            cause: None,
        });
        vec![DriverEvent::CallState {
            line: line.clone(),
            call: id,
            state,
        }]
    }

    /// A digit string was sent to a dial-tone call: it is Dialing now.
    pub fn dialing(&mut self, line: &LineKey, id: CallId) -> Vec<DriverEvent> {
        self.pending_make = Some(id);
        self.set_state(line, id, CallState::Dialing)
    }

    /// The phone named the CSTA id of a call the host placed (uaCSTA `MakeCall` answer).
    pub fn bind_csta(&mut self, id: CallId, csta: &str) {
        if let Some(c) = self.get_mut(id) {
            c.csta = Some(csta.to_owned());
        }
    }

    /// The host's call could not be placed: forget it (the front end forgets it too, after
    /// an Idle). The call was shown Dialing already: its info tells `why` first.
    pub fn abort_make(&mut self, line: &LineKey, id: CallId, why: &str) -> Vec<DriverEvent> {
        if self.pending_make == Some(id) {
            self.pending_make = None;
        }
        let Some(pos) = self.calls.iter().position(|c| c.id == id) else {
            return Vec::new();
        };
        let call = self.calls.remove(pos);
        cause_info(line, &call, why).into_iter().collect()
    }

    /// Digits sent to a dial-tone call did not go out (the phone refused the command): the
    /// call is back at dial tone, where it was, and may be dialled again or dropped.
    pub fn dial_failed(&mut self, line: &LineKey, id: CallId) -> Vec<DriverEvent> {
        match self.get(id).map(|c| c.state) {
            Some(CallState::Dialing) => self.set_state(
                line,
                id,
                CallState::Dialtone(tapir_core::DialToneMode::Normal),
            ),
            _ => Vec::new(),
        }
    }

    /// The host asked to drop `id`.
    pub fn mark_dropping(&mut self, id: CallId) {
        if let Some(c) = self.get_mut(id) {
            c.dropping = true;
        }
    }

    /// The drop request failed: the call keeps its state, and when it ends later it ends like
    /// any other (Disconnected, then Idle on the application's Drop).
    pub fn unmark_dropping(&mut self, id: CallId) {
        if let Some(c) = self.get_mut(id) {
            c.dropping = false;
        }
    }

    /// The host set up a transfer: `held` will be held pending transfer, `consult` is new.
    pub fn start_transfer(&mut self, held: CallId) {
        if let Some(c) = self.get_mut(held) {
            c.pending_transfer = true;
        }
    }

    /// The transfer could not be set up: `held` is an ordinary call again.
    pub fn cancel_transfer(&mut self, held: CallId) {
        if let Some(c) = self.get_mut(held) {
            c.pending_transfer = false;
        }
    }

    /// Links the consultation call once it exists.
    pub fn link_transfer(&mut self, held: CallId, consult: CallId) {
        self.transfer = Some((held, consult));
    }

    /// Ends a call. `cause` `Some`: the phone ended it (Disconnected, unless the host dropped
    /// it: then Idle), for the reason the phone gave earlier if it gave one, else for
    /// `cause`; the words go in the call's info just before the state. `None`: it left the
    /// phone by a transfer or deflection (Idle). The call is forgotten either way.
    pub fn end(&mut self, line: &LineKey, id: CallId, cause: Option<Cause>) -> Vec<DriverEvent> {
        let Some(pos) = self.calls.iter().position(|c| c.id == id) else {
            return Vec::new();
        };
        let call = self.calls.remove(pos);
        self.remember_ended(&call);
        if self.pending_make == Some(id) {
            self.pending_make = None;
        }
        if matches!(self.transfer, Some((a, b)) if a == id || b == id) {
            self.transfer = None;
        }
        let (state, words) = match cause {
            Some(given) if !call.dropping => {
                let why = call.cause.clone().unwrap_or(given);
                (CallState::Disconnected(why.mode), Some(why.words))
            }
            _ => (CallState::Idle, None),
        };
        if call.state == state {
            return Vec::new();
        }
        let mut out: Vec<DriverEvent> = words
            .and_then(|w| cause_info(line, &call, &w))
            .into_iter()
            .collect();
        out.push(DriverEvent::CallState {
            line: line.clone(),
            call: id,
            state,
        });
        out
    }

    /// Puts `words` in the call's info; the event when that changed it.
    fn tell_cause(&mut self, line: &LineKey, id: CallId, words: &str) -> Vec<DriverEvent> {
        let Some(c) = self.get_mut(id) else {
            return Vec::new();
        };
        let event = cause_info(line, c, words);
        if event.is_some() {
            c.info.cause = Some(words.to_owned());
        }
        event.into_iter().collect()
    }

    /// A call the application drops that the phone no longer has (it ended and was
    /// reported Disconnected, or was never placed): Idle.
    pub fn idle(line: &LineKey, id: CallId) -> Vec<DriverEvent> {
        vec![DriverEvent::CallState {
            line: line.clone(),
            call: id,
            state: CallState::Idle,
        }]
    }

    /// Ends every call (the phone rebooted).
    pub fn end_all(&mut self, line: &LineKey) -> Vec<DriverEvent> {
        let ids: Vec<CallId> = self.calls.iter().map(|c| c.id).collect();
        self.end_each(line, ids, said::RESTARTED)
    }

    /// Ends `ids` for a reason the phone did not give (mode Unknown), in `words`.
    fn end_each(&mut self, line: &LineKey, ids: Vec<CallId>, words: &str) -> Vec<DriverEvent> {
        ids.into_iter()
            .flat_map(|id| self.end(line, id, Some(Cause::new(DisconnectMode::Unknown, words))))
            .collect()
    }

    /// The phone says it has no call left (`$nr_ongoing_calls` = 0): ends the calls it had
    /// reported. A call the host placed that the phone has not reported yet is spared: the
    /// report may be older than the dial command.
    fn end_reported(&mut self, line: &LineKey) -> Vec<DriverEvent> {
        let ids: Vec<CallId> = self
            .calls
            .iter()
            .filter(|c| c.csta.is_some() || c.sip.is_some())
            .map(|c| c.id)
            .collect();
        self.end_each(line, ids, said::NONE_LEFT)
    }

    /// Keeps only the calls whose CSTA id is in `present`; calls without a CSTA id are kept
    /// unless the phone has no call at all. Returns the events of the calls cleared.
    pub fn retain_snapshot(&mut self, line: &LineKey, present: &[String]) -> Vec<DriverEvent> {
        let gone: Vec<CallId> = self
            .live()
            .filter(|c| match &c.csta {
                Some(id) => !present.contains(id),
                None => present.is_empty() && !c.state.is_outgoing_setup(),
            })
            .map(|c| c.id)
            .collect();
        self.end_each(line, gone, said::NOT_IN_SNAPSHOT)
    }

    fn set_state(&mut self, line: &LineKey, id: CallId, state: CallState) -> Vec<DriverEvent> {
        match self.get_mut(id) {
            Some(c) if c.state != state => {
                c.state = state;
                if state == CallState::Connected {
                    c.answered = true;
                }
                vec![DriverEvent::CallState {
                    line: line.clone(),
                    call: id,
                    state,
                }]
            }
            _ => Vec::new(),
        }
    }

    fn remember_ended(&mut self, call: &Tracked) {
        if call.csta.is_none() && call.sip.is_none() {
            return;
        }
        if self.ended.len() == ENDED_MEMORY {
            self.ended.pop_front();
        }
        self.ended.push_back(EndedKeys {
            csta: call.csta.clone(),
            sip: call.sip.clone(),
        });
    }

    /// Whether the event is about a call already ended. A `$call-id` decides when the event
    /// has one (a CSTA id reused after a reboot comes with a new Call-ID); without it, the
    /// CSTA id does.
    fn was_ended(&self, vars: &Vars) -> bool {
        let (csta, sip) = (vars.csta(), vars.sip_call_id());
        self.ended.iter().any(|e| match (sip, csta) {
            (Some(s), _) if e.sip.is_some() => e.sip.as_deref() == Some(s),
            (_, Some(c)) => e.csta.as_deref() == Some(c),
            _ => false,
        })
    }

    /// Whether `call` is the call the keys of `vars` name. A Call-ID decides when both sides
    /// know one; otherwise the CSTA id.
    fn same(call: &Tracked, csta: Option<&str>, sip: Option<&str>) -> bool {
        match (sip, call.sip.as_deref()) {
            (Some(a), Some(b)) => a == b,
            _ => csta.is_some() && call.csta.as_deref() == csta,
        }
    }

    /// Which call an event is about: by key, or the only call when the event has no key.
    fn find(&self, vars: &Vars) -> Option<CallId> {
        let (csta, sip) = (vars.csta(), vars.sip_call_id());
        if csta.is_some() || sip.is_some() {
            return self
                .calls
                .iter()
                .find(|c| Self::same(c, csta, sip))
                .map(|c| c.id);
        }
        let mut live = self.live();
        match (live.next(), live.next()) {
            (Some(only), None) => Some(only.id),
            _ => None,
        }
    }

    /// Calls still shown under the CSTA id of `vars` but with another Call-ID: the phone
    /// restarted its numbering (a reboot the driver did not hear of), so they are gone.
    fn end_stale(&mut self, line: &LineKey, vars: &Vars) -> Vec<DriverEvent> {
        let (Some(csta), Some(sip)) = (vars.csta(), vars.sip_call_id()) else {
            return Vec::new();
        };
        let stale: Vec<CallId> = self
            .calls
            .iter()
            .filter(|c| {
                c.csta.as_deref() == Some(csta) && c.sip.as_deref().is_some_and(|s| s != sip)
            })
            .map(|c| c.id)
            .collect();
        self.end_each(line, stale, said::ID_REUSED)
    }

    fn has_key(vars: &Vars) -> bool {
        vars.csta().is_some() || vars.sip_call_id().is_some()
    }

    fn learn_keys(&mut self, id: CallId, vars: &Vars) {
        if let Some(c) = self.get_mut(id) {
            if let Some(k) = vars.csta() {
                c.csta = Some(k.to_owned());
            }
            if let Some(k) = vars.sip_call_id() {
                c.sip = Some(k.to_owned());
            }
        }
    }

    /// The address (identity) a call belongs to: `$local` (`user@host` of the call's
    /// identity), else `$active_user`, matched against the identities; address 0 when
    /// neither matches.
    fn address_of(&self, vars: &Vars) -> Option<AddressId> {
        let index = |pred: &dyn Fn(&str) -> bool| {
            self.identities
                .iter()
                .position(|i| pred(i))
                .map(|i| AddressId(i as u32))
        };
        if let Some(local) = vars.get("local") {
            let local = local.trim_start_matches("sip:");
            if let Some(a) = index(&|i: &str| i.eq_ignore_ascii_case(local)) {
                return Some(a);
            }
            let user = user_part(local);
            if let Some(a) = index(&|i: &str| user_part(i) == user) {
                return Some(a);
            }
        }
        let user = vars.get("user")?;
        index(&|i: &str| user_part(i) == user)
    }

    fn new_call(
        &mut self,
        line: &LineKey,
        ids: &mut dyn Ids,
        vars: &Vars,
        state: CallState,
        direction: CallDirection,
    ) -> Vec<DriverEvent> {
        if self.calls.len() >= MAX_CALLS {
            tracing::warn!(line = %line, "More calls than a phone carries; event ignored.");
            return Vec::new();
        }
        let id = ids.new_call();
        let mut info = info_from(vars, direction, &CallInfo::default());
        info.address = self.address_of(vars).unwrap_or_default();
        self.calls.push(Tracked {
            id,
            csta: vars.csta().map(str::to_owned),
            sip: vars.sip_call_id().map(str::to_owned),
            state,
            info: info.clone(),
            dropping: false,
            pending_transfer: false,
            answered: state == CallState::Connected,
            cause: None,
        });
        vec![DriverEvent::NewCall {
            line: line.clone(),
            call: id,
            state,
            info,
        }]
    }

    fn update_info(&mut self, line: &LineKey, id: CallId, vars: &Vars) -> Vec<DriverEvent> {
        let address = self.address_of(vars);
        let Some(c) = self.get_mut(id) else {
            return Vec::new();
        };
        let mut info = info_from(vars, c.info.direction, &c.info);
        if let (Some(a), CallDirection::Incoming) = (address, c.info.direction) {
            info.address = a;
        }
        if info == c.info {
            return Vec::new();
        }
        c.info = info.clone();
        vec![DriverEvent::CallInfo {
            line: line.clone(),
            call: id,
            info,
        }]
    }

    /// Sets the address state after a successful write; an event when it changed.
    pub fn set_address(&mut self, line: &LineKey, status: AddressStatus) -> Vec<DriverEvent> {
        if self.address == status {
            return Vec::new();
        }
        self.address = status;
        vec![self.address_event(line)]
    }

    /// The address state as an event.
    pub fn address_event(&self, line: &LineKey) -> DriverEvent {
        DriverEvent::AddressState {
            line: line.clone(),
            address: AddressId(0),
            status: self.address.clone(),
        }
    }
}

/// The call's info with `words` as its cause, unless it says that already.
fn cause_info(line: &LineKey, call: &Tracked, words: &str) -> Option<DriverEvent> {
    if call.info.cause.as_deref() == Some(words) {
        return None;
    }
    let mut info = call.info.clone();
    info.cause = Some(words.to_owned());
    Some(DriverEvent::CallInfo {
        line: line.clone(),
        call: call.id,
        info,
    })
}

fn party(uri: &str, name: Option<&str>) -> Party {
    let mut p = Party::number(user_part(uri));
    if let Some(name) = name {
        p = p.with_name(name);
    }
    p
}

/// The call info an event tells, on top of what was known.
fn info_from(vars: &Vars, direction: CallDirection, known: &CallInfo) -> CallInfo {
    let mut info = known.clone();
    info.direction = direction;
    let remote = vars.get("remote").map(|r| party(r, vars.get("name")));
    let local = vars.get("local").map(|l| Party::number(user_part(l)));
    match direction {
        CallDirection::Incoming => {
            if let Some(r) = remote.clone() {
                info.calling = r;
            }
            if let Some(l) = local {
                info.called = l;
            }
        }
        _ => {
            if let Some(r) = remote.clone() {
                info.called = r;
            }
            if let Some(l) = local {
                info.calling = l;
            }
        }
    }
    if let Some(r) = remote {
        info.connected = r;
    }
    if info.driver_key.is_none() {
        info.driver_key = vars
            .csta()
            .map(|c| format!("csta:{c}"))
            .or_else(|| vars.sip_call_id().map(|s| format!("sip:{s}")));
    }
    info
}
