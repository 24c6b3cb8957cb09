//! Benchmark: N simulated snom phones send Action URL events through the callback endpoint to
//! the snom driver and the front end; a subscriber measures throughput and latency.
//!
//! `cargo bench -p tapir-plugin-snom --bench action_urls [-- N ...]` (default N = 50 1000 10000).
//!
//! Per N: phones are started with the driver's Action URLs already in their settings (what a
//! provisioning server does), the driver reads every phone once, every line is opened, then
//! each phone gets `rounds` incoming calls that the far end abandons (two Action URLs each:
//! `incoming`, `disconnected` + `missed`). Latency is measured from the moment the simulated
//! phone queues the `incoming` request to the moment the subscriber sees the `NewCall`; the
//! caller number carries the start time. Memory per phone is the growth of the process's
//! resident set while the driver takes on the phones, divided by N. Phone `i` listens and
//! calls from its own loopback address `127.0.(1 + i/200).(1 + i%200)`.

mod common;

use common::{percentile, rss_kib};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapir_snom_sim::{Sim, SimConfig};
use tapir_test_support::PhoneCallbacks;
use tapir_tsp::{Tsp, TspConfig, TspEvent};

struct Row {
    n: usize,
    actions: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    kib_per_phone: f64,
    lost: usize,
}

fn run(n: usize) -> Result<Row, String> {
    // The phones' callbacks go through an HTTP listener with a deep accept queue, as a
    // production listener for thousands of phones has it.
    let callbacks = PhoneCallbacks::start("bench");
    let base = callbacks.base();
    let key = b"bench-key";

    let sim = Sim::new(2).map_err(|e| e.to_string())?;
    let mut phones = Vec::with_capacity(n);
    for i in 0..n {
        let mac = format!("0004130{i:05X}");
        let secret = tapir_plugin_snom::action::derive_secret(key, &mac);
        let settings = tapir_plugin_snom::settings::required(&base, &mac, &secret)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let phone = sim
            .phone(SimConfig {
                // Phones spread over 127.0.x.y, as on a LAN: each has its own address, so the
                // connections of 10,000 phones do not compete for one address's ports.
                bind: std::net::SocketAddr::from((
                    [127, 0, 1 + (i / 200) as u8, 1 + (i % 200) as u8],
                    0,
                )),
                mac: mac.clone(),
                settings,
                csta: false,
                ..SimConfig::default()
            })
            .map_err(|e| format!("phone {i}: {e}"))?;
        phones.push((mac, phone));
    }
    let list: Vec<String> = phones
        .iter()
        .map(|(mac, p)| format!(r#"{{"address": "{}", "mac": "{mac}"}}"#, p.addr()))
        .collect();
    let config = format!(
        r#"{{"phones": [{}], "callback_key": "bench-key", "status_interval_secs": 0, "snapshot_interval_secs": 0}}"#,
        list.join(",")
    );
    let tsp = Arc::new(Tsp::new(TspConfig {
        callback_base: Some(callbacks.callback_base()),
        history: 1 << 16,
        ..TspConfig::default()
    }));
    let rss_before = rss_kib();
    let driver = tsp
        .add_driver("bench", |sink| tapir_plugin_snom::build(&config, sink))
        .map_err(|e| e.to_string())?;
    callbacks.attach(driver.clone());
    tsp.sync();
    let deadline = Instant::now() + Duration::from_secs(120 + n as u64 / 20);
    loop {
        let correct = driver
            .devices()
            .iter()
            .filter(|d| d.configuration == tapir_core::Configuration::Correct)
            .count();
        if correct == n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {correct} of {n} phones configured"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let rss_after = rss_kib();
    for line in tsp.lines() {
        tsp.open_line(line.id).map_err(|e| e.to_string())?;
    }

    let rounds = (2000 / n).max(1);
    let expected_calls = n * rounds;
    let mut events = tsp.subscribe();
    let epoch = Instant::now();
    let ended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ended_in = Arc::clone(&ended);
    let collector = std::thread::spawn(move || {
        let mut latencies = Vec::with_capacity(expected_calls);
        let mut ended_calls = 0usize;
        let mut lagged = 0u64;
        let until = Instant::now() + Duration::from_secs(300);
        while ended_calls < expected_calls && Instant::now() < until {
            match events.try_recv() {
                Ok(e) => match e.event {
                    TspEvent::NewCall { info, .. } => {
                        if let Some(start) =
                            info.calling.raw_number.and_then(|s| s.parse::<u64>().ok())
                        {
                            let now = epoch.elapsed().as_micros() as u64;
                            latencies.push(now.saturating_sub(start));
                        }
                    }
                    // The driver holds nothing once a call is Disconnected.
                    TspEvent::CallState {
                        state: tapir_core::CallState::Disconnected(_),
                        ..
                    } => {
                        ended_calls += 1;
                        ended_in.store(ended_calls, std::sync::atomic::Ordering::Release);
                    }
                    _ => {}
                },
                Err(tokio::sync::broadcast::error::TryRecvError::Empty) => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(k)) => lagged += k,
                Err(tokio::sync::broadcast::error::TryRecvError::Closed) => break,
            }
        }
        (latencies, ended_calls, lagged, epoch.elapsed())
    });
    // One wave per round: every phone reports a call at the same moment, the next wave starts
    // when all calls of this one have ended.
    for round in 0..rounds {
        for (_, phone) in &phones {
            let start = epoch.elapsed().as_micros() as u64;
            let csta = phone.incoming(&start.to_string());
            phone.remote_hangup(csta);
        }
        let wave_deadline = Instant::now() + Duration::from_secs(60);
        while ended.load(std::sync::atomic::Ordering::Acquire) < (round + 1) * n
            && Instant::now() < wave_deadline
        {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let (mut latencies, ended_calls, lagged, elapsed) = collector
        .join()
        .map_err(|_| "collector panicked".to_owned())?;
    tsp.shutdown();
    latencies.sort_unstable();
    let pct = |p: f64| percentile(&latencies, p);
    if lagged > 0 {
        return Err(format!("the subscriber lagged by {lagged} events"));
    }
    Ok(Row {
        n,
        actions: expected_calls * 3,
        secs: elapsed.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        kib_per_phone: rss_after.saturating_sub(rss_before) as f64 / n as f64,
        lost: expected_calls.saturating_sub(ended_calls),
    })
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![50, 1000, 10_000]
    } else {
        sizes
    };
    println!("| phones | Action URLs | seconds | Action URLs/s | TAPI call events/s | p50 ms | p99 ms | driver KiB/phone | calls not ended |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        match run(n) {
            Ok(r) => println!(
                "| {} | {} | {:.2} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
                r.n,
                r.actions,
                r.secs,
                r.actions as f64 / r.secs,
                // Per call: NewCall, Offering, Disconnected.
                r.actions as f64 / r.secs,
                r.p50_ms,
                r.p99_ms,
                r.kib_per_phone,
                r.lost
            ),
            Err(e) => println!("| {n} | failed: {e} |"),
        }
    }
}
