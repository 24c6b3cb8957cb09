//! What the provider's integration tests share: building the libraries and the `tapir`
//! binary, compiling the C harness, free loopback ports, a `tapir run` daemon that is killed
//! when its guard goes (also on failure), and running the harness while answering its
//! "HOST stop" / "HOST start" requests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The API token the tests give the daemon and the provider.
pub const TOKEN: &str = "tsp-test-token-0123456789";

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

pub fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness")
}

fn library(name: &str) -> PathBuf {
    target_dir().join("debug").join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// Builds the provider, the example driver and the `tapir` binary (cargo releases its lock
/// while tests run). Returns (provider, plugin, tapir).
pub fn build() -> (PathBuf, PathBuf, PathBuf) {
    // Two runs: `--bin` would narrow the first one to binaries and skip the libraries.
    for args in [
        &[
            "build",
            "-p",
            "tapir-tspi",
            "-p",
            "tapir-example-virtual-phone",
        ][..],
        &["build", "-p", "tapir-host", "--bin", "tapir"][..],
    ] {
        let status = Command::new(env!("CARGO"))
            .args(args)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo {args:?} failed");
    }
    let tsp = library("tapir_tspi");
    let plugin = library("tapir_example_virtual_phone");
    let tapir = target_dir()
        .join("debug")
        .join(format!("tapir{}", std::env::consts::EXE_SUFFIX));
    for file in [&tsp, &plugin, &tapir] {
        assert!(file.exists(), "{} missing", file.display());
    }
    (tsp, plugin, tapir)
}

/// Compiles the harness with the system C compiler.
pub fn compile_harness(dir: &Path) -> PathBuf {
    let exe = dir.join("tspi_harness");
    let out = Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-O1", "-o"])
        .arg(&exe)
        .arg(harness_dir().join("tspi_harness.c"))
        .arg(harness_dir().join("compat_posix.c"))
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

/// A loopback port that was free a moment ago (the harness and the provider must know it
/// in advance, so `127.0.0.1:0` will not do).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Copies the example driver into `dir/plugins`; returns that folder.
pub fn plugin_dir(dir: &Path, plugin: &Path) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugin dir");
    std::fs::copy(plugin, plugins.join(plugin.file_name().expect("file name"))).expect("copy");
    plugins
}

/// A `tapir run` daemon serving the virtual phone on fixed loopback ports, killed on drop.
pub struct Daemon {
    tapir: PathBuf,
    config: PathBuf,
    pub api_port: u16,
    pub phones_port: u16,
    child: Option<Child>,
}

impl Daemon {
    /// Writes the daemon's configuration: lines 100, 101 and 102 ("Hidden"), MakeCall
    /// dialling for 1.5 s (so a request is still pending when the daemon is killed).
    pub fn new(tapir: &Path, dir: &Path, plugin: &Path) -> Self {
        let plugins = plugin_dir(dir, plugin);
        let (api_port, phones_port) = (free_port(), free_port());
        let config = dir.join("daemon.toml");
        std::fs::write(
            &config,
            format!(
                r#"plugin_dir = "{}"

[log]
level = "warn"

[http]
listen = "127.0.0.1:{api_port}"

[phones]
listen = "127.0.0.1:{phones_port}"

[[api.tokens]]
name = "workstation"
token = "{TOKEN}"
access = "control"

[drivers.office]
driver = "virtual-phone"
dial_ms = 1500
ring_ms = 100
lines = [ {{ key = "100", name = "Reception" }}, {{ key = "101", name = "Back office" }}, {{ key = "102", name = "Hidden" }} ]
"#,
                plugins.display().to_string().replace('\\', "/")
            ),
        )
        .expect("write daemon config");
        Self {
            tapir: tapir.to_owned(),
            config,
            api_port,
            phones_port,
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// Starts the daemon and waits until its API answers (bounded).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the daemon runs already");
        let child = Command::new(&self.tapir)
            .args(["run", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tapir run starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.api_port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the daemon did not listen on {} within 30 s", self.api_port);
    }

    /// Kills the daemon at once (SIGKILL: no orderly shutdown, as a crash or power loss).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a harness run printed and how it ended.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A child process killed on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `command` (the harness) for at most `deadline`, answering each "HOST stop" and
/// "HOST start" line on its stdout by calling `host` and then writing "ok" to its stdin.
pub fn run_harness(mut command: Command, deadline: Duration, mut host: impl FnMut(&str)) -> Run {
    let child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("harness starts");
    let mut guard = Guard(child);
    let mut stdin = guard.0.stdin.take().expect("stdin");
    let stdout = guard.0.stdout.take().expect("stdout");
    let stderr = guard.0.stderr.take().expect("stderr");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let started = Instant::now();
    let mut stdout = String::new();
    let code = loop {
        match lines.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_owned();
                if let Some(what) = line.strip_prefix("HOST ") {
                    host(what.trim());
                    let _ = writeln!(stdin, "ok");
                    let _ = stdin.flush();
                }
                stdout.push_str(&line);
                stdout.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if started.elapsed() > deadline {
                    break None;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Output closed: the harness is ending.
                let end = Instant::now() + Duration::from_secs(10);
                let status = loop {
                    if let Ok(Some(status)) = guard.0.try_wait() {
                        break status.code();
                    }
                    if Instant::now() > end {
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                break status;
            }
        }
    };
    drop(stdin);
    drop(guard);
    let stderr = err_reader.join().unwrap_or_default();
    Run {
        code,
        stdout,
        stderr,
    }
}

/// Asserts that the harness passed and that each named check ran.
pub fn assert_passed(run: &Run, rules: &[&str]) {
    println!("{}", run.stdout);
    assert_eq!(
        run.code,
        Some(0),
        "harness failed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stdout.contains("HARNESS PASS"), "{}", run.stdout);
    assert!(!run.stdout.contains("FAIL"), "{}", run.stdout);
    for rule in rules {
        assert!(
            run.stdout.contains(rule),
            "check {rule:?} did not run:\n{}",
            run.stdout
        );
    }
}

/// The checks every full run must have made, in both modes.
pub const COMMON_RULES: &[&str] = &[
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
];

/// The checks of the remote phase (host killed and started again).
pub const REMOTE_RULES: &[&str] = &[
    "remote: host lost -> LINE_LINEDEVSTATE(OUTOFSERVICE)",
    "remote: lineMakeCall 146 without a number on line 11: DIALTONE, completes 0",
    "remote: the pending lineDial 141 completed with an error",
    "remote: lineMakeCall while the host is away is refused at once",
    "remote: the call keeps its last state (CONNECTED) while the host is away",
    "remote: reconnected without restarting TAPISRV -> LINE_LINEDEVSTATE(INSERVICE)",
    "remote: the restarted host forgot the call: DISCONNECTED",
    "remote: a new call after the restart reaches CONNECTED",
    "remote: the request pending at the loss completed exactly once; the refused one never",
];
