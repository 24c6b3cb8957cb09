//! Helpers for the `tapir` binary's tests: the example plugin built and copied into a folder,
//! configuration files, the daemon as a child process that is always stopped, and SIPp running
//! the SIP plugins' scenarios. Processes, ports and SIPp come from `tapir-test-support`.

#![allow(dead_code, unused_imports)]

pub mod cdp;
pub mod cluster;
pub mod web;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
pub use tapir_test_support::{sipp, Guard, Sipp};

pub fn tapir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tapir"))
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A library of this workspace, built (or found up to date) by cargo first.
pub fn library(package: &str) -> PathBuf {
    let lib = target_dir().join("debug").join(format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        package.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    ));
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", package])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {package} failed");
    lib
}

/// The example driver library.
pub fn example_library() -> PathBuf {
    library("tapir-example-virtual-phone")
}

/// A library built against an incompatible plugin interface.
pub fn bad_abi_library() -> PathBuf {
    library("tapir-fixture-bad-abi")
}

/// A fresh folder holding only the example plugin.
pub fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let lib = example_library();
    std::fs::copy(&lib, dir.path().join(lib.file_name().expect("file name"))).expect("copy plugin");
    dir
}

pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("tapir.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("tapir runs")
}

/// The `tapir` daemon (or another child with piped output), in its own process group, killed
/// when dropped, also when the test fails.
pub struct Daemon {
    pub guard: Guard,
}

impl Daemon {
    pub fn spawn(cmd: &mut Command) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        Daemon {
            guard: Guard::start("tapir", cmd),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// The child, for its pipes.
    pub fn child(&mut self) -> &mut std::process::Child {
        self.guard.child_mut()
    }

    /// Sends a signal and waits (bounded) for the exit; returns status and stderr.
    pub fn stop(mut self, signal: &str) -> (Option<i32>, String) {
        self.guard.signal(signal);
        let status = self
            .guard
            .wait_exit(Duration::from_secs(15))
            .and_then(|s| s.code());
        let mut stderr = String::new();
        if let Some(mut err) = self.guard.child_mut().stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        (status, stderr)
    }

    /// Waits (bounded) for the process to exit by itself; its exit code, if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        self.guard.wait_exit(limit).and_then(|s| s.code())
    }
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    tapir_test_support::free_tcp_port()
}

/// Polls `url` with a plain HTTP/1.0 GET until it answers or the deadline passes.
pub fn http_get(addr: &str, path: &str, within: Duration) -> Option<String> {
    use std::io::Write;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
            let mut out = String::new();
            if s.read_to_string(&mut out).is_ok() && !out.is_empty() {
                return Some(out);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// SIPp as a UAS on loopback running `scenario` of a SIP plugin's test scenarios
/// (`plugins/{plugin}/tests/scenarios/{scenario}.xml`) once; stopped when dropped.
pub fn start_sipp(bin: &Path, plugin: &str, scenario: &str) -> Sipp {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../plugins/{plugin}/tests/scenarios"))
        .join(format!("{scenario}.xml"));
    Sipp::builder(bin, file)
        .timeout(Duration::from_secs(60))
        .trace_msg(false)
        .start()
}

/// The call states in `tapir call`'s JSON lines, in order.
pub fn call_states(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "call_state")
        .map(|e| e["state"]["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}
