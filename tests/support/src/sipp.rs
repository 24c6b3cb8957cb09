//! SIPp running one scenario file on 127.0.0.1, as a server (UAS: it waits for our requests)
//! or a client (UAC: it sends to `remote`). Its files (error log, message trace, statistics)
//! go to a temporary folder of its own; when a test fails they are copied to
//! `$TMPDIR/tapir-sipp-failures/<name>` for the report.

use crate::ports::{free_port, wait_taken};
use crate::process::Guard;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// How to start SIPp; made by [`Sipp::builder`], started by [`SippBuilder::start`].
#[derive(Debug, Clone)]
pub struct SippBuilder {
    bin: PathBuf,
    scenario: PathBuf,
    name: String,
    remote: Option<String>,
    tcp: bool,
    calls: u32,
    port: Option<u16>,
    keys: Vec<(String, String)>,
    args: Vec<String>,
    trace_msg: bool,
    timeout: Duration,
}

impl SippBuilder {
    /// Runs `n` calls, then exits (`-m`; default 1).
    pub fn calls(mut self, n: u32) -> Self {
        self.calls = n;
        self
    }

    /// TCP (`-t t1`) instead of UDP (`-t u1`).
    pub fn tcp(mut self, tcp: bool) -> Self {
        self.tcp = tcp;
        self
    }

    /// Client mode: send to `addr` (`host:port`).
    pub fn remote(mut self, addr: impl Into<String>) -> Self {
        self.remote = Some(addr.into());
        self
    }

    /// Listen on this port instead of a free one (to restart a peer where it was).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// A scenario key (`-key NAME VALUE`, read as `[NAME]` in the scenario).
    pub fn key(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.keys.push((name.into(), value.into()));
        self
    }

    /// Further command-line arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Trace every message (`-trace_msg`; on by default, off for benchmarks).
    pub fn trace_msg(mut self, on: bool) -> Self {
        self.trace_msg = on;
        self
    }

    /// SIPp's own overall limit (`-timeout`, with `-timeout_error`; default 120 s).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// The name used in messages (default `sipp <scenario>`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Starts SIPp; a server is started once its port is bound.
    ///
    /// # Panics
    /// When the scenario cannot be copied or SIPp cannot be started (a broken test setup).
    pub fn start(self) -> Sipp {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("temporary folder for {}: {e}", self.name),
        };
        // SIPp names its log files after the scenario path: a copy keeps them in `dir`.
        let file_name = self
            .scenario
            .file_name()
            .map(|n| n.to_owned())
            .unwrap_or_else(|| "scenario.xml".into());
        let sf = dir.path().join(file_name);
        if let Err(e) = std::fs::copy(&self.scenario, &sf) {
            panic!("cannot copy {}: {e}", self.scenario.display());
        }
        let port = self.port.unwrap_or_else(free_port);
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(dir.path());
        if let Some(remote) = &self.remote {
            cmd.arg(remote);
        }
        cmd.arg("-sf")
            .arg(&sf)
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", &self.calls.to_string()])
            .args(["-t", if self.tcp { "t1" } else { "u1" }])
            .args(["-nostdin", "-trace_err", "-trace_stat"])
            .args(["-timeout", &format!("{}s", self.timeout.as_secs().max(1))])
            .arg("-timeout_error");
        if self.trace_msg {
            cmd.arg("-trace_msg");
        }
        for (k, v) in &self.keys {
            cmd.args(["-key", k, v]);
        }
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let guard = Guard::start(self.name.clone(), &mut cmd);
        let mut sipp = Sipp {
            guard,
            port,
            name: self.name,
            dir,
        };
        if self.remote.is_none() && !wait_taken(port, self.tcp, Duration::from_secs(10)) {
            let status = sipp.guard.try_status();
            panic!(
                "{} did not bind port {port} (status {status:?}):\n{}",
                sipp.name,
                sipp.errors()
            );
        }
        sipp
    }
}

/// A running SIPp, killed (with its process group) when dropped.
#[derive(Debug)]
pub struct Sipp {
    guard: Guard,
    port: u16,
    name: String,
    dir: tempfile::TempDir,
}

/// SIPp's call counters at the end of its run (from its `-trace_stat` file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SippStats {
    /// Calls created.
    pub created: u64,
    /// Calls that ran the scenario to its end.
    pub successful: u64,
    /// Calls that failed (unexpected message, timeout, ...).
    pub failed: u64,
}

