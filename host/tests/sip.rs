//! The SIP click-to-dial drivers through the `tapir` binary, against SIPp as the user's phone:
//! `tapir call` on a `sip-refer` line places the call, the phone is REFERred to the dialled
//! number, and the call ends normally; a refused call is reported with the SIP status and
//! reason at any log level; `check-config` refuses a line with both `phone_address` and
//! `outbound_proxy`.

mod support;

use std::time::Duration;
use support::*;

#[test]
fn tapir_call_on_a_sip_refer_line_against_sipp() {
    let Some(bin) = sipp() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let mut phone = start_sipp(&bin, "sip", "phone_ok");
    let port = phone.port();
    let config = write_config(
        dir.path(),
        &format!(
            "[phones]\nlisten = \"127.0.0.1:0\"\n\n[drivers.pbx]\ndriver = \"sip-refer\"\nbind = \"127.0.0.1:0\"\nlines = [ {{ key = \"alice\", domain = \"127.0.0.1:{port}\", user = \"alice\", phone_user = \"201\", auto_answer = true, notify_timeout_secs = 10 }} ]\n"
        ),
    );
    let out = run(tapir()
        .args(["call", "--timeout", "30", "--line", "alice", "--config"])
        .arg(&config)
        .arg("+49 30 123*7#"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let states = call_states(&out.stdout);
    let sipp_status = phone
        .wait_exit(Duration::from_secs(20))
        .and_then(|s| s.code());
    assert!(
        out.status.success(),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    assert_eq!(
        sipp_status,
        Some(0),
        "SIPp did not see the whole click-to-dial flow"
    );
    assert_eq!(
        states.first().map(String::as_str),
        Some("dialing"),
        "{states:?}"
    );
    assert!(states.iter().any(|s| s == "connected"), "{states:?}");
    assert_eq!(
        states.last().map(String::as_str),
        Some("idle"),
        "{states:?}"
    );
}

#[test]
fn tapir_call_reports_a_busy_phone() {
    let Some(bin) = sipp() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let mut phone = start_sipp(&bin, "sip", "phone_busy");
    let port = phone.port();
    let config = write_config(
        dir.path(),
        &format!(
            "[phones]\nlisten = \"127.0.0.1:0\"\n\n[drivers.pbx]\ndriver = \"sip-refer\"\nbind = \"127.0.0.1:0\"\nlines = [ {{ key = \"alice\", domain = \"127.0.0.1:{port}\", user = \"alice\" }} ]\n"
        ),
    );
    let out = run(tapir()
        .args(["call", "--timeout", "30", "--line", "alice", "--config"])
        .arg(&config)
        .arg("200"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let sipp_status = phone
        .wait_exit(Duration::from_secs(20))
        .and_then(|s| s.code());
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("busy"), "{stderr}");
    assert_eq!(sipp_status, Some(0), "SIPp did not see the expected flow");
}

#[test]
fn tapir_call_prints_the_sip_status_and_reason_at_any_log_level() {
    let Some(bin) = sipp() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    // The phone declines our INVITE with 603.
    let mut phone = start_sipp(&bin, "sip", "phone_decline");
    let port = phone.port();
    let config = write_config(
        dir.path(),
        &format!(
            "[log]\nlevel = \"error\"\n\n[phones]\nlisten = \"127.0.0.1:0\"\n\n[drivers.pbx]\ndriver = \"sip-refer\"\nbind = \"127.0.0.1:0\"\nlines = [ {{ key = \"alice\", domain = \"127.0.0.1:{port}\", user = \"alice\" }} ]\n"
        ),
    );
    let out = run(tapir()
        .args(["call", "--timeout", "30", "--line", "alice", "--config"])
        .arg(&config)
        .arg("200"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sipp_status = phone
        .wait_exit(Duration::from_secs(20))
        .and_then(|s| s.code());
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(sipp_status, Some(0), "SIPp did not see the expected flow");
    // The failure line: the state and the phone's own words, with logging at "error".
    let line = stderr
        .lines()
        .find(|l| l.starts_with("tapir call:"))
        .unwrap_or_default();
    assert!(
        line.contains("disconnected: reject") && line.contains("603 Decline"),
        "{stderr}"
    );
    // The events carry the cause too, and the MakeCall's completion (Ok: the call was placed)
    // was awaited and printed before the exit.
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        events.iter().any(|e| e["event"] == "call_info"
            && e["info"]["cause"]
                .as_str()
                .is_some_and(|c| c.contains("603 Decline"))),
        "{stdout}"
    );
    let completions: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "completed")
        .collect();
    assert!(
        completions
            .iter()
            .any(|e| e["result"]["ok"]["kind"] == "done"),
        "{stdout}"
    );
    let states = call_states(&out.stdout);
    assert_eq!(
        states.last().map(String::as_str),
        Some("idle"),
        "{states:?}"
    );
}

#[test]
fn check_config_refuses_phone_address_together_with_outbound_proxy() {
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(
        dir.path(),
        "[drivers.pbx]\ndriver = \"sip-refer\"\nlines = [ { key = \"alice\", domain = \"pbx.example.com\", user = \"alice\", phone_address = \"10.0.0.7:5060\", outbound_proxy = \"proxy.example.com\" } ]\n",
    );
    let out = run(tapir().arg("check-config").arg(&config));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("drivers.pbx") && stderr.contains("exclude each other"),
        "{stderr}"
    );
    // Either one alone is fine.
    let one = write_config(
        dir.path(),
        "[drivers.pbx]\ndriver = \"sip-refer\"\nlines = [ { key = \"alice\", domain = \"pbx.example.com\", user = \"alice\", outbound_proxy = \"proxy.example.com\" } ]\n",
    );
    let out = run(tapir().arg("check-config").arg(&one));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
