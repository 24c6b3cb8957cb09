//! `sip-refer` and `sip-reverse` lines whose SIP servers and callees are found only through a
//! real DNS server (unbound, started by the test on a free loopback port), the drivers' `dns`
//! table pointing at it: NAPTR → SRV → A for the line's domain, ENUM for dialled `+E.164`
//! numbers (and the ordinary destination when ENUM has no answer), the first INVITE failing
//! over past SRV targets that are down, silent and overloaded (503), and a registrar whose
//! first SRV target is down.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;
use tapir_core::*;
use tapir_test_support::{free_udp_port, unbound, Dns};

const T: Duration = Duration::from_secs(30);

/// SIPp's message trace so far (what it received and sent).
fn trace(peer: &Sipp) -> String {
    let mut text = String::new();
    if let Ok(rd) = std::fs::read_dir(peer.dir()) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().ends_with("_messages.log") {
                text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    text
}

/// Zones: `office.test` (NAPTR → SRV `_sip._udp.pool` → `phone-host`, port `phone`) and the
/// ENUM tree with `+49 89 1234567` → `sip:891234567@callee.test`, whose SRV leads to `callee`.
fn zones(bin: &std::path::Path, phone: u16, callee: u16) -> Dns {
    Dns::builder(bin)
        .zone(
            "office.test",
            &format!(
                "@ IN NAPTR 10 10 \"s\" \"SIP+D2U\" \"\" _sip._udp.pool.office.test.\n\
                 _sip._udp.pool IN SRV 10 0 {phone} phone-host\n\
                 phone-host IN A 127.0.0.1"
            ),
        )
        .zone(
            "callee.test",
            &format!("_sip._udp IN SRV 10 0 {callee} h\nh IN A 127.0.0.1"),
        )
        .zone(
            "e164.arpa",
            r#"7.6.5.4.3.2.1.9.8.9.4 IN NAPTR 100 10 "u" "E2U+sip" "!^\\+49(.*)$!sip:\\1@callee.test!" ."#,
        )
        .start()
}

fn line_cfg(dns: &Dns, line: Value) -> Value {
    json!({
        "bind": "127.0.0.1:0",
        "dns": { "servers": [dns.addr()], "failover_timeout_ms": 1000 },
        "lines": [line],
    })
}

#[test]
fn a_refer_line_reaches_its_domain_only_through_naptr_and_srv() {
    let (Some(dns_bin), Some(bin)) = (unbound(), sipp()) else {
        return;
    };
    let mut phone = start_sipp(&bin, "phone_ok", false, 1, &[]);
    let dns = zones(&dns_bin, phone.port(), free_udp_port());
    let rec = Recorder::new();
    let cfg = line_cfg(
        &dns,
        json!({ "key": "alice", "domain": "office.test", "user": "alice", "auto_answer": true }),
    );
    let driver = build("sip-refer", &cfg, rec.clone());
    let id = make_call(driver.as_ref(), "alice", 1, "+49 30 123*7#");
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Idle, T);
    assert!(rec.states(CallId(1)).contains(&CallState::Connected));
    phone.assert_passed(T);
    // The INVITE named the domain; only DNS said where it lives.
    assert!(
        trace(&phone).contains("INVITE sip:alice@office.test SIP/2.0"),
        "{}",
        trace(&phone)
    );
    driver.shutdown();
}

#[test]
fn reverse_calls_the_sip_uri_enum_gives_for_an_e164_number() {
    let (Some(dns_bin), Some(bin)) = (unbound(), sipp()) else {
        return;
    };
    let mut callee = start_sipp(&bin, "callee_ok", false, 1, &[]);
    let dns = zones(&dns_bin, free_udp_port(), callee.port());
    let rec = Recorder::new();
    let cfg = line_cfg(
        &dns,
        json!({ "key": "alice", "domain": "office.test", "user": "alice", "dns": { "enum": true } }),
    );
    let driver = build("sip-reverse", &cfg, rec.clone());
    let id = make_call(driver.as_ref(), "alice", 1, "+49 89 1234567");
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Idle, T);
    assert!(rec.states(CallId(1)).contains(&CallState::Connected));
    callee.assert_passed(T);
    assert!(
        trace(&callee).contains("INVITE sip:891234567@callee.test SIP/2.0"),
        "{}",
        trace(&callee)
    );
    driver.shutdown();
}

