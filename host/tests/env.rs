//! Environment variables through the `tapir` binary: the CLI's own variables (`TAPIR_TOKEN`,
//! `TAPIR_URL`, `TAPIR_PHONE_PASSWORD`, `TAPIR_CONFIG`) are no settings and leave a valid file
//! valid; a wrong setting variable is named with the reason; other `TAPIR_` variables are
//! ignored with a note.

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

/// The CLI's own variables, with values that would be refused as settings.
fn with_cli_variables(cmd: &mut Command) -> &mut Command {
    cmd.env("TAPIR_TOKEN", "a-long-random-secret-0001")
        .env("TAPIR_URL", "http://127.0.0.1:1")
        .env("TAPIR_PHONE_PASSWORD", "hunter2-phone")
        .env("TAPIR_CONFIG", "/nonexistent/tapir.toml")
}

fn valid_config(dir: &std::path::Path) -> std::path::PathBuf {
    let port = free_port();
    let phones = free_port();
    write_config(
        dir,
        &format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n\n[phones]\nlisten = \"127.0.0.1:{phones}\"\n"
        ),
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_cli_variables_leave_a_valid_file_valid_for_check_config_and_run() {
    let dir = tempfile::tempdir().expect("dir");
    let config = valid_config(dir.path());
    let out = run(with_cli_variables(tapir().arg("check-config").arg(&config)));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(text(&out.stdout).contains(": ok"), "{stderr}");
    assert!(
        !stderr.contains("note:"),
        "the CLI's own variables are no news: {stderr}"
    );

    let listen = std::fs::read_to_string(&config).expect("config");
    let addr = listen
        .lines()
        .find_map(|l| l.strip_prefix("listen = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("listen")
        .to_owned();
    let daemon = Daemon::spawn(with_cli_variables(
        tapir().arg("run").arg("--config").arg(&config),
    ));
    let health = http_get(&addr, "/healthz", Duration::from_secs(20));
    let (status, stderr) = daemon.stop("TERM");
    assert!(
        health.is_some_and(|h| h.ends_with("ok\n")),
        "the host did not serve: {stderr}"
    );
    assert_eq!(status, Some(0), "{stderr}");
    for secret in ["a-long-random-secret-0001", "hunter2-phone"] {
        assert!(!stderr.contains(secret), "{stderr}");
    }
}

#[test]
fn a_wrong_setting_variable_is_named_with_the_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let config = valid_config(dir.path());
    // A value of the wrong shape.
    let out = run(tapir()
        .arg("check-config")
        .arg(&config)
        .env("TAPIR_HTTP__LISTEN", "not-an-address"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("http.listen") && stderr.contains("TAPIR_HTTP__LISTEN"),
        "{stderr}"
    );
    assert!(
        stderr.contains("invalid socket address"),
        "the reason: {stderr}"
    );

    // A key the section does not have.
    let out = run(tapir()
        .arg("check-config")
        .arg(&config)
        .env("TAPIR_TSP__HISTROY", "10"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tsp.histroy") && stderr.contains("TAPIR_TSP__HISTROY"),
        "{stderr}"
    );

    // A nested value inside a list from one variable; the token is not echoed.
    let out = run(tapir().arg("check-config").arg(&config).env(
        "TAPIR_API__TOKENS",
        "[{name=\"crm\",token=\"0123456789abcdef-secret\",access=\"admin\"}]",
    ));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("api.tokens") && stderr.contains("TAPIR_API__TOKENS"),
        "{stderr}"
    );
    assert!(!stderr.contains("0123456789abcdef-secret"), "{stderr}");

    // `run` refuses the same, naming it, with the CLI's variables present.
    let out = run(with_cli_variables(
        tapir()
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("TAPIR_LOG__LEVEL", "[[["),
    ));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("TAPIR_LOG__LEVEL"), "{stderr}");
}

#[test]
fn other_tapir_variables_are_ignored_with_a_note() {
    let dir = tempfile::tempdir().expect("dir");
    let config = valid_config(dir.path());
    let out = run(tapir()
        .arg("check-config")
        .arg(&config)
        .env("TAPIR_HTTP_LISTEN", "127.0.0.1:1")
        .env("TAPIR_HOME", "/srv/tapir"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for name in ["TAPIR_HTTP_LISTEN", "TAPIR_HOME"] {
        assert!(
            stderr.contains(&format!("note: {name} is ignored")),
            "{stderr}"
        );
    }
}
