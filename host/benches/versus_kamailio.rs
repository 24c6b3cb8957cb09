//! Side by side: the same click-to-dial job against the same SIPp phone, through `tapir run`'s
//! REST API (`sip-refer`; tapir waits for the final NOTIFY and streams the call's events to a
//! reader of `/v1/events`) and through Kamailio 5.6's `dlg.bridge_dlg` over JSON-RPC (modules
//! `dialog`, `jsonrpcs` over `xhttp`; Kamailio hangs up once the REFER is accepted).
//!
//! The job: N click-to-dials per run; the client sends each as one HTTP request and counts it
//! when the server accepted it; a call is completed when the phone ran its whole scenario
//! (INVITE answered, REFER accepted, NOTIFY 100 and 200 sent, BYE answered). Two client shapes,
//! identical for both servers: one connection with one request at a time (`1x1`), and
//! `TAPIR_BENCH_CONNECTIONS` connections (default 4) each with one request at a time. Runs
//! alternate tapir, Kamailio, tapir, ... `TAPIR_BENCH_ROUNDS` times (default 3); the table
//! shows medians. Counted for the server only: CPU (utime+stime from /proc, for Kamailio the
//! sum over all its processes), peak RSS (VmHWM; Kamailio's summed over processes). Counted
//! apart: what the SIPp phone and the bench client spend per call ("phone+client"), and from
//! it the machine's ceiling: how much CPU per call a server could spend at twice Kamailio's
//! calls per second, when the phone and the client share the machine's cores with it.
//!
//! Run: `cargo bench -p tapir-host --bench versus_kamailio` (N = `TAPIR_BENCH_N`, default
//! 10000; `TAPIR_BENCH_RATE` paces the requests to that many per second overall, for comparing
//! CPU per call below saturation; `TAPIR_BENCH_SIDE` and `TAPIR_BENCH_SHAPE` run one side or
//! one shape; `TAPIR_BENCH_BIN` runs another tapir binary, for A/B of two builds). Needs `sipp` and `kamailio`; prints `SKIPPED` without them.

mod ctd;

use ctd::{env_num, load, median, run, RunResult, Shape, Side};

fn row(side: Side, shape: &str, runs: &[RunResult]) -> (f64, f64, f64) {
    let rate = median(runs.iter().map(RunResult::rate).collect());
    let cpu = median(runs.iter().map(RunResult::cpu_us_per_call).collect());
    let others = median(runs.iter().map(RunResult::load_us_per_call).collect());
    let rss = median(runs.iter().map(|r| r.peak_rss_mib).collect());
    let fails: u64 = runs.iter().map(|r| r.failures).sum();
    let retrans: u64 = runs.iter().map(|r| r.retransmissions).sum();
    let completed: Vec<String> = runs.iter().map(|r| r.completed.to_string()).collect();
    let rates: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.rate())).collect();
    println!(
        "| {:<8} | {:<5} | {:>9.0} | {:>12.1} | {:>13.1} | {:>8} | {:>7} | {:>13.1} | {} | {} |",
        side.name(),
        shape,
        rate,
        cpu,
        rss,
        fails,
        retrans,
        others,
        rates.join(" "),
        completed.join(" ")
    );
    (rate, cpu, others)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (Some(_), Some(_)) = (
        tapir_test_support::programs::sipp(),
        tapir_test_support::programs::kamailio(),
    ) else {
        println!("SKIPPED: needs sipp and kamailio");
        return;
    };
    let n = env_num("TAPIR_BENCH_N", 10_000);
    let rounds = env_num("TAPIR_BENCH_ROUNDS", 3);
    let conns = env_num("TAPIR_BENCH_CONNECTIONS", 4);
    let only = std::env::var("TAPIR_BENCH_SHAPE").unwrap_or_default();
    let sides = std::env::var("TAPIR_BENCH_SIDE").unwrap_or_default();
    // Paced: at most this many requests per second overall (0: as fast as answers come).
    let rate = Some(env_num("TAPIR_BENCH_RATE", 0) as f64).filter(|r| *r > 0.0);
    let shapes: Vec<(String, Shape)> = [
        (
            "1x1".to_owned(),
            Shape {
                connections: 1,
                rate,
            },
        ),
        (
            format!("{conns}x1"),
            Shape {
                connections: conns,
                rate,
            },
        ),
    ]
    .into_iter()
    .filter(|(name, _)| only.is_empty() || *name == only)
    .collect();
    println!(
        "versus_kamailio: N = {n} calls per run, {rounds} rounds alternating, load before: {}",
        load()
    );
    let mut results: Vec<(String, Vec<RunResult>, Vec<RunResult>)> = Vec::new();
    for (name, shape) in &shapes {
        let (mut t, mut k) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            for side in [Side::Tapir, Side::Kamailio] {
                if !sides.is_empty() && sides != side.name() {
                    continue;
                }
                let r = run(side, n, *shape, 0, &[]);
                eprintln!(
                    "  {name} round {} {:<8}: {:>6.0} calls/s, {:>6.1} us CPU/call, {:>6.1} MiB, \
                     {} failures, {} retransmissions, {} events, phone+client {:.1} us/call, \
                     load {}",
                    round + 1,
                    side.name(),
                    r.rate(),
                    r.cpu_us_per_call(),
                    r.peak_rss_mib,
                    r.failures,
                    r.retransmissions,
                    r.events,
                    r.load_us_per_call(),
                    load()
                );
                match side {
                    Side::Tapir => t.push(r),
                    Side::Kamailio => k.push(r),
                }
            }
        }
        results.push((name.clone(), t, k));
    }
    println!();
    println!(
        "| server   | shape | calls/s   | CPU us/call  | peak RSS MiB  | failures | retrans | phone+client us/call | calls/s per run | completed per run |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|---|");
    let mut ratios = Vec::new();
    for (name, t, k) in &results {
        let (tr, tc, others) = row(Side::Tapir, name, t);
        let (kr, kc, _) = row(Side::Kamailio, name, k);
        ratios.push((
            name.clone(),
            tr / kr.max(f64::MIN_POSITIVE),
            tc / kc.max(f64::MIN_POSITIVE),
            kr,
            others,
        ));
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    println!();
    println!(
        "| shape | tapir/kamailio calls/s | tapir/kamailio CPU per call | at 2x kamailio's calls/s: phone+client use (of {cores:.0} cores) | server CPU per call left |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, r, c, kr, others) in ratios {
        // At twice Kamailio's rate the phone and the client alone take `used` cores; what the
        // machine has left, spread over the calls, is the most a server may spend per call.
        let target = 2.0 * kr;
        let used = target * others / 1e6;
        let left = if target > 0.0 {
            ((cores - used) * 1e6 / target).max(0.0)
        } else {
            0.0
        };
        println!("| {name} | {r:.2}x | {c:.2}x | {used:.2} | {left:.0} us |");
    }
    println!("\nload after: {}", load());
}
