//! Test helpers for the acd driver: SIPp and Kamailio as child processes on 127.0.0.1, killed by
//! PID when their guard drops (also when a test panics), and a sink that records what the
//! driver reports.
#![allow(dead_code)]

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tapir_core::*;

/// The first existing path, or `None` (the test prints SKIPPED and returns).
pub fn binary(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    let found = candidates.iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        eprintln!("SKIPPED: `{name}` is not installed (looked in {candidates:?})");
    }
    found
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

/// A port free for UDP and TCP on 127.0.0.1 (checked, then released).
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

fn wait_port_taken(port: u16) {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process, killed by PID when dropped.
pub struct Peer {
    pub child: Child,
    pub port: u16,
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl Peer {
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Asserts SIPp ended its scenario with exit 0 (else shows its error log).
    pub fn assert_passed(&mut self, limit: Duration) {
        let status = self.wait(limit);
        if status.is_some_and(|s| s.success()) {
            return;
        }
        let mut logs = String::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.path()) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.contains("error") || n.ends_with(".log") {
                    logs.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        panic!("{} did not pass (status {status:?}):\n{logs}", self.name);
    }
}

/// Starts the command in a process group of its own (its id is the child's PID), so that
/// [`Peer`]'s drop can stop the child *and* the workers it forked (Kamailio forks several;
/// killing only the main process would leave them running).
pub fn in_own_group(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
}

impl Drop for Peer {
    fn drop(&mut self) {
        // The child's own process group, by its id (the child's PID); a no-op for children
        // that share ours (kill refuses: no such group).
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SIPp running `scenario` (tests/scenarios/NAME.xml) as UAS for `calls` calls.
pub fn start_sipp(bin: &Path, scenario: &str, calls: u32, extra: &[&str]) -> Peer {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(format!("{scenario}.xml"));
    let sf = dir.path().join(format!("{scenario}.xml"));
    std::fs::copy(&src, &sf).expect("copy scenario");
    let port = free_port();
    let child = Command::new(bin)
        .current_dir(dir.path())
        .arg("-sf")
        .arg(&sf)
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-m",
            &calls.to_string(),
            "-t",
            "u1",
            "-nostdin",
            "-trace_err",
        ])
        .args([
            "-timeout",
            "120s",
            "-timeout_error",
            "-max_recv_loops",
            "100000",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sipp");
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EventSink for Recorder {
    fn event(&self, event: DriverEvent) {
        lock(&self.events).push(event);
        self.cv.notify_all();
    }
    fn complete(&self, request: RequestId, outcome: Outcome) {
        lock(&self.done).push((request, outcome));
        self.cv.notify_all();
    }
    fn new_call_id(&self) -> CallId {
        CallId(100_000 + self.next.fetch_add(1, Ordering::SeqCst))
    }
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    /// Waits until `f` holds over the events, at most `limit`.
    pub fn wait_for(&self, limit: Duration, what: &str, f: impl Fn(&[DriverEvent]) -> bool) {
        let end = Instant::now() + limit;
        let mut ev = lock(&self.events);
        loop {
            if f(&ev) {
                return;
            }
            let now = Instant::now();
            assert!(now < end, "timed out waiting for {what}; events: {:?}", *ev);
            ev = self
                .cv
                .wait_timeout(ev, end - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub fn wait_complete(&self, id: RequestId, limit: Duration) -> Outcome {
        let end = Instant::now() + limit;
        let mut done = lock(&self.done);
        loop {
            if let Some((_, o)) = done.iter().find(|(r, _)| *r == id) {
                return o.clone();
            }
            let now = Instant::now();
            assert!(now < end, "request {id} not completed in {limit:?}");
            done = self
                .cv
                .wait_timeout(done, end - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub fn completions_of(&self, id: RequestId) -> usize {
        lock(&self.done).iter().filter(|(r, _)| *r == id).count()
    }

    pub fn states(&self, call: CallId) -> Vec<CallState> {
        lock(&self.events)
            .iter()
            .filter_map(|e| match e {
                DriverEvent::CallState { call: c, state, .. } if *c == call => Some(*state),
                _ => None,
            })
            .collect()
    }

    pub fn wait_state(&self, call: CallId, want: CallState, limit: Duration) {
        self.wait_for(limit, &format!("{call} {want:?}"), |ev| {
            ev.iter().any(|e| matches!(e, DriverEvent::CallState { call: c, state, .. } if *c == call && *state == want))
        });
    }

    pub fn count(&self, f: impl Fn(&DriverEvent) -> bool) -> usize {
        lock(&self.events).iter().filter(|e| f(e)).count()
    }

    /// The first NewCall: (line, call, info).
    pub fn new_calls(&self) -> Vec<(LineKey, CallId, CallInfo)> {
        lock(&self.events)
            .iter()
            .filter_map(|e| match e {
                DriverEvent::NewCall {
                    line, call, info, ..
                } => Some((line.clone(), *call, info.clone())),
                _ => None,
            })
            .collect()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub fn rid() -> RequestId {
    RequestId(NEXT_ID.fetch_add(1, Ordering::SeqCst))
}

pub fn submit(
    driver: &dyn PhoneDriver,
    line: &str,
    request: Request,
) -> Result<RequestId, DriverError> {
    let id = rid();
    driver
        .submit(RequestEnvelope {
            id,
            line: LineKey::new(line),
            request,
        })
        .map(|()| id)
}

pub fn make_call(driver: &dyn PhoneDriver, line: &str, call: u64, dest: &str) -> RequestId {
    submit(
        driver,
        line,
        Request::MakeCall {
            call: CallId(call),
            address: AddressId(0),
            destination: Some(dest.into()),
        },
    )
    .expect("MakeCall accepted")
}

pub fn drop_call(driver: &dyn PhoneDriver, line: &str, call: u64) -> RequestId {
    submit(driver, line, Request::Drop { call: CallId(call) }).expect("Drop accepted")
}

pub fn transfer(driver: &dyn PhoneDriver, line: &str, call: u64, to: &str) -> RequestId {
    submit(
        driver,
        line,
        Request::BlindTransfer {
            call: CallId(call),
            destination: to.into(),
        },
    )
    .expect("BlindTransfer accepted")
}

/// Builds the acd driver with a JSON config.
pub fn build(config: &serde_json::Value, sink: Arc<Recorder>) -> Box<dyn PhoneDriver> {
    let _ = tapir_plugin_acd::config::EXAMPLE;
    let d = builtin_driver("acd").expect("acd registered");
    (d.build)(&config.to_string(), sink).expect("driver builds")
}
