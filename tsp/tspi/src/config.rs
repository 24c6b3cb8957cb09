//! Where the in-library host finds its configuration: the file named by the `TAPIR_CONFIG`
//! environment variable or, on Windows, by the registry value
//! `HKEY_LOCAL_MACHINE\SOFTWARE\tapir\Config` (TAPISRV runs as a service, whose environment
//! is awkward to set). The environment variable wins when both are set.

use std::path::PathBuf;
use tapir_host::config::Source;
use tapir_host::embedded::Embedded;

/// The environment variable naming the configuration file.
pub const ENV_VAR: &str = "TAPIR_CONFIG";
/// The registry key (under HKEY_LOCAL_MACHINE) holding the configuration path on Windows.
pub const REGISTRY_KEY: &str = "SOFTWARE\\tapir";
/// The registry value holding the configuration path on Windows.
pub const REGISTRY_VALUE: &str = "Config";

/// Why the host could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Neither the environment variable nor the registry value names a file.
    NotSet,
    /// The file was found but could not be read, or its check failed (problems were logged).
    Refused(PathBuf),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::NotSet => write!(
                f,
                "no configuration: set {ENV_VAR} or HKLM\\{REGISTRY_KEY}\\{REGISTRY_VALUE}"
            ),
            ConfigError::Refused(path) => {
                write!(f, "configuration {} was refused", path.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The configuration file to use.
///
/// # Errors
/// [`ConfigError::NotSet`].
pub fn locate() -> Result<PathBuf, ConfigError> {
    if let Some(path) = std::env::var_os(ENV_VAR).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    registry_path().ok_or(ConfigError::NotSet)
}

/// Reads and checks the configuration, then starts every driver instance in it.
///
/// # Errors
/// [`ConfigError`].
pub fn start_host() -> Result<Embedded, ConfigError> {
    let path = locate()?;
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

#[cfg(not(windows))]
fn registry_path() -> Option<PathBuf> {
    None
}

#[cfg(windows)]
#[allow(unsafe_code)]
fn registry_path() -> Option<PathBuf> {
    use std::os::windows::ffi::OsStringExt;
    use windows_sys::Win32::Foundation::ERROR_SUCCESS;
    use windows_sys::Win32::System::Registry::{RegGetValueW, HKEY_LOCAL_MACHINE, RRF_RT_REG_SZ};
    let key: Vec<u16> = REGISTRY_KEY.encode_utf16().chain(Some(0)).collect();
    let value: Vec<u16> = REGISTRY_VALUE.encode_utf16().chain(Some(0)).collect();
    let mut data = vec![0u16; 1024];
    let mut bytes = (data.len() * 2) as u32;
    // SAFETY: key and value are NUL-terminated UTF-16 buffers that outlive the call; `data`
    // has `bytes` writable bytes, and RegGetValueW writes at most that many and updates it.
    let status = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_SZ,
            std::ptr::null_mut(),
            data.as_mut_ptr().cast(),
            &mut bytes,
        )
    };
    if status != ERROR_SUCCESS {
        return None;
    }
    let units = (bytes as usize / 2).min(data.len());
    let end = data[..units].iter().position(|u| *u == 0).unwrap_or(units);
    (end > 0).then(|| PathBuf::from(std::ffi::OsString::from_wide(&data[..end])))
}
