//! The `tapir` binary as an administrator uses it: run on the embedded default, check a
//! configuration, list plugins, place a call against the example driver.

mod support;

use std::time::Duration;
use support::*;

#[test]
fn run_on_the_embedded_default_serves_and_stops_on_sigterm() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let daemon = Daemon::spawn(
        tapir()
            .arg("run")
            .env("TAPIR_HTTP__LISTEN", &addr)
            .env("TAPIR_PHONES__LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info"),
    );
    let health = http_get(&addr, "/healthz", Duration::from_secs(20));
    let lines = http_get(&addr, "/v1/lines", Duration::from_secs(5));
    let (status, stderr) = daemon.stop("TERM");
    let health = health.expect("the HTTP endpoint answered on the port from the environment");
    assert!(
        health.contains("200 OK") && health.ends_with("ok\n"),
        "{health}"
    );
    // The embedded default is the simulated office (host/tests/first_run.rs goes further).
    assert!(
        lines
            .expect("lines answered")
            .contains("\"name\":\"Reception\",\"caps\""),
        "the simulated office's lines on the default"
    );
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("embedded default"),
        "first log line: {first}\n{stderr}"
    );
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert_eq!(status, Some(0), "{stderr}");
}

#[test]
fn check_config_reports_every_problem_with_line_and_column() {
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(
        dir.path(),
        "[log]\nlevel = \"info\"\nformat = \"xml\"\n\n[tsp]\nline_bas = 3\n\n[drivers.office]\ndriver = \"no-such-driver\"\n",
    );
    let out = run(tapir().arg("check-config").arg(&config));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let name = config.display().to_string();
    assert!(
        stderr.contains(&format!("{name}:3:1: log.format")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{name}:6:1: tsp.line_bas")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{name}:9:1: drivers.office.driver")),
        "{stderr}"
    );

    let good = write_config(dir.path(), "[log]\nlevel = \"debug\"\n");
    let out = run(tapir().arg("check-config").arg(&good));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn run_refuses_a_broken_config_and_says_where() {
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), "[http]\nlisten = 12\n");
    let out = run(tapir().arg("run").arg("--config").arg(&config));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(":2:1: http.listen"), "{stderr}");
}

