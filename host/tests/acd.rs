//! The `acd` driver through the `tapir` binary: `tapir call --hangup-after 1` on an acd line
//! against SIPp as the called party (answers, then takes our BYE); exit 0 on the normal end.

mod support;

use std::time::{Duration, Instant};
use support::*;

#[test]
fn tapir_call_on_an_acd_line_against_sipp() {
    let Some(bin) = sipp() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let mut target = start_sipp(&bin, "acd", "target_answer");
    let port = target.port();
    let config = write_config(
        dir.path(),
        &format!(
            "[phones]\nlisten = \"127.0.0.1:0\"\n\n[drivers.dialer]\ndriver = \"acd\"\nbind = \"127.0.0.1:0\"\ndomain = \"127.0.0.1:{port}\"\nuser = \"acd\"\nlines = 2000\nline = [ {{ key = \"2\", enabled = false }} ]\n"
        ),
    );
    let out = run(tapir()
        .args([
            "call",
            "--timeout",
            "30",
            "--hangup-after",
            "1",
            "--line",
            "1500",
            "--config",
        ])
        .arg(&config)
        .arg("+49 30 555"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let states = call_states(&out.stdout);
    let sipp_status = target
        .wait_exit(Duration::from_secs(20))
        .and_then(|s| s.code());
    assert!(
        out.status.success(),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    assert_eq!(sipp_status, Some(0), "SIPp did not see INVITE/ACK/BYE");
    assert_eq!(
        states.first().map(String::as_str),
        Some("dialing"),
        "{states:?}"
    );
    assert!(states.iter().any(|s| s == "ringback"), "{states:?}");
    assert!(states.iter().any(|s| s == "connected"), "{states:?}");
    assert_eq!(
        states.last().map(String::as_str),
        Some("idle"),
        "{states:?}"
    );

    // A disabled line is listed but refuses the call as unavailable (`--line` takes the
    // front end's numeric line id first: id 1 is the line with key "2").
    let out = run(tapir()
        .args(["call", "--timeout", "10", "--line", "1", "--config"])
        .arg(&config)
        .arg("100"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("tapir call:"))
        .collect();
    assert!(
        said.iter().any(|l| l.contains("does not support")),
        "{said:?}"
    );
}

/// Through the TSP front end in process: an acd call is connected, blind-transferred to an
/// agent (SIPp reports the agent's sipfrag 200), the transfer request completes Ok and the
/// call goes Idle.
#[test]
fn blind_transfer_through_the_front_end() {
    use tapir_core::{AddressId, CallState};
    use tapir_host::catalog::Catalog;
    use tapir_host::config::{Config, DriverSection};
    use tapir_host::host::Host;
    use tapir_tsp::{Action, RequestResult, TspEvent};

    let Some(bin) = sipp() else {
        return;
    };
    let mut target = start_sipp(&bin, "acd", "target_transfer");
    let port = target.port();

    let catalog = Catalog::load(None);
    let mut config = Config::empty();
    let serde_json::Value::Object(settings) = serde_json::json!({
        "bind": "127.0.0.1:0",
        "domain": format!("127.0.0.1:{port}"),
        "user": "acd",
        "lines": 100,
        "notify_timeout_secs": 10
    }) else {
        panic!("object")
    };
    config.drivers.insert(
        "dialer".into(),
        DriverSection {
            driver: "acd".into(),
            enabled: true,
            settings,
        },
    );
    let host = Host::start(&config, &catalog);
    let tsp = &host.tsp;
    let line = tsp.lines().first().map(|l| l.id).expect("a line");
    tsp.open_line(line).expect("open");
    let mut events = tsp.subscribe();
    let accepted = tsp
        .submit(Action::MakeCall {
            line,
            address: AddressId(0),
            destination: Some("4930123".into()),
        })
        .expect("MakeCall accepted");
    let call = accepted.call.expect("call");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut transfer = None;
    let mut transferred = false;
    let mut idle = false;
    while Instant::now() < deadline && !(transferred && idle) {
        let Ok(e) = events.try_recv() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        match e.event {
            TspEvent::CallState { call: c, state, .. } if c == call => match state {
                CallState::Connected if transfer.is_none() => {
                    let a = tsp
                        .submit(Action::BlindTransfer {
                            call,
                            destination: "300".into(),
                        })
                        .expect("BlindTransfer accepted by the front end");
                    transfer = Some(a.request);
                }
                CallState::Idle => idle = true,
                _ => {}
            },
            TspEvent::Completed {
                request, result, ..
            } if Some(request) == transfer => {
                assert!(matches!(result, RequestResult::Ok(_)), "{result:?}");
                transferred = true;
            }
            _ => {}
        }
    }
    let sipp_status = target
        .wait_exit(Duration::from_secs(20))
        .and_then(|s| s.code());
    host.shutdown();
    assert!(
        transferred && idle,
        "transferred {transferred}, idle {idle}"
    );
    assert_eq!(sipp_status, Some(0), "SIPp did not see the whole ACD flow");
}
