//! `sip-refer` behind a NAT: the driver's `nat.stun_server` is coturn, reached (like the PBX)
//! through a NAT made by the test on loopback. The driver learns the NAT's outside address,
//! its INVITE to Kamailio carries it in Via and Contact, and the phone's NOTIFYs come back to
//! that address, through the NAT, so the click-to-dial completes.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use tapir_core::*;
use tapir_test_support::kamailio::pbx_config;
use tapir_test_support::{turnserver, Coturn, UdpNat};

const T: Duration = Duration::from_secs(20);

#[test]
fn click_to_dial_behind_a_nat_with_stun() {
    let (Some(sipp_bin), Some(kam_bin), Some(turn)) = (sipp(), kamailio(), turnserver()) else {
        return;
    };
    let mut phone = start_sipp(&sipp_bin, "phone_ok_any", false, 1, &[]);
    let stun = Coturn::start(&turn);
    let k = Kamailio::builder(&kam_bin, |port| {
        pbx_config(port, None, phone.port(), "alice")
    })
    .args(["-n", "1"])
    .start();
    let pbx = format!("127.0.0.1:{}", k.port()).parse().expect("addr");
    let nat = UdpNat::start(&[stun.addr(), pbx]);
    let rec = Recorder::new();
    let driver = build(
        "sip-refer",
        &json!({
            "bind": "127.0.0.1:0",
            "nat": { "stun_server": nat.inside(0).to_string() },
            "lines": [{
                "key": "alice",
                "domain": "localhost",
                "outbound_proxy": nat.inside(1).to_string(),
                "user": "alice",
            }]
        }),
        rec.clone(),
    );
    let id = make_call(driver.as_ref(), "alice", 1, "0301234");
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done));
    rec.wait_state(CallId(1), CallState::Connected, T);
    rec.wait_state(CallId(1), CallState::Idle, T);
    phone.assert_passed(T);
    driver.shutdown();
    let outside = nat.outside().to_string();
    let log = k.log();
    let invite = log
        .lines()
        .find(|l| l.contains("request INVITE"))
        .unwrap_or_default();
    assert!(
        invite.contains(&format!("src={outside}"))
            && invite.contains(&format!("contact=[<sip:alice@{outside}>]")),
        "the INVITE's Contact names the NAT's outside address {outside}: {invite}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("request NOTIFY")
                && l.contains(&format!("ruri=sip:alice@{outside}"))),
        "the phone's NOTIFYs went to the mapped address:\n{log}"
    );
    assert!(
        nat.count(0, |b| b.len() >= 20 && b[0] == 0 && b[1] == 1) >= 1,
        "the STUN request went through the NAT"
    );
}
