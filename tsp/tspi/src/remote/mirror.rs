//! The remote mode's bookkeeping, without I/O: which of the host's lines this workstation
//! shows (and under which local key), which host call and request each local one is, and
//! what the local front end must be told when the host's events arrive, when the host is
//! lost and when it is back.
//!
//! Local lines are keyed `driver/key` (the host's driver instance and line key), which stays
//! the same when the host restarts and its device ids change. Local call and request ids are
//! the local front end's; the host's ids are mapped to them here. Calls the host reports that
//! no local request created (incoming calls, calls placed by other clients or on the phone)
//! become new local calls (LINE_NEWCALL).

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use tapir_core::{
    CallId, CallInfo, CallState, DisconnectMode, DriverError, DriverEvent, ErrorKind, LineCaps,
    LineId, LineInfo, LineKey, Outcome, Request, RequestEnvelope, RequestId,
};
use tapir_tsp::{RequestResult, Sequenced, TspEvent};

/// A line as `GET /v1/lines` shows it (the fields the link needs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LineView {
    /// The host's device id.
    pub id: LineId,
    /// The host's driver instance.
    pub driver: String,
    /// The driver's key.
    pub key: LineKey,
    /// Its name.
    pub name: String,
    /// What it can do.
    pub caps: LineCaps,
    /// In service on the host.
    pub in_service: bool,
}

impl LineView {
    /// The local key: `driver/key`.
    pub fn local_key(&self) -> String {
        format!("{}/{}", self.driver, self.key)
    }
}

/// A call as `GET /v1/calls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallView {
    /// The host's call id.
    pub id: CallId,
    /// The host's line.
    pub line: LineId,
    /// Its state.
    pub state: CallState,
    /// What is known.
    #[serde(default)]
    pub info: CallInfo,
}

/// Which of the host's lines a workstation shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineFilter(Vec<String>);

impl LineFilter {
    /// Entries matched against key, `driver/key`, name or device id; none: every line.
    pub fn new(entries: Vec<String>) -> Self {
        Self(entries)
    }

    /// Whether the line is shown.
    pub fn admits(&self, line: &LineView) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|e| {
                *e == line.key.0
                    || *e == line.local_key()
                    || *e == line.name
                    || *e == line.id.0.to_string()
            })
    }
}

/// What the local front end is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A driver event.
    Event(Box<DriverEvent>),
    /// A request's completion.
    Complete(RequestId, Outcome),
}

impl Out {
    fn event(event: DriverEvent) -> Self {
        Out::Event(Box::new(event))
    }
}

/// An HTTP request to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The path below the host's URL.
    pub path: String,
    /// A JSON body.
    pub body: Option<serde_json::Value>,
}

/// What to do with a local request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// Send this to the host.
    Send(HttpCall),
    /// Settled here (a call the host no longer knows): tell the front end this.
    Settled(Vec<Out>),
}

#[derive(Debug, Clone)]
struct Line {
    remote: LineId,
    in_service: bool,
}

#[derive(Debug, Clone)]
struct Pending {
    /// The call the request creates (MakeCall, SetupTransfer), local id.
    created: Option<CallId>,
    /// The host's request id, once the host accepted it.
    remote: Option<RequestId>,
}

/// The mapping between the host and the local front end.
#[derive(Debug, Default)]
pub struct Mirror {
    filter: LineFilter,
    lines: BTreeMap<String, Line>,
    remote_lines: HashMap<LineId, String>,
    /// Host call → local call.
    calls: HashMap<CallId, CallId>,
    /// Local call → (host call, local line key). Host call `None`: the host no longer knows
    /// it (it restarted); only Drop is answered, here.
    local: HashMap<CallId, (Option<CallId>, String)>,
    /// Host calls announced with `new_call` whose first state has not come yet.
    fresh: HashMap<CallId, CallInfo>,
    /// Host request → local request.
    requests: HashMap<RequestId, RequestId>,
    /// Local requests handed to the host and not completed.
    pending: BTreeMap<RequestId, Pending>,
    /// The last event seen, to resume after it and to recognise the same host.
    last: Option<Sequenced>,
}

