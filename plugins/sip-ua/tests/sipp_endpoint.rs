//! The endpoint against real peers on 127.0.0.1 (the call leg's SIPp tests are in `leg.rs`):
//! - SIPp: client transactions over UDP and TCP, server transactions (INVITE answered 100/480
//!   with the ACK absorbed, OPTIONS answered 200, `rport` filled in), and the answers RFC 3261
//!   asks of a UAS (501, 416, 420, 505, 400) over UDP and TCP. SIPp exiting 0 proves it saw
//!   what its scenario expects;
//! - this test binary itself as a child process with the usual 1,024-descriptor limit: 1,100
//!   idle TCP connections do not stop SIP, and with every descriptor taken the accept loop
//!   backs off instead of spinning.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tapir_sip_ua::dialog::{new_call_id, new_tag};
use tapir_sip_ua::{ClientEvent, Endpoint, EndpointConfig, Message, Method, Target, Transport};
use tapir_test_support::{sipp, Guard, Sipp};

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

/// Runs the RFC-answers scenario against a fresh endpoint over `transport`.
async fn rfc_answers_over(transport: Transport) {
    let Some(bin) = sipp() else { return };
    let ep = Endpoint::start(EndpointConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        ..EndpointConfig::default()
    })
    .await
    .expect("endpoint");
    let ours = match transport {
        Transport::Udp => ep.udp_addr(),
        Transport::Tcp | Transport::Tls => ep.tcp_addr(),
    };
    let mut peer = Sipp::builder(&bin, scenario("uac_rfc_answers.xml"))
        .remote(ours.to_string())
        .tcp(transport == Transport::Tcp)
        .timeout(Duration::from_secs(20))
        .trace_msg(false)
        .name(format!("SIPp RFC answers over {transport:?}"))
        .start();
    tokio::task::spawn_blocking(move || peer.assert_passed(Duration::from_secs(20)))
        .await
        .expect("SIPp got 501/416/420/505/400/200");
    let stats = ep.stats().await.expect("stats");
    assert!(
        stats.malformed >= 2,
        "505 and 400 came from the malformed path"
    );
}

#[tokio::test]
async fn rfc_answers_to_sipp_over_udp() {
    rfc_answers_over(Transport::Udp).await;
}

#[tokio::test]
async fn rfc_answers_to_sipp_over_tcp() {
    rfc_answers_over(Transport::Tcp).await;
}

/// Environment variable that turns this test binary into the child endpoint.
const CHILD: &str = "TAPIR_SIPUA_FD_CHILD";

/// The child: lowers its descriptor limit to 1,024, starts an endpoint (in `hog` mode it then
/// takes every free descriptor itself), prints `ENDPOINT <udp> <tcp>` and serves until its
/// standard input closes.
#[test]
#[ignore = "helper process of the descriptor tests, started by them"]
fn fd_child_endpoint() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    #[cfg(target_os = "linux")]
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        setrlimit(Resource::RLIMIT_NOFILE, 1024, hard).expect("setrlimit");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let ep = Endpoint::start(EndpointConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            ..EndpointConfig::default()
        })
        .await
        .expect("endpoint");
        let mut hogged = Vec::new();
        if mode == "hog" {
            while let Ok(f) = std::fs::File::open("/dev/null") {
                hogged.push(f);
            }
        }
        println!("ENDPOINT {} {}", ep.udp_addr(), ep.tcp_addr());
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
        })
        .await;
        drop(hogged);
        drop(ep);
    });
}

/// Starts the child endpoint in `mode`; its addresses.
fn start_child(mode: &str) -> Option<(Guard, std::net::SocketAddr, std::net::SocketAddr)> {
    use std::io::BufRead as _;
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        "fd_child_endpoint",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, mode)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut guard = Guard::start("descriptor child", &mut cmd);
    let out = guard.child_mut().stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(out).lines();
    // libtest may print "test fd_child_endpoint ... " on the same line first.
    let line = lines.find_map(|l| {
        l.ok()
            .and_then(|l| l.find("ENDPOINT ").map(|i| l[i..].to_owned()))
    })?;
    let mut it = line.split(' ').skip(1);
    let udp = it.next()?.parse().ok()?;
    let tcp = it.next()?.parse().ok()?;
    Some((guard, udp, tcp))
}

