//! The SIP click-to-dial drivers through the `tapir` binary, against SIPp as the user's phone:
//! `tapir call` on a `sip-refer` line places the call, the phone is REFERred to the dialled
//! number, and the call ends normally.

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
