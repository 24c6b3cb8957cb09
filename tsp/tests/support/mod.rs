//! A scripted driver for the front end's tests: it records every request and lets the test
//! decide when and how each completes and which events happen.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use tapir_core::*;

/// What the scripted driver does with the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Accept and keep it pending until the test completes it.
    Accept,
    /// Refuse at once.
    Refuse,
    /// Panic inside `submit`.
    Panic,
    /// Report the request's call Disconnected and forget it, then refuse the request as an
    /// unknown call: an application's Drop crossing the driver's report of a failure.
    DisconnectThenRefuse,
    /// Accept, then (as a driver with its own worker thread does) report the call Disconnected
    /// and forget it, and only then complete the request with "unknown call": the same crossing
    /// seen through an asynchronous completion.
    DisconnectThenFail,
}

#[derive(Default)]
pub struct Shared {
    pub sink: Option<SharedSink>,
    pub received: Vec<RequestEnvelope>,
    pub modes: Vec<Mode>,
}

#[derive(Clone)]
pub struct Script(pub Arc<Mutex<Shared>>);

impl Script {
    pub fn new() -> Self {
        Script(Arc::new(Mutex::new(Shared::default())))
    }

    pub fn sink(&self) -> SharedSink {
        self.0.lock().unwrap().sink.clone().expect("driver built")
    }

    pub fn push_mode(&self, mode: Mode) {
        self.0.lock().unwrap().modes.push(mode);
    }

    pub fn received(&self) -> Vec<RequestEnvelope> {
        self.0.lock().unwrap().received.clone()
    }

    pub fn event(&self, event: DriverEvent) {
        self.sink().event(event);
    }

    pub fn complete(&self, id: RequestId, outcome: Outcome) {
        self.sink().complete(id, outcome);
    }

    /// Builds the driver and announces `lines` lines "L0", "L1", ... with every operation.
    pub fn build(
        &self,
        lines: usize,
    ) -> impl FnOnce(SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError> {
        self.build_with_max_calls(lines, 4)
    }

    /// Like [`Script::build`], each line carrying at most `max_calls` calls.
    pub fn build_with_max_calls(
        &self,
        lines: usize,
        max_calls: u32,
    ) -> impl FnOnce(SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError> {
        let script = self.clone();
        move |sink: SharedSink| {
            for i in 0..lines {
                sink.event(DriverEvent::LineCreated {
                    info: LineInfo {
                        key: LineKey::new(format!("L{i}")),
                        name: format!("Scripted line {i}"),
                        caps: LineCaps {
                            operations: OperationSet::all(),
                            forward_modes: vec![ForwardMode::Unconditional],
                            max_calls,
                            addresses: vec![AddressInfo::default()],
                        },
                        in_service: true,
                    },
                });
            }
            script.0.lock().unwrap().sink = Some(sink);
            Ok(Box::new(ScriptedDriver(script)) as Box<dyn PhoneDriver>)
        }
    }
}

pub struct ScriptedDriver(pub Script);

impl PhoneDriver for ScriptedDriver {
    fn submit(&self, request: RequestEnvelope) -> Result<(), DriverError> {
        let mode = {
            let mut shared = self.0 .0.lock().unwrap();
            let mode = if shared.modes.is_empty() {
                Mode::Accept
            } else {
                shared.modes.remove(0)
            };
            if mode == Mode::Accept {
                shared.received.push(request.clone());
            }
            mode
        };
        match mode {
            Mode::Accept => Ok(()),
            Mode::Refuse => Err(DriverError::failed("scripted refusal")),
            Mode::Panic => panic!("scripted panic"),
            Mode::DisconnectThenRefuse => {
                let Some(call) = request.request.target_call() else {
                    return Err(DriverError::failed("scripted refusal"));
                };
                self.0.event(DriverEvent::CallState {
                    line: request.line.clone(),
                    call,
                    state: CallState::Disconnected(DisconnectMode::Unreachable),
                });
                Err(DriverError::new(
                    ErrorKind::InvalidCallHandle,
                    format!("no call {call}"),
                ))
            }
            Mode::DisconnectThenFail => {
                let Some(call) = request.request.target_call() else {
                    return Err(DriverError::failed("scripted refusal"));
                };
                let sink = self.0.sink();
                let line = request.line.clone();
                let id = request.id;
                std::thread::spawn(move || {
                    sink.event(DriverEvent::CallState {
                        line,
                        call,
                        state: CallState::Disconnected(DisconnectMode::Busy),
                    });
                    sink.complete(
                        id,
                        Err(DriverError::new(
                            ErrorKind::InvalidCallHandle,
                            format!("no call {call}"),
                        )),
                    );
                });
                Ok(())
            }
        }
    }

    fn shutdown(&self) {}
}
