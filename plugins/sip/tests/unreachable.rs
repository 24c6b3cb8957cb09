//! A `sip-refer` line whose phone is down (nothing listens on its UDP port, as when SIPp has
//! stopped): the kernel answers our INVITE with ICMP port unreachable, and the call ends
//! Disconnected with the Unreachable mode within seconds (RFC 3261 §18.4), with a reason that
//! names the peer, instead of ringing out as "did not answer" after the ring timeout or
//! Timer B (32 s).

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tapir_core::*;

#[test]
fn dead_phone_is_unreachable_within_seconds() {
    if !cfg!(target_os = "linux") {
        eprintln!("SKIPPED: ICMP errors are read with IP_RECVERR, Linux only");
        return;
    }
    // A port where nothing listens: bound once, then closed (a stopped SIPp).
    let port = free_port();
    let rec = Recorder::new();
    let driver = build(
        "sip-refer",
        &json!({ "lines": [ {
            "key": "alice",
            "domain": format!("127.0.0.1:{port}"),
            "user": "alice",
            "bind": "127.0.0.1:0",
            "ring_timeout_secs": 30,
        } ] }),
        rec.clone(),
    );
    let started = Instant::now();
    let id = make_call(driver.as_ref(), "alice", 1, "200");
    rec.wait_state(
        CallId(1),
        CallState::Disconnected(DisconnectMode::Unreachable),
        Duration::from_secs(10),
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(!rec
        .states(CallId(1))
        .contains(&CallState::Disconnected(DisconnectMode::NoAnswer)));
    // The reason names the peer and says it is unreachable: in the completion (when MakeCall
    // fails) or in the call's reported info.
    let outcome = rec.wait_complete(id, Duration::from_secs(10));
    let mut texts = vec![match &outcome {
        Ok(_) => String::new(),
        Err(e) => e.detail.clone(),
    }];
    if let Ok(ev) = rec.events.lock() {
        texts.extend(ev.iter().map(|e| format!("{e:?}")));
    }
    let peer = format!("127.0.0.1:{port}");
    assert!(
        texts
            .iter()
            .any(|t| t.contains(&peer) && t.contains("unreachable")),
        "no reason naming {peer} as unreachable: {texts:?}"
    );
    assert!(texts.iter().all(|t| !t.contains("did not answer")));
    driver.shutdown();
}
