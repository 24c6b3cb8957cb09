//! Honest capabilities: a line and each call offer only what can succeed now; a failed drop
//! leaves the call as it is; a held and a connected call can be joined; a transfer on the
//! phone's own keys looks like an API transfer; redirect never by a key that could answer.

mod common;

use common::*;
use std::time::Duration;
use tapir_core::{CallState, DisconnectMode, ErrorKind, Operation};
use tapir_snom_sim::SimConfig;
use tapir_tsp::{Action, RequestResult, TspEvent};

const MAC: &str = "000413000121";

fn setup(
    sim: SimConfig,
    extra: &str,
) -> (
    Harness,
    std::sync::Arc<tapir_snom_sim::SimPhone>,
    tapir_core::LineId,
) {
    let sim_rt = tapir_snom_sim::Sim::new(2).expect("sim");
    let phone = sim_rt.phone(sim).expect("phone");
    let h = Harness::start_with(&one_phone(phone.addr(), MAC, extra), sim_rt);
    h.configured(MAC);
    let line = h.open(MAC);
    (h, phone, line)
}

fn csta_of(phone: &tapir_snom_sim::SimPhone, remote: &str) -> u64 {
    phone
        .calls()
        .iter()
        .find(|c| c.remote == remote)
        .map(|c| c.csta)
        .expect("the phone has that call")
}

/// A held incoming call from 700 and a connected outgoing one to 701.
fn held_and_connected(
    h: &mut Harness,
    phone: &tapir_snom_sim::SimPhone,
    line: tapir_core::LineId,
) -> (tapir_core::CallId, tapir_core::CallId) {
    let a = h.incoming(phone, "700");
    let (_, r) = h.run(Action::Answer { call: a }).expect("accepted");
    assert!(ok(&r));
    h.expect_state(a, CallState::Connected);
    let (_, r) = h.run(Action::Hold { call: a }).expect("accepted");
    assert!(ok(&r));
    h.expect_state(a, CallState::OnHold);
    assert!(
        !h.tsp
            .call_features(a)
            .contains(&Operation::CompleteTransfer),
        "no consultation call yet: {:?}",
        h.tsp.call_features(a)
    );
    let b = h.make_call(line, "701");
    h.expect_state(b, CallState::Ringback);
    phone.remote_answer(csta_of(phone, "701"));
    h.expect_state(b, CallState::Connected);
    (a, b)
}

#[test]
fn a_d8xx_phone_without_csta_offers_no_call_control() {
    let (mut h, phone, line) = setup(
        SimConfig {
            model: "snomD865".into(),
            ..sim_config(MAC)
        },
        "",
    );
    h.wait_until("caps of a D8xx", || {
        !h.line_now(line)
            .caps
            .operations
            .contains(Operation::MakeCall)
    });
    let ops = h.line_now(line).caps.operations;
    for op in [Operation::Answer, Operation::Hold, Operation::BlindTransfer] {
        assert!(!ops.contains(op), "{op:?} offered on a D8xx");
    }
    for op in [Operation::Drop, Operation::DoNotDisturb, Operation::Forward] {
        assert!(ops.contains(op), "{op:?} missing");
    }
    // Calls are still followed, and one the phone ended can be dropped.
    let call = h.incoming(&phone, "702");
    assert!(!h.tsp.call_features(call).contains(&Operation::Answer));
    phone.remote_hangup(csta_of(&phone, "702"));
    h.ended(call, DisconnectMode::NoAnswer);
}

