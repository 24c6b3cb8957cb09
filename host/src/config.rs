//! The host's configuration: its typed shape, how it is layered (defaults < TOML file <
//! `TAPIR_` environment), and the embedded default the host runs on when no file is given.
//!
//! Which environment variables are settings: `TAPIR_` followed by a top-level key
//! ([`TOP_LEVEL_KEYS`]), sections separated by `__` (`TAPIR_HTTP__LISTEN`, `TAPIR_PLUGIN_DIR`).
//! The `tapir` command's own variables ([`CLI_VARIABLES`]: `TAPIR_CONFIG`, `TAPIR_TOKEN`,
//! `TAPIR_URL`, `TAPIR_PHONE_PASSWORD`) never are, and any other `TAPIR_` variable is ignored
//! (`check-config` names it in a note).

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tapir_core::numbers::NumberPlanConfig;

/// The configuration the host runs on when no file is given: the simulated office (and nothing
/// else) on loopback ports.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// The keys a configuration may have at its top level, in the order `check-config` lists them;
/// also the first part of every setting variable's name.
pub const TOP_LEVEL_KEYS: [&str; 11] = [
    "numbers",
    "log",
    "http",
    "phones",
    "tsp",
    "plugin_dir",
    "state_dir",
    "drivers",
    "lines",
    "api",
    "cluster",
];

/// The `tapir` command's own environment variables: what the CLI reads (the file to use, the
/// API token, the host's URL, a phone password). They are never settings.
pub const CLI_VARIABLES: [&str; 4] = [
    "TAPIR_CONFIG",
    "TAPIR_TOKEN",
    "TAPIR_URL",
    "TAPIR_PHONE_PASSWORD",
];

/// The prefix of every variable the host looks at.
const PREFIX: &str = "TAPIR_";

/// What an environment variable is to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variable {
    /// A setting: its key path, lower case (`["http", "listen"]`).
    Setting(Vec<String>),
    /// One of [`CLI_VARIABLES`].
    Cli,
    /// A `TAPIR_` variable that is neither: ignored.
    Ignored,
}

impl Variable {
    /// Classifies a variable by its name; `None` when it does not start with `TAPIR_` (in any
    /// case, as figment matches it).
    pub fn of(name: &str) -> Option<Self> {
        let rest = name
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX))
            .and_then(|_| name.get(PREFIX.len()..))?;
        if CLI_VARIABLES.iter().any(|c| c.eq_ignore_ascii_case(name)) {
            return Some(Variable::Cli);
        }
        Some(match setting_path(rest) {
            Some(path) => Variable::Setting(path),
            None => Variable::Ignored,
        })
    }
}

/// The key path a variable's name (without the prefix) sets, when it names a top-level key.
fn setting_path(rest: &str) -> Option<Vec<String>> {
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    let first = path.first()?;
    if !TOP_LEVEL_KEYS.contains(&first.as_str()) || path.iter().any(String::is_empty) {
        return None;
    }
    Some(path)
}

/// The `TAPIR_` variables set now, by name, with what each is.
pub fn variables() -> Vec<(String, Variable)> {
    let mut found: Vec<(String, Variable)> = std::env::vars_os()
        .filter_map(|(name, _)| {
            let name = name.to_str()?.to_owned();
            let kind = Variable::of(&name)?;
            Some((name, kind))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// The setting variable that sets the key at `path`: the one whose key path is the longest
/// prefix of `path` (`TAPIR_API__TOKENS` for `api.tokens[0].access`). With `below`, for a
/// problem known to come from the environment, also the only one under `path` (a section
/// that cannot be read because of one of its keys).
pub fn variable_for(path: &[String], below: bool) -> Option<String> {
    let settings: Vec<(String, Vec<String>)> = variables()
        .into_iter()
        .filter_map(|(name, kind)| match kind {
            Variable::Setting(p) => Some((name, p)),
            _ => None,
        })
        .collect();
    let lower: Vec<String> = path.iter().map(|p| p.to_ascii_lowercase()).collect();
    let above = settings
        .iter()
        .filter(|(_, p)| lower.starts_with(p))
        .max_by_key(|(_, p)| p.len());
    if let Some((name, _)) = above {
        return Some(name.clone());
    }
    if !below {
        return None;
    }
    let mut below = settings.iter().filter(|(_, p)| p.starts_with(&lower));
    match (below.next(), below.next()) {
        (Some((name, _)), None) => Some(name.clone()),
        _ => None,
    }
}

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
    /// Several nodes acting as one host (NATS JetStream); absent: a host of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::cluster::ClusterConfig>,
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
    /// How many connections it holds and how long each may take (`[http.connections]`).
    #[serde(default)]
    pub connections: ConnectionLimits,
    /// Worker threads of the host's runtime (HTTP, API, event streams, page, phone callbacks,
    /// and the built-in SIP drivers' tasks). Unset: [`HttpConfig::workers_or_default`].
    #[serde(default)]
    pub workers: Option<NonZeroUsize>,
}

impl HttpConfig {
    /// `workers`, else one fewer than the machine's cores, at least one: fewer workers wake
    /// each other less for every message passed between tasks (the `versus_kamailio` bench on
    /// 2 cores: one worker instead of two, 867 → 762 µs of CPU per call when SIP drivers had
    /// their own runtimes, about 700 → 500 µs now that they run on this one).
    pub fn workers_or_default(&self) -> usize {
        self.workers.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)),
            NonZeroUsize::get,
        )
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            enabled: true,
            tls_cert: None,
            tls_key: None,
            connections: ConnectionLimits::default(),
            workers: None,
        }
    }
}

