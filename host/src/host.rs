//! A running host: the front end with the configured driver instances started in it, and the
//! way a new configuration is applied to it while it runs ([`Host::apply`]): instances that
//! were added start, removed ones stop, changed ones restart, unchanged ones are not touched.

use crate::catalog::Catalog;
use crate::config::{Config, DriverSection};
use crate::numbers::HostNumbers;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tapir_core::{LineKey, PhoneDriver};
use tapir_tsp::{Tsp, TspConfig};

/// The driver name of the built-in simulated office; instances of it are labelled simulated
/// everywhere (log, API, page).
pub const SIMULATED_DRIVER: &str = "simulated";

/// How long a removed instance's calls get to end through their driver before the front end
/// ends them itself.
pub const REMOVE_GRACE: Duration = Duration::from_secs(3);

/// The front end plus what the host knows about its driver instances.
pub struct Host {
    /// The front end every application goes through.
    pub tsp: Arc<Tsp>,
    instances: Mutex<BTreeMap<String, Instance>>,
    /// In a cluster the lease manager starts and stops instances, not [`Host::apply`].
    clustered: bool,
}

/// One configured driver instance as the host tracks it.
#[derive(Debug, Clone)]
struct Instance {
    section: DriverSection,
    state: InstanceState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum InstanceState {
    Running,
    Disabled,
    Failed(String),
    /// Runs on another cluster node (named), mirrored here.
    Remote(String),
}

/// A driver instance as the API and the CLI show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceView {
    /// The instance's name (its `[drivers.NAME]` section).
    pub name: String,
    /// The driver it runs.
    pub driver: String,
    /// `running`, `disabled` or `failed`.
    pub state: &'static str,
    /// Why it failed to start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// True for the simulated office: nothing it shows is a real phone.
    pub simulated: bool,
    /// In a cluster: the node that runs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// What applying a configuration did to the driver instances.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Instances started because they are new (or newly enabled).
    pub added: Vec<String>,
    /// Instances stopped because they are gone (or disabled); their calls ended.
    pub removed: Vec<String>,
    /// Instances whose section changed: stopped, then started with the new settings.
    pub restarted: Vec<String>,
    /// Instances left running untouched, calls and all.
    pub unchanged: Vec<String>,
    /// Instances that were to start but failed, with the reason.
    pub failed: Vec<FailedInstance>,
}

/// An instance that did not start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedInstance {
    /// Its name.
    pub driver: String,
    /// Why.
    pub reason: String,
}

impl Host {
    /// Starts every enabled driver instance. One that fails is logged and skipped; the host
    /// goes on with the rest.
    pub fn start(config: &Config, catalog: &Catalog) -> Self {
        let host = Self::empty(config, 0, false);
        for (name, section) in &config.drivers {
            host.start_instance(name, section, catalog);
        }
        host.tsp.sync();
        host
    }

    /// A host for a cluster node: the front end with call and request ids from `id_base` on,
    /// and no instance started (the cluster's lease manager starts them).
    pub fn start_clustered(config: &Config, id_base: u64) -> Self {
        Self::empty(config, id_base, true)
    }

    fn empty(config: &Config, id_base: u64, clustered: bool) -> Self {
        let tsp = Arc::new(Tsp::with_rules(
            TspConfig {
                line_base: config.tsp.line_base,
                pinned: pins(config),
                history: config.tsp.history,
                callback_base: config.phones.callback_base(),
                state_dir: config.state_dir.clone(),
                id_base,
            },
            rules(config),
        ));
        Self {
            tsp,
            instances: Mutex::new(BTreeMap::new()),
            clustered,
        }
    }

    /// A host around a front end whose instances the caller added itself (tests, embedders),
    /// with the instances that did not start (name, reason). Such instances are not
    /// configured: [`Host::apply`] leaves them alone.
    pub fn around(tsp: Arc<Tsp>, failed: Vec<(String, String)>) -> Self {
        let mut instances = BTreeMap::new();
        for (name, reason) in failed {
            instances.insert(
                name.clone(),
                Instance {
                    section: DriverSection {
                        driver: name,
                        enabled: true,
                        settings: serde_json::Map::new(),
                    },
                    state: InstanceState::Failed(reason),
                },
            );
        }
        Self {
            tsp,
            instances: Mutex::new(instances),
            clustered: false,
        }
    }

