//! In-process tests of the driver (through the rlib) with a recording sink and short timers.

use crate::{build, validate, EXAMPLE_CONFIG};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tapir_core::{
    AddressId, AddressStatus, BusyMode, CallDirection, CallId, CallState, Completion, DialToneMode,
    DisconnectMode, DriverEvent, ErrorKind, EventSink, ForwardMode, Forwarding, LineKey, Operation,
    Outcome, PhoneDriver, Request, RequestEnvelope, RequestId,
};

#[derive(Default)]
struct Recorded {
    events: Vec<DriverEvent>,
    completions: Vec<(RequestId, Outcome)>,
}

#[derive(Default)]
struct Recorder {
    state: Mutex<Recorded>,
    changed: Condvar,
    next_call: Mutex<u64>,
}

impl EventSink for Recorder {
    fn event(&self, event: DriverEvent) {
        self.state.lock().unwrap().events.push(event);
        self.changed.notify_all();
    }
    fn complete(&self, request: RequestId, outcome: Outcome) {
        self.state
            .lock()
            .unwrap()
            .completions
            .push((request, outcome));
        self.changed.notify_all();
    }
    fn new_call_id(&self) -> CallId {
        let mut next = self.next_call.lock().unwrap();
        *next += 1;
        CallId(900 + *next)
    }
}

/// A driver under test with its sink; requests are numbered from 1.
struct Harness {
    driver: Box<dyn PhoneDriver>,
    sink: Arc<Recorder>,
    next_request: u64,
    accepted: Vec<RequestId>,
}

/// Fast timers for tests; `extra` is merged over them.
fn config(extra: &str) -> String {
    let mut base: serde_json::Value = serde_json::json!({
        "dial_ms": 10, "ring_ms": 20, "ring_timeout_ms": 5000
    });
    let extra: serde_json::Value = serde_json::from_str(extra).unwrap();
    for (key, value) in extra.as_object().unwrap() {
        base[key] = value.clone();
    }
    base.to_string()
}

impl Harness {
    fn start(extra: &str) -> Self {
        let sink = Arc::new(Recorder::default());
        let driver = build(&config(extra), sink.clone()).unwrap();
        Self {
            driver,
            sink,
            next_request: 0,
            accepted: Vec::new(),
        }
    }

    fn try_submit(
        &mut self,
        line: &str,
        request: Request,
    ) -> Result<RequestId, tapir_core::DriverError> {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.driver.submit(RequestEnvelope {
            id,
            line: LineKey::new(line),
            request,
        })?;
        self.accepted.push(id);
        Ok(id)
    }

    fn submit(&mut self, request: Request) -> RequestId {
        self.try_submit("100", request).unwrap()
    }

    /// Waits until `done` holds (up to 5 s).
    fn wait(&self, what: &str, done: impl Fn(&Recorded) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut state = self.sink.state.lock().unwrap();
        while !done(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; events: {:#?}; completions: {:#?}",
                state.events,
                state.completions
            );
            state = self.sink.changed.wait_timeout(state, left).unwrap().0;
        }
    }

    /// Waits for the completion of `id` and returns it.
    fn outcome(&self, id: RequestId) -> Outcome {
        self.wait(&format!("completion of {id}"), |r| {
            r.completions.iter().any(|(c, _)| *c == id)
        });
        let state = self.sink.state.lock().unwrap();
        state
            .completions
            .iter()
            .find(|(c, _)| *c == id)
            .map(|(_, o)| o.clone())
            .unwrap()
    }

    fn ok(&mut self, request: Request) {
        let id = self.submit(request.clone());
        assert_eq!(self.outcome(id), Ok(Completion::Done), "{request:?}");
    }

    fn error_kind(&mut self, request: Request) -> ErrorKind {
        let id = self.submit(request.clone());
        match self.outcome(id) {
            Err(error) => error.kind,
            Ok(done) => panic!("{request:?} should fail, completed with {done:?}"),
        }
    }

    /// The states reported for `call`, in order.
    fn states(&self, call: u64) -> Vec<CallState> {
        let state = self.sink.state.lock().unwrap();
        state
            .events
            .iter()
            .filter_map(|e| match e {
                DriverEvent::CallState { call: c, state, .. } if c.0 == call => Some(*state),
                DriverEvent::NewCall { call: c, state, .. } if c.0 == call => Some(*state),
                _ => None,
            })
            .collect()
    }

