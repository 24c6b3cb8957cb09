//! Reporting to the host: a gate that stops every event once the driver has shut down, and a
//! per-call reporter that never reports anything after Idle and frees the call's place in the
//! driver the moment it reports the call Disconnected or Idle.

use std::sync::{Arc, RwLock};
use tapir_core::{
    BusyMode, CallDirection, CallId, CallInfo, CallState, DisconnectMode, DriverEvent, LineKey,
    Outcome, Party, RequestId, SharedSink,
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

/// Frees a call's entry in the driver. It gets the report of the state that ends the call and
/// sends it while holding the driver's call table: a Drop then either finds the call (and is
/// completed by the call task) or comes after the report (and the front end answers it).
pub type OnEnd = Box<dyn FnOnce(&mut dyn FnMut()) + Send + Sync>;

/// Reports for one call.
pub struct CallReporter {
    gate: Arc<Gate>,
    line: LineKey,
    call: CallId,
    destination: String,
    driver_key: Option<String>,
    idle: bool,
    on_end: Option<OnEnd>,
}

impl CallReporter {
    /// A reporter; `on_end` frees the call's entry and its place on the line when the call is
    /// first reported Disconnected or Idle (a Disconnected call holds nothing in the driver,
    /// and an application that sees Idle can place the next call at once).
    pub fn new(
        gate: Arc<Gate>,
        line: LineKey,
        call: CallId,
        destination: String,
        on_end: OnEnd,
    ) -> CallReporter {
        CallReporter {
            gate,
            line,
            call,
            destination,
            driver_key: None,
            idle: false,
            on_end: Some(on_end),
        }
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

    /// Frees the call's entry without reporting a state (a call that was never placed: its
    /// failed MakeCall tells everything).
    pub fn forget(&mut self) {
        if let Some(f) = self.on_end.take() {
            f(&mut || {});
        }
    }

    /// Reports the outgoing call's info with its SIP Call-ID.
    pub fn info(&mut self, call_id: &str) {
        self.driver_key = Some(call_id.to_owned());
        self.send_info(None);
    }

    fn send_info(&self, cause: Option<String>) {
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

    /// Reports the end of a placed call: the cause in its info, `Busy` first when the far end
    /// was busy, then `Disconnected` with `mode` (which frees the call).
    pub fn failed(&mut self, mode: DisconnectMode, cause: String) {
        if self.idle {
            return;
        }
        self.send_info(Some(cause));
        if mode == DisconnectMode::Busy {
            self.state(CallState::Busy(BusyMode::Station));
        }
        self.state(CallState::Disconnected(mode));
    }

    /// Completes a request.
    pub fn complete(&self, id: RequestId, outcome: Outcome) {
        self.gate.complete(id, outcome);
    }
}
