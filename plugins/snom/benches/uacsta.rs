//! Benchmark: uaCSTA over SIP at scale. N simulated snom phones with a SIP side; the driver
//! opens a CSTA session to each (INVITE, MonitorStart), then every phone reports a call by
//! CSTA events only (no Action URL is written), the application answers each call with a
//! CSTA request over its session, and the far end hangs up.
//!
//! `cargo bench -p tapir-plugin-snom --bench uacsta [-- N ...]` (default N = 50 1000).
//!
//! Measured per N: the time until every session is up; the event latency from the moment the
//! phone queues its `DeliveredEvent` to the `NewCall` at the subscriber; the request latency
//! from `Answer` submitted to its completion (one INFO round trip through the driver's
//! queue); lost calls; the driver's resident-set growth per phone while it opens the
//! sessions. Phone `i` lives on its own loopback address `127.0.(1 + i/200).(1 + i%200)`.

mod common;

use common::{percentile, rss_kib};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapir_core::{CallId, CallState};
use tapir_snom_sim::{Sim, SimConfig, SimSip};
use tapir_tsp::{Action, Tsp, TspConfig, TspEvent};

struct Row {
    n: usize,
    open_secs: f64,
    event_p50: f64,
    event_p99: f64,
    request_p50: f64,
    request_p99: f64,
    kib_per_phone: f64,
    lost: usize,
}

fn run(n: usize) -> Result<Row, String> {
    let sim = Sim::new(2).map_err(|e| e.to_string())?;
    let mut phones = Vec::with_capacity(n);
    for i in 0..n {
        let mac = format!("0004131{i:05X}");
        let phone = sim
            .phone(SimConfig {
                bind: std::net::SocketAddr::from((
                    [127, 0, 1 + (i / 200) as u8, 1 + (i % 200) as u8],
                    0,
                )),
                mac: mac.clone(),
                csta: false,
                sip: Some(SimSip::default()),
                ..SimConfig::default()
            })
            .map_err(|e| format!("phone {i}: {e}"))?;
        phones.push((mac, phone));
    }
    let list: Vec<String> = phones
        .iter()
        .map(|(mac, p)| format!(r#"{{"address": "{}", "mac": "{mac}"}}"#, p.addr()))
        .collect();
    // No callback base and no writes: call states come from the CSTA monitor only.
    let config = format!(
        r#"{{"phones": [{}], "auto_reconfigure": false, "status_interval_secs": 0, "snapshot_interval_secs": 0, "liveness_interval_secs": 0, "sip_listen": "127.0.0.1:0", "request_timeout_ms": 10000}}"#,
        list.join(",")
    );
    let tsp = Arc::new(Tsp::new(TspConfig {
        history: 1 << 16,
        ..TspConfig::default()
    }));
    let rss_before = rss_kib();
    let started = Instant::now();
    let driver = tsp
        .add_driver("bench", |sink| tapir_plugin_snom::build(&config, sink))
        .map_err(|e| e.to_string())?;
    tsp.sync();
    let deadline = Instant::now() + Duration::from_secs(120 + n as u64 / 10);
    loop {
        let up = phones.iter().filter(|(_, p)| p.sip_session().0).count();
        if up == n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {up} of {n} sessions up"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let open_secs = started.elapsed().as_secs_f64();
    let rss_after = rss_kib();
    // The driver announces the session's routes; wait until every line has them.
    loop {
        let ready = tsp
            .lines()
            .iter()
            .filter(|l| l.caps.operations.contains(tapir_core::Operation::SwapHold))
            .count();
        if ready == n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {ready} of {n} lines have CSTA routes"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for line in tsp.lines() {
        tsp.open_line(line.id).map_err(|e| e.to_string())?;
    }

    let mut events = tsp.subscribe();
    let epoch = Instant::now();
    for (_, phone) in &phones {
        let start = epoch.elapsed().as_micros() as u64;
        phone.incoming(&start.to_string());
    }
    // Collect the NewCalls; answer each as it appears.
    let mut event_lat = Vec::with_capacity(n);
    let mut submitted: HashMap<tapir_core::RequestId, Instant> = HashMap::new();
    let mut request_lat = Vec::with_capacity(n);
    let mut calls: Vec<CallId> = Vec::new();
    let until = Instant::now() + Duration::from_secs(120);
    while (event_lat.len() < n || request_lat.len() < n) && Instant::now() < until {
        match events.try_recv() {
            Ok(e) => match e.event {
                TspEvent::NewCall { call, info, .. } => {
                    if let Some(start) = info.calling.raw_number.and_then(|s| s.parse::<u64>().ok())
                    {
                        let now = epoch.elapsed().as_micros() as u64;
                        event_lat.push(now.saturating_sub(start));
                    }
                    calls.push(call);
                    let sent = Instant::now();
                    if let Ok(a) = tsp.submit(Action::Answer { call }) {
                        submitted.insert(a.request, sent);
                    }
                }
                TspEvent::Completed {
                    request, result, ..
                } => {
                    if let Some(sent) = submitted.remove(&request) {
                        if matches!(result, tapir_tsp::RequestResult::Ok(_)) {
                            request_lat.push(sent.elapsed().as_micros() as u64);
                        }
                    }
                }
                _ => {}
            },
            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => {
                std::thread::sleep(Duration::from_micros(200))
            }
            Err(e) => return Err(format!("event stream: {e}")),
        }
    }
    // The far end hangs up; every call must end.
    for (_, phone) in &phones {
        for c in phone.calls() {
            phone.remote_hangup(c.csta);
        }
    }
    let mut ended = 0usize;
    let until = Instant::now() + Duration::from_secs(120);
    while ended < calls.len() && Instant::now() < until {
        match events.try_recv() {
            Ok(e) => {
                if let TspEvent::CallState {
                    state: CallState::Disconnected(_),
                    ..
                } = e.event
                {
                    ended += 1;
                }
            }
            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => {
                std::thread::sleep(Duration::from_micros(200))
            }
            Err(e) => return Err(format!("event stream: {e}")),
        }
    }
    drop(driver);
    tsp.shutdown();
    event_lat.sort_unstable();
    request_lat.sort_unstable();
    Ok(Row {
        n,
        open_secs,
        event_p50: percentile(&event_lat, 0.5),
        event_p99: percentile(&event_lat, 0.99),
        request_p50: percentile(&request_lat, 0.5),
        request_p99: percentile(&request_lat, 0.99),
        kib_per_phone: rss_after.saturating_sub(rss_before) as f64 / n as f64,
        lost: n.saturating_sub(request_lat.len()) + calls.len().saturating_sub(ended),
    })
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![50, 1000]
    } else {
        sizes
    };
    println!("| phones | sessions up in s | sessions/s | event p50 ms | event p99 ms | request p50 ms | request p99 ms | driver KiB/phone | calls lost |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        match run(n) {
            Ok(r) => println!(
                "| {} | {:.2} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
                r.n,
                r.open_secs,
                r.n as f64 / r.open_secs,
                r.event_p50,
                r.event_p99,
                r.request_p50,
                r.request_p99,
                r.kib_per_phone,
                r.lost
            ),
            Err(e) => println!("| {n} | failed: {e} |"),
        }
    }
}