/// Limits on one listener's connections, so that idle, slow or hostile clients cannot take it
/// over (`[http.connections]`, `[phones.connections]`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Connections held at once. When all are taken, one that only waits (no request in
    /// progress; one that never sent a complete head first, the longest waiting first) is
    /// closed for a newcomer; when every one is busy, the newcomer is closed.
    #[serde(default = "default_max_connections")]
    pub max: NonZeroUsize,
    /// Seconds a new connection has to deliver its first request's head (the TLS handshake
    /// included), and a kept-alive connection to complete a head once it started one.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_s: NonZeroU64,
    /// Seconds a request's body has to arrive, from the end of its head.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_s: NonZeroU64,
    /// Seconds a kept-alive connection may wait for its next request.
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout_s: NonZeroU64,
    /// Seconds a response (or an event stream) may wait for a client that does not read it.
    #[serde(default = "default_send_timeout")]
    pub send_timeout_s: NonZeroU64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max: default_max_connections(),
            header_timeout_s: default_header_timeout(),
            body_timeout_s: default_body_timeout(),
            keepalive_timeout_s: default_keepalive_timeout(),
            send_timeout_s: default_send_timeout(),
        }
    }
}

impl ConnectionLimits {
    /// `header_timeout_s` as a duration.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_s.get())
    }

    /// `body_timeout_s` as a duration.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_s.get())
    }

    /// `keepalive_timeout_s` as a duration.
    pub fn keepalive_timeout(&self) -> Duration {
        Duration::from_secs(self.keepalive_timeout_s.get())
    }

    /// `send_timeout_s` as a duration.
    pub fn send_timeout(&self) -> Duration {
        Duration::from_secs(self.send_timeout_s.get())
    }
}

fn default_max_connections() -> NonZeroUsize {
    NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN)
}

fn default_header_timeout() -> NonZeroU64 {
    NonZeroU64::new(10).unwrap_or(NonZeroU64::MIN)
}

fn default_body_timeout() -> NonZeroU64 {
    NonZeroU64::new(30).unwrap_or(NonZeroU64::MIN)
}

fn default_keepalive_timeout() -> NonZeroU64 {
    NonZeroU64::new(30).unwrap_or(NonZeroU64::MIN)
}

fn default_send_timeout() -> NonZeroU64 {
    NonZeroU64::new(30).unwrap_or(NonZeroU64::MIN)
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
    /// How many connections it holds and how long each may take (`[phones.connections]`).
    #[serde(default)]
    pub connections: ConnectionLimits,
}

impl Default for PhonesConfig {
    fn default() -> Self {
        Self {
            listen: default_phones_listen(),
            public_url: None,
            enabled: true,
            connections: ConnectionLimits::default(),
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
        // Only setting variables: the CLI's own (TAPIR_TOKEN, ...) and unknown ones are not
        // keys. The filter sees the name without the prefix, before `__` becomes a dot.
        let settings = Env::prefixed(PREFIX)
            .filter(|rest| setting_path(rest.as_str()).is_some())
            .split("__");
        layered.merge(settings)
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
            cluster: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_workers_leave_a_core_to_the_drivers_unless_set() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let mut http = HttpConfig::default();
        assert_eq!(http.workers_or_default(), cores.saturating_sub(1).max(1));
        http.workers = NonZeroUsize::new(5);
        assert_eq!(http.workers_or_default(), 5);
    }

    #[test]
    fn variables_are_settings_only_below_a_top_level_key() {
        let setting = |p: &[&str]| Variable::Setting(p.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            Variable::of("TAPIR_HTTP__LISTEN"),
            Some(setting(&["http", "listen"]))
        );
        assert_eq!(
            Variable::of("TAPIR_PLUGIN_DIR"),
            Some(setting(&["plugin_dir"]))
        );
        assert_eq!(
            Variable::of("TAPIR_DRIVERS__OFFICE__DIAL_MS"),
            Some(setting(&["drivers", "office", "dial_ms"]))
        );
        for cli in CLI_VARIABLES {
            assert_eq!(Variable::of(cli), Some(Variable::Cli), "{cli}");
        }
        assert_eq!(Variable::of("TAPIR_HTTP_LISTEN"), Some(Variable::Ignored));
        assert_eq!(
            Variable::of("TAPIR_HTTP____LISTEN"),
            Some(Variable::Ignored)
        );
        assert_eq!(Variable::of("TAPIR_HOME"), Some(Variable::Ignored));
        assert_eq!(Variable::of("PATH"), None);
        assert_eq!(Variable::of("TAPIR"), None);
    }

    #[test]
    fn embedded_default_loads_and_runs_only_the_simulated_office() {
        let config: Config = Source::Embedded
            .figment()
            .extract()
            .expect("embedded loads");
        let drivers: Vec<_> = config.drivers.values().map(|d| d.driver.as_str()).collect();
        assert_eq!(drivers, vec![crate::host::SIMULATED_DRIVER]);
        assert!(config.http.listen.ip().is_loopback());
        assert!(config.phones.listen.ip().is_loopback());
    }
}