impl Sipp {
    /// SIPp running `scenario` (a path to its XML file) with the binary `bin`.
    pub fn builder(bin: &Path, scenario: impl AsRef<Path>) -> SippBuilder {
        let scenario = scenario.as_ref().to_path_buf();
        let stem = scenario
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        SippBuilder {
            bin: bin.to_path_buf(),
            name: format!("sipp {stem}"),
            scenario,
            remote: None,
            tcp: false,
            calls: 1,
            port: None,
            keys: Vec::new(),
            args: Vec::new(),
            trace_msg: true,
            timeout: Duration::from_secs(120),
        }
    }

    /// Its SIP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its PID (for process accounting).
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// The folder with its logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for SIPp to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.guard.wait_exit(limit)
    }

    /// Waits for SIPp to finish its calls and asserts it exited 0 (every call ran its
    /// scenario to the end); shows its error log otherwise.
    ///
    /// # Panics
    /// When SIPp failed or did not exit within `limit`.
    pub fn assert_passed(&mut self, limit: Duration) {
        let status = self.wait_exit(limit);
        if status.is_some_and(|s| s.success()) {
            return;
        }
        panic!(
            "{} did not complete its scenario (status {status:?}; {:?}):\n{}",
            self.name,
            self.stats(),
            self.errors()
        );
    }

    /// The text of its error logs (and other `.log` files but the message trace).
    pub fn errors(&self) -> String {
        let mut logs = String::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.path()) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.contains("error") || (n.ends_with(".log") && !n.contains("_messages")) {
                    logs.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        logs
    }

    /// Its counters as last written (complete once it has exited).
    pub fn stats(&self) -> Option<SippStats> {
        let rd = std::fs::read_dir(self.dir.path()).ok()?;
        let csv = rd
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("_.csv"))?;
        parse_stats(&std::fs::read_to_string(csv).ok()?)
    }

    /// Stops SIPp now (a peer going away in the middle of a test).
    pub fn stop(&mut self) {
        self.guard.kill();
    }
}

/// Reads the last row of a `-trace_stat` CSV file.
fn parse_stats(text: &str) -> Option<SippStats> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let header: Vec<&str> = lines.first()?.split(';').collect();
    let last: Vec<&str> = lines.get(1..)?.last()?.split(';').collect();
    let row: HashMap<&str, &str> = header.into_iter().zip(last).collect();
    let num = |k: &str| row.get(k).and_then(|v| v.trim().parse().ok());
    Some(SippStats {
        created: num("TotalCallCreated")?,
        successful: num("SuccessfulCall(C)")?,
        failed: num("FailedCall(C)")?,
    })
}

impl Drop for Sipp {
    fn drop(&mut self) {
        self.guard.kill();
        if std::thread::panicking() {
            let keep = std::env::temp_dir()
                .join("tapir-sipp-failures")
                .join(self.name.replace([' ', '/'], "_"));
            let _ = std::fs::create_dir_all(&keep);
            if let Ok(rd) = std::fs::read_dir(self.dir.path()) {
                for e in rd.flatten() {
                    let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
                }
            }
            eprintln!("{}: logs kept in {}", self.name, keep.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_come_from_the_last_row() {
        let csv = "StartTime;TotalCallCreated;SuccessfulCall(P);SuccessfulCall(C);FailedCall(C)\n\
                   x;0;0;0;0\n\
                   y;5;1;4;1\n";
        assert_eq!(
            parse_stats(csv),
            Some(SippStats {
                created: 5,
                successful: 4,
                failed: 1
            })
        );
        assert_eq!(parse_stats("StartTime\n"), None);
    }

    #[test]
    fn a_client_and_a_server_run_sipps_builtin_scenarios() {
        let Some(bin) = crate::programs::sipp() else {
            return;
        };
        // SIPp's built-in scenarios, written out as files the way tests pass theirs.
        let dir = tempfile::tempdir().expect("dir");
        let dump = |name: &str| -> PathBuf {
            let out = Command::new(&bin)
                .args(["-sd", name])
                .output()
                .expect("sipp -sd");
            let path = dir.path().join(format!("{name}.xml"));
            std::fs::write(&path, out.stdout).expect("write scenario");
            path
        };
        let (uas, uac) = (dump("uas"), dump("uac"));
        let mut server = Sipp::builder(&bin, &uas).calls(2).start();
        let mut client = Sipp::builder(&bin, &uac)
            .remote(server.addr())
            .calls(2)
            .args(["-r", "10"])
            .start();
        client.assert_passed(Duration::from_secs(30));
        server.assert_passed(Duration::from_secs(30));
        let stats = client.stats().expect("client statistics");
        assert_eq!((stats.successful, stats.failed), (2, 0), "{stats:?}");
    }
}
