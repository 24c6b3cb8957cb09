//! Clustering through the `tapir` binary: a real nats-server with JetStream and three
//! `tapir run` nodes on loopback reading one configuration. One logical host (every node lists
//! every line with the same ids, requests on lines another node runs are forwarded, one event
//! stream with one order), failover after `kill -9` of an owner with active calls (simulated
//! phones and a SIP line against SIPp), NATS restarted, and a node cut off from NATS stopping
//! its drivers before another node starts them.

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::cluster::*;
use tapir_test_support::{nats_server, sipp, Sipp};

/// The lease in these tests; failover must complete within it plus this bound.
const LEASE_S: f64 = 2.0;
const BOUND: Duration = Duration::from_secs(5);

fn simulated(name: &str, first: u32) -> String {
    format!("[drivers.{name}]\ndriver = \"simulated\"\nphones = 2\nfirst_number = {first}\n\n")
}

fn completions(events: &[Value]) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for e in events.iter().filter(|e| e["event"] == "completed") {
        if let Some(r) = e["request"].as_u64() {
            *out.entry(r).or_default() += 1;
        }
    }
    out
}

fn states_of(events: &[Value], call: u64) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "call_state" && e["call"].as_u64() == Some(call))
        .map(|e| e["state"]["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn cause_of(events: &[Value], call: u64) -> String {
    events
        .iter()
        .rev()
        .filter(|e| e["call"].as_u64() == Some(call))
        .find_map(|e| e["info"]["cause"].as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn seq_of(bed: &Bed, node: &str) -> u64 {
    let url = format!("{}/v1/lines", bed.node(node).base);
    let response = bed.http.get(&url).send().await.expect("lines");
    response
        .headers()
        .get("x-tapir-seq")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("X-Tapir-Seq")
}

/// Lines of `instance` as node `base` lists them, all in service.
async fn serving(bed: &Bed, base: &str, instance: &str, count: usize) -> bool {
    let lines = lines(&bed.http, base).await;
    lines
        .values()
        .filter(|(d, _, in_service)| d == instance && *in_service)
        .count()
        == count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_act_as_one_host_and_take_over_a_killed_owners_lines() {
    let Some(nats) = nats_server() else { return };
    let Some(sipp_bin) = sipp() else { return };
    let scenario =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/refer_ringing.xml");
    let phone = Sipp::builder(&sipp_bin, &scenario)
        .calls(10)
        .timeout(Duration::from_secs(300))
        .trace_msg(false)
        .start();
    let phone_port = phone.port();
    let sip = format!(
        "[drivers.pbx]\ndriver = \"sip-refer\"\nbind = \"127.0.0.1:0\"\nlines = [ {{ key = \"alice\", domain = \"127.0.0.1:{phone_port}\", user = \"alice\", phone_user = \"201\", notify_timeout_secs = 10 }} ]\n"
    );
    let drivers = format!(
        "{}{}{sip}",
        simulated("office_a", 100),
        simulated("office_b", 200)
    );
    let mut bed = Bed::start(&nats, &["a", "b", "c"], |url| {
        config_text(
            url,
            LEASE_S,
            &[("office_a", "a"), ("office_b", "b"), ("pbx", "b")],
            &drivers,
        )
    });
    let http = bed.http.clone();

    // One logical host: every node lists the five lines with the same ids, and knows who runs
    // what.
    let everywhere = until(Duration::from_secs(20), || async {
        let mut views = Vec::new();
        for node in &bed.nodes {
            views.push(lines(&http, &node.base).await);
        }
        views[0].len() == 5 && views.iter().all(|v| *v == views[0])
    })
    .await;
    assert!(
        everywhere.is_some(),
        "lines differ between nodes\n{}",
        bed.logs()
    );
    let all = lines(&http, &bed.node("c").base).await;
    let line_of = |instance: &str, key: &str| -> u64 {
        *all.iter()
            .find(|(_, (d, k, _))| d == instance && k == key)
            .map(|(id, _)| id)
            .expect("line")
    };
    let (b_line, sip_line) = (line_of("office_b", "200"), line_of("pbx", "alice"));
    let owners_a = owners(&http, &bed.node("a").base).await;
    assert_eq!(
        owners_a.get("office_b").map(String::as_str),
        Some("b"),
        "{owners_a:?}"
    );
    assert_eq!(
        owners_a.get("pbx").map(String::as_str),
        Some("b"),
        "{owners_a:?}"
    );
    assert_eq!(
        owners_a.get("office_a").map(String::as_str),
        Some(""),
        "{owners_a:?}"
    );

    // Events from two nodes, both from the same cluster-wide position.
    let start = seq_of(&bed, "a").await;
    let via_a = follow(&bed.node("a").base, start);
    let via_c = follow(&bed.node("c").base, start);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A call through node A on a line node B runs, and a SIP call the same way (the phone
    // keeps it ringing).
    let base_a = bed.node("a").base.clone();
    let (status, made) = post(
        &http,
        &format!("{base_a}/v1/lines/{b_line}/calls?wait=10"),
        r#"{"destination": "101"}"#,
    )
    .await
    .expect("node a answers");
    assert_eq!(status, 200, "{made}\n{}", bed.logs());
    let sim_call = made["call"].as_u64().expect("call id");
    let (status, made) = post(
        &http,
        &format!("{base_a}/v1/lines/{sip_line}/calls?wait=10"),
        r#"{"destination": "200"}"#,
    )
    .await
    .expect("node a answers");
    assert_eq!(status, 200, "{made}\n{}", bed.logs());
    let sip_call = made["call"].as_u64().expect("call id");
    let connected = until(Duration::from_secs(20), || async {
        let e = seen(&via_a);
        states_of(&e, sim_call).contains(&"connected".to_owned())
            && states_of(&e, sip_call).contains(&"ringback".to_owned())
    })
    .await;
    assert!(
        connected.is_some(),
        "calls not up: {:?}\n{}",
        seen(&via_a),
        bed.logs()
    );
    // Node C lists the calls node B runs, and its stream carries the same events in the same
    // order and positions as node A's.
    let (_, calls_c) = get(&http, &format!("{}/v1/calls", bed.node("c").base))
        .await
        .expect("node c answers");
    let listed: BTreeSet<u64> = calls_c
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["id"].as_u64()).collect())
        .unwrap_or_default();
    assert!(
        listed.contains(&sim_call) && listed.contains(&sip_call),
        "{calls_c}"
    );

    // Requests in flight while node B dies: every accepted one completes exactly once.
    // Through the other nodes (forwarded to B) and on B itself, the last one right before
    // the kill.
    let mut accepted = Vec::new();
    for i in 0..9 {
        let node = ["a", "b", "c"][i % 3];
        if node == "b" && i > 4 {
            continue;
        }
        let line = line_of("office_b", "201");
        let url = format!("{}/v1/lines/{line}/calls", bed.node(node).base);
        if let Some((202, body)) = post(&http, &url, r#"{"destination": "100"}"#).await {
            accepted.push(body["request"].as_u64().expect("request id"));
        }
        if i == 4 {
            bed.kill("b");
        }
    }
    assert!(accepted.len() >= 3, "{accepted:?}");
    let killed = std::time::Instant::now();
    // The lines come back on another node within the bound, with the same ids.
    let lease = Duration::from_secs_f64(LEASE_S);
    let back = until(lease + BOUND, || async {
        let o = owners(&http, &bed.node("a").base).await;
        let moved = ["office_b", "pbx"]
            .iter()
            .all(|i| o.get(*i).is_some_and(|n| n != "b"));
        moved
            && serving(&bed, &bed.node("a").base, "office_b", 2).await
            && serving(&bed, &bed.node("c").base, "pbx", 1).await
    })
    .await;
    assert!(
        back.is_some(),
        "lines not back within the bound\n{}",
        bed.logs()
    );
    eprintln!("lines back {:?} after the kill", killed.elapsed());
    let after = lines(&http, &bed.node("c").base).await;
    assert_eq!(after, all, "the lines keep their ids");

    // Calls that were up on node B ended Disconnected with the reason, then Idle.
    let ended = until(Duration::from_secs(10), || async {
        let e = seen(&via_a);
        [sim_call, sip_call].iter().all(|c| {
            let s = states_of(&e, *c);
            s.ends_with(&["disconnected".to_owned(), "idle".to_owned()])
        })
    })
    .await;
    let events = seen(&via_a);
    assert!(
        ended.is_some(),
        "calls did not end: {:?} {:?}\n{}",
        states_of(&events, sim_call),
        states_of(&events, sip_call),
        bed.logs()
    );
    for call in [sim_call, sip_call] {
        assert!(
            cause_of(&events, call).contains("node running this line failed"),
            "{}",
            cause_of(&events, call)
        );
    }
    // Every accepted request completed, exactly once (give the failover its time first).
    let done = until(Duration::from_secs(10), || async {
        let c = completions(&seen(&via_a));
        accepted.iter().all(|r| c.contains_key(r))
    })
    .await;
    let counts = completions(&seen(&via_a));
    assert!(
        done.is_some(),
        "requests never completed: {accepted:?} {counts:?}\n{}",
        bed.logs()
    );
    assert!(
        counts.values().all(|n| *n == 1),
        "a request completed twice: {counts:?}"
    );
    // The node that took over read what the failed node left pending.
    assert!(
        !bed.nodes.iter().any(|n| n
            .log_text()
            .contains("Cannot read the requests left pending")),
        "{}",
        bed.logs()
    );
    // Both nodes' streams agree: same positions, same events.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (a_events, c_events) = (seen(&via_a), seen(&via_c));
    let common = a_events.len().min(c_events.len());
    assert!(common > 10);
    assert_eq!(
        a_events[..common],
        c_events[..common],
        "one order for everyone"
    );

    // The SIP line works on its new node: a call through node C.
    let (status, made) = post(
        &http,
        &format!("{}/v1/lines/{sip_line}/calls?wait=10", bed.node("c").base),
        r#"{"destination": "200"}"#,
    )
    .await
    .unwrap_or_else(|| panic!("node c did not answer\n{}", bed.logs()));
    assert_eq!(status, 200, "{made}\n{}", bed.logs());

    // Node B comes back and takes nothing back.
    bed.restart("b");
    tokio::time::sleep(lease * 2).await;
    let o = owners(&http, &bed.node("b").base).await;
    assert!(
        o.get("office_b").is_some_and(|n| !n.is_empty())
            && o.get("pbx").is_some_and(|n| !n.is_empty()),
        "the restarted node took instances back: {o:?}"
    );
    assert_eq!(lines(&http, &bed.node("b").base).await, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarts_and_a_node_cut_off_from_nats_stops_its_drivers_first() {
    let Some(nats) = nats_server() else { return };
    let drivers = format!(
        "{}{}{}",
        simulated("office_a", 100),
        simulated("office_b", 200),
        simulated("office_c", 300)
    );
    let mut bed = Bed::start(&nats, &["a", "b"], |url| {
        config_text(
            url,
            LEASE_S,
            &[("office_a", "a"), ("office_b", "b"), ("office_c", "c")],
            &drivers,
        )
    });
    let relay = Relay::start(
        format!("127.0.0.1:{}", bed.nats.port())
            .parse()
            .expect("address"),
    );
    bed.add("c", &format!("nats://{}", relay.addr()));
    let http = bed.http.clone();
    let six = until(Duration::from_secs(20), || async {
        let mut ok = true;
        for node in &bed.nodes {
            ok &= lines(&http, &node.base).await.len() == 6;
        }
        ok
    })
    .await;
    assert!(six.is_some(), "{}", bed.logs());
    let ids = lines(&http, &bed.node("a").base).await;

    // NATS stops for a moment and comes back on its store: the nodes reconnect, every line is
    // still listed everywhere with the same ids, and calls through every node work.
    bed.nats.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    bed.nats.restart();
    let healed = until(Duration::from_secs(30), || async {
        let mut ok = true;
        for node in &bed.nodes {
            let l = lines(&http, &node.base).await;
            ok &= l == ids && l.values().all(|(_, _, s)| *s);
        }
        ok
    })
    .await;
    assert!(
        healed.is_some(),
        "not healed after the NATS restart\n{}",
        bed.logs()
    );
    for (node, line) in [("a", 2u64), ("b", 4), ("c", 0)] {
        let line = ids.keys().nth(line as usize).copied().expect("line");
        let placed = until(Duration::from_secs(20), || async {
            matches!(
                post(
                    &http,
                    &format!("{}/v1/lines/{line}/calls?wait=5", bed.node(node).base),
                    r#"{"destination": "555"}"#,
                )
                .await,
                Some((200, _))
            )
        })
        .await;
        assert!(
            placed.is_some(),
            "no call through {node} after the NATS restart\n{}",
            bed.logs()
        );
    }

    // Node C is cut off from NATS (its connection only): it stops office_c's drivers within
    // the lease, and only then does another node start them.
    let owner_c = owners(&http, &bed.node("a").base).await;
    assert_eq!(
        owner_c.get("office_c").map(String::as_str),
        Some("c"),
        "{owner_c:?}"
    );
    relay.cut();
    let lease = Duration::from_secs_f64(LEASE_S);
    let stopped = until(lease + BOUND, || async {
        !lines(&http, &bed.node("c").base)
            .await
            .values()
            .any(|(d, _, _)| d == "office_c")
    })
    .await;
    assert!(stopped.is_some(), "node c kept office_c\n{}", bed.logs());
    let moved = until(lease + BOUND, || async {
        owners(&http, &bed.node("a").base)
            .await
            .get("office_c")
            .is_some_and(|n| n != "c")
            && serving(&bed, &bed.node("a").base, "office_c", 2).await
    })
    .await;
    assert!(moved.is_some(), "office_c not taken over\n{}", bed.logs());
    let stop_at = first_time(&bed.node("c").log_text(), "Lost the lease", "office_c");
    let start_at = ["a", "b"]
        .iter()
        .filter_map(|n| first_time(&bed.node(n).log_text(), "Took over", "office_c"))
        .min();
    let (Some(stop_at), Some(start_at)) = (stop_at, start_at) else {
        panic!("no fence or takeover logged\n{}", bed.logs());
    };
    assert!(
        stop_at < start_at,
        "c stopped at {stop_at}, another node started at {start_at}"
    );
    // Mended, node C mirrors the instance again and lists every line.
    relay.mend();
    let rejoined = until(Duration::from_secs(20), || async {
        lines(&http, &bed.node("c").base).await == ids
    })
    .await;
    assert!(rejoined.is_some(), "node c did not rejoin\n{}", bed.logs());
}

/// The timestamp (RFC 3339, as logged) of the first line holding `what` and `instance`.
fn first_time(log: &str, what: &str, instance: &str) -> Option<String> {
    log.lines()
        .find(|l| l.contains(what) && l.contains(instance))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rebalance_an_instance_goes_back_to_its_home_node() {
    let Some(nats) = nats_server() else { return };
    // `rebalance` is a key of [cluster], the section `config_text` ends with.
    let drivers = format!(
        "rebalance = true\n\n{}{}",
        simulated("office_a", 100),
        simulated("office_b", 200)
    );
    let mut bed = Bed::start(&nats, &["a", "b"], |url| {
        config_text(
            url,
            LEASE_S,
            &[("office_a", "a"), ("office_b", "b")],
            &drivers,
        )
    });
    let http = bed.http.clone();
    let base_a = bed.node("a").base.clone();
    let runs = |want: &'static str| {
        let (http, base_a) = (http.clone(), base_a.clone());
        move || {
            let (http, base_a) = (http.clone(), base_a.clone());
            async move {
                owners(&http, &base_a)
                    .await
                    .get("office_b")
                    .map(String::as_str)
                    == Some(want)
            }
        }
    };
    assert!(
        until(Duration::from_secs(20), runs("b")).await.is_some(),
        "{}",
        bed.logs()
    );
    let ids = lines(&http, &base_a).await;
    bed.kill("b");
    let lease = Duration::from_secs_f64(LEASE_S);
    assert!(
        until(lease + BOUND, runs("")).await.is_some(),
        "a did not take office_b\n{}",
        bed.logs()
    );
    bed.restart("b");
    assert!(
        until(lease * 2 + BOUND, runs("b")).await.is_some(),
        "office_b did not go back to b\n{}",
        bed.logs()
    );
    let back = until(BOUND, || async { lines(&http, &base_a).await == ids }).await;
    assert!(back.is_some(), "the lines keep their ids\n{}", bed.logs());
}
