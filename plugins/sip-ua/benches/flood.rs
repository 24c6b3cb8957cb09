//! A flood of distinct requests against one endpoint: RSS and table sizes before, during and
//! after, with the default bounds (or with `-- unbounded`, the bounds lifted, to compare).
//!
//! `cargo bench -p tapir-sip-ua --bench flood [-- unbounded] [-- SECONDS]`
//!
//! Prints a table; it measures, it does not assert (the bound itself is tested in
//! `src/transaction/tests.rs` and `tests/hostile_peers.rs`).

use std::time::{Duration, Instant};
use tapir_sip_ua::transaction::Limits;
use tapir_sip_ua::{Endpoint, EndpointConfig};

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let unbounded = args.iter().any(|a| a == "unbounded");
    let secs: u64 = args
        .iter()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(unbounded, secs));
}

async fn run(unbounded: bool, secs: u64) {
    let limits = if unbounded {
        Limits {
            max_server: usize::MAX,
            max_lingering: usize::MAX,
            ..Limits::default()
        }
    } else {
        Limits::default()
    };
    let ep = Endpoint::start(EndpointConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        limits,
        ..EndpointConfig::default()
    })
    .await
    .expect("endpoint");
    let to = ep.udp_addr();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("socket");
    // Drain answers so our socket never fills.
    let rx = std::sync::Arc::new(sock);
    let reader = rx.clone();
    let answers = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let mut n = 0u64;
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_secs(2), reader.recv_from(&mut buf)).await
        {
            n += 1;
        }
        n
    });
    println!(
        "flood of distinct OPTIONS, {} bounds, {secs} s",
        if unbounded { "NO" } else { "default" }
    );
    println!("| phase | RSS MB | live+lingering tx | sent | req/s |");
    println!("|---|---|---|---|---|");
    let before = rss_mb();
    println!("| before | {before:.1} | 0 | 0 | |");
    let start = Instant::now();
    let mut sent = 0u64;
    let mut peak = before;
    let mut peak_tx = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        for _ in 0..200 {
            let msg = format!(
                "OPTIONS sip:ep@{to} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKfl{sent}\r\n\
                 From: <sip:f@127.0.0.1>;tag=f{sent}\r\nTo: <sip:ep@{to}>\r\nCall-ID: fl{sent}\r\n\
                 CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = rx.send_to(msg.as_bytes(), to).await;
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        if sent % 10_000 == 0 {
            peak = peak.max(rss_mb());
            if let Ok(s) = ep.stats().await {
                peak_tx = peak_tx.max(s.transactions);
            }
        }
    }
    let rate = sent as f64 / start.elapsed().as_secs_f64();
    let s = ep.stats().await.expect("stats");
    peak = peak.max(rss_mb());
    println!(
        "| end of flood | {:.1} (peak {peak:.1}) | {} (peak {peak_tx}) | {sent} | {rate:.0} |",
        rss_mb(),
        s.transactions
    );
    // Past Timer J (64·T1 = 32 s): every transaction has ended.
    tokio::time::sleep(Duration::from_secs(35)).await;
    let s = ep.stats().await.expect("stats");
    println!("| 35 s later | {:.1} | {} | | |", rss_mb(), s.transactions);
    println!(
        "answered: {} of {sent}; forgotten early: {}; refused 503: {}",
        answers.await.unwrap_or(0),
        s.layer.early_forgotten,
        s.layer.overload_rejections
    );
}