#[test]
fn refer_sends_the_phone_to_the_enum_uri_and_dials_as_usual_without_one() {
    let (Some(dns_bin), Some(bin)) = (unbound(), sipp()) else {
        return;
    };
    let mut phone = start_sipp(&bin, "phone_ok_any", false, 3, &[]);
    let dns = zones(&dns_bin, phone.port(), free_udp_port());
    let rec = Recorder::new();
    let cfg = line_cfg(
        &dns,
        json!({ "key": "alice", "domain": "office.test", "user": "alice", "dns": { "enum": true } }),
    );
    let driver = build("sip-refer", &cfg, rec.clone());
    // An ENUM number, one without a record, and one that is no E.164 number at all.
    for (call, dialled) in [(1, "+49 89 1234567"), (2, "+49 30 999"), (3, "0301234")] {
        let id = make_call(driver.as_ref(), "alice", call, dialled);
        assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done), "{dialled}");
        rec.wait_state(CallId(call), CallState::Idle, T);
    }
    phone.assert_passed(T);
    let seen = trace(&phone);
    for refer_to in [
        "Refer-To: <sip:891234567@callee.test>",
        "Refer-To: <sip:+4930999@office.test>",
        "Refer-To: <sip:0301234@office.test>",
    ] {
        assert!(seen.contains(refer_to), "{refer_to} missing:\n{seen}");
    }
    driver.shutdown();
}

#[test]
fn a_registering_line_fails_over_to_the_registrar_that_answers() {
    let (Some(dns_bin), Some(bin)) = (unbound(), sipp()) else {
        return;
    };
    let mut registrar = start_sipp(&bin, "registrar_ok", false, 1, &[]);
    let down = free_udp_port();
    let dns = Dns::builder(&dns_bin)
        .zone(
            "reg.test",
            &format!(
                "_sip._udp IN SRV 10 0 {down} h\n_sip._udp IN SRV 20 0 {} h\nh IN A 127.0.0.1",
                registrar.port()
            ),
        )
        .start();
    let rec = Recorder::new();
    let cfg = line_cfg(
        &dns,
        json!({ "key": "5", "domain": "reg.test", "user": "acd", "register": true }),
    );
    let driver = build("sip-refer", &cfg, rec.clone());
    rec.wait_for(T, "the line in service", |ev| {
        ev.iter()
            .any(|e| matches!(e, DriverEvent::LineInService { .. }))
    });
    // Shutdown removes the binding at the registrar that took it.
    driver.shutdown();
    registrar.assert_passed(T);
}

#[test]
fn the_first_invite_fails_over_past_down_silent_and_overloaded_servers() {
    let (Some(dns_bin), Some(bin)) = (unbound(), sipp()) else {
        return;
    };
    let mut busy = start_sipp(&bin, "proxy_503", false, 1, &[]);
    let mut phone = start_sipp(&bin, "phone_ok", false, 1, &[]);
    let down = free_udp_port();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let dns = Dns::builder(&dns_bin)
        .zone(
            "office.test",
            &format!(
                "_sip._udp IN SRV 10 0 {down} h\n_sip._udp IN SRV 20 0 {silent_port} h\n\
                 _sip._udp IN SRV 30 0 {} h\n_sip._udp IN SRV 40 0 {} h\nh IN A 127.0.0.1",
                busy.port(),
                phone.port()
            ),
        )
        .start();
    let rec = Recorder::new();
    let cfg = line_cfg(
        &dns,
        json!({ "key": "alice", "domain": "office.test", "user": "alice", "auto_answer": true }),
    );
    let driver = build("sip-refer", &cfg, rec.clone());
    let started = std::time::Instant::now();
    let id = make_call(driver.as_ref(), "alice", 1, "+49 30 123*7#");
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Idle, T);
    // One call for the application: Dialing once, MakeCall completed once.
    let states = rec.states(CallId(1));
    assert_eq!(
        states.iter().filter(|s| **s == CallState::Dialing).count(),
        1,
        "{states:?}"
    );
    assert!(states.contains(&CallState::Connected), "{states:?}");
    assert_eq!(rec.completions_of(id), 1);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    busy.assert_passed(T);
    phone.assert_passed(T);
    silent
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let n = silent
        .recv(&mut buf)
        .expect("the silent server got the INVITE");
    assert!(buf[..n].starts_with(b"INVITE sip:alice@office.test SIP/2.0"));
    driver.shutdown();
}
