//! The built-in drivers linked into the `tapir` binary.
//!
//! A crate that the binary never names is not linked, and then its `inventory` registration is
//! lost; every built-in driver crate is therefore named here. `EXPECTED` lists the names the
//! registry must hold (a test checks it).

/// The built-in driver names this binary must offer.
pub const EXPECTED: &[&str] = &["snom"];

/// Keeps the built-in crates linked; call once before reading the registry.
pub fn link() {
    tapir_plugin_snom::link();
}

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