    fn wait_state(&self, call: u64, wanted: CallState) {
        self.wait(&format!("call {call} to be {wanted:?}"), |r| {
            r.events.iter().any(|e| {
                matches!(e, DriverEvent::CallState { call: c, state, .. } if c.0 == call && *state == wanted)
            })
        });
    }

    fn last_info(&self, call: u64) -> tapir_core::CallInfo {
        let state = self.sink.state.lock().unwrap();
        state
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                DriverEvent::CallInfo { call: c, info, .. } if c.0 == call => Some(info.clone()),
                DriverEvent::NewCall { call: c, info, .. } if c.0 == call => Some(info.clone()),
                _ => None,
            })
            .unwrap()
    }

    /// A connected outgoing call with id `call`.
    fn connected_call(&mut self, call: u64, to: &str) {
        self.ok(Request::MakeCall {
            call: CallId(call),
            address: AddressId(0),
            destination: Some(to.into()),
        });
        self.wait_state(call, CallState::Connected);
    }

    /// Shuts down and checks that every accepted request completed exactly once.
    fn finish(self) -> Recorded {
        self.driver.shutdown();
        let state = std::mem::take(&mut *self.sink.state.lock().unwrap());
        let mut counts: HashMap<RequestId, usize> = HashMap::new();
        for (id, _) in &state.completions {
            *counts.entry(*id).or_default() += 1;
        }
        for id in &self.accepted {
            assert_eq!(counts.get(id), Some(&1), "request {id} completions");
        }
        assert_eq!(
            counts.len(),
            self.accepted.len(),
            "completions for unknown requests"
        );
        state
    }
}

fn make_call(call: u64, to: Option<&str>) -> Request {
    Request::MakeCall {
        call: CallId(call),
        address: AddressId(0),
        destination: to.map(str::to_owned),
    }
}

