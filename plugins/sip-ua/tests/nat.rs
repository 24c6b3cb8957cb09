//! NAT traversal against real servers on loopback:
//! - coturn as STUN server behind a NAT made by the test ([`UdpNat`]: loopback has none): the
//!   endpoint learns the NAT's outside address, Kamailio sees it in Via and Contact of the
//!   REGISTER, a call to the registered user reaches us through the NAT, and the look-up is
//!   refreshed;
//! - UDP keep-alives (CRLF, or STUN answered by Kamailio's `stun` module) counted on the wire;
//! - CRLF ping-pong on a registered TCP and TLS flow to Kamailio: the registration survives the
//!   keep-alive interval (and Kamailio's idle-connection lifetime) on one connection, and when
//!   the flow dies (a relay turns into a black hole) the missing pong is noticed and the line
//!   registers again at once on a new connection, where the next call arrives.

mod common;

use common::*;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tapir_sip_ua::digest::Credentials;
use tapir_sip_ua::header::Uri;
use tapir_sip_ua::register::{self, Backoff, Pacer, Registration, RegistrationEvent};
use tapir_sip_ua::{
    Endpoint, EndpointConfig, NatConfig, Resolver, TlsConfig, Transport, UdpKeepalive,
};
use tapir_test_support::kamailio::tls_config;
use tapir_test_support::{
    kamailio, kamailio_tls, sipp, turnserver, Coturn, Kamailio, Pki, Relay, Sipp, UdpNat,
};
use tokio::sync::watch;

const T: Duration = Duration::from_secs(20);

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

fn registration(next_hop: &str, transport: Transport) -> Registration {
    Registration {
        aor: "sip:alice@localhost".into(),
        registrar: Uri::parse("sip:localhost").expect("uri"),
        next_hop: Uri::parse(next_hop).expect("uri"),
        route: None,
        contact_user: "alice".into(),
        contact_params: Vec::new(),
        expires: 300,
        transport,
        credentials: Credentials {
            username: "alice".into(),
            password: String::new(),
            realm: None,
        },
        backoff: Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(2),
        },
        user_agent: None,
    }
}

/// Runs the REGISTER loop; its events arrive on the receiver. Dropping the sender stops it.
fn start_registration(
    ep: &Endpoint,
    reg: Registration,
) -> (watch::Sender<bool>, mpsc::Receiver<RegistrationEvent>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ev_tx, ev_rx) = mpsc::channel();
    let ev_tx = Mutex::new(ev_tx);
    tokio::spawn(register::run(
        ep.clone(),
        // The endpoint here has TLS: its resolver may hand out TLS targets (a resolver without
        // them refuses a `transport=tls` registrar as unroutable).
        Arc::new(Resolver::new().with_transports(&[
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
        ])),
        reg,
        Arc::new(Pacer::new(100.0, 10)),
        stop_rx,
        move |ev| {
            if let Ok(tx) = ev_tx.lock() {
                let _ = tx.send(ev);
            }
        },
    ));
    (stop_tx, ev_rx)
}

/// Waits (off the runtime's threads) for the next `Registered`.
async fn registered(events: &mpsc::Receiver<RegistrationEvent>) {
    let end = std::time::Instant::now() + T;
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        match tokio::task::block_in_place(|| events.recv_timeout(left)) {
            Ok(RegistrationEvent::Registered { .. }) => return,
            Ok(RegistrationEvent::Failed { .. }) => continue,
            Err(e) => panic!("not registered in time: {e}"),
        }
    }
}

fn caller(sipp_bin: &Path, kamailio_port: u16) -> Sipp {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/uac_invite_480.xml");
    Sipp::builder(sipp_bin, scenario)
        .remote(format!("127.0.0.1:{kamailio_port}"))
        .key("user", "alice")
        .key("domain", "localhost")
        .timeout(T)
        .start()
}

