//! Test harness: a front end (`Tsp`) with one snom driver instance, the phone-facing callback
//! listener on 127.0.0.1:0 routed to the driver, and simulated phones. Everything stops when
//! the harness is dropped (also when a test fails).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};
use tapir_core::{CallId, CallState, LineId, PhoneDriver};
use tapir_snom_sim::{Sim, SimConfig, SimPhone};
use tapir_test_support::PhoneCallbacks;
use tapir_tsp::{Action, Tsp, TspConfig, TspEvent};
use tokio::sync::broadcast;

pub struct Harness {
    pub sim: Sim,
    pub tsp: Arc<Tsp>,
    pub driver: Arc<dyn PhoneDriver>,
    pub events: broadcast::Receiver<tapir_tsp::Sequenced>,
    pub base: String,
    /// Events skipped while waiting for a completion, seen again by `expect`.
    pending: std::collections::VecDeque<TspEvent>,
    /// The phone-facing endpoint (Action URLs to the driver).
    _callbacks: PhoneCallbacks,
}

impl Harness {
    /// Starts the callback listener, then the driver with `config` (JSON; `{base}` is
    /// replaced by the callback base).
    pub fn start(config: &str) -> Harness {
        Self::start_with(config, Sim::new(2).expect("sim runtime"))
    }

    pub fn start_with(config: &str, sim: Sim) -> Harness {
        Self::start_full(config, sim, None)
    }

    /// Like [`Harness::start_with`], with the host's state directory.
    pub fn start_full(config: &str, sim: Sim, state_dir: Option<std::path::PathBuf>) -> Harness {
        let callbacks = PhoneCallbacks::start("office");
        let tsp = Arc::new(Tsp::new(TspConfig {
            callback_base: Some(callbacks.callback_base()),
            history: 10_000,
            state_dir,
            ..TspConfig::default()
        }));
        let events = tsp.subscribe();
        let json = config.replace("{base}", &callbacks.base());
        let driver = tsp
            .add_driver("office", |sink| tapir_plugin_snom::build(&json, sink))
            .expect("driver starts");
        callbacks.attach(driver.clone());
        tsp.sync();
        Harness {
            sim,
            tsp,
            driver,
            events,
            base: callbacks.base(),
            pending: Default::default(),
            _callbacks: callbacks,
        }
    }

    pub fn phone(&self, config: SimConfig) -> Arc<SimPhone> {
        self.sim.phone(config).expect("sim phone")
    }

