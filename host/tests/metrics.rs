//! `/metrics` after traffic, scraped from a running `tapir run`: every family the host
//! documents is there with the samples the traffic caused (request latency per operation and
//! driver, phone callback latency, SIP retransmissions and transaction timeouts of a REGISTER
//! nobody answers, registrations by state). Also checks that the README's metric table and
//! the Grafana dashboard name only families the host exports.

mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};
use support::web::{call, client, CONTROL, READ};
use support::*;
use tapir_host::api::metrics::FAMILIES;

/// The value of the first sample whose line starts with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn scrape(http: &reqwest::Client, base: &str) -> String {
    let a = call(http, "GET", &format!("{base}/metrics"), Some(READ), None).await;
    assert_eq!(a.status, 200);
    a.text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_traffic_have_every_family() {
    // A registrar that never answers: REGISTER is retransmitted, then times out (Timer F).
    let silent = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let registrar = silent.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("dir");
    let (port, phones_port) = (free_port(), free_port());
    let config = write_config(
        dir.path(),
        &format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\nworkers = 3\n\n[phones]\nlisten = \"127.0.0.1:{phones_port}\"\n\n\
             [[api.tokens]]\nname = \"crm\"\ntoken = \"{CONTROL}\"\naccess = \"control\"\n\n\
             [[api.tokens]]\nname = \"wallboard\"\ntoken = \"{READ}\"\naccess = \"read\"\n\n\
             [drivers.office]\ndriver = \"simulated\"\nphones = 2\ndial_ms = 20\nring_ms = 50\n\n\
             [drivers.dialer]\ndriver = \"acd\"\nbind = \"127.0.0.1:0\"\ndomain = \"{registrar}\"\n\
             user = \"dialer\"\npassword = \"secret-for-metrics\"\nlines = 1\nregister = true\n"
        ),
    );
    let daemon = Daemon::spawn(tapir().arg("run").arg("--config").arg(&config));
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    if http_get(&addr, "/healthz", Duration::from_secs(30)).is_none() {
        panic!("the daemon did not come up: {:?}", daemon.stop("KILL"));
    }
    let http = client();
    // Traffic: a call that connects and is dropped, a transfer the driver refuses, a phone
    // callback, a request with a bad token.
    let office = call(
        &http,
        "GET",
        &format!("{base}/v1/lines?driver=office"),
        Some(READ),
        None,
    )
    .await;
    let line = office.body[0]["id"].as_u64().expect("an office line");
    let placed = call(
        &http,
        "POST",
        &format!("{base}/v1/lines/{line}/calls?wait=10"),
        Some(CONTROL),
        Some(("application/json", r#"{"destination":"200"}"#)),
    )
    .await;
    assert_eq!(placed.status, 200, "{}", placed.text);
    let id = placed.body["call"].as_u64().expect("call");
    support::web::poll(
        &http,
        &format!("{base}/v1/calls/{id}"),
        Some(READ),
        Duration::from_secs(20),
        |c| c["state"]["state"] == "connected",
    )
    .await;
    let setup = call(
        &http,
        "POST",
        &format!("{base}/v1/calls/{id}/setup-transfer?wait=10"),
        Some(CONTROL),
        None,
    )
    .await;
    assert_eq!(setup.status, 200, "{}", setup.text);
    let consult = setup.body["call"].as_u64().expect("consultation call");
    // The consultation call has dial tone only: the driver refuses to complete the transfer.
    let refused = call(
        &http,
        "POST",
        &format!("{base}/v1/calls/{id}/complete-transfer?wait=10"),
        Some(CONTROL),
        Some(("application/json", &format!("{{\"consult\":{consult}}}"))),
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    for c in [consult, id] {
        let dropped = call(
            &http,
            "POST",
            &format!("{base}/v1/calls/{c}/drop?wait=10"),
            Some(CONTROL),
            None,
        )
        .await;
        assert_eq!(dropped.status, 200, "{}", dropped.text);
    }
    let ring = call(
        &http,
        "GET",
        &format!("http://127.0.0.1:{phones_port}/phones/office/ring?line=101&from=555"),
        None,
        None,
    )
    .await;
    assert_eq!(ring.status, 202, "{}", ring.text);
    let bad = call(
        &http,
        "GET",
        &format!("{base}/v1/lines"),
        Some("not-a-token"),
        None,
    )
    .await;
    assert_eq!(bad.status, 401);

    // The unanswered REGISTER times out after 64 × T1 = 32 s; wait for it (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = scrape(&http, &base).await;
        let timed_out = sample(&text, "tapir_sip_transaction_timeouts_total").unwrap_or(0.0);
        if timed_out >= 1.0 || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (_, stderr) = daemon.stop("TERM");
    drop(silent);

    for family in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "family {family} missing from /metrics:\n{text}"
        );
    }
    let at_least = |prefix: &str, min: f64| {
        let v = sample(&text, prefix).unwrap_or(0.0);
        assert!(v >= min, "{prefix} = {v}, expected ≥ {min}\n{text}");
    };
    at_least(
        "tapir_request_duration_seconds_count{operation=\"make_call\",driver=\"office\",result=\"ok\"}",
        1.0,
    );
    at_least(
        "tapir_request_duration_seconds_bucket{operation=\"make_call\",driver=\"office\",result=\"ok\",le=\"60\"}",
        1.0,
    );
    at_least(
        "tapir_request_duration_seconds_count{operation=\"complete_transfer\",driver=\"office\",result=\"invalid_call_state\"}",
        1.0,
    );
    at_least(
        "tapir_driver_errors_total{kind=\"invalid_call_state\"}",
        1.0,
    );
    at_least(
        "tapir_phone_callback_duration_seconds_count{driver=\"office\"}",
        1.0,
    );
    at_least("tapir_phone_callbacks_total{result=\"accepted\"}", 1.0);
    at_least(
        "tapir_api_requests_total{operation=\"make_call\",result=\"accepted\"}",
        1.0,
    );
    at_least("tapir_api_auth_failures_total{code=\"invalid_token\"}", 1.0);
    at_least("tapir_sip_retransmissions_total", 1.0);
    at_least("tapir_sip_transaction_timeouts_total", 1.0);
    at_least("tapir_sip_registrations{state=\"failed\"}", 1.0);
    at_least("tapir_lines{state=\"in_service\"}", 2.0);
    at_least("tapir_driver_instances{state=\"running\"}", 2.0);
    // `[http] workers` sets the host runtime's threads.
    assert_eq!(sample(&text, "tapir_runtime_workers"), Some(3.0), "{text}");
    assert!(!stderr.contains("secret-for-metrics"), "{stderr}");
    assert!(!text.contains("secret-for-metrics"));
}

#[test]
fn the_readme_and_the_dashboard_name_only_exported_families() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    for family in FAMILIES {
        assert!(
            readme.contains(&format!("`{family}`")),
            "README.md does not document {family}"
        );
    }
    let text = std::fs::read_to_string(root.join("packaging/grafana/tapir.json"))
        .expect("the Grafana dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut used = Vec::new();
    collect_exprs(&dashboard, &mut used);
    assert!(used.len() >= 8, "{used:?}");
    for expr in &used {
        let names: Vec<&str> = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("tapir_"))
            .collect();
        assert!(!names.is_empty(), "a panel without a tapir metric: {expr}");
        for name in names {
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            assert!(
                FAMILIES.contains(&family),
                "the dashboard uses {name}, which the host does not export ({expr})"
            );
        }
    }
    // Every family is graphed somewhere.
    for family in FAMILIES {
        assert!(
            used.iter().any(|e| e.contains(family)),
            "no panel shows {family}"
        );
    }
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "expr" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_owned());
                    }
                } else {
                    collect_exprs(v, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}
