//! No event lost inside the host under load: 1,000 clients at once place a call and drop it,
//! each with `?wait=`, against a `tapir run` daemon with the virtual phone (which completes
//! within milliseconds). Every request must come back completed, the completions metric must
//! count every completion, every ended call must be forgotten after the linger, and event
//! stream clients that fall behind get a `gap`, never a silent hole.
//!
//! The front end's broadcast is made small (`[tsp] history`) so that falling behind is certain:
//! waiters and the host's bookkeeping must not depend on it.

mod support;

use futures_util::StreamExt;
use serde_json::Value;
use std::time::{Duration, Instant};
use support::web::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 1_000;
const LINES: usize = 250;

fn driver() -> String {
    let lines: Vec<String> = (0..LINES)
        .map(|i| format!("{{ key = \"{}\" }}", 1000 + i))
        .collect();
    format!(
        "dial_ms = 20\nring_ms = 20\nlines = [ {} ]\n",
        lines.join(", ")
    )
}

/// The value of one Prometheus sample, 0 when it is not there yet.
fn sample(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Checks that a stream's positions follow one another without a hole until its end or its
/// `gap` notice; returns how many events it carried and whether it ended with a gap.
fn check_contiguous(items: &[Value], what: &str) -> (usize, bool) {
    let mut last: Option<u64> = None;
    for (i, item) in items.iter().enumerate() {
        if item["event"] == "gap" {
            assert_eq!(i + 1, items.len(), "{what}: events after the gap notice");
            if let Some(last) = last {
                assert_eq!(item["after"].as_u64(), Some(last), "{what}: gap position");
            }
            return (i, true);
        }
        let seq = item["seq"].as_u64().expect("every event has a seq");
        if let Some(prev) = last {
            assert_eq!(
                seq,
                prev + 1,
                "{what}: events {prev}..{seq} silently missing"
            );
        }
        last = Some(seq);
    }
    (items.len(), false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_waiters_all_get_their_completion() {
    let host = start(
        &driver(),
        "",
        "[tsp]\nhistory = 64\n\n[api]\nidle_call_linger_s = 2\nwait_max_s = 60\n",
        false,
    )
    .wait_ready();
    let base = host.base.clone();
    tapir_host::http::install_crypto_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .expect("client");
    poll(
        &http,
        &format!("{base}/v1/lines"),
        Some(READ),
        Duration::from_secs(30),
        |b| b.as_array().is_some_and(|a| a.len() == LINES),
    )
    .await;

    // Two stream clients that do not read while the load runs.
    let mut request = format!("ws://{}/v1/events/ws", host.addr)
        .into_client_request()
        .expect("ws request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {READ}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("ws connects");
    let mut sse = http
        .get(format!("{base}/v1/events"))
        .bearer_auth(READ)
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), 200);

    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let http = http.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let line = i % LINES;
            let made = call(
                &http,
                "POST",
                &format!("{base}/v1/lines/{line}/calls?wait=20"),
                Some(CONTROL),
                Some(("application/json", r#"{"destination": "200"}"#)),
            )
            .await;
            let call_id = made.body["call"].clone();
            let dropped = if made.status == 200 {
                Some(
                    call(
                        &http,
                        "POST",
                        &format!("{base}/v1/calls/{call_id}/drop?wait=20"),
                        Some(CONTROL),
                        None,
                    )
                    .await,
                )
            } else {
                None
            };
            (i, made, dropped)
        }));
    }
    let mut failures = Vec::new();
    for task in tasks {
        let (i, made, dropped) = match task.await {
            Ok(done) => done,
            Err(error) => {
                failures.push(format!("a client failed: {error}"));
                continue;
            }
        };
        if made.status != 200 || made.body["completed"] != true {
            failures.push(format!(
                "client {i} make call: {} {}",
                made.status, made.text
            ));
            continue;
        }
        match dropped {
            Some(d) if d.status == 200 && d.body["completed"] == true => {}
            Some(d) => failures.push(format!("client {i} drop: {} {}", d.status, d.text)),
            None => failures.push(format!("client {i}: no drop")),
        }
    }
    let took = started.elapsed();
    if !failures.is_empty() {
        let metrics = call(&http, "GET", &format!("{base}/metrics"), Some(READ), None).await;
        let http_lines: Vec<&str> = metrics
            .text
            .lines()
            .filter(|l| l.starts_with("tapir_http"))
            .collect();
        println!("{}", http_lines.join("\n"));
    }
    assert!(
        failures.is_empty(),
        "{} of {CLIENTS} clients did not get their completion (in {took:?}); first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    // Every completion is counted, exactly once.
    let expected = (2 * CLIENTS) as f64;
    let deadline = Instant::now() + Duration::from_secs(20);
    let counted = loop {
        let metrics = call(&http, "GET", &format!("{base}/metrics"), Some(READ), None).await;
        let ok = sample(
            &metrics.text,
            "tapir_request_completions_total{result=\"ok\"}",
        );
        if ok >= expected || Instant::now() > deadline {
            break ok;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(counted, expected, "completions counted");

    // Every ended call is forgotten after the linger (2 s).
    poll(
        &http,
        &format!("{base}/v1/calls"),
        Some(READ),
        Duration::from_secs(30),
        |b| b.as_array().is_some_and(Vec::is_empty),
    )
    .await;

    // The slow stream clients: what they got has no hole; falling behind ends in a gap.
    let mut ws_items = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                ws_items.push(serde_json::from_str::<Value>(t.as_str()).expect("JSON"))
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Err(_) => break,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("ws: {e}"),
        }
    }
    let (ws_events, ws_gap) = check_contiguous(&ws_items, "WebSocket");
    let mut sse_items = Vec::new();
    let mut buffer = String::new();
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(3), sse.chunk()).await
    {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            for line in block.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    sse_items.push(serde_json::from_str::<Value>(data.trim()).expect("JSON"));
                }
            }
        }
    }
    let (sse_events, sse_gap) = check_contiguous(&sse_items, "SSE");
    println!(
        "{CLIENTS} clients x (make call + drop) with ?wait in {took:?}; \
         WebSocket: {ws_events} events, gap {ws_gap}; SSE: {sse_events} events, gap {sse_gap}"
    );
    // At least 5 events per call were published (dialing, ringback, idle, two completions); a
    // reader that got fewer and saw no gap would have lost some silently.
    for (what, events, gap) in [
        ("WebSocket", ws_events, ws_gap),
        ("SSE", sse_events, sse_gap),
    ] {
        assert!(
            gap || events >= 5 * CLIENTS,
            "{what}: {events} events and no gap"
        );
    }
    let stderr = host.stop();
    assert!(stderr.starts_with("exit Some(0)"), "{stderr}");
}