/// CPU seconds (user + system) a process used so far, from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| f.get(*i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// Share of one core the process used over `window`.
fn cpu_share(pid: u32, window: Duration) -> f64 {
    let a = cpu_secs(pid);
    std::thread::sleep(window);
    (cpu_secs(pid) - a) / window.as_secs_f64()
}

fn raise_own_fd_limit(want: u64) -> bool {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
            return false;
        };
        if soft >= want {
            return true;
        }
        if hard < want {
            return false;
        }
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = want;
        false
    }
}

fn options_text(n: u32, transport: &str) -> String {
    format!(
        "OPTIONS sip:ep@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bKfd{n}\r\n\
         From: <sip:t@127.0.0.1>;tag=f{n}\r\nTo: <sip:ep@127.0.0.1>\r\nCall-ID: fd{n}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// OPTIONS over UDP answered 200 within `wait`.
fn udp_served(to: std::net::SocketAddr, n: u32, wait: Duration) -> bool {
    let Ok(s) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = s.set_read_timeout(Some(wait));
    let _ = s.send_to(options_text(n, "UDP").as_bytes(), to);
    let mut buf = [0u8; 4096];
    matches!(s.recv_from(&mut buf), Ok((n, _)) if buf[..n].starts_with(b"SIP/2.0 200"))
}

/// OPTIONS over a fresh TCP connection answered 200 within `wait`.
fn tcp_served(to: std::net::SocketAddr, n: u32, wait: Duration) -> bool {
    use std::io::{Read as _, Write as _};
    let end = Instant::now() + wait;
    while Instant::now() < end {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            if s.write_all(options_text(n, "TCP").as_bytes()).is_ok() {
                let mut buf = [0u8; 4096];
                if matches!(s.read(&mut buf), Ok(k) if buf[..k].starts_with(b"SIP/2.0 200")) {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn eleven_hundred_idle_connections_cannot_stop_sip() {
    if !cfg!(target_os = "linux") {
        eprintln!("SKIPPED: descriptor limits are set with setrlimit here (Linux only)");
        return;
    }
    if !raise_own_fd_limit(4096) {
        eprintln!("SKIPPED: cannot raise this process's descriptor limit to 4096 for the clients");
        return;
    }
    let Some((child, udp, tcp)) = start_child("plain") else {
        panic!("child endpoint did not start");
    };
    let pid = child.pid();
    let mut idle = Vec::new();
    for _ in 0..1100 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&tcp, Duration::from_secs(2)) {
            idle.push(s);
        }
    }
    assert!(idle.len() >= 1000, "opened {} connections", idle.len());
    assert!(udp_served(udp, 1, Duration::from_secs(5)), "UDP SIP served");
    assert!(
        tcp_served(tcp, 2, Duration::from_secs(20)),
        "TCP SIP served"
    );
    let share = cpu_share(pid, Duration::from_secs(2));
    assert!(
        share < 0.5,
        "child uses {:.0} % of a core while idle",
        share * 100.0
    );
    drop(idle);
    drop(child);
}

#[test]
fn out_of_descriptors_the_accept_loop_backs_off() {
    if !cfg!(target_os = "linux") {
        eprintln!("SKIPPED: descriptor limits are set with setrlimit here (Linux only)");
        return;
    }
    let Some((child, udp, tcp)) = start_child("hog") else {
        panic!("child endpoint did not start");
    };
    let pid = child.pid();
    // Connections wait in the backlog; every accept fails with EMFILE.
    let mut pending = Vec::new();
    for _ in 0..50 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&tcp, Duration::from_secs(2)) {
            pending.push(s);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let share = cpu_share(pid, Duration::from_secs(3));
    assert!(
        share < 0.3,
        "child spins at {:.0} % of a core while accept fails",
        share * 100.0
    );
    assert!(
        udp_served(udp, 3, Duration::from_secs(5)),
        "UDP SIP still served"
    );
    drop(pending);
    drop(child);
}