fn is_stun_request(b: &[u8]) -> bool {
    b.len() >= 20 && b[0] == 0 && b[1] == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stun_learns_the_nat_address_for_via_and_contact() {
    let _one = serial().await;
    let (Some(turn), Some(kam), Some(sipp_bin)) = (turnserver(), kamailio(), sipp()) else {
        return;
    };
    let stun = Coturn::start(&turn);
    let k = Kamailio::builder(&kam, |port| {
        kamailio_config(
            port,
            &Setup {
                stun: true,
                ..Setup::default()
            },
        )
    })
    .args(["-n", "1"])
    .start();
    let registrar: std::net::SocketAddr = format!("127.0.0.1:{}", k.port()).parse().expect("a");
    let nat = UdpNat::start(&[stun.addr(), registrar]);
    let ep = Endpoint::start(EndpointConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        nat: NatConfig {
            stun_server: Some(nat.inside(0).to_string()),
            stun_refresh_secs: 5,
            udp_keepalive_secs: 1,
            udp_keepalive: UdpKeepalive::Stun,
            pong_timeout_secs: 2,
            ..NatConfig::default()
        },
        ..EndpointConfig::default()
    })
    .await
    .expect("endpoint");
    // Start waited for the answer: the NAT's outside socket, not ours.
    assert_eq!(ep.public_addr(), Some(nat.outside()));
    assert_ne!(nat.outside().port(), ep.udp_addr().port());

    let hop = format!("sip:{}", nat.inside(1));
    let (_stop, events) = start_registration(&ep, registration(&hop, Transport::Udp));
    registered(&events).await;
    let log = k.log();
    let outside = nat.outside().to_string();
    let reg = lines_with(&log, &["request REGISTER"]);
    assert_eq!(reg.len(), 1, "{log}");
    assert!(
        reg[0].contains(&format!("via=[SIP/2.0/UDP {outside};"))
            && reg[0].contains(&format!("contact=[<sip:alice@{outside}>]")),
        "Via and Contact carry the mapped address {outside}: {}",
        reg[0]
    );

    // A call to alice goes to the mapped address and through the NAT to us (480: no one
    // takes calls on this endpoint).
    let mut c = caller(&sipp_bin, k.port());
    tokio::task::block_in_place(|| c.assert_passed(T));
    assert!(
        !lines_with(&k.log(), &["relay INVITE", &outside]).is_empty(),
        "{}",
        k.log()
    );

    // Keep-alives: STUN every second to the registrar, answered by Kamailio; the STUN server
    // is asked again after the refresh interval.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stats = ep.stats().await.expect("stats");
    let to_registrar = nat.count(1, is_stun_request);
    assert!(
        to_registrar >= 3,
        "{to_registrar} STUN keep-alives on the wire"
    );
    assert!(stats.pings >= 3 && stats.pongs >= 3, "{stats:?}");
    assert_eq!(stats.flow_failures, 0, "{stats:?}");
    assert!(
        nat.count(0, is_stun_request) >= 2,
        "refreshed: {} requests to the STUN server",
        nat.count(0, is_stun_request)
    );
    assert_eq!(
        lines_with(&k.log(), &["request REGISTER"]).len(),
        1,
        "no re-registration while the flow is alive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_crlf_keepalives_go_out_on_the_registered_flow() {
    let _one = serial().await;
    let Some(kam) = kamailio() else { return };
    let k = Kamailio::builder(&kam, |port| kamailio_config(port, &Setup::default()))
        .args(["-n", "1"])
        .start();
    let registrar: std::net::SocketAddr = format!("127.0.0.1:{}", k.port()).parse().expect("a");
    let nat = UdpNat::start(&[registrar]);
    let ep = Endpoint::start(EndpointConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        nat: NatConfig {
            udp_keepalive_secs: 1,
            ..NatConfig::default()
        },
        ..EndpointConfig::default()
    })
    .await
    .expect("endpoint");
    let hop = format!("sip:{}", nat.inside(0));
    let (_stop, events) = start_registration(&ep, registration(&hop, Transport::Udp));
    registered(&events).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let crlf = nat.count(0, |b| b == b"\r\n\r\n");
    assert!(crlf >= 3, "{crlf} CRLF keep-alives on the wire");
    let stats = ep.stats().await.expect("stats");
    assert_eq!(stats.pongs, 0, "CRLF over UDP is not answered");
    assert_eq!(stats.flow_failures, 0, "and that is no failure");
}

