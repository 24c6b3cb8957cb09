//! The cluster's costs, measured with a real nats-server and `tapir run` nodes on loopback:
//! failover time (`kill -9` of the node running an instance until another node serves its
//! lines) over 20 kills, events per second through a three-node cluster against one host of
//! its own under the same load, and the CPU time each event costs in both (all `tapir`
//! processes plus nats-server). Run with `cargo bench -p tapir-host --bench cluster`; prints a
//! table. `TAPIR_BENCH_KILLS` and `TAPIR_BENCH_SECONDS` shorten it. Needs `nats-server`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::cluster::*;
use tapir_test_support::nats_server;

const LEASE_S: f64 = 2.0;
const PHONES: u32 = 20;
const WORKERS: usize = 24;

fn main() {
    let Some(nats) = nats_server() else {
        println!("SKIPPED: no nats-server installed.");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(measure(&nats));
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn office(name: &str, first: u32) -> String {
    format!(
        "[drivers.{name}]\ndriver = \"simulated\"\nphones = {PHONES}\nfirst_number = {first}\ndial_ms = 20\nring_ms = 20\n\n"
    )
}

async fn measure(nats: &std::path::Path) {
    let kills = env_or("TAPIR_BENCH_KILLS", 20) as usize;
    let seconds = env_or("TAPIR_BENCH_SECONDS", 15);
    let failover = failover(nats, kills).await;
    let single = throughput(nats, false, seconds).await;
    let cluster = throughput(nats, true, seconds).await;
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    let pct = |p: f64| -> f64 {
        let mut v = failover.clone();
        v.sort_by(f64::total_cmp);
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).copied().unwrap_or(f64::NAN)
    };
    println!(
        "| failover, kill -9 to lines served by another node ({} kills, lease {LEASE_S} s): p50 / p99 / max | {:.0} ms / {:.0} ms / {:.0} ms |",
        failover.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    for (what, run) in [
        ("one host, no cluster", &single),
        ("cluster of 3 nodes", &cluster),
    ] {
        println!(
            "| events per second, {what} ({WORKERS} clients, {} s) | {:.0} |",
            seconds,
            run.events as f64 / run.seconds
        );
        println!(
            "| CPU per event, {what} (all tapir processes{}) | {:.0} µs |",
            if run.nats { " + nats-server" } else { "" },
            run.cpu_s * 1e6 / run.events.max(1) as f64
        );
    }
    println!(
        "| cost of the cluster path per event (CPU, cluster minus one host) | {:.0} µs |",
        (cluster.cpu_s / cluster.events.max(1) as f64 - single.cpu_s / single.events.max(1) as f64)
            * 1e6
    );
}

/// Kills the node running `office` `kills` times; the time until the other node serves it.
async fn failover(nats: &std::path::Path, kills: usize) -> Vec<f64> {
    let drivers = office("office", 100);
    let mut bed = Bed::start(nats, &["a", "b"], |url| {
        config_text(url, LEASE_S, &[], &drivers)
    });
    let http = bed.http.clone();
    let mut times = Vec::new();
    for round in 0..kills {
        let ready = until(Duration::from_secs(30), || async {
            let mut ok = true;
            for n in &bed.nodes {
                ok &=
                    lines(&http, &n.base).await.values().filter(|l| l.2).count() == PHONES as usize;
            }
            ok
        })
        .await;
        assert!(ready.is_some(), "round {round}: not ready\n{}", bed.logs());
        let view = owners(&http, &bed.node("a").base).await;
        let owner = match view.get("office").map(String::as_str) {
            Some("") => "a",
            Some(other) => {
                if other == "a" {
                    "a"
                } else {
                    "b"
                }
            }
            None => panic!("nobody runs office: {view:?}"),
        };
        let other = if owner == "a" { "b" } else { "a" };
        let base = bed.node(other).base.clone();
        let start = Instant::now();
        bed.kill(owner);
        let took = until(Duration::from_secs(30), || async {
            owners(&http, &base)
                .await
                .get("office")
                .is_some_and(|n| n.is_empty())
                && lines(&http, &base)
                    .await
                    .values()
                    .filter(|l| l.0 == "office" && l.2)
                    .count()
                    == PHONES as usize
        })
        .await;
        let _ = start;
        let Some(took) = took else {
            panic!("round {round}: no failover\n{}", bed.logs());
        };
        times.push(took.as_secs_f64() * 1000.0);
        eprintln!("failover {round}: {:.0} ms", took.as_secs_f64() * 1000.0);
        bed.restart(owner);
    }
    times
}

struct Run {
    events: u64,
    seconds: f64,
    cpu_s: f64,
    nats: bool,
}

/// CPU seconds (user + system) a process used so far.
fn cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    (ticks(11) + ticks(12)) / 100.0
}

/// Calls made and dropped by `WORKERS` clients for `seconds` on 60 simulated lines, through
/// three cluster nodes (requests to any node) or one host; events counted on one stream.
async fn throughput(nats: &std::path::Path, clustered: bool, seconds: u64) -> Run {
    let drivers = format!(
        "{}{}{}",
        office("office_a", 100),
        office("office_b", 200),
        office("office_c", 300)
    );
    let mut bed = Bed::start(nats, &[], |url| {
        config_text(
            url,
            LEASE_S,
            &[("office_a", "a"), ("office_b", "b"), ("office_c", "c")],
            &drivers,
        )
    });
    if clustered {
        for n in ["a", "b", "c"] {
            let url = bed.nats.url();
            bed.add(n, &url);
        }
    } else {
        // The same file without its [cluster] section: a host of its own.
        let text = std::fs::read_to_string(&bed.config).expect("config");
        let plain = text
            .split("[cluster]")
            .next()
            .map(str::to_owned)
            .unwrap_or_default()
            + &drivers;
        std::fs::write(&bed.config, plain).expect("config");
        bed.add("solo", "");
    }
    let http = bed.http.clone();
    let total = 3 * PHONES as usize;
    let ready = until(Duration::from_secs(60), || async {
        let mut ok = true;
        for n in &bed.nodes {
            ok &= lines(&http, &n.base).await.values().filter(|l| l.2).count() == total;
        }
        ok
    })
    .await;
    assert!(ready.is_some(), "not ready\n{}", bed.logs());
    let ids: Vec<u64> = lines(&http, &bed.nodes[0].base)
        .await
        .keys()
        .copied()
        .collect();
    let bases: Vec<String> = bed.nodes.iter().map(|n| n.base.clone()).collect();
    let pids: Vec<u32> = bed
        .nodes
        .iter()
        .filter_map(Node::pid)
        .chain(if clustered { bed.nats.pid() } else { None })
        .collect();
    let counted = Arc::new(AtomicU64::new(0));
    let start_seq = {
        let response = http
            .get(format!("{}/v1/lines", bases[0]))
            .send()
            .await
            .expect("lines");
        response
            .headers()
            .get("x-tapir-seq")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stream = follow(&bases[0], start_seq);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu_before: f64 = pids.iter().map(|p| cpu(*p)).sum();
    let began = Instant::now();
    let deadline = began + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (http, bases, line) = (http.clone(), bases.clone(), ids[w * total / WORKERS]);
        let counted = Arc::clone(&counted);
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while Instant::now() < deadline {
                i += 1;
                let base = &bases[i % bases.len()];
                let made = post(
                    &http,
                    &format!("{base}/v1/lines/{line}/calls?wait=5"),
                    r#"{"destination": "999"}"#,
                )
                .await;
                if let Some((200, body)) = made {
                    if let Some(call) = body["call"].as_u64() {
                        tokio::time::sleep(Duration::from_millis(60)).await;
                        let base = &bases[(i + 1) % bases.len()];
                        let _ =
                            post(&http, &format!("{base}/v1/calls/{call}/drop?wait=5"), "").await;
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = began.elapsed().as_secs_f64();
    // The stream catches up on what was published by the end.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_after: f64 = pids.iter().map(|p| cpu(*p)).sum();
    let events = seen(&stream).len() as u64;
    eprintln!(
        "{}: {} calls, {events} events in {elapsed:.1} s",
        if clustered { "cluster" } else { "one host" },
        counted.load(Ordering::Relaxed)
    );
    Run {
        events,
        seconds: elapsed,
        cpu_s: cpu_after - cpu_before,
        nats: clustered,
    }
}