    /// The line id of the line with `key`, waiting for it to appear.
    pub fn line(&self, key: &str) -> LineId {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self.tsp.lines().into_iter().find(|l| l.key.as_str() == key) {
                return l.id;
            }
            assert!(Instant::now() < deadline, "line {key} never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn open(&self, key: &str) -> LineId {
        let line = self.line(key);
        self.tsp.open_line(line).expect("opens");
        line
    }

    /// Waits until `pred` holds for the phone-table row of `key`.
    pub fn wait_device(
        &self,
        key: &str,
        what: &str,
        pred: impl Fn(&tapir_core::DeviceStatus) -> bool,
    ) -> tapir_core::DeviceStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let devices = self.driver.devices();
            if let Some(d) = devices.iter().find(|d| d.key == key) {
                if pred(d) {
                    return d.clone();
                }
                assert!(Instant::now() < deadline, "{what}: device is {d:?}");
            } else {
                assert!(Instant::now() < deadline, "{what}: no device {key}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The next event matching `pred`, within 10 s; other events are skipped.
    pub fn expect(&mut self, what: &str, pred: impl Fn(&TspEvent) -> bool) -> TspEvent {
        if let Some(i) = self.pending.iter().position(&pred) {
            let e = self.pending.remove(i).expect("present");
            self.pending.drain(..i);
            return e;
        }
        self.pending.clear();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.events.try_recv() {
                Ok(e) if pred(&e.event) => return e.event,
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Empty) => {
                    assert!(Instant::now() < deadline, "timed out waiting for {what}");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("event stream: {e}"),
            }
        }
    }

    /// Waits for `call` to reach `state`.
    pub fn expect_state(&mut self, call: CallId, state: CallState) {
        self.expect(&format!("call {call} {}", state.name()), |e| {
            matches!(e, TspEvent::CallState { call: c, state: s, .. } if *c == call && *s == state)
        });
    }

    /// The call ended on the phone's side: it is reported Disconnected with `mode` (and
    /// holds nothing in the driver); the application's Drop then makes it Idle at once.
    pub fn ended(&mut self, call: CallId, mode: tapir_core::DisconnectMode) {
        self.expect_state(call, CallState::Disconnected(mode));
        let (_, result) = self.run(Action::Drop { call }).expect("drop accepted");
        assert!(ok(&result), "drop of a disconnected call: {result:?}");
        self.expect_state(call, CallState::Idle);
    }

    /// The cause the call's info gives next (sent just before the state that ends the call).
    pub fn cause_of(&mut self, call: CallId) -> String {
        let found = self.expect(&format!("the cause of call {call}"), |e| {
            matches!(e, TspEvent::CallInfo { call: c, info, .. } if *c == call && info.cause.is_some())
        });
        match found {
            TspEvent::CallInfo { info, .. } => info.cause.unwrap_or_default(),
            _ => unreachable!(),
        }
    }

    /// Every event that arrives within `window`.
    pub fn drain(&mut self, window: Duration) -> Vec<TspEvent> {
        let until = Instant::now() + window;
        let mut out: Vec<TspEvent> = self.pending.drain(..).collect();
        while Instant::now() < until {
            match self.events.try_recv() {
                Ok(e) => out.push(e.event),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        out
    }

    /// Submits and waits for the completion; returns its result.
    pub fn run(
        &mut self,
        action: Action,
    ) -> Result<(Option<CallId>, tapir_tsp::RequestResult), tapir_core::DriverError> {
        let accepted = self.tsp.submit(action)?;
        let request = accepted.request;
        let deadline = Instant::now() + Duration::from_secs(10);
        let done = loop {
            match self.events.try_recv() {
                Ok(e) if matches!(e.event, TspEvent::Completed { request: r, .. } if r == request) => {
                    break e.event
                }
                Ok(e) => self.pending.push_back(e.event),
                Err(broadcast::error::TryRecvError::Empty) => {
                    assert!(
                        Instant::now() < deadline,
                        "timed out waiting for the completion"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("event stream: {e}"),
            }
        };
        match done {
            TspEvent::Completed { result, .. } => Ok((accepted.call, result)),
            _ => unreachable!(),
        }
    }

    /// Submits, waits for the completion and asserts it succeeded.
    pub fn done(&mut self, action: Action) {
        let (_, r) = self.run(action).expect("accepted");
        assert!(ok(&r), "{r:?}");
    }

    /// A new incoming call on the phone; returns the host's call id (after Offering).
    pub fn incoming(&mut self, phone: &SimPhone, from: &str) -> CallId {
        phone.incoming(from);
        match self.expect("new call", |e| matches!(e, TspEvent::NewCall { .. })) {
            TspEvent::NewCall { call, .. } => {
                self.expect_state(call, CallState::Offering);
                call
            }
            _ => unreachable!(),
        }
    }

    /// Waits until `f` holds (10 s).
    pub fn wait_until(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The line's snapshot (capabilities, service).
    pub fn line_now(&self, line: LineId) -> tapir_tsp::LineSnapshot {
        self.tsp.line(line).expect("the line exists")
    }

    /// Places a call and returns its id once the completion says Ok.
    pub fn make_call(&mut self, line: LineId, number: &str) -> CallId {
        let (call, result) = self
            .run(Action::MakeCall {
                line,
                address: tapir_core::AddressId(0),
                destination: Some(number.into()),
            })
            .expect("accepted");
        assert!(ok(&result), "make call: {result:?}");
        call.expect("a call id")
    }

    /// The phone's line is configured (Action URLs written and read back).
    pub fn configured(&self, key: &str) {
        self.wait_device(key, "configured", |d| {
            d.configuration == tapir_core::Configuration::Correct
        });
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.tsp.shutdown();
    }
}

pub fn ok(result: &tapir_tsp::RequestResult) -> bool {
    matches!(result, tapir_tsp::RequestResult::Ok(_))
}

pub fn sim_config(mac: &str) -> SimConfig {
    SimConfig {
        mac: mac.into(),
        ..SimConfig::default()
    }
}

/// A driver config for one phone.
pub fn one_phone(addr: std::net::SocketAddr, mac: &str, extra: &str) -> String {
    format!(
        r#"{{"phones": [{{"address": "{addr}", "mac": "{mac}"}}], "status_interval_secs": 0, "snapshot_interval_secs": 0{extra}}}"#
    )
}
