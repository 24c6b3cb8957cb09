//! Reporting to the host: a gate that stops every event once the driver has shut down, and a
//! per-call reporter that never reports anything after Idle.

use std::sync::{Arc, RwLock};
use tapir_core::{
    CallDirection, CallId, CallInfo, CallState, DriverEvent, LineKey, Outcome, Party, RequestId,
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
    pub fn complete(&self, id: RequestId, outcome: Outcome) {
        if let Ok(open) = self.open.read() {
            if *open {
                self.sink.complete(id, outcome);
            }
        }
    }

    /// A new call id from the host.
    pub fn new_call_id(&self) -> CallId {
        self.sink.new_call_id()
    }

    /// Closes the gate.
    pub fn close(&self) {
        if let Ok(mut open) = self.open.write() {
            *open = false;
        }
    }
}

/// Reports for one call.
pub struct CallReporter {
    gate: Arc<Gate>,
    line: LineKey,
    call: CallId,
    destination: String,
    idle: bool,
    on_idle: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl CallReporter {
    /// A reporter; `on_idle` runs just before Idle is reported (the driver frees the call there
    /// so an application that sees Idle can place the next call on the line at once).
    pub fn new(
        gate: Arc<Gate>,
        line: LineKey,
        call: CallId,
        destination: String,
        on_idle: Box<dyn FnOnce() + Send + Sync>,
    ) -> CallReporter {
        CallReporter {
            gate,
            line,
            call,
            destination,
            idle: false,
            on_idle: Some(on_idle),
        }
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

    /// Reports the outgoing call's info with its SIP Call-ID.
    pub fn info(&self, call_id: &str) {
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

    /// Completes a request.
    pub fn complete(&self, id: RequestId, outcome: Outcome) {
        self.gate.complete(id, outcome);
    }
}
