//! # tapir-snom-sim: simulated snom desk phones for tests and benchmarks
//!
//! Each simulated phone is an HTTP server on a loopback port that behaves as
//! `shared/spec/snom.md` describes:
//! - one request at a time (a second, parallel request waits and is counted as a violation,
//!   so tests can assert that a client never sends two at once);
//! - HTTP, or HTTPS with a fresh self-signed certificate ([`SimConfig::tls`]);
//! - Basic or Digest authentication; with Digest, the third wrong password locks the phone
//!   (every request gets 403 until [`SimPhone::unlock`]); a `Server: snom embedded` header;
//! - `command.htm` (`key=`, `number=`, `key_dtmf=`; or refused with a status,
//!   [`SimPhone::refuse_commands`]), `dummy.htm?settings=save&…`, a settings
//!   dump at `/settings.xml`, CSTA `SnapshotDevice` and call control ([`csta`]) at `/csta`,
//!   a title page at `/`;
//! - call state kept per phone, Action URLs fired (in order) at the URLs written into its
//!   settings, with run-time variable substitution and the quirks: a rejected call fires
//!   `disconnected` twice, `onhook` carries no call data, a call nobody answered ends
//!   `disconnected` then `missed`;
//! - identities 2, 3, … ([`SimConfig::more_identities`]), what the far end of an outgoing call
//!   does scripted per number ([`Outcome`]: answer, busy, decline, no answer, unreachable),
//!   reboots ([`SimPhone::reboot`]: CSTA ids from 1 again, 503 meanwhile, then `setup` and
//!   `log_on`), a Digest lock-out that ends after a while ([`SimConfig::lockout`]);
//! - a uaCSTA SIP side ([`SimConfig::sip`], [`sip`]): it takes (or refuses, or challenges) the
//!   CSTA session INVITE, answers CSTA requests in INFO and, after `MonitorStart`, sends CSTA
//!   events in INFO along with the Action URLs.
//!
//! Many phones live in one process on one runtime ([`Sim`]); each has its own listener
//! (10,000 phones = 10,000 loopback ports, which the benchmark uses).
//!
//! Map: [`phone`] holds the state and the test controls, `keys` the key state machine and
//! dialling, [`server`] the HTTP side, [`sip`] the SIP side, [`csta`] CSTA requests and
//! events, [`fire`] the reports to the host, [`auth`] Basic/Digest.

pub mod auth;
pub mod config;
pub mod csta;
pub mod fire;
mod keys;
pub mod phone;
pub mod server;
pub mod sip;

pub use phone::{Outcome, SimCall, SimCallState, SimConfig, SimPhone, SimSip};

use std::sync::Arc;

/// A set of simulated phones sharing one runtime.
pub struct Sim {
    runtime: tokio::runtime::Runtime,
    /// Bounds the Action URL requests in flight from all phones of this simulator together
    /// (10,000 phones firing at once would otherwise need 20,000 sockets in one process).
    firing: Arc<tokio::sync::Semaphore>,
}

impl Sim {
    /// A simulator with its own runtime (`threads` workers).
    ///
    /// # Errors
    /// When the runtime cannot be built.
    pub fn new(threads: usize) -> std::io::Result<Sim> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("snom-sim")
            .enable_all()
            .build()?;
        Ok(Sim {
            runtime,
            firing: Arc::new(tokio::sync::Semaphore::new(256)),
        })
    }

    /// Starts a phone on `127.0.0.1:0` (or the address in `config`).
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub fn phone(&self, config: SimConfig) -> std::io::Result<Arc<SimPhone>> {
        self.runtime.block_on(SimPhone::start(
            config,
            self.runtime.handle().clone(),
            Arc::clone(&self.firing),
        ))
    }

    /// The runtime's handle.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.handle().clone()
    }
}
