//! A child process in a process group of its own, stopped with every process it forked when
//! its guard drops, also while a failing test unwinds.
//!
//! Processes are only ever stopped by their own id (the group's id is the child's PID): never
//! by name, so servers other tests or other people run are never touched.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running child process that is killed (with its process group) when dropped.
#[derive(Debug)]
pub struct Guard {
    child: Child,
    name: String,
}

impl Guard {
    /// Starts `cmd` in a new process group whose id is the child's PID.
    ///
    /// # Errors
    /// The spawn error, with the program's name.
    pub fn spawn(name: impl Into<String>, cmd: &mut Command) -> io::Result<Guard> {
        let name = name.into();
        let child = cmd
            .process_group(0)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {name}: {e}")))?;
        Ok(Guard { child, name })
    }

    /// Like [`Guard::spawn`], for tests: a program that cannot start is a failed test.
    pub fn start(name: impl Into<String>, cmd: &mut Command) -> Guard {
        match Guard::spawn(name, cmd) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    /// The name given at start (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's PID (also its process group's id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child, for its pipes.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Its exit status if it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit by itself, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (a name such as `TERM` or `INT`) to the child process only.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Stops the whole process group now and reaps the child: SIGTERM first (a server's main
    /// process then reaps its workers), SIGKILL to whatever is left after a short grace.
    pub fn kill(&mut self) {
        if self.try_status().is_none() {
            group_signal(self.child.id(), "TERM");
            let _ = self.wait_exit(TERM_GRACE);
        }
        // The group (workers that outlived the child, or ignored TERM), then the child in
        // case it left its group. `Child::kill` does nothing to a child already reaped.
        group_signal(self.child.id(), "KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a process may take to end after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(1);

/// Sends `signal` to process group `pgid`.
fn group_signal(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: &str) -> bool {
        Command::new("kill")
            .args(["-0", pid])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn drop_stops_the_child_and_what_it_forked() {
        // A shell that forks a sleeper and reports its PID, then waits.
        let dir = tempfile::tempdir().expect("dir");
        let pidfile = dir.path().join("pid");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("sleep 300 & echo $! > {}; wait", pidfile.display()));
        let guard = Guard::start("sh", &mut cmd);
        let grandchild = crate::wait::until(Duration::from_secs(10), || {
            std::fs::read_to_string(&pidfile)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .expect("the shell wrote its child's pid");
        assert!(alive(&grandchild));
        drop(guard);
        let gone = crate::wait::until(Duration::from_secs(10), || {
            (!alive(&grandchild)).then_some(())
        });
        assert!(gone.is_some(), "the forked sleeper survived the guard");
    }

    #[test]
    fn a_panicking_test_still_stops_its_server() {
        let dir = tempfile::tempdir().expect("dir");
        let pidfile = dir.path().join("pid");
        let path = pidfile.clone();
        let result = std::panic::catch_unwind(move || {
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(format!("echo $$ > {}; exec sleep 300", path.display()));
            let _guard = Guard::start("sleeper", &mut cmd);
            crate::wait::until(Duration::from_secs(10), || {
                std::fs::metadata(&path).ok().filter(|m| m.len() > 0)
            });
            panic!("the test failed");
        });
        assert!(result.is_err());
        let pid = std::fs::read_to_string(&pidfile).expect("pid written");
        let gone = crate::wait::until(Duration::from_secs(10), || {
            (!alive(pid.trim())).then_some(())
        });
        assert!(gone.is_some(), "the server outlived the panicking test");
    }
}
