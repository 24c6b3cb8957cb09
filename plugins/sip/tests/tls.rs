//! The SIP drivers over TLS: tapir → (TLS) → Kamailio with its TLS module → (UDP) → SIPp
//! phone, with a CA and certificates made by the test.
//! - `sip-refer` click-to-dial: INVITE, REFER, the phone's NOTIFYs (back to us over our own
//!   TLS connection) and BYE, all over one verified TLS connection; `sip-reverse` likewise;
//! - a PBX whose certificate names another host: the call fails, and its reason says the
//!   certificate was refused;
//! - a line with `register = true` over TLS: it REGISTERs through the TLS connection, and a
//!   caller's INVITE reaches it over that flow as an offered call;
//! - TLS, DNS and failover together: a `sips:` domain found only through a DNS server (unbound)
//!   as NAPTR `SIPS+D2T` → SRV `_sips._tcp` → Kamailio TLS, with the first SRV target down.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tapir_core::*;
use tapir_test_support::kamailio::{pbx_config, tls_config};
use tapir_test_support::{free_tcp_port, kamailio_tls, unbound, Dns, Pki};

const T: Duration = Duration::from_secs(20);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn start_pbx(bin: &Path, pki: &Pki, names: &[&str], phone_port: u16) -> Kamailio {
    let server = pki.server("pbx", names);
    let cfg = pki.write("tls.cfg", &tls_config(&server, pki.ca_file(), false));
    Kamailio::builder_tls(bin, |port, tls| {
        pbx_config(port, Some((tls, &cfg)), phone_port, "alice")
    })
    .args(["-n", "1"])
    .start()
}

fn tls_line(k: &Kamailio, pki: &Pki, register: bool) -> serde_json::Value {
    json!({
        "bind": "127.0.0.1:0",
        "tls": { "ca_file": pki.ca_file() },
        "lines": [{
            "key": "alice",
            "domain": "localhost",
            "outbound_proxy": format!("sips:localhost:{}", k.tls_port()),
            "user": "alice",
            "register": register,
        }]
    })
}

#[test]
fn refer_click_to_dial_over_tls_through_kamailio() {
    let _one = serial();
    let (Some(sipp_bin), Some(kam_bin)) = (sipp(), kamailio_tls()) else {
        return;
    };
    let mut phone = start_sipp(&sipp_bin, "phone_ok_any", false, 1, &[]);
    let pki = Pki::new("tapir test CA");
    let k = start_pbx(&kam_bin, &pki, &["localhost"], phone.port());
    let rec = Recorder::new();
    let driver = build("sip-refer", &tls_line(&k, &pki, false), rec.clone());
    let id = make_call(driver.as_ref(), "alice", 1, "0301234");
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Connected, T);
    rec.wait_state(CallId(1), CallState::Idle, T);
    phone.assert_passed(T);
    driver.shutdown();
    let log = k.log();
    // Our requests came over TLS, from one connection.
    let ours: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("request ") && l.contains("proto=tls"))
        .collect();
    for method in ["INVITE", "ACK", "REFER", "BYE"] {
        assert!(
            ours.iter()
                .any(|l| l.contains(&format!("request {method} "))),
            "{method} not over TLS:\n{log}"
        );
    }
    let sources: std::collections::HashSet<&str> = ours
        .iter()
        .filter_map(|l| l.split("src=").nth(1)?.split_whitespace().next())
        .collect();
    assert_eq!(sources.len(), 1, "one TLS connection: {ours:?}");
    // The phone's NOTIFYs were relayed back to us (their 200s came over TLS).
    assert!(
        log.lines()
            .any(|l| l.contains("reply 200 NOTIFY") && l.contains("proto=tls")),
        "NOTIFY did not reach us over TLS:\n{log}"
    );
}

#[test]
fn reverse_click_to_dial_over_tls_through_kamailio() {
    let _one = serial();
    let (Some(sipp_bin), Some(kam_bin)) = (sipp(), kamailio_tls()) else {
        return;
    };
    let mut callee = start_sipp(&sipp_bin, "callee_ok", false, 1, &[]);
    let pki = Pki::new("tapir test CA");
    let k = start_pbx(&kam_bin, &pki, &["localhost"], callee.port());
    let rec = Recorder::new();
    let driver = build("sip-reverse", &tls_line(&k, &pki, false), rec.clone());
    let id = make_call(driver.as_ref(), "alice", 1, "0301234");
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Connected, T);
    rec.wait_state(CallId(1), CallState::Idle, T);
    callee.assert_passed(T);
    driver.shutdown();
    let log = k.log();
    for method in ["INVITE", "REFER"] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("request {method} ")) && l.contains("proto=tls")),
            "{method} not over TLS:\n{log}"
        );
    }
}

