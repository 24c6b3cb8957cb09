//! Builds the TSP as a shared object and the C harness with the system C compiler, writes a
//! virtual-phone configuration, and runs the harness against the real library: the way the
//! Windows telephony service loads a `.tsp`, by export name, with the host inside. The
//! library's phone endpoint gets a fixed loopback port, which the harness uses to make the
//! example driver add, change and remove a line while TAPI's view of it is checked.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The harness gets this long; it needs about five seconds (an incoming call is scripted at
/// 2.5 s after the drivers start).
const DEADLINE: Duration = Duration::from_secs(90);

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

fn library(name: &str) -> PathBuf {
    target_dir().join("debug").join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// Builds the TSP library and the example driver (cargo releases its lock while tests run).
fn build_libraries() -> (PathBuf, PathBuf) {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "tapir-tspi",
            "-p",
            "tapir-example-virtual-phone",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the libraries failed");
    let tsp = library("tapir_tspi");
    let plugin = library("tapir_example_virtual_phone");
    assert!(tsp.exists(), "{} missing", tsp.display());
    assert!(plugin.exists(), "{} missing", plugin.display());
    (tsp, plugin)
}

fn compile_harness(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/tspi_harness.c");
    let exe = dir.join("tspi_harness");
    let out = Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-O1", "-o"])
        .arg(&exe)
        .arg(&source)
        .args(["-ldl", "-lpthread"])
        .output()
        .expect("the C compiler runs");
    assert!(
        out.status.success(),
        "compiling the harness failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// A loopback port that was free a moment ago, for the library's phone endpoint: the harness
/// must know where to send HTTP, so `127.0.0.1:0` will not do.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

fn write_config(dir: &Path, plugin: &Path, phones_port: u16) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugin dir");
    std::fs::copy(plugin, plugins.join(plugin.file_name().expect("file name"))).expect("copy");
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
incoming = [ {{ line = "101", after_ms = 2500, from = "0301234567", name = "Alice" }} ]
"#,
            plugins.display()
        ),
    )
    .expect("write config");
    config
}

/// Runs the harness with `TAPIR_CONFIG`; returns exit code (None: killed or signalled) and
/// stdout, stderr.
fn run_harness(
    exe: &Path,
    tsp: &Path,
    config: &Path,
    phones_port: u16,
) -> (Option<i32>, String, String) {
    let mut child = Command::new(exe)
        .arg(tsp)
        .env("TAPIR_CONFIG", config)
        .env("TSPI_HARNESS_PHONES_PORT", phones_port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("harness starts");
    let started = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    (status.and_then(|s| s.code()), stdout, stderr)
}

#[test]
fn the_c_harness_drives_the_library_like_tapisrv() {
    let (tsp, plugin) = build_libraries();
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = compile_harness(dir.path());
    let port = free_port();
    let config = write_config(dir.path(), &plugin, port);
    let (code, stdout, stderr) = run_harness(&exe, &tsp, &config, port);
    println!("{stdout}");
    assert_eq!(code, Some(0), "harness failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("HARNESS PASS"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    for rule in [
        "INITIALIZE_NEGOTIATION before providerInit",
        "DIALING -> RINGBACK -> CONNECTED",
        "the very next callback is LINE_CALLSTATE OFFERING",
        "every accepted request completed exactly once",
        "no callback after providerShutdown returned",
        "no callback was entered while another ran",
        "LINE_CREATE through the providerEnumDevices callback",
        "providerCreateLineDevice(temp id, 12)",
        "lineMakeCall on the new line: CONNECTED",
        "no LINE_LINEDEVSTATE while lineSetStatusMessages has not enabled it",
        "LINE_LINEDEVSTATE(OUTOFSERVICE)",
        "LINE_LINEDEVSTATE(INSERVICE)",
        "LINE_CLOSE on htLine 0x3333, then LINE_REMOVE(12)",
        "after LINE_REMOVE nothing more about the removed line or its call",
        "the removed device 12: negotiate, lineGetDevCaps and lineOpen are BADDEVICEID",
    ] {
        assert!(
            stdout.contains(rule),
            "check {rule:?} did not run:\n{stdout}"
        );
    }
}

#[test]
fn a_missing_configuration_is_refused_without_crashing() {
    let (tsp, _plugin) = build_libraries();
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = compile_harness(dir.path());
    let (code, stdout, _stderr) =
        run_harness(&exe, &tsp, &dir.path().join("absent.toml"), free_port());
    // Enumeration and init fail with LINEERR_NODEVICE; the harness stops there, normally.
    assert_eq!(code, Some(2), "{stdout}");
    assert!(stdout.contains("r=0x80000042"), "{stdout}");
    assert!(stdout.contains("INITIALIZE_NEGOTIATION before providerInit answers 2.2"));
}
