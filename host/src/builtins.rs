//! The built-in drivers linked into the `tapir` binary.
//!
//! A crate that the binary never names is not linked, and then its `inventory` registration is
//! lost; every built-in driver crate is therefore named here. `EXPECTED` lists the names the
//! registry must hold (a test checks it).

/// The built-in driver names this binary must offer.
pub const EXPECTED: &[&str] = &["sip-refer", "sip-reverse", "snom", "acd", "simulated"];

// Naming a crate is what makes the linker keep it (and its `inventory` registrations).
use tapir_plugin_acd as _;
use tapir_plugin_sip as _;
use tapir_plugin_snom as _;

/// Kept for call sites that want to say "the built-ins are linked here"; naming the crates
/// above is what does it. The simulated office lives in this crate (`crate::simulated`).
pub fn link() {}

#[cfg(test)]
mod tests {
    #[test]
    fn every_expected_builtin_is_registered() {
        super::link();
        let names: Vec<_> = tapir_core::builtin_drivers().map(|d| d.name).collect();
        for expected in super::EXPECTED {
            assert!(
                names.contains(expected),
                "{expected} missing from {names:?}"
            );
        }
    }
}
