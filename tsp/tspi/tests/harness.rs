//! Builds the TSP as a shared object and the C harness with the system C compiler, writes a
//! virtual-phone configuration, and runs the harness against the real library: the way the
//! Windows telephony service loads a `.tsp`, by export name, with the host inside. The
//! library's phone endpoint gets a fixed loopback port, which the harness uses to make the
//! example driver add, change and remove a line while TAPI's view of it is checked.

mod common;

use common::{build, compile_harness, free_port, plugin_dir, run_harness, Run, COMMON_RULES};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The harness gets this long; it needs a few seconds.
const DEADLINE: Duration = Duration::from_secs(90);

fn write_config(dir: &Path, plugin: &Path, phones_port: u16) -> std::path::PathBuf {
    let plugins = plugin_dir(dir, plugin);
    let config = dir.join("tapir.toml");
    std::fs::write(
        &config,
        format!(
            r#"plugin_dir = "{}"

[log]
level = "warn"

[phones]
listen = "127.0.0.1:{phones_port}"

[http]
enabled = false

[drivers.office]
driver = "virtual-phone"
dial_ms = 50
ring_ms = 100
lines = [ {{ key = "100", name = "Reception" }}, {{ key = "101", name = "Back office" }} ]
"#,
            plugins.display()
        ),
    )
    .expect("write config");
    config
}

/// Runs the harness with `TAPIR_CONFIG`.
fn run(exe: &Path, tsp: &Path, config: &Path, phones_port: u16) -> Run {
    let mut command = Command::new(exe);
    command
        .arg(tsp)
        .env("TAPIR_CONFIG", config)
        .env("TSPI_HARNESS_PHONES_PORT", phones_port.to_string());
    run_harness(command, DEADLINE, |what| panic!("unexpected HOST {what}"))
}

#[test]
fn the_c_harness_drives_the_library_like_tapisrv() {
    let (tsp, plugin, _) = build();
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = compile_harness(dir.path());
    let port = free_port();
    let config = write_config(dir.path(), &plugin, port);
    let run = run(&exe, &tsp, &config, port);
    common::assert_passed(&run, COMMON_RULES);
    assert!(
        !run.stdout.contains("remote:"),
        "the host-inside run has no remote phase"
    );
}

#[test]
fn a_missing_configuration_is_refused_without_crashing() {
    let (tsp, _plugin, _) = build();
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = compile_harness(dir.path());
    let run = run(&exe, &tsp, &dir.path().join("absent.toml"), free_port());
    // Enumeration and init fail with LINEERR_NODEVICE; the harness stops there, normally.
    assert_eq!(run.code, Some(2), "{}", run.stdout);
    assert!(run.stdout.contains("r=0x80000042"), "{}", run.stdout);
    assert!(run
        .stdout
        .contains("INITIALIZE_NEGOTIATION before providerInit answers 2.2"));
}
