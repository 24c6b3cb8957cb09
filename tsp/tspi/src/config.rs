//! Where the provider's configuration comes from, and which mode it asks for.
//!
//! Sources, first match wins:
//! 1. the environment variable `TAPIR_CONFIG` naming a file;
//! 2. on Windows, the registry value `HKEY_LOCAL_MACHINE\SOFTWARE\tapir\Config` naming a file
//!    (TAPISRV runs as a service, whose environment is awkward to set);
//! 3. on Windows, the registry value `HKEY_LOCAL_MACHINE\SOFTWARE\tapir\Url`: remote mode
//!    configured in the registry alone (values `Url`, `Token`, `CaCert`, `Lines`).
//!
//! A file whose TOML has a `[remote]` table is a remote-mode file (see [`crate::remote`]);
//! any other file is a host configuration, the same one `tapir run --config` takes, and the
//! host runs inside the library.

use crate::backend::Backend;
use crate::registry;
use crate::remote::RemoteConfig;
use std::path::PathBuf;
use tapir_host::config::Source;
use tapir_host::embedded::Embedded;

/// The environment variable naming the configuration file.
pub const ENV_VAR: &str = "TAPIR_CONFIG";
/// The registry key (under HKEY_LOCAL_MACHINE) holding the configuration on Windows.
pub const REGISTRY_KEY: &str = registry::KEY;
/// The registry value naming the configuration file on Windows.
pub const REGISTRY_VALUE: &str = "Config";

/// Why the provider could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Neither the environment variable nor the registry names a configuration.
    #[error(
        "no configuration: set {ENV_VAR}, or HKLM\\{REGISTRY_KEY}\\{REGISTRY_VALUE} (a file) \
         or HKLM\\{REGISTRY_KEY}\\Url (remote mode)"
    )]
    NotSet,
    /// The file was found but could not be read, or its check failed (problems were logged).
    #[error("configuration {0} was refused")]
    Refused(PathBuf),
    /// The remote-mode settings are not usable.
    #[error("remote mode: {0}")]
    Remote(String),
}

/// What the configuration asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Run the host inside the library with this host configuration file.
    Embedded(PathBuf),
    /// Be a thin client of a central `tapir run` host.
    Remote(RemoteConfig),
}

/// The configuration to use.
///
/// # Errors
/// [`ConfigError`].
pub fn locate() -> Result<Mode, ConfigError> {
    let file = std::env::var_os(ENV_VAR)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| registry::string(REGISTRY_KEY, REGISTRY_VALUE).map(PathBuf::from));
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).map_err(|error| {
            tracing::error!(path = %path.display(), %error, "Cannot read the configuration.");
            ConfigError::Refused(path.clone())
        })?;
        return match RemoteConfig::from_file_text(&text) {
            Ok(Some(remote)) => Ok(Mode::Remote(remote)),
            Ok(None) => Ok(Mode::Embedded(path)),
            Err(error) => Err(ConfigError::Remote(format!("{}: {error}", path.display()))),
        };
    }
    match RemoteConfig::from_registry() {
        Some(Ok(remote)) => Ok(Mode::Remote(remote)),
        Some(Err(error)) => Err(ConfigError::Remote(error)),
        None => Err(ConfigError::NotSet),
    }
}

/// Reads the configuration and starts what it asks for: the host inside the library, or the
/// link to a central host.
///
/// # Errors
/// [`ConfigError`].
pub fn start() -> Result<Backend, ConfigError> {
    match locate()? {
        Mode::Embedded(path) => start_embedded(path).map(Backend::Embedded),
        Mode::Remote(remote) => {
            // A second provider start in the same process finds a subscriber already set.
            let _ = tapir_host::logging::init(&remote.log);
            crate::remote::Remote::start(remote)
                .map(Backend::Remote)
                .map_err(|e| ConfigError::Remote(e.to_string()))
        }
    }
}

/// Reads and checks a host configuration, then starts every driver instance in it.
fn start_embedded(path: PathBuf) -> Result<Embedded, ConfigError> {
    let source = Source::File(path.clone());
    let (config, catalog) =
        tapir_host::commands::load(&source).ok_or(ConfigError::Refused(path))?;
    // A second provider start in the same process finds a subscriber already set: keep it.
    let _ = tapir_host::logging::init(&config.log);
    let host = Embedded::start(config, &catalog);
    for (name, error) in &host.failed() {
        tracing::error!(instance = %name, %error, "Driver instance failed to start.");
    }
    Ok(host)
}
