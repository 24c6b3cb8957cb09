//! Test support shared by tapir's crates (a dev-dependency only): real servers started by the
//! tests on loopback and always stopped, by process group, when their guard drops (also when a
//! test panics).
//!
//! - [`process::Guard`]: any child process, in a process group of its own, killed with all
//!   the processes it forked on drop.
//! - [`programs`]: where a program is installed; `None` after printing `SKIPPED: ...` so the
//!   test can return.
//! - [`ports`]: ports free at run time on 127.0.0.1 (never fixed ports: tests of other crates
//!   run at the same time), and waiting until a server has bound one.
//! - [`sipp::Sipp`]: SIPp running a scenario file, its exit, error log and statistics.
//! - [`server::Server`]: any server started from configuration files written by the test
//!   (Kamailio, and the DNS, STUN or NATS servers later work adds), with its log.
//! - [`kamailio`]: Kamailio on a [`server::Server`], with TLS when asked.
//! - [`coturn::Coturn`]: coturn as a STUN server.
//! - [`pki::Pki`]: a test CA and the certificates it issues, as PEM files.
//! - [`middlebox`]: a UDP NAT on loopback.
//! - [`dns::Dns`]: a DNS server (unbound) serving zones the test writes, on a free port.
//! - [`nats::Nats`]: nats-server with JetStream, restartable on the same port and store.
//! - [`relay::Relay`]: a TCP relay a test can cut (a client isolated from its server) or turn
//!   into a black hole (a NAT that forgot its binding).
//! - [`recorder::Recorder`]: an `EventSink` that records what a driver reports, and helpers
//!   to submit requests to a driver directly.
//! - [`wait::until`]: polling with a deadline.
//! - [`docs`]: a README's TOML example as the section a driver gets, and the keys it names.
//! - [`callbacks::PhoneCallbacks`]: the host's phone-facing endpoint for tests that run a
//!   driver without the host (snom Action URLs reach the driver's `http_callback`), and
//!   [`callbacks::Shared`] to keep a driver the front end holds.

pub mod callbacks;
pub mod coturn;
pub mod dns;
pub mod docs;
pub mod kamailio;
pub mod middlebox;
pub mod nats;
pub mod pki;
pub mod ports;
pub mod process;
pub mod programs;
pub mod recorder;
pub mod relay;
pub mod server;
pub mod sipp;
pub mod wait;

pub use callbacks::PhoneCallbacks;
pub use coturn::Coturn;
pub use dns::Dns;
pub use kamailio::Kamailio;
pub use middlebox::UdpNat;
pub use nats::Nats;
pub use pki::{Identity, Pki};
pub use ports::{free_port, free_tcp_port, free_udp_port};
pub use process::Guard;
pub use programs::{kamailio, kamailio_tls, nats_server, program, sipp, turnserver, unbound};
pub use recorder::Recorder;
pub use relay::Relay;
pub use server::Server;
pub use sipp::{Sipp, SippStats};
