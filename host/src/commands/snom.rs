//! `tapir snom mass-config`: writes the snom driver's mass-configuration files (one snom XML
//! settings file per phone type) for every `driver = "snom"` instance of the configuration.

use crate::config::Source;
use std::path::Path;
use std::process::ExitCode;

/// Writes the files into `out` (a sub-folder per instance when there are several).
/// Exit status: 0 written, 2 bad configuration or nothing to write, 1 a write failed.
pub fn mass_config(config: &Path, out: &Path) -> ExitCode {
    let Some((config, _catalog)) = super::load(&Source::File(config.to_owned())) else {
        return ExitCode::from(2);
    };
    let instances: Vec<_> = config
        .drivers
        .iter()
        .filter(|(_, d)| d.driver == "snom" && d.enabled)
        .collect();
    if instances.is_empty() {
        eprintln!("tapir snom mass-config: no enabled driver with driver = \"snom\"");
        return ExitCode::from(2);
    }
    let base = config.phones.callback_base();
    for (name, section) in &instances {
        let dir = if instances.len() == 1 {
            out.to_owned()
        } else {
            out.join(name.as_str())
        };
        let instance_base = base.as_ref().map(|b| format!("{b}/{name}"));
        match tapir_plugin_snom::mass_config::write(
            &section.settings_json(),
            instance_base.as_deref(),
            &dir,
        ) {
            Ok(files) => {
                for file in files {
                    println!("{}", file.display());
                }
            }
            Err(error) => {
                eprintln!("tapir snom mass-config: [drivers.{name}]: {error}");
                return ExitCode::from(match error {
                    tapir_plugin_snom::mass_config::MassConfigError::Io(..) => 1,
                    _ => 2,
                });
            }
        }
    }
    ExitCode::SUCCESS
}
