//! A running host: the front end with every configured driver instance started in it.

use crate::catalog::Catalog;
use crate::config::Config;
use crate::numbers::HostNumbers;
use std::collections::BTreeMap;
use std::sync::Arc;
use tapir_core::{LineKey, PhoneDriver};
use tapir_tsp::{Tsp, TspConfig};

/// The front end plus what the host knows about its drivers.
pub struct Host {
    /// The front end every application goes through.
    pub tsp: Arc<Tsp>,
    /// Driver instances that failed to start, with the reason.
    pub failed: Vec<(String, String)>,
    /// Running driver instances by name, for the phone-facing callbacks.
    pub drivers: BTreeMap<String, Arc<dyn PhoneDriver>>,
}

impl Host {
    /// Starts every enabled driver instance. One that fails is logged and skipped; the host
    /// goes on with the rest.
    pub fn start(config: &Config, catalog: &Catalog) -> Self {
        let rules: Arc<dyn tapir_tsp::NumberRules> = match HostNumbers::compile(config) {
            Ok(rules) => Arc::new(rules),
            Err(problems) => {
                // check-config refuses such a configuration before the host starts; this
                // only guards callers that skip it.
                for (path, problem) in problems {
                    tracing::error!(%path, %problem, "Number rules refused; numbers pass unchanged.");
                }
                Arc::new(tapir_tsp::Verbatim)
            }
        };
        let pinned = config
            .lines
            .iter()
            .filter_map(|l| {
                let id = l.id?;
                Some((
                    l.driver.clone(),
                    LineKey::new(l.key.clone()),
                    tapir_core::LineId(id),
                ))
            })
            .collect();
        let tsp = Arc::new(Tsp::with_rules(
            TspConfig {
                line_base: config.tsp.line_base,
                pinned,
                history: config.tsp.history,
                callback_base: config.phones.callback_base(),
                state_dir: config.state_dir.clone(),
            },
            rules,
        ));
        let mut failed = Vec::new();
        let mut drivers = BTreeMap::new();
        for (name, section) in &config.drivers {
            if !section.enabled {
                tracing::info!(instance = %name, driver = %section.driver, "Driver instance disabled in config.");
                continue;
            }
            let json = section.settings_json();
            match tsp.add_driver(name, |sink| catalog.build(&section.driver, &json, sink)) {
                Ok(driver) => {
                    tracing::info!(instance = %name, driver = %section.driver, "Driver instance started.");
                    drivers.insert(name.clone(), driver);
                }
                Err(error) => {
                    tracing::error!(instance = %name, driver = %section.driver, %error, "Driver instance failed to start.");
                    failed.push((name.clone(), error.to_string()));
                }
            }
        }
        tsp.sync();
        Self {
            tsp,
            failed,
            drivers,
        }
    }

    /// Stops the drivers. Calls still up are logged: an operator may want to know.
    pub fn shutdown(&self) {
        let open = self.tsp.shutdown();
        for call in &open {
            tracing::warn!(call = %call.id, line = %call.line, state = call.state.name(), "Call still up at shutdown.");
        }
        tracing::info!(open_calls = open.len(), "Drivers stopped.");
    }
}
