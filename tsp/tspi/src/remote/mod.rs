//! Remote mode: the network split. The provider is a thin client of a central `tapir run`
//! host; its lines are the host's lines (filtered per workstation), requests travel over the
//! host's REST API and events arrive over its event stream (SSE).
//!
//! Shape: a local front end ([`Tsp`], numbers passed through unchanged) with one driver, the
//! [`link`]: to the provider this looks exactly like the host inside the library, so the
//! provider module, its dispatcher and its TAPI rules are the same in both modes. The link
//! keeps the mapping between the host's ids and the local ones ([`mirror`], no I/O), speaks
//! HTTP ([`http`]) and reconnects with backoff.
//!
//! - Requests complete exactly once: with the host's `completed` event, with the host's
//!   refusal, or with `Disconnected` when the host is lost while they are pending.
//! - Host lost: every line goes out of service (LINE_LINEDEVSTATE), pending requests complete
//!   with an error, calls keep their last state. Reconnect with backoff; the stream resumes
//!   after the last event seen (`?after=`), or, when the host restarted or its history no
//!   longer reaches back (410 `history_gap`), the lines and calls are reloaded.
//! - Lines that appear or go on the host become LINE_CREATE / LINE_REMOVE.

pub mod http;
pub mod link;
pub mod mirror;

use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tapir_host::config::LogConfig;
use tapir_host::secret::Secret;
use tapir_tsp::{Tsp, TspConfig};

/// The name of the local driver instance standing for the central host.
pub const DRIVER_NAME: &str = "remote";

/// Remote-mode settings: a `[remote]` table in the file named by `TAPIR_CONFIG` or the
/// registry value `Config`, or the registry values `Url`, `Token`, `CaCert`, `Lines`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// The host's API, `http://` or `https://` (`https://tapir.example.com:8780`).
    pub url: String,
    /// An API token with `control` access.
    #[serde(default)]
    pub token: Option<Secret>,
    /// A CA certificate (PEM) to trust for an `https` URL, for a host with its own CA.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// Which of the host's lines this workstation sees: each entry is matched against a line's
    /// key, `driver/key`, name or device id. Empty: every line (a TAPI server).
    #[serde(default)]
    pub lines: Vec<String>,
    /// How long the provider start waits for the host before it reports its lines (seconds);
    /// lines that arrive later are announced with LINE_CREATE.
    #[serde(default = "default_start_wait")]
    pub start_wait_s: f64,
    /// The longest wait between two reconnection attempts (seconds).
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_s: f64,
    /// Where the provider logs (the file's `[log]` table, or the registry value `LogFile`).
    #[serde(skip)]
    pub log: LogConfig,
}

fn default_start_wait() -> f64 {
    5.0
}

fn default_reconnect_max() -> f64 {
    10.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteFile {
    remote: RemoteConfig,
    #[serde(default)]
    log: LogConfig,
}

impl RemoteConfig {
    /// Settings for `url` with everything else at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: None,
            ca_cert: None,
            lines: Vec::new(),
            start_wait_s: default_start_wait(),
            reconnect_max_s: default_reconnect_max(),
            log: LogConfig::default(),
        }
    }

    /// The remote settings in a configuration file's text: `None` when the file has no
    /// `[remote]` table (it is a host configuration then).
    ///
    /// # Errors
    /// A `[remote]` file that is not valid, in a sentence.
    pub fn from_file_text(text: &str) -> Result<Option<Self>, String> {
        let Ok(table) = text.parse::<toml::Table>() else {
            // Not for us to judge: the host's loader reports a broken host configuration.
            return Ok(None);
        };
        if !table.contains_key("remote") {
            return Ok(None);
        }
        let file: RemoteFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut remote = file.remote;
        remote.log = file.log;
        remote.check()?;
        Ok(Some(remote))
    }

    /// Remote settings from the registry values under `HKLM\SOFTWARE\tapir` (`Url`, `Token`,
    /// `CaCert`, `Lines` separated by commas, `LogFile`, `LogLevel`); `None` without `Url`.
    pub fn from_registry() -> Option<Result<Self, String>> {
        use crate::registry::{string, KEY};
        let url = string(KEY, "Url")?;
        let mut remote = Self::new(url);
        remote.token = string(KEY, "Token").map(Secret::new);
        remote.ca_cert = string(KEY, "CaCert").map(PathBuf::from);
        remote.lines = string(KEY, "Lines")
            .map(|l| split_list(&l))
            .unwrap_or_default();
        remote.log.file = string(KEY, "LogFile").map(PathBuf::from);
        if let Some(level) = string(KEY, "LogLevel") {
            remote.log.level = level;
        }
        Some(remote.check().map(|()| remote))
    }

    fn check(&self) -> Result<(), String> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "url {:?} must start with http:// or https://",
                self.url
            ));
        }
        for (name, value) in [
            ("start_wait_s", self.start_wait_s),
            ("reconnect_max_s", self.reconnect_max_s),
        ] {
            if !value.is_finite() || !(0.0..=3600.0).contains(&value) {
                return Err(format!("{name} must be between 0 and 3600 seconds"));
            }
        }
        Ok(())
    }

    /// The line filter.
    pub fn filter(&self) -> mirror::LineFilter {
        mirror::LineFilter::new(self.lines.clone())
    }
}

