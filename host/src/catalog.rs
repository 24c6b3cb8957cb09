//! The drivers this host can start: the built-ins linked into the binary and the libraries found
//! in the plugin folder, behind one interface so nothing downstream can tell them apart.

use serde::Serialize;
use std::path::{Path, PathBuf};
use tapir_core::{DriverDescriptor, DriverError, PhoneDriver, SharedSink};

/// Where a driver comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "snake_case")]
pub enum Origin {
    /// Linked into the `tapir` binary.
    BuiltIn,
    /// Loaded from this library file.
    File(PathBuf),
}

/// A driver the host can start.
#[derive(Debug, Clone, Serialize)]
pub struct DriverEntry {
    /// Its name, as used in `driver = "..."`.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it reaches.
    pub summary: String,
    /// Where it comes from.
    pub origin: Origin,
}

/// A file in the plugin folder that was not loaded, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    /// The file.
    pub path: PathBuf,
    /// Why it was refused.
    pub reason: String,
}

enum Source {
    BuiltIn(&'static DriverDescriptor),
    Plugin(tapir_plugin_abi::LoadedPlugin),
}

/// Built-ins plus whatever the plugin folder held.
pub struct Catalog {
    drivers: Vec<(DriverEntry, Source)>,
    refused: Vec<Refused>,
}

impl Catalog {
    /// Only the built-in drivers.
    pub fn builtins_only() -> Self {
        crate::builtins::link();
        let mut drivers: Vec<_> = tapir_core::builtin_drivers()
            .map(|d| {
                (
                    DriverEntry {
                        name: d.name.to_owned(),
                        version: d.version.to_owned(),
                        summary: d.summary.to_owned(),
                        origin: Origin::BuiltIn,
                    },
                    Source::BuiltIn(d),
                )
            })
            .collect();
        drivers.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        for expected in crate::builtins::EXPECTED {
            if !drivers.iter().any(|(e, _)| e.name == *expected) {
                tracing::error!(
                    driver = expected,
                    "Built-in driver missing from this build."
                );
            }
        }
        Self {
            drivers,
            refused: Vec::new(),
        }
    }

    /// Built-ins, then every library in `dir`. A plugin whose name is taken already is refused.
    pub fn load(dir: Option<&Path>) -> Self {
        let mut catalog = Self::builtins_only();
        let Some(dir) = dir else {
            return catalog;
        };
        let scan = tapir_plugin_abi::scan_dir(dir);
        for refused in scan.refused {
            tracing::warn!(file = %refused.path.display(), reason = %refused.error, "Plugin refused.");
            // The error names the file already; the listing shows it in its own column.
            let full = refused.error.to_string();
            let prefix = format!("{}: ", refused.path.display());
            let reason = full.strip_prefix(&prefix).unwrap_or(&full).to_owned();
            catalog.refused.push(Refused {
                path: refused.path,
                reason,
            });
        }
        for plugin in scan.loaded {
            if catalog.drivers.iter().any(|(e, _)| e.name == plugin.name) {
                let reason = format!("a driver named {:?} is already loaded", plugin.name);
                tracing::warn!(file = %plugin.path.display(), %reason, "Plugin refused.");
                catalog.refused.push(Refused {
                    path: plugin.path.clone(),
                    reason,
                });
                continue;
            }
            tracing::info!(driver = %plugin.name, version = %plugin.version, file = %plugin.path.display(), "Plugin loaded.");
            catalog.drivers.push((
                DriverEntry {
                    name: plugin.name.clone(),
                    version: plugin.version.clone(),
                    summary: plugin.summary.clone(),
                    origin: Origin::File(plugin.path.clone()),
                },
                Source::Plugin(plugin),
            ));
        }
        catalog
    }

    /// Every driver.
    pub fn entries(&self) -> Vec<DriverEntry> {
        self.drivers.iter().map(|(e, _)| e.clone()).collect()
    }

    /// Files that were refused.
    pub fn refused(&self) -> &[Refused] {
        &self.refused
    }

    /// Driver names, for messages.
    pub fn names(&self) -> Vec<String> {
        self.drivers.iter().map(|(e, _)| e.name.clone()).collect()
    }

    /// Validates a driver section; `None` when no such driver exists.
    pub fn validate(&self, driver: &str, config_json: &str) -> Option<Result<(), String>> {
        let (_, source) = self.drivers.iter().find(|(e, _)| e.name == driver)?;
        Some(match source {
            Source::BuiltIn(d) => std::panic::catch_unwind(|| (d.validate)(config_json))
                .unwrap_or_else(|_| {
                    Err("the driver panicked while checking its configuration".to_owned())
                }),
            Source::Plugin(p) => p.validate(config_json),
        })
    }

    /// Builds a driver instance.
    ///
    /// # Errors
    /// The driver's own error, or `OperationUnavailable` for an unknown driver name.
    pub fn build(
        &self,
        driver: &str,
        config_json: &str,
        sink: SharedSink,
    ) -> Result<Box<dyn PhoneDriver>, DriverError> {
        let (_, source) = self
            .drivers
            .iter()
            .find(|(e, _)| e.name == driver)
            .ok_or_else(|| DriverError::unavailable(format!("no driver named {driver:?}")))?;
        match source {
            Source::BuiltIn(d) => (d.build)(config_json, sink),
            Source::Plugin(p) => p.build(config_json, sink),
        }
    }
}
