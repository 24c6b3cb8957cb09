//! The endpoint over TLS against Kamailio's TLS module, with certificates this test makes:
//! the server's certificate and name are verified (a wrong-host certificate and an untrusted CA
//! are refused, with a reason that says so), the explicit opt-out for lab PBXs works and warns,
//! a PBX that demands a client certificate gets ours, one connection carries every request to a
//! peer and is reopened after the PBX restarts, and a PBX reaches us back both over our own
//! connection (a flow) and by connecting to our TLS listener.

mod common;

use common::*;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tapir_sip_ua::{
    ClientEvent, Endpoint, EndpointConfig, Target, TlsConfig, Transport, TransportError,
};
use tapir_test_support::kamailio::{tls_config, KamailioBuilder};
use tapir_test_support::{kamailio_tls, sipp, Identity, Kamailio, Pki, Sipp};

const T: Duration = Duration::from_secs(20);

/// The Kamailio tests run one at a time (two shared cores).
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Kamailio presenting `server` (issued by `pki`'s CA), optionally demanding a client
/// certificate from that CA.
fn kamailio_builder(
    bin: &Path,
    pki: &Pki,
    server: &Identity,
    require_client_cert: bool,
    flows: bool,
) -> KamailioBuilder {
    let name = format!("tls-{}.cfg", fastrand::u32(..));
    let cfg = pki.write(
        &name,
        &tls_config(server, pki.ca_file(), require_client_cert),
    );
    Kamailio::builder_tls(bin, |port, tls| {
        kamailio_config(
            port,
            &Setup {
                tls: Some((tls, &cfg)),
                flows,
                ..Setup::default()
            },
        )
    })
    .args(["-n", "1"])
}

async fn endpoint(tls: TlsConfig) -> Endpoint {
    Endpoint::start(EndpointConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        tls: Some(tls),
        ..EndpointConfig::default()
    })
    .await
    .expect("endpoint")
}

fn trusting(pki: &Pki) -> TlsConfig {
    TlsConfig {
        ca_file: Some(pki.ca_file().to_path_buf()),
        ..TlsConfig::default()
    }
}

fn tls_target(k: &Kamailio) -> Target {
    Target {
        transport: Transport::Tls,
        addr: format!("127.0.0.1:{}", k.tls_port()).parse().expect("addr"),
    }
}

async fn options_over(ep: &Endpoint, k: &Kamailio, host: &str) -> ClientEvent {
    let uri = format!("sip:{host}:{};transport=tls", k.tls_port());
    let mut tx = ep
        .request(options(&uri), tls_target(k))
        .await
        .expect("sent");
    outcome(&mut tx, T).await
}

fn tls_reason(ev: &ClientEvent) -> String {
    match ev {
        ClientEvent::TransportError(TransportError::Tls { reason, .. }) => reason.clone(),
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

// Multi-threaded: the endpoint notices the restart while the test waits for Kamailio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_tls_with_one_connection_for_every_request_and_a_reconnect() {
    let _one = serial().await;
    let Some(bin) = kamailio_tls() else { return };
    let pki = Pki::new("tapir test CA");
    let server = pki.server("pbx", &["localhost", "127.0.0.1"]);
    let builder = kamailio_builder(&bin, &pki, &server, false, false);
    let mut k = builder.clone().start();
    let ep = endpoint(trusting(&pki)).await;
    for _ in 0..5 {
        assert_eq!(code(&options_over(&ep, &k, "localhost").await), 200);
    }
    let stats = ep.stats().await.expect("stats");
    assert_eq!(stats.opened, 1, "one TLS connection carries every request");
    let log = k.log();
    let seen = lines_with(&log, &["request OPTIONS", "proto=tls"]);
    assert_eq!(seen.len(), 5, "{log}");
    let sources: std::collections::HashSet<&str> = seen
        .iter()
        .filter_map(|l| l.split("src=").nth(1)?.split_whitespace().next())
        .collect();
    assert_eq!(sources.len(), 1, "one source address: {seen:?}");
    assert!(
        seen.iter().all(|l| l.contains("SIP/2.0/TLS")),
        "Via names TLS: {seen:?}"
    );

    // The PBX restarts: the next request opens a new connection (the IP is in the
    // certificate too, so a URI by address verifies as well).
    k.stop();
    drop(k);
    let k = builder.start();
    assert_eq!(code(&options_over(&ep, &k, "127.0.0.1").await), 200);
    assert_eq!(
        ep.stats().await.expect("stats").opened,
        2,
        "reconnected once"
    );
}

#[tokio::test]
async fn a_wrong_host_certificate_is_refused() {
    let _one = serial().await;
    let Some(bin) = kamailio_tls() else { return };
    let pki = Pki::new("tapir test CA");
    let wrong = pki.server("wrong", &["wrong.example"]);
    let k = kamailio_builder(&bin, &pki, &wrong, false, false).start();
    let ep = endpoint(trusting(&pki)).await;
    let reason = tls_reason(&options_over(&ep, &k, "localhost").await);
    assert!(
        reason.contains("certificate was refused")
            && reason.contains("not valid for")
            && reason.contains("localhost"),
        "{reason}"
    );
    assert!(
        lines_with(&k.log(), &["request OPTIONS"]).is_empty(),
        "nothing was sent over the refused connection"
    );
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let _one = serial().await;
    let Some(bin) = kamailio_tls() else { return };
    let ours = Pki::new("the CA we trust");
    let theirs = Pki::new("a CA nobody configured");
    let server = theirs.server("pbx", &["localhost"]);
    let k = kamailio_builder(&bin, &theirs, &server, false, false).start();
    let ep = endpoint(trusting(&ours)).await;
    let reason = tls_reason(&options_over(&ep, &k, "localhost").await);
    assert!(
        reason.contains("certificate was refused") && reason.contains("trusted CA"),
        "{reason}"
    );
}

/// Collects what the code under test logs (the test runs on one thread, so do its tasks).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_lab_opt_out_accepts_any_certificate_and_warns_each_time() {
    let _one = serial().await;
    let Some(bin) = kamailio_tls() else { return };
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);
    // Self-signed by a CA we were never told about, for another name.
    let lab = Pki::new("lab PBX");
    let server = lab.server("pbx", &["pbx.lab.invalid"]);
    let mut k = kamailio_builder(&bin, &lab, &server, false, false).start();
    let ep = endpoint(TlsConfig {
        insecure_skip_verify: true,
        ..TlsConfig::default()
    })
    .await;
    assert_eq!(code(&options_over(&ep, &k, "localhost").await), 200);
    // A second connection (after a restart) warns again.
    k.stop();
    drop(k);
    let k = kamailio_builder(&bin, &lab, &server, false, false).start();
    assert_eq!(code(&options_over(&ep, &k, "localhost").await), 200);
    let text = String::from_utf8_lossy(&captured.0.lock().expect("log")).into_owned();
    assert_eq!(
        text.matches("certificate verification is OFF").count(),
        1,
        "one warning at start:\n{text}"
    );
    assert_eq!(
        text.matches("was NOT verified").count(),
        2,
        "one warning per connection:\n{text}"
    );
}

