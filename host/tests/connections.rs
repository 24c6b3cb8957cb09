//! Hostile connections against `tapir run`: idle floods larger than the process's descriptor
//! limit (1,024, set with util-linux's `prlimit`) on the API and the phones listener, over
//! plain HTTP and HTTPS; slowloris heads, slow bodies, idle keep-alive; a small connection cap;
//! and the same idle flood on a SIP driver's TCP port. `/healthz`, a phone callback and SIP
//! OPTIONS (over UDP and a new TCP connection) must still be answered within a few seconds,
//! and the idle connections must be closed after the header timeout.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::web::{call, CONTROL, READ};
use support::*;

/// The floods take most of the machine's descriptors and time: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const FLOOD: usize = 1_100;

struct Host {
    daemon: Option<Daemon>,
    api: String,
    phones: String,
    _dir: tempfile::TempDir,
    _plugins: tempfile::TempDir,
}

impl Host {
    /// `tapir run` with the virtual phone, the two test tokens, `http_extra` in `[http]` and
    /// `limits` in both `connections` sections; under `prlimit --nofile=N:N` when `nofile`.
    fn start(http_extra: &str, limits: &str, nofile: Option<u32>) -> Host {
        let plugins = plugin_dir();
        let dir = tempfile::tempdir().expect("dir");
        let port = free_port();
        let phones = free_port();
        let config = write_config(
            dir.path(),
            &format!(
                "plugin_dir = {:?}\n\n[log]\nlevel = \"info\"\n\n\
                 [http]\nlisten = \"127.0.0.1:{port}\"\n{http_extra}\n\n[http.connections]\n{limits}\n\n\
                 [phones]\nlisten = \"127.0.0.1:{phones}\"\n\n[phones.connections]\n{limits}\n\n\
                 [[api.tokens]]\nname = \"crm\"\ntoken = \"{CONTROL}\"\naccess = \"control\"\n\n\
                 [[api.tokens]]\nname = \"wallboard\"\ntoken = \"{READ}\"\naccess = \"read\"\n\n\
                 [drivers.office]\ndriver = \"virtual-phone\"\n",
                plugins.path()
            ),
        );
        let mut cmd = match nofile {
            Some(n) => {
                let mut cmd = Command::new("prlimit");
                cmd.arg(format!("--nofile={n}:{n}"))
                    .arg(env!("CARGO_BIN_EXE_tapir"));
                cmd
            }
            None => tapir(),
        };
        cmd.arg("run").arg("--config").arg(&config);
        Host {
            daemon: Some(Daemon::spawn(&mut cmd)),
            api: format!("127.0.0.1:{port}"),
            phones: format!("127.0.0.1:{phones}"),
            _dir: dir,
            _plugins: plugins,
        }
    }

    fn stop(&mut self) -> String {
        match self.daemon.take() {
            Some(d) => {
                let (status, stderr) = d.stop("TERM");
                format!("exit {status:?}\n{stderr}")
            }
            None => String::new(),
        }
    }
}

/// Whether a program can be run.
fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// This process needs room for the flood too.
fn room_for_flood() -> bool {
    tapir_host::http::descriptors::raise_limit();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<u64>().ok())
        .is_some_and(|soft| soft >= 3 * FLOOD as u64)
}

/// `n` connections that never send anything, non-blocking so they can be probed.
fn idle_connections(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let s = TcpStream::connect(addr).expect("connect (the kernel queues it)");
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect()
}

