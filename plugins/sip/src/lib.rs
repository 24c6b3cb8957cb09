//! # tapir-plugin-sip: SIP click-to-dial drivers
//!
//! Two built-in drivers on tapir's own SIP user agent ([`tapir_sip_ua`]):
//! - **`sip-refer`**: tapir INVITEs the user's own phone (through the SIP server, or straight to
//!   the phone in SIPTAPI's "alternative mode"), optionally asking it to auto-answer; once it
//!   answers, tapir REFERs it to the dialled number, follows the NOTIFY sipfrags, and hangs up
//!   its own leg.
//! - **`sip-reverse`**: tapir INVITEs the dialled number first and, once it answers, REFERs it
//!   to the user's phone.
//!
//! Modules: [`config`] (per-line settings, [`config::Secret`]), [`outcome`] (destination URIs,
//! status → disconnect mode, typed failures), [`report`] (exactly-once completion, shutdown
//! gate), [`call`] (the per-call flow), [`incoming`] (REGISTER and offered incoming calls for
//! lines with `register = true`), [`driver`] (the `PhoneDriver`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod call;
mod calls;
pub mod config;
pub mod driver;
pub mod incoming;
pub mod outcome;
pub mod report;

use tapir_core::{DriverDescriptor, DriverError, PhoneDriver, SharedSink};

fn build_refer(config: &str, sink: SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError> {
    driver::build(call::Mode::Refer, config, sink)
}

fn build_reverse(config: &str, sink: SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError> {
    driver::build(call::Mode::Reverse, config, sink)
}

fn validate(config: &str) -> Result<(), String> {
    config::parse(config).map(|_| ())
}

inventory::submit! {
    DriverDescriptor {
        name: "sip-refer",
        summary: "Click-to-dial over SIP: calls the user's phone, then REFERs it to the number (SIPTAPI's method).",
        version: env!("CARGO_PKG_VERSION"),
        example_config: config::EXAMPLE,
        validate,
        build: build_refer,
    }
}

inventory::submit! {
    DriverDescriptor {
        name: "sip-reverse",
        summary: "Reverse click-to-dial over SIP: calls the number first, then REFERs it to the user's phone.",
        version: env!("CARGO_PKG_VERSION"),
        example_config: config::EXAMPLE,
        validate,
        build: build_reverse,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_drivers_are_registered_and_examples_validate() {
        for name in ["sip-refer", "sip-reverse"] {
            let d = tapir_core::builtin_driver(name).expect("registered");
            assert_eq!((d.validate)(d.example_config), Ok(()));
        }
    }
}
