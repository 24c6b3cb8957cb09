//! The endpoint against SIPp on 127.0.0.1: client transactions over UDP and TCP, and server
//! transactions (INVITE answered 100/480 with the ACK absorbed, OPTIONS answered 200, `rport`
//! filled in). SIPp exiting 0 proves it saw what its scenario expects.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tapir_sip_ua::dialog::{new_call_id, new_tag};
use tapir_sip_ua::{ClientEvent, Endpoint, EndpointConfig, Message, Method, Target, Transport};

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        // By PID, never by name.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    fn wait_success(&mut self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(s)) = self.0.try_wait() {
                return s.success();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }
}

fn sipp() -> Option<PathBuf> {
    let p = Path::new("/usr/bin/sipp");
    if p.exists() {
        Some(p.to_path_buf())
    } else {
        eprintln!("SKIPPED: sipp is not installed (/usr/bin/sipp)");
        None
    }
}

fn free_port() -> u16 {
    for _ in 0..100 {
        if let Ok(u) = UdpSocket::bind("127.0.0.1:0") {
            if let Ok(a) = u.local_addr() {
                if TcpListener::bind(a).is_ok() {
                    return a.port();
                }
            }
        }
    }
    panic!("no free port");
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

fn spawn_sipp(bin: &Path, args: &[String], dir: &Path) -> Guard {
    let child = Command::new(bin)
        .current_dir(dir)
        .args(args)
        .args(["-nostdin", "-timeout", "20s", "-timeout_error", "-m", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sipp");
    Guard(child)
}

fn wait_bound(port: u16) {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn options_to_sipp(transport: Transport) {
    let Some(bin) = sipp() else { return };
    let dir = std::env::temp_dir();
    let port = free_port();
    let t = if transport == Transport::Tcp {
        "t1"
    } else {
        "u1"
    };
    let sf = scenario("uas_options.xml");
    let mut peer = spawn_sipp(
        &bin,
        &[
            "-sf".into(),
            sf.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-t".into(),
            t.into(),
        ],
        &dir,
    );
    wait_bound(port);
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
    assert!(
        peer.wait_success(Duration::from_secs(10)),
        "sipp scenario failed"
    );
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
    let sf = scenario("uac_invite_options.xml");
    let port = free_port();
    let mut peer = spawn_sipp(
        &bin,
        &[
            ours.to_string(),
            "-sf".into(),
            sf.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ],
        &std::env::temp_dir(),
    );
    let ok = tokio::task::spawn_blocking(move || peer.wait_success(Duration::from_secs(15)))
        .await
        .expect("join");
    assert!(
        ok,
        "sipp did not get 100/480 (with rport) and 200 (with Allow) from tapir"
    );
    let stats = ep.stats().await.expect("stats");
    assert_eq!(stats.malformed, 0);
    assert!(
        stats.transactions <= 2,
        "live transactions: {}",
        stats.transactions
    );
}
