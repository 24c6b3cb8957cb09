//! Reporting to the host: a gate that stops every event once the driver has shut down, and
//! the per-call reporter that completes each request exactly once.

use crate::outcome::ClickToDialError;
use std::sync::{Arc, Mutex, RwLock};
use tapir_core::{
    CallDirection, CallId, CallInfo, CallState, Completion, DriverEvent, LineKey, Party, RequestId,
    SharedSink,
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

/// What a call task uses to report.
pub struct Reporter {
    gate: Arc<Gate>,
    line: LineKey,
    call: CallId,
    shared: Arc<CallShared>,
    destination: String,
    idle: bool,
    on_idle: Option<Box<dyn FnOnce() + Send + Sync>>,
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
            idle: false,
            on_idle: None,
        }
    }

    /// Runs `f` just before Idle is reported (the driver frees the call id there, so an
    /// application that sees Idle can reuse the line at once).
    pub fn set_on_idle(&mut self, f: Box<dyn FnOnce() + Send + Sync>) {
        self.on_idle = Some(f);
    }

    /// Reports a state (nothing after Idle).
    pub fn state(&mut self, state: CallState) {
        if self.idle {
            return;
        }
        self.idle = state.is_idle();
        if self.idle {
            if let Some(f) = self.on_idle.take() {
                f();
            }
        }
        self.gate.event(DriverEvent::CallState {
            line: self.line.clone(),
            call: self.call,
            state,
        });
    }

    /// Reports the call's info with its SIP Call-ID.
    pub fn info_driver_key(&self, call_id: &str) {
        let info = CallInfo {
            direction: CallDirection::Outgoing,
            called: Party::number(self.destination.clone()),
            driver_key: Some(call_id.to_owned()),
            ..CallInfo::default()
        };
        self.gate.event(DriverEvent::CallInfo {
            line: self.line.clone(),
            call: self.call,
            info,
        });
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

    /// Completes every pending Drop with success.
    pub fn complete_drops(&self) {
        for id in self.shared.take_drops() {
            self.gate.complete(id, Ok(Completion::Done));
        }
    }
}
