//! Helpers for the `tapir` binary's tests: the example plugin built and copied into a folder,
//! configuration files, and a child process that is always killed by PID.

#![allow(dead_code)]

pub mod cdp;
pub mod web;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// A child process killed by PID when dropped, also when the test fails.
pub struct Daemon {
    pub child: Child,
}

impl Daemon {
    pub fn spawn(cmd: &mut Command) -> Self {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tapir starts");
        Daemon { child }
    }

    /// Sends a signal and waits (bounded) for the exit; returns status and stderr.
    pub fn stop(mut self, signal: &str) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-s", signal, &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status.code();
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        (status, stderr)
    }
}

impl Daemon {
    /// Waits (bounded) for the process to exit by itself; its exit code, if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
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

/// The SIPp binary, when installed.
pub fn sipp() -> Option<PathBuf> {
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

/// SIPp as a UAS on loopback running `scenario` of a SIP plugin's test scenarios
/// (`plugins/{plugin}/tests/scenarios/{scenario}.xml`) once; killed by PID when dropped.
/// Returns the peer and its UDP port.
pub fn start_sipp(bin: &Path, plugin: &str, scenario: &str, dir: &Path) -> (Daemon, u16) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../plugins/{plugin}/tests/scenarios"))
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
    let peer = Daemon::spawn(&mut cmd);
    // SIPp binds at once; give it a moment before the first request arrives.
    std::thread::sleep(Duration::from_millis(300));
    (peer, port)
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
