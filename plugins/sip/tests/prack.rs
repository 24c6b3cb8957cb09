//! PRACK (RFC 3262) in click-to-dial: `sip-refer` INVITEs SIPp playing the user's phone (or its
//! PBX), which rings with a reliable 180, over UDP and TCP. SIPp checks that 100rel is offered,
//! the 180 is PRACKed, and the REFER and BYE follow the PRACK in CSeq order (scenario
//! `phone_100rel`); the test checks the states the application sees.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use tapir_core::*;

const T: Duration = Duration::from_secs(20);

fn reliable_ringing(tcp: bool) {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "phone_100rel", tcp, 1, &[]);
    let rec = Recorder::new();
    let cfg = json!({ "lines": [ {
        "key": "alice",
        "domain": format!("127.0.0.1:{}", phone.port()),
        "user": "alice",
        "bind": "127.0.0.1:0",
        "transport": if tcp { "tcp" } else { "udp" },
    } ] });
    let driver = build("sip-refer", &cfg, rec.clone());
    let id = make_call(driver.as_ref(), "alice", 1, "4930123");
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Idle, T);
    phone.assert_passed(T);
    assert_eq!(
        rec.states(CallId(1)),
        vec![
            CallState::Dialing,
            CallState::Ringback,
            CallState::Proceeding,
            CallState::Proceeding,
            CallState::Ringback,
            CallState::Connected,
            CallState::Idle
        ]
    );
    driver.shutdown();
}

/// UDP, then TCP: one after the other, so no endpoint of this test binary binds a port while
/// a SIPp of it is still starting on the port it was given.
#[test]
fn a_reliable_180_is_pracked_over_udp_and_tcp() {
    reliable_ringing(false);
    reliable_ringing(true);
}
