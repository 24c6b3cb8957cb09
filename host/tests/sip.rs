//! The SIP click-to-dial drivers through the `tapir` binary, against SIPp as the user's phone:
//! `tapir call` on a `sip-refer` line places the call, the phone is REFERred to the dialled
//! number, and the call ends normally.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn sipp() -> Option<PathBuf> {
    ["/usr/bin/sipp", "/usr/local/bin/sipp"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// SIPp as a UAS running one of the SIP plugin's scenarios once, on loopback; killed by PID
/// when dropped.
fn start_phone(bin: &Path, scenario: &str, dir: &Path) -> (Daemon, u16) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/sip/tests/scenarios")
        .join(format!("{scenario}.xml"));
    let file = dir.join(format!("{scenario}.xml"));
    std::fs::copy(&src, &file).expect("copy scenario");
    let port = free_udp_port();
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir)
        .arg("-sf")
        .arg(&file)
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            "1",
            "-t",
            "u1",
        ])
        .args([
            "-nostdin",
            "-timeout",
            "60s",
            "-timeout_error",
            "-trace_err",
        ])
        .stdin(Stdio::null());
    let phone = Daemon::spawn(&mut cmd);
    // SIPp binds at once; give it a moment before the INVITE arrives.
    std::thread::sleep(Duration::from_millis(300));
    (phone, port)
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free udp port")
}

fn wait_exit(phone: &mut Daemon, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = phone.child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn tapir_call_on_a_sip_refer_line_against_sipp() {
    let Some(bin) = sipp() else {
        println!("SKIPPED: sipp is not installed (apt-get install sip-tester)");
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (mut phone, port) = start_phone(&bin, "phone_ok", dir.path());
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
    let states: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "call_state")
        .map(|e| e["state"]["state"].as_str().unwrap_or_default().to_owned())
        .collect();
    let sipp_status = wait_exit(&mut phone, Duration::from_secs(20));
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
        println!("SKIPPED: sipp is not installed (apt-get install sip-tester)");
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let (mut phone, port) = start_phone(&bin, "phone_busy", dir.path());
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
    let sipp_status = wait_exit(&mut phone, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("busy"), "{stderr}");
    assert_eq!(sipp_status, Some(0), "SIPp did not see the expected flow");
}