/// Whether the host closed a connection (end of stream or reset).
fn closed(s: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match s.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Waits until every connection is closed by the host; how long it took.
fn wait_all_closed(conns: &[TcpStream], within: Duration, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let open = conns.iter().filter(|s| !closed(s)).count();
        if open == 0 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{what}: {open} of {} connections still open after {within:?}",
            conns.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A plain GET answered within `within` (retrying refused or dropped attempts); how long.
fn answered(addr: &str, path: &str, expect: &str, within: Duration) -> Duration {
    let start = Instant::now();
    let answer = http_get(addr, path, within);
    let took = start.elapsed();
    let answer = answer.unwrap_or_else(|| panic!("{path} on {addr}: no answer in {within:?}"));
    assert!(answer.contains(expect), "{path}: {answer}");
    took
}

/// Sends `head` byte by byte, one every `every`, until the host closes the connection; how
/// long that took, and what (if anything) it answered.
fn trickle(addr: &str, head: &[u8], every: Duration, give_up: Duration) -> (Duration, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    let start = Instant::now();
    let mut answer = Vec::new();
    for byte in head.iter().cycle() {
        if start.elapsed() > give_up {
            panic!("a trickled head was not cut off within {give_up:?}");
        }
        if s.write_all(&[*byte]).is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
        std::thread::sleep(every);
    }
    (
        start.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

/// Sends a head and part of its body, then waits for the answer.
fn slow_body(addr: &str, head: &str, part: &str) -> (Duration, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(part.as_bytes()).expect("part");
    let start = Instant::now();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    (start.elapsed(), answer)
}

/// One Prometheus sample, 0 when absent.
fn sample(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn metrics(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {READ}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn idle_floods_beyond_the_descriptor_limit_do_not_starve_healthz_or_the_phones() {
    let _one = ONE_AT_A_TIME.blocking_lock();
    if !have("prlimit") {
        println!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    }
    if !room_for_flood() {
        println!(
            "SKIPPED: this test process may not open {} files",
            3 * FLOOD
        );
        return;
    }
    let limits = "header_timeout_s = 3\nbody_timeout_s = 2\nkeepalive_timeout_s = 2\n";
    let mut host = Host::start("", limits, Some(1024));
    if http_get(&host.api, "/healthz", Duration::from_secs(30)).is_none() {
        panic!("the host did not come up: {}", host.stop());
    }

    // 1,100 idle connections on each listener: more than the host has descriptors.
    let flood_started = Instant::now();
    let mut flood = idle_connections(&host.api, FLOOD);
    flood.extend(idle_connections(&host.phones, FLOOD));
    let health = answered(&host.api, "/healthz", "200 OK", Duration::from_secs(10));
    let phone = answered(
        &host.phones,
        "/phones/office/ring?line=100&from=0301234567",
        "202",
        Duration::from_secs(10),
    );
    wait_all_closed(&flood, Duration::from_secs(60), "idle flood");
    println!(
        "{} idle connections: /healthz answered in {health:?}, a phone callback in {phone:?}; \
         all idle ones closed {:?} after the flood began",
        flood.len(),
        flood_started.elapsed()
    );
    assert!(health < Duration::from_secs(5), "/healthz took {health:?}");
    assert!(
        phone < Duration::from_secs(5),
        "the callback took {phone:?}"
    );
    drop(flood);

    // Slowloris: a head trickled byte by byte is cut off at the header timeout (3 s).
    let (took, answer) = trickle(
        &host.api,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        Duration::from_millis(200),
        Duration::from_secs(15),
    );
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(8),
        "slowloris on the API cut off after {took:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
    let (took, _) = trickle(
        &host.phones,
        b"GET /phones/office/ring?line=100&from=1 HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        Duration::from_millis(200),
        Duration::from_secs(15),
    );
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(8),
        "slowloris on the phones listener cut off after {took:?}"
    );

    // A body that stops coming: 408 after the body timeout (2 s), JSON on the API.
    let (took, answer) = slow_body(
        &host.api,
        &format!(
            "POST /v1/lines/0/calls HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {CONTROL}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        ),
        "{\"destin",
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let (_, answer) = slow_body(
        &host.phones,
        "POST /phones/office/ring?line=100&from=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n",
        "a=b",
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // An idle kept-alive connection is closed after the keep-alive timeout (2 s).
    let mut kept = TcpStream::connect(&host.api).expect("connect");
    write!(kept, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("write");
    let mut buf = [0u8; 512];
    let n = kept.read(&mut buf).expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
    kept.set_nonblocking(true).expect("nonblocking");
    let idle = wait_all_closed(
        std::slice::from_ref(&kept),
        Duration::from_secs(8),
        "keep-alive",
    );
    assert!(idle >= Duration::from_millis(1500), "{idle:?}");

    // The host still works and says what it closed and why.
    answered(&host.api, "/healthz", "200 OK", Duration::from_secs(5));
    let text = metrics(&host.api);
    let closed_by = |listener: &str, reason: &str| {
        sample(
            &text,
            &format!(
                "tapir_http_connections_closed_total{{listener=\"{listener}\",reason=\"{reason}\"}}"
            ),
        )
    };
    for listener in ["http", "phones"] {
        assert!(
            closed_by(listener, "header_timeout") + closed_by(listener, "shed") >= FLOOD as f64,
            "{listener}: {text}"
        );
        assert!(closed_by(listener, "body_timeout") >= 1.0, "{text}");
    }
    assert!(closed_by("http", "keepalive_timeout") >= 1.0, "{text}");
    let stderr = host.stop();
    assert!(stderr.starts_with("exit Some(0)"), "{stderr}");
    assert!(stderr.contains("out of file descriptors"), "{stderr}");
}

/// A self-signed certificate for localhost in `dir`.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("key");
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshakes_that_never_finish_are_slow_connections_too() {
    let _one = ONE_AT_A_TIME.lock().await;
    if !have("prlimit") {
        println!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    }
    if !room_for_flood() {
        println!(
            "SKIPPED: this test process may not open {} files",
            3 * FLOOD
        );
        return;
    }
    let certs = tempfile::tempdir().expect("dir");
    let (cert, key) = certificate(certs.path());
    let mut host = Host::start(
        &format!("tls_cert = {cert:?}\ntls_key = {key:?}\n"),
        "header_timeout_s = 3\n",
        Some(1024),
    );
    tapir_host::http::install_crypto_provider();
    let pem = std::fs::read(&cert).expect("read cert");
    let tls = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let port = host.api.rsplit(':').next().expect("port").to_owned();
    let healthz = format!("https://localhost:{port}/healthz");
    let started = Instant::now();
    while tls.get(&healthz).send().await.is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            panic!("no HTTPS answer: {}", host.stop());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Connections that never start a handshake, and some that start one and stall.
    let api = host.api.clone();
    let flood = tokio::task::spawn_blocking(move || {
        let mut flood = idle_connections(&api, FLOOD);
        for s in flood.iter_mut().take(100) {
            // The first bytes of a TLS record (a handshake, TLS 1.0 record version).
            let _ = s.write_all(&[0x16, 0x03, 0x01, 0x02]);
        }
        flood
    })
    .await
    .expect("flood");
    let start = Instant::now();
    let answer = loop {
        match tls.get(&healthz).send().await {
            Ok(r) => break r.text().await.unwrap_or_default(),
            Err(_) if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("no HTTPS /healthz during the flood: {e}"),
        }
    };
    let health = start.elapsed();
    assert_eq!(answer, "ok\n");
    assert!(health < Duration::from_secs(5), "/healthz took {health:?}");
    let all_closed = tokio::task::spawn_blocking(move || {
        wait_all_closed(&flood, Duration::from_secs(60), "TLS flood")
    })
    .await
    .expect("closed");
    println!("{FLOOD} stalled TLS connections: HTTPS /healthz in {health:?}, all closed in {all_closed:?}");
    let stderr = host.stop();
    assert!(stderr.starts_with("exit Some(0)"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_listener_sheds_waiting_connections_and_refuses_when_all_are_busy() {
    let _one = ONE_AT_A_TIME.lock().await;
    tapir_host::http::install_crypto_provider();
    let mut host = Host::start("", "max = 50\n", None);
    if http_get(&host.api, "/healthz", Duration::from_secs(30)).is_none() {
        panic!("the host did not come up: {}", host.stop());
    }
    let api = host.api.clone();
    let idle = tokio::task::spawn_blocking(move || idle_connections(&api, 200))
        .await
        .expect("idle");
    let took = answered(&host.api, "/healthz", "200 OK", Duration::from_secs(5));
    assert!(took < Duration::from_secs(2), "{took:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open = idle.iter().filter(|s| !closed(s)).count();
    assert!(open <= 50, "{open} idle connections held, the cap is 50");
    assert!(
        open >= 40,
        "only {open} held: the cap sheds more than it must"
    );
    drop(idle);

    // Fill the listener with event streams (busy for ever): a newcomer is closed at once.
    let http = reqwest::Client::new();
    let mut streams = Vec::new();
    while streams.len() < 50 {
        let url = format!("http://{}/v1/events", host.api);
        match http.get(&url).bearer_auth(READ).send().await {
            Ok(r) if r.status() == 200 => streams.push(r),
            // A waiting idle connection of the pool may be shed meanwhile: try again.
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let api = host.api.clone();
    let refused = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&api).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let _ = write!(s, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .expect("refused");
    assert!(
        refused.is_empty(),
        "a 51st connection was served: {refused}"
    );
    streams.pop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = tokio::task::spawn_blocking({
        let api = host.api.clone();
        move || metrics(&api)
    })
    .await
    .expect("metrics");
    assert!(
        sample(
            &text,
            "tapir_http_connections_closed_total{listener=\"http\",reason=\"refused\"}"
        ) >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "tapir_http_connections_closed_total{listener=\"http\",reason=\"shed\"}"
        ) >= 150.0,
        "{text}"
    );
    drop(streams);
    let _ = call(
        &reqwest::Client::new(),
        "GET",
        &format!("http://{}/healthz", host.api),
        None,
        None,
    )
    .await;
    let stderr = host.stop();
    assert!(stderr.starts_with("exit Some(0)"), "{stderr}");
    assert!(stderr.contains("every connection is busy"), "{stderr}");
}

/// CPU time (user + system) the process has used so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of the file; the part after the name starts at field 3.
    field(11) + field(12)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_with_nothing_to_shed_the_accept_loop_waits_instead_of_spinning() {
    let _one = ONE_AT_A_TIME.lock().await;
    if !have("prlimit") || !std::path::Path::new("/proc/self/stat").exists() {
        println!("SKIPPED: needs prlimit (util-linux) and /proc");
        return;
    }
    tapir_host::http::install_crypto_provider();
    let mut host = Host::start("", "", Some(128));
    if http_get(&host.api, "/healthz", Duration::from_secs(30)).is_none() {
        panic!("the host did not come up: {}", host.stop());
    }
    let pid = host.daemon.as_ref().map(|d| d.pid()).expect("pid");
    // Event streams take every descriptor the host has left; they are busy, none can be shed.
    let http = reqwest::Client::new();
    let mut streams = Vec::new();
    let mut failures = 0;
    while failures < 20 && streams.len() < 200 {
        let url = format!("http://{}/v1/events", host.api);
        match tokio::time::timeout(
            Duration::from_secs(2),
            http.get(&url).bearer_auth(READ).send(),
        )
        .await
        {
            Ok(Ok(r)) if r.status() == 200 => streams.push(r),
            _ => failures += 1,
        }
    }
    assert!(
        streams.len() > 50,
        "only {} streams: {}",
        streams.len(),
        host.stop()
    );
    // More clients knock; the host has no descriptor to take them.
    let api = host.api.clone();
    let waiting = tokio::task::spawn_blocking(move || idle_connections(&api, 50))
        .await
        .expect("connect");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu_ticks(pid) - before;
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let live = streams.len();
    println!(
        "{live} busy streams, 50 connections waiting, {open_files} files open in the host: \
         it used {used} CPU ticks in 3 s"
    );
    // A spinning accept loop burns a whole core: about 300 ticks in 3 s.
    assert!(used < 60, "{used} ticks in 3 s: the accept loop spins");
    // Shedding for descriptors never cut a stream that was being served.
    let mut cut = 0;
    for s in streams.iter_mut() {
        if tokio::time::timeout(Duration::from_millis(20), s.chunk())
            .await
            .is_ok()
        {
            cut += 1;
        }
    }
    assert_eq!(cut, 0, "{cut} busy streams were closed");
    drop(streams);
    drop(waiting);
    // With the streams gone, the host serves again. Until it has seen the closes it may still
    // be at its limit and shed the newcomer with 503 `connection_closed` ("connect again"),
    // which is what a client then does.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let answer = http_get(&host.api, "/healthz", left).unwrap_or_default();
        if answer.contains("200 OK") {
            break;
        }
        assert!(
            answer.contains("connection_closed") && Instant::now() < deadline,
            "/healthz after the streams were gone: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stderr = host.stop();
    assert!(stderr.starts_with("exit Some(0)"), "{stderr}");
    assert!(stderr.contains("out of file descriptors"), "{stderr}");
}

/// An OPTIONS to the SIP endpoint at `sip`, over UDP or over a new TCP connection; the status
/// line of the answer, if one came within `within`.
fn sip_options(sip: &str, tcp: bool, n: u32, within: Duration) -> Option<String> {
    let message = |transport: &str, local: std::net::SocketAddr| {
        format!(
            "OPTIONS sip:alice@{sip} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {local};branch=z9hG4bK-probe-{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p{n}\r\n\
             To: <sip:alice@127.0.0.1>\r\nCall-ID: probe-{n}@127.0.0.1\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let mut buf = vec![0u8; 4096];
    let got = if tcp {
        let addr = sip.parse().ok()?;
        let mut s = TcpStream::connect_timeout(&addr, within).ok()?;
        s.set_read_timeout(Some(within)).ok()?;
        let local = s.local_addr().ok()?;
        s.write_all(message("TCP", local).as_bytes()).ok()?;
        s.read(&mut buf).ok()?
    } else {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
        s.set_read_timeout(Some(within)).ok()?;
        let local = s.local_addr().ok()?;
        s.send_to(message("UDP", local).as_bytes(), sip).ok()?;
        s.recv(&mut buf).ok()?
    };
    let text = String::from_utf8_lossy(&buf[..got]).into_owned();
    text.lines().next().map(str::to_owned)
}

#[test]
fn an_idle_flood_on_the_sip_port_beyond_the_descriptor_limit_does_not_starve_sip() {
    let _one = ONE_AT_A_TIME.blocking_lock();
    if !have("prlimit") {
        println!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    }
    if !room_for_flood() {
        println!("SKIPPED: this test process may not open {FLOOD} files");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let api = format!("127.0.0.1:{}", free_port());
    let sip = format!("127.0.0.1:{}", free_port());
    let config = write_config(
        dir.path(),
        &format!(
            "[log]\nlevel = \"info\"\n\n[http]\nlisten = \"{api}\"\n\n\
             [phones]\nlisten = \"127.0.0.1:0\"\n\n\
             [drivers.pbx]\ndriver = \"sip-refer\"\nbind = \"{sip}\"\n\
             lines = [ {{ key = \"alice\", domain = \"127.0.0.1:9\", user = \"alice\" }} ]\n"
        ),
    );
    let mut cmd = Command::new("prlimit");
    cmd.arg("--nofile=1024:1024")
        .arg(env!("CARGO_BIN_EXE_tapir"))
        .arg("run")
        .arg("--config")
        .arg(&config);
    let daemon = Daemon::spawn(&mut cmd);
    let stop = |d: Daemon| {
        let (status, stderr) = d.stop("TERM");
        format!("exit {status:?}\n{stderr}")
    };
    if http_get(&api, "/healthz", Duration::from_secs(30)).is_none() {
        panic!("the host did not come up: {}", stop(daemon));
    }
    let up = (0..50).any(|n| {
        sip_options(&sip, false, n, Duration::from_millis(200)).is_some_and(|l| l.contains("200"))
    });
    assert!(up, "the SIP endpoint never answered: {}", stop(daemon));

    // 1,100 connections that never send a byte: more than the host has descriptors. Each
    // connect is bounded (past the listen queue the kernel would retry the SYN for minutes).
    let mut flood = Vec::new();
    let mut refused = 0;
    let addr: std::net::SocketAddr = sip.parse().expect("addr");
    while flood.len() < FLOOD && refused < 20 {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(s) => flood.push(s),
            Err(_) => refused += 1,
        }
    }
    println!(
        "{} idle SIP connections open, {refused} connects timed out or refused",
        flood.len()
    );
    assert!(flood.len() > 1024, "only {} connections", flood.len());

    // SIP still answers: over UDP, and over a new TCP connection (an idle one makes room).
    let started = Instant::now();
    let udp = (100..150).find_map(|n| {
        sip_options(&sip, false, n, Duration::from_millis(500)).filter(|l| l.contains("200"))
    });
    let udp_took = started.elapsed();
    let started = Instant::now();
    let tcp = (200..220).find_map(|n| {
        sip_options(&sip, true, n, Duration::from_secs(1)).filter(|l| l.contains("200"))
    });
    let tcp_took = started.elapsed();
    let health = http_get(&api, "/healthz", Duration::from_secs(10));
    println!("during the flood: OPTIONS over UDP {udp_took:?}, over TCP {tcp_took:?}");
    drop(flood);
    let stderr = stop(daemon);
    assert!(
        udp.is_some(),
        "no answer over UDP during the flood: {stderr}"
    );
    assert!(
        tcp.is_some(),
        "no answer over TCP during the flood: {stderr}"
    );
    assert!(
        udp_took < Duration::from_secs(5) && tcp_took < Duration::from_secs(10),
        "UDP {udp_took:?}, TCP {tcp_took:?}"
    );
    assert!(
        health.is_some_and(|h| h.contains("200 OK")),
        "/healthz during the flood: {stderr}"
    );
    assert!(stderr.starts_with("exit Some(0)"), "{stderr}");
}
