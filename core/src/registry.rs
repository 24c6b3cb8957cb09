//! The registry of built-in drivers, filled at link time with `inventory`.
//!
//! A built-in driver crate registers itself with
//! `inventory::submit! { tapir_core::DriverDescriptor { .. } }`; the host names every built-in
//! crate so the linker keeps it. Dynamically loaded drivers do not use this registry (each
//! library would get its own copy of it); they come in through the plugin interface crate.

use crate::{BuildFn, ValidateFn};

/// Describes one built-in driver.
#[derive(Debug)]
pub struct DriverDescriptor {
    /// The driver's name, used in configuration (`driver = "snom"`).
    pub name: &'static str,
    /// One sentence saying what the driver reaches.
    pub summary: &'static str,
    /// The driver's version.
    pub version: &'static str,
    /// A configuration section that works, as JSON; tested to validate.
    pub example_config: &'static str,
    /// Checks a configuration section.
    pub validate: ValidateFn,
    /// Builds a driver instance.
    pub build: BuildFn,
}

inventory::collect!(DriverDescriptor);

/// Every built-in driver linked into this program.
pub fn builtin_drivers() -> impl Iterator<Item = &'static DriverDescriptor> {
    inventory::iter::<DriverDescriptor>.into_iter()
}

/// Finds a built-in driver by name.
pub fn builtin_driver(name: &str) -> Option<&'static DriverDescriptor> {
    builtin_drivers().find(|d| d.name == name)
}
