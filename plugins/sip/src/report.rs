//! The click-to-dial call's reporting: the shared per-call reporter of `tapir-sip-ua`, plus the
//! requests of the call that wait for completion (MakeCall, Drops), shared with the driver,
//! which completes them itself at shutdown.

use crate::outcome::ClickToDialError;
use std::sync::{Arc, Mutex};
use tapir_core::{CallState, Completion, DisconnectMode, RequestId};
use tapir_sip_ua::report::CallReporter;

pub use tapir_sip_ua::report::{Gate, OnEnd};

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
    rep: CallReporter,
    shared: Arc<CallShared>,
}

impl Reporter {
    /// A reporter for one call.
    pub fn new(rep: CallReporter, shared: Arc<CallShared>) -> Reporter {
        Reporter { rep, shared }
    }

    /// Reports a state (nothing after Idle).
    pub fn state(&mut self, state: CallState) {
        self.rep.state(state);
    }

    /// Reports the call's info with its SIP Call-ID.
    pub fn info_driver_key(&mut self, call_id: &str) {
        self.rep.info(call_id);
    }

    /// Reports a failure after the call was placed: the cause in the call's info, `Busy` first
    /// when the far end was busy, then `Disconnected` with `mode` (which frees the call).
    pub fn failed(&mut self, mode: DisconnectMode, cause: String) {
        self.rep.failed(mode, cause);
    }

    /// Completes MakeCall, once.
    pub fn complete_make_call(&self, result: Result<(), ClickToDialError>) {
        if let Some(id) = self.shared.take_make_call() {
            self.rep.complete(
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
        self.rep.forget();
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
            self.rep.complete(id, Ok(Completion::Done));
        }
    }
}