    /// Applies a configuration to the running host: number rules and pinned ids at once, then
    /// the driver instances by comparing each section with the one running. Removed and
    /// changed instances stop first (their calls end: Disconnected, then Idle), so a changed
    /// instance's lines come back with their ids.
    pub fn apply(&self, config: &Config, catalog: &Catalog) -> Applied {
        self.tsp.set_rules(rules(config));
        self.tsp.set_pinned(pins(config));
        let before = self.lock().clone();
        let mut applied = Applied::default();
        if self.clustered {
            // Every node runs the same sections; changing them needs every node restarted
            // (the reload reports `drivers` under `needs_restart`).
            applied.unchanged = before.keys().cloned().collect();
            return applied;
        }
        for (name, old) in &before {
            match config.drivers.get(name) {
                Some(new) if *new == old.section => {
                    // Unchanged; a failed instance is retried, though, as a reload is what an
                    // administrator does after fixing what made it fail.
                    if matches!(old.state, InstanceState::Failed(_)) {
                        self.lock().remove(name);
                        self.start_instance(name, new, catalog);
                        applied.restarted.push(name.clone());
                    } else {
                        applied.unchanged.push(name.clone());
                    }
                }
                Some(new) => {
                    self.stop_instance(name, old);
                    self.start_instance(name, new, catalog);
                    match (old.state == InstanceState::Disabled, new.enabled) {
                        (true, true) => applied.added.push(name.clone()),
                        (true, false) => applied.unchanged.push(name.clone()),
                        (false, false) => applied.removed.push(name.clone()),
                        (false, true) => applied.restarted.push(name.clone()),
                    }
                }
                None => {
                    self.stop_instance(name, old);
                    self.lock().remove(name);
                    if old.state != InstanceState::Disabled {
                        applied.removed.push(name.clone());
                    }
                }
            }
        }
        for (name, section) in &config.drivers {
            if !before.contains_key(name) {
                self.start_instance(name, section, catalog);
                if section.enabled {
                    applied.added.push(name.clone());
                }
            }
        }
        self.tsp.sync();
        for (name, instance) in self.lock().iter() {
            if let InstanceState::Failed(reason) = &instance.state {
                let affected = applied.added.contains(name) || applied.restarted.contains(name);
                if affected {
                    applied.failed.push(FailedInstance {
                        driver: name.clone(),
                        reason: reason.clone(),
                    });
                }
            }
        }
        applied
    }

    /// The running driver instances by name (for phone callbacks and the phone table).
    pub fn drivers(&self) -> BTreeMap<String, Arc<dyn PhoneDriver>> {
        self.tsp.drivers().into_iter().collect()
    }

    /// The running driver instance `name`.
    pub fn driver(&self, name: &str) -> Option<Arc<dyn PhoneDriver>> {
        self.tsp.driver(name)
    }

    /// Driver instances that failed to start, with the reason.
    pub fn failed(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .filter_map(|(name, i)| match &i.state {
                InstanceState::Failed(reason) => Some((name.clone(), reason.clone())),
                _ => None,
            })
            .collect()
    }

    /// Every configured instance with its state.
    pub fn instances(&self) -> Vec<InstanceView> {
        self.lock()
            .iter()
            .map(|(name, i)| InstanceView {
                name: name.clone(),
                driver: i.section.driver.clone(),
                state: match i.state {
                    InstanceState::Running | InstanceState::Remote(_) => "running",
                    InstanceState::Disabled => "disabled",
                    InstanceState::Failed(_) => "failed",
                },
                node: match &i.state {
                    InstanceState::Remote(node) => Some(node.clone()),
                    _ => None,
                },
                reason: match &i.state {
                    InstanceState::Failed(reason) => Some(reason.clone()),
                    _ => None,
                },
                simulated: i.section.driver == SIMULATED_DRIVER,
            })
            .collect()
    }

