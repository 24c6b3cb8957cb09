//! Reloading a running `tapir run` without a restart: SIGHUP and `POST /v1/reload`. A call in
//! progress on an instance that did not change survives a reload that removes one instance,
//! changes another and adds three (a simulated one, a snom phone, a SIP line); the removed and changed instances' calls end Disconnected
//! then Idle; line ids stay; number rules and tokens apply at once; a bad file changes nothing.
//! A restarted SIP instance binds its port again every time, also with calls in flight against
//! a real phone (SIPp), whose calls end and whose line runs the next calls.

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::web::{call, client, poll};
use support::*;

const CONTROL: &str = "control-token-before-reload-01";
const READ: &str = "read-token-before-reload-00001";
const CONTROL2: &str = "control-token-after-reload-002";

/// A configuration: tokens, a dial rule that strips a leading 0 and prepends `prefix`, and
/// simulated instances given as `(name, first number, phones, ring_ms)`.
fn config(
    port: u16,
    phones_port: u16,
    tokens: &[(&str, &str, &str)],
    prefix: &str,
    instances: &[(&str, u32, u32, u32)],
) -> String {
    let mut text = format!(
        "[log]\nlevel = \"info\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n[phones]\nlisten = \"127.0.0.1:{phones_port}\"\n\n[[numbers.dial]]\nsearch = '^0(.*)'\nreplace = '{prefix}\\1'\n\n"
    );
    for (name, token, access) in tokens {
        text.push_str(&format!(
            "[[api.tokens]]\nname = \"{name}\"\ntoken = \"{token}\"\naccess = \"{access}\"\n\n"
        ));
    }
    for (name, first, phones, ring_ms) in instances {
        text.push_str(&format!(
            "[drivers.{name}]\ndriver = \"simulated\"\nphones = {phones}\nfirst_number = {first}\ndial_ms = 50\nring_ms = {ring_ms}\n\n"
        ));
    }
    text
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write config");
}

async fn dial(http: &reqwest::Client, base: &str, token: &str, line: u64, number: &str) -> u64 {
    let a = call(
        http,
        "POST",
        &format!("{base}/v1/lines/{line}/calls?wait=10"),
        Some(token),
        Some((
            "application/json",
            &format!("{{\"destination\":\"{number}\"}}"),
        )),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["call"].as_u64().expect("call id")
}

async fn connected(http: &reqwest::Client, base: &str, token: &str, call: u64) -> Value {
    poll(
        http,
        &format!("{base}/v1/calls/{call}"),
        Some(token),
        Duration::from_secs(20),
        |c| c["state"]["state"] == "connected",
    )
    .await
}

/// `tapir run` on the configuration at `path`, up and healthy on `port`; its base URL.
fn start(path: &Path, port: u16) -> (Daemon, String) {
    let daemon = Daemon::spawn(tapir().arg("run").arg("--config").arg(path));
    let addr = format!("127.0.0.1:{port}");
    assert!(
        http_get(&addr, "/healthz", Duration::from_secs(30)).is_some(),
        "the daemon did not come up"
    );
    (daemon, format!("http://{addr}"))
}

/// `POST /v1/reload`, answered 200.
async fn reload(http: &reqwest::Client, base: &str, token: Option<&str>) -> support::web::Answer {
    let a = call(http, "POST", &format!("{base}/v1/reload"), token, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a
}

/// The event stream's position now (`x-tapir-seq` of the call list).
async fn seq_now(http: &reqwest::Client, base: &str) -> u64 {
    call(
        http,
        "GET",
        &format!("{base}/v1/calls"),
        Some(CONTROL),
        None,
    )
    .await
    .headers["x-tapir-seq"]
        .to_str()
        .expect("seq")
        .parse::<u64>()
        .expect("number")
}

/// Line ids by key.
async fn line_ids(http: &reqwest::Client, base: &str, token: &str) -> Vec<(String, u64, String)> {
    let a = call(http, "GET", &format!("{base}/v1/lines"), Some(token), None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let mut out: Vec<(String, u64, String)> = a
        .body
        .as_array()
        .expect("array")
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap_or_default().to_owned(),
                l["id"].as_u64().unwrap_or(u64::MAX),
                l["driver"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The events after `after`, read from the SSE stream until `done` holds for the list or
/// `within` passes.
async fn events_after(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    after: u64,
    within: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut response = http
        .get(format!("{base}/v1/events?after={after}"))
        .bearer_auth(token)
        .timeout(within)
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    let mut buffer = String::new();
    let mut events = Vec::new();
    while Instant::now() < deadline && !done(&events) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Ok(Some(chunk))) = tokio::time::timeout(left, response.chunk()).await else {
            break;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            for line in block.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                        events.push(v);
                    }
                }
            }
        }
    }
    events
}