impl Mirror {
    /// An empty mirror showing the lines `filter` admits.
    pub fn new(filter: LineFilter) -> Self {
        Self {
            filter,
            ..Self::default()
        }
    }

    /// The last event seen.
    pub fn last(&self) -> Option<&Sequenced> {
        self.last.as_ref()
    }

    /// How many local requests wait for the host.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// How many calls are mapped to host calls.
    pub fn mapped_calls(&self) -> usize {
        self.calls.len()
    }

    fn remote_line(&self, key: &LineKey) -> Result<LineId, DriverError> {
        self.lines
            .get(&key.0)
            .map(|l| l.remote)
            .ok_or_else(|| DriverError::new(ErrorKind::BadDeviceId, format!("no line {key}")))
    }

    fn remote_call(&self, call: CallId) -> Result<Option<CallId>, DriverError> {
        self.local
            .get(&call)
            .map(|(remote, _)| *remote)
            .ok_or_else(|| {
                DriverError::new(ErrorKind::InvalidCallHandle, format!("no call {call}"))
            })
    }

    fn mapped(&self, call: CallId) -> Result<CallId, DriverError> {
        self.remote_call(call)?.ok_or_else(|| {
            DriverError::new(
                ErrorKind::InvalidCallState,
                format!("call {call} was lost when the host restarted; it can only be dropped"),
            )
        })
    }

    /// Turns a local request into the HTTP request for the host, and records it as pending.
    ///
    /// # Errors
    /// The request cannot go to the host (unknown line or call): complete it with this.
    pub fn prepare(&mut self, envelope: &RequestEnvelope) -> Result<Prepared, DriverError> {
        let line = self.remote_line(&envelope.line)?;
        let lines = format!("/v1/lines/{}", line.0);
        let post = |path: String, body: Option<serde_json::Value>| HttpCall {
            method: "POST",
            path,
            body,
        };
        let on_call = |this: &Self, call: CallId, op: &str| -> Result<String, DriverError> {
            Ok(format!("/v1/calls/{}/{op}", this.mapped(call)?.0))
        };
        let mut created = None;
        let http = match &envelope.request {
            Request::MakeCall {
                call,
                address,
                destination,
            } => {
                created = Some(*call);
                post(
                    format!("{lines}/calls"),
                    Some(serde_json::json!({"destination": destination, "address": address.0})),
                )
            }
            Request::Drop { call } => {
                if self.remote_call(*call)?.is_none() {
                    // The host forgot the call when it restarted: nothing to hang up there.
                    self.local.remove(call);
                    return Ok(Prepared::Settled(vec![
                        Out::event(DriverEvent::CallState {
                            line: envelope.line.clone(),
                            call: *call,
                            state: CallState::Idle,
                        }),
                        Out::Complete(envelope.id, Ok(tapir_core::Completion::Done)),
                    ]));
                }
                post(on_call(self, *call, "drop")?, None)
            }
            Request::Answer { call } => post(on_call(self, *call, "answer")?, None),
            Request::Hold { call } => post(on_call(self, *call, "hold")?, None),
            Request::Unhold { call } => post(on_call(self, *call, "unhold")?, None),
            Request::Redirect { call, destination } => post(
                on_call(self, *call, "redirect")?,
                Some(serde_json::json!({ "destination": destination })),
            ),
            Request::BlindTransfer { call, destination } => post(
                on_call(self, *call, "blind-transfer")?,
                Some(serde_json::json!({ "destination": destination })),
            ),
            Request::SetupTransfer { call, consult } => {
                created = Some(*consult);
                post(on_call(self, *call, "setup-transfer")?, None)
            }
            Request::CompleteTransfer { call, consult } => post(
                on_call(self, *call, "complete-transfer")?,
                Some(serde_json::json!({ "consult": self.mapped(*consult)?.0 })),
            ),
            Request::SwapHold { active, held } => post(
                on_call(self, *active, "swap-hold")?,
                Some(serde_json::json!({ "held": self.mapped(*held)?.0 })),
            ),
            Request::Dial { call, digits } => post(
                on_call(self, *call, "dial")?,
                Some(serde_json::json!({ "digits": digits })),
            ),
            Request::Forward { address, forward } => {
                let path = format!("{lines}/addresses/{}/forwarding", address.0);
                match forward {
                    Some(f) => HttpCall {
                        method: "PUT",
                        path,
                        body: Some(serde_json::json!({
                            "mode": f.mode, "destination": f.destination
                        })),
                    },
                    None => HttpCall {
                        method: "DELETE",
                        path,
                        body: None,
                    },
                }
            }
            Request::SetDoNotDisturb { address, enabled } => HttpCall {
                method: "PUT",
                path: format!("{lines}/addresses/{}/dnd", address.0),
                body: Some(serde_json::json!({ "enabled": enabled })),
            },
            Request::QueryAddressStatus { address } => {
                post(format!("{lines}/addresses/{}/query", address.0), None)
            }
        };
        if let Some(call) = created {
            self.local.insert(call, (None, envelope.line.0.clone()));
        }
        self.pending.insert(
            envelope.id,
            Pending {
                created,
                remote: None,
            },
        );
        Ok(Prepared::Send(http))
    }

