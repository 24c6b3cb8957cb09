//! The failed-call rule through the `tapir` binary: `tapir run` and its REST API, the way a
//! CRM or dialer uses them. Calls placed in a row on ONE line (`max_calls = 1`), failures mixed
//! in, the application never deallocating (the REST API has no deallocation): every call is
//! placed (no `409 resource_unavailable`), its MakeCall completes Ok, it ends in the right
//! state with the protocol's words as its cause, and the API's background task drops and
//! forgets what is left Disconnected, so nothing accumulates.

mod support;

use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::web::{call, client, poll};
use support::*;

/// A running daemon on `config_text` (its `[http] listen` on `port`).
fn daemon(dir: &std::path::Path, port: u16, config_text: &str) -> Daemon {
    let config = write_config(dir, config_text);
    let d = Daemon::spawn(tapir().arg("run").arg("--config").arg(&config));
    let addr = format!("127.0.0.1:{port}");
    assert!(
        http_get(&addr, "/healthz", Duration::from_secs(30)).is_some(),
        "the daemon did not come up"
    );
    d
}

/// Collects every event of `/v1/events` (SSE) in the background, from now on.
fn follow_events(base: &str) -> Arc<Mutex<Vec<Value>>> {
    support::web::collect_events(format!("{base}/v1/events"))
}

fn events_of(seen: &Mutex<Vec<Value>>, call: &Value) -> Vec<Value> {
    seen.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|e| &e["call"] == call)
        .cloned()
        .collect()
}

fn states(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "call_state")
        .map(|e| match e["state"]["mode"].as_str() {
            Some(mode) => format!("{}:{mode}", e["state"]["state"].as_str().unwrap_or("")),
            None => e["state"]["state"].as_str().unwrap_or("").to_owned(),
        })
        .collect()
}