fn states(events: &[Value], call: u64) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "call_state" && e["call"] == call)
        .map(|e| {
            let state = e["state"]["state"].as_str().unwrap_or_default();
            match e["state"]["mode"].as_str() {
                Some(mode) => format!("{state}({mode})"),
                None => state.to_owned(),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_on_an_unchanged_instance_survives_reloads_that_add_remove_and_change_others() {
    let dir = tempfile::tempdir().expect("dir");
    let (port, phones_port) = (free_port(), free_port());
    let path = dir.path().join("tapir.toml");
    let before = config(
        port,
        phones_port,
        &[("crm", CONTROL, "control"), ("wallboard", READ, "read")],
        "",
        &[
            ("office", 100, 2, 100),
            ("old", 200, 2, 100),
            ("changing", 300, 1, 100),
        ],
    );
    write(&path, &before);
    let mut daemon = Some(Daemon::spawn(tapir().arg("run").arg("--config").arg(&path)));
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    assert!(
        http_get(&addr, "/healthz", Duration::from_secs(30)).is_some(),
        "the daemon did not come up"
    );
    let http = client();
    let ids_before = line_ids(&http, &base, CONTROL).await;
    assert_eq!(
        ids_before,
        vec![
            // Instances start in name order: changing, office, old.
            ("100".into(), 1, "office".into()),
            ("101".into(), 2, "office".into()),
            ("200".into(), 3, "old".into()),
            ("201".into(), 4, "old".into()),
            ("300".into(), 0, "changing".into()),
        ]
    );
    let kept = dial(&http, &base, CONTROL, 1, "0200").await;
    let on_old = dial(&http, &base, CONTROL, 3, "0201").await;
    let on_changing = dial(&http, &base, CONTROL, 0, "0202").await;
    for c in [kept, on_old, on_changing] {
        connected(&http, &base, CONTROL, c).await;
    }
    let kept_before = connected(&http, &base, CONTROL, kept).await;
    assert_eq!(kept_before["info"]["called"]["raw_number"], "200");
    let seq = seq_now(&http, &base).await;

    // Reload 1, by SIGHUP: `old` goes, `changing` changes, `added` comes, the dial rule and
    // the tokens change.
    // Also a snom phone and a SIP line, as an administrator adds them (neither peer answers:
    // the instances start all the same).
    let snom_port = free_port();
    let sip_port = free_port();
    let after = config(
        port,
        phones_port,
        &[("crm2", CONTROL2, "control")],
        "555",
        &[
            ("office", 100, 2, 100),
            ("changing", 300, 1, 150),
            ("added", 400, 1, 100),
        ],
    ) + &format!(
        "[drivers.desk]\ndriver = \"snom\"\nphones = [ {{ address = \"127.0.0.1:{snom_port}\", login = \"admin\", password = \"phone-password-1\" }} ]\n\n\
         [drivers.sip]\ndriver = \"sip-refer\"\nbind = \"127.0.0.1:0\"\n[[drivers.sip.lines]]\nkey = \"alice\"\nname = \"Alice\"\n\
         domain = \"127.0.0.1:{sip_port}\"\nuser = \"alice\"\npassword = \"sip-password-1\"\n"
    );
    write(&path, &after);
    let pid = daemon.as_ref().expect("daemon").pid().to_string();
    let status = std::process::Command::new("kill")
        .args(["-s", "HUP", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let drivers = poll(
        &http,
        &format!("{base}/v1/drivers"),
        Some(CONTROL2),
        Duration::from_secs(30),
        |d| {
            d.as_array()
                .is_some_and(|a| a.iter().any(|i| i["name"] == "added"))
        },
    )
    .await;
    let names: Vec<&str> = drivers
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["added", "changing", "desk", "office", "sip"],
        "{drivers:#}"
    );
    assert!(
        drivers
            .as_array()
            .expect("array")
            .iter()
            .all(|i| i["state"] == "running"),
        "{drivers:#}"
    );
    let events = events_after(&http, &base, CONTROL2, seq, Duration::from_secs(20), |e| {
        states(e, on_old).len() >= 2
            && states(e, on_changing).len() >= 2
            && e.iter()
                .any(|e| e["event"] == "line_created" && e["line"] == 5)
    })
    .await;
    for ended in [on_old, on_changing] {
        assert_eq!(
            states(&events, ended),
            vec!["disconnected(unavailable)", "idle"],
            "call {ended}: {events:#?}"
        );
    }
    let removed: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "line_removed")
        .filter_map(|e| e["line"].as_u64())
        .collect();
    assert_eq!(removed, vec![0, 3, 4], "{events:#?}");
    // Nothing at all happened on the unchanged instance's lines.
    assert!(
        events.iter().all(|e| !(e["line"] == 1 || e["line"] == 2)),
        "{events:#?}"
    );
    let kept_now = connected(&http, &base, CONTROL2, kept).await;
    assert_eq!(kept_now["line"], 1);
    // Line ids: the changed instance's line came back with its id, the new one got a new id.
    assert_eq!(
        line_ids(&http, &base, CONTROL2).await,
        vec![
            ("100".into(), 1, "office".into()),
            ("101".into(), 2, "office".into()),
            (format!("127.0.0.1_{snom_port}"), 6, "desk".into()),
            ("300".into(), 0, "changing".into()),
            ("400".into(), 5, "added".into()),
            ("alice".into(), 7, "sip".into()),
        ]
    );
    let gone = call(
        &http,
        "GET",
        &format!("{base}/v1/lines/3"),
        Some(CONTROL2),
        None,
    )
    .await;
    assert_eq!(gone.status, 404);
    // Tokens: the old ones are refused, the new one works.
    for old in [CONTROL, READ] {
        let a = call(&http, "GET", &format!("{base}/v1/lines"), Some(old), None).await;
        assert_eq!(a.status, 401, "{}", a.text);
    }
    // The new dial rule applies to the next call.
    let second = dial(&http, &base, CONTROL2, 2, "0201").await;
    let second = connected(&http, &base, CONTROL2, second).await;
    assert_eq!(
        second["info"]["called"]["raw_number"], "555201",
        "{second:#}"
    );

    // A bad file changes nothing, and says why.
    write(
        &path,
        &format!("{after}\n[drivers.broken]\ndriver = \"no-such-driver\"\n"),
    );
    let refused = call(
        &http,
        "POST",
        &format!("{base}/v1/reload"),
        Some(CONTROL2),
        None,
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.body["error"]["code"], "invalid_config");
    let problem = refused.body["error"]["problems"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        problem.contains("drivers.broken.driver"),
        "{}",
        refused.text
    );
    assert_eq!(
        call(
            &http,
            "GET",
            &format!("{base}/v1/drivers"),
            Some(CONTROL2),
            None
        )
        .await
        .body,
        drivers
    );
    // A read token may not reload.
    write(&path, &after.replace("\"control\"", "\"read\""));
    let a = call(
        &http,
        "POST",
        &format!("{base}/v1/reload"),
        Some(CONTROL2),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = call(
        &http,
        "POST",
        &format!("{base}/v1/reload"),
        Some(CONTROL2),
        None,
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.text);

    // Reload 3, by SIGHUP again: `old` comes back with its old line ids.
    daemon_reload_by_signal(&daemon, &path, &before);
    let ids = poll(
        &http,
        &format!("{base}/v1/lines"),
        Some(CONTROL),
        Duration::from_secs(30),
        |l| {
            l.as_array()
                .is_some_and(|a| a.iter().any(|l| l["key"] == "201"))
        },
    )
    .await;
    let old_ids: Vec<(String, u64)> = ids
        .as_array()
        .expect("array")
        .iter()
        .filter(|l| l["driver"] == "old")
        .map(|l| {
            (
                l["key"].as_str().unwrap_or_default().to_owned(),
                l["id"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(old_ids, vec![("200".into(), 3), ("201".into(), 4)]);
    let a = reload(&http, &base, Some(CONTROL)).await;
    assert_eq!(
        a.body["unchanged"].as_array().map(Vec::len),
        Some(3),
        "{}",
        a.text
    );
    assert_eq!(a.body["added"], serde_json::json!([]));
    connected(&http, &base, CONTROL, kept).await;

    let (status, stderr) = daemon.take().expect("daemon").stop("TERM");
    assert_eq!(status, Some(0), "{stderr}");
    assert!(stderr.contains("Reload refused"), "{stderr}");
    assert!(stderr.contains("drivers.broken.driver"), "{stderr}");
    for secret in [
        CONTROL,
        READ,
        CONTROL2,
        "phone-password-1",
        "sip-password-1",
    ] {
        assert!(!stderr.contains(secret), "a token leaked into the log");
    }
}

/// Writes `text` and sends SIGHUP.
fn daemon_reload_by_signal(daemon: &Option<Daemon>, path: &Path, text: &str) {
    write(path, text);
    let pid = daemon.as_ref().expect("daemon").pid().to_string();
    let status = std::process::Command::new("kill")
        .args(["-s", "HUP", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Sends SIP OPTIONS over UDP to `port` and says whether a 200 came back within a second.
fn answers_options(port: u16, n: u32) -> bool {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let _ = socket.set_read_timeout(Some(Duration::from_secs(1)));
    let own = socket.local_addr().expect("address").port();
    let msg = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{own};branch=z9hG4bK-reload-{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p{n}\r\nTo: <sip:127.0.0.1:{port}>\r\n\
         Call-ID: reload-probe-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    if socket.send_to(msg.as_bytes(), ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => buf.get(..n).is_some_and(|b| b.starts_with(b"SIP/2.0 200")),
        Err(_) => false,
    }
}

/// A SIP driver's tasks run on the host's runtime; when a reload restarts its instance, every
/// one of them ends, so the new instance binds the same port again (and again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_sip_instance_restarts_on_its_own_port_every_time() {
    let dir = tempfile::tempdir().expect("dir");
    let (port, phones_port) = (free_port(), free_port());
    let sip_port = tapir_test_support::ports::free_port();
    let pbx_port = tapir_test_support::ports::free_port();
    let path = dir.path().join("tapir.toml");
    let text = |name: &str| {
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n\n[phones]\nlisten = \"127.0.0.1:{phones_port}\"\n\n\
             [drivers.sip]\ndriver = \"sip-refer\"\nbind = \"127.0.0.1:{sip_port}\"\n[[drivers.sip.lines]]\n\
             key = \"alice\"\nname = \"{name}\"\ndomain = \"127.0.0.1:{pbx_port}\"\nuser = \"alice\"\n"
        )
    };
    write(&path, &text("Alice 0"));
    let (daemon, base) = start(&path, port);
    assert!(
        answers_options(sip_port, 0),
        "the SIP port answers at start"
    );
    let http = client();
    for round in 1..=3u32 {
        write(&path, &text(&format!("Alice {round}")));
        let a = reload(&http, &base, None).await;
        assert_eq!(
            a.body["restarted"],
            serde_json::json!(["sip"]),
            "{}",
            a.text
        );
        assert_eq!(a.body["failed"], serde_json::json!([]), "{}", a.text);
        let drivers = call(&http, "GET", &format!("{base}/v1/drivers"), None, None).await;
        let sip = drivers
            .body
            .as_array()
            .and_then(|a| a.iter().find(|d| d["name"] == "sip"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(sip["state"], "running", "round {round}: {:#}", drivers.body);
        assert!(
            answers_options(sip_port, round),
            "round {round}: the restarted instance answers on its port"
        );
    }
    let (status, stderr) = daemon.stop("TERM");
    assert_eq!(status, Some(0), "{stderr}");
}

/// Calls in flight on a SIP instance that a reload restarts, against a real phone (SIPp that
/// accepts the REFER and keeps the dialled party ringing): each call ends Disconnected then
/// Idle, the restarted instance answers on its port again, and the next calls on the same
/// line run against the same phone, round after round (the call left ringing in the first
/// round is among those the second restart ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_on_a_restarted_sip_instance_end_and_the_next_ones_run() {
    let Some(sipp_bin) = sipp() else { return };
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/refer_ringing.xml");
    let phone = Sipp::builder(&sipp_bin, &scenario)
        .calls(20)
        .timeout(Duration::from_secs(180))
        .trace_msg(false)
        .start();
    let phone_port = phone.port();
    let dir = tempfile::tempdir().expect("dir");
    let (port, phones_port) = (free_port(), free_port());
    let sip_port = tapir_test_support::ports::free_port();
    let path = dir.path().join("tapir.toml");
    let text = |name: &str| {
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n\n[phones]\nlisten = \"127.0.0.1:{phones_port}\"\n\n\
             [[api.tokens]]\nname = \"crm\"\ntoken = \"{CONTROL}\"\naccess = \"control\"\n\n\
             [drivers.sip]\ndriver = \"sip-refer\"\nbind = \"127.0.0.1:{sip_port}\"\n[[drivers.sip.lines]]\n\
             key = \"alice\"\nname = \"{name}\"\ndomain = \"127.0.0.1:{phone_port}\"\nuser = \"alice\"\n\
             phone_user = \"201\"\nmax_calls = 4\nnotify_timeout_secs = 60\n"
        )
    };
    write(&path, &text("Alice 0"));
    let (daemon, base) = start(&path, port);
    let http = client();
    let line = line_ids(&http, &base, CONTROL).await;
    assert_eq!(line, vec![("alice".into(), 0, "sip".into())]);
    for round in 1..=2u32 {
        let seq = seq_now(&http, &base).await;
        // Three calls on the line, one after the other, each ringing at the far end.
        let mut calls = Vec::new();
        for i in 0..3 {
            calls.push(dial(&http, &base, CONTROL, 0, &format!("20{i}")).await);
        }
        let ringing = events_after(&http, &base, CONTROL, seq, Duration::from_secs(20), |e| {
            calls
                .iter()
                .all(|c| states(e, *c).contains(&"ringback".to_owned()))
        })
        .await;
        for c in &calls {
            assert!(
                states(&ringing, *c).contains(&"ringback".to_owned()),
                "round {round}: call {c} never rang: {:?}",
                states(&ringing, *c)
            );
        }

        // The instance changes: the reload restarts it with its calls in progress.
        write(&path, &text(&format!("Alice {round}")));
        let a = reload(&http, &base, Some(CONTROL)).await;
        assert_eq!(
            a.body["restarted"],
            serde_json::json!(["sip"]),
            "{}",
            a.text
        );
        let ended = events_after(&http, &base, CONTROL, seq, Duration::from_secs(20), |e| {
            calls
                .iter()
                .all(|c| states(e, *c).last().map(String::as_str) == Some("idle"))
        })
        .await;
        for c in &calls {
            let seen = states(&ended, *c);
            // The state without its mode (`disconnected(unavailable)`).
            let tail: Vec<&str> = seen
                .iter()
                .rev()
                .take(2)
                .rev()
                .map(|s| s.split('(').next().unwrap_or_default())
                .collect();
            assert_eq!(
                tail,
                ["disconnected", "idle"],
                "round {round}: call {c} did not end with the restart: {seen:?}"
            );
        }
        assert_eq!(a.body["failed"], serde_json::json!([]), "{}", a.text);
        if !answers_options(sip_port, 100 + round) {
            let drivers = call(
                &http,
                "GET",
                &format!("{base}/v1/drivers"),
                Some(CONTROL),
                None,
            )
            .await;
            let (_, stderr) = daemon.stop("TERM");
            panic!(
                "round {round}: the restarted instance does not answer on its port: {:#}\n{stderr}",
                drivers.body
            );
        }
        // Its line runs the next call against the same phone.
        let seq = seq_now(&http, &base).await;
        let next = dial(&http, &base, CONTROL, 0, "210").await;
        let rang = events_after(&http, &base, CONTROL, seq, Duration::from_secs(20), |e| {
            states(e, next).contains(&"ringback".to_owned())
        })
        .await;
        assert!(
            states(&rang, next).contains(&"ringback".to_owned()),
            "round {round}: the call after the restart did not ring: {:?}",
            states(&rang, next)
        );
    }
    let (status, stderr) = daemon.stop("TERM");
    assert_eq!(status, Some(0), "{stderr}");
    drop(phone);
}
