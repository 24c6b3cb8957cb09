//! The acd driver against SIPp on 127.0.0.1: SIPp as the called party (answers, accepts or
//! fails the REFER, is busy, rings until we CANCEL, hangs up) and as the PBX/registrar that
//! sends incoming INVITEs and CANCELs to registered lines.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use tapir_core::*;

const T: Duration = Duration::from_secs(20);

fn config(port: u16, lines: serde_json::Value, register: bool) -> serde_json::Value {
    json!({
        "bind": "127.0.0.1:0",
        "domain": format!("127.0.0.1:{port}"),
        "user": "acd",
        "password": "secret",
        "lines": lines,
        "register": register,
        "register_rate": 200,
        "notify_timeout_secs": 10,
        "ring_timeout_secs": 20,
        "line": [ { "key": "3", "enabled": false } ]
    })
}

fn connected_call(
    scenario: &str,
    call: u64,
) -> (Sipp, std::sync::Arc<Recorder>, Box<dyn PhoneDriver>) {
    let bin = sipp().expect("sipp");
    let peer = start_sipp(&bin, scenario, 1, &[]);
    let rec = Recorder::new();
    let d = build(&config(peer.port(), json!(5), false), rec.clone());
    let mc = make_call(&*d, "2", call, "+49 30 1234");
    assert!(rec.wait_complete(mc, T).is_ok());
    rec.wait_state(CallId(call), CallState::Connected, T);
    (peer, rec, d)
}

