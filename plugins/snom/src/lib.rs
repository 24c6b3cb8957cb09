//! # tapir-plugin-snom: the built-in `snom` driver
//!
//! Controls snom desk phones over their web server (HTTP or HTTPS, Basic or Digest), learns
//! call states from the phones' Action URLs, and configures the phones itself.
//!
//! Map of the crate:
//! - [`config`]: the typed, documented configuration ([`SnomConfig`]);
//! - [`secret`]: [`Secret`], passwords that never print;
//! - [`action`]: Action URLs written and callbacks parsed (sans I/O);
//! - [`calls`]: the per-phone call tracker (sans I/O);
//! - [`command`]: the route table: which HTTP requests carry out an operation (sans I/O);
//! - [`settings`]: settings dumps, required settings, mass-configuration XML (sans I/O);
//! - [`csta`]: CSTA XML services and answers (sans I/O), for HTTP and SIP;
//! - [`uacsta`]: uaCSTA over SIP (ECMA TR/87): the session with the phone, on tapir's own SIP
//!   user agent;
//! - [`store`]: the small state file (wrong Digest logins per phone);
//! - [`discovery`]: address ranges and recognising a snom web server;
//! - [`http`]: the HTTP(S) client;
//! - `phone`: one phone's state and job queue;
//! - [`driver`]: the [`SnomDriver`] and its runtime;
//! - [`mass_config`]: the files of `tapir snom mass-config`.

pub mod action;
pub mod calls;
pub mod command;
pub mod config;
pub mod csta;
pub mod discovery;
pub mod driver;
pub mod http;
pub mod mass_config;
mod phone;
pub mod secret;
pub mod settings;
pub mod store;
pub mod uacsta;

pub use config::{SnomConfig, EXAMPLE_CONFIG};
pub use driver::SnomDriver;
pub use secret::Secret;

use tapir_core::{DriverError, ErrorKind, PhoneDriver, SharedSink};

/// The driver's name in the host configuration (`driver = "snom"`).
pub const NAME: &str = "snom";

/// Checks a configuration section (JSON).
///
/// # Errors
/// A sentence naming what is wrong.
pub fn validate(config: &str) -> Result<(), String> {
    SnomConfig::parse(config)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Builds a snom driver from its configuration section (JSON).
///
/// # Errors
/// `InvalidParameter` for a bad configuration; `Uninitialized` if the runtime cannot start.
pub fn build(config: &str, sink: SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError> {
    let config = SnomConfig::parse(config)
        .map_err(|e| DriverError::new(ErrorKind::InvalidParameter, e.to_string()))?;
    Ok(Box::new(SnomDriver::start(config, sink)?))
}

/// Referenced by the host so the linker keeps this crate and its registration.
pub fn link() {}

tapir_core::inventory::submit! {
    tapir_core::DriverDescriptor {
        name: NAME,
        summary: "snom desk phones: control over their web server, call state from Action URLs, auto-configuration.",
        version: env!("CARGO_PKG_VERSION"),
        example_config: EXAMPLE_CONFIG,
        validate,
        build,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn example_validates_and_is_registered() {
        assert_eq!(super::validate(super::EXAMPLE_CONFIG), Ok(()));
        assert!(tapir_core::builtin_driver("snom").is_some());
    }
}
