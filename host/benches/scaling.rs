//! How tapir's click-to-dial path scales (the job of `versus_kamailio`, tapir only):
//! - **concurrent calls**: the phone holds every call ringing for `TAPIR_BENCH_HOLD_MS`
//!   (default 2000) and the client starts calls at C / hold per second, so about C calls are
//!   in progress at once (C = 200 and 1,000; `TAPIR_BENCH_CONCURRENT` to choose others, comma
//!   separated); 10 × C calls per run. Prints calls/s, CPU per call and the memory per
//!   concurrent call (RSS in steady state minus RSS before the first call, over C);
//! - **long run**: `TAPIR_BENCH_BIG` calls (default 100,000) in one run, paced at
//!   `TAPIR_BENCH_BIG_RATE` per second (default 1000, below saturation so the run measures
//!   cost, not overload), and the CPU per call over the first 10,000 calls against the last
//!   10,000: it must stay flat.
//!
//! Run: `cargo bench -p tapir-host --bench scaling`. Needs `sipp`; prints `SKIPPED` without.

mod ctd;

use ctd::{env_num, load, run, Shape, Side};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if tapir_test_support::programs::sipp().is_none() {
        println!("SKIPPED: needs sipp");
        return;
    }
    let hold = env_num("TAPIR_BENCH_HOLD_MS", 2000);
    let levels: Vec<u64> = std::env::var("TAPIR_BENCH_CONCURRENT")
        .unwrap_or_else(|_| "200,1000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let big = env_num("TAPIR_BENCH_BIG", 100_000);
    println!("scaling: load before {}", load());
    println!();
    println!("| concurrent calls | calls | calls/s | CPU us/call | RSS idle MiB | RSS loaded MiB | KiB per concurrent call | failures | retrans | load |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for c in levels {
        let n = c * 10;
        let rate = c as f64 * 1000.0 / hold.max(1) as f64;
        // The RSS is sampled once the first calls have ended (steady state: C in progress).
        let marks = [n / 2];
        let r = run(
            Side::Tapir,
            n,
            Shape {
                connections: 8,
                rate: Some(rate),
            },
            hold,
            &marks,
        );
        let loaded = r.marks.first().map(|m| m.2).unwrap_or(0.0);
        println!(
            "| {c} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
            r.completed,
            r.rate(),
            r.cpu_us_per_call(),
            r.idle_rss_mib,
            loaded,
            (loaded - r.idle_rss_mib) * 1024.0 / c as f64,
            r.failures,
            r.retransmissions,
            load()
        );
    }
    if big == 0 {
        return;
    }
    let window = (big / 10).clamp(1, 10_000);
    let marks = [window, big - window, big];
    let big_rate = env_num("TAPIR_BENCH_BIG_RATE", 1000) as f64;
    let r = run(
        Side::Tapir,
        big,
        Shape {
            connections: 8,
            rate: Some(big_rate),
        },
        0,
        &marks,
    );
    println!();
    println!("| calls in one run | calls/s | CPU us/call overall | CPU us/call first {window} | CPU us/call last {window} | last/first | peak RSS MiB | failures | retrans | load |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let at = |i: usize| r.marks.get(i).map(|m| m.1).unwrap_or(0.0);
    let first = at(0) * 1e6 / window as f64;
    let last = (at(2) - at(1)) * 1e6 / window as f64;
    println!(
        "| {big} | {:.0} | {:.1} | {first:.1} | {last:.1} | {:.2} | {:.1} | {} | {} | {} |",
        r.rate(),
        r.cpu_us_per_call(),
        last / first.max(f64::MIN_POSITIVE),
        r.peak_rss_mib,
        r.failures,
        r.retransmissions,
        load()
    );
}
