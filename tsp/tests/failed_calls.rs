//! The failed-call rule in the front end (ARCHITECTURE.md, "When MakeCall completes"): a
//! failed MakeCall forgets its call, `max_calls` counts only calls that are neither
//! Disconnected nor Idle, and the Drop of a Disconnected call is answered by the front end at
//! once (Idle, completed Ok) without reaching the driver, also when it crossed the driver's
//! report.

mod support;

use support::{Mode, Script};
use tapir_core::*;
use tapir_tsp::*;

/// One line "L0" (device id 0) carrying at most one call, opened.
fn one_call_line() -> (Tsp, Script, tokio::sync::broadcast::Receiver<Sequenced>) {
    let tsp = Tsp::new(TspConfig::default());
    let script = Script::new();
    tsp.add_driver("scripted", script.build_with_max_calls(1, 1))
        .expect("builds");
    tsp.sync();
    let rx = tsp.subscribe();
    tsp.open_line(LineId(0)).expect("opens");
    (tsp, script, rx)
}

fn make_call(tsp: &Tsp) -> Result<Accepted, DriverError> {
    tsp.submit(Action::MakeCall {
        line: LineId(0),
        address: AddressId(0),
        destination: Some("200".into()),
    })
}

fn state(script: &Script, call: CallId, state: CallState) {
    script.event(DriverEvent::CallState {
        line: LineKey::new("L0"),
        call,
        state,
    });
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<Sequenced>) -> Vec<TspEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e.event);
    }
    out
}

fn completion(events: &[TspEvent], request: RequestId) -> Vec<RequestResult> {
    events
        .iter()
        .filter_map(|e| match e {
            TspEvent::Completed {
                request: r, result, ..
            } if *r == request => Some(result.clone()),
            _ => None,
        })
        .collect()
}

fn drops_seen_by_driver(script: &Script) -> usize {
    script
        .received()
        .iter()
        .filter(|r| matches!(r.request, Request::Drop { .. }))
        .count()
}

/// Places a call that the driver starts (Ok), then fails as `end`; returns its id.
fn failed_call(tsp: &Tsp, script: &Script, end: CallState) -> CallId {
    let a = make_call(tsp).expect("the line has room");
    let call = a.call.expect("a call");
    state(script, call, CallState::Dialing);
    script.complete(a.request, Ok(Completion::Done));
    state(script, call, end);
    tsp.sync();
    call
}

#[test]
fn a_disconnected_call_holds_no_place_on_its_line() {
    let (tsp, script, _rx) = one_call_line();
    let first = failed_call(&tsp, &script, CallState::Disconnected(DisconnectMode::Busy));
    assert_eq!(tsp.live_calls(LineId(0)), Some(0));
    // Before the rule the second call got 409 resource_unavailable here, until a restart.
    let second = make_call(&tsp).expect("a failed call does not block its line");
    assert_eq!(tsp.live_calls(LineId(0)), Some(1));
    // The line is full again with the live call: a third MakeCall is refused.
    let refused = make_call(&tsp).expect_err("one live call is the line's maximum");
    assert_eq!(refused.kind, ErrorKind::ResourceUnavailable);
    // The first call is still there, Disconnected, until the application drops it.
    assert_eq!(
        tsp.call(first).map(|c| c.state),
        Some(CallState::Disconnected(DisconnectMode::Busy))
    );
    assert!(second.call.is_some());
}

#[test]
fn busy_holds_its_place_until_disconnected() {
    let (tsp, script, _rx) = one_call_line();
    let call = failed_call(&tsp, &script, CallState::Busy(BusyMode::Station));
    assert_eq!(tsp.live_calls(LineId(0)), Some(1));
    assert_eq!(
        make_call(&tsp).expect_err("busy is live").kind,
        ErrorKind::ResourceUnavailable
    );
    state(&script, call, CallState::Disconnected(DisconnectMode::Busy));
    tsp.sync();
    assert_eq!(tsp.live_calls(LineId(0)), Some(0));
    make_call(&tsp).expect("room again");
}

#[test]
fn dropping_a_disconnected_call_is_answered_at_once_without_the_driver() {
    let (tsp, script, mut rx) = one_call_line();
    let call = failed_call(
        &tsp,
        &script,
        CallState::Disconnected(DisconnectMode::Reject),
    );
    drain(&mut rx);
    let dropped = tsp.submit(Action::Drop { call }).expect("drop accepted");
    tsp.sync();
    let events = drain(&mut rx);
    assert_eq!(
        completion(&events, dropped.request),
        vec![RequestResult::Ok(Completion::Done)],
        "{events:?}"
    );
    let idle_at = events
        .iter()
        .position(|e| matches!(e, TspEvent::CallState { call: c, state: CallState::Idle, .. } if *c == call))
        .expect("Idle published");
    let done_at = events
        .iter()
        .position(
            |e| matches!(e, TspEvent::Completed { request, .. } if *request == dropped.request),
        )
        .expect("completion published");
    assert!(
        idle_at < done_at,
        "the call is Idle when its Drop completes"
    );
    assert_eq!(drops_seen_by_driver(&script), 0, "the driver holds nothing");
    assert_eq!(tsp.call(call).map(|c| c.state), Some(CallState::Idle));
    // Idle is terminal; the application deallocates the call.
    tsp.close_call(call).expect("closes");
    assert!(tsp.call(call).is_none());
    assert_eq!(drops_seen_by_driver(&script), 0);
}

