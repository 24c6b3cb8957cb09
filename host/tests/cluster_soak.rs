//! The cluster as the issue judges it: three nodes and a real nats-server; an application
//! connected to node A keeps placing and dropping calls on every line while the other nodes
//! are killed (`kill -9`) and restarted at random moments, round after round (with
//! `rebalance`, so each restarted node gets its instance back and the next kill moves lines
//! again, and the give-back is exercised too). Every line must
//! be back in service within the bound after each kill, and every request the application
//! got accepted must complete exactly once on its event stream. `TAPIR_SOAK_ROUNDS` (default
//! 6) and `TAPIR_SOAK_SEED` make the run longer or repeat one.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::cluster::*;
use tapir_test_support::nats_server;

const LEASE_S: f64 = 2.0;
const BOUND: Duration = Duration::from_secs(5);
const PHONES: usize = 4;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_keeps_working_while_owners_are_killed_and_restarted() {
    let Some(nats) = nats_server() else { return };
    let rounds = env("TAPIR_SOAK_ROUNDS", 6);
    let seed = env("TAPIR_SOAK_SEED", fastrand::u64(..));
    println!("soak: {rounds} rounds, seed {seed} (TAPIR_SOAK_SEED={seed} repeats it)");
    let mut rng = fastrand::Rng::with_seed(seed);
    // `rebalance` is a key of [cluster], the section `config_text` ends with.
    let drivers: String = std::iter::once("rebalance = true\n\n".to_owned())
        .chain(["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "[drivers.office_{n}]\ndriver = \"simulated\"\nphones = {PHONES}\nfirst_number = {}\ndial_ms = 50\nring_ms = 200\n\n",
                100 * (i + 1)
            )
        }))
        .collect();
    let mut bed = Bed::start(&nats, &["a", "b", "c"], |url| {
        config_text(
            url,
            LEASE_S,
            &[("office_a", "a"), ("office_b", "b"), ("office_c", "c")],
            &drivers,
        )
    });
    let http = bed.http.clone();
    let app = bed.node("a").base.clone();
    let total = 3 * PHONES;
    let all_up = |http: reqwest::Client, base: String| async move {
        let l = lines(&http, &base).await;
        l.len() == total && l.values().all(|(_, _, s)| *s)
    };
    assert!(
        until(Duration::from_secs(30), || all_up(
            http.clone(),
            app.clone()
        ))
        .await
        .is_some(),
        "{}",
        bed.logs()
    );
    let ids: Vec<u64> = lines(&http, &app).await.keys().copied().collect();
    let start = {
        let r = http
            .get(format!("{app}/v1/lines"))
            .send()
            .await
            .expect("lines");
        r.headers()
            .get("x-tapir-seq")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .expect("X-Tapir-Seq")
    };
    let stream = follow(&app, start);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let lease = Duration::from_secs_f64(LEASE_S);
    let mut accepted: Vec<u64> = Vec::new();
    let mut refused = 0usize;
    let mut calls: Vec<u64> = Vec::new();
    let mut worst = Duration::ZERO;
    for round in 0..rounds {
        let victim = if rng.bool() { "b" } else { "c" };
        let kill_after = rng.usize(5..25);
        let mut killed_at = None;
        for step in 0..40 {
            if step == kill_after {
                bed.kill(victim);
                killed_at = Some(Instant::now());
            }
            let (url, body) = if calls.is_empty() || rng.u8(..10) < 6 {
                let line = ids[rng.usize(..ids.len())];
                (
                    format!("{app}/v1/lines/{line}/calls"),
                    format!(r#"{{"destination": "{}"}}"#, rng.u32(100..999)),
                )
            } else {
                let call = calls.swap_remove(rng.usize(..calls.len()));
                (format!("{app}/v1/calls/{call}/drop"), String::new())
            };
            let wait = if rng.bool() { "?wait=2" } else { "" };
            match post(&http, &format!("{url}{wait}"), &body).await {
                Some((200 | 202, reply)) => {
                    accepted.push(reply["request"].as_u64().expect("request id"));
                    if let Some(call) = reply["call"].as_u64() {
                        calls.push(call);
                    }
                }
                // A completion that failed under ?wait: accepted all the same.
                Some((_, reply)) if reply["error"]["request"].is_u64() => {
                    accepted.push(reply["error"]["request"].as_u64().unwrap_or_default());
                }
                Some(_) => refused += 1,
                None => panic!("node a did not answer (round {round})\n{}", bed.logs()),
            }
            tokio::time::sleep(Duration::from_millis(rng.u64(20..80))).await;
        }
        let killed_at = killed_at.expect("killed in the round");
        // Back: another node runs the victim's instance and every line is in service (until
        // the lease expires the mirrors still show the dead node's lines).
        let home = format!("office_{victim}");
        let back = until(lease + BOUND, || async {
            owners(&http, &app)
                .await
                .get(&home)
                .is_some_and(|n| n != victim)
                && all_up(http.clone(), app.clone()).await
        })
        .await;
        let took = killed_at.elapsed();
        assert!(
            back.is_some(),
            "round {round}: lines not back {took:?} after killing {victim}\n{}",
            bed.logs()
        );
        worst = worst.max(took);
        assert_eq!(
            lines(&http, &app).await.keys().copied().collect::<Vec<_>>(),
            ids,
            "ids changed"
        );
        bed.restart(victim);
        let rebalanced = until(lease * 2 + BOUND, || async {
            owners(&http, &app).await.get(&home).map(String::as_str) == Some(victim)
                && all_up(http.clone(), app.clone()).await
        })
        .await;
        assert!(
            rebalanced.is_some(),
            "round {round}: {home} not back on {victim}\n{}",
            bed.logs()
        );
        println!("round {round}: killed {victim}, lines back within {took:?}, home again");
    }

    // Every accepted request completes, once.
    let complete = until(Duration::from_secs(20), || async {
        let seen = seen(&stream);
        let done: std::collections::HashSet<u64> = seen
            .iter()
            .filter(|e| e["event"] == "completed")
            .filter_map(|e| e["request"].as_u64())
            .collect();
        accepted.iter().all(|r| done.contains(r))
    })
    .await;
    let seen = seen(&stream);
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for e in seen.iter().filter(|e| e["event"] == "completed") {
        if let Some(r) = e["request"].as_u64() {
            *counts.entry(r).or_default() += 1;
        }
    }
    let missing: Vec<u64> = accepted
        .iter()
        .copied()
        .filter(|r| !counts.contains_key(r))
        .collect();
    assert!(
        complete.is_some(),
        "{} of {} accepted requests never completed: {missing:?}\n{}",
        missing.len(),
        accepted.len(),
        bed.logs()
    );
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "completed more than once: {twice:?}");
    assert!(
        !seen.iter().any(|e| e["event"] == "gap"),
        "the stream lost events"
    );
    let positions: Vec<u64> = seen.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "positions go up");
    println!(
        "soak: {} requests accepted (each completed once), {refused} refused, worst failover {worst:?}",
        accepted.len()
    );
}
