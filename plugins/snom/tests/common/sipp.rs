//! SIPp as a real peer: started on 127.0.0.1 with a scenario from `tests/scenarios`, killed by
//! PID (its process group first) when the guard drops, also when the test fails. A test that
//! finds no SIPp prints `SKIPPED: …` and returns (`.ci/run` installs it).

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The SIPp binary, or `None` after printing why the test is skipped.
pub fn binary() -> Option<PathBuf> {
    let found = ["/usr/bin/sipp", "/usr/local/bin/sipp"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        eprintln!("SKIPPED: sipp is not installed (apt-get install sipp)");
    }
    found
}

/// A UDP port free on 127.0.0.1 (and its TCP twin), checked then released.
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

/// A running SIPp.
pub struct Sipp {
    child: Child,
    /// Its UDP port.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Sipp {
    /// Starts SIPp as a UAS with `scenario` for one call.
    pub fn uas(bin: &Path, scenario: &str) -> Sipp {
        let dir = tempfile::tempdir().expect("temp dir");
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/scenarios")
            .join(format!("{scenario}.xml"));
        let sf = dir.path().join(format!("{scenario}.xml"));
        std::fs::copy(&src, &sf).expect("copy the scenario");
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .arg("-sf")
            .arg(&sf)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
            .args(["-t", "u1", "-nostdin", "-trace_err", "-trace_msg"])
            .args(["-timeout", "60s", "-timeout_error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("spawn sipp");
        let sipp = Sipp { child, port, dir };
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
        sipp
    }

    /// Waits for SIPp to finish its scenario and asserts it passed (exit 0), showing its
    /// error log and messages otherwise.
    pub fn passed(&mut self, limit: Duration) {
        let end = Instant::now() + limit;
        let mut status = None;
        while Instant::now() < end {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        if status.is_some_and(|s| s.success()) {
            return;
        }
        let mut logs = String::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.path()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".log") {
                    logs.push_str(&format!("--- {name}\n"));
                    logs.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        panic!("SIPp did not pass its scenario (status {status:?}):\n{logs}");
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        // By id only: the child's process group, then the child.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // Keep SIPp's traces for the failure report.
            let keep = std::env::temp_dir().join("tapir-snom-sipp-failures");
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