#[test]
fn plugins_lists_the_example_and_refuses_junk() {
    let dir = plugin_dir();
    std::fs::write(dir.path().join("junk.so"), b"\x7fELF not really").expect("junk");
    std::fs::write(dir.path().join("notes.txt"), b"hello").expect("notes");
    let bad = bad_abi_library();
    std::fs::copy(&bad, dir.path().join(bad.file_name().expect("name"))).expect("copy fixture");
    let out = run(tapir()
        .args(["plugins", "--json", "--plugin-dir"])
        .arg(dir.path()));
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let drivers = json["drivers"].as_array().expect("drivers");
    let example = drivers
        .iter()
        .find(|d| d["name"] == "virtual-phone")
        .unwrap_or_else(|| panic!("example missing: {json:#}"));
    assert_eq!(example["origin"]["kind"], "file");
    assert!(example["origin"]["path"]
        .as_str()
        .unwrap_or_default()
        .ends_with(".so"));
    let refused = json["refused"].as_array().expect("refused");
    assert_eq!(refused.len(), 3, "{json:#}");
    assert!(
        refused.iter().any(
            |r| r["path"].as_str().unwrap_or_default().contains("bad_abi")
                && r["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("incompatible plugin interface")
        ),
        "{json:#}"
    );
    assert!(refused
        .iter()
        .any(|r| r["path"].as_str().unwrap_or_default().ends_with("junk.so")));
    assert!(refused.iter().any(|r| r["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("not a shared library")));
}

fn virtual_config(
    dir: &std::path::Path,
    plugins: &std::path::Path,
    extra: &str,
) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "plugin_dir = {plugins:?}\n\n[phones]\nlisten = \"127.0.0.1:0\"\n\n[log]\nlevel = \"warn\"\n\n[drivers.office]\ndriver = \"virtual-phone\"\ndial_ms = 50\nring_ms = 100\nhangup_after_ms = 200\nbusy_numbers = [\"486\"]\n{extra}\n"
        ),
    )
}

#[test]
fn call_shows_dialing_ringback_connected_and_ends_idle() {
    let plugins = plugin_dir();
    let dir = tempfile::tempdir().expect("dir");
    let config = virtual_config(dir.path(), plugins.path(), "");
    let out = run(tapir()
        .args(["call", "--timeout", "20", "--line", "100", "--config"])
        .arg(&config)
        .arg("200"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    let seen = call_states(&out.stdout);
    assert_eq!(
        seen,
        ["dialing", "ringback", "connected", "disconnected", "idle"],
        "{stderr}"
    );
}

#[test]
fn call_to_a_busy_number_fails_with_the_reason() {
    let plugins = plugin_dir();
    let dir = tempfile::tempdir().expect("dir");
    let config = virtual_config(dir.path(), plugins.path(), "");
    let out = run(tapir()
        .args(["call", "--timeout", "20", "--line", "100", "--config"])
        .arg(&config)
        .arg("486"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("busy"), "{stderr}");
    assert_eq!(
        call_states(&out.stdout).last().map(String::as_str),
        Some("idle")
    );
}

#[test]
fn call_times_out_with_its_own_status() {
    let plugins = plugin_dir();
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(
        dir.path(),
        &format!(
            "plugin_dir = {:?}\n\n[phones]\nlisten = \"127.0.0.1:0\"\n\n[drivers.office]\ndriver = \"virtual-phone\"\nring_ms = 60000\n",
            plugins.path()
        ),
    );
    let out = run(tapir()
        .args(["call", "--timeout", "1", "--line", "100", "--config"])
        .arg(&config)
        .arg("200"));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigint_reports_open_calls_and_stops_the_drivers() {
    let plugins = plugin_dir();
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            "plugin_dir = {:?}\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n[phones]\nlisten = \"127.0.0.1:0\"\n\n[drivers.office]\ndriver = \"virtual-phone\"\nincoming = [{{ line = \"100\", after_ms = 50, from = \"0301234567\" }}]\n",
            plugins.path()
        ),
    );
    let daemon = Daemon::spawn(
        tapir()
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info"),
    );
    let addr = format!("127.0.0.1:{port}");
    let mut offered = false;
    for _ in 0..100 {
        if let Some(calls) = http_get(&addr, "/v1/calls", Duration::from_secs(10)) {
            if calls.contains("offering") {
                offered = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, stderr) = daemon.stop("INT");
    assert!(offered, "the scripted incoming call never showed: {stderr}");
    assert_eq!(status, Some(0), "{stderr}");
    assert!(stderr.contains("SIGINT"), "{stderr}");
    assert!(stderr.contains("Call still up at shutdown"), "{stderr}");
    assert!(stderr.contains("Drivers stopped"), "{stderr}");
}

#[test]
fn number_rules_apply_to_a_call_on_a_line() {
    let plugins = plugin_dir();
    let dir = tempfile::tempdir().expect("dir");
    // The manual's "80 -> 0" dial rule on the host, and a line-specific incoming rule that
    // removes the initial 0.
    let config = write_config(
        dir.path(),
        &format!(
            "plugin_dir = {:?}\n\n[phones]\nlisten = \"127.0.0.1:0\"\n\n[drivers.office]\ndriver = \"virtual-phone\"\ndial_ms = 20\nring_ms = 20\nhangup_after_ms = 50\n\n[[numbers.dial]]\nsearch = \"^80(.*)\"\nreplace = '0\\1'\n\n[[lines]]\ndriver = \"office\"\nkey = \"100\"\n[[lines.numbers.outgoing]]\nsearch = \"^0(.*)\"\nreplace = '\\1'\n",
            plugins.path()
        ),
    );
    let out = run(tapir()
        .args(["call", "--timeout", "20", "--line", "100", "--config"])
        .arg(&config)
        .arg("80301234"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let infos: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "call_info")
        .collect();
    let called = infos
        .iter()
        .map(|e| &e["info"]["called"])
        .find(|c| !c.is_null())
        .unwrap_or_else(|| panic!("no called party reported: {infos:?}"));
    // The driver was asked to dial what the dial rule made of 80301234 ...
    assert_eq!(called["raw_number"], "0301234", "{called}");
    // ... and the application sees it through the line's outgoing rule.
    assert_eq!(called["number"], "301234", "{called}");

    let check = run(tapir()
        .args(["format", "--category", "dial", "--config"])
        .arg(&config)
        .arg("80301234"));
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        text.contains("dial rule 1") && text.contains("result: `0301234`"),
        "{text}"
    );
    let check = run(tapir()
        .args([
            "format",
            "--category",
            "outgoing",
            "--line",
            "100",
            "--config",
        ])
        .arg(&config)
        .arg("0301234"));
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("result: `301234`"), "{text}");
}

#[test]
fn phones_reach_their_driver_through_the_callback_endpoint() {
    let plugins = plugin_dir();
    let dir = tempfile::tempdir().expect("dir");
    let (api, phones) = (free_port(), free_port());
    let config = write_config(
        dir.path(),
        &format!(
            "plugin_dir = {:?}\n\n[http]\nlisten = \"127.0.0.1:{api}\"\n\n[phones]\nlisten = \"127.0.0.1:{phones}\"\n\n[drivers.office]\ndriver = \"virtual-phone\"\n",
            plugins.path()
        ),
    );
    let daemon = Daemon::spawn(tapir().arg("run").arg("--config").arg(&config));
    let api = format!("127.0.0.1:{api}");
    let phones = format!("127.0.0.1:{phones}");
    assert!(
        http_get(&api, "/healthz", Duration::from_secs(20)).is_some(),
        "host did not start"
    );
    let rang = http_get(
        &phones,
        "/phones/office/ring?line=100&from=0301234567&name=Bob",
        Duration::from_secs(5),
    )
    .unwrap_or_default();
    let unknown_instance = http_get(
        &phones,
        "/phones/nobody/ring?line=100&from=1",
        Duration::from_secs(5),
    )
    .unwrap_or_default();
    let junk = http_get(
        &phones,
        "/phones/office/ring?from=1",
        Duration::from_secs(5),
    )
    .unwrap_or_default();
    let api_on_phone_port =
        http_get(&phones, "/v1/lines", Duration::from_secs(5)).unwrap_or_default();
    let mut calls = String::new();
    for _ in 0..100 {
        calls = http_get(&api, "/v1/calls", Duration::from_secs(5)).unwrap_or_default();
        if calls.contains("offering") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, stderr) = daemon.stop("TERM");
    assert!(
        rang.starts_with("HTTP/1.0 202") || rang.starts_with("HTTP/1.1 202"),
        "{rang}\n{stderr}"
    );
    assert!(unknown_instance.contains(" 404 "), "{unknown_instance}");
    assert!(junk.contains(" 400 "), "{junk}");
    assert!(
        api_on_phone_port.contains(" 404 "),
        "the phone port must not serve the API: {api_on_phone_port}"
    );
    assert!(
        calls.contains("offering") && calls.contains("0301234567") && calls.contains("Bob"),
        "{calls}"
    );
    assert_eq!(status, Some(0), "{stderr}");
}
