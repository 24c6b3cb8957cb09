//! The simulated phones: lines, calls and their state machine, driven by requests and timers.
//!
//! [`Phone`] owns all state and runs on the driver's worker thread only, so it needs no locks.
//! It reports through the host's sink, which never blocks.
//!
//! Completion rules: most requests complete at once, MakeCall too (the failed-call rule of
//! ARCHITECTURE.md: it completes Ok as soon as the phone starts dialling; whether the number
//! is busy or unreachable, `dial_ms` later, arrives as call states). Dial in dial tone completes
//! when dialling is done; if the call ends before that (Drop, or swap-hold abandoning it), the
//! pending request completes successfully first. A shutdown completes pending requests with an
//! error. Every accepted request completes exactly once.
//!
//! A call that ends by itself (busy, unreachable, the far end hangs up, the caller gives up)
//! gets a `cause` in its info and is reported `Disconnected` (after `Busy` for a busy number);
//! the phone forgets it right then, so it holds no place on its line. The application's Drop
//! of it is answered by the front end.

use crate::config::{IncomingConfig, LineConfig, VirtualPhoneConfig};
use crate::timers::TimerQueue;
use std::collections::BTreeMap;
use std::time::Instant;
use tapir_core::{
    AddressId, AddressInfo, AddressStatus, BusyMode, CallDirection, CallId, CallInfo, CallState,
    Completion, DialToneMode, DisconnectMode, DriverError, DriverEvent, ErrorKind, ForwardMode,
    Forwarding, LineCaps, LineInfo, LineKey, Operation, OperationSet, Party, Request,
    RequestEnvelope, RequestId, SharedSink,
};

/// How many calls a line carries at once.
pub(crate) const MAX_CALLS: u32 = 4;

/// The forwarding modes the virtual lines accept.
pub(crate) const FORWARD_MODES: [ForwardMode; 3] = [
    ForwardMode::Unconditional,
    ForwardMode::UnconditionalInternal,
    ForwardMode::UnconditionalExternal,
];

/// Callers with numbers this long or shorter count as internal for forwarding.
const INTERNAL_NUMBER_MAX_LEN: usize = 4;

/// Something that happens later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Dialling of `call` is done (if `seq` is still its latest dialling).
    DialDone { call: CallId, seq: u64 },
    /// The far end of `call` answers.
    FarEndAnswers { call: CallId },
    /// The far end of `call` hangs up.
    FarEndHangsUp { call: CallId },
    /// Scripted incoming call number `script` arrives.
    Incoming { script: usize },
    /// The caller of the unanswered incoming `call` gives up.
    CallerGivesUp { call: CallId },
}

/// How a handled request completes.
enum Reply {
    /// Now, with this result.
    Now(Completion),
    /// Later, when dialling is done.
    Later,
}

struct Line {
    config: LineConfig,
    status: AddressStatus,
    /// False while out of service: no calls are placed or offered.
    in_service: bool,
    /// Removed at run time. The entry stays so that the positions calls refer to stay put;
    /// a line added again with the same key gets a new entry.
    removed: bool,
}

impl Line {
    fn new(config: LineConfig) -> Self {
        Self {
            config,
            status: AddressStatus::default(),
            in_service: true,
            removed: false,
        }
    }

    /// The line as the driver announces it.
    fn info(&self) -> LineInfo {
        LineInfo {
            key: LineKey::new(self.config.key.clone()),
            name: self.config.display_name(),
            caps: LineCaps {
                operations: OperationSet::all(),
                forward_modes: FORWARD_MODES.to_vec(),
                max_calls: MAX_CALLS,
                addresses: vec![AddressInfo {
                    id: AddressId(0),
                    number: self.config.own_number().to_owned(),
                    name: self.config.display_name(),
                }],
            },
            in_service: self.in_service,
        }
    }
}

