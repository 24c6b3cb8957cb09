//! Reloading the configuration of a running daemon, on SIGHUP or `POST /v1/reload`.
//!
//! The source is read and checked exactly as `tapir check-config` does; a configuration with
//! problems changes nothing (each problem is logged and returned). A good one is applied with
//! [`Host::apply`]: driver instances that were added start, removed ones stop (their calls end
//! Disconnected, then Idle), changed ones restart, unchanged ones keep their calls and lines;
//! number rules and pinned line ids take effect at once, API tokens too (the caller swaps
//! them). Settings bound at start (listeners, logging, the front end's numbering, the plugin
//! folder, API limits) are reported as needing a restart and keep their running values.

use crate::catalog::Catalog;
use crate::check::{check, Checked, Problem};
use crate::config::{Config, Source};
use crate::host::{Applied, Host};
use serde::Serialize;
use std::sync::Mutex;

/// Reloads one configuration source; one reload at a time.
pub struct Reloader {
    source: Source,
    /// The configuration in force, as read (before listeners were bound).
    running: Mutex<Config>,
}

/// What a reload did.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    /// The file read, or `embedded default`.
    pub config: String,
    /// What happened to the driver instances.
    #[serde(flatten)]
    pub applied: Applied,
    /// How many API tokens are in force now.
    pub tokens: usize,
    /// Changed sections that only a restart applies; they keep their running values.
    pub needs_restart: Vec<&'static str>,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The configuration has problems (the same list `tapir check-config` prints).
    #[error("the configuration has {} problem(s); nothing was changed", .0.len())]
    Invalid(Vec<Problem>),
}

impl Reloader {
    /// A reloader for `source`, whose configuration `running` the host was started with.
    pub fn new(source: Source, running: Config) -> Self {
        Self {
            source,
            running: Mutex::new(running),
        }
    }

    /// The configuration source's name for logs and answers.
    pub fn name(&self) -> String {
        self.source
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "embedded default".to_owned())
    }

    /// Reads, checks and applies the configuration. Returns it (for the caller's own parts:
    /// the API tokens) with what was done. Blocks while instances stop (seconds at most).
    ///
    /// # Errors
    /// [`ReloadError::Invalid`]: nothing was changed.
    pub fn reload(&self, host: &Host) -> Result<(Config, Reloaded), ReloadError> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let name = self.name();
        tracing::info!(config = %name, "Reloading the configuration.");
        let Checked {
            config,
            catalog,
            problems,
            notes,
        } = check(&self.source, |c| Catalog::load(c.plugin_dir.as_deref()));
        for note in &notes {
            tracing::warn!(config = %name, %note, "Configuration note.");
        }
        let (config, catalog) = match (config, catalog) {
            (Some(config), Some(catalog)) if problems.is_empty() => (config, catalog),
            _ => {
                for problem in &problems {
                    tracing::error!(config = %name, %problem, "Configuration problem.");
                }
                tracing::error!(config = %name, problems = problems.len(), "Reload refused: nothing was changed.");
                return Err(ReloadError::Invalid(problems));
            }
        };
        let needs_restart = needs_restart(&running, &config);
        for section in &needs_restart {
            tracing::warn!(
                section,
                "Changed setting needs a restart; the running value stays."
            );
        }
        let applied = host.apply(&config, &catalog);
        tracing::info!(
            added = ?applied.added,
            removed = ?applied.removed,
            restarted = ?applied.restarted,
            unchanged = applied.unchanged.len(),
            failed = applied.failed.len(),
            "Configuration reloaded."
        );
        let reloaded = Reloaded {
            config: name,
            applied,
            tokens: config.api.tokens.len(),
            needs_restart,
        };
        *running = config.clone();
        Ok((config, reloaded))
    }
}

/// The sections that differ between `old` and `new` and are only read at start.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut note = |changed: bool, section: &'static str| {
        if changed {
            out.push(section);
        }
    };
    note(old.log != new.log, "log");
    note(old.http != new.http, "http");
    note(old.phones != new.phones, "phones");
    note(old.tsp != new.tsp, "tsp");
    note(old.plugin_dir != new.plugin_dir, "plugin_dir");
    note(old.cluster != new.cluster, "cluster");
    note(
        old.cluster.is_some() && old.drivers != new.drivers,
        "drivers (cluster: restart every node)",
    );
    note(old.api.wait_max_s != new.api.wait_max_s, "api.wait_max_s");
    note(
        old.api.idle_call_linger_s != new.api.idle_call_linger_s,
        "api.idle_call_linger_s",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_settings_read_at_start_need_a_restart() {
        let old = Config::empty();
        let mut new = Config::empty();
        new.api.tokens.push(crate::config::ApiToken {
            name: "crm".into(),
            token: crate::secret::Secret::new("a-long-enough-token"),
            access: crate::config::Access::Control,
        });
        new.numbers.location = Some(Default::default());
        assert!(needs_restart(&old, &new).is_empty());
        new.http.listen = "127.0.0.1:1".parse().expect("addr");
        new.log.level = "debug".into();
        assert_eq!(needs_restart(&old, &new), vec!["log", "http"]);
    }
}
