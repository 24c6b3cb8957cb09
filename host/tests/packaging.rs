//! What the Debian package ships, checked without building it: the packaged configuration is
//! clean (also with its commented examples switched on), the systemd unit passes
//! `systemd-analyze verify` and has the settings the service needs, and `tapir run` speaks the
//! systemd notification protocol (`READY=1`, `RELOADING=1` then `READY=1` on SIGHUP,
//! `STOPPING=1`). `.ci/run` also builds, installs and verifies the real package.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

#[test]
fn the_packaged_configuration_and_its_examples_are_clean() {
    let path = packaging().join("debian/tapir.toml");
    let text = std::fs::read_to_string(&path).expect("packaged config");
    let dir = tempfile::tempdir().expect("dir");
    let as_is = write_config(dir.path(), &text);
    let out = run(tapir().arg("check-config").arg(&as_is));
    assert!(out.status.success(), "{out:?}");
    // The simulated office is on, by name, and says how to remove it.
    assert!(text.contains("driver = \"simulated\""));
    assert!(text.contains("DELETE THIS SECTION"));
    // Drivers' state goes to the unit's StateDirectory, the one writable place.
    assert!(text.contains("\nstate_dir = \"/var/lib/tapir\""));
    // Switch the commented driver examples on (the lines from `# [drivers.office]` on):
    // they must be valid too, so an administrator can uncomment them.
    let start = text.find("# [drivers.office]").expect("snom example");
    let end = text
        .find("# Number formatting")
        .expect("end of the examples");
    let mut on = text[..start].to_owned();
    for line in text[start..end].lines() {
        // Commented settings (`# [table]`, `# key = ...`) come back; prose stays a comment.
        let setting = line.strip_prefix("# ").filter(|rest| {
            rest.starts_with('[')
                || rest
                    .split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        });
        on.push_str(setting.unwrap_or(line));
        on.push('\n');
    }
    on.push_str(&text[end..]);
    let examples = dir.path().join("examples.toml");
    std::fs::write(&examples, &on).expect("write");
    let out = run(tapir().arg("check-config").arg(&examples));
    assert!(
        out.status.success(),
        "{}\n{on}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(on.contains("driver = \"snom\"") && on.contains("driver = \"sip-refer\""));
}

#[test]
fn the_unit_has_what_the_service_needs_and_systemd_accepts_it() {
    let unit = std::fs::read_to_string(packaging().join("debian/tapir.service")).expect("unit");
    for needed in [
        "Type=notify",
        "ExecStart=/usr/bin/tapir run --config /etc/tapir/tapir.toml",
        "ExecReload=/usr/bin/tapir check-config /etc/tapir/tapir.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=tapir",
        "StateDirectory=tapir",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    let nofile: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .and_then(|v| v.trim().parse().ok())
        .expect("LimitNOFILE");
    assert!(
        nofile >= 20_000,
        "LimitNOFILE={nofile} is short for 10,000 phones"
    );
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("SKIPPED: no systemd-analyze (Debian package `systemd`); CI installs it.");
        return;
    };
    assert!(version.status.success());
    // The unit as installed, but with this build's binary (systemd-analyze checks that the
    // programs exist) and the user root (the `tapir` user only exists once the package is in).
    let dir = tempfile::tempdir().expect("dir");
    let binary = env!("CARGO_BIN_EXE_tapir");
    let local = unit
        .replace("/usr/bin/tapir", binary)
        .replace("User=tapir", "User=root")
        .replace("Group=tapir", "Group=root");
    let path = dir.path().join("tapir.service");
    std::fs::write(&path, local).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("tapir.service"))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn the_daemon_tells_systemd_when_it_is_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().expect("dir");
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n\n[phones]\nlisten = \"127.0.0.1:0\"\n"),
    );
    let daemon = Daemon::spawn(
        tapir()
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &socket_path),
    );
    let next = || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    // Ready means served: the HTTP endpoint answers now.
    assert!(http_get(
        &format!("127.0.0.1:{port}"),
        "/healthz",
        Duration::from_secs(2)
    )
    .is_some());
    let pid = daemon.pid().to_string();
    assert!(Command::new("kill")
        .args(["-s", "HUP", &pid])
        .status()
        .expect("kill")
        .success());
    let reloading = next();
    assert!(reloading.starts_with("RELOADING=1\n"), "{reloading}");
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .expect("MONOTONIC_USEC");
    assert!(usec > 0);
    assert!(next().starts_with("READY=1\n"));
    let (status, stderr) = daemon.stop("TERM");
    let stopping = next();
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping}");
    assert_eq!(status, Some(0), "{stderr}");
}
