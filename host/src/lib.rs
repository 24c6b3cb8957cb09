//! # tapir-host: the daemon behind the `tapir` binary
//!
//! - [`config`]: the configuration's typed shape, its layering (defaults < TOML < `TAPIR_`
//!   environment) and the embedded default;
//! - [`check`]: every problem of a configuration, with key path, line and column;
//! - [`catalog`]: the drivers this host can start, built-in or from the plugin folder;
//! - [`builtins`]: the built-in driver crates, named so the linker keeps them;
//! - [`host`]: a running host: the front end with the configured driver instances;
//! - [`embedded`]: a host inside another program (`tapir call`, the TSP library) with the
//!   phone-facing endpoint on a runtime of its own;
//! - [`http`]: both HTTP listeners (`[http]` plain or TLS, `[phones]`): one accept loop with
//!   timeouts, a connection cap and descriptor shedding against hostile clients;
//! - [`api`]: everything served there: the REST API, event stream, page, metrics;
//! - [`client`]: the HTTP client of the CLI commands that talk to a running host;
//! - [`cluster`]: several nodes acting as one host through NATS JetStream (`[cluster]`);
//! - [`secret`]: a string that is never printed (API tokens);
//! - [`logging`]: the tracing subscriber;
//! - [`numbers`]: the configured number plans, applied by the front end to every line;
//! - [`phones`]: the phone-facing callback endpoint, apart from the API;
//! - [`reload`]: re-reading the configuration of a running daemon (SIGHUP, `POST /v1/reload`);
//! - [`notify`]: readiness and reload notices to systemd (`Type=notify`);
//! - [`simulated`]: the built-in simulated office (driver `simulated`), what the embedded
//!   default runs;
//! - [`commands`]: one module per subcommand of `tapir`.
//!
//! Only this crate reads files, the environment, or signals.

#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]

pub mod api;
pub mod builtins;
pub mod catalog;
pub mod check;
pub mod client;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod embedded;
pub mod host;
pub mod http;
pub mod logging;
pub mod notify;
pub mod numbers;
pub mod phones;
pub mod reload;
pub mod secret;
pub mod simulated;
