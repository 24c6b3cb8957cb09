//! # virtual-phone: a tapir driver plugin with simulated phones
//!
//! Two uses:
//! - a **virtual phone** for testing TAPI applications without hardware: lines that dial,
//!   ring, connect, hang up, take scripted incoming calls, hold, transfer, forward and do
//!   not disturb, with configurable timings;
//! - the **example to copy** for an out-of-tree driver: an ordinary
//!   [`tapir_core::PhoneDriver`] exported as a `cdylib` with one
//!   [`tapir_plugin_abi::export_driver!`] call. See `README.md` next to this crate.
//!
//! Map of the crate:
//! - [`config`]: the typed, documented configuration ([`VirtualPhoneConfig`]);
//! - `phone`: lines, calls and the call state machine;
//! - `timers`: the timer queue the state machine runs on;
//! - [`driver`]: the [`VirtualPhone`] driver object and its worker thread;
//! - this file: the two functions a plugin exports ([`validate`], [`build`]) and the export.

pub mod config;
pub mod driver;
mod phone;
mod timers;

#[cfg(test)]
mod tests;

pub use config::{IncomingConfig, LineConfig, VirtualPhoneConfig, EXAMPLE_CONFIG};
pub use driver::VirtualPhone;

use tapir_core::{DriverError, ErrorKind, PhoneDriver, SharedSink};

/// The driver's name in the host configuration (`driver = "virtual-phone"`).
pub const NAME: &str = "virtual-phone";

/// Checks a configuration section (JSON). Has the signature of [`tapir_core::ValidateFn`].
///
/// # Errors
/// Returns a sentence naming what is wrong.
pub fn validate(config: &str) -> Result<(), String> {
    VirtualPhoneConfig::parse(config)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Builds a virtual phone from its configuration section (JSON). Has the signature of
/// [`tapir_core::BuildFn`].
///
/// # Errors
/// `InvalidParameter` for a bad configuration; `Uninitialized` if the worker thread cannot
/// start.
pub fn build(config: &str, sink: SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError> {
    let config = VirtualPhoneConfig::parse(config)
        .map_err(|e| DriverError::new(ErrorKind::InvalidParameter, e.to_string()))?;
    Ok(Box::new(VirtualPhone::start(config, sink)?))
}

tapir_plugin_abi::export_driver! {
    name: NAME,
    summary: "Simulated phones for testing TAPI applications without hardware.",
    version: env!("CARGO_PKG_VERSION"),
    example_config: EXAMPLE_CONFIG,
    validate: validate,
    build: build,
}
