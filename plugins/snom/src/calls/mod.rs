//! The call tracker of one phone, sans I/O: Action URL events in, driver events out.
//!
//! Calls are told apart by `$csta_id` and `$call-id`. An event without either applies only
//! when the phone has exactly one call; otherwise it is ignored rather than guessed. The
//! phone's quirks are absorbed here: a second `disconnected` for a call already ended, a
//! `missed` after `disconnected`, `onhook`/`offhook` without call data.

use crate::action::{user_part, Event, Vars};
use std::collections::VecDeque;
use tapir_core::{
    AddressId, AddressStatus, CallDirection, CallId, CallInfo, CallState, DisconnectMode,
    DriverEvent, ForwardMode, Forwarding, LineKey, Party,
};

/// Most calls tracked per phone; a phone shows a handful at most.
pub const MAX_CALLS: usize = 8;
/// How many ended call keys are remembered to swallow repeated events.
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
    ended: VecDeque<String>,
    /// A call the host placed (MakeCall, or the consultation call of SetupTransfer) that the
    /// phone has not reported yet: the next new outgoing call is this one.
    pending_make: Option<CallId>,
    /// The held call and its consultation call, after SetupTransfer.
    transfer: Option<(CallId, CallId)>,
    address: AddressStatus,
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

    /// The host placed a call: reports it Dialing (or Dialtone without a number) and binds
    /// the phone's next outgoing call to it.
    pub fn start_make(&mut self, line: &LineKey, id: CallId, dialtone: bool) -> Vec<DriverEvent> {
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
                ..CallInfo::default()
            },
            dropping: false,
            pending_transfer: false,
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

    /// The host's call could not be placed: forget it (the front end makes it Idle).
    pub fn abort_make(&mut self, id: CallId) {
        if self.pending_make == Some(id) {
            self.pending_make = None;
        }
        self.calls.retain(|c| c.id != id);
    }

    /// The host asked to drop `id`.
    pub fn mark_dropping(&mut self, id: CallId) {
        if let Some(c) = self.get_mut(id) {
            c.dropping = true;
        }
    }

    /// The host set up a transfer: `held` will be held pending transfer, `consult` is new.
    pub fn start_transfer(&mut self, held: CallId) {
        if let Some(c) = self.get_mut(held) {
            c.pending_transfer = true;
        }
    }

    /// Links the consultation call once it exists.
    pub fn link_transfer(&mut self, held: CallId, consult: CallId) {
        self.transfer = Some((held, consult));
    }

    /// Ends a call the driver knows is gone (dropped while already disconnected, snapshot).
    pub fn end(
        &mut self,
        line: &LineKey,
        id: CallId,
        mode: Option<DisconnectMode>,
    ) -> Vec<DriverEvent> {
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
        let mut out = Vec::new();
        if let (Some(mode), false) = (mode, call.dropping) {
            if !matches!(call.state, CallState::Disconnected(_)) {
                out.push(DriverEvent::CallState {
                    line: line.clone(),
                    call: id,
                    state: CallState::Disconnected(mode),
                });
            }
        }
        out.push(DriverEvent::CallState {
            line: line.clone(),
            call: id,
            state: CallState::Idle,
        });
        out
    }

    /// Ends every call (the phone rebooted, or reports no call at all).
    pub fn end_all(&mut self, line: &LineKey) -> Vec<DriverEvent> {
        let ids: Vec<CallId> = self.calls.iter().map(|c| c.id).collect();
        ids.into_iter()
            .flat_map(|id| self.end(line, id, Some(DisconnectMode::Unknown)))
            .collect()
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
        gone.into_iter()
            .flat_map(|id| self.end(line, id, Some(DisconnectMode::Unknown)))
            .collect()
    }

    fn set_state(&mut self, line: &LineKey, id: CallId, state: CallState) -> Vec<DriverEvent> {
        match self.get_mut(id) {
            Some(c) if c.state != state => {
                c.state = state;
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
        for key in [&call.csta, &call.sip].into_iter().flatten() {
            if self.ended.len() == ENDED_MEMORY {
                self.ended.pop_front();
            }
            self.ended.push_back(key.clone());
        }
    }

    fn was_ended(&self, vars: &Vars) -> bool {
        [vars.csta(), vars.sip_call_id()]
            .into_iter()
            .flatten()
            .any(|k| self.ended.iter().any(|e| e == k))
    }

    /// Which call an event is about: by key, or the only call when the event has no key.
    fn find(&self, vars: &Vars) -> Option<CallId> {
        let (csta, sip) = (vars.csta(), vars.sip_call_id());
        if csta.is_some() || sip.is_some() {
            return self
                .calls
                .iter()
                .find(|c| {
                    (csta.is_some() && c.csta.as_deref() == csta)
                        || (sip.is_some() && c.sip.as_deref() == sip)
                })
                .map(|c| c.id);
        }
        let mut live = self.live();
        match (live.next(), live.next()) {
            (Some(only), None) => Some(only.id),
            _ => None,
        }
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
        let info = info_from(vars, direction, &CallInfo::default());
        self.calls.push(Tracked {
            id,
            csta: vars.csta().map(str::to_owned),
            sip: vars.sip_call_id().map(str::to_owned),
            state,
            info: info.clone(),
            dropping: false,
            pending_transfer: false,
        });
        vec![DriverEvent::NewCall {
            line: line.clone(),
            call: id,
            state,
            info,
        }]
    }

    fn update_info(&mut self, line: &LineKey, id: CallId, vars: &Vars) -> Vec<DriverEvent> {
        let Some(c) = self.get_mut(id) else {
            return Vec::new();
        };
        let info = info_from(vars, c.info.direction, &c.info);
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

    /// Applies one Action URL event.
    pub fn apply(
        &mut self,
        line: &LineKey,
        ids: &mut dyn Ids,
        event: Event,
        vars: &Vars,
    ) -> (Vec<DriverEvent>, LineNews) {
        let mut out = Vec::new();
        let mut news = LineNews::None;
        let found = self.find(vars);
        match event {
            Event::Incoming => match found {
                Some(id) => out.extend(self.update_info(line, id, vars)),
                None if self.was_ended(vars) => {}
                None => out.extend(self.new_call(
                    line,
                    ids,
                    vars,
                    CallState::Offering,
                    CallDirection::Incoming,
                )),
            },
            Event::Outgoing => {
                let id = match found {
                    Some(id) => Some(id),
                    None if self.was_ended(vars) => None,
                    None => match self.pending_make.take() {
                        Some(id) if self.get(id).is_some() => Some(id),
                        _ => {
                            out.extend(self.new_call(
                                line,
                                ids,
                                vars,
                                CallState::Dialing,
                                CallDirection::Outgoing,
                            ));
                            self.find(vars).or_else(|| self.calls.last().map(|c| c.id))
                        }
                    },
                };
                if let Some(id) = id {
                    if self.pending_make == Some(id) {
                        self.pending_make = None;
                    }
                    self.learn_keys(id, vars);
                    if let Some((held, consult)) = self.transfer {
                        if consult == id {
                            self.transfer = Some((held, consult));
                        }
                    }
                    out.extend(self.update_info(line, id, vars));
                    if self.get(id).is_some_and(|c| c.state.is_outgoing_setup()) {
                        out.extend(self.set_state(line, id, CallState::Ringback));
                    }
                }
            }
            Event::Connected => match found {
                Some(id) => {
                    self.learn_keys(id, vars);
                    out.extend(self.update_info(line, id, vars));
                    out.extend(self.set_state(line, id, CallState::Connected));
                }
                None if self.was_ended(vars) || !Self::has_key(vars) => {}
                None => out.extend(self.new_call(
                    line,
                    ids,
                    vars,
                    CallState::Connected,
                    CallDirection::Unknown,
                )),
            },
            Event::Hold => {
                if let Some(id) = found {
                    let pending = self.get(id).is_some_and(|c| c.pending_transfer);
                    let state = if pending {
                        CallState::OnHoldPendingTransfer
                    } else {
                        CallState::OnHold
                    };
                    out.extend(self.set_state(line, id, state));
                }
            }
            Event::Unhold => {
                if let Some(id) = found {
                    if let Some(c) = self.get_mut(id) {
                        c.pending_transfer = false;
                    }
                    out.extend(self.set_state(line, id, CallState::Connected));
                }
            }
            Event::Disconnected => {
                if let Some(id) = found {
                    out.extend(self.end(line, id, Some(DisconnectMode::Normal)));
                }
                if vars.ongoing() == Some(0) {
                    out.extend(self.end_all(line));
                }
            }
            Event::Missed => {
                if let Some(id) = found {
                    out.extend(self.end(line, id, Some(DisconnectMode::NoAnswer)));
                }
            }
            Event::Transfer | Event::BlindTransfer | Event::AttendedTransfer => {
                let mut gone: Vec<CallId> = found.into_iter().collect();
                if event != Event::BlindTransfer {
                    if let Some((held, consult)) = self.transfer {
                        gone.extend([held, consult]);
                    }
                }
                gone.dedup();
                for id in gone {
                    out.extend(self.end(line, id, None));
                }
            }
            Event::ReceivedAttendedTransfer => {
                if let Some(id) = found {
                    if let Some(remote) = vars.get("remote") {
                        if let Some(c) = self.get_mut(id) {
                            let mut info = c.info.clone();
                            info.connected = party(remote, vars.get("name"));
                            info.reason = tapir_core::CallReason::Transfer;
                            if info != c.info {
                                c.info = info.clone();
                                out.push(DriverEvent::CallInfo {
                                    line: line.clone(),
                                    call: id,
                                    info,
                                });
                            }
                        }
                    }
                }
            }
            Event::Onhook | Event::Offhook => {
                // No call identity on these (the quirk); only "no call left" is news.
                if event == Event::Onhook && vars.ongoing() == Some(0) {
                    out.extend(self.end_all(line));
                }
            }
            Event::DndOn | Event::DndOff => {
                let on = event == Event::DndOn;
                if self.address.do_not_disturb != on {
                    self.address.do_not_disturb = on;
                    out.push(self.address_event(line));
                }
            }
            Event::RedirectionOn | Event::RedirectionOff => {
                let forwarding = match (event, vars.get("fwd")) {
                    (Event::RedirectionOn, Some(dest)) => vec![Forwarding {
                        mode: ForwardMode::Unconditional,
                        destination: dest.to_owned(),
                    }],
                    (Event::RedirectionOn, None) => self.address.forwarding.clone(),
                    _ => Vec::new(),
                };
                if forwarding != self.address.forwarding {
                    self.address.forwarding = forwarding;
                    out.push(self.address_event(line));
                }
            }
            Event::Setup => {
                out.extend(self.end_all(line));
                news = LineNews::Rebooted;
            }
            Event::LogOn => news = LineNews::Registered,
            Event::LogOff | Event::RegFailed => news = LineNews::Unregistered,
        }
        (out, news)
    }

    /// Sets the address state after a successful write; an event when it changed.
    pub fn set_address(&mut self, line: &LineKey, status: AddressStatus) -> Vec<DriverEvent> {
        if self.address == status {
            return Vec::new();
        }
        self.address = status;
        vec![self.address_event(line)]
    }

    fn address_event(&self, line: &LineKey) -> DriverEvent {
        DriverEvent::AddressState {
            line: line.clone(),
            address: AddressId(0),
            status: self.address.clone(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> LineKey {
        LineKey::new("L")
    }

    struct Counter(u64);
    impl Ids for Counter {
        fn new_call(&mut self) -> CallId {
            self.0 += 1;
            CallId(100 + self.0)
        }
    }

    fn states(events: &[DriverEvent]) -> Vec<(u64, &'static str)> {
        events
            .iter()
            .filter_map(|e| match e {
                DriverEvent::CallState { call, state, .. } => Some((call.0, state.name())),
                DriverEvent::NewCall { call, state, .. } => Some((call.0, state.name())),
                _ => None,
            })
            .collect()
    }

    fn v(pairs: &[(&str, &str)]) -> Vars {
        Vars::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn outgoing_call_from_the_host() {
        let mut t = CallTracker::default();
        let mut ids = Counter(0);
        let ev = t.start_make(&line(), CallId(5), false);
        assert_eq!(states(&ev), vec![(5, "dialing")]);
        let (ev, _) = t.apply(
            &line(),
            &mut ids,
            Event::Outgoing,
            &v(&[("csta", "1"), ("remote", "sip:200@x")]),
        );
        assert_eq!(states(&ev), vec![(5, "ringback")]);
        let (ev, _) = t.apply(&line(), &mut ids, Event::Connected, &v(&[("csta", "1")]));
        assert_eq!(states(&ev), vec![(5, "connected")]);
        let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "1")]));
        assert_eq!(states(&ev), vec![(5, "disconnected"), (5, "idle")]);
        // The quirks: a second disconnected, then onhook without data.
        let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "1")]));
        assert!(ev.is_empty());
        let (ev, _) = t.apply(&line(), &mut ids, Event::Onhook, &v(&[]));
        assert!(ev.is_empty());
    }

    #[test]
    fn incoming_missed_and_two_calls_kept_apart() {
        let mut t = CallTracker::default();
        let mut ids = Counter(0);
        let (ev, _) = t.apply(
            &line(),
            &mut ids,
            Event::Incoming,
            &v(&[("csta", "a"), ("remote", "sip:300@x")]),
        );
        assert_eq!(states(&ev), vec![(101, "offering")]);
        let (ev, _) = t.apply(
            &line(),
            &mut ids,
            Event::Incoming,
            &v(&[("csta", "b"), ("remote", "400")]),
        );
        assert_eq!(states(&ev), vec![(102, "offering")]);
        let (ev, _) = t.apply(&line(), &mut ids, Event::Connected, &v(&[("csta", "b")]));
        assert_eq!(states(&ev), vec![(102, "connected")]);
        // No key and two calls: ignored, never guessed.
        let (ev, _) = t.apply(&line(), &mut ids, Event::Hold, &v(&[]));
        assert!(ev.is_empty());
        let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "a")]));
        assert_eq!(states(&ev), vec![(101, "disconnected"), (101, "idle")]);
        let (ev, _) = t.apply(&line(), &mut ids, Event::Missed, &v(&[("csta", "a")]));
        assert!(ev.is_empty(), "missed after disconnected is swallowed");
        // Only one call left: an event without key applies to it.
        let (ev, _) = t.apply(&line(), &mut ids, Event::Hold, &v(&[]));
        assert_eq!(states(&ev), vec![(102, "on_hold")]);
        let (ev, _) = t.apply(&line(), &mut ids, Event::Unhold, &v(&[("csta", "b")]));
        assert_eq!(states(&ev), vec![(102, "connected")]);
        let info = t
            .get(CallId(102))
            .map(|c| c.info.calling.raw_number.clone());
        assert_eq!(info, Some(Some("400".into())));
    }

    #[test]
    fn address_state_and_reboot() {
        let mut t = CallTracker::default();
        let mut ids = Counter(0);
        let (ev, _) = t.apply(&line(), &mut ids, Event::DndOn, &v(&[]));
        assert_eq!(ev.len(), 1);
        let (ev, _) = t.apply(&line(), &mut ids, Event::DndOn, &v(&[]));
        assert!(ev.is_empty());
        let (ev, _) = t.apply(
            &line(),
            &mut ids,
            Event::RedirectionOn,
            &v(&[("fwd", "500")]),
        );
        assert_eq!(ev.len(), 1);
        assert_eq!(t.address().forwarding[0].destination, "500");
        t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "z")]));
        let (ev, news) = t.apply(&line(), &mut ids, Event::Setup, &v(&[]));
        assert_eq!(news, LineNews::Rebooted);
        assert_eq!(states(&ev), vec![(101, "disconnected"), (101, "idle")]);
        assert!(t.calls().is_empty());
    }

    #[test]
    fn snapshot_clears_only_missing_calls() {
        let mut t = CallTracker::default();
        let mut ids = Counter(0);
        t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "a")]));
        t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "b")]));
        let ev = t.retain_snapshot(&line(), &["b".to_owned()]);
        assert_eq!(states(&ev), vec![(101, "disconnected"), (101, "idle")]);
        assert_eq!(t.calls().len(), 1);
        let ev = t.retain_snapshot(&line(), &[]);
        assert_eq!(states(&ev), vec![(102, "disconnected"), (102, "idle")]);
    }

    #[test]
    fn dropped_call_ends_idle_without_disconnected() {
        let mut t = CallTracker::default();
        let mut ids = Counter(0);
        t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "a")]));
        t.mark_dropping(CallId(101));
        let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "a")]));
        assert_eq!(states(&ev), vec![(101, "idle")]);
    }
}
