//! The host side: loading plugin libraries, one by one or a whole folder, and building drivers
//! from them.
//!
//! Each file is opened with `lib_header_from_path(..).init_root_module()`, never with
//! `RootModule::load_from_file`: the latter caches the first module it loads for the root
//! module type and returns it for every later path. Libraries are never unloaded (abi_stable
//! does not support it); upgrading a driver means restarting the host.

use crate::adapter::{DylibDriver, HostSink};
use crate::ffi::{DriverModRef, FfiSink_TO};
use crate::wire;
use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, ROk, RStr};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tapir_core::{DriverError, PhoneDriver, SharedSink};

/// At most this many lines of abi_stable's layout diagnostic go into a [`LoadError`]; the full
/// diagnostic runs to hundreds of lines.
const MAX_REASON_LINES: usize = 3;

/// Why a file was not loaded as a plugin. The message names the file and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file does not have the platform's shared-library extension.
    #[error("{path}: not a shared library (expected a .{expected} file)")]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// The extension looked for (`so`, `dll`, `dylib`).
        expected: &'static str,
    },
    /// The operating system could not open the file as a library (missing, not a library,
    /// wrong architecture, unresolved symbols).
    #[error("{path}: cannot open: {reason}")]
    CannotOpen {
        /// The file.
        path: PathBuf,
        /// The loader's reason.
        reason: String,
    },
    /// The library opened but exports no tapir root module.
    #[error("{path}: not a tapir plugin (no root module symbol)")]
    NotAPlugin {
        /// The file.
        path: PathBuf,
    },
    /// The library is a plugin built against an incompatible interface (another
    /// tapir-plugin-abi or abi_stable version, or a different layout).
    #[error("{path}: incompatible plugin interface: {reason}")]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// A short reason (the first lines of abi_stable's diagnostic).
        reason: String,
    },
    /// The library's root module failed to initialise.
    #[error("{path}: plugin initialisation failed: {reason}")]
    InitFailed {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The plugin folder itself could not be read.
    #[error("{path}: cannot read the plugin folder: {reason}")]
    CannotReadFolder {
        /// The folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl LoadError {
    /// The file (or folder) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::NotALibrary { path, .. }
            | LoadError::CannotOpen { path, .. }
            | LoadError::NotAPlugin { path }
            | LoadError::Incompatible { path, .. }
            | LoadError::InitFailed { path, .. }
            | LoadError::CannotReadFolder { path, .. } => path,
        }
    }

    fn from_library(path: &Path, error: LibraryError) -> Self {
        let path = path.to_path_buf();
        match error {
            LibraryError::OpenError { err, .. } => LoadError::CannotOpen {
                path,
                reason: err.to_string(),
            },
            LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin { path },
            LibraryError::RootModule { err, .. } => LoadError::InitFailed {
                path,
                reason: short_reason(&err.to_string()),
            },
            LibraryError::Many(errors) => match errors.into_iter().next() {
                Some(first) => LoadError::from_library(&path, first),
                None => LoadError::InitFailed {
                    path,
                    reason: "unknown loading error".to_owned(),
                },
            },
            // Version mismatch, layout mismatch, other abi_stable or C ABI: all say "built
            // against something else".
            other => LoadError::Incompatible {
                path,
                reason: short_reason(&other.to_string()),
            },
        }
    }
}

/// Shortens abi_stable's diagnostics (hundreds of lines of type layouts) to what a person
/// needs: each distinct `Error:` line with the `Expected:`/`Found:` values that follow it (their
/// first lines), at most [`MAX_REASON_LINES`] of them, joined with "; ". Text without `Error:`
/// lines is reduced to its first non-empty lines.
fn short_reason(full: &str) -> String {
    let lines: Vec<&str> = full
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let mut picked: Vec<String> = Vec::new();
    let mut at = 0;
    while at < lines.len() && picked.len() < MAX_REASON_LINES {
        let Some(message) = lines[at].strip_prefix("Error:") else {
            at += 1;
            continue;
        };
        let mut reason = message.trim().to_owned();
        // abi_stable writes "Expected:" / value / "Found:" / value after the error line.
        if let [expected_tag, expected, found_tag, found, ..] = &lines[at + 1..] {
            if *expected_tag == "Expected:" && *found_tag == "Found:" {
                reason = format!("{reason} (expected {expected}, found {found})");
                at += 4;
            }
        }
        if !picked.contains(&reason) {
            picked.push(reason);
        }
        at += 1;
    }
    if picked.is_empty() {
        picked = lines
            .iter()
            .take(MAX_REASON_LINES)
            .map(|line| (*line).to_owned())
            .collect();
    }
    picked.join("; ")
}

