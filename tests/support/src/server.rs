//! Any server a test starts from configuration files it writes itself: Kamailio today; the DNS,
//! STUN and NATS servers later work adds go here the same way. The server runs in a temporary
//! folder of its own with its output in `server.log`, in its own process group (stopped with
//! its workers on drop), and counts as started once its port is bound.

use crate::ports::{tcp_taken, udp_taken};
use crate::process::Guard;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The file in the server's folder that receives its standard output and error.
pub const LOG: &str = "server.log";

/// When a started server is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// Once UDP port N on 127.0.0.1 is bound.
    Udp(u16),
    /// Once TCP port N on 127.0.0.1 is listening.
    Tcp(u16),
    /// At once.
    Started,
}

/// How to start a server; made by [`Server::builder`].
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    files: Vec<(String, String)>,
    ready: Ready,
    within: Duration,
}

impl ServerBuilder {
    /// Writes `text` to `file` in the server's folder before it starts; `{dir}` in the text
    /// stands for that folder.
    pub fn file(mut self, file: impl Into<String>, text: impl Into<String>) -> Self {
        self.files.push((file.into(), text.into()));
        self
    }

    /// Command-line arguments; `{dir}` in them stands for the server's folder.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// When the server counts as started (default: at once).
    pub fn ready(mut self, ready: Ready) -> Self {
        self.ready = ready;
        self
    }

    /// How long it may take to get ready (default 10 s).
    pub fn within(mut self, limit: Duration) -> Self {
        self.within = limit;
        self
    }

    /// Starts the server and waits until it is ready.
    ///
    /// # Panics
    /// When it cannot be started, exits before it is ready, or is not ready in time: the
    /// message carries its log.
    pub fn start(self) -> Server {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("temporary folder for {}: {e}", self.name),
        };
        let folder = dir.path().display().to_string();
        for (file, text) in &self.files {
            let text = text.replace("{dir}", &folder);
            if let Err(e) = std::fs::write(dir.path().join(file), text) {
                panic!("cannot write {file} for {}: {e}", self.name);
            }
        }
        let log = match std::fs::File::create(dir.path().join(LOG)) {
            Ok(f) => f,
            Err(e) => panic!("cannot create the log of {}: {e}", self.name),
        };
        let err = match log.try_clone() {
            Ok(f) => f,
            Err(e) => panic!("cannot share the log of {}: {e}", self.name),
        };
        let args: Vec<OsString> = self
            .args
            .iter()
            .map(|a| a.replace("{dir}", &folder).into())
            .collect();
        let mut cmd = Command::new(&self.program);
        cmd.current_dir(dir.path())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err));
        let guard = Guard::start(self.name.clone(), &mut cmd);
        let mut server = Server {
            guard,
            name: self.name,
            dir,
        };
        let end = Instant::now() + self.within;
        loop {
            let ready = match self.ready {
                Ready::Udp(p) => udp_taken(p),
                Ready::Tcp(p) => tcp_taken(p),
                Ready::Started => true,
            };
            if ready {
                return server;
            }
            if let Some(status) = server.guard.try_status() {
                panic!(
                    "{} exited at start ({status}):\n{}",
                    server.name,
                    server.log()
                );
            }
            if Instant::now() >= end {
                panic!(
                    "{} was not ready ({:?}) within {:?}:\n{}",
                    server.name,
                    self.ready,
                    self.within,
                    server.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running server, stopped with its process group when dropped.
#[derive(Debug)]
pub struct Server {
    guard: Guard,
    name: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// A server `name` run from `program`.
    pub fn builder(name: impl Into<String>, program: &Path) -> ServerBuilder {
        ServerBuilder {
            name: name.into(),
            program: program.to_path_buf(),
            args: Vec::new(),
            files: Vec::new(),
            ready: Ready::Started,
            within: Duration::from_secs(10),
        }
    }

    /// Its folder (configuration files, log, anything it writes there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(LOG)).unwrap_or_default()
    }

    /// Its PID (also its process group's id).
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Waits for it to exit by itself, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.guard.wait_exit(limit)
    }

    /// Stops it (and its workers) now.
    pub fn stop(&mut self) {
        self.guard.kill();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.guard.kill();
        if std::thread::panicking() {
            eprintln!("--- log of {} ---\n{}", self.name, self.log());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_reads_the_files_written_into_its_folder() {
        let server = Server::builder("echo-config", Path::new("/bin/sh"))
            .file("server.conf", "hello from the config in {dir}\n")
            .args(["-c", "cat {dir}/server.conf; exec sleep 60"])
            .start();
        let seen = crate::wait::until(Duration::from_secs(5), || {
            let folder = server.dir().display().to_string();
            server
                .log()
                .contains(&format!("hello from the config in {folder}"))
                .then_some(())
        });
        assert!(seen.is_some(), "{}", server.log());
    }

    #[test]
    #[should_panic(expected = "exited at start")]
    fn a_server_that_dies_at_start_is_reported_with_its_log() {
        let _ = Server::builder("broken", Path::new("/bin/sh"))
            .args(["-c", "echo cannot start; exit 3"])
            .ready(Ready::Udp(crate::ports::free_udp_port()))
            .start();
    }
}
