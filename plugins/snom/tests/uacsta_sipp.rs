//! uaCSTA over SIP against a real SIP peer: SIPp plays the phone's SIP side (the HTTP side is
//! the simulator, with `csta_control` on and `network_id_port` pointing at SIPp). One phone
//! challenges the session INVITE, takes MonitorStart, reports a call by CSTA events only and
//! has it answered and cleared by CSTA requests naming it; the other refuses the session, and
//! the driver falls back to HTTP keys.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;
use tapir_core::{CallState, Operation};
use tapir_snom_sim::SimConfig;
use tapir_test_support::{sipp, Sipp};
use tapir_tsp::Action;

const MAC: &str = "000413000141";

fn phone_for(sim: &tapir_snom_sim::Sim, sipp: &Sipp) -> std::sync::Arc<tapir_snom_sim::SimPhone> {
    sim.phone(SimConfig {
        settings: vec![
            ("csta_control".into(), "on".into()),
            ("csta_challenge".into(), "1".into()),
            ("network_id_port".into(), sipp.port().to_string()),
        ],
        ..sim_config(MAC)
    })
    .expect("phone")
}

/// SIPp as the phone's SIP side, running `scenario` from `tests/scenarios` for one session.
fn sip_side(bin: &Path, scenario: &str) -> Sipp {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(format!("{scenario}.xml"));
    Sipp::builder(bin, file)
        .timeout(Duration::from_secs(60))
        .start()
}

#[test]
fn a_uacsta_phone_is_driven_by_csta_requests_and_followed_by_its_events() {
    let Some(bin) = sipp() else {
        return;
    };
    let mut sipp = sip_side(&bin, "uacsta_phone");
    let sim = tapir_snom_sim::Sim::new(2).expect("sim");
    let phone = phone_for(&sim, &sipp);
    let config = format!(
        r#"{{"phones": [{{"address": "{}", "mac": "{MAC}", "sip_password": "sip-secret"}}], "status_interval_secs": 0, "snapshot_interval_secs": 0, "sip_listen": "127.0.0.1:0"}}"#,
        phone.addr()
    );
    let mut h = Harness::start_with(&config, sim);
    let line = h.open(MAC);
    // SIPp reports call 7 (from 200) in a DeliveredEvent right after MonitorStart: while the
    // driver starts (the line then appears with the call on it) or just after.
    h.wait_until("the call SIPp reports", || {
        h.tsp.calls().iter().any(|c| c.line == line)
    });
    let reported = h.tsp.calls().remove(0);
    let call = reported.id;
    assert_eq!(reported.info.calling.raw_number.as_deref(), Some("200"));
    assert_eq!(reported.info.driver_key.as_deref(), Some("csta:7"));
    assert_eq!(reported.state, CallState::Offering);
    h.wait_until("the session's routes", || {
        h.line_now(line)
            .caps
            .operations
            .contains(Operation::SwapHold)
    });
    let (_, r) = h.run(Action::Answer { call }).expect("accepted");
    assert!(ok(&r), "{r:?}");
    h.expect_state(call, CallState::Connected);
    let (_, r) = h.run(Action::Drop { call }).expect("accepted");
    assert!(ok(&r), "{r:?}");
    h.expect_state(call, CallState::Idle);
    // Nothing went over the phone's web server for the call.
    assert!(!phone
        .requests()
        .iter()
        .any(|r| r.starts_with("/command.htm")));
    // Shutting down ends the session with a BYE, which SIPp awaits.
    drop(h);
    sipp.assert_passed(Duration::from_secs(20));
}

#[test]
fn a_phone_that_refuses_the_session_is_driven_over_http_keys() {
    let Some(bin) = sipp() else {
        return;
    };
    let mut sipp = sip_side(&bin, "uacsta_refuse");
    let sim = tapir_snom_sim::Sim::new(2).expect("sim");
    let phone = phone_for(&sim, &sipp);
    let config = format!(
        r#"{{"phones": [{{"address": "{}", "mac": "{MAC}"}}], "status_interval_secs": 0, "snapshot_interval_secs": 0, "sip_listen": "127.0.0.1:0"}}"#,
        phone.addr()
    );
    let mut h = Harness::start_with(&config, sim);
    h.configured(MAC);
    let line = h.open(MAC);
    sipp.assert_passed(Duration::from_secs(20));
    h.wait_device(MAC, "refusal shown", |d| {
        d.detail
            .as_deref()
            .is_some_and(|t| t.contains("refused the CSTA session: 488 Not Acceptable Here"))
    });
    assert!(!h
        .line_now(line)
        .caps
        .operations
        .contains(Operation::SwapHold));
    let call = h.incoming(&phone, "201");
    let (_, r) = h.run(Action::Answer { call }).expect("accepted");
    assert!(ok(&r), "{r:?}");
    h.expect_state(call, CallState::Connected);
    assert!(phone.requests().iter().any(|r| r.contains("key=OFFHOOK")));
}
