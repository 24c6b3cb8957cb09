//! A newcomer's first run: `tapir run` without a file starts the simulated office, labelled
//! simulated in the log and the API, whose lines can be dialled and show calls changing
//! state. A configuration file never gets simulated phones unless it names the driver.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::web::{call, client, poll};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_is_a_simulated_office_that_can_be_dialled() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    let daemon = Daemon::spawn(
        tapir()
            .arg("run")
            .env("TAPIR_HTTP__LISTEN", &addr)
            .env("TAPIR_PHONES__LISTEN", "127.0.0.1:0"),
    );
    assert!(
        http_get(&addr, "/healthz", Duration::from_secs(30)).is_some(),
        "the daemon did not come up: {:?}",
        daemon.stop("KILL")
    );
    let http = client();
    let lines = call(&http, "GET", &format!("{base}/v1/lines"), None, None).await;
    assert_eq!(lines.status, 200);
    let lines = lines.body.as_array().cloned().expect("array");
    let names: Vec<&str> = lines.iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(names.len(), 8, "{names:?}");
    assert_eq!(names[0], "Reception");
    assert!(lines.iter().all(|l| l["simulated"] == true), "{lines:#?}");
    assert!(lines.iter().all(|l| l["phone"]["mac"]
        .as_str()
        .is_some_and(|m| m.starts_with("02:74:61:"))));
    // One phone out of service and one misconfigured, so the filters find something.
    let out = call(
        &http,
        "GET",
        &format!("{base}/v1/lines?filter=out_of_service"),
        None,
        None,
    )
    .await;
    assert_eq!(out.body[0]["key"], "107", "{}", out.text);
    let drivers = call(&http, "GET", &format!("{base}/v1/drivers"), None, None).await;
    assert_eq!(drivers.body[0]["simulated"], true, "{}", drivers.text);
    let summary = call(&http, "GET", &format!("{base}/v1/summary"), None, None).await;
    assert_eq!(summary.body["simulated"], true, "{}", summary.text);
    let page = call(&http, "GET", &format!("{base}/"), None, None).await;
    assert!(
        page.text.contains("id=\"simulated\""),
        "the page has the banner"
    );

    // Dial Sales to 200: the call goes Dialing, Ringback, Connected; dropping it ends it.
    let sales = lines
        .iter()
        .find(|l| l["name"] == "Sales")
        .and_then(|l| l["id"].as_u64())
        .expect("Sales");
    let placed = call(
        &http,
        "POST",
        &format!("{base}/v1/lines/{sales}/calls"),
        None,
        Some(("application/json", r#"{"destination":"200"}"#)),
    )
    .await;
    assert_eq!(placed.status, 202, "{}", placed.text);
    let id = placed.body["call"].as_u64().expect("call");
    let connected = poll(
        &http,
        &format!("{base}/v1/calls/{id}"),
        None,
        Duration::from_secs(20),
        |c| c["state"]["state"] == "connected",
    )
    .await;
    assert_eq!(connected["line"], sales);
    let seen: Vec<Value> = {
        let a = call(
            &http,
            "GET",
            &format!("{base}/v1/lines/{sales}"),
            None,
            None,
        )
        .await;
        vec![a.body]
    };
    assert_eq!(seen[0]["active_calls"], 1);
    let dropped = call(
        &http,
        "POST",
        &format!("{base}/v1/calls/{id}/drop?wait=10"),
        None,
        None,
    )
    .await;
    assert_eq!(dropped.status, 200, "{}", dropped.text);

    let (status, stderr) = daemon.stop("TERM");
    assert_eq!(status, Some(0), "{stderr}");
    assert!(stderr.contains("SIMULATED office"), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.contains("SIMULATED"), "first log line: {first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_file_gets_simulated_phones_only_when_it_names_the_driver() {
    let dir = tempfile::tempdir().expect("dir");
    let http = client();
    for (with, expected) in [(false, 0), (true, 3)] {
        let port = free_port();
        let mut text = format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n\n[phones]\nlisten = \"127.0.0.1:0\"\n"
        );
        if with {
            text.push_str("\n[drivers.lab]\ndriver = \"simulated\"\nphones = 3\n");
        }
        let path = write_config(dir.path(), &text);
        let checked = run(tapir().arg("check-config").arg(&path));
        assert!(checked.status.success(), "{checked:?}");
        let daemon = Daemon::spawn(tapir().arg("run").arg("--config").arg(&path));
        let addr = format!("127.0.0.1:{port}");
        assert!(http_get(&addr, "/healthz", Duration::from_secs(30)).is_some());
        let lines = call(&http, "GET", &format!("http://{addr}/v1/lines"), None, None).await;
        let (_, stderr) = daemon.stop("TERM");
        let lines = lines.body.as_array().cloned().expect("array");
        assert_eq!(lines.len(), expected, "{lines:#?}");
        assert!(lines.iter().all(|l| l["simulated"] == true));
        assert_eq!(stderr.contains("SIMULATED"), with, "{stderr}");
    }
}