struct Call {
    line: usize,
    state: CallState,
    info: CallInfo,
    /// The digits dialled so far.
    dialed: String,
    /// Requests that complete when dialling is done.
    pending: Vec<RequestId>,
    /// Bumped whenever dialling (re)starts, so that a stale `DialDone` is ignored.
    dial_seq: u64,
    hangup_scheduled: bool,
}

/// All lines and calls of one driver instance.
pub(crate) struct Phone {
    config: VirtualPhoneConfig,
    sink: SharedSink,
    lines: Vec<Line>,
    calls: BTreeMap<CallId, Call>,
    timers: TimerQueue<Timer>,
}

impl Phone {
    /// Sets up the lines and schedules the scripted incoming calls from `now`.
    pub(crate) fn new(config: VirtualPhoneConfig, sink: SharedSink, now: Instant) -> Self {
        let lines = config
            .lines
            .iter()
            .map(|line| Line::new(line.clone()))
            .collect();
        let mut timers = TimerQueue::default();
        for (script, call) in config.incoming.iter().enumerate() {
            timers.schedule(
                now + std::time::Duration::from_millis(call.after_ms),
                Timer::Incoming { script },
            );
        }
        Self {
            config,
            sink,
            lines,
            calls: BTreeMap::new(),
            timers,
        }
    }

    /// The lines as the driver announces them.
    pub(crate) fn line_infos(&self) -> Vec<LineInfo> {
        self.lines
            .iter()
            .filter(|line| !line.removed)
            .map(Line::info)
            .collect()
    }

    /// Adds a line at run time and announces it (`LineCreated`). A key already in use is
    /// ignored (the driver object checks it before asking).
    pub(crate) fn add_line(&mut self, config: LineConfig) {
        if self.active_line(&config.key).is_some() {
            tracing::warn!(line = %config.key, "Line not added: the key is in use.");
            return;
        }
        let line = Line::new(config);
        tracing::info!(line = %line.config.key, "Line added.");
        let info = line.info();
        self.lines.push(line);
        self.sink.event(DriverEvent::LineCreated { info });
    }

