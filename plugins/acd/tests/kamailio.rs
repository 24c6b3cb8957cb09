//! The acd driver with Kamailio on 127.0.0.1 as registrar (digest-authenticated REGISTER,
//! location lookup for incoming calls) and as outbound proxy that challenges our INVITE (407)
//! and record-routes, in front of SIPp as called party.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tapir_core::*;

const T: Duration = Duration::from_secs(30);

/// The Kamailio tests run one at a time: each starts a proxy, SIPp and a driver, and on two
/// cores two such setups at once starve each other into retransmission timeouts.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn start_kamailio(bin: &Path, target_port: u16) -> Kamailio {
    Kamailio::builder(bin, |port| kamailio_cfg(port, target_port)).start()
}

#[test]
fn lines_register_with_digest_and_take_incoming_calls() {
    let _one_at_a_time = serial();
    let (Some(kam), Some(sipp_bin)) = (kamailio(), sipp()) else {
        return;
    };
    let k = start_kamailio(&kam, 9);
    let rec = Recorder::new();
    let d = build(
        &json!({
            "bind": "127.0.0.1:0",
            "domain": format!("127.0.0.1:{}", k.port()),
            "user": "acd",
            "password": "secret",
            "lines": ["1-3"],
            "register": true,
            "register_rate": 5,
            "register_burst": 1,
            "line": [ { "key": "2", "user": "acd2", "password": "secret" } ]
        }),
        rec.clone(),
    );
    let started = std::time::Instant::now();
    rec.wait_for(T, "3 lines in service", |ev| {
        ev.iter()
            .filter(|e| matches!(e, DriverEvent::LineInService { .. }))
            .count()
            == 3
    });
    // Paced at 5/s with a burst of 1: three REGISTERs take at least 0.4 s.
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    let mut caller = Sipp::builder(&sipp_bin, scenario("caller_cancel"))
        .remote(format!("127.0.0.1:{}", k.port()))
        .timeout(Duration::from_secs(60))
        .name("sipp caller")
        .start();
    rec.wait_for(T, "an offered call", |ev| {
        ev.iter().any(|e| matches!(e, DriverEvent::NewCall { .. }))
    });
    let (line, call, info) = rec.new_calls().into_iter().next().expect("offered");
    assert_eq!(
        line.0, "2",
        "the call for acd2 lands on the line with that account"
    );
    assert_eq!(info.calling.number.as_deref(), Some("+4989777"));
    assert_eq!(info.calling.name.as_deref(), Some("Max Caller"));
    rec.wait_for(T, "the offer to end", |ev| {
        ev.iter().any(|e| matches!(e, DriverEvent::CallState { call: c, state: CallState::Disconnected(_), .. } if *c == call))
    });
    rec.wait_state(call, CallState::Idle, T);
    caller.assert_passed(T);
    d.shutdown();
}

#[test]
fn acd_call_through_authenticating_proxy_and_transfer() {
    let _one_at_a_time = serial();
    let (Some(kam), Some(sipp_bin)) = (kamailio(), sipp()) else {
        return;
    };
    let mut target = start_sipp(&sipp_bin, "target_transfer", 1, &[]);
    let k = start_kamailio(&kam, target.port());
    let rec = Recorder::new();
    let d = build(
        &json!({
            "bind": "127.0.0.1:0",
            "domain": "tapir.test",
            "outbound_proxy": format!("127.0.0.1:{}", k.port()),
            "user": "acd",
            "password": "secret",
            "lines": 10000,
            "notify_timeout_secs": 10
        }),
        rec.clone(),
    );
    let mc = make_call(&*d, "9999", 1, "4930123");
    assert!(rec.wait_complete(mc, T).is_ok());
    rec.wait_state(CallId(1), CallState::Connected, T);
    let tr = transfer(&*d, "9999", 1, "300");
    assert_eq!(rec.wait_complete(tr, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Idle, T);
    target.assert_passed(T);
}
