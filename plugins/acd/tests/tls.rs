//! The acd driver over TLS: tapir → (TLS) → Kamailio with its TLS module → (UDP) → SIPp, with
//! a CA and certificates made by the test.
//! - a dialer call: INVITE to the target through the proxy, answered, dropped (BYE), all on
//!   one verified TLS connection;
//! - lines with `register = true`: every line REGISTERs over the same TLS connection and comes
//!   into service; Kamailio records the flow;
//! - a certificate issued by a CA nobody configured: the call fails with a reason that says the
//!   certificate was refused, and nothing reaches the PBX.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tapir_core::*;
use tapir_test_support::kamailio::{pbx_config, tls_config};
use tapir_test_support::{kamailio_tls, Pki};

const T: Duration = Duration::from_secs(30);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn start_pbx(bin: &Path, pki: &Pki, target_port: u16) -> Kamailio {
    let server = pki.server("pbx", &["localhost"]);
    let cfg = pki.write("tls.cfg", &tls_config(&server, pki.ca_file(), false));
    Kamailio::builder_tls(bin, |port, tls| {
        pbx_config(port, Some((tls, &cfg)), target_port, "dialer")
    })
    .args(["-n", "1"])
    .start()
}

fn config(k: &Kamailio, ca: &Path, register: bool) -> serde_json::Value {
    json!({
        "bind": "127.0.0.1:0",
        "domain": "localhost",
        "outbound_proxy": format!("sips:localhost:{}", k.tls_port()),
        "user": "dialer",
        "lines": 3,
        "register": register,
        "tls": { "ca_file": ca },
    })
}

/// The sources (`ip:port`) of Kamailio's log lines for `method` over TLS.
fn tls_sources(log: &str, method: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(&format!("request {method} ")) && l.contains("proto=tls"))
        .filter_map(|l| {
            Some(
                l.split("src=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn acd_call_over_tls_through_kamailio() {
    let _one = serial();
    let (Some(kam), Some(sipp_bin)) = (kamailio_tls(), sipp()) else {
        return;
    };
    let mut target = start_sipp(&sipp_bin, "target_answer", 1, &[]);
    let pki = Pki::new("tapir test CA");
    let k = start_pbx(&kam, &pki, target.port());
    let rec = Recorder::new();
    let d = build(&config(&k, pki.ca_file(), false), rec.clone());
    let mc = make_call(&*d, "2", 1, "4930123");
    assert_eq!(rec.wait_complete(mc, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Connected, T);
    let dr = drop_call(&*d, "2", 1);
    assert_eq!(rec.wait_complete(dr, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Idle, T);
    target.assert_passed(T);
    d.shutdown();
    let log = k.log();
    let mut sources = Vec::new();
    for method in ["INVITE", "ACK", "BYE"] {
        let s = tls_sources(&log, method);
        assert!(!s.is_empty(), "{method} not over TLS:\n{log}");
        sources.extend(s);
    }
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len(), 1, "one TLS connection: {sources:?}");
}

#[test]
fn acd_lines_register_over_one_tls_connection() {
    let _one = serial();
    let Some(kam) = kamailio_tls() else { return };
    let pki = Pki::new("tapir test CA");
    let k = start_pbx(&kam, &pki, free_port());
    let rec = Recorder::new();
    let d = build(&config(&k, pki.ca_file(), true), rec.clone());
    rec.wait_for(T, "3 lines in service", |ev| {
        ev.iter()
            .filter(|e| matches!(e, DriverEvent::LineInService { .. }))
            .count()
            == 3
    });
    let log = k.log();
    let mut sources = tls_sources(&log, "REGISTER");
    assert_eq!(sources.len(), 3, "{log}");
    sources.sort();
    sources.dedup();
    assert_eq!(sources.len(), 1, "the lines share one TLS connection");
    d.shutdown();
    // Shutdown removes the bindings over the same connection (Expires: 0).
    let gone = tapir_test_support::wait::until(Duration::from_secs(10), || {
        (tls_sources(&k.log(), "REGISTER").len() >= 6).then_some(())
    });
    assert!(gone.is_some(), "{}", k.log());
}

#[test]
fn a_certificate_from_an_unknown_ca_fails_the_call() {
    let _one = serial();
    let (Some(kam), Some(sipp_bin)) = (kamailio_tls(), sipp()) else {
        return;
    };
    let target = start_sipp(&sipp_bin, "target_answer", 1, &[]);
    let theirs = Pki::new("a CA nobody configured");
    let ours = Pki::new("the CA we trust");
    let k = start_pbx(&kam, &theirs, target.port());
    let rec = Recorder::new();
    let d = build(&config(&k, ours.ca_file(), false), rec.clone());
    let mc = make_call(&*d, "1", 1, "4930123");
    // Placing began (the INVITE was handed to the transport), so MakeCall completes; the
    // refused handshake then ends the call, with the reason in its cause.
    assert_eq!(rec.wait_complete(mc, T), Ok(Completion::Done));
    rec.wait_state(
        CallId(1),
        CallState::Disconnected(DisconnectMode::Unreachable),
        T,
    );
    let cause = rec
        .info(CallId(1))
        .and_then(|i| i.cause)
        .unwrap_or_default();
    assert!(
        cause.contains("certificate was refused") && cause.contains("trusted CA"),
        "{cause}"
    );
    assert!(!k.log().contains("request INVITE"), "{}", k.log());
    d.shutdown();
}
