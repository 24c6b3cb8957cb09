//! One module per `tapir` subcommand.

pub mod call;
pub mod check_config;
pub mod format;
pub mod listing;
pub mod plugins;
pub mod remote;
pub mod run;
pub mod snom;

use crate::catalog::Catalog;
use crate::check::{check, Checked};
use crate::config::{Config, Source};

/// Reads and checks the configuration; prints every problem to stderr when there are any.
pub fn load(source: &Source) -> Option<(Config, Catalog)> {
    let Checked {
        config,
        catalog,
        problems,
        notes,
    } = check(source, |c| Catalog::load(c.plugin_dir.as_deref()));
    for note in &notes {
        eprintln!("{note}");
    }
    if !problems.is_empty() {
        let name = source
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "embedded default".to_owned());
        for problem in &problems {
            eprintln!("{name}:{problem}");
        }
        return None;
    }
    Some((config?, catalog?))
}
