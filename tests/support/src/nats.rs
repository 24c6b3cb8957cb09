//! nats-server with JetStream on 127.0.0.1, its store in a temporary folder that outlives a
//! restart (stop, then start again on the same port with the same store: what a restarted
//! NATS looks like to its clients).

use crate::ports::free_tcp_port;
use crate::server::{Ready, Server};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A JetStream-enabled nats-server; stopped when dropped.
#[derive(Debug)]
pub struct Nats {
    bin: PathBuf,
    port: u16,
    store: tempfile::TempDir,
    server: Option<Server>,
}

impl Nats {
    /// Starts nats-server (`-js`) on a free port.
    ///
    /// # Panics
    /// When it does not start (the message carries its log).
    pub fn start(bin: &Path) -> Nats {
        let store = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("temporary folder for the NATS store: {e}"),
        };
        let mut nats = Nats {
            bin: bin.to_path_buf(),
            port: free_tcp_port(),
            store,
            server: None,
        };
        nats.restart();
        nats
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server now (its store stays).
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.stop();
        }
    }

    /// Starts the server again on the same port with the same store (stopping it first if it
    /// runs).
    ///
    /// # Panics
    /// When it does not start.
    pub fn restart(&mut self) {
        self.stop();
        let store = self.store.path().display().to_string();
        let server = Server::builder("nats-server", &self.bin)
            .args([
                "-a".to_owned(),
                "127.0.0.1".to_owned(),
                "-p".to_owned(),
                self.port.to_string(),
                "-js".to_owned(),
                "-sd".to_owned(),
                store,
            ])
            .ready(Ready::Tcp(self.port))
            .within(Duration::from_secs(20))
            .start();
        self.server = Some(server);
    }

    /// The server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Server::pid)
    }

    /// What the server printed so far (this start).
    pub fn log(&self) -> String {
        self.server.as_ref().map(Server::log).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_starts_and_restarts_on_its_port() {
        let Some(bin) = crate::programs::nats_server() else {
            return;
        };
        let mut nats = Nats::start(&bin);
        assert!(crate::ports::tcp_taken(nats.port()));
        nats.stop();
        assert!(crate::wait::until(Duration::from_secs(5), || {
            (!crate::ports::tcp_taken(nats.port())).then_some(())
        })
        .is_some());
        nats.restart();
        assert!(crate::ports::tcp_taken(nats.port()));
        assert!(nats.log().contains("JetStream"), "{}", nats.log());
    }
}
