//! The commands that talk to a running host (`tapir lines`, `dial`, `events`, `drop`,
//! `phones`, `reload`), their administrator columns and page-like filters, and the API over
//! TLS.

mod support;

use std::process::Output;
use std::time::{Duration, Instant};
use support::web::*;
use support::*;

fn remote(args: &[&str], token: Option<&str>) -> Output {
    let mut cmd = tapir();
    cmd.args(args)
        .env_remove("TAPIR_URL")
        .env_remove("TAPIR_TOKEN");
    if let Some(token) = token {
        cmd.env("TAPIR_TOKEN", token);
    }
    cmd.output().expect("tapir runs")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_commands_drive_a_running_host() {
    let host = start("dial_ms = 50\nring_ms = 100\n", "", "", false).wait_ready();
    let url = host.base.clone();

    let out = remote(&["lines", "--url", &url], Some(READ));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("LINE  NAME"), "{stdout}");
    assert!(
        stdout.contains("Virtual 100") && stdout.contains("in service"),
        "{stdout}"
    );

    // The URL from the configuration file.
    let config = host.config.display().to_string();
    let out = remote(&["lines", "--json", "--config", &config], Some(READ));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(lines[0]["key"], "100");

    let out = remote(&["lines", "--url", &url], None);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("401 missing_token"), "{stderr}");

    let out = remote(&["dial", "--url", &url, "100", "200"], Some(READ));
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("403 forbidden"), "{stderr}");

    // Dial by line key, wait for the completion.
    let out = remote(
        &["dial", "--url", &url, "--json", "--wait", "5", "100", "200"],
        Some(CONTROL),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let reply: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    let call = reply["call"].as_u64().expect("call id");

    // Follow the events from the start until the call is connected; stopped by PID.
    let mut follower = Daemon::spawn(
        tapir()
            .args(["events", "--url", &url, "--json", "--after", "0"])
            .env("TAPIR_TOKEN", READ),
    );
    let stdout = follower.child().stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|e: &serde_json::Value| e["call"] == call && e["state"]["state"] == "connected")
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(serde_json::from_str(&line).expect("one JSON event per line")),
            Err(_) => panic!("the call never showed connected: {seen:#?}"),
        }
    }
    assert_eq!(seen[0]["seq"], 1, "{seen:#?}");
    let (_, follower_stderr) = follower.stop("TERM");
    assert!(!follower_stderr.contains(READ));
    let out = remote(
        &["events", "--url", &url, "--after", "0", "--count", "2"],
        Some(READ),
    );
    let (stdout, _) = text(&out);
    assert!(
        stdout
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start()
            .starts_with("1  "),
        "{stdout}"
    );

    let out = remote(
        &["drop", "--url", &url, "--wait", "5", &call.to_string()],
        Some(CONTROL),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("dropping call {call}")),
        "{stdout}"
    );
    let out = remote(&["drop", "--url", &url, "999"], Some(CONTROL));
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("404 invalid_call_handle"), "{stderr}");

    let out = remote(&["phones", "--url", &url], Some(READ));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // The virtual phone reports one connected row per line; MAC and firmware have columns.
    assert!(
        stdout.contains("virtual phone") && stdout.contains("connected"),
        "{stdout}"
    );
    let header = stdout.lines().next().unwrap_or_default();
    assert!(
        header.contains("FIRMWARE") && header.contains("MAC"),
        "{stdout}"
    );

    let out = remote(&["lines", "--url", "http://127.0.0.1:1"], Some(READ));
    assert_eq!(out.status.code(), Some(2));
    let stderr = host.stop();
    assert!(
        !stderr.contains(CONTROL) && !stderr.contains(READ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_speaks_tls_with_configured_files() {
    let dir = tempfile::tempdir().expect("dir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("key");
    let host = start(
        "",
        &format!("tls_cert = {cert:?}\ntls_key = {key:?}\n"),
        "",
        false,
    );
    let port = host.addr.rsplit(':').next().expect("port").to_owned();
    let https = format!("https://localhost:{port}");
    tapir_host::http::install_crypto_provider();
    let pem = std::fs::read(&cert).expect("read cert");
    let tls = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        match tls.get(format!("{https}/healthz")).send().await {
            Ok(r) => break r.text().await.unwrap_or_default(),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("no HTTPS answer: {e}\n{}", host.stop()),
        }
    };
    assert_eq!(health, "ok\n");
    let lines = call(&tls, "GET", &format!("{https}/v1/lines"), Some(READ), None).await;
    assert_eq!(lines.status, 200, "{}", lines.text);
    let unauthorized = call(&tls, "GET", &format!("{https}/v1/lines"), None, None).await;
    assert_eq!(unauthorized.status, 401);
    // Plain HTTP on the TLS port gets no API answer.
    let plain = http_get(&host.addr, "/healthz", Duration::from_secs(2));
    assert!(
        plain.as_deref().is_none_or(|p| !p.contains("ok\n")),
        "{plain:?}"
    );
    let out = tokio::task::spawn_blocking(move || {
        remote(
            &[
                "lines",
                "--url",
                &https,
                "--ca-cert",
                &cert.display().to_string(),
            ],
            Some(READ),
        )
    })
    .await
    .expect("cli");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("Virtual 100"), "{stdout}");
    let stderr = host.stop();
    assert!(stderr.contains("(HTTPS)"), "{stderr}");
}

#[test]
fn lines_and_phones_show_what_an_administrator_needs_and_filter_like_the_page() {
    let (daemon, base, _phones, dir) = simulated_office(600);
    let http_ready = |path: &str| {
        let addr = base.trim_start_matches("http://");
        http_get(addr, path, Duration::from_secs(10))
    };
    assert!(http_ready("/healthz").is_some());
    // Wait until every simulated line is there.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = remote(&["lines", "--url", &base, "--json"], Some(READ));
        let lines: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        if lines.as_array().is_some_and(|a| a.len() == 600) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let out = remote(&["lines", "--url", &base, "--limit", "5"], Some(READ));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let header: Vec<&str> = stdout
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "LINE",
            "NAME",
            "NUMBER",
            "DRIVER",
            "KEY",
            "SERVICE",
            "MAC",
            "IP",
            "REGISTRATION",
            "CALLS"
        ]
    );
    assert!(stdout.contains("Reception (simulated)"), "{stdout}");
    assert!(
        stdout.contains("02:74:61:00:00:00") && stdout.contains("198.18.0.1"),
        "{stdout}"
    );
    assert!(stdout.contains("5 of 600 matching lines shown"), "{stdout}");

    // The page's search: a MAC with other separators, then an IP.
    for search in ["027461-00012c", "198.18.1.51"] {
        let out = remote(&["lines", "--url", &base, "--search", search], Some(READ));
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        let rows: Vec<&str> = stdout.lines().skip(1).filter(|l| !l.is_empty()).collect();
        assert_eq!(rows.len(), 2, "{search}: {stdout}");
        assert!(
            rows[0].starts_with("300 ") && rows[0].contains("10300"),
            "{stdout}"
        );
        assert_eq!(rows[1], "1 line(s)");
    }
    // The page's filters.
    let out = remote(
        &["lines", "--url", &base, "--filter", "out-of-service"],
        Some(READ),
    );
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("10007") && stdout.contains("out of service"),
        "{stdout}"
    );
    assert!(
        stdout.contains("unreachable"),
        "registration column: {stdout}"
    );
    assert!(stdout.contains("1 line(s)"), "{stdout}");

    let out = remote(
        &["phones", "--url", &base, "--filter", "misconfigured"],
        Some(READ),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let header: Vec<&str> = stdout
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "DRIVER",
            "DEVICE",
            "MODEL",
            "FIRMWARE",
            "MAC",
            "IP",
            "IDENTITY",
            "REGISTRATION",
            "CONFIGURATION",
            "LINES"
        ]
    );
    assert!(
        stdout.contains("10006") && stdout.contains("settings wrong"),
        "{stdout}"
    );
    assert!(stdout.contains("sim-"), "firmware column: {stdout}");
    assert!(stdout.contains("2 phone(s)"), "10006 and 10500: {stdout}");

    // `tapir reload`: a read token may not, a control token may; the file is unchanged.
    let out = remote(&["reload", "--url", &base], Some(READ));
    assert_eq!(out.status.code(), Some(1));
    let out = remote(&["reload", "--url", &base], Some(CONTROL));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("unchanged  office"), "{stdout}");
    drop(dir);
    let _ = daemon.stop("TERM");
}
