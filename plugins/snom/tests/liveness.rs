//! Liveness: a phone that goes away is noticed within seconds while it has calls, within
//! the idle interval otherwise; meanwhile its configuration status no longer says `correct`;
//! when it comes back it is checked again and back in service.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tapir_core::{Configuration, Connection};
use tapir_tsp::TspEvent;

#[test]
fn a_phone_with_a_call_that_goes_away_is_noticed_within_seconds() {
    const MAC: &str = "000413000111";
    let sim = tapir_snom_sim::Sim::new(2).expect("sim");
    let phone = sim.phone(sim_config(MAC)).expect("phone");
    // Idle phones are checked only every 300 s here: only the call makes it quick. A phone
    // that stays away is checked less and less often; at most every 2 s here, so its return
    // is noticed well within the test's wait however long it was away (a loaded machine).
    let config = one_phone(
        phone.addr(),
        MAC,
        r#", "liveness_interval_secs": 300, "liveness_busy_secs": 1, "liveness_max_secs": 2, "request_timeout_ms": 500"#,
    );
    let mut h = Harness::start_with(&config, sim);
    h.configured(MAC);
    let line = h.open(MAC);
    let _call = h.incoming(&phone, "600");
    let gone = Instant::now();
    phone.go_offline();
    h.expect(
        "out of service",
        |e| matches!(e, TspEvent::LineService { line: l, in_service: false, .. } if *l == line),
    );
    assert!(
        gone.elapsed() < Duration::from_secs(5),
        "{:?}",
        gone.elapsed()
    );
    let d = h.wait_device(MAC, "unreachable", |d| {
        d.connection == Connection::Unreachable
    });
    assert_ne!(d.configuration, Configuration::Correct, "{d:?}");
    assert!(
        d.detail
            .as_deref()
            .is_some_and(|t| t.contains("correct when last seen")),
        "{d:?}"
    );
    phone.come_back().expect("listens again");
    h.expect(
        "back in service",
        |e| matches!(e, TspEvent::LineService { line: l, in_service: true, .. } if *l == line),
    );
    h.wait_device(MAC, "configured again", |d| {
        d.connection == Connection::Connected && d.configuration == Configuration::Correct
    });
}

#[test]
fn an_idle_phone_is_checked_at_the_configured_interval() {
    const MAC: &str = "000413000112";
    let sim = tapir_snom_sim::Sim::new(2).expect("sim");
    let phone = sim.phone(sim_config(MAC)).expect("phone");
    let config = one_phone(
        phone.addr(),
        MAC,
        r#", "liveness_interval_secs": 1, "liveness_max_secs": 2, "request_timeout_ms": 500"#,
    );
    let mut h = Harness::start_with(&config, sim);
    h.configured(MAC);
    let line = h.open(MAC);
    // The check is one request without credentials.
    h.wait_until("a probe", || phone.requests().iter().any(|r| r == "/?"));
    let gone = Instant::now();
    phone.go_offline();
    h.expect(
        "out of service",
        |e| matches!(e, TspEvent::LineService { line: l, in_service: false, .. } if *l == line),
    );
    assert!(
        gone.elapsed() < Duration::from_secs(4),
        "{:?}",
        gone.elapsed()
    );
    phone.come_back().expect("listens again");
    h.expect(
        "back in service",
        |e| matches!(e, TspEvent::LineService { line: l, in_service: true, .. } if *l == line),
    );
}