#[test]
fn lines_are_announced_with_all_operations() {
    let harness = Harness::start(
        r#"{ "lines": [ {"key": "1"}, {"key": "2", "name": "Desk", "number": "202"} ] }"#,
    );
    let state = harness.finish();
    let infos: Vec<_> = state
        .events
        .iter()
        .filter_map(|e| match e {
            DriverEvent::LineCreated { info } => Some(info.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[1].name, "Desk");
    assert_eq!(infos[1].caps.addresses[0].number, "202");
    for op in Operation::ALL {
        assert!(infos[0].caps.operations.contains(op), "{op:?}");
    }
    assert!(infos[0]
        .caps
        .forward_modes
        .contains(&ForwardMode::UnconditionalExternal));
}

#[test]
fn an_outgoing_call_dials_rings_connects_and_drops() {
    let mut h = Harness::start("{}");
    let make = h.submit(make_call(1, Some("200")));
    h.wait_state(1, CallState::Connected);
    assert_eq!(h.outcome(make), Ok(Completion::Done));
    let info = h.last_info(1);
    assert_eq!(info.direction, CallDirection::Outgoing);
    assert_eq!(info.calling.number.as_deref(), Some("100"));
    assert_eq!(info.called.number.as_deref(), Some("200"));
    assert_eq!(info.connected.number.as_deref(), Some("200"));
    h.ok(Request::Drop { call: CallId(1) });
    assert_eq!(
        h.states(1),
        vec![
            CallState::Dialing,
            CallState::Ringback,
            CallState::Connected,
            CallState::Idle
        ]
    );
    // After Idle the call is gone.
    assert_eq!(
        h.error_kind(Request::Drop { call: CallId(1) }),
        ErrorKind::InvalidCallHandle
    );
    h.finish();
}

#[test]
fn make_call_completes_as_soon_as_dialling_begins() {
    let mut h = Harness::start(r#"{ "dial_ms": 400 }"#);
    let make = h.submit(make_call(1, Some("200")));
    assert_eq!(h.outcome(make), Ok(Completion::Done));
    assert_eq!(
        h.states(1),
        vec![CallState::Dialing],
        "completed while dialling"
    );
    h.wait_state(1, CallState::Ringback);
    h.finish();
}

#[test]
fn busy_and_unreachable_numbers_end_disconnected_and_free_the_line() {
    let mut h = Harness::start(r#"{ "busy_numbers": ["486"], "unreachable_numbers": ["404"] }"#);
    h.ok(make_call(1, Some("486")));
    h.ok(make_call(2, Some("404")));
    h.wait_state(1, CallState::Disconnected(DisconnectMode::Busy));
    h.wait_state(2, CallState::Disconnected(DisconnectMode::Unreachable));
    assert_eq!(
        h.states(1),
        vec![
            CallState::Dialing,
            CallState::Busy(BusyMode::Station),
            CallState::Disconnected(DisconnectMode::Busy)
        ]
    );
    assert_eq!(
        h.states(2),
        vec![
            CallState::Dialing,
            CallState::Disconnected(DisconnectMode::Unreachable)
        ]
    );
    assert!(h.last_info(1).cause.is_some_and(|c| c.contains("busy")));
    assert!(h
        .last_info(2)
        .cause
        .is_some_and(|c| c.contains("unreachable")));
    // The phone forgot both: their Drop is the front end's to answer.
    assert_eq!(
        h.error_kind(Request::Drop { call: CallId(1) }),
        ErrorKind::InvalidCallHandle
    );
    // Failed calls hold no place: the line (4 calls at most) takes 4 more at once.
    for call in 10..14 {
        h.ok(make_call(call, Some("486")));
    }
    for call in 10..14 {
        h.wait_state(call, CallState::Disconnected(DisconnectMode::Busy));
    }
    for call in 20..24 {
        h.ok(make_call(call, Some("200")));
    }
    h.finish();
}

#[test]
fn dial_tone_then_digits() {
    let mut h = Harness::start(r#"{ "dial_ms": 300 }"#);
    h.ok(make_call(1, None));
    assert_eq!(h.states(1), vec![CallState::Dialtone(DialToneMode::Normal)]);
    let first = h.submit(Request::Dial {
        call: CallId(1),
        digits: "2".into(),
    });
    let second = h.submit(Request::Dial {
        call: CallId(1),
        digits: "00".into(),
    });
    h.wait_state(1, CallState::Ringback);
    assert_eq!(h.outcome(first), Ok(Completion::Done));
    assert_eq!(h.outcome(second), Ok(Completion::Done));
    assert_eq!(h.last_info(1).called.number.as_deref(), Some("200"));
    h.wait_state(1, CallState::Connected);
    // Digits on a connected call are DTMF: completed, no state change.
    h.ok(Request::Dial {
        call: CallId(1),
        digits: "#1".into(),
    });
    assert_eq!(
        h.states(1),
        vec![
            CallState::Dialtone(DialToneMode::Normal),
            CallState::Dialing,
            CallState::Ringback,
            CallState::Connected
        ]
    );
    h.finish();
}

#[test]
fn the_far_end_hangs_up_and_the_phone_forgets_the_call() {
    let mut h = Harness::start(r#"{ "hangup_after_ms": 30 }"#);
    h.connected_call(1, "200");
    h.wait_state(1, CallState::Disconnected(DisconnectMode::Normal));
    assert_eq!(h.last_info(1).cause.as_deref(), Some("the far end hung up"));
    assert_eq!(
        h.error_kind(Request::Drop { call: CallId(1) }),
        ErrorKind::InvalidCallHandle
    );
    h.finish();
}

#[test]
fn incoming_calls_are_offered_answered_or_given_up() {
    let mut h = Harness::start(
        r#"{ "ring_timeout_ms": 1000, "hangup_after_ms": null, "incoming": [
            { "line": "100", "after_ms": 0, "from": "0301234567", "name": "Alice" },
            { "line": "100", "after_ms": 10, "from": "0309999", "repeat_ms": null } ] }"#,
    );
    h.wait("two offered calls", |r| {
        r.events
            .iter()
            .filter(|e| matches!(e, DriverEvent::NewCall { .. }))
            .count()
            == 2
    });
    let info = h.last_info(901);
    assert_eq!(info.direction, CallDirection::Incoming);
    assert_eq!(info.calling.number.as_deref(), Some("0301234567"));
    assert_eq!(info.calling.name.as_deref(), Some("Alice"));
    assert_eq!(info.called.number.as_deref(), Some("100"));
    h.ok(Request::Answer { call: CallId(901) });
    // The second is left to ring until the caller gives up.
    h.wait_state(902, CallState::Disconnected(DisconnectMode::NoAnswer));
    assert_eq!(
        h.states(901),
        vec![CallState::Offering, CallState::Connected]
    );
    assert_eq!(
        h.last_info(901).connected.number.as_deref(),
        Some("0301234567")
    );
    // Answering twice is a state error.
    assert_eq!(
        h.error_kind(Request::Answer { call: CallId(901) }),
        ErrorKind::InvalidCallState
    );
    h.finish();
}

#[test]
fn an_offered_call_can_be_redirected_and_repeats() {
    let mut h = Harness::start(
        r#"{ "incoming": [ { "line": "100", "after_ms": 0, "from": "555", "repeat_ms": 30 } ] }"#,
    );
    h.wait("the first offer", |r| {
        !r.events.is_empty()
            && r.events
                .iter()
                .any(|e| matches!(e, DriverEvent::NewCall { .. }))
    });
    h.ok(Request::Redirect {
        call: CallId(901),
        destination: "300".into(),
    });
    assert_eq!(h.states(901), vec![CallState::Offering, CallState::Idle]);
    h.wait("the repeated offer", |r| {
        r.events
            .iter()
            .any(|e| matches!(e, DriverEvent::NewCall { call, .. } if call.0 == 902))
    });
    h.finish();
}

#[test]
fn hold_unhold_and_errors() {
    let mut h = Harness::start(r#"{ "ring_ms": 2000 }"#);
    h.ok(make_call(1, Some("200")));
    h.wait_state(1, CallState::Ringback);
    assert_eq!(
        h.error_kind(Request::Hold { call: CallId(1) }),
        ErrorKind::InvalidCallState
    );
    assert_eq!(
        h.error_kind(Request::Hold { call: CallId(77) }),
        ErrorKind::InvalidCallHandle
    );
    h.finish();

    let mut h = Harness::start("{}");
    h.connected_call(1, "200");
    h.ok(Request::Hold { call: CallId(1) });
    h.ok(Request::Unhold { call: CallId(1) });
    assert_eq!(
        h.error_kind(Request::Unhold { call: CallId(1) }),
        ErrorKind::InvalidCallState
    );
    assert_eq!(
        h.states(1)[2..],
        [
            CallState::Connected,
            CallState::OnHold,
            CallState::Connected
        ]
    );
    // The same id cannot be used twice.
    assert_eq!(
        h.error_kind(make_call(1, Some("300"))),
        ErrorKind::InvalidParameter
    );
    h.finish();
}

#[test]
fn unknown_lines_are_refused_at_once() {
    let mut h = Harness::start("{}");
    let error = h.try_submit("999", make_call(1, Some("200"))).unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadDeviceId);
    let state = h.finish();
    assert!(state.completions.is_empty());
}

#[test]
fn blind_transfer_ends_the_call() {
    let mut h = Harness::start("{}");
    h.connected_call(1, "200");
    assert_eq!(
        h.error_kind(Request::BlindTransfer {
            call: CallId(1),
            destination: " ".into()
        }),
        ErrorKind::InvalidAddress
    );
    h.ok(Request::BlindTransfer {
        call: CallId(1),
        destination: "300".into(),
    });
    assert_eq!(h.states(1).last(), Some(&CallState::Idle));
    h.finish();
}

#[test]
fn consultation_transfer() {
    let mut h = Harness::start("{}");
    h.connected_call(1, "200");
    h.ok(Request::SetupTransfer {
        call: CallId(1),
        consult: CallId(2),
    });
    assert_eq!(h.states(1).last(), Some(&CallState::OnHoldPendingTransfer));
    assert_eq!(h.states(2), vec![CallState::Dialtone(DialToneMode::Normal)]);
    // The consultation call must at least ring before the transfer completes.
    assert_eq!(
        h.error_kind(Request::CompleteTransfer {
            call: CallId(1),
            consult: CallId(2)
        }),
        ErrorKind::InvalidCallState
    );
    assert_eq!(
        h.error_kind(Request::CompleteTransfer {
            call: CallId(1),
            consult: CallId(3)
        }),
        ErrorKind::InvalidConsultCallHandle
    );
    h.ok(Request::Dial {
        call: CallId(2),
        digits: "300".into(),
    });
    h.wait_state(2, CallState::Connected);
    h.ok(Request::CompleteTransfer {
        call: CallId(1),
        consult: CallId(2),
    });
    assert_eq!(h.states(1).last(), Some(&CallState::Idle));
    assert_eq!(
        h.states(2),
        vec![
            CallState::Dialtone(DialToneMode::Normal),
            CallState::Dialing,
            CallState::Ringback,
            CallState::Connected,
            CallState::Idle
        ]
    );
    h.finish();
}

#[test]
fn swap_hold_exchanges_the_active_and_the_held_call() {
    let mut h = Harness::start("{}");
    h.connected_call(1, "200");
    h.ok(Request::SetupTransfer {
        call: CallId(1),
        consult: CallId(2),
    });
    h.ok(Request::Dial {
        call: CallId(2),
        digits: "300".into(),
    });
    h.wait_state(2, CallState::Connected);
    h.ok(Request::SwapHold {
        active: CallId(2),
        held: CallId(1),
    });
    assert_eq!(h.states(1).last(), Some(&CallState::Connected));
    assert_eq!(h.states(2).last(), Some(&CallState::OnHoldPendingTransfer));
    // Swapping with a call that is not held is a state error.
    h.ok(Request::Unhold { call: CallId(2) });
    assert_eq!(
        h.error_kind(Request::SwapHold {
            active: CallId(2),
            held: CallId(1)
        }),
        ErrorKind::InvalidCallState
    );
    h.finish();
}

#[test]
fn forwarding_and_do_not_disturb_are_kept_and_reported() {
    let mut h = Harness::start("{}");
    let forwarding = Forwarding {
        mode: ForwardMode::UnconditionalExternal,
        destination: "0171".into(),
    };
    h.ok(Request::Forward {
        address: AddressId(0),
        forward: Some(forwarding.clone()),
    });
    h.ok(Request::SetDoNotDisturb {
        address: AddressId(0),
        enabled: true,
    });
    let query = h.submit(Request::QueryAddressStatus {
        address: AddressId(0),
    });
    let expected = AddressStatus {
        forwarding: vec![forwarding],
        do_not_disturb: true,
    };
    assert_eq!(
        h.outcome(query),
        Ok(Completion::AddressStatus(expected.clone()))
    );
    assert_eq!(
        h.error_kind(Request::Forward {
            address: AddressId(0),
            forward: Some(Forwarding {
                mode: ForwardMode::Busy,
                destination: "1".into()
            })
        }),
        ErrorKind::InvalidParameter
    );
    assert_eq!(
        h.error_kind(Request::QueryAddressStatus {
            address: AddressId(3)
        }),
        ErrorKind::InvalidAddressId
    );
    h.ok(Request::Forward {
        address: AddressId(0),
        forward: None,
    });
    let state = h.finish();
    let reported: Vec<AddressStatus> = state
        .events
        .iter()
        .filter_map(|e| match e {
            DriverEvent::AddressState { status, .. } => Some(status.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reported.len(), 3);
    assert_eq!(reported[1], expected);
    assert_eq!(
        reported[2],
        AddressStatus {
            forwarding: vec![],
            do_not_disturb: true
        }
    );
}

#[test]
fn do_not_disturb_keeps_incoming_calls_away() {
    let mut h = Harness::start(
        r#"{ "incoming": [ { "line": "100", "after_ms": 300, "from": "555", "repeat_ms": 300 } ] }"#,
    );
    h.ok(Request::SetDoNotDisturb {
        address: AddressId(0),
        enabled: true,
    });
    std::thread::sleep(Duration::from_millis(700));
    let offered = |r: &Recorded| {
        r.events
            .iter()
            .any(|e| matches!(e, DriverEvent::NewCall { .. }))
    };
    assert!(!offered(&h.sink.state.lock().unwrap()));
    // The script does ring once do-not-disturb is off again.
    h.ok(Request::SetDoNotDisturb {
        address: AddressId(0),
        enabled: false,
    });
    h.wait("an offer after do-not-disturb", offered);
    h.finish();
}

#[test]
fn dropping_while_dialling_completes_the_make_call_before_the_drop() {
    let mut h = Harness::start(r#"{ "dial_ms": 5000 }"#);
    let make = h.submit(make_call(1, Some("200")));
    h.wait_state(1, CallState::Dialing);
    let drop = h.submit(Request::Drop { call: CallId(1) });
    assert_eq!(h.outcome(drop), Ok(Completion::Done));
    let order: Vec<RequestId> = h
        .sink
        .state
        .lock()
        .unwrap()
        .completions
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(order, vec![make, drop]);
    assert_eq!(h.outcome(make), Ok(Completion::Done));
    assert_eq!(h.states(1), vec![CallState::Dialing, CallState::Idle]);
    h.finish();
}

#[test]
fn shutdown_completes_pending_requests_and_stops() {
    let mut h = Harness::start(r#"{ "dial_ms": 5000 }"#);
    h.ok(make_call(1, None));
    let dial = h.submit(Request::Dial {
        call: CallId(1),
        digits: "200".into(),
    });
    h.wait_state(1, CallState::Dialing);
    h.driver.shutdown();
    assert_eq!(h.outcome(dial).unwrap_err().kind, ErrorKind::Uninitialized);
    let events_at_shutdown = h.sink.state.lock().unwrap().events.len();
    let error = h.try_submit("100", make_call(2, Some("200"))).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Uninitialized);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        h.sink.state.lock().unwrap().events.len(),
        events_at_shutdown
    );
    h.finish();
}

#[test]
fn the_panic_hook_panics_in_submit_and_the_driver_survives() {
    let mut h = Harness::start(r#"{ "panic_on_number": "666" }"#);
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        let _ = h.driver.submit(RequestEnvelope {
            id: RequestId(100),
            line: LineKey::new("100"),
            request: make_call(1, Some("666")),
        });
    }));
    assert!(panicked.is_err());
    h.connected_call(2, "200");
    h.finish();
}

#[test]
fn the_example_config_validates_and_bad_ones_do_not() {
    assert_eq!(validate(EXAMPLE_CONFIG), Ok(()));
    assert!(validate(r#"{ "nonsense": 1 }"#).is_err());
    let sink = Arc::new(Recorder::default());
    let error = build(r#"{ "lines": [] }"#, sink).err().unwrap();
    assert_eq!(error.kind, ErrorKind::InvalidParameter);
}

#[test]
fn the_exported_module_describes_the_driver() {
    let module = tapir_plugin_abi::plugin::root_module::<crate::__TapirPluginDef>();
    assert_eq!(module.name()().as_str(), "virtual-phone");
    assert_eq!(module.version()().as_str(), env!("CARGO_PKG_VERSION"));
    assert_eq!(module.example_config()().as_str(), EXAMPLE_CONFIG);
    assert!(module.validate()(EXAMPLE_CONFIG.into()).is_ok());
}

/// A small deterministic pseudo-random generator (xorshift64), so that the sequence test needs
/// no extra dependency and every failure is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize].clone()
    }
}

/// Random request sequences, interleaved with fast timers and incoming calls, keep the
/// invariants: every accepted request completes exactly once (checked by `finish`), no call
/// reports anything after Idle or Disconnected, and nothing is reported after shutdown.
#[test]
fn random_sequences_keep_the_invariants() {
    for seed in [1_u64, 7, 42, 1234, 99_999] {
        let mut rng = Rng(seed);
        let mut h = Harness::start(
            r#"{ "dial_ms": 1, "ring_ms": 2, "hangup_after_ms": 6, "ring_timeout_ms": 9,
                 "busy_numbers": ["486"], "unreachable_numbers": ["404"],
                 "incoming": [ { "line": "100", "after_ms": 0, "from": "555", "repeat_ms": 3 } ] }"#,
        );
        let mut next_id = 1;
        let mut known: Vec<u64> = vec![77];
        for _ in 0..250 {
            let mut fresh = || {
                next_id += 1;
                next_id
            };
            // Mostly act on live calls (so that calls progress and lines do not fill up),
            // sometimes on finished or unknown ones.
            let live: Vec<u64> = {
                let state = h.sink.state.lock().unwrap();
                let mut live = Vec::new();
                for event in &state.events {
                    match event {
                        DriverEvent::CallState {
                            call,
                            state: CallState::Idle | CallState::Disconnected(_),
                            ..
                        } => live.retain(|c| *c != call.0),
                        DriverEvent::CallState { call, .. } | DriverEvent::NewCall { call, .. }
                            if !live.contains(&call.0) =>
                        {
                            live.push(call.0);
                        }
                        _ => {}
                    }
                }
                live
            };
            let targets = if live.is_empty() || rng.next() % 5 == 0 {
                &known
            } else {
                &live
            };
            let call = CallId(rng.pick(targets));
            let other = CallId(rng.pick(targets));
            let number = rng.pick(&["200", "486", "404", "1"]).to_owned();
            let request = match rng.next() % 14 {
                0 => {
                    let id = fresh();
                    known.push(id);
                    make_call(id, rng.pick(&[Some(number.as_str()), None]))
                }
                1 => Request::Drop { call },
                2 => Request::Answer { call },
                3 => Request::Hold { call },
                4 => Request::Unhold { call },
                5 => Request::Redirect {
                    call,
                    destination: number,
                },
                6 => Request::BlindTransfer {
                    call,
                    destination: number,
                },
                7 => {
                    let consult = fresh();
                    known.push(consult);
                    Request::SetupTransfer {
                        call,
                        consult: CallId(consult),
                    }
                }
                8 => Request::CompleteTransfer {
                    call,
                    consult: other,
                },
                9 => Request::SwapHold {
                    active: call,
                    held: other,
                },
                10 => Request::Dial {
                    call,
                    digits: number,
                },
                11 => Request::Forward {
                    address: AddressId(0),
                    forward: rng.pick(&[
                        None,
                        Some(Forwarding {
                            mode: ForwardMode::UnconditionalInternal,
                            destination: "9".into(),
                        }),
                    ]),
                },
                12 => Request::SetDoNotDisturb {
                    address: AddressId(0),
                    enabled: rng.next() % 2 == 0,
                },
                _ => Request::QueryAddressStatus {
                    address: AddressId(0),
                },
            };
            h.submit(request);
            // Let the timers interleave with the requests.
            std::thread::sleep(Duration::from_millis(rng.next() % 4));
        }
        let sink = h.sink.clone();
        let state = h.finish();
        std::thread::sleep(Duration::from_millis(20));
        // `finish` took what was recorded; anything recorded now came after shutdown.
        let after = sink.state.lock().unwrap().events.len();
        assert_eq!(after, 0, "seed {seed}: events after shutdown");
        // The sequence must really exercise the phone, not only produce errors.
        let successes = state.completions.iter().filter(|(_, o)| o.is_ok()).count();
        let connected = state
            .events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    DriverEvent::CallState {
                        state: CallState::Connected,
                        ..
                    }
                )
            })
            .count();
        eprintln!("seed {seed}: {successes} successes, {connected} connections");
        assert!(
            successes >= 30 && connected >= 1,
            "seed {seed}: too little happened"
        );
        let mut idle = std::collections::HashSet::new();
        for event in &state.events {
            let call = match event {
                DriverEvent::CallState { call, .. }
                | DriverEvent::CallInfo { call, .. }
                | DriverEvent::NewCall { call, .. } => *call,
                _ => continue,
            };
            assert!(
                !idle.contains(&call),
                "seed {seed}: {event:?} after the call ended"
            );
            // Idle and Disconnected both end the call in the phone (nothing follows).
            if matches!(
                event,
                DriverEvent::CallState {
                    state: CallState::Idle | CallState::Disconnected(_),
                    ..
                }
            ) {
                idle.insert(call);
            }
        }
    }
}

/// Sends `GET path?query` to the driver's HTTP callback and returns the status.
fn http(h: &Harness, target: &str) -> u16 {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    h.driver
        .http_callback(tapir_core::HttpCallback {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
            headers: Vec::new(),
            peer: "127.0.0.1:1".into(),
            body: String::new(),
        })
        .status
}

#[test]
fn ring_over_http_offers_a_call_now() {
    let h = Harness::start("{}");
    assert_eq!(http(&h, "/ring?line=100&from=0301234567&name=Anna+M"), 202);
    h.wait("the offered call", |r| {
        r.events.iter().any(|e| matches!(e, DriverEvent::NewCall { info, .. } if info.calling.name.as_deref() == Some("Anna M")))
    });
    assert_eq!(http(&h, "/ring?line=100"), 400);
    assert_eq!(http(&h, "/ring?line=7&from=1"), 404);
    assert_eq!(http(&h, "/nothing"), 404);
    h.finish();
}

#[test]
fn a_line_added_over_http_is_announced_and_takes_calls() {
    let mut h = Harness::start("{}");
    assert_eq!(http(&h, "/lines/add?key=300&name=Late+line"), 202);
    h.wait("LineCreated 300", |r| {
        r.events.iter().any(|e| {
            matches!(e, DriverEvent::LineCreated { info }
                if info.key.as_str() == "300" && info.name == "Late line"
                    && info.in_service && info.caps.addresses[0].number == "300")
        })
    });
    assert_eq!(http(&h, "/lines/add?key=300"), 409, "the key is in use");
    assert_eq!(http(&h, "/lines/add?name=x"), 400);
    assert_eq!(http(&h, "/lines/add?key=+"), 400, "a blank key");
    let make = h.try_submit("300", make_call(1, Some("200"))).unwrap();
    assert_eq!(h.outcome(make), Ok(Completion::Done));
    h.wait_state(1, CallState::Connected);
    let state = h.finish();
    let created = state
        .events
        .iter()
        .filter(|e| matches!(e, DriverEvent::LineCreated { info } if info.key.as_str() == "300"))
        .count();
    assert_eq!(created, 1);
}

#[test]
fn a_line_removed_over_http_ends_its_calls_first_and_refuses_requests() {
    let mut h = Harness::start(r#"{ "dial_ms": 2000 }"#);
    assert_eq!(http(&h, "/lines/add?key=300"), 202);
    // One call connected on line 100 (kept), one still dialling on 300 (its request pending).
    let dialling = h.try_submit("300", make_call(2, Some("201"))).unwrap();
    h.wait_state(2, CallState::Dialing);
    assert_eq!(http(&h, "/lines/remove?key=300"), 202);
    h.wait("LineRemoved 300", |r| {
        r.events
            .iter()
            .any(|e| matches!(e, DriverEvent::LineRemoved { line } if line.as_str() == "300"))
    });
    // The pending MakeCall completed (the call was placed, then ended), exactly once.
    assert_eq!(h.outcome(dialling), Ok(Completion::Done));
    assert_eq!(h.states(2), vec![CallState::Dialing, CallState::Idle]);
    assert_eq!(
        h.try_submit("300", make_call(3, Some("202")))
            .unwrap_err()
            .kind,
        ErrorKind::BadDeviceId
    );
    assert_eq!(http(&h, "/lines/remove?key=300"), 404, "already gone");
    assert_eq!(http(&h, "/lines/remove"), 400);
    assert_eq!(http(&h, "/ring?line=300&from=1"), 404);
    // Line 100 is untouched, and the key can be added again.
    assert!(h.try_submit("100", make_call(4, None)).is_ok());
    assert_eq!(http(&h, "/lines/add?key=300"), 202);
    h.wait("LineCreated 300 again", |r| {
        r.events
            .iter()
            .filter(
                |e| matches!(e, DriverEvent::LineCreated { info } if info.key.as_str() == "300"),
            )
            .count()
            == 2
    });
    let state = h.finish();
    // Idle before LineRemoved, and nothing about call 2 after it.
    let idle = state
        .events
        .iter()
        .position(|e| matches!(e, DriverEvent::CallState { call, state: CallState::Idle, .. } if call.0 == 2))
        .unwrap();
    let removed = state
        .events
        .iter()
        .position(|e| matches!(e, DriverEvent::LineRemoved { .. }))
        .unwrap();
    assert!(idle < removed);
    assert!(!state.events[removed..].iter().any(|e| matches!(
        e,
        DriverEvent::CallState { call, .. } | DriverEvent::CallInfo { call, .. } if call.0 == 2
    )));
}

#[test]
fn service_changes_over_http_are_reported_and_respected() {
    let mut h = Harness::start("{}");
    assert_eq!(
        http(&h, "/lines/out-of-service?key=100&reason=cable+pulled"),
        202
    );
    h.wait("LineOutOfService", |r| {
        r.events.iter().any(|e| {
            matches!(e, DriverEvent::LineOutOfService { line, reason }
                if line.as_str() == "100" && reason == "cable pulled")
        })
    });
    // Out of service: no calls placed, none offered.
    assert_eq!(
        h.error_kind(make_call(1, Some("200"))),
        ErrorKind::Disconnected
    );
    assert_eq!(http(&h, "/ring?line=100&from=5"), 202);
    assert_eq!(http(&h, "/lines/in-service?key=100"), 202);
    h.wait("LineInService", |r| {
        r.events
            .iter()
            .any(|e| matches!(e, DriverEvent::LineInService { line } if line.as_str() == "100"))
    });
    h.ok(make_call(2, None));
    assert_eq!(http(&h, "/lines/out-of-service?key=9"), 404);
    assert_eq!(http(&h, "/lines/in-service"), 400);
    // A reason is optional.
    assert_eq!(http(&h, "/lines/out-of-service?key=100"), 202);
    h.wait("the second LineOutOfService", |r| {
        r.events.iter().any(|e| {
            matches!(e, DriverEvent::LineOutOfService { reason, .. }
                if reason == "taken out of service over HTTP")
        })
    });
    let state = h.finish();
    assert!(
        !state
            .events
            .iter()
            .any(|e| matches!(e, DriverEvent::NewCall { .. })),
        "no call offered while out of service"
    );
}
