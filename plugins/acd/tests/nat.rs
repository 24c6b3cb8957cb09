//! The acd driver behind a NAT: its `nat.stun_server` is coturn, reached (like the PBX) through
//! a NAT made by the test on loopback; the dialer's INVITE carries the NAT's outside address
//! in Via and Contact, and the call is answered and hung up through the NAT.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use tapir_core::*;
use tapir_test_support::kamailio::pbx_config;
use tapir_test_support::{turnserver, Coturn, UdpNat};

const T: Duration = Duration::from_secs(30);

#[test]
fn acd_call_behind_a_nat_with_stun() {
    let (Some(kam), Some(sipp_bin), Some(turn)) = (kamailio(), sipp(), turnserver()) else {
        return;
    };
    let mut target = start_sipp(&sipp_bin, "target_answer", 1, &[]);
    let stun = Coturn::start(&turn);
    let k = Kamailio::builder(&kam, |port| pbx_config(port, None, target.port(), "dialer"))
        .args(["-n", "1"])
        .start();
    let pbx = format!("127.0.0.1:{}", k.port()).parse().expect("addr");
    let nat = UdpNat::start(&[stun.addr(), pbx]);
    let rec = Recorder::new();
    let d = build(
        &json!({
            "bind": "127.0.0.1:0",
            "domain": "localhost",
            "outbound_proxy": nat.inside(1).to_string(),
            "user": "dialer",
            "lines": 2,
            "nat": { "stun_server": nat.inside(0).to_string() },
        }),
        rec.clone(),
    );
    let mc = make_call(&*d, "1", 1, "4930123");
    assert_eq!(rec.wait_complete(mc, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Connected, T);
    let dr = drop_call(&*d, "1", 1);
    assert_eq!(rec.wait_complete(dr, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Idle, T);
    target.assert_passed(T);
    d.shutdown();
    let outside = nat.outside().to_string();
    let log = k.log();
    let invite = log
        .lines()
        .find(|l| l.contains("request INVITE"))
        .unwrap_or_default();
    assert!(
        invite.contains(&format!("src={outside}"))
            && invite.contains(&format!("contact=[<sip:dialer@{outside}>]")),
        "the INVITE's Contact names the NAT's outside address {outside}: {invite}"
    );
}
