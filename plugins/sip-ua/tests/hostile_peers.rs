//! Hostile and broken peers against a live endpoint on 127.0.0.1, from raw sockets (SIPp cannot
//! send most of these bytes):
//! - TCP: a framed but invalid message is answered 400 and the connection stays usable;
//!   answers to earlier requests are not lost, even when the stream then becomes unframeable;
//! - TCP: idle and slow (slowloris) connections are closed by the header, body and first-head
//!   timeouts; at the connection cap the idlest connection makes room for a working one;
//! - UDP: a flood of distinct INVITEs beyond the server-transaction bound is answered 503 with
//!   Retry-After, and the table empties again;
//! - UDP: a request to a port where nothing listens fails at once with a typed "unreachable"
//!   transport error (ICMP port unreachable, RFC 3261 §18.4), and the socket keeps working;
//! - TLS: the TCP limits hold on the TLS listener too (a handshake that never comes is closed
//!   by the header timeout, stalled TLS connections count against the cap);
//! - keep-alives: a CRLFCRLF ping on an accepted connection is answered with a CRLF pong.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tapir_sip_ua::transaction::Limits;
use tapir_sip_ua::{
    ClientEvent, Endpoint, EndpointConfig, Message, Method, Target, TcpLimits, Timers, Transport,
    TransportError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_obey_the_same_limits() {
    let pki = tapir_test_support::Pki::new("tapir test CA");
    let me = pki.server("tapir", &["127.0.0.1"]);
    let ep = Endpoint::start(EndpointConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        tcp: TcpLimits {
            max_connections: 2,
            header_timeout: Duration::from_millis(800),
            body_timeout: Duration::from_millis(800),
            idle_timeout: Duration::from_secs(30),
        },
        tls: Some(tapir_sip_ua::TlsConfig {
            cert_file: Some(me.cert.clone()),
            key_file: Some(me.key.clone()),
            ca_file: Some(pki.ca_file().to_path_buf()),
            ..tapir_sip_ua::TlsConfig::default()
        }),
        ..EndpointConfig::default()
    })
    .await
    .expect("endpoint");
    let tls = ep.tls_addr().expect("a certificate gives a TLS listener");
    // A client that never starts its handshake is closed by the header timeout.
    let t0 = Instant::now();
    let mut silent = TcpStream::connect(tls).await.expect("connect");
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
    // Stalled TLS connections count against the cap: the third evicts one of the first two.
    let mut a = TcpStream::connect(tls).await.expect("connect");
    let mut b = TcpStream::connect(tls).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _c = TcpStream::connect(tls).await.expect("connect");
    let (ca, cb) = tokio::join!(
        closed_within(&mut a, Duration::from_millis(400)),
        closed_within(&mut b, Duration::from_millis(400))
    );
    assert!(ca || cb, "the cap of 2 made room");
    assert!(ep.stats().await.expect("stats").evicted >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crlf_ping_is_answered_with_a_pong() {
    let ep = endpoint(TcpLimits::default(), Limits::default(), Timers::default()).await;
    let mut s = TcpStream::connect(ep.tcp_addr()).await.expect("connect");
    s.write_all(options(1, "TCP", "").as_bytes())
        .await
        .expect("write");
    assert_eq!(
        read_codes(&mut s, 1, Duration::from_secs(5)).await,
        vec![200]
    );
    s.write_all(b"\r\n\r\n").await.expect("ping");
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut pong))
        .await
        .expect("in time")
        .expect("pong");
    assert_eq!(&pong, b"\r\n");
    // And the connection goes on carrying SIP.
    s.write_all(options(2, "TCP", "").as_bytes())
        .await
        .expect("write");
    assert_eq!(
        read_codes(&mut s, 1, Duration::from_secs(5)).await,
        vec![200]
    );
}

async fn endpoint(tcp: TcpLimits, limits: Limits, timers: Timers) -> Endpoint {
    Endpoint::start(EndpointConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        tcp,
        limits,
        timers,
        ..EndpointConfig::default()
    })
    .await
    .expect("endpoint")
}

