//! The `acd` driver through the `tapir` binary: `tapir call --hangup-after 1` on an acd line
//! against SIPp as the called party (answers, then takes our BYE); exit 0 on the normal end.

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

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free udp port")
}

#[test]
fn tapir_call_on_an_acd_line_against_sipp() {
    let Some(bin) = sipp() else {
        println!("SKIPPED: sipp is not installed (apt-get install sip-tester)");
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/acd/tests/scenarios/target_answer.xml");
    let file = dir.path().join("target_answer.xml");
    std::fs::copy(&src, &file).expect("copy scenario");
    let port = free_udp_port();
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir.path())
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
    let mut target = Daemon::spawn(&mut cmd);
    std::thread::sleep(Duration::from_millis(300));
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
    let states: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "call_state")
        .map(|e| e["state"]["state"].as_str().unwrap_or_default().to_owned())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sipp_status = None;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = target.child.try_wait() {
            sipp_status = s.code();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
