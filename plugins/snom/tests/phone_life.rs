//! What a phone's life brings: it restarts (its CSTA ids start at 1 again), calls go unanswered
//! (missed), calls arrive on its second identity, callbacks must carry its MAC.

mod common;

use common::*;
use std::time::Duration;
use tapir_core::{AddressId, CallDirection, CallState, DisconnectMode, HttpCallback};
use tapir_snom_sim::SimConfig;
use tapir_tsp::{Action, TspEvent};

const MAC: &str = "000413000091";

fn setup(
    sim: SimConfig,
) -> (
    Harness,
    std::sync::Arc<tapir_snom_sim::SimPhone>,
    tapir_core::LineId,
) {
    let sim_rt = tapir_snom_sim::Sim::new(2).expect("sim");
    let phone = sim_rt.phone(sim).expect("phone");
    let h = Harness::start_with(&one_phone(phone.addr(), MAC, ""), sim_rt);
    h.configured(MAC);
    let line = h.open(MAC);
    (h, phone, line)
}

fn only_csta(phone: &tapir_snom_sim::SimPhone) -> u64 {
    let calls = phone.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    calls[0].csta
}

#[test]
fn after_a_reboot_incoming_and_api_calls_are_followed() {
    let (mut h, phone, line) = setup(sim_config(MAC));
    // Before: an API call (CSTA id 1) made and dropped, an incoming call (id 2) missed.
    let call = h.make_call(line, "200");
    h.expect_state(call, CallState::Ringback);
    assert_eq!(only_csta(&phone), 1);
    phone.remote_answer(1);
    h.expect_state(call, CallState::Connected);
    let (_, r) = h.run(Action::Drop { call }).expect("accepted");
    assert!(ok(&r));
    h.expect_state(call, CallState::Idle);
    let missed = h.incoming(&phone, "300");
    assert_eq!(only_csta(&phone), 2);
    phone.remote_hangup(2);
    h.ended(missed, DisconnectMode::NoAnswer);

    // The phone restarts: its CSTA ids start at 1 again.
    phone.reboot(Duration::from_millis(300));
    h.wait_until("the phone's restart reported", || {
        phone.fired().iter().any(|u| u.contains("/log_on?"))
    });

    // An incoming call with CSTA id 1 is a new call, not the old one's echo.
    let incoming = h.incoming(&phone, "301");
    assert_eq!(only_csta(&phone), 1);
    let (_, r) = h.run(Action::Answer { call: incoming }).expect("accepted");
    assert!(ok(&r), "{r:?}");
    h.expect_state(incoming, CallState::Connected);
    phone.remote_hangup(1);
    h.ended(incoming, DisconnectMode::Normal);

    // An API call gets CSTA id 2 (used before the restart): it is followed to Connected.
    let call = h.make_call(line, "201");
    h.expect_state(call, CallState::Ringback);
    assert_eq!(only_csta(&phone), 2);
    phone.remote_answer(2);
    h.expect_state(call, CallState::Connected);
    phone.remote_hangup(2);
    h.ended(call, DisconnectMode::Normal);
    assert_eq!(phone.parallel_violations(), 0);
}

#[test]
fn a_call_nobody_answered_is_missed_not_a_normal_end() {
    let (mut h, phone, _line) = setup(sim_config(MAC));
    let call = h.incoming(&phone, "302");
    let csta = only_csta(&phone);
    phone.remote_hangup(csta);
    h.ended(call, DisconnectMode::NoAnswer);
    // The phone reported incoming → disconnected → missed; missed changes nothing more.
    h.wait_until("missed fired", || {
        phone.fired().iter().any(|u| u.contains("/missed?"))
    });
    let later = h.drain(Duration::from_millis(300));
    assert!(
        !later
            .iter()
            .any(|e| matches!(e, TspEvent::CallState { .. })),
        "{later:?}"
    );
    // An answered call that ends is a normal end.
    let call = h.incoming(&phone, "303");
    let (_, r) = h.run(Action::Answer { call }).expect("accepted");
    assert!(ok(&r));
    h.expect_state(call, CallState::Connected);
    phone.remote_hangup(only_csta(&phone));
    h.ended(call, DisconnectMode::Normal);
}

#[test]
fn calls_on_the_second_identity_carry_its_address_both_ways() {
    let (mut h, phone, line) = setup(SimConfig {
        more_identities: vec!["101".into()],
        ..sim_config(MAC)
    });
    // The line appears with both identities (`configuration.rs` checks that it does at
    // once); a check slower than the driver's start-up wait announces them a moment later.
    h.wait_until("both identities as addresses", || {
        h.line_now(line).caps.addresses.len() == 2
    });
    // Incoming on identity 2.
    phone.incoming_to("400", 1);
    let TspEvent::NewCall { call, info, .. } =
        h.expect("new call", |e| matches!(e, TspEvent::NewCall { .. }))
    else {
        unreachable!()
    };
    assert_eq!(info.address, AddressId(1), "{info:?}");
    assert_eq!(info.direction, CallDirection::Incoming);
    phone.remote_hangup(only_csta(&phone));
    h.ended(call, DisconnectMode::NoAnswer);
    // Outgoing from identity 2: the phone is told, and the call keeps the address.
    let (call, r) = h
        .run(Action::MakeCall {
            line,
            address: AddressId(1),
            destination: Some("500".into()),
        })
        .expect("accepted");
    assert!(ok(&r), "{r:?}");
    let call = call.expect("call");
    h.expect_state(call, CallState::Ringback);
    assert!(phone
        .requests()
        .iter()
        .any(|r| r.contains("number=500") && r.contains("outgoing_uri=sip%3A101%40pbx.local")));
    assert_eq!(phone.calls()[0].identity, 1);
    assert_eq!(h.tsp.call(call).map(|c| c.info.address), Some(AddressId(1)));
    // It ends before the far end answered: Action URLs do not say why.
    phone.remote_hangup(only_csta(&phone));
    h.ended(call, DisconnectMode::Unavailable);
}

#[test]
fn a_callback_without_the_known_mac_is_refused() {
    let (mut h, phone, _line) = setup(sim_config(MAC));
    let url = phone
        .setting("action_incoming_url")
        .expect("Action URL written");
    let path = url
        .split("/phones/office")
        .nth(1)
        .and_then(|p| p.split('?').next())
        .expect("path")
        .to_owned();
    let call = |query: &str| HttpCallback {
        method: "GET".into(),
        path: path.clone(),
        query: query.into(),
        headers: Vec::new(),
        peer: "127.0.0.1:40000".into(),
        body: String::new(),
    };
    assert_eq!(h.driver.http_callback(call("csta=9&n=1")).status, 403);
    assert_eq!(
        h.driver
            .http_callback(call("mac=000413FFFFFF&csta=9&n=1"))
            .status,
        403
    );
    let later = h.drain(Duration::from_millis(200));
    assert!(!later.iter().any(|e| matches!(e, TspEvent::NewCall { .. })));
    assert_eq!(
        h.driver
            .http_callback(call(&format!("mac={MAC}&csta=9&n=1")))
            .status,
        200
    );
    h.expect("the genuine call", |e| {
        matches!(e, TspEvent::NewCall { .. })
    });
    // A NUL in a value: refused, nothing happens.
    assert_eq!(
        h.driver
            .http_callback(call(&format!("mac={MAC}&csta=10&remote=1%002")))
            .status,
        400
    );
    let later = h.drain(Duration::from_millis(200));
    assert!(
        !later.iter().any(|e| matches!(e, TspEvent::NewCall { .. })),
        "{later:?}"
    );
}