/// A list written as one string: entries separated by commas, semicolons or line breaks.
pub fn split_list(text: &str) -> Vec<String> {
    text.split([',', ';', '\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Why remote mode could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The HTTP client could not be set up (CA file unreadable, TLS setup).
    #[error("{0}")]
    Setup(String),
    /// The link's thread or runtime could not start.
    #[error("cannot start the link to the host: {0}")]
    Start(String),
}

/// A running remote mode: the local front end and the link feeding it.
pub struct Remote {
    tsp: Arc<Tsp>,
}

impl Remote {
    /// Starts the link and waits up to `start_wait_s` for the host's lines, so that
    /// providerEnumDevices can count them. An unreachable host is no error: the lines arrive
    /// with LINE_CREATE once it answers.
    ///
    /// # Errors
    /// [`RemoteError`].
    pub fn start(config: RemoteConfig) -> Result<Self, RemoteError> {
        let client = http::Client::new(&config)?;
        let tsp = Arc::new(Tsp::new(TspConfig::default()));
        let wait = Duration::from_secs_f64(config.start_wait_s);
        let (first_sync, synced) = std::sync::mpsc::channel();
        tsp.add_driver(DRIVER_NAME, |sink| {
            link::RemoteDriver::start(config, client, sink, first_sync)
                .map(|d| Box::new(d) as Box<dyn tapir_core::PhoneDriver>)
        })
        .map_err(|e| RemoteError::Start(e.to_string()))?;
        if synced.recv_timeout(wait).is_err() {
            tracing::warn!(
                wait_s = wait.as_secs_f64(),
                "The tapir host did not answer in time; its lines will be announced when it does."
            );
        }
        // The lines the link reported are in the front end's tables before they are counted.
        tsp.sync();
        Ok(Self { tsp })
    }

    /// The local front end.
    pub fn tsp(&self) -> &Arc<Tsp> {
        &self.tsp
    }

    /// Stops the link (pending requests complete with an error) and the front end.
    pub fn shutdown(&self) {
        self.tsp.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_file_is_a_remote_file() {
        let text = include_str!("../../install/tsp-remote.toml");
        let remote = RemoteConfig::from_file_text(text)
            .expect("valid")
            .expect("a [remote] file");
        assert_eq!(remote.url, "https://tapir.example.com:8780");
        assert_eq!(remote.lines, vec!["office/100".to_owned()]);
        assert!(remote.log.file.is_some());
        assert_eq!(format!("{:?}", remote.token), "Some([redacted])");
    }

    #[test]
    fn host_files_and_bad_remote_files() {
        assert_eq!(
            RemoteConfig::from_file_text("[http]\nlisten = \"127.0.0.1:1\"\n"),
            Ok(None)
        );
        assert!(RemoteConfig::from_file_text("[remote]\nurl = \"ftp://x\"\n").is_err());
        assert!(RemoteConfig::from_file_text("[remote]\nurl = \"http://x\"\nbogus = 1\n").is_err());
        assert_eq!(split_list(" 100, Sales;\n7 "), vec!["100", "Sales", "7"]);
    }
}