    /// Whether instance `name` is a simulated one.
    pub fn is_simulated(&self, name: &str) -> bool {
        self.lock()
            .get(name)
            .is_some_and(|i| i.section.driver == SIMULATED_DRIVER)
    }

    /// Stops the drivers. Calls still up are logged: an operator may want to know.
    pub fn shutdown(&self) {
        let open = self.tsp.shutdown();
        for call in &open {
            tracing::warn!(call = %call.id, line = %call.line, state = call.state.name(), "Call still up at shutdown.");
        }
        tracing::info!(open_calls = open.len(), "Drivers stopped.");
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Instance>> {
        // Every update is a single insert or remove: the map stays consistent after a panic.
        self.instances
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that instance `name` runs on cluster node `node` (mirrored here).
    pub(crate) fn set_remote(&self, name: &str, section: &DriverSection, node: &str) {
        self.set_state(name, section, InstanceState::Remote(node.to_owned()));
    }

    /// Records that instance `name` runs nowhere this node knows of (cut off from the cluster).
    pub(crate) fn set_stopped(&self, name: &str, section: &DriverSection, why: &str) {
        self.set_state(name, section, InstanceState::Failed(why.to_owned()));
    }

    fn set_state(&self, name: &str, section: &DriverSection, state: InstanceState) {
        self.lock().insert(
            name.to_owned(),
            Instance {
                section: section.clone(),
                state,
            },
        );
    }

    /// Starts a configured instance here (a reload, or a cluster node that took its lease).
    pub(crate) fn start_instance(&self, name: &str, section: &DriverSection, catalog: &Catalog) {
        let state = if !section.enabled {
            tracing::info!(instance = %name, driver = %section.driver, "Driver instance disabled in config.");
            InstanceState::Disabled
        } else {
            let json = section.settings_json();
            match self
                .tsp
                .add_driver(name, |sink| catalog.build(&section.driver, &json, sink))
            {
                Ok(_) => {
                    if section.driver == SIMULATED_DRIVER {
                        tracing::warn!(instance = %name, driver = %section.driver, "Driver instance started: a SIMULATED office; its phones are not real and reach nobody.");
                    } else {
                        tracing::info!(instance = %name, driver = %section.driver, "Driver instance started.");
                    }
                    InstanceState::Running
                }
                Err(error) => {
                    tracing::error!(instance = %name, driver = %section.driver, %error, "Driver instance failed to start.");
                    InstanceState::Failed(error.to_string())
                }
            }
        };
        self.lock().insert(
            name.to_owned(),
            Instance {
                section: section.clone(),
                state,
            },
        );
    }

    fn stop_instance(&self, name: &str, old: &Instance) {
        if old.state != InstanceState::Running {
            return;
        }
        match self.tsp.remove_driver(name, REMOVE_GRACE) {
            Ok(removed) => tracing::info!(
                instance = %name,
                lines = removed.lines.len(),
                calls_ended = removed.calls.len(),
                "Driver instance stopped."
            ),
            Err(error) => {
                tracing::warn!(instance = %name, %error, "Driver instance could not be stopped.")
            }
        }
    }
}

/// The number rules of a configuration. `check-config` refuses rules that do not compile
/// before the host starts or reloads; this only guards callers that skip it.
fn rules(config: &Config) -> Arc<dyn tapir_tsp::NumberRules> {
    match HostNumbers::compile(config) {
        Ok(rules) => Arc::new(rules),
        Err(problems) => {
            for (path, problem) in problems {
                tracing::error!(%path, %problem, "Number rules refused; numbers pass unchanged.");
            }
            Arc::new(tapir_tsp::Verbatim)
        }
    }
}

fn pins(config: &Config) -> Vec<(String, LineKey, tapir_core::LineId)> {
    config
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
        .collect()
}
