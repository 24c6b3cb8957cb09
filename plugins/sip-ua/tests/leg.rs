//! The shared call leg against SIPp on 127.0.0.1, over UDP and TCP: a PBX that sends reliable
//! provisional responses (RFC 3262). SIPp checks what the leg sends (100rel offered, one PRACK
//! per reliable response with the right RAck and CSeq, the same PRACK again when a reliable
//! response repeats, ACK and BYE in CSeq order); the test checks what the leg reports (each
//! reliable response once, then the answer). SIPp exiting 0 proves it saw its whole scenario.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tapir_sip_ua::leg::{Account, Leg, LegConfig, LegEvent, LegSetup};
use tapir_sip_ua::{Endpoint, EndpointConfig, Resolver, Transport};
use tapir_test_support::{sipp, Sipp};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

fn account(port: u16, transport: Transport) -> Account {
    let config: LegConfig = serde_json::from_value(serde_json::json!({
        "domain": format!("127.0.0.1:{port}"),
        "user": "alice",
        "transport": transport.to_string().to_lowercase(),
    }))
    .expect("config");
    Account::check(config).expect("valid account")
}

async fn reliable_provisional_responses(transport: Transport) {
    let Some(bin) = sipp() else { return };
    let name = format!("uas_100rel_{}.xml", transport.to_string().to_lowercase());
    let mut pbx = Sipp::builder(&bin, scenario(&name))
        .tcp(transport == Transport::Tcp)
        .timeout(Duration::from_secs(30))
        .start();
    let endpoint = Endpoint::start(EndpointConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        ..EndpointConfig::default()
    })
    .await
    .expect("endpoint");
    let account = account(pbx.port(), transport);
    let uri = format!("sip:200@127.0.0.1:{}", pbx.port());
    let setup = LegSetup::new(&account, "alice", account.credentials(), uri);
    let mut leg = Leg::start(setup, endpoint, Arc::new(Resolver::new()))
        .await
        .expect("INVITE sent");
    let mut seen = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), leg.event())
            .await
            .expect("the leg goes on");
        match ev {
            LegEvent::Progress { code, .. } => seen.push(code),
            LegEvent::Answered => break,
            other => panic!("unexpected {other:?} after {seen:?}:\n{}", pbx.errors()),
        }
    }
    assert_eq!(seen, [183, 180], "each reliable response reported once");
    tokio::time::timeout(Duration::from_secs(10), leg.release())
        .await
        .expect("released");
    leg.close().await;
    pbx.assert_passed(Duration::from_secs(20));
}

/// UDP, then TCP: one after the other, so no endpoint of this test binary binds a port while
/// a SIPp of it is still starting on the port it was given.
#[tokio::test]
async fn prack_over_udp_and_tcp() {
    reliable_provisional_responses(Transport::Udp).await;
    reliable_provisional_responses(Transport::Tcp).await;
}
