//! The endpoint against SIPp on 127.0.0.1: client transactions over UDP and TCP, and server
//! transactions (INVITE answered 100/480 with the ACK absorbed, OPTIONS answered 200, `rport`
//! filled in). SIPp exiting 0 proves it saw what its scenario expects.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tapir_sip_ua::dialog::{new_call_id, new_tag};
use tapir_sip_ua::{ClientEvent, Endpoint, EndpointConfig, Message, Method, Target, Transport};
use tapir_test_support::{sipp, Sipp};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

async fn options_to_sipp(transport: Transport) {
    let Some(bin) = sipp() else { return };
    let mut peer = Sipp::builder(&bin, scenario("uas_options.xml"))
        .tcp(transport == Transport::Tcp)
        .timeout(Duration::from_secs(20))
        .trace_msg(false)
        .start();
    let port = peer.port();
    let ep = Endpoint::start(EndpointConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        ..EndpointConfig::default()
    })
    .await
    .expect("endpoint");
    let target = Target {
        transport,
        addr: format!("127.0.0.1:{port}").parse().expect("addr"),
    };
    let mut req = Message::request(Method::Options, format!("sip:sipp@127.0.0.1:{port}"));
    req.push("Max-Forwards", "70");
    req.push("From", format!("<sip:tapir@127.0.0.1>;tag={}", new_tag()));
    req.push("To", format!("<sip:sipp@127.0.0.1:{port}>"));
    req.push("Call-ID", new_call_id("127.0.0.1"));
    req.push("CSeq", "1 OPTIONS");
    let mut tx = ep.request(req, target).await.expect("sent");
    let ev = tokio::time::timeout(Duration::from_secs(10), tx.events.recv())
        .await
        .expect("in time");
    match ev {
        Some(ClientEvent::Response(r)) => assert_eq!(r.code(), Some(200)),
        other => panic!("unexpected {other:?}"),
    }
    peer.assert_passed(Duration::from_secs(10));
}

#[tokio::test]
async fn options_over_udp() {
    options_to_sipp(Transport::Udp).await;
}

#[tokio::test]
async fn options_over_tcp() {
    options_to_sipp(Transport::Tcp).await;
}

#[tokio::test]
async fn server_transactions_answer_sipp() {
    let Some(bin) = sipp() else { return };
    let ep = Endpoint::start(EndpointConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        ..EndpointConfig::default()
    })
    .await
    .expect("endpoint");
    let ours = ep.udp_addr();
    let mut peer = Sipp::builder(&bin, scenario("uac_invite_options.xml"))
        .remote(ours.to_string())
        .timeout(Duration::from_secs(20))
        .trace_msg(false)
        .start();
    let passed = tokio::task::spawn_blocking(move || {
        let status = peer.wait_exit(Duration::from_secs(15));
        (status.is_some_and(|s| s.success()), peer)
    })
    .await
    .expect("join");
    assert!(
        passed.0,
        "sipp did not get 100/480 (with rport) and 200 (with Allow) from tapir:\n{}",
        passed.1.errors()
    );
    let stats = ep.stats().await.expect("stats");
    assert_eq!(stats.malformed, 0);
    assert!(
        stats.transactions <= 2,
        "live transactions: {}",
        stats.transactions
    );
}
