//! PRACK (RFC 3262) on a driver that places INVITEs: the acd driver dials SIPp playing a
//! called party behind a PBX that sends reliable 183 and 180, over UDP and TCP. SIPp checks
//! that 100rel is offered and each reliable response is PRACKed in CSeq order (its scenario
//! `target_100rel`); the test checks that the application sees Dialing, Ringback once,
//! Connected, and Idle after its Drop.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use tapir_core::*;

const T: Duration = Duration::from_secs(20);

fn reliable_provisional_responses(tcp: bool) {
    let Some(bin) = sipp() else { return };
    let mut peer = start_sipp_on(&bin, "target_100rel", tcp, 1, &[]);
    let rec = Recorder::new();
    let cfg = json!({
        "bind": "127.0.0.1:0",
        "domain": format!("127.0.0.1:{}", peer.port()),
        "user": "acd",
        "lines": 2,
        "transport": if tcp { "tcp" } else { "udp" },
    });
    let d = build(&cfg, rec.clone());
    let mc = make_call(&*d, "1", 1, "4930123");
    assert_eq!(rec.wait_complete(mc, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Connected, T);
    let dr = drop_call(&*d, "1", 1);
    assert_eq!(rec.wait_complete(dr, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Idle, T);
    peer.assert_passed(T);
    assert_eq!(
        rec.states(CallId(1)),
        [
            CallState::Dialing,
            CallState::Ringback,
            CallState::Connected,
            CallState::Idle
        ]
    );
    d.shutdown();
}

/// UDP, then TCP: one after the other, so no endpoint of this test binary binds a port while
/// a SIPp of it is still starting on the port it was given.
#[test]
fn reliable_provisional_responses_are_pracked_over_udp_and_tcp() {
    reliable_provisional_responses(false);
    reliable_provisional_responses(true);
}