/// A plugin library that loaded and passed the interface checks.
#[derive(Clone)]
pub struct LoadedPlugin {
    /// The driver's name, used in configuration (`driver = "..."`).
    pub name: String,
    /// The driver's own version.
    pub version: String,
    /// One sentence about the driver.
    pub summary: String,
    /// The library file.
    pub path: PathBuf,
    /// A working configuration section, as JSON.
    pub example_config: String,
    module: DriverModRef,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("summary", &self.summary)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// Checks a configuration section (JSON) without building anything.
    ///
    /// # Errors
    /// Returns the plugin's message when the configuration is wrong (or the plugin panicked
    /// while checking it).
    pub fn validate(&self, config_json: &str) -> Result<(), String> {
        match (self.module.validate())(RStr::from_str(config_json)) {
            ROk(()) => Ok(()),
            RErr(message) => Err(message.into_string()),
        }
    }

    /// Builds a driver instance reporting to `sink`. The result behaves exactly like a
    /// built-in driver: refusals and panics in `submit` come back as `Err` for that request,
    /// and events and completions from the plugin's threads go straight to `sink`.
    ///
    /// # Errors
    /// Returns the plugin's error when the configuration is refused or the build fails (a
    /// panic while building is reported as `OperationFailed`).
    pub fn build(
        &self,
        config_json: &str,
        sink: SharedSink,
    ) -> Result<Box<dyn PhoneDriver>, DriverError> {
        let plugin: Arc<str> = Arc::from(self.name.as_str());
        let host_sink = FfiSink_TO::from_value(
            HostSink {
                sink,
                plugin: plugin.clone(),
            },
            TD_Opaque,
        );
        match (self.module.new_driver())(RStr::from_str(config_json), host_sink) {
            ROk(driver) => Ok(Box::new(DylibDriver { driver, plugin })),
            RErr(error) => Err(wire::decode_error(error.as_str())),
        }
    }
}

/// A file in the plugin folder that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedPlugin {
    /// The file.
    pub path: PathBuf,
    /// Why it was refused.
    pub error: LoadError,
}

/// What [`scan_dir`] found.
#[derive(Debug, Default)]
pub struct PluginScan {
    /// The plugins that loaded, in file-name order.
    pub loaded: Vec<LoadedPlugin>,
    /// The files that did not, in file-name order.
    pub refused: Vec<RefusedPlugin>,
}

/// Loads one plugin library.
///
/// Loading runs the library's initialisers and keeps it loaded for the life of the process.
///
/// # Errors
/// See [`LoadError`]: the file cannot be opened, exports no tapir root module, was built
/// against an incompatible interface, or failed to initialise.
pub fn load_plugin(path: &Path) -> Result<LoadedPlugin, LoadError> {
    let module = lib_header_from_path(path)
        .and_then(|header| header.init_root_module::<DriverModRef>())
        .map_err(|e| LoadError::from_library(path, e))?;
    Ok(LoadedPlugin {
        name: (module.name())().as_str().to_owned(),
        version: (module.version())().as_str().to_owned(),
        summary: (module.summary())().as_str().to_owned(),
        example_config: (module.example_config())().as_str().to_owned(),
        path: path.to_path_buf(),
        module,
    })
}

/// Loads every plugin in a folder.
///
/// Every regular file is considered, in sorted order. Files without the platform's library
/// extension are refused as "not a shared library"; each library is loaded on its own, and one
/// bad file never stops the rest. A folder that cannot be read gives one refusal for the
/// folder itself.
pub fn scan_dir(dir: &Path) -> PluginScan {
    let mut scan = PluginScan::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            scan.refused.push(RefusedPlugin {
                path: dir.to_path_buf(),
                error: LoadError::CannotReadFolder {
                    path: dir.to_path_buf(),
                    reason: e.to_string(),
                },
            });
            return scan;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        // `metadata` follows symbolic links, so a link to a library counts as a library.
        .filter(|path| path.metadata().map(|m| m.is_file()).unwrap_or(false))
        .collect();
    files.sort();
    for path in files {
        let result = if is_library(&path) {
            load_plugin(&path)
        } else {
            Err(LoadError::NotALibrary {
                path: path.clone(),
                expected: std::env::consts::DLL_EXTENSION,
            })
        };
        match result {
            Ok(plugin) => scan.loaded.push(plugin),
            Err(error) => scan.refused.push(RefusedPlugin { path, error }),
        }
    }
    scan
}