#[tokio::test]
async fn a_pbx_that_demands_a_client_certificate_gets_ours() {
    let _one = serial().await;
    let Some(bin) = kamailio_tls() else { return };
    let pki = Pki::new("tapir test CA");
    let server = pki.server("pbx", &["localhost"]);
    let client = pki.client("tapir", &["tapir.client.test"]);
    let k = kamailio_builder(&bin, &pki, &server, true, false).start();

    let without = endpoint(trusting(&pki)).await;
    let reason = tls_reason(&options_over(&without, &k, "localhost").await);
    assert!(reason.contains("tls.cert_file"), "{reason}");

    let with = endpoint(TlsConfig {
        cert_file: Some(client.cert.clone()),
        key_file: Some(client.key.clone()),
        ..trusting(&pki)
    })
    .await;
    assert_eq!(code(&options_over(&with, &k, "localhost").await), 200);
    let log = k.log();
    assert!(
        !lines_with(&log, &["request OPTIONS", "cert=[tapir.client.test]"]).is_empty(),
        "Kamailio saw our certificate:\n{log}"
    );
}

/// REGISTER over TLS, then a caller (SIPp, UDP) INVITEs the registered user through Kamailio;
/// the INVITE reaches our endpoint, which answers 480 (no one takes calls on it).
async fn incoming_over_tls(listener: bool) {
    let _one = serial().await;
    let (Some(bin), Some(sipp_bin)) = (kamailio_tls(), sipp()) else {
        return;
    };
    let pki = Pki::new("tapir test CA");
    let server = pki.server("pbx", &["localhost"]);
    let ours = pki.server("tapir", &["127.0.0.1"]);
    let k = kamailio_builder(&bin, &pki, &server, false, !listener).start();
    let tls = if listener {
        TlsConfig {
            cert_file: Some(ours.cert.clone()),
            key_file: Some(ours.key.clone()),
            ..trusting(&pki)
        }
    } else {
        trusting(&pki)
    };
    let ep = endpoint(tls).await;
    assert_eq!(ep.tls_addr().is_some(), listener);
    let target = tls_target(&k);
    let contact_addr = ep.local_addr_for(&target);
    let mut reg =
        tapir_sip_ua::Message::request(tapir_sip_ua::Method::Register, "sip:localhost".to_owned());
    reg.push("Max-Forwards", "70");
    reg.push("From", "<sip:alice@localhost>;tag=r1");
    reg.push("To", "<sip:alice@localhost>");
    reg.push("Call-ID", tapir_sip_ua::dialog::new_call_id("tapir.test"));
    reg.push("CSeq", "1 REGISTER");
    reg.push(
        "Contact",
        format!("<sip:alice@{contact_addr};transport=tls>"),
    );
    reg.push("Expires", "60");
    let mut tx = ep.request(reg, target).await.expect("sent");
    assert_eq!(code(&outcome(&mut tx, T).await), 200);

    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/uac_invite_480.xml");
    let mut caller = Sipp::builder(&sipp_bin, scenario)
        .remote(format!("127.0.0.1:{}", k.port()))
        .key("user", "alice")
        .key("domain", "localhost")
        .timeout(T)
        .start();
    caller.assert_passed(T);
    let log = k.log();
    let relayed = lines_with(&log, &["relay INVITE"]);
    assert_eq!(relayed.len(), 1, "{log}");
    let stats = ep.stats().await.expect("stats");
    if listener {
        // Kamailio connected to our listener: a second TLS connection, accepted by us.
        assert_eq!(stats.opened, 1);
        assert!(stats.connections >= 2, "{stats:?}");
    } else {
        // Over our own connection: nothing else was opened or accepted.
        assert!(relayed[0].contains("via [sip:127.0.0.1:"), "{}", relayed[0]);
        assert_eq!(stats.opened, 1);
        assert_eq!(stats.connections, 1, "{stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pbx_sends_an_incoming_call_over_our_own_tls_flow() {
    incoming_over_tls(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pbx_connects_back_to_our_tls_listener() {
    incoming_over_tls(true).await;
}
