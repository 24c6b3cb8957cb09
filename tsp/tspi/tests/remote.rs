//! Remote mode on Linux: the same C harness drives the provider as a thin client of a real
//! `tapir run` daemon (the virtual-phone plugin) over loopback, and the daemon is killed
//! (SIGKILL) in the middle of a call and started again while the harness runs. The daemon
//! has three lines; the workstation's filter shows two (and the line added later).

mod common;

use common::{build, compile_harness, run_harness, Daemon, COMMON_RULES, REMOTE_RULES, TOKEN};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(180);

/// The provider's remote-mode file.
pub fn remote_config(dir: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("tsp.toml");
    std::fs::write(
        &path,
        format!(
            r#"# tapir.tsp on a workstation: the lines come from the central host.
[remote]
url = "{url}"
token = "{TOKEN}"
lines = ["100", "101", "300"]
reconnect_max_s = 1.0

[log]
level = "info"
"#
        ),
    )
    .expect("write remote config");
    path
}

#[test]
fn the_harness_drives_a_remote_host_that_is_killed_and_restarted() {
    let (tsp, plugin, tapir) = build();
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = compile_harness(dir.path());
    let mut daemon = Daemon::new(&tapir, dir.path(), &plugin);
    daemon.start();
    let config = remote_config(dir.path(), &daemon.url());
    let mut command = Command::new(&exe);
    command
        .arg(&tsp)
        .env("TAPIR_CONFIG", &config)
        .env("TSPI_HARNESS_MODE", "remote")
        .env("TSPI_HARNESS_PHONES_PORT", daemon.phones_port.to_string());
    let mut stops = 0;
    let run = run_harness(command, DEADLINE, |what| match what {
        "stop" => {
            stops += 1;
            daemon.kill();
        }
        "start" => daemon.start(),
        other => panic!("unexpected HOST {other}"),
    });
    common::assert_passed(&run, COMMON_RULES);
    common::assert_passed(&run, REMOTE_RULES);
    assert_eq!(stops, 1, "the host was killed once");
    // The token never reaches the provider's log.
    assert!(
        !run.stderr.contains(TOKEN),
        "token in the log:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Lost the tapir host"),
        "the loss is logged:\n{}",
        run.stderr
    );
}

#[test]
fn an_unreachable_host_starts_with_no_lines_and_refuses_nothing_badly() {
    let (tsp, _plugin, _) = build();
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = compile_harness(dir.path());
    // Nobody listens there: enumeration reports no line, init succeeds, and the harness
    // stops at its first line check.
    let url = format!("http://127.0.0.1:{}", common::free_port());
    let config = remote_config(dir.path(), &url);
    let mut command = Command::new(&exe);
    command.arg(&tsp).env("TAPIR_CONFIG", &config);
    let run = run_harness(command, Duration::from_secs(60), |_| {});
    assert!(
        run.stdout
            .contains("ok - INITIALIZE_NEGOTIATION before providerInit answers 2.2"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("counts 2 lines") && run.stdout.contains("FAIL"),
        "enumeration finds no line while the host is away:\n{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("Cannot reach the tapir host"),
        "{}",
        run.stderr
    );
}
