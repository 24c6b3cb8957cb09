//! `tapir plugins`: the drivers this host can start and the plugin files it refused.

use crate::catalog::{Catalog, Origin};
use std::path::Path;
use std::process::ExitCode;

/// Lists drivers (name, version, origin) and refused files (path, reason).
pub fn run(dir: Option<&Path>, json: bool) -> ExitCode {
    let catalog = Catalog::load(dir);
    if json {
        let out = serde_json::json!({
            "drivers": catalog.entries(),
            "refused": catalog.refused(),
        });
        println!("{out:#}");
        return ExitCode::SUCCESS;
    }
    println!("{:<16} {:<10} ORIGIN", "DRIVER", "VERSION");
    for entry in catalog.entries() {
        let origin = match &entry.origin {
            Origin::BuiltIn => "built-in".to_owned(),
            Origin::File(p) => p.display().to_string(),
        };
        println!("{:<16} {:<10} {origin}", entry.name, entry.version);
    }
    if !catalog.refused().is_empty() {
        println!();
        println!("REFUSED");
        for refused in catalog.refused() {
            println!("{}: {}", refused.path.display(), refused.reason);
        }
    }
    ExitCode::SUCCESS
}