    /// The host accepted a local request as `remote`, creating `call` if it makes one.
    pub fn accepted(&mut self, local: RequestId, remote: RequestId, call: Option<CallId>) {
        let Some(pending) = self.pending.get_mut(&local) else {
            return;
        };
        pending.remote = Some(remote);
        self.requests.insert(remote, local);
        if let (Some(created), Some(remote_call)) = (pending.created, call) {
            if let Some(entry) = self.local.get_mut(&created) {
                entry.0 = Some(remote_call);
            }
            self.calls.insert(remote_call, created);
        }
    }

    /// The host refused a local request (or it never got there): it completes with `error`.
    pub fn refused(&mut self, local: RequestId, error: DriverError) -> Vec<Out> {
        let Some(pending) = self.pending.remove(&local) else {
            return Vec::new();
        };
        self.forget_created(&pending);
        vec![Out::Complete(local, Err(error))]
    }

    fn forget_created(&mut self, pending: &Pending) {
        if let Some(created) = pending.created {
            if let Some((Some(remote), _)) = self.local.remove(&created) {
                self.calls.remove(&remote);
            }
        }
    }

    /// One event from the host's stream. Returns what to tell the front end, and the host
    /// line to fetch when a line appeared (its capabilities are not in the event).
    pub fn event(
        &mut self,
        event: Sequenced,
        new_call_id: &mut dyn FnMut() -> CallId,
    ) -> (Vec<Out>, Option<LineId>) {
        self.last = Some(event.clone());
        let mut out = Vec::new();
        let key_of = |this: &Self, line: &LineId| this.remote_lines.get(line).cloned();
        match event.event {
            TspEvent::LineCreated { line, .. } => {
                if !self.remote_lines.contains_key(&line) {
                    return (out, Some(line));
                }
            }
            TspEvent::LineRemoved { line } => {
                if let Some(key) = key_of(self, &line) {
                    self.remove_line(&key, &mut out);
                }
            }
            TspEvent::LineService {
                line,
                in_service,
                reason,
            } => {
                if let Some(key) = key_of(self, &line) {
                    if let Some(l) = self.lines.get_mut(&key) {
                        l.in_service = in_service;
                    }
                    out.push(Out::event(service_event(&key, in_service, reason)));
                }
            }
            TspEvent::NewCall { line, call, info } => {
                if key_of(self, &line).is_some() && !self.calls.contains_key(&call) {
                    self.fresh.insert(call, info);
                }
            }
            TspEvent::CallState { line, call, state } => {
                if let Some(key) = key_of(self, &line) {
                    self.call_state(&key, call, state, None, new_call_id, &mut out);
                }
            }
            TspEvent::CallInfo { line, call, info } => {
                if key_of(self, &line).is_some() {
                    if let Some(local) = self.calls.get(&call) {
                        out.push(Out::event(DriverEvent::CallInfo {
                            line: self.local_line_of(*local),
                            call: *local,
                            info: shown(info),
                        }));
                    } else if let Some(fresh) = self.fresh.get_mut(&call) {
                        *fresh = info;
                    }
                }
            }
            TspEvent::AddressState {
                line,
                address,
                status,
            } => {
                if let Some(key) = key_of(self, &line) {
                    out.push(Out::event(DriverEvent::AddressState {
                        line: LineKey::new(key),
                        address,
                        status,
                    }));
                }
            }
            TspEvent::Completed {
                request, result, ..
            } => {
                if let Some(local) = self.requests.remove(&request) {
                    if let Some(pending) = self.pending.remove(&local) {
                        let outcome = match result {
                            RequestResult::Ok(done) => Ok(done),
                            RequestResult::Err(error) => {
                                self.forget_created(&pending);
                                Err(error)
                            }
                        };
                        out.push(Out::Complete(local, outcome));
                    }
                }
            }
        }
        (out, None)
    }