#[test]
fn a_failed_drop_leaves_the_call_and_it_ends_like_any_other_later() {
    let (mut h, phone, line) = setup(
        sim_config(MAC),
        r#", "liveness_interval_secs": 1, "request_timeout_ms": 500"#,
    );
    let call = h.incoming(&phone, "703");
    let (_, r) = h.run(Action::Answer { call }).expect("accepted");
    assert!(ok(&r));
    h.expect_state(call, CallState::Connected);
    phone.go_offline();
    let (_, r) = h.run(Action::Drop { call }).expect("accepted");
    assert!(
        matches!(r, RequestResult::Err(ref e) if e.kind == ErrorKind::Disconnected),
        "{r:?}"
    );
    assert_eq!(
        h.tsp.call(call).map(|c| c.state),
        Some(CallState::Connected)
    );
    phone.come_back().expect("listens again");
    h.expect(
        "back in service",
        |e| matches!(e, TspEvent::LineService { line: l, in_service: true, .. } if *l == line),
    );
    phone.remote_hangup(csta_of(&phone, "703"));
    h.ended(call, DisconnectMode::Normal);
}

#[test]
fn a_held_and_a_connected_call_are_joined_by_complete_transfer() {
    let (mut h, phone, line) = setup(sim_config(MAC), "");
    let (a, b) = held_and_connected(&mut h, &phone, line);
    assert!(h
        .tsp
        .call_features(a)
        .contains(&Operation::CompleteTransfer));
    let (_, r) = h
        .run(Action::CompleteTransfer {
            call: a,
            consult: b,
        })
        .expect("accepted");
    assert!(ok(&r), "{r:?}");
    h.expect_state(a, CallState::Idle);
    h.expect_state(b, CallState::Idle);
    assert!(phone.calls().is_empty());
    assert!(phone.requests().iter().any(|r| r.contains("key=TRANSFER")));
}

#[test]
fn a_transfer_on_the_phones_keys_is_reported_like_an_api_transfer() {
    let (mut h, phone, line) = setup(sim_config(MAC), "");
    let (a, b) = held_and_connected(&mut h, &phone, line);
    // The user presses TRANSFER on the phone.
    let addr = phone.addr();
    let status =
        tapir_snom_sim::Sim::new(1)
            .expect("rt")
            .handle()
            .block_on(tapir_snom_sim::fire::get(
                &format!("http://{addr}/command.htm?key=TRANSFER"),
                Duration::from_secs(2),
            ));
    assert_eq!(status, Some(200));
    let mut events = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ![a, b].iter().all(|c| {
        events.iter().any(
            |e| matches!(e, TspEvent::CallState { call, state: CallState::Idle, .. } if call == c),
        )
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "both calls idle: {events:?}"
        );
        events.extend(h.drain(Duration::from_millis(50)));
    }
    assert!(
        !events.iter().any(|e| matches!(
            e,
            TspEvent::CallState {
                state: CallState::Disconnected(_),
                ..
            }
        )),
        "the same Idle as an API transfer, no Disconnected: {events:?}"
    );
}

#[test]
fn f_redirect_is_refused_as_a_redirect_key() {
    let err = tapir_plugin_snom::validate(r#"{"redirect_key": "F_REDIRECT"}"#)
        .expect_err("F_REDIRECT toggles forwarding");
    assert!(err.contains("F_DEFLECT"), "{err}");
}

#[test]
fn a_function_key_deflects_only_when_it_is_programmed_to() {
    // P3 is not programmed: no redirect over keys.
    let (h, _phone, line) = setup(sim_config(MAC), r#", "redirect_key": "P3""#);
    assert!(!h
        .line_now(line)
        .caps
        .operations
        .contains(Operation::Redirect));
    drop(h);
    let (mut h, phone, line) = setup(
        SimConfig {
            settings: vec![("fkey2".into(), "keyevent F_DEFLECT".into())],
            ..sim_config(MAC)
        },
        r#", "redirect_key": "P3""#,
    );
    assert!(h
        .line_now(line)
        .caps
        .operations
        .contains(Operation::Redirect));
    let call = h.incoming(&phone, "704");
    let (_, r) = h
        .run(Action::Redirect {
            call,
            destination: "55".into(),
        })
        .expect("accepted");
    assert!(ok(&r), "{r:?}");
    h.expect_state(call, CallState::Idle);
    assert!(phone
        .requests()
        .iter()
        .any(|r| r.contains("key=P3;5;5;ENTER")));
    assert_eq!(
        phone.redirected(),
        ["55".to_owned()],
        "deflected, never answered"
    );
}
