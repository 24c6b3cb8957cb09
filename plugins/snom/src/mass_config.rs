//! `tapir snom mass-config`: one snom XML settings file per phone type holding the Action URLs
//! (with the mass-configuration secret), to merge into an existing provisioning server.

use crate::config::SnomConfig;
use crate::settings;
use std::path::{Path, PathBuf};

/// Why the files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MassConfigError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// No mass-configuration secret is configured.
    #[error("set mass_config_secret in the snom driver's section first")]
    NoSecret,
    /// No callback URL.
    #[error("no callback URL: set public_url or the host's [phones] public_url")]
    NoUrl,
    /// A file could not be written.
    #[error("cannot write {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// The file contents per phone type: `(file name, XML)`.
///
/// # Errors
/// [`MassConfigError`] when the secret or URL is missing.
pub fn files(
    config: &SnomConfig,
    callback_base: Option<&str>,
) -> Result<Vec<(String, String)>, MassConfigError> {
    let secret = config
        .mass_config_secret
        .as_ref()
        .ok_or(MassConfigError::NoSecret)?;
    let base = config
        .public_url
        .as_deref()
        .or(callback_base)
        .ok_or(MassConfigError::NoUrl)?;
    let urls = settings::required_mass(base.trim_end_matches('/'), secret.expose());
    let xml = settings::settings_xml(&urls, "RW");
    let mut out: Vec<(String, String)> = config
        .phone_types
        .iter()
        .filter(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(|t| (format!("{t}.xml"), xml.clone()))
        .collect();
    out.push(("snom-tapir-generic.xml".to_owned(), xml));
    Ok(out)
}

/// Writes the files into `dir` (created if needed); returns their paths.
///
/// # Errors
/// [`MassConfigError`].
pub fn write(
    config_json: &str,
    callback_base: Option<&str>,
    dir: &Path,
) -> Result<Vec<PathBuf>, MassConfigError> {
    let config = SnomConfig::parse(config_json)?;
    let files = files(&config, callback_base)?;
    std::fs::create_dir_all(dir).map_err(|e| MassConfigError::Io(dir.to_owned(), e))?;
    let mut written = Vec::new();
    for (name, xml) in files {
        let path = dir.join(name);
        std::fs::write(&path, xml).map_err(|e| MassConfigError::Io(path.clone(), e))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_per_type() {
        let config =
            SnomConfig::parse(r#"{"mass_config_secret": "m4ss", "phone_types": ["snomD785"]}"#)
                .expect("parses");
        let files = files(&config, Some("http://pbx:8781/phones/office")).expect("files");
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].0, "snomD785.xml");
        assert!(files[0].1.contains("<action_incoming_url perm=\"RW\">http://pbx:8781/phones/office/m/m4ss/incoming?mac=$mac"));
        assert!(matches!(
            super::files(&SnomConfig::default(), Some("http://x")),
            Err(MassConfigError::NoSecret)
        ));
    }
}