    fn local_line_of(&self, call: CallId) -> LineKey {
        LineKey::new(
            self.local
                .get(&call)
                .map(|(_, line)| line.clone())
                .unwrap_or_default(),
        )
    }

    /// A host call's state, known or new (`info` from a reload).
    fn call_state(
        &mut self,
        key: &str,
        call: CallId,
        state: CallState,
        info: Option<CallInfo>,
        new_call_id: &mut dyn FnMut() -> CallId,
        out: &mut Vec<Out>,
    ) {
        if let Some(local) = self.calls.get(&call).copied() {
            let line = self.local_line_of(local);
            if let Some(info) = info {
                out.push(Out::event(DriverEvent::CallInfo {
                    line: line.clone(),
                    call: local,
                    info: shown(info),
                }));
            }
            out.push(Out::event(DriverEvent::CallState {
                line,
                call: local,
                state,
            }));
            if state.is_idle() {
                self.calls.remove(&call);
                self.local.remove(&local);
            }
            return;
        }
        let fresh = self.fresh.remove(&call);
        if state.is_idle() {
            // Ended before this workstation saw it: nothing to announce.
            return;
        }
        // A call no local request made: incoming, or placed by another client or on the phone.
        let info = fresh.or(info).unwrap_or_default();
        let local = new_call_id();
        self.calls.insert(call, local);
        self.local.insert(local, (Some(call), key.to_owned()));
        out.push(Out::event(DriverEvent::NewCall {
            line: LineKey::new(key),
            call: local,
            state,
            info: shown(info),
        }));
    }

    fn remove_line(&mut self, key: &str, out: &mut Vec<Out>) {
        let Some(line) = self.lines.remove(key) else {
            return;
        };
        self.remote_lines.remove(&line.remote);
        let gone: Vec<CallId> = self
            .local
            .iter()
            .filter(|(_, (_, l))| l == key)
            .map(|(c, _)| *c)
            .collect();
        for local in gone {
            if let Some((Some(remote), _)) = self.local.remove(&local) {
                self.calls.remove(&remote);
            }
        }
        out.push(Out::event(DriverEvent::LineRemoved {
            line: LineKey::new(key),
        }));
    }

    /// A line the host showed (in a list, or fetched after `line_created`).
    pub fn line(&mut self, view: LineView, out: &mut Vec<Out>) {
        if !self.filter.admits(&view) {
            return;
        }
        let key = view.local_key();
        if let Some(old) = self.lines.get(&key) {
            if old.remote != view.id {
                self.remote_lines.remove(&old.remote);
            }
        }
        self.remote_lines.insert(view.id, key.clone());
        let known = self.lines.contains_key(&key);
        self.lines.insert(
            key.clone(),
            Line {
                remote: view.id,
                in_service: view.in_service,
            },
        );
        // A known line's service first: the front end takes a LineCreated for a line it knows
        // as a quiet update of name and capabilities, service included, and would not
        // announce the change.
        if known {
            out.push(Out::event(service_event(&key, view.in_service, None)));
        }
        out.push(Out::event(DriverEvent::LineCreated {
            info: LineInfo {
                key: LineKey::new(key),
                name: view.name,
                caps: view.caps,
                in_service: view.in_service,
            },
        }));
    }

