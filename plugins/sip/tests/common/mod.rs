//! Test helpers: real SIP peers (SIPp, Kamailio) started as child processes on 127.0.0.1 and
//! always killed by PID when their guard drops, and a recording `EventSink`.
#![allow(dead_code)]

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tapir_core::*;

/// Where a binary is, or `None` (then the test prints why and skips).
pub fn binary(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    for c in candidates {
        if Path::new(c).exists() {
            return Some(PathBuf::from(c));
        }
    }
    eprintln!("SKIPPED: `{name}` is not installed (looked in {candidates:?}); install it to run this test");
    None
}

pub fn sipp() -> Option<PathBuf> {
    binary("sipp", &["/usr/bin/sipp", "/usr/local/bin/sipp"])
}

pub fn kamailio() -> Option<PathBuf> {
    binary(
        "kamailio",
        &["/usr/sbin/kamailio", "/usr/local/sbin/kamailio"],
    )
}

/// A port free for both UDP and TCP on 127.0.0.1 (checked, then released).
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let Ok(u) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = u.local_addr() else { continue };
        if TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free port on 127.0.0.1");
}

/// A child process killed by PID when dropped (also when the test panics).
pub struct Peer {
    pub child: Child,
    pub port: u16,
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl Peer {
    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }

    /// Waits for SIPp to finish its scenario and asserts it succeeded (exit 0); prints its
    /// error log otherwise.
    pub fn assert_scenario_passed(&mut self, limit: Duration) {
        let status = self.wait(limit);
        if status.is_some_and(|s| s.success()) {
            return;
        }
        let mut logs = String::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.path()) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().contains("error") {
                    logs.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        panic!(
            "{} did not complete its scenario (status {status:?}); errors:\n{logs}",
            self.name
        );
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // By id only, never by name: the child's own process group when it has one (Kamailio's
        // workers), then the child itself.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // Keep SIPp's traces for the failure report.
            let keep = std::env::temp_dir()
                .join("tapir-sipp-failures")
                .join(self.name.replace(' ', "_"));
            let _ = std::fs::create_dir_all(&keep);
            if let Ok(rd) = std::fs::read_dir(self.dir.path()) {
                for e in rd.flatten() {
                    let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
                }
            }
            eprintln!("SIPp traces kept in {}", keep.display());
        }
    }
}

fn wait_port_taken(port: u16) {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts SIPp as a UAS running `scenario` (a file in tests/scenarios) for `calls` calls.
pub fn start_sipp(bin: &Path, scenario: &str, tcp: bool, calls: u32, extra: &[&str]) -> Peer {
    start_sipp_with(bin, scenario, tcp, calls, extra, true)
}

/// Like [`start_sipp`]; `trace` adds `-trace_msg` (off for benchmarks).
pub fn start_sipp_with(
    bin: &Path,
    scenario: &str,
    tcp: bool,
    calls: u32,
    extra: &[&str],
    trace: bool,
) -> Peer {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(format!("{scenario}.xml"));
    let sf = dir.path().join(format!("{scenario}.xml"));
    std::fs::copy(&src, &sf).expect("copy scenario");
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir.path())
        .arg("-sf")
        .arg(&sf)
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            &calls.to_string(),
        ])
        .args(["-t", if tcp { "t1" } else { "u1" }])
        .args([
            "-nostdin",
            "-trace_err",
            "-timeout",
            "300s",
            "-timeout_error",
        ])
        .args(if trace { &["-trace_msg"][..] } else { &[][..] })
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().expect("spawn sipp");
    let peer = Peer {
        child,
        port,
        name: format!("sipp {scenario}"),
        dir,
    };
    wait_port_taken(port);
    peer
}

/// Records everything a driver reports.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<DriverEvent>>,
    pub done: Mutex<Vec<(RequestId, Outcome)>>,
    cv: Condvar,
    next: AtomicU64,
}

impl EventSink for Recorder {
    fn event(&self, event: DriverEvent) {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event);
        self.cv.notify_all();
    }
    fn complete(&self, request: RequestId, outcome: Outcome) {
        self.done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((request, outcome));
        self.cv.notify_all();
    }
    fn new_call_id(&self) -> CallId {
        CallId(1000 + self.next.fetch_add(1, Ordering::SeqCst))
    }
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    pub fn wait_complete(&self, id: RequestId, limit: Duration) -> Outcome {
        let end = Instant::now() + limit;
        let mut done = self
            .done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some((_, o)) = done.iter().find(|(r, _)| *r == id) {
                return o.clone();
            }
            let now = Instant::now();
            assert!(
                now < end,
                "request {id} not completed within {limit:?}; states: {:?}",
                self.all_states()
            );
            done = self
                .cv
                .wait_timeout(done, end - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    pub fn completions_of(&self, id: RequestId) -> usize {
        self.done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(r, _)| *r == id)
            .count()
    }

    pub fn states(&self, call: CallId) -> Vec<CallState> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(|e| match e {
                DriverEvent::CallState { call: c, state, .. } if *c == call => Some(*state),
                _ => None,
            })
            .collect()
    }

    pub fn all_states(&self) -> Vec<(CallId, CallState)> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(|e| match e {
                DriverEvent::CallState { call, state, .. } => Some((*call, *state)),
                _ => None,
            })
            .collect()
    }

    pub fn wait_state(&self, call: CallId, want: CallState, limit: Duration) {
        let end = Instant::now() + limit;
        let mut ev = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            let seen = ev.iter().any(|e| matches!(e, DriverEvent::CallState { call: c, state, .. } if *c == call && *state == want));
            if seen {
                return;
            }
            let now = Instant::now();
            assert!(now < end, "call {call} never reached {want:?}");
            ev = self
                .cv
                .wait_timeout(ev, end - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    pub fn lines(&self) -> Vec<LineInfo> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(|e| match e {
                DriverEvent::LineCreated { info } => Some(info.clone()),
                _ => None,
            })
            .collect()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub fn rid() -> RequestId {
    RequestId(NEXT_ID.fetch_add(1, Ordering::SeqCst))
}

pub fn make_call(driver: &dyn PhoneDriver, line: &str, call: u64, dest: &str) -> RequestId {
    let id = rid();
    driver
        .submit(RequestEnvelope {
            id,
            line: LineKey::new(line),
            request: Request::MakeCall {
                call: CallId(call),
                address: AddressId(0),
                destination: Some(dest.into()),
            },
        })
        .expect("MakeCall accepted");
    id
}

pub fn drop_call(driver: &dyn PhoneDriver, line: &str, call: u64) -> RequestId {
    let id = rid();
    driver
        .submit(RequestEnvelope {
            id,
            line: LineKey::new(line),
            request: Request::Drop { call: CallId(call) },
        })
        .expect("Drop accepted");
    id
}

/// Builds a built-in driver by name with a JSON config.
pub fn build(name: &str, config: &serde_json::Value, sink: Arc<Recorder>) -> Box<dyn PhoneDriver> {
    // Make sure the plugin crate is linked so its inventory entries exist.
    let _ = tapir_plugin_sip::config::EXAMPLE;
    let d = builtin_driver(name).expect("driver registered");
    (d.build)(&config.to_string(), sink).expect("driver builds")
}
