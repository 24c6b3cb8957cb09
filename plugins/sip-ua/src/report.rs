//! What every SIP driver reports to the host, written once: a [`Gate`] that stops every event
//! and completion once the driver has shut down, the per-call [`CallReporter`] (nothing after
//! Idle; the call's place in the driver freed the moment it is reported Disconnected or Idle),
//! the lines' registrations and their service states ([`Registrations`]), and the info of an
//! offered incoming call.

use crate::endpoint::Endpoint;
use crate::offer::Caller;
use crate::register::{self, Pacer, Registration, RegistrationEvent};
use crate::resolve::Resolver;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tapir_core::{
    BusyMode, CallDirection, CallId, CallInfo, CallState, DisconnectMode, DriverEvent, LineKey,
    Outcome, Party, RequestId, SharedSink,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

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

    /// A new call id from the host (for incoming calls).
    pub fn new_call_id(&self) -> CallId {
        self.sink.new_call_id()
    }

    /// Closes the gate: nothing passes from now on.
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

/// Reports for one outgoing call.
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

    /// Reports the call's info with its SIP Call-ID.
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

/// What a line's registration reports: in service once registered, out of service with the
/// error and the next try while it is not. `registered` is the line's flag (read when incoming
/// calls pick a line).
pub fn registration_events(
    gate: Arc<Gate>,
    line: LineKey,
    registered: Arc<AtomicBool>,
) -> impl Fn(RegistrationEvent) + Send + 'static {
    move |ev| match ev {
        RegistrationEvent::Registered { .. } => {
            if !registered.swap(true, Ordering::SeqCst) {
                gate.event(DriverEvent::LineInService { line: line.clone() });
            }
        }
        RegistrationEvent::Failed { error, retry_in } => {
            registered.store(false, Ordering::SeqCst);
            gate.event(DriverEvent::LineOutOfService {
                line: line.clone(),
                reason: format!(
                    "not registered ({error}); next try in {} s",
                    retry_in.as_secs()
                ),
            });
        }
    }
}

/// The registrations of one driver's lines: paced by one token bucket, each reporting its
/// line in or out of service, all stopped (un-REGISTERed) together.
pub struct Registrations {
    gate: Arc<Gate>,
    pacer: Arc<Pacer>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Registrations {
    /// Registrations reporting through `gate`, at most `rate` REGISTERs per second after a
    /// burst of `burst`.
    pub fn new(gate: Arc<Gate>, rate: f64, burst: u32) -> Registrations {
        Registrations {
            gate,
            pacer: Arc::new(Pacer::new(rate, burst)),
            stop: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Keeps `reg` registered for `line` on `rt` until [`Self::stop`]; `registered` follows
    /// the binding.
    pub fn start(
        &self,
        rt: &crate::runtime::Spawner,
        endpoint: Endpoint,
        resolver: Arc<Resolver>,
        reg: Registration,
        line: LineKey,
        registered: Arc<AtomicBool>,
    ) {
        let report = registration_events(self.gate.clone(), line, registered);
        let task = rt.spawn(register::run(
            endpoint,
            resolver,
            reg,
            self.pacer.clone(),
            self.stop.subscribe(),
            report,
        ));
        if let Ok(mut t) = self.tasks.lock() {
            t.push(task);
        }
    }

    /// Stops every registration: each removes its binding (waiting at most 5 s for the answer).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// True once every registration task has ended.
    pub fn finished(&self) -> bool {
        self.tasks
            .lock()
            .map(|t| t.iter().all(JoinHandle::is_finished))
            .unwrap_or(true)
    }
}

/// The info of an offered incoming call: the caller (from `P-Asserted-Identity`/`From`), the
/// called number, the SIP Call-ID.
pub fn offered_info(caller: Caller, called: Option<String>, call_id: String) -> CallInfo {
    CallInfo {
        direction: CallDirection::Incoming,
        calling: Party {
            number: caller.number.clone(),
            raw_number: caller.number,
            name: caller.name,
        },
        called: called.map(Party::number).unwrap_or_default(),
        driver_key: Some(call_id),
        ..CallInfo::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tapir_core::{EventSink, LineKey};

    #[derive(Default)]
    struct Sink {
        events: Mutex<Vec<DriverEvent>>,
    }

    impl EventSink for Sink {
        fn event(&self, event: DriverEvent) {
            if let Ok(mut e) = self.events.lock() {
                e.push(event);
            }
        }
        fn complete(&self, _: RequestId, _: Outcome) {}
        fn new_call_id(&self) -> CallId {
            CallId(1)
        }
    }

    fn states(sink: &Sink) -> Vec<CallState> {
        sink.events
            .lock()
            .map(|e| {
                e.iter()
                    .filter_map(|e| match e {
                        DriverEvent::CallState { state, .. } => Some(*state),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn frees_the_call_once_and_reports_nothing_after_idle() {
        let sink = Arc::new(Sink::default());
        let gate = Arc::new(Gate::new(sink.clone()));
        let freed = Arc::new(AtomicBool::new(false));
        let f = freed.clone();
        let mut rep = CallReporter::new(
            gate.clone(),
            LineKey::new("1"),
            CallId(7),
            "200".into(),
            Box::new(move |report: &mut dyn FnMut()| {
                report();
                f.store(true, Ordering::SeqCst);
            }),
        );
        rep.state(CallState::Dialing);
        assert!(!freed.load(Ordering::SeqCst));
        rep.failed(DisconnectMode::Busy, "486 Busy Here".into());
        assert!(freed.load(Ordering::SeqCst));
        rep.state(CallState::Idle);
        rep.state(CallState::Connected);
        assert_eq!(
            states(&sink),
            vec![
                CallState::Dialing,
                CallState::Busy(BusyMode::Station),
                CallState::Disconnected(DisconnectMode::Busy),
                CallState::Idle
            ]
        );
        gate.close();
        rep.info("x");
        assert_eq!(sink.events.lock().map(|e| e.len()).unwrap_or(0), 5);
    }

    #[test]
    fn registration_changes_the_service_state_once() {
        let sink = Arc::new(Sink::default());
        let gate = Arc::new(Gate::new(sink.clone()));
        let flag = Arc::new(AtomicBool::new(false));
        let report = registration_events(gate, LineKey::new("7"), flag.clone());
        report(RegistrationEvent::Registered { expires: 300 });
        report(RegistrationEvent::Registered { expires: 300 });
        assert!(flag.load(Ordering::SeqCst));
        report(RegistrationEvent::Failed {
            error: crate::register::RegisterError::Unreachable("down".into()),
            retry_in: std::time::Duration::from_secs(4),
        });
        let events = sink.events.lock().map(|e| e.clone()).unwrap_or_default();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(
            matches!(&events[1], DriverEvent::LineOutOfService { reason, .. }
            if reason.contains("down") && reason.contains("next try in 4 s"))
        );
        assert!(!flag.load(Ordering::SeqCst));
    }
}