fn options(n: u32, transport: &str, extra: &str) -> String {
    format!(
        "OPTIONS sip:ep@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bKo{n}\r\n\
         From: <sip:t@127.0.0.1>;tag=f{n}\r\nTo: <sip:ep@127.0.0.1>\r\nCall-ID: o{n}\r\n\
         CSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

/// Reads responses off a stream until `count` status codes arrived or `wait` passed.
async fn read_codes(stream: &mut TcpStream, count: usize, wait: Duration) -> Vec<u16> {
    let end = Instant::now() + wait;
    let mut buf = Vec::new();
    let mut codes = Vec::new();
    let mut chunk = [0u8; 8192];
    while codes.len() < count {
        let Some(left) = end.checked_duration_since(Instant::now()) else {
            break;
        };
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        while let Ok(used) = Message::frame(&buf) {
            let text = String::from_utf8_lossy(&buf[..used]).into_owned();
            let code = text
                .trim_start()
                .strip_prefix("SIP/2.0 ")
                .and_then(|r| r.get(..3))
                .and_then(|c| c.parse().ok())
                .expect("a status line");
            if code >= 200 {
                codes.push(code);
            }
            buf.drain(..used);
        }
    }
    codes
}

/// True when the peer closed the connection within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    let end = Instant::now() + wait;
    loop {
        let Some(left) = end.checked_duration_since(Instant::now()) else {
            return false;
        };
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_invalid_framed_message_is_answered_and_the_connection_lives_on() {
    let ep = endpoint(TcpLimits::default(), Limits::default(), Timers::default()).await;
    let mut s = TcpStream::connect(ep.tcp_addr()).await.expect("connect");
    // Valid, framed-but-invalid (CSeq method differs), valid: one write.
    let bad = options(2, "TCP", "").replace("CSeq: 2 OPTIONS", "CSeq: 2 INVITE");
    let burst = format!("{}{bad}{}", options(1, "TCP", ""), options(3, "TCP", ""));
    s.write_all(burst.as_bytes()).await.expect("write");
    let codes = read_codes(&mut s, 3, Duration::from_secs(10)).await;
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(sorted, vec![200, 200, 400], "got {codes:?}");
    // The same connection still works.
    s.write_all(options(4, "TCP", "").as_bytes())
        .await
        .expect("write");
    assert_eq!(
        read_codes(&mut s, 1, Duration::from_secs(10)).await,
        vec![200]
    );
    // A valid request, then bytes that cannot be framed (negative Content-Length): the
    // answer to the first still arrives, then the connection ends.
    let unframeable = options(6, "TCP", "").replace("Content-Length: 0", "Content-Length: -5");
    s.write_all(format!("{}{unframeable}", options(5, "TCP", "")).as_bytes())
        .await
        .expect("write");
    assert_eq!(
        read_codes(&mut s, 1, Duration::from_secs(10)).await,
        vec![200]
    );
    assert!(
        closed_within(&mut s, Duration::from_secs(15)).await,
        "an unframeable stream ends after its answers went out"
    );
    let stats = ep.stats().await.expect("stats");
    assert!(stats.malformed >= 2, "counted: {}", stats.malformed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_idle_and_slow_connections_are_timed_out() {
    let limits = TcpLimits {
        max_connections: 64,
        header_timeout: Duration::from_millis(800),
        body_timeout: Duration::from_millis(800),
        idle_timeout: Duration::from_secs(2),
    };
    let ep = endpoint(limits, Limits::default(), Timers::default()).await;
    let t0 = Instant::now();
    // Idle from the start: closed by the first-head deadline, keep-alive CRLFs or not.
    let mut idle = TcpStream::connect(ep.tcp_addr()).await.expect("connect");
    let mut crlf = TcpStream::connect(ep.tcp_addr()).await.expect("connect");
    crlf.write_all(b"\r\n\r\n").await.expect("write");
    // Slowloris: a head one byte at a time.
    let mut slow = TcpStream::connect(ep.tcp_addr()).await.expect("connect");
    let slow_writer = tokio::spawn({
        let head = options(1, "TCP", "").into_bytes();
        async move {
            for b in head {
                if slow.write_all(&[b]).await.is_err() {
                    return slow;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            slow
        }
    });
    // A complete head whose body never comes.
    let mut body = TcpStream::connect(ep.tcp_addr()).await.expect("connect");
    body.write_all(
        options(2, "TCP", "")
            .replace("Content-Length: 0", "Content-Length: 50")
            .as_bytes(),
    )
    .await
    .expect("write");
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "idle"
    );
    assert!(
        closed_within(&mut crlf, Duration::from_secs(5)).await,
        "keep-alive only"
    );
    assert!(
        closed_within(&mut body, Duration::from_secs(5)).await,
        "body never came"
    );
    let mut slow = slow_writer.await.expect("join");
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)).await,
        "slowloris"
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
    // A connection that works is served, and closed only after the idle timeout.
    let mut good = TcpStream::connect(ep.tcp_addr()).await.expect("connect");
    good.write_all(options(3, "TCP", "").as_bytes())
        .await
        .expect("write");
    assert_eq!(
        read_codes(&mut good, 1, Duration::from_secs(5)).await,
        vec![200]
    );
    let served = Instant::now();
    assert!(
        closed_within(&mut good, Duration::from_secs(10)).await,
        "idle timeout"
    );
    assert!(
        served.elapsed() >= Duration::from_millis(1500),
        "not before the idle timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_idle_connections_make_room() {
    let limits = TcpLimits {
        max_connections: 8,
        ..TcpLimits::default()
    };
    let ep = endpoint(limits, Limits::default(), Timers::default()).await;
    let mut idle = Vec::new();
    for _ in 0..30 {
        idle.push(TcpStream::connect(ep.tcp_addr()).await.expect("connect"));
    }
    let mut good = TcpStream::connect(ep.tcp_addr()).await.expect("connect");
    good.write_all(options(1, "TCP", "").as_bytes())
        .await
        .expect("write");
    assert_eq!(
        read_codes(&mut good, 1, Duration::from_secs(10)).await,
        vec![200]
    );
    let stats = ep.stats().await.expect("stats");
    assert!(stats.connections <= 8, "connections: {}", stats.connections);
    assert!(stats.evicted >= 23, "evicted: {}", stats.evicted);
    // The working connection was not the one evicted: it still answers.
    for _ in 0..5 {
        idle.push(TcpStream::connect(ep.tcp_addr()).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    good.write_all(options(2, "TCP", "").as_bytes())
        .await
        .expect("write");
    assert_eq!(
        read_codes(&mut good, 1, Duration::from_secs(10)).await,
        vec![200]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_new_transactions_is_bounded_and_answered_503() {
    // Timer H (64 × T1 = 12.8 s) outlasts the flood by far, so no transaction ends while the
    // flood is read, even on a loaded machine: exactly `max_server` are taken and the rest must
    // be 503s. (With T1 = 20 ms, H was 1.28 s: under load transactions ended mid-flood and
    // freed places, and the 480 retransmissions every 20-80 ms overflowed this test's receive
    // buffer and lost 503s; the test saw 78-96 of them.)
    let timers = Timers {
        t1: Duration::from_millis(200),
        t2: Duration::from_millis(800),
        t4: Duration::from_millis(1000),
        proceeding_limit: Duration::from_secs(2),
    };
    let limits = Limits {
        max_server: 50,
        max_lingering: 100,
        ..Limits::default()
    };
    let ep = endpoint(TcpLimits::default(), limits, timers).await;
    let sock = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("socket"));
    let to = ep.udp_addr();
    // The answers are read while the flood goes out: a socket's receive buffer holds only
    // about a hundred small datagrams on loopback (each is charged far more than its size),
    // so reading only afterwards lost answers the endpoint had sent.
    let reader = {
        let sock = sock.clone();
        tokio::spawn(async move {
            let mut busy = 0u64;
            let mut retry_after = true;
            let mut buf = vec![0u8; 4096];
            let end = Instant::now() + Duration::from_secs(5);
            while let Some(left) = end.checked_duration_since(Instant::now()) {
                let Ok(Ok((n, _))) = tokio::time::timeout(
                    left.min(Duration::from_millis(500)),
                    sock.recv_from(&mut buf),
                )
                .await
                else {
                    break;
                };
                if let Ok(m) = Message::parse(&buf[..n]) {
                    if m.code() == Some(503) {
                        busy += 1;
                        retry_after &= m.header("Retry-After") == Some("5");
                    }
                }
            }
            (busy, retry_after)
        })
    };
    // INVITEs answered 480 stay live until their ACK (Timer H): they fill the table. Sent in
    // bursts of 20 (a few milliseconds apart), all within a fraction of Timer H.
    for i in 0..200u32 {
        let inv = options(i, "UDP", "")
            .replace("OPTIONS sip", "INVITE sip")
            .replace(&format!("CSeq: {i} OPTIONS"), &format!("CSeq: {i} INVITE"));
        sock.send_to(inv.as_bytes(), to).await.expect("send");
        if i % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let (busy, retry_after) = reader.await.expect("reader");
    let stats = ep.stats().await.expect("stats");
    assert!(busy >= 100, "503s: {busy}");
    assert!(retry_after, "every 503 carries Retry-After");
    assert!(stats.layer.overload_rejections >= 100);
    assert!(stats.transactions <= 50, "live: {}", stats.transactions);
    // Every INVITE taken off the socket became a transaction or a 503, and the bound let no
    // more than `max_server` in.
    assert!(
        stats.layer.created <= 50,
        "created: {}",
        stats.layer.created
    );
    assert_eq!(stats.layer.created + stats.layer.overload_rejections, 200);
    assert!(busy <= stats.layer.overload_rejections);
    // Everything ends: the table empties (after Timer H).
    let end = Instant::now() + Duration::from_secs(40);
    while ep.stats().await.expect("stats").transactions > 0 {
        assert!(Instant::now() < end, "transactions never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn probe(to: SocketAddr, n: u32) -> Message {
    let mut req = Message::request(Method::Options, format!("sip:x@{to}"));
    req.push("Max-Forwards", "70");
    req.push("From", format!("<sip:probe@127.0.0.1>;tag=p{n}"));
    req.push("To", format!("<sip:x@{to}>"));
    req.push("Call-ID", format!("probe-{n}"));
    req.push("CSeq", "1 OPTIONS");
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icmp_port_unreachable_fails_the_transaction_at_once() {
    if !cfg!(target_os = "linux") {
        eprintln!("SKIPPED: ICMP errors are read with IP_RECVERR, Linux only");
        return;
    }
    let ep = endpoint(TcpLimits::default(), Limits::default(), Timers::default()).await;
    // A port nothing listens on: bind, note, close.
    let dead = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr")
    };
    let started = Instant::now();
    let mut tx = ep
        .request(
            probe(dead, 1),
            Target {
                transport: Transport::Udp,
                addr: dead,
            },
        )
        .await
        .expect("sent");
    let ev = tokio::time::timeout(Duration::from_secs(5), tx.events.recv())
        .await
        .expect("an event within 5 s, not after Timer F's 32 s");
    match ev {
        Some(ClientEvent::TransportError(e @ TransportError::Unreachable { .. })) => {
            assert!(e.is_unreachable());
            assert!(e.to_string().contains(&dead.to_string()), "{e}");
            assert!(e.to_string().contains("port unreachable"), "{e}");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    let stats = ep.stats().await.expect("stats");
    assert!(stats.icmp_errors >= 1);
    assert_eq!(stats.transactions, 0, "the transaction ended");
    // The socket still works for live peers afterwards (the pending error does not eat a send).
    let live = UdpSocket::bind("127.0.0.1:0").await.expect("live");
    let live_addr = live.local_addr().expect("addr");
    for n in 2..5 {
        let _ = ep
            .request(
                probe(dead, n),
                Target {
                    transport: Transport::Udp,
                    addr: dead,
                },
            )
            .await
            .expect("sent");
        let _tx = ep
            .request(
                probe(live_addr, n + 10),
                Target {
                    transport: Transport::Udp,
                    addr: live_addr,
                },
            )
            .await
            .expect("sent");
        let mut buf = [0u8; 2048];
        let got = tokio::time::timeout(Duration::from_secs(2), live.recv_from(&mut buf)).await;
        assert!(got.is_ok(), "request {n} to the live peer arrived");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icmpv6_port_unreachable_fails_the_transaction_at_once() {
    if !cfg!(target_os = "linux") {
        eprintln!("SKIPPED: ICMP errors are read with IPV6_RECVERR, Linux only");
        return;
    }
    let Ok(dead) = std::net::UdpSocket::bind("[::1]:0").and_then(|s| s.local_addr()) else {
        eprintln!("SKIPPED: no IPv6 loopback here");
        return;
    };
    let ep = Endpoint::start(EndpointConfig {
        bind: "[::1]:0".parse().expect("addr"),
        ..EndpointConfig::default()
    })
    .await
    .expect("endpoint");
    let mut tx = ep
        .request(
            probe(dead, 1),
            Target {
                transport: Transport::Udp,
                addr: dead,
            },
        )
        .await
        .expect("sent");
    let ev = tokio::time::timeout(Duration::from_secs(5), tx.events.recv())
        .await
        .expect("an event within 5 s");
    assert!(
        matches!(ev, Some(ClientEvent::TransportError(TransportError::Unreachable { peer, .. })) if peer == dead),
        "{ev:?}"
    );
}
