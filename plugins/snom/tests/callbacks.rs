//! Callbacks that must change nothing: wrong secret, unknown phone, wrong MAC, wrong source
//! address, junk; and the NAT option that lets a phone call in from another address.

mod common;

use common::*;
use std::time::Duration;
use tapir_core::HttpCallback;
use tapir_snom_sim::{Sim, SimConfig};
use tapir_tsp::TspEvent;

const MAC: &str = "000413000031";

fn callback(path: &str, query: &str, peer: &str) -> HttpCallback {
    HttpCallback {
        method: "GET".into(),
        path: path.into(),
        query: query.into(),
        headers: vec![],
        peer: peer.into(),
        body: String::new(),
    }
}

/// The path the driver wrote for the incoming event, below the instance.
fn written_path(h: &Harness, phone: &tapir_snom_sim::SimPhone) -> String {
    let url = phone.setting("action_incoming_url").expect("written");
    let rest = url.strip_prefix(&h.base).expect("our base");
    rest.split('?').next().expect("path").to_owned()
}

fn no_call_events(h: &mut Harness) {
    let events = h.drain(Duration::from_millis(200));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, TspEvent::NewCall { .. } | TspEvent::CallState { .. })),
        "{events:?}"
    );
}

#[test]
fn spoofed_and_junk_callbacks_change_nothing() {
    let sim = Sim::new(2).expect("sim");
    let phone = sim.phone(sim_config(MAC)).expect("phone");
    let mut h = Harness::start_with(&one_phone(phone.addr(), MAC, ""), sim);
    h.configured(MAC);
    h.open(MAC);
    let path = written_path(&h, &phone);
    let peer = "127.0.0.1:40000";
    let good_query = format!("mac={MAC}&csta=9&remote=sip%3A1%40x");

    let wrong_secret = path
        .replace("/incoming", "")
        .rsplit_once('/')
        .map(|(p, _)| format!("{p}/0000000000/incoming"))
        .expect("shape");
    for (path, query, status) in [
        (wrong_secret.as_str(), good_query.as_str(), 403),
        ("/a/000413FFFFFF/abc/incoming", good_query.as_str(), 403),
        (path.as_str(), "mac=000413FFFFFF&csta=9", 403),
        ("/a/x", "", 400),
        ("/../../etc/passwd", "", 400),
        (path.replace("incoming", "explode").as_str(), "", 400),
        (path.as_str(), "mac=%zz", 400),
        ("/m/nosecret/incoming", good_query.as_str(), 403),
    ] {
        let reply = h.driver.http_callback(callback(path, query, peer));
        assert_eq!(reply.status, status, "{path}?{query}");
    }
    // A flood from one source is refused every time and changes nothing.
    for i in 0..500 {
        let reply = h
            .driver
            .http_callback(callback(&wrong_secret, &format!("csta={i}"), peer));
        assert_eq!(reply.status, 403);
    }
    no_call_events(&mut h);
    // The genuine callback works.
    let reply = h.driver.http_callback(callback(&path, &good_query, peer));
    assert_eq!(reply.status, 200);
    h.expect("the genuine call", |e| {
        matches!(e, TspEvent::NewCall { .. })
    });
}

#[test]
fn source_address_is_checked_unless_external_phones_are_allowed() {
    // The phone's address is a documentation address (no phone is contacted there); the
    // callbacks come from loopback.
    for allow in [false, true] {
        let extra = if allow {
            r#", "allow_external_phones": true"#
        } else {
            ""
        };
        let config = format!(
            r#"{{"phones": [{{"address": "192.0.2.1:9", "mac": "{MAC}"}}], "callback_key": "k", "status_interval_secs": 0, "request_timeout_ms": 300{extra}}}"#
        );
        let mut h = Harness::start(&config);
        h.open(MAC);
        let secret = tapir_plugin_snom::action::derive_secret(b"k", MAC);
        let path = format!("/a/{MAC}/{secret}/incoming");
        let query = format!("mac={MAC}&csta=5");
        let from_elsewhere = h
            .driver
            .http_callback(callback(&path, &query, "127.0.0.1:40000"));
        if allow {
            assert_eq!(from_elsewhere.status, 200);
            h.expect("call via NAT", |e| matches!(e, TspEvent::NewCall { .. }));
        } else {
            assert_eq!(from_elsewhere.status, 403);
            no_call_events(&mut h);
            let reply = h
                .driver
                .http_callback(callback(&path, &query, "192.0.2.1:40000"));
            assert_eq!(reply.status, 200);
            h.expect("genuine call", |e| matches!(e, TspEvent::NewCall { .. }));
        }
    }
}

#[test]
fn phones_on_other_loopback_addresses_report_from_their_own_address() {
    let sim = Sim::new(1).expect("sim");
    let phone = sim
        .phone(SimConfig {
            bind: "127.0.0.2:0".parse().expect("addr"),
            ..sim_config(MAC)
        })
        .expect("phone on 127.0.0.2");
    let mut h = Harness::start_with(&one_phone(phone.addr(), MAC, ""), sim);
    h.configured(MAC);
    h.open(MAC);
    let _ = written_path(&h, &phone);
    phone.incoming("555");
    h.expect("call from 127.0.0.2", |e| {
        matches!(e, TspEvent::NewCall { .. })
    });
}