fn cause(events: &[Value]) -> String {
    events
        .iter()
        .rev()
        .find_map(|e| e["info"]["cause"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Places a call on line 0 through the API and returns its id; it must be accepted and its
/// MakeCall completed Ok (the call was placed).
async fn place(http: &reqwest::Client, base: &str, number: &str, what: &str) -> Value {
    let made = call(
        http,
        "POST",
        &format!("{base}/v1/lines/0/calls?wait=10"),
        None,
        Some((
            "application/json",
            &format!(r#"{{"destination": "{number}"}}"#),
        )),
    )
    .await;
    assert_eq!(
        made.status, 200,
        "{what}: the call must be placed and its MakeCall completed Ok: {}",
        made.text
    );
    assert_eq!(made.body["result"]["ok"]["kind"], "done", "{}", made.text);
    made.body["call"].clone()
}

/// Waits until `call`'s states end with `last`; returns its events.
async fn wait_end(
    seen: &Mutex<Vec<Value>>,
    call: &Value,
    last: &str,
    within: Duration,
    what: &str,
) -> Vec<Value> {
    let end = Instant::now() + within;
    loop {
        let events = events_of(seen, call);
        if states(&events).iter().any(|s| s == last) {
            return events;
        }
        assert!(
            Instant::now() < end,
            "{what}: no {last} within {within:?}; states {:?}",
            states(&events)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What the refer_phone scenario does with a dialled number: the end state and the words of
/// the cause.
fn outcome(number: &str) -> (&'static str, &'static str) {
    match number {
        "486" => ("disconnected:busy", "486 Busy Here"),
        "603" => ("disconnected:reject", "603 Decline"),
        "404" => ("disconnected:bad_address", "404 Not Found"),
        "480" => ("disconnected:no_answer", "480 Temporarily Unavailable"),
        _ => ("idle", ""),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_calls_in_a_row_on_one_sip_refer_line_with_mixed_outcomes() {
    let Some(bin) = sipp() else { return };
    // 48 calls, then the phone is unreachable for 2 (UDP: each waits for Timer B, 32 s, until
    // ICMP port-unreachable fails the transaction at once), then 50 more with the phone back
    // on the same port.
    const MIX: [&str; 8] = ["200", "486", "603", "200", "480", "404", "486", "603"];
    let (before, down, after) = (48usize, 2usize, 50usize);
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/conformance/scenarios/refer_phone.xml");
    let mut phone = Some(
        Sipp::builder(&bin, &scenario)
            .calls(before as u32)
            .timeout(Duration::from_secs(600))
            .trace_msg(false)
            .start(),
    );
    let phone_port = phone.as_ref().map(Sipp::port).unwrap_or_default();
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let _daemon = daemon(
        dir.path(),
        port,
        &format!(
            "[log]\nlevel = \"warn\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n[phones]\nlisten = \"127.0.0.1:0\"\n\n[api]\nidle_call_linger_s = 1\n\n[drivers.pbx]\ndriver = \"sip-refer\"\nbind = \"127.0.0.1:0\"\nlines = [ {{ key = \"alice\", domain = \"127.0.0.1:{phone_port}\", user = \"alice\", phone_user = \"201\", notify_timeout_secs = 10 }} ]\n"
        ),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    let seen = follow_events(&base);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for i in 0..before + down + after {
        if i == before {
            // The phone has taken its calls and goes away.
            if let Some(mut p) = phone.take() {
                p.assert_passed(Duration::from_secs(30));
            }
        }
        if i == before + down {
            phone = Some(
                Sipp::builder(&bin, &scenario)
                    .calls(after as u32)
                    .port(phone_port)
                    .timeout(Duration::from_secs(600))
                    .trace_msg(false)
                    .start(),
            );
        }
        let unreachable = (before..before + down).contains(&i);
        let number = MIX[i % MIX.len()];
        let (last, words) = if unreachable {
            ("disconnected:unreachable", "cannot be reached")
        } else {
            outcome(number)
        };
        let what = format!("call #{} to {number} ({last})", i + 1);
        let id = place(&http, &base, number, &what).await;
        let within = Duration::from_secs(if unreachable { 60 } else { 20 });
        let events = wait_end(&seen, &id, last, within, &what).await;
        let st = states(&events);
        assert_eq!(
            st.first().map(String::as_str),
            Some("dialing"),
            "{what}: {st:?}"
        );
        if last == "idle" {
            assert!(st.iter().any(|s| s == "connected"), "{what}: {st:?}");
        } else {
            assert!(!st.iter().any(|s| s == "connected"), "{what}: {st:?}");
            let said = cause(&events);
            assert!(said.contains(words), "{what}: cause {said:?}");
        }
        *counts
            .entry(if unreachable { "unreachable" } else { last })
            .or_default() += 1;
    }
    if let Some(mut p) = phone.take() {
        p.assert_passed(Duration::from_secs(30));
    }
    println!("100 calls on one sip-refer line: {counts:?}");
    // Nobody dropped the failed calls: the API's task did, and forgot them all.
    poll(
        &http,
        &format!("{base}/v1/calls"),
        None,
        Duration::from_secs(15),
        |b| b.as_array().is_some_and(Vec::is_empty),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_left_disconnected_are_dropped_and_forgotten_by_the_api() {
    // The virtual phone's line has 4 places; 12 busy calls in a row that nobody drops would
    // have filled it at the fifth.
    let plugins = plugin_dir();
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let _daemon = daemon(
        dir.path(),
        port,
        &format!(
            "plugin_dir = {:?}\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n[phones]\nlisten = \"127.0.0.1:0\"\n\n[api]\nidle_call_linger_s = 1\n\n[drivers.office]\ndriver = \"virtual-phone\"\ndial_ms = 20\nbusy_numbers = [\"486\"]\n",
            plugins.path()
        ),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    let seen = follow_events(&base);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let what = format!("busy call #{}", i + 1);
        let id = place(&http, &base, "486", &what).await;
        let events = wait_end(
            &seen,
            &id,
            "disconnected:busy",
            Duration::from_secs(10),
            &what,
        )
        .await;
        assert!(cause(&events).contains("busy"), "{what}: {events:?}");
        ids.push(id);
    }
    poll(
        &http,
        &format!("{base}/v1/calls"),
        None,
        Duration::from_secs(15),
        |b| b.as_array().is_some_and(Vec::is_empty),
    )
    .await;
    // Each was dropped by the API's task (Idle, completed Ok) before it was forgotten.
    for id in &ids {
        let st = states(&events_of(&seen, id));
        assert_eq!(st.last().map(String::as_str), Some("idle"), "{st:?}");
    }
}