#[test]
fn a_drop_crossing_the_drivers_disconnect_report_still_completes_ok() {
    let (tsp, script, mut rx) = one_call_line();
    let a = make_call(&tsp).expect("accepted");
    let call = a.call.expect("call");
    state(&script, call, CallState::Ringback);
    script.complete(a.request, Ok(Completion::Done));
    tsp.sync();
    drain(&mut rx);
    // The application still sees Ringback and drops; the driver has just ended the call
    // (reported Disconnected, forgot it) and refuses the Drop as an unknown call.
    script.push_mode(Mode::DisconnectThenRefuse);
    let dropped = tsp
        .submit(Action::Drop { call })
        .expect("the front end answers the crossed Drop");
    tsp.sync();
    let events = drain(&mut rx);
    assert_eq!(
        completion(&events, dropped.request),
        vec![RequestResult::Ok(Completion::Done)],
        "{events:?}"
    );
    let states: Vec<CallState> = events
        .iter()
        .filter_map(|e| match e {
            TspEvent::CallState { call: c, state, .. } if *c == call => Some(*state),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        vec![
            CallState::Disconnected(DisconnectMode::Unreachable),
            CallState::Idle
        ]
    );
}

#[test]
fn a_drop_the_driver_fails_later_after_reporting_the_call_ended_completes_ok() {
    // `tapir call` to a busy number: the application drops on Busy while the driver's worker
    // thread has already ended the call (Busy, then Disconnected); the driver's completion of
    // the Drop says "unknown call". The line must still end Idle and the Drop succeed.
    let (tsp, script, mut rx) = one_call_line();
    for _ in 0..20 {
        let a = make_call(&tsp).expect("accepted");
        let call = a.call.expect("call");
        script.complete(a.request, Ok(Completion::Done));
        state(&script, call, CallState::Busy(BusyMode::Station));
        tsp.sync();
        drain(&mut rx);
        script.push_mode(Mode::DisconnectThenFail);
        let dropped = tsp.submit(Action::Drop { call }).expect("accepted");
        let mut events = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while completion(&events, dropped.request).is_empty() {
            assert!(std::time::Instant::now() < deadline, "{events:?}");
            tsp.sync();
            events.extend(drain(&mut rx));
        }
        assert_eq!(
            completion(&events, dropped.request),
            vec![RequestResult::Ok(Completion::Done)],
            "{events:?}"
        );
        assert_eq!(tsp.call(call).map(|c| c.state), Some(CallState::Idle));
        tsp.close_call(call).expect("closes");
    }
}

#[test]
fn a_drop_the_driver_refuses_for_a_live_call_stays_refused() {
    let (tsp, script, mut rx) = one_call_line();
    let a = make_call(&tsp).expect("accepted");
    let call = a.call.expect("call");
    state(&script, call, CallState::Connected);
    tsp.sync();
    drain(&mut rx);
    script.push_mode(Mode::Refuse);
    assert!(tsp.submit(Action::Drop { call }).is_err());
    tsp.sync();
    let events = drain(&mut rx);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, TspEvent::Completed { .. })),
        "a refused request never completes: {events:?}"
    );
    assert_eq!(tsp.call(call).map(|c| c.state), Some(CallState::Connected));
    assert_eq!(tsp.live_calls(LineId(0)), Some(1));
}

#[test]
fn a_failed_makecall_forgets_its_call_and_frees_the_line() {
    let (tsp, script, mut rx) = one_call_line();
    // Announced first (the driver reported Dialing), then the start failed.
    let a = make_call(&tsp).expect("accepted");
    let call = a.call.expect("call");
    state(&script, call, CallState::Dialing);
    script.complete(a.request, Err(DriverError::failed("no route to the phone")));
    tsp.sync();
    let events = drain(&mut rx);
    assert!(
        events.iter().any(|e| matches!(e, TspEvent::CallState { call: c, state: CallState::Idle, .. } if *c == call)),
        "an application that saw the call sees it end: {events:?}"
    );
    assert!(tsp.call(call).is_none(), "the call never existed");
    assert_eq!(tsp.live_calls(LineId(0)), Some(0));
    // Never announced: gone without an event.
    let b = make_call(&tsp).expect("the line is free");
    let quiet = b.call.expect("call");
    script.complete(b.request, Err(DriverError::failed("refused by the PBX")));
    tsp.sync();
    let events = drain(&mut rx);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, TspEvent::CallState { call: c, .. } if *c == quiet)),
        "{events:?}"
    );
    assert!(tsp.call(quiet).is_none());
    make_call(&tsp).expect("still free");
}

#[test]
fn closing_a_disconnected_call_does_not_reach_the_driver() {
    let (tsp, script, _rx) = one_call_line();
    let call = failed_call(
        &tsp,
        &script,
        CallState::Disconnected(DisconnectMode::NoAnswer),
    );
    tsp.close_call(call).expect("closes");
    assert!(tsp.call(call).is_none());
    assert_eq!(drops_seen_by_driver(&script), 0);
}

#[test]
fn many_calls_in_a_row_with_failures_never_fill_the_line() {
    let (tsp, script, mut rx) = one_call_line();
    let ends = [
        CallState::Disconnected(DisconnectMode::Busy),
        CallState::Disconnected(DisconnectMode::Reject),
        CallState::Disconnected(DisconnectMode::NoAnswer),
        CallState::Disconnected(DisconnectMode::Unreachable),
        CallState::Disconnected(DisconnectMode::Normal),
    ];
    for i in 0..200 {
        let call = failed_call(&tsp, &script, ends[i % ends.len()]);
        let dropped = tsp.submit(Action::Drop { call }).expect("drop");
        tsp.sync();
        let events = drain(&mut rx);
        assert_eq!(
            completion(&events, dropped.request),
            vec![RequestResult::Ok(Completion::Done)]
        );
        tsp.close_call(call).expect("close");
    }
    assert!(tsp.calls().is_empty());
    assert_eq!(tsp.live_calls(LineId(0)), Some(0));
    assert_eq!(drops_seen_by_driver(&script), 0);
}