    /// Removes a line at run time: its calls end first (pending requests complete, then
    /// Idle), then `LineRemoved`. Nothing more is reported about the line.
    pub(crate) fn remove_line(&mut self, key: &str, now: Instant) {
        let Some(line) = self.active_line(key) else {
            return;
        };
        let calls: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.line == line)
            .map(|(id, _)| *id)
            .collect();
        for call in calls {
            self.finish_pending(call);
            self.set_state(call, CallState::Idle, now);
        }
        self.lines[line].removed = true;
        tracing::info!(line = %key, "Line removed.");
        self.sink.event(DriverEvent::LineRemoved {
            line: self.line_key(line),
        });
    }

    /// Takes a line out of service (`reason` given) or puts it back (`None`) and reports it.
    /// Out of service, the line places no calls and is offered none; its calls go on.
    pub(crate) fn set_service(&mut self, key: &str, out_of_service: Option<String>) {
        let Some(line) = self.active_line(key) else {
            return;
        };
        self.lines[line].in_service = out_of_service.is_none();
        let key = self.line_key(line);
        self.sink.event(match out_of_service {
            Some(reason) => {
                tracing::info!(line = %key, reason = %reason, "Line out of service.");
                DriverEvent::LineOutOfService { line: key, reason }
            }
            None => {
                tracing::info!(line = %key, "Line in service.");
                DriverEvent::LineInService { line: key }
            }
        });
    }

    /// The position of the line with this key that has not been removed.
    fn active_line(&self, key: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|line| !line.removed && line.config.key == key)
    }

    /// When the next timer is due.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Runs every timer due at `now`.
    pub(crate) fn fire_due(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_due(now) {
            self.fire(timer, now);
        }
    }

    /// Completes everything pending with an error and forgets all timers. No event follows.
    pub(crate) fn shut_down(&mut self) {
        self.timers.clear();
        for call in self.calls.values_mut() {
            for request in call.pending.drain(..) {
                self.sink.complete(
                    request,
                    Err(DriverError::new(
                        ErrorKind::Uninitialized,
                        "the virtual phone was shut down",
                    )),
                );
            }
        }
    }

    /// Handles one request; it is completed now or (dialling) later.
    pub(crate) fn handle(&mut self, envelope: RequestEnvelope, now: Instant) {
        let id = envelope.id;
        let result = match self.line_index(&envelope.line) {
            Some(line) => self.dispatch(line, id, envelope.request, now),
            // `VirtualPhone::submit` refuses unknown lines; this is a second line of defence.
            None => Err(DriverError::new(
                ErrorKind::BadDeviceId,
                format!("no line {}", envelope.line),
            )),
        };
        match result {
            Ok(Reply::Now(completion)) => self.sink.complete(id, Ok(completion)),
            Ok(Reply::Later) => {}
            Err(error) => {
                tracing::debug!(request = %id, error = %error, "Request failed.");
                self.sink.complete(id, Err(error));
            }
        }
    }

    fn line_index(&self, key: &LineKey) -> Option<usize> {
        self.active_line(key.as_str())
    }

    fn dispatch(
        &mut self,
        line: usize,
        id: RequestId,
        request: Request,
        now: Instant,
    ) -> Result<Reply, DriverError> {
        let operation = request.operation();
        if let Some(call) = request.target_call() {
            let state = self.call_on(line, call)?.state;
            if !operation.valid_in(&state) {
                return Err(wrong_state(operation, &state));
            }
        }
        match request {
            Request::MakeCall {
                call,
                address,
                destination,
            } => self.make_call(line, call, address, destination, now),
            Request::Drop { call } => {
                self.finish_pending(call);
                self.set_state(call, CallState::Idle, now);
                Ok(Reply::Now(Completion::Done))
            }
            Request::Answer { call } => {
                self.update_info(call, |info| info.connected = info.calling.clone());
                self.set_state(call, CallState::Connected, now);
                Ok(Reply::Now(Completion::Done))
            }
            Request::Redirect { call, destination }
            | Request::BlindTransfer { call, destination } => {
                require_address(&destination)?;
                tracing::info!(call = %call, to = %destination, "Call handed on.");
                self.set_state(call, CallState::Idle, now);
                Ok(Reply::Now(Completion::Done))
            }
            Request::Hold { call } => {
                self.set_state(call, CallState::OnHold, now);
                Ok(Reply::Now(Completion::Done))
            }
            Request::Unhold { call } => {
                self.set_state(call, CallState::Connected, now);
                Ok(Reply::Now(Completion::Done))
            }
            Request::SetupTransfer { call, consult } => {
                self.new_outgoing_call(line, consult, AddressId(0), None)
                    .map_err(|e| {
                        if e.kind == ErrorKind::InvalidParameter {
                            DriverError::new(ErrorKind::InvalidConsultCallHandle, e.detail)
                        } else {
                            e
                        }
                    })?;
                self.set_state(call, CallState::OnHoldPendingTransfer, now);
                self.set_state(consult, CallState::Dialtone(DialToneMode::Normal), now);
                self.emit_info(consult);
                Ok(Reply::Now(Completion::Done))
            }
            Request::CompleteTransfer { call, consult } => {
                if consult == call {
                    return Err(DriverError::new(
                        ErrorKind::InvalidConsultCallHandle,
                        "a call cannot be transferred to itself",
                    ));
                }
                let consult_state = self
                    .call_on(line, consult)
                    .map_err(|_| {
                        DriverError::new(
                            ErrorKind::InvalidConsultCallHandle,
                            format!("no consultation call {consult} on this line"),
                        )
                    })?
                    .state;
                if !matches!(
                    consult_state,
                    CallState::Ringback | CallState::Connected | CallState::Proceeding
                ) {
                    return Err(DriverError::invalid_state(format!(
                        "the consultation call is {}; it must ring or be connected",
                        consult_state.name()
                    )));
                }
                self.set_state(consult, CallState::Idle, now);
                self.set_state(call, CallState::Idle, now);
                Ok(Reply::Now(Completion::Done))
            }
            Request::SwapHold { active, held } => self.swap_hold(line, active, held, now),
            Request::Dial { call, digits } => self.dial(id, call, digits, now),
            Request::Forward { address, forward } => {
                let status = self.address_status(line, address)?;
                match forward {
                    Some(forwarding) => {
                        if !FORWARD_MODES.contains(&forwarding.mode) {
                            return Err(DriverError::new(
                                ErrorKind::InvalidParameter,
                                format!("forwarding mode {:?} is not supported", forwarding.mode),
                            ));
                        }
                        require_address(&forwarding.destination)?;
                        status.forwarding.retain(|f| f.mode != forwarding.mode);
                        status.forwarding.push(forwarding);
                    }
                    None => status.forwarding.clear(),
                }
                self.emit_address_state(line);
                Ok(Reply::Now(Completion::Done))
            }
            Request::SetDoNotDisturb { address, enabled } => {
                self.address_status(line, address)?.do_not_disturb = enabled;
                self.emit_address_state(line);
                Ok(Reply::Now(Completion::Done))
            }
            Request::QueryAddressStatus { address } => {
                let status = self.address_status(line, address)?.clone();
                Ok(Reply::Now(Completion::AddressStatus(status)))
            }
        }
    }

    fn make_call(
        &mut self,
        line: usize,
        call: CallId,
        address: AddressId,
        destination: Option<String>,
        now: Instant,
    ) -> Result<Reply, DriverError> {
        if let Some(destination) = &destination {
            require_address(destination)?;
        }
        if !self.lines[line].in_service {
            return Err(DriverError::new(
                ErrorKind::Disconnected,
                format!("line {} is out of service", self.lines[line].config.key),
            ));
        }
        self.new_outgoing_call(line, call, address, destination.as_deref())?;
        match destination {
            None => {
                self.set_state(call, CallState::Dialtone(DialToneMode::Normal), now);
                self.emit_info(call);
                Ok(Reply::Now(Completion::Done))
            }
            Some(destination) => {
                // Dialling has begun: the call exists, MakeCall completes now.
                self.start_dialing(call, None, destination, now);
                self.emit_info(call);
                Ok(Reply::Now(Completion::Done))
            }
        }
    }

    fn dial(
        &mut self,
        id: RequestId,
        call: CallId,
        digits: String,
        now: Instant,
    ) -> Result<Reply, DriverError> {
        if digits.is_empty() {
            return Err(DriverError::new(ErrorKind::InvalidParameter, "no digits"));
        }
        let Some(state) = self.calls.get(&call).map(|c| c.state) else {
            return Err(no_call(call));
        };
        match state {
            CallState::Dialtone(_) => {
                self.start_dialing(call, Some(id), digits, now);
                self.emit_info(call);
                Ok(Reply::Later)
            }
            CallState::Dialing => {
                // More digits while dialling: they extend the number and dialling restarts.
                let dialed = self
                    .calls
                    .get(&call)
                    .map(|c| format!("{}{digits}", c.dialed))
                    .unwrap_or(digits);
                self.start_dialing(call, Some(id), dialed, now);
                self.emit_info(call);
                Ok(Reply::Later)
            }
            _ => {
                tracing::debug!(call = %call, digits = %digits, "Digits sent as DTMF.");
                Ok(Reply::Now(Completion::Done))
            }
        }
    }

    fn swap_hold(
        &mut self,
        line: usize,
        active: CallId,
        held: CallId,
        now: Instant,
    ) -> Result<Reply, DriverError> {
        if active == held {
            return Err(DriverError::new(
                ErrorKind::InvalidParameter,
                "the active and the held call are the same call",
            ));
        }
        let held_state = self.call_on(line, held)?.state;
        if !matches!(
            held_state,
            CallState::OnHold | CallState::OnHoldPendingTransfer
        ) {
            return Err(DriverError::invalid_state(format!(
                "the call to retrieve is {}, not on hold",
                held_state.name()
            )));
        }
        let active_state = self.call_on(line, active)?.state;
        if active_state == CallState::Connected {
            // The held call's role (plain hold or pending transfer) passes to the other call.
            self.set_state(active, held_state, now);
        } else {
            // A consultation call still being set up cannot be parked: it is abandoned.
            self.finish_pending(active);
            self.set_state(active, CallState::Idle, now);
        }
        self.set_state(held, CallState::Connected, now);
        Ok(Reply::Now(Completion::Done))
    }

    /// Creates the record of an outgoing call (no event yet).
    fn new_outgoing_call(
        &mut self,
        line: usize,
        call: CallId,
        address: AddressId,
        destination: Option<&str>,
    ) -> Result<(), DriverError> {
        if self.calls.contains_key(&call) {
            return Err(DriverError::new(
                ErrorKind::InvalidParameter,
                format!("call id {call} is already in use"),
            ));
        }
        if address != AddressId(0) {
            return Err(DriverError::new(
                ErrorKind::InvalidAddressId,
                format!("the line has no address {address}"),
            ));
        }
        self.require_room(line)?;
        let own = &self.lines[line].config;
        let info = CallInfo {
            direction: CallDirection::Outgoing,
            address,
            calling: Party::number(own.own_number()).with_name(own.display_name()),
            called: destination.map(Party::number).unwrap_or_default(),
            ..CallInfo::default()
        };
        self.calls.insert(
            call,
            Call {
                line,
                state: CallState::Unknown,
                info,
                dialed: String::new(),
                pending: Vec::new(),
                dial_seq: 0,
                hangup_scheduled: false,
            },
        );
        Ok(())
    }

    fn require_room(&self, line: usize) -> Result<(), DriverError> {
        let in_use = self.calls.values().filter(|c| c.line == line).count();
        if in_use >= MAX_CALLS as usize {
            return Err(DriverError::new(
                ErrorKind::ResourceUnavailable,
                format!("the line already carries {MAX_CALLS} calls"),
            ));
        }
        Ok(())
    }

    /// Puts `call` into Dialing towards `number`; `request` (a Dial) completes when dialling is
    /// done.
    fn start_dialing(
        &mut self,
        call: CallId,
        request: Option<RequestId>,
        number: String,
        now: Instant,
    ) {
        let dial_after = self.config.dial();
        let Some(record) = self.calls.get_mut(&call) else {
            return;
        };
        record.dialed = number.clone();
        record.info.called = Party::number(number);
        record.pending.extend(request);
        record.dial_seq += 1;
        let seq = record.dial_seq;
        self.timers
            .schedule(now + dial_after, Timer::DialDone { call, seq });
        if record.state != CallState::Dialing {
            self.set_state(call, CallState::Dialing, now);
        }
    }

    fn fire(&mut self, timer: Timer, now: Instant) {
        match timer {
            Timer::DialDone { call, seq } => {
                let Some(record) = self.calls.get_mut(&call) else {
                    return;
                };
                if record.state != CallState::Dialing || record.dial_seq != seq {
                    return;
                }
                let number = record.dialed.clone();
                let pending = std::mem::take(&mut record.pending);
                for request in pending {
                    self.sink.complete(request, Ok(Completion::Done));
                }
                if self.config.busy_numbers.contains(&number) {
                    self.set_state(call, CallState::Busy(BusyMode::Station), now);
                    self.end(
                        call,
                        DisconnectMode::Busy,
                        "busy: a busy number of this virtual phone",
                        now,
                    );
                } else if self.config.unreachable_numbers.contains(&number) {
                    self.end(
                        call,
                        DisconnectMode::Unreachable,
                        "unreachable: an unreachable number of this virtual phone",
                        now,
                    );
                } else {
                    self.timers
                        .schedule(now + self.config.ring(), Timer::FarEndAnswers { call });
                    self.set_state(call, CallState::Ringback, now);
                }
            }
            Timer::FarEndAnswers { call } => {
                if self.state_of(call) == Some(CallState::Ringback) {
                    self.update_info(call, |info| info.connected = info.called.clone());
                    self.set_state(call, CallState::Connected, now);
                }
            }
            Timer::FarEndHangsUp { call } => {
                if self.state_of(call).is_some_and(|s| s.is_established()) {
                    self.end(call, DisconnectMode::Normal, "the far end hung up", now);
                }
            }
            Timer::CallerGivesUp { call } => {
                if matches!(
                    self.state_of(call),
                    Some(CallState::Offering | CallState::Accepted)
                ) {
                    self.end(call, DisconnectMode::NoAnswer, "the caller gave up", now);
                }
            }
            Timer::Incoming { script } => {
                let Some(incoming) = self.config.incoming.get(script).cloned() else {
                    return;
                };
                if let Some(repeat) = incoming.repeat_ms {
                    self.timers.schedule(
                        now + std::time::Duration::from_millis(repeat),
                        Timer::Incoming { script },
                    );
                }
                self.offer(&incoming, now);
            }
        }
    }

    /// Presents a scripted incoming call, unless do-not-disturb, forwarding or a full line
    /// keeps it away.
    pub(crate) fn offer(&mut self, incoming: &IncomingConfig, now: Instant) {
        let Some(line) = self.active_line(&incoming.line) else {
            return;
        };
        if !self.lines[line].in_service {
            tracing::info!(line = %incoming.line, from = %incoming.from, "Incoming call not offered: out of service.");
            return;
        }
        let status = &self.lines[line].status;
        if status.do_not_disturb {
            tracing::info!(line = %incoming.line, from = %incoming.from, "Incoming call not offered: do not disturb.");
            return;
        }
        let internal = incoming.from.len() <= INTERNAL_NUMBER_MAX_LEN;
        if let Some(forwarding) = status
            .forwarding
            .iter()
            .find(|f| forwarding_applies(f, internal))
        {
            tracing::info!(line = %incoming.line, from = %incoming.from, to = %forwarding.destination, "Incoming call forwarded.");
            return;
        }
        if self.require_room(line).is_err() {
            tracing::info!(line = %incoming.line, from = %incoming.from, "Incoming call not offered: line full.");
            return;
        }
        let call = self.sink.new_call_id();
        let own = &self.lines[line].config;
        let mut calling = Party::number(incoming.from.clone());
        calling.name = incoming.name.clone();
        let info = CallInfo {
            direction: CallDirection::Incoming,
            calling,
            called: Party::number(own.own_number()).with_name(own.display_name()),
            ..CallInfo::default()
        };
        self.calls.insert(
            call,
            Call {
                line,
                state: CallState::Offering,
                info: info.clone(),
                dialed: String::new(),
                pending: Vec::new(),
                dial_seq: 0,
                hangup_scheduled: false,
            },
        );
        tracing::info!(line = %incoming.line, call = %call, from = %incoming.from, "Incoming call offered.");
        self.sink.event(DriverEvent::NewCall {
            line: self.line_key(line),
            call,
            state: CallState::Offering,
            info,
        });
        self.timers.schedule(
            now + self.config.ring_timeout(),
            Timer::CallerGivesUp { call },
        );
    }

    /// The call ended by itself: `cause` in its info, then Disconnected with `mode` (which
    /// forgets it).
    fn end(&mut self, call: CallId, mode: DisconnectMode, cause: &str, now: Instant) {
        self.update_info(call, |info| info.cause = Some(cause.to_owned()));
        self.set_state(call, CallState::Disconnected(mode), now);
    }

    /// Moves `call` to `state` and reports it. Disconnected and Idle remove the call (it holds
    /// no place on its line any more); the first Connected arms the far end's hang-up timer.
    fn set_state(&mut self, call: CallId, state: CallState, now: Instant) {
        let hangup_after = self.config.hangup_after();
        let Some(record) = self.calls.get_mut(&call) else {
            return;
        };
        record.state = state;
        let line = record.line;
        if state == CallState::Connected && !record.hangup_scheduled {
            if let Some(after) = hangup_after {
                record.hangup_scheduled = true;
                self.timers
                    .schedule(now + after, Timer::FarEndHangsUp { call });
            }
        }
        if !state.is_live() {
            self.calls.remove(&call);
        }
        tracing::debug!(call = %call, state = state.name(), "Call state changed.");
        self.sink.event(DriverEvent::CallState {
            line: self.line_key(line),
            call,
            state,
        });
    }

    fn update_info(&mut self, call: CallId, change: impl FnOnce(&mut CallInfo)) {
        if let Some(record) = self.calls.get_mut(&call) {
            change(&mut record.info);
        }
        self.emit_info(call);
    }

    fn emit_info(&self, call: CallId) {
        if let Some(record) = self.calls.get(&call) {
            self.sink.event(DriverEvent::CallInfo {
                line: self.line_key(record.line),
                call,
                info: record.info.clone(),
            });
        }
    }

    fn emit_address_state(&self, line: usize) {
        self.sink.event(DriverEvent::AddressState {
            line: self.line_key(line),
            address: AddressId(0),
            status: self.lines[line].status.clone(),
        });
    }

    /// Completes the requests waiting for `call` to finish dialling (it is ending before that).
    fn finish_pending(&mut self, call: CallId) {
        let pending = match self.calls.get_mut(&call) {
            Some(record) => std::mem::take(&mut record.pending),
            None => return,
        };
        for request in pending {
            self.sink.complete(request, Ok(Completion::Done));
        }
    }

    fn call_on(&self, line: usize, call: CallId) -> Result<&Call, DriverError> {
        self.calls
            .get(&call)
            .filter(|record| record.line == line)
            .ok_or_else(|| no_call(call))
    }

    fn state_of(&self, call: CallId) -> Option<CallState> {
        self.calls.get(&call).map(|record| record.state)
    }

    fn address_status(
        &mut self,
        line: usize,
        address: AddressId,
    ) -> Result<&mut AddressStatus, DriverError> {
        if address != AddressId(0) {
            return Err(DriverError::new(
                ErrorKind::InvalidAddressId,
                format!("the line has no address {address}"),
            ));
        }
        Ok(&mut self.lines[line].status)
    }

    fn line_key(&self, line: usize) -> LineKey {
        LineKey::new(self.lines[line].config.key.clone())
    }
}

fn forwarding_applies(forwarding: &Forwarding, internal: bool) -> bool {
    match forwarding.mode {
        ForwardMode::Unconditional => true,
        ForwardMode::UnconditionalInternal => internal,
        ForwardMode::UnconditionalExternal => !internal,
        ForwardMode::Busy | ForwardMode::NoAnswer => false,
    }
}

fn require_address(destination: &str) -> Result<(), DriverError> {
    if destination.trim().is_empty() {
        return Err(DriverError::new(
            ErrorKind::InvalidAddress,
            "the destination is empty",
        ));
    }
    Ok(())
}

fn no_call(call: CallId) -> DriverError {
    DriverError::new(
        ErrorKind::InvalidCallHandle,
        format!("no call {call} on this line"),
    )
}

fn wrong_state(operation: Operation, state: &CallState) -> DriverError {
    DriverError::invalid_state(format!(
        "{} is not possible while the call is {}",
        operation.name(),
        state.name()
    ))
}