#[test]
fn a_wrong_host_certificate_fails_the_call_with_the_reason() {
    let _one = serial();
    let (Some(sipp_bin), Some(kam_bin)) = (sipp(), kamailio_tls()) else {
        return;
    };
    let phone = start_sipp(&sipp_bin, "phone_ok_any", false, 1, &[]);
    let pki = Pki::new("tapir test CA");
    let k = start_pbx(&kam_bin, &pki, &["pbx.wrong.example"], phone.port());
    let rec = Recorder::new();
    let driver = build("sip-refer", &tls_line(&k, &pki, false), rec.clone());
    let mc = make_call(driver.as_ref(), "alice", 1, "0301234");
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
        cause.contains("certificate was refused") && cause.contains("localhost"),
        "{cause}"
    );
    assert!(
        !k.log().contains("request INVITE"),
        "nothing went over the refused connection"
    );
    driver.shutdown();
}

#[test]
fn a_registered_tls_line_takes_an_incoming_call_over_its_flow() {
    let _one = serial();
    let (Some(sipp_bin), Some(kam_bin)) = (sipp(), kamailio_tls()) else {
        return;
    };
    let pki = Pki::new("tapir test CA");
    // No phone behind the PBX here: the caller comes in on UDP.
    let k = start_pbx(&kam_bin, &pki, &["localhost"], free_port());
    let rec = Recorder::new();
    let driver = build("sip-refer", &tls_line(&k, &pki, true), rec.clone());
    rec.wait_for(T, "the line in service", |ev| {
        ev.iter()
            .any(|e| matches!(e, DriverEvent::LineInService { .. }))
    });
    let log = k.log();
    assert!(
        log.lines()
            .any(|l| l.contains("request REGISTER") && l.contains("proto=tls")),
        "{log}"
    );
    let mut caller = Sipp::builder(&sipp_bin, scenario("caller_declined"))
        .remote(format!("127.0.0.1:{}", k.port()))
        .key("user", "alice")
        .key("domain", "localhost")
        .timeout(T)
        .start();
    rec.wait_for(T, "an offered call", |ev| {
        ev.iter().any(|e| matches!(e, DriverEvent::NewCall { .. }))
    });
    let (line, call, info) = rec.new_calls().into_iter().next().expect("offered");
    assert_eq!(line.0, "alice");
    assert_eq!(info.calling.number.as_deref(), Some("+4930555"));
    let id = submit(driver.as_ref(), "alice", Request::Drop { call }).expect("drop");
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done));
    caller.assert_passed(T);
    let log = k.log();
    assert!(
        log.lines()
            .any(|l| l.contains("reply 603 INVITE") && l.contains("proto=tls")),
        "the 603 came back over TLS:\n{log}"
    );
    driver.shutdown();
}

#[test]
fn a_sips_domain_through_naptr_and_srv_fails_over_to_kamailio_tls() {
    let _one = serial();
    let (Some(sipp_bin), Some(kam_bin), Some(dns_bin)) = (sipp(), kamailio_tls(), unbound()) else {
        return;
    };
    let mut phone = start_sipp(&sipp_bin, "phone_ok_any", false, 1, &[]);
    let pki = Pki::new("tapir test CA");
    // The certificate names the domain: the name checked is the Request-URI's host.
    let k = start_pbx(&kam_bin, &pki, &["office.test"], phone.port());
    // Nothing listens on the first SRV target: its TCP connection is refused.
    let down = free_tcp_port();
    let dns = Dns::builder(&dns_bin)
        .zone(
            "office.test",
            &format!(
                "@ IN NAPTR 10 10 \"s\" \"SIPS+D2T\" \"\" _sips._tcp.office.test.\n\
                 @ IN NAPTR 20 10 \"s\" \"SIP+D2U\" \"\" _sip._udp.office.test.\n\
                 _sips._tcp IN SRV 10 0 {down} h\n\
                 _sips._tcp IN SRV 20 0 {} h\n\
                 _sip._udp IN SRV 10 0 {} h\n\
                 h IN A 127.0.0.1",
                k.tls_port(),
                k.port()
            ),
        )
        .start();
    let rec = Recorder::new();
    let cfg = json!({
        "bind": "127.0.0.1:0",
        "tls": { "ca_file": pki.ca_file() },
        "dns": { "servers": [dns.addr()], "failover_timeout_ms": 1000 },
        "lines": [{ "key": "alice", "domain": "sips:office.test", "user": "alice" }]
    });
    let driver = build("sip-refer", &cfg, rec.clone());
    let started = std::time::Instant::now();
    let id = make_call(driver.as_ref(), "alice", 1, "0301234");
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Connected, T);
    rec.wait_state(CallId(1), CallState::Idle, T);
    // One call for the application, well within a transaction timeout.
    let states = rec.states(CallId(1));
    assert_eq!(
        states.iter().filter(|s| **s == CallState::Dialing).count(),
        1,
        "{states:?}"
    );
    assert_eq!(rec.completions_of(id), 1);
    assert!(started.elapsed() < Duration::from_secs(15));
    phone.assert_passed(T);
    driver.shutdown();
    // The INVITE, for the domain, reached Kamailio over TLS (SIPS+D2T was chosen over the UDP
    // service, and the down target was passed).
    let log = k.log();
    assert!(
        log.lines().any(|l| l.contains("request INVITE")
            && l.contains("proto=tls")
            && l.contains("ruri=sip:alice@office.test")),
        "no INVITE over TLS:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("request INVITE") && l.contains("proto=udp")),
        "an INVITE came over UDP:\n{log}"
    );
}