fn is_library(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext == std::env::consts::DLL_EXTENSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reason_keeps_error_lines_with_their_values() {
        let full = "Compared <this>:\n  type:DriverMod\n\nError:incompatible type size\nExpected:\n    48\nFound:\n    40\n\nError:too many fields\nExpected:\n 6\nFound:\n 5\nError:too many fields\nExpected:\n 6\nFound:\n 5\nError:mismatched type\nExpected:\n RString\nFound:\n u32\nError:a fourth";
        assert_eq!(
            short_reason(full),
            "incompatible type size (expected 48, found 40); too many fields (expected 6, found 5); mismatched type (expected RString, found u32)"
        );
        assert_eq!(short_reason("Error:bare"), "bare");
        assert_eq!(short_reason("\n first \nsecond\n"), "first; second");
    }

    #[test]
    fn a_folder_that_cannot_be_read_is_one_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let scan = scan_dir(&missing);
        assert!(scan.loaded.is_empty());
        assert_eq!(scan.refused.len(), 1);
        assert!(matches!(
            scan.refused[0].error,
            LoadError::CannotReadFolder { .. }
        ));
        assert!(scan.refused[0].error.to_string().contains("absent"));
    }

    #[test]
    fn files_are_refused_in_sorted_order_and_subfolders_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.txt"), "x").unwrap();
        std::fs::write(dir.path().join("a.toml"), "x").unwrap();
        let junk = format!("c.{}", std::env::consts::DLL_EXTENSION);
        std::fs::write(dir.path().join(&junk), b"\x00\x01 junk").unwrap();
        std::fs::create_dir(dir.path().join("sub.so")).unwrap();
        let scan = scan_dir(dir.path());
        assert!(scan.loaded.is_empty());
        let names: Vec<String> = scan
            .refused
            .iter()
            .map(|r| r.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["a.toml".to_owned(), "b.txt".to_owned(), junk]);
        assert!(matches!(
            scan.refused[0].error,
            LoadError::NotALibrary { .. }
        ));
        assert!(
            matches!(scan.refused[2].error, LoadError::CannotOpen { .. }),
            "{}",
            scan.refused[2].error
        );
    }

    #[test]
    fn library_errors_map_to_load_errors() {
        use abi_stable::library::RootModuleError;
        use abi_stable::sabi_types::{VersionNumber, VersionStrings};
        let path = Path::new("/plugins/libx.so");
        let version = |minor| VersionNumber {
            major: 0,
            minor,
            patch: 0,
        };
        let mismatch = LoadError::from_library(
            path,
            LibraryError::IncompatibleVersionNumber {
                library_name: "tapir_plugin",
                expected_version: version(2),
                actual_version: version(1),
            },
        );
        assert!(
            matches!(mismatch, LoadError::Incompatible { .. }),
            "{mismatch}"
        );
        assert!(mismatch.to_string().contains("0.1.0"), "{mismatch}");
        let failed = LoadError::from_library(
            path,
            LibraryError::RootModule {
                err: RootModuleError::Unwound,
                module_name: "tapir_plugin",
                version: VersionStrings::new("0.1.0"),
            },
        );
        assert!(matches!(failed, LoadError::InitFailed { .. }), "{failed}");
        assert!(failed
            .to_string()
            .starts_with("/plugins/libx.so: plugin initialisation failed"));
        let many = LoadError::from_library(
            path,
            LibraryError::Many(
                vec![LibraryError::RootModule {
                    err: RootModuleError::Unwound,
                    module_name: "tapir_plugin",
                    version: VersionStrings::new("0.1.0"),
                }]
                .into(),
            ),
        );
        assert_eq!(many, failed);
    }

    #[test]
    fn host_side_types_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<LoadedPlugin>();
        shareable::<PluginScan>();
        shareable::<LoadError>();
    }

    #[test]
    fn a_missing_file_cannot_be_opened() {
        let error = load_plugin(Path::new("/nonexistent/libnothing.so")).unwrap_err();
        assert!(matches!(error, LoadError::CannotOpen { .. }), "{error}");
        assert!(error
            .to_string()
            .starts_with("/nonexistent/libnothing.so: cannot open"));
    }
}
