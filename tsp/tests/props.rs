//! Property test: random sequences of application requests and driver reports through the
//! front end against the scripted driver. Checked after every run:
//! - every accepted request completes exactly once, a refused one never;
//! - Idle is terminal: nothing is published for a call after its Idle;
//! - no call or line event is published for a line while it is closed;
//! - every NewCall is immediately followed by that call's CallState;
//! - each line's count of live calls (the `max_calls` check) equals the calls that are neither
//!   Disconnected nor Idle.

mod support;

use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use support::{Mode, Script};
use tapir_core::*;
use tapir_tsp::*;

const LINES: u32 = 2;

#[derive(Debug, Clone)]
enum Step {
    Open(u32),
    Close(u32),
    MakeCall(u32, Mode),
    Act(usize, u8, Mode),
    CloseCall(usize),
    Complete(usize, bool),
    CompleteTwice(usize),
    State(usize, u8),
    Incoming(u32),
}

fn state_from(n: u8) -> CallState {
    match n % 8 {
        0 => CallState::Dialing,
        1 => CallState::Ringback,
        2 => CallState::Connected,
        3 => CallState::OnHold,
        4 => CallState::Disconnected(DisconnectMode::Normal),
        5 => CallState::Idle,
        6 => CallState::Proceeding,
        _ => CallState::Busy(BusyMode::Station),
    }
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        8 => Just(Mode::Accept),
        1 => Just(Mode::Refuse),
        1 => Just(Mode::Panic),
        1 => Just(Mode::DisconnectThenRefuse)
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0..LINES + 1).prop_map(Step::Open),
        1 => (0..LINES).prop_map(Step::Close),
        3 => (0..LINES + 1, mode()).prop_map(|(l, m)| Step::MakeCall(l, m)),
        3 => (0usize..8, 0u8..6, mode()).prop_map(|(c, a, m)| Step::Act(c, a, m)),
        1 => (0usize..8).prop_map(Step::CloseCall),
        3 => (0usize..8, any::<bool>()).prop_map(|(r, ok)| Step::Complete(r, ok)),
        1 => (0usize..8).prop_map(Step::CompleteTwice),
        4 => (0usize..8, any::<u8>()).prop_map(|(c, s)| Step::State(c, s)),
        1 => (0..LINES).prop_map(Step::Incoming),
    ]
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let tsp = Tsp::new(TspConfig::default());
    let script = Script::new();
    tsp.add_driver("scripted", script.build(LINES as usize))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    tsp.sync();
    let mut rx = tsp.subscribe();
    let sink = script.sink();

    let mut open: HashMap<u32, u32> = HashMap::new();
    let mut calls: Vec<(CallId, u32)> = Vec::new();
    let mut accepted: Vec<(RequestId, u32)> = Vec::new();
    let mut accepted_set = HashSet::new();
    let mut completions: HashMap<RequestId, usize> = HashMap::new();
    let mut idle: HashSet<CallId> = HashSet::new();

    let check = |events: Vec<Sequenced>,
                 open: &HashMap<u32, u32>,
                 completions: &mut HashMap<RequestId, usize>,
                 idle: &mut HashSet<CallId>|
     -> Result<(), TestCaseError> {
        let mut previous: Option<TspEvent> = None;
        for e in events {
            if let Some(TspEvent::NewCall { call, .. }) = &previous {
                prop_assert!(
                    matches!(&e.event, TspEvent::CallState { call: c, .. } if c == call),
                    "NewCall not followed by its CallState: {:?}",
                    e.event
                );
            }
            match &e.event {
                TspEvent::Completed { request, .. } => {
                    *completions.entry(*request).or_default() += 1;
                }
                TspEvent::LineCreated { .. } | TspEvent::LineRemoved { .. } => {}
                other => {
                    let line = other.line().0;
                    prop_assert!(
                        open.get(&line).copied().unwrap_or(0) > 0,
                        "event for closed line {line}: {other:?}"
                    );
                    match other {
                        TspEvent::CallState { call, state, .. } => {
                            prop_assert!(
                                !idle.contains(call),
                                "state {state:?} after Idle for {call}"
                            );
                            if state.is_idle() {
                                idle.insert(*call);
                            }
                        }
                        TspEvent::CallInfo { call, .. } => {
                            prop_assert!(!idle.contains(call), "info after Idle for {call}");
                        }
                        _ => {}
                    }
                }
            }
            previous = Some(e.event);
        }
        Ok(())
    };

    for step in steps {
        match step {
            Step::Open(l) => {
                if tsp.open_line(LineId(l)).is_ok() {
                    *open.entry(l).or_default() += 1;
                }
            }
            Step::Close(l) => {
                if tsp.close_line(LineId(l)).is_ok() {
                    *open.entry(l).or_default() -= 1;
                }
            }
            Step::MakeCall(l, m) => {
                script.push_mode(m);
                match tsp.submit(Action::MakeCall {
                    line: LineId(l),
                    address: AddressId(0),
                    destination: Some("100".into()),
                }) {
                    Ok(a) => {
                        accepted.push((a.request, l));
                        accepted_set.insert(a.request);
                        if let Some(c) = a.call {
                            calls.push((c, l));
                        }
                    }
                    Err(_) => {
                        // Not consumed when the front end refused before the driver.
                        script.0.lock().unwrap().modes.clear();
                    }
                }
            }
            Step::Act(c, a, m) => {
                let Some((call, _)) = calls.get(c % calls.len().max(1)).copied() else {
                    continue;
                };
                let action = match a {
                    0 => Action::Drop { call },
                    1 => Action::Hold { call },
                    2 => Action::Unhold { call },
                    3 => Action::Answer { call },
                    4 => Action::Dial {
                        call,
                        digits: "5".into(),
                    },
                    _ => Action::BlindTransfer {
                        call,
                        destination: "300".into(),
                    },
                };
                script.push_mode(m);
                match tsp.submit(action) {
                    Ok(a) => {
                        let line = calls
                            .iter()
                            .find(|(id, _)| *id == call)
                            .map(|(_, l)| *l)
                            .unwrap_or(0);
                        accepted.push((a.request, line));
                        accepted_set.insert(a.request);
                    }
                    Err(_) => script.0.lock().unwrap().modes.clear(),
                }
            }
            Step::CloseCall(c) => {
                if let Some((call, _)) = calls.get(c % calls.len().max(1)).copied() {
                    script.push_mode(Mode::Accept);
                    let _ = tsp.close_call(call);
                    script.0.lock().unwrap().modes.clear();
                }
            }
            Step::Complete(r, ok) => {
                if let Some((id, _)) = accepted.get(r % accepted.len().max(1)).copied() {
                    let outcome = if ok {
                        Ok(Completion::Done)
                    } else {
                        Err(DriverError::failed("no"))
                    };
                    script.complete(id, outcome);
                }
            }
            Step::CompleteTwice(r) => {
                if let Some((id, _)) = accepted.get(r % accepted.len().max(1)).copied() {
                    script.complete(id, Ok(Completion::Done));
                    script.complete(id, Ok(Completion::Done));
                }
            }
            Step::State(c, s) => {
                if let Some((call, l)) = calls.get(c % calls.len().max(1)).copied() {
                    script.event(DriverEvent::CallState {
                        line: LineKey::new(format!("L{l}")),
                        call,
                        state: state_from(s),
                    });
                }
            }
            Step::Incoming(l) => {
                let call = sink.new_call_id();
                sink.event(DriverEvent::NewCall {
                    line: LineKey::new(format!("L{l}")),
                    call,
                    state: CallState::Offering,
                    info: CallInfo::default(),
                });
                calls.push((call, l));
            }
        }
        tsp.sync();
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        check(events, &open, &mut completions, &mut idle)?;
        let snapshot = tsp.calls();
        for l in 0..LINES {
            let live = snapshot
                .iter()
                .filter(|c| c.line == LineId(l) && c.state.is_live())
                .count() as u32;
            prop_assert_eq!(tsp.live_calls(LineId(l)), Some(live), "line {}", l);
        }
    }
    // Complete everything the driver still holds, then shut down: all must be accounted for.
    for (id, _) in &accepted {
        script.complete(*id, Ok(Completion::Done));
    }
    tsp.sync();
    tsp.shutdown();
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    check(events, &open, &mut completions, &mut idle)?;
    for id in &accepted_set {
        prop_assert_eq!(
            completions.get(id).copied().unwrap_or(0),
            1,
            "request {} completions",
            id
        );
    }
    for id in completions.keys() {
        prop_assert!(
            accepted_set.contains(id),
            "completion for request {id} that was refused"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn requests_complete_once_idle_is_terminal_closed_lines_hear_nothing(steps in prop::collection::vec(step(), 1..60)) {
        run(steps)?;
    }
}
