//! Reporting to the host: a gate that stops every event once the driver has shut down, and
//! the per-call reporter that completes each request exactly once and frees the call's place
//! in the driver the moment it reports the call Disconnected or Idle.

use crate::outcome::ClickToDialError;
use std::sync::{Arc, Mutex, RwLock};
use tapir_core::{
    BusyMode, CallDirection, CallId, CallInfo, CallState, Completion, DisconnectMode, DriverEvent,
    LineKey, Party, RequestId, SharedSink,
};

/// Forwards to the host's sink until closed.
pub struct Gate {
    sink: SharedSink,
    open: RwLock<bool>,
}

impl Gate {
    /// A gate in front of `sink`, open.
    pub fn new(sink: SharedSink) -> Gate {
        Gate {
            sink,
            open: RwLock::new(true),
        }
    }

    /// Forwards an event if still open.
    pub fn event(&self, event: DriverEvent) {
        if let Ok(open) = self.open.read() {
            if *open {
                self.sink.event(event);
            }
        }
    }

    /// Forwards a completion if still open.
    pub fn complete(&self, id: RequestId, outcome: tapir_core::Outcome) {
        if let Ok(open) = self.open.read() {
            if *open {
                self.sink.complete(id, outcome);
            }
        }
    }

    /// A new call id from the host (for incoming calls).
    pub fn new_call_id(&self) -> tapir_core::CallId {
        self.sink.new_call_id()
    }

    /// Closes the gate; waits for calls in flight through it.
    pub fn close(&self) {
        if let Ok(mut open) = self.open.write() {
            *open = false;
        }
    }
}

/// The requests of one call still waiting for completion; shared by the call task and the
/// driver (which completes them itself at shutdown).
#[derive(Default)]
pub struct CallShared {
    /// The MakeCall request, until completed.
    pub make_call: Mutex<Option<RequestId>>,
    /// Drop requests, until completed.
    pub drops: Mutex<Vec<RequestId>>,
}

impl CallShared {
    /// Takes the MakeCall id (once).
    pub fn take_make_call(&self) -> Option<RequestId> {
        self.make_call.lock().ok().and_then(|mut m| m.take())
    }

    /// Takes all pending Drop ids.
    pub fn take_drops(&self) -> Vec<RequestId> {
        self.drops
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }
}

/// Frees a call's entry in the driver. It gets the report of the state that ends the call and
/// sends it while holding the driver's call table: a Drop then either finds the call (and is
/// completed by the call task) or comes after the report (and the front end answers it).
pub type OnEnd = Box<dyn FnOnce(&mut dyn FnMut()) + Send + Sync>;

/// What a call task uses to report.
pub struct Reporter {
    gate: Arc<Gate>,
    line: LineKey,
    call: CallId,
    shared: Arc<CallShared>,
    destination: String,
    driver_key: Option<String>,
    idle: bool,
    on_end: Option<OnEnd>,
}

impl Reporter {
    /// A reporter for one call.
    pub fn new(
        gate: Arc<Gate>,
        line: LineKey,
        call: CallId,
        shared: Arc<CallShared>,
        destination: String,
    ) -> Reporter {
        Reporter {
            gate,
            line,
            call,
            shared,
            destination,
            driver_key: None,
            idle: false,
            on_end: None,
        }
    }

    /// Sets what frees the call's entry and its place toward `max_calls` when it is first
    /// reported Disconnected or Idle (the failed-call rule: a Disconnected call holds nothing
    /// in the driver).
    pub fn set_on_end(&mut self, f: OnEnd) {
        self.on_end = Some(f);
    }

    /// Reports a state (nothing after Idle).
    pub fn state(&mut self, state: CallState) {
        if self.idle {
            return;
        }
        self.idle = state.is_idle();
        let event = DriverEvent::CallState {
            line: self.line.clone(),
            call: self.call,
            state,
        };
        match self.on_end.take() {
            Some(end) if !state.is_live() => {
                let gate = &self.gate;
                let mut event = Some(event);
                end(&mut || {
                    if let Some(e) = event.take() {
                        gate.event(e);
                    }
                });
            }
            other => {
                self.on_end = other;
                self.gate.event(event);
            }
        }
    }

    /// Reports the call's info with its SIP Call-ID.
    pub fn info_driver_key(&mut self, call_id: &str) {
        self.driver_key = Some(call_id.to_owned());
        self.info(None);
    }

    fn info(&self, cause: Option<String>) {
        let info = CallInfo {
            direction: CallDirection::Outgoing,
            called: Party::number(self.destination.clone()),
            driver_key: self.driver_key.clone(),
            cause,
            ..CallInfo::default()
        };
        self.gate.event(DriverEvent::CallInfo {
            line: self.line.clone(),
            call: self.call,
            info,
        });
    }

    /// Reports a failure after the call was placed: the cause in the call's info, `Busy` first
    /// when the far end was busy, then `Disconnected` with `mode` (which frees the call).
    pub fn failed(&mut self, mode: DisconnectMode, cause: String) {
        if self.idle {
            return;
        }
        self.info(Some(cause));
        if mode == DisconnectMode::Busy {
            self.state(CallState::Busy(BusyMode::Station));
        }
        self.state(CallState::Disconnected(mode));
    }

    /// Completes MakeCall, once.
    pub fn complete_make_call(&self, result: Result<(), ClickToDialError>) {
        if let Some(id) = self.shared.take_make_call() {
            self.gate.complete(
                id,
                result
                    .map(|()| Completion::Done)
                    .map_err(|e| e.to_driver_error()),
            );
        }
    }

    /// Frees the call's entry in the driver without reporting a state (a call that was never
    /// placed: its failed MakeCall tells everything).
    pub fn forget(&mut self) {
        if let Some(f) = self.on_end.take() {
            f(&mut || {});
        }
    }

    /// True when Drop requests wait for completion.
    pub fn has_drops(&self) -> bool {
        self.shared
            .drops
            .lock()
            .map(|d| !d.is_empty())
            .unwrap_or(false)
    }

    /// Completes every pending Drop with success.
    pub fn complete_drops(&self) {
        for id in self.shared.take_drops() {
            self.gate.complete(id, Ok(Completion::Done));
        }
    }
}
