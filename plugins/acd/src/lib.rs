//! # tapir-plugin-acd: the ACD dialer driver
//!
//! The built-in driver **`acd`** (SIPTAPI's "ACD mode"): a dialer application makes a call on an
//! `acd` line, tapir INVITEs the number directly (no user phone involved) and reports Dialing →
//! Ringback → Connected, or Busy / Disconnected with the disconnect mode the SIP status means.
//! The application then blind-transfers the answered call to an agent (extension or queue):
//! tapir REFERs the called party to the agent, completes the transfer on the final sipfrag and
//! releases its own leg. One driver instance carries 1 to 100 000 lines on one SIP endpoint, all
//! on one account or each on its own; with `register` on, lines REGISTER (paced by a token
//! bucket) and incoming INVITEs become Offering calls that the application may redirect.
//!
//! Modules: [`config`] (typed configuration: the shared SIP keys plus the dialer's lines),
//! [`outcome`] (a failed transfer in the dialer's words), [`call`] (one outgoing call on the
//! shared call leg), [`driver`] (the `PhoneDriver`). Every SIP piece — the call leg, REGISTER
//! loop, offers, status mapping, reports — lives in [`tapir_sip_ua`], shared with the
//! `sip-refer` and `sip-reverse` drivers.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod call;
pub mod config;
pub mod driver;
pub mod outcome;

use tapir_core::{DriverDescriptor, DriverError, PhoneDriver, SharedSink};

fn build(config: &str, sink: SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError> {
    driver::build(config, sink)
}

fn validate(config: &str) -> Result<(), String> {
    config::parse(config).map(|_| ()).map_err(|e| e.to_string())
}

inventory::submit! {
    DriverDescriptor {
        name: "acd",
        summary: "ACD dialer over SIP: calls the number directly, then blind-transfers it to an agent with REFER; thousands of lines per account; incoming-call indication via REGISTER.",
        version: env!("CARGO_PKG_VERSION"),
        example_config: config::EXAMPLE,
        validate,
        build,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn registered_and_example_validates() {
        let d = tapir_core::builtin_driver("acd").expect("registered");
        assert_eq!((d.validate)(d.example_config), Ok(()));
    }
}
