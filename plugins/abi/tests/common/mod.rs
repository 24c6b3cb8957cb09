//! Shared helpers of the integration tests: finding (and building, if need be) the real plugin
//! libraries, and a recording sink.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};
use tapir_core::{CallId, DriverEvent, EventSink, Outcome, RequestId};

/// The package of the example plugin and its library's file stem.
pub const EXAMPLE: (&str, &str) = ("tapir-example-virtual-phone", "tapir_example_virtual_phone");
/// The package of the incompatible fixture and its library's file stem.
pub const BAD_ABI: (&str, &str) = ("tapir-fixture-bad-abi", "tapir_fixture_bad_abi");

/// The profile directory the test binary was built into (`target/debug`): the test executable
/// lives in its `deps/` folder. This respects `CARGO_TARGET_DIR` and `--release`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug"))
}

/// The path of a plugin library built from `package`, building it first.
///
/// Cargo does not build other packages' cdylibs for a test, so the test asks cargo for it:
/// `cargo build -p <package>` is a no-op when the library is up to date and keeps `cargo test`
/// working on a clean clone. Each package is built once per test binary.
pub fn library((package, stem): (&str, &str)) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    let profile = profile_dir();
    let file = profile.join(format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    if !built.iter().any(|p| p == package) {
        let target_dir = profile.parent().expect("target dir").to_path_buf();
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .arg("build")
            .arg("-p")
            .arg(package)
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match profile.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cargo.arg("--release");
            }
            Some(other) => {
                cargo.arg("--profile").arg(other);
            }
        }
        let status = cargo.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p {package} failed");
        built.push(package.to_owned());
    }
    assert!(file.is_file(), "{} was not built", file.display());
    file
}

/// A host sink that records everything and lets a test wait for what it expects.
#[derive(Default)]
pub struct Recorder {
    state: Mutex<Recorded>,
    changed: Condvar,
    next_call: Mutex<u64>,
}

/// What a [`Recorder`] saw.
#[derive(Default, Clone, Debug)]
pub struct Recorded {
    /// Events, in order, with the thread they arrived on.
    pub events: Vec<(DriverEvent, ThreadId)>,
    /// Completions, in order.
    pub completions: Vec<(RequestId, Outcome)>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            next_call: Mutex::new(1000),
            ..Self::default()
        })
    }

    /// A copy of what was recorded so far.
    pub fn snapshot(&self) -> Recorded {
        self.state.lock().unwrap().clone()
    }

    /// Waits (up to 5 s) until `done` holds for what was recorded, and returns it.
    pub fn wait_for(&self, what: &str, done: impl Fn(&Recorded) -> bool) -> Recorded {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut state = self.state.lock().unwrap();
        while !done(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}: {state:#?}");
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
        state.clone()
    }
}

impl EventSink for Recorder {
    fn event(&self, event: DriverEvent) {
        let thread = std::thread::current().id();
        self.state.lock().unwrap().events.push((event, thread));
        self.changed.notify_all();
    }

    fn complete(&self, request: RequestId, outcome: Outcome) {
        self.state
            .lock()
            .unwrap()
            .completions
            .push((request, outcome));
        self.changed.notify_all();
    }

    fn new_call_id(&self) -> CallId {
        let mut next = self.next_call.lock().unwrap();
        *next += 1;
        CallId(*next)
    }
}