    /// The host is lost: every line out of service, every pending request completed with
    /// `Disconnected`. Calls keep their last state.
    pub fn lost(&mut self, reason: &str) -> Vec<Out> {
        let mut out: Vec<Out> = self
            .lines
            .keys()
            .map(|key| {
                Out::event(DriverEvent::LineOutOfService {
                    line: LineKey::new(key.clone()),
                    reason: format!("the tapir host is unreachable: {reason}"),
                })
            })
            .collect();
        let pending = std::mem::take(&mut self.pending);
        self.requests.clear();
        for (local, pending) in pending {
            self.forget_created(&pending);
            out.push(Out::Complete(
                local,
                Err(DriverError::new(
                    ErrorKind::Disconnected,
                    "the tapir host became unreachable before the request completed",
                )),
            ));
        }
        out
    }

    /// The provider shuts down: pending requests complete with `Uninitialized`.
    pub fn abandon(&mut self) -> Vec<Out> {
        self.requests.clear();
        std::mem::take(&mut self.pending)
            .into_keys()
            .map(|local| {
                Out::Complete(
                    local,
                    Err(DriverError::new(
                        ErrorKind::Uninitialized,
                        "the provider shut down before the request completed",
                    )),
                )
            })
            .collect()
    }

    /// The host answers again. `lines` is its line list. With `calls` the state is reloaded
    /// (the stream could not be resumed); `restarted` says the host's ids are new, so every
    /// call mapped so far is lost (it becomes Disconnected and can only be dropped).
    pub fn reload(
        &mut self,
        lines: Vec<LineView>,
        calls: Option<Vec<CallView>>,
        restarted: bool,
        new_call_id: &mut dyn FnMut() -> CallId,
    ) -> Vec<Out> {
        let mut out = Vec::new();
        if restarted {
            self.fresh.clear();
            self.calls.clear();
            for (local, (remote, line)) in self.local.iter_mut() {
                if remote.take().is_some() {
                    out.push(Out::event(DriverEvent::CallState {
                        line: LineKey::new(line.clone()),
                        call: *local,
                        state: CallState::Disconnected(DisconnectMode::Unknown),
                    }));
                }
            }
            self.last = None;
        }
        let shown_keys: Vec<String> = lines
            .iter()
            .filter(|l| self.filter.admits(l))
            .map(LineView::local_key)
            .collect();
        let stale: Vec<String> = self
            .lines
            .keys()
            .filter(|k| !shown_keys.contains(k))
            .cloned()
            .collect();
        for key in stale {
            self.remove_line(&key, &mut out);
        }
        self.remote_lines.clear();
        for line in lines {
            self.line(line, &mut out);
        }
        if let Some(calls) = calls {
            let present: Vec<CallId> = calls.iter().map(|c| c.id).collect();
            // Calls the host has forgotten ended while this workstation was away.
            let ended: Vec<CallId> = self
                .calls
                .keys()
                .filter(|c| !present.contains(c))
                .copied()
                .collect();
            for remote in ended {
                if let Some(local) = self.calls.remove(&remote) {
                    let line = self.local_line_of(local);
                    self.local.remove(&local);
                    out.push(Out::event(DriverEvent::CallState {
                        line,
                        call: local,
                        state: CallState::Idle,
                    }));
                }
            }
            for call in calls {
                if let Some(key) = self.remote_lines.get(&call.line).cloned() {
                    let info = Some(call.info);
                    self.call_state(&key, call.id, call.state, info, new_call_id, &mut out);
                }
            }
        }
        out
    }
}

fn service_event(key: &str, in_service: bool, reason: Option<String>) -> DriverEvent {
    let line = LineKey::new(key);
    if in_service {
        DriverEvent::LineInService { line }
    } else {
        DriverEvent::LineOutOfService {
            line,
            reason: reason.unwrap_or_else(|| "out of service on the tapir host".to_owned()),
        }
    }
}

/// The host formatted the numbers already: the local front end (which passes numbers through
/// unchanged, starting from the raw number) must show the host's shape.
fn shown(mut info: CallInfo) -> CallInfo {
    for party in [&mut info.calling, &mut info.called, &mut info.connected] {
        if party.number.is_some() {
            party.raw_number = party.number.clone();
        }
    }
    info
}

#[cfg(test)]
#[path = "mirror_tests.rs"]
mod tests;
