//! The host's configuration: its typed shape, how it is layered (defaults < TOML file <
//! `TAPIR_` environment), and the embedded default the host runs on when no file is given.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tapir_core::numbers::NumberPlanConfig;

/// The configuration the host runs on when no file is given: no phones, loopback ports.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The HTTP endpoint (status, and later the phones' callbacks and the API).
    #[serde(default)]
    pub http: HttpConfig,
    /// The endpoint phones call back to (Action URLs, provisioning), apart from the API.
    #[serde(default)]
    pub phones: PhonesConfig,
    /// The front end.
    #[serde(default)]
    pub tsp: TspSection,
    /// A folder of driver libraries to load; each file is loaded on its own.
    #[serde(default)]
    pub plugin_dir: Option<PathBuf>,
    /// Where drivers keep small state files that must survive a restart (the snom driver's
    /// count of wrong Digest logins per phone). Each driver instance gets its own folder
    /// below it (`{state_dir}/{instance}`). None: such state lives in memory only, and the
    /// drivers that keep some say so in the log.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Driver instances by name. Each names its `driver`; every other key is the driver's own
    /// configuration and is handed to it as JSON.
    #[serde(default)]
    pub drivers: BTreeMap<String, DriverSection>,
    /// Number formatting for every line: location and rule lists (dial, incoming, outgoing).
    #[serde(default)]
    pub numbers: NumberPlanConfig,
    /// Settings of single lines: a fixed device id, number rules of their own.
    #[serde(default)]
    pub lines: Vec<PinnedLine>,
    /// The application API: access tokens and request limits.
    #[serde(default)]
    pub api: ApiConfig,
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `tapir_tsp=debug,info`.
    #[serde(default = "default_level")]
    pub level: String,
    /// Write logs to this file instead of standard error.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// `text` or `json`.
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_level(),
            file: None,
            format: LogFormat::Text,
        }
    }
}

fn default_level() -> String {
    "info".to_owned()
}

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The HTTP endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where to listen; loopback by default.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Switch the endpoint off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A PEM certificate chain: with `tls_key`, the endpoint speaks HTTPS only.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            enabled: true,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl HttpConfig {
    /// Whether TLS is configured (both files named).
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }
}

/// The application API on the `[http]` listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Access tokens. With none, the API is open to every client, which the host only
    /// allows while `[http] listen` is a loopback address.
    #[serde(default)]
    pub tokens: Vec<ApiToken>,
    /// The longest `?wait=SECONDS` honoured; longer waits are cut to this.
    #[serde(default = "default_wait_max")]
    pub wait_max_s: u64,
    /// How long an ended (Idle) call stays readable in `/v1/calls` before the host forgets it.
    #[serde(default = "default_idle_linger")]
    pub idle_call_linger_s: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            tokens: Vec::new(),
            wait_max_s: default_wait_max(),
            idle_call_linger_s: default_idle_linger(),
        }
    }
}

fn default_wait_max() -> u64 {
    30
}

fn default_idle_linger() -> u64 {
    10
}

/// One API token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who holds it (shown in logs instead of the token).
    pub name: String,
    /// The token, sent as `Authorization: Bearer TOKEN`. Never logged.
    pub token: crate::secret::Secret,
    /// What it may do.
    pub access: Access,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Read lines, calls, phones, events and metrics.
    Read,
    /// Everything `read` may, and operations that change calls and lines.
    Control,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8780))
}

fn yes() -> bool {
    true
}

/// The phone-facing HTTP endpoint. It only serves `/phones/{instance}/...` to the drivers and
/// never grants access to the application API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PhonesConfig {
    /// Where to listen. Loopback by default; phones on the LAN need `0.0.0.0:8781` or the
    /// host's LAN address.
    #[serde(default = "default_phones_listen")]
    pub listen: SocketAddr,
    /// The base URL phones are told to use (`http://pbx.example.com:8781`), for NAT or a
    /// dynamic-DNS name; by default `http://{listen}`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Switch the endpoint off.
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for PhonesConfig {
    fn default() -> Self {
        Self {
            listen: default_phones_listen(),
            public_url: None,
            enabled: true,
        }
    }
}

impl PhonesConfig {
    /// The base of every callback URL handed to drivers (`…/phones`).
    pub fn callback_base(&self) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let base = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen));
        Some(format!("{}/phones", base.trim_end_matches('/')))
    }
}

fn default_phones_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8781))
}

/// Front-end settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TspSection {
    /// The first line device id.
    #[serde(default)]
    pub line_base: u32,
    /// How many past events are kept for clients that reconnect.
    #[serde(default = "default_history")]
    pub history: usize,
}

impl Default for TspSection {
    fn default() -> Self {
        Self {
            line_base: 0,
            history: default_history(),
        }
    }
}

fn default_history() -> usize {
    4096
}

/// One driver instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DriverSection {
    /// Which driver: a built-in name (`snom`, `sip-refer`, ...) or the name a plugin reports.
    pub driver: String,
    /// Set to false to keep the section but not start the driver.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Everything else: the driver's own configuration.
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl DriverSection {
    /// The driver's own configuration as JSON text.
    pub fn settings_json(&self) -> String {
        serde_json::Value::Object(self.settings.clone()).to_string()
    }
}

/// Settings of one line, found by driver instance and line key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PinnedLine {
    /// The driver instance (the name of its `[drivers.NAME]` section).
    pub driver: String,
    /// The driver's key for the line.
    pub key: String,
    /// The device id it always gets, across restarts and reordering.
    #[serde(default)]
    pub id: Option<u32>,
    /// Number formatting for this line; each part given here replaces the host's.
    #[serde(default)]
    pub numbers: Option<NumberPlanConfig>,
}

/// Where the configuration came from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The embedded default.
    Embedded,
    /// A TOML file.
    File(PathBuf),
}

impl Source {
    /// The layered figment for this source: defaults < TOML < `TAPIR_` environment.
    pub fn figment(&self) -> Figment {
        let base = Figment::from(Serialized::defaults(Config::empty()));
        let layered = match self {
            Source::Embedded => base.merge(Toml::string(EMBEDDED_DEFAULT)),
            Source::File(path) => base.merge(Toml::file_exact(path)),
        };
        // TAPIR_CONFIG names the file itself (the Windows TSP reads it) and is no key.
        layered.merge(Env::prefixed("TAPIR_").ignore(&["config"]).split("__"))
    }

    /// The file, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::Embedded => None,
            Source::File(p) => Some(p),
        }
    }
}

impl Config {
    /// A configuration with every default and nothing configured.
    pub fn empty() -> Self {
        Self {
            log: LogConfig::default(),
            http: HttpConfig::default(),
            phones: PhonesConfig::default(),
            tsp: TspSection::default(),
            plugin_dir: None,
            state_dir: None,
            drivers: BTreeMap::new(),
            numbers: NumberPlanConfig::default(),
            lines: Vec::new(),
            api: ApiConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_loads_and_has_no_drivers() {
        let config: Config = Source::Embedded
            .figment()
            .extract()
            .expect("embedded loads");
        assert!(config.drivers.is_empty());
        assert!(config.http.listen.ip().is_loopback());
    }
}