/// A registration over TCP or TLS through a relay that later turns into a black hole.
async fn keepalive_on_a_stream_flow(tls: bool) {
    let _one = serial().await;
    let (bin, sipp_bin) = if tls {
        (kamailio_tls(), sipp())
    } else {
        (kamailio(), sipp())
    };
    let (Some(bin), Some(sipp_bin)) = (bin, sipp_bin) else {
        return;
    };
    let pki = Pki::new("tapir test CA");
    let server = pki.server("pbx", &["localhost"]);
    let cfg = pki.write("tls.cfg", &tls_config(&server, pki.ca_file(), false));
    let setup = |tls_port: Option<u16>| Setup {
        tls: tls_port.map(|p| (p, cfg.as_path())),
        flows: true,
        // Kamailio closes connections idle for 3 s (measured here: within 11 s of the
        // REGISTER, its timer is coarse): only the keep-alives keep ours.
        lifetime: Some(3),
        ..Setup::default()
    };
    let builder = if tls {
        Kamailio::builder_tls(&bin, |port, tls_port| {
            kamailio_config(port, &setup(Some(tls_port)))
        })
    } else {
        Kamailio::builder(&bin, |port| kamailio_config(port, &setup(None)))
    };
    let k = builder.args(["-n", "1"]).start();
    let upstream = if tls { k.tls_port() } else { k.port() };
    let relay = Relay::start(format!("127.0.0.1:{upstream}").parse().expect("addr"));
    let ep = Endpoint::start(EndpointConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        tls: Some(TlsConfig {
            ca_file: Some(pki.ca_file().to_path_buf()),
            ..TlsConfig::default()
        }),
        nat: NatConfig {
            keepalive_secs: 1,
            pong_timeout_secs: 2,
            ..NatConfig::default()
        },
        ..EndpointConfig::default()
    })
    .await
    .expect("endpoint");
    let transport = if tls { Transport::Tls } else { Transport::Tcp };
    let proto = if tls { "tls" } else { "tcp" };
    let hop = format!("sip:localhost:{};transport={proto}", relay.addr().port());
    let (_stop, events) = start_registration(&ep, registration(&hop, transport));
    registered(&events).await;

    // Many keep-alive intervals, and longer than Kamailio takes to close an idle connection.
    tokio::time::sleep(Duration::from_secs(14)).await;
    let stats = ep.stats().await.expect("stats");
    assert!(stats.pings >= 10, "{stats:?}");
    assert!(stats.pongs >= 10, "Kamailio answered the pings: {stats:?}");
    assert_eq!(stats.opened, 1, "one connection all along: {stats:?}");
    assert_eq!(relay.accepted(), 1);
    let regs = lines_with(&k.log(), &["request REGISTER", &format!("proto={proto}")]);
    assert_eq!(regs.len(), 1, "{}", k.log());

    // The flow dies without a FIN (a NAT forgot it): the missing pong shows it, and the
    // line registers again at once on a new connection.
    relay.blackhole_current();
    let started = std::time::Instant::now();
    registered(&events).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "re-registered after {took:?}"
    );
    let stats = ep.stats().await.expect("stats");
    assert!(stats.flow_failures >= 1, "{stats:?}");
    assert_eq!(relay.accepted(), 2);
    let regs = lines_with(&k.log(), &["request REGISTER", &format!("proto={proto}")]);
    assert_eq!(regs.len(), 2, "{}", k.log());
    let src = |l: &str| {
        l.split("src=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .map(str::to_owned)
    };
    assert_ne!(src(&regs[0]), src(&regs[1]), "a new connection");

    // The next call to the line arrives over the new flow.
    let mut c = caller(&sipp_bin, k.port());
    tokio::task::block_in_place(|| c.assert_passed(T));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crlf_keepalives_on_a_tcp_flow_find_a_dead_flow() {
    keepalive_on_a_stream_flow(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crlf_keepalives_on_a_tls_flow_find_a_dead_flow() {
    keepalive_on_a_stream_flow(true).await;
}