#[test]
fn dial_answer_and_transfer_to_agent() {
    if sipp().is_none() {
        return;
    }
    let (mut peer, rec, d) = connected_call("target_transfer", 1);
    let tr = transfer(&*d, "2", 1, "300");
    assert_eq!(rec.wait_complete(tr, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Idle, T);
    peer.assert_passed(T);
    assert_eq!(
        rec.states(CallId(1)),
        [
            CallState::Dialing,
            CallState::Ringback,
            CallState::Connected,
            CallState::Idle
        ]
    );
    assert_eq!(rec.completions_of(tr), 1);
    // The line is free again: a second call is accepted.
    assert!(submit(&*d, "2", Request::Drop { call: CallId(1) }).is_err());
}

#[test]
fn failed_transfer_keeps_the_call_then_drop_sends_bye() {
    if sipp().is_none() {
        return;
    }
    let (mut peer, rec, d) = connected_call("target_transfer_busy", 2);
    let tr = transfer(&*d, "2", 2, "301");
    let outcome = rec.wait_complete(tr, T);
    let err = outcome.expect_err("transfer must fail");
    assert_eq!(err.kind, ErrorKind::OperationFailed);
    assert!(err.detail.contains("486"), "{err:?}");
    assert_eq!(rec.states(CallId(2)).last(), Some(&CallState::Connected));
    let dr = drop_call(&*d, "2", 2);
    assert_eq!(rec.wait_complete(dr, T), Ok(Completion::Done));
    rec.wait_state(CallId(2), CallState::Idle, T);
    peer.assert_passed(T);
}

#[test]
fn busy_target_reports_busy_then_disconnected_and_frees_the_line() {
    let Some(bin) = sipp() else { return };
    let mut peer = start_sipp(&bin, "target_busy", 1, &[]);
    let rec = Recorder::new();
    let mut cfg = config(peer.port(), json!(5), false);
    cfg["max_calls"] = json!(1);
    let d = build(&cfg, rec.clone());
    let mc = make_call(&*d, "1", 3, "200");
    // Placed once the INVITE was out; the busy target is a state, not a failed MakeCall.
    assert_eq!(rec.wait_complete(mc, T), Ok(Completion::Done));
    rec.wait_state(CallId(3), CallState::Disconnected(DisconnectMode::Busy), T);
    peer.assert_passed(T);
    assert_eq!(
        rec.states(CallId(3)),
        [
            CallState::Dialing,
            CallState::Busy(BusyMode::Station),
            CallState::Disconnected(DisconnectMode::Busy)
        ]
    );
    let cause = rec.info(CallId(3)).and_then(|i| i.cause);
    assert_eq!(cause.as_deref(), Some("486 Busy Here"));
    // The driver holds nothing: a Drop is refused as unknown, the line takes a new call.
    let gone = submit(&*d, "1", Request::Drop { call: CallId(3) });
    assert_eq!(gone.map_err(|e| e.kind), Err(ErrorKind::InvalidCallHandle));
    let next = submit(
        &*d,
        "1",
        Request::MakeCall {
            call: CallId(33),
            address: AddressId(0),
            destination: Some("201".into()),
        },
    );
    assert!(next.is_ok(), "{next:?}");
    assert_eq!(rec.completions_of(mc), 1);
}

#[test]
fn drop_while_ringing_cancels() {
    let Some(bin) = sipp() else { return };
    let mut peer = start_sipp(&bin, "target_ring_cancel", 1, &[]);
    let rec = Recorder::new();
    let d = build(&config(peer.port(), json!(5), false), rec.clone());
    make_call(&*d, "1", 4, "200");
    rec.wait_state(CallId(4), CallState::Ringback, T);
    let dr = drop_call(&*d, "1", 4);
    assert_eq!(rec.wait_complete(dr, T), Ok(Completion::Done));
    rec.wait_state(CallId(4), CallState::Idle, T);
    peer.assert_passed(T);
    assert!(!rec.states(CallId(4)).contains(&CallState::Connected));
}

#[test]
fn drop_after_answer_sends_bye() {
    if sipp().is_none() {
        return;
    }
    let (mut peer, rec, d) = connected_call("target_answer", 5);
    let dr = drop_call(&*d, "2", 5);
    assert_eq!(rec.wait_complete(dr, T), Ok(Completion::Done));
    rec.wait_state(CallId(5), CallState::Idle, T);
    peer.assert_passed(T);
}

#[test]
fn far_end_hang_up_disconnects() {
    if sipp().is_none() {
        return;
    }
    let (mut peer, rec, d) = connected_call("target_hangs_up", 6);
    rec.wait_state(
        CallId(6),
        CallState::Disconnected(DisconnectMode::Normal),
        T,
    );
    peer.assert_passed(T);
    // Nothing is left to drop in the driver (the front end answers the application's Drop).
    let gone = submit(&*d, "2", Request::Drop { call: CallId(6) });
    assert_eq!(gone.map_err(|e| e.kind), Err(ErrorKind::InvalidCallHandle));
    assert_eq!(
        rec.states(CallId(6)).last(),
        Some(&CallState::Disconnected(DisconnectMode::Normal))
    );
}

#[test]
fn disabled_line_exists_and_refuses_as_unavailable() {
    let rec = Recorder::new();
    let d = build(&config(9, json!(["1-5", "vip"]), false), rec.clone());
    let lines: Vec<String> = rec
        .events
        .lock()
        .map(|e| {
            e.iter()
                .filter_map(|e| match e {
                    DriverEvent::LineCreated { info } => Some(info.key.0.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(lines, ["1", "2", "3", "4", "5", "vip"]);
    let err = submit(
        &*d,
        "3",
        Request::MakeCall {
            call: CallId(7),
            address: AddressId(0),
            destination: Some("1".into()),
        },
    )
    .expect_err("disabled");
    assert_eq!(err.kind, ErrorKind::OperationUnavailable);
    let err = submit(&*d, "1", Request::Hold { call: CallId(7) }).expect_err("no hold");
    assert_eq!(err.kind, ErrorKind::OperationUnavailable);
    let err = submit(&*d, "99", Request::Drop { call: CallId(7) }).expect_err("no line");
    assert_eq!(err.kind, ErrorKind::BadDeviceId);
}

fn pbx(scenario: &str) -> Option<(Sipp, std::sync::Arc<Recorder>, Box<dyn PhoneDriver>)> {
    let bin = sipp()?;
    let peer = start_sipp(&bin, scenario, 1, &[]);
    let rec = Recorder::new();
    // One registering line: SIPp takes one REGISTER.
    let mut cfg = config(peer.port(), json!(["7"]), true);
    cfg["line"] = json!([]);
    let d = build(&cfg, rec.clone());
    rec.wait_for(T, "line 7 in service", |ev| {
        ev.iter()
            .any(|e| matches!(e, DriverEvent::LineInService { line } if line.0 == "7"))
    });
    rec.wait_for(T, "an offered call", |ev| {
        ev.iter().any(|e| matches!(e, DriverEvent::NewCall { .. }))
    });
    Some((peer, rec, d))
}

fn offered(rec: &Recorder) -> (LineKey, CallId, CallInfo) {
    rec.new_calls().into_iter().next().expect("offered")
}

#[test]
fn incoming_call_is_offered_then_cancelled_as_answered_elsewhere() {
    let Some((mut peer, rec, d)) = pbx("pbx_cancel_elsewhere") else {
        return;
    };
    let (line, call, info) = offered(&rec);
    assert_eq!(line.0, "7");
    assert_eq!(info.direction, CallDirection::Incoming);
    assert_eq!(info.calling.number.as_deref(), Some("+4930555"));
    assert_eq!(info.calling.name.as_deref(), Some("Jane Caller"));
    // The line starts out of service until registered.
    rec.wait_state(call, CallState::Disconnected(DisconnectMode::Pickup), T);
    rec.wait_state(call, CallState::Idle, T);
    d.shutdown();
    peer.assert_passed(T);
}

#[test]
fn incoming_call_cancelled_by_the_caller() {
    let Some((mut peer, rec, d)) = pbx("pbx_cancel_plain") else {
        return;
    };
    let (_, call, _) = offered(&rec);
    rec.wait_state(call, CallState::Disconnected(DisconnectMode::Cancelled), T);
    rec.wait_state(call, CallState::Idle, T);
    d.shutdown();
    peer.assert_passed(T);
}

#[test]
fn incoming_call_redirected_to_an_agent() {
    let Some((mut peer, rec, d)) = pbx("pbx_redirect") else {
        return;
    };
    let (line, call, _) = offered(&rec);
    let id = submit(
        &*d,
        &line.0,
        Request::Redirect {
            call,
            destination: "300".into(),
        },
    )
    .expect("accepted");
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done));
    rec.wait_state(call, CallState::Disconnected(DisconnectMode::Forwarded), T);
    rec.wait_state(call, CallState::Idle, T);
    d.shutdown();
    peer.assert_passed(T);
}

#[test]
fn registration_failure_is_out_of_service_then_retried_with_backoff() {
    let Some(bin) = sipp() else { return };
    let mut peer = start_sipp(&bin, "registrar_reject_then_accept", 1, &[]);
    let rec = Recorder::new();
    let mut cfg = config(peer.port(), json!(["4"]), true);
    cfg["line"] = json!([]);
    let started = std::time::Instant::now();
    let d = build(&cfg, rec.clone());
    rec.wait_for(T, "out of service", |ev| {
        ev.iter().any(
            |e| matches!(e, DriverEvent::LineOutOfService { reason, .. } if reason.contains("503")),
        )
    });
    rec.wait_for(T, "in service after the retry", |ev| {
        ev.iter()
            .any(|e| matches!(e, DriverEvent::LineInService { .. }))
    });
    // First retry: 2 s base times a jitter in [0.5, 1).
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // Shutdown removes the binding (the third REGISTER).
    d.shutdown();
    peer.assert_passed(T);
}

#[test]
fn transfer_reaches_the_agent_phone() {
    let Some(bin) = sipp() else { return };
    let mut agent = start_sipp(&bin, "agent", 1, &[]);
    let agent_port = agent.port().to_string();
    let mut target = start_sipp(
        &bin,
        "target_transfer_to_agent",
        1,
        &["-key", "agent_port", &agent_port],
    );
    let rec = Recorder::new();
    let d = build(&config(target.port(), json!(5), false), rec.clone());
    let mc = make_call(&*d, "1", 8, "4930123");
    assert!(rec.wait_complete(mc, T).is_ok());
    rec.wait_state(CallId(8), CallState::Connected, T);
    let tr = transfer(&*d, "1", 8, "300");
    assert_eq!(rec.wait_complete(tr, T), Ok(Completion::Done));
    rec.wait_state(CallId(8), CallState::Idle, T);
    target.assert_passed(T);
    agent.assert_passed(T);
}

#[test]
fn drop_during_the_transfer_fails_it_and_releases_the_call() {
    if sipp().is_none() {
        return;
    }
    let (mut peer, rec, d) = connected_call("target_transfer_pending", 9);
    let tr = transfer(&*d, "2", 9, "300");
    // Let the REFER be accepted and the first NOTIFY arrive.
    std::thread::sleep(Duration::from_millis(500));
    let dr = drop_call(&*d, "2", 9);
    let err = rec
        .wait_complete(tr, T)
        .expect_err("the transfer cannot succeed");
    assert_eq!(err.kind, ErrorKind::OperationFailed);
    assert_eq!(rec.wait_complete(dr, T), Ok(Completion::Done));
    rec.wait_state(CallId(9), CallState::Idle, T);
    peer.assert_passed(T);
    assert_eq!((rec.completions_of(tr), rec.completions_of(dr)), (1, 1));
}

#[test]
fn dial_and_transfer_over_tcp() {
    let Some(bin) = sipp() else { return };
    let mut peer = start_sipp_on(&bin, "target_transfer", true, 1, &[]);
    let rec = Recorder::new();
    let mut cfg = config(peer.port(), json!(5), false);
    cfg["transport"] = json!("tcp");
    let d = build(&cfg, rec.clone());
    make_call(&*d, "1", 10, "4930123");
    rec.wait_state(CallId(10), CallState::Connected, T);
    let tr = transfer(&*d, "1", 10, "300");
    assert_eq!(rec.wait_complete(tr, T), Ok(Completion::Done));
    rec.wait_state(CallId(10), CallState::Idle, T);
    peer.assert_passed(T);
}
