//! The acd driver finding its targets through a real DNS server (unbound, started by the test
//! on a free loopback port; the driver's `dns.servers` points at it): NAPTR → SRV → A, RFC 3263
//! failover past a target that is down (ICMP unreachable), one that stays silent and one that
//! answers 503, many calls in a row while the primary is down and after it came back, and a
//! NAPTR record that chooses TCP.

mod common;

use common::*;
use serde_json::json;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use tapir_core::*;
use tapir_sip_ua::Message;
use tapir_test_support::{free_port, free_udp_port, unbound, Dns};

const T: Duration = Duration::from_secs(30);

fn config(dns: &Dns, domain: &str) -> serde_json::Value {
    json!({
        "bind": "127.0.0.1:0",
        "domain": domain,
        "user": "acd",
        "lines": 2,
        "ring_timeout_secs": 20,
        "dns": { "servers": [dns.addr()], "failover_timeout_ms": 1000 },
    })
}

/// Places call `call` on line "1", waits until it is connected, drops it.
fn call_connects_and_drops(d: &dyn PhoneDriver, rec: &Recorder, call: u64) {
    let mc = make_call(d, "1", call, "100");
    assert_eq!(rec.wait_complete(mc, T), Ok(Completion::Done));
    rec.wait_state(CallId(call), CallState::Connected, T);
    let dr = drop_call(d, "1", call);
    assert_eq!(rec.wait_complete(dr, T), Ok(Completion::Done));
    rec.wait_state(CallId(call), CallState::Idle, T);
}

#[test]
fn a_call_fails_over_past_down_silent_and_overloaded_targets() {
    let (Some(dns_bin), Some(bin)) = (unbound(), sipp()) else {
        return;
    };
    let mut busy = start_sipp(&bin, "target_503", 1, &[]);
    let mut good = start_sipp(&bin, "target_answer", 1, &[]);
    let down = free_udp_port();
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let dns = Dns::builder(&dns_bin)
        .zone(
            "pbx.test",
            &format!(
                "@ IN NAPTR 10 10 \"s\" \"SIP+D2U\" \"\" _sip._udp.pbx.test.\n\
                 _sip._udp IN SRV 10 0 {down} h\n_sip._udp IN SRV 20 0 {silent_port} h\n\
                 _sip._udp IN SRV 30 0 {} h\n_sip._udp IN SRV 40 0 {} h\nh IN A 127.0.0.1",
                busy.port(),
                good.port()
            ),
        )
        .start();
    let rec = Recorder::new();
    let d = build(&config(&dns, "pbx.test"), rec.clone());
    let started = Instant::now();
    call_connects_and_drops(d.as_ref(), &rec, 1);
    // ICMP (well under a second), the 1 s silence limit, the 503 at once, then the answer:
    // nowhere near a transaction timeout (32 s).
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // MakeCall completed once, when the first INVITE went out; the call was shown once.
    assert_eq!(
        rec.states(CallId(1)),
        [
            CallState::Dialing,
            CallState::Ringback,
            CallState::Connected,
            CallState::Idle
        ]
    );
    busy.assert_passed(T);
    good.assert_passed(T);
    // The silent target got the INVITE too (its own transaction: another branch).
    silent
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let n = silent
        .recv(&mut buf)
        .expect("the silent target got an INVITE");
    let invite = Message::parse(&buf[..n]).expect("SIP");
    assert_eq!(invite.request_uri(), Some("sip:100@pbx.test"));
    d.shutdown();
}

#[test]
fn calls_go_to_the_backup_while_the_primary_is_down_and_back_when_it_returns() {
    let (Some(dns_bin), Some(bin)) = (unbound(), sipp()) else {
        return;
    };
    const ROUNDS: u64 = 6;
    let mut backup = start_sipp(&bin, "target_answer", ROUNDS as u32, &[]);
    let primary_port = free_port();
    let dns = Dns::builder(&dns_bin)
        .zone(
            "pbx.test",
            &format!(
                "_sip._udp IN SRV 10 0 {primary_port} h\n_sip._udp IN SRV 20 0 {} h\n\
                 h IN A 127.0.0.1",
                backup.port()
            ),
        )
        .start();
    let rec = Recorder::new();
    let d = build(&config(&dns, "pbx.test"), rec.clone());
    for call in 1..=ROUNDS {
        call_connects_and_drops(d.as_ref(), &rec, call);
    }
    backup.assert_passed(T);
    // The primary comes back on its port: calls go there again (SRV priority).
    let mut primary = Sipp::builder(&bin, scenario("target_answer"))
        .port(primary_port)
        .calls(ROUNDS as u32)
        .trace_msg(false)
        .timeout(Duration::from_secs(120))
        .start();
    for call in ROUNDS + 1..=2 * ROUNDS {
        call_connects_and_drops(d.as_ref(), &rec, call);
    }
    primary.assert_passed(T);
    d.shutdown();
}

#[test]
fn a_naptr_record_that_prefers_tcp_is_followed() {
    let (Some(dns_bin), Some(bin)) = (unbound(), sipp()) else {
        return;
    };
    let mut target = start_sipp_on(&bin, "target_answer", true, 1, &[]);
    let dns = Dns::builder(&dns_bin)
        .zone(
            "tcp.test",
            &format!(
                "@ IN NAPTR 10 10 \"s\" \"SIP+D2T\" \"\" _sip._tcp.tcp.test.\n\
                 @ IN NAPTR 20 10 \"s\" \"SIP+D2U\" \"\" _sip._udp.tcp.test.\n\
                 _sip._tcp IN SRV 10 0 {} h\n_sip._udp IN SRV 10 0 {} h\nh IN A 127.0.0.1",
                target.port(),
                free_udp_port()
            ),
        )
        .start();
    let rec = Recorder::new();
    // The line's transport is UDP (the default); the domain's NAPTR says TCP first.
    let d = build(&config(&dns, "tcp.test"), rec.clone());
    call_connects_and_drops(d.as_ref(), &rec, 1);
    target.assert_passed(T);
    d.shutdown();
}

#[test]
fn the_domain_fails_over_to_kamailio_which_challenges_and_relays() {
    let (Some(dns_bin), Some(bin), Some(kam)) = (unbound(), sipp(), kamailio()) else {
        return;
    };
    let mut target = start_sipp(&bin, "target_answer", 1, &[]);
    let target_port = target.port();
    let proxy = Kamailio::builder(&kam, |port| kamailio_cfg(port, target_port)).start();
    let dns = Dns::builder(&dns_bin)
        .zone(
            "tapir.test",
            &format!(
                "@ IN NAPTR 10 10 \"s\" \"SIP+D2U\" \"\" _sip._udp.tapir.test.\n\
                 _sip._udp IN SRV 10 0 {} h\n_sip._udp IN SRV 20 0 {} h\nh IN A 127.0.0.1",
                free_udp_port(),
                proxy.port()
            ),
        )
        .start();
    let rec = Recorder::new();
    let mut cfg = config(&dns, "tapir.test");
    cfg["password"] = json!("secret");
    let d = build(&cfg, rec.clone());
    // Down first, then Kamailio: its 407 is answered there, not at the next target.
    call_connects_and_drops(d.as_ref(), &rec, 1);
    target.assert_passed(T);
    d.shutdown();
}
