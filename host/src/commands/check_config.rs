//! `tapir check-config FILE`.

use crate::catalog::Catalog;
use crate::check::check;
use crate::config::Source;
use std::path::Path;
use std::process::ExitCode;

/// Prints every problem as `FILE:LINE:COLUMN: key.path: message`; exit status 1 when any.
pub fn run(file: &Path) -> ExitCode {
    let checked = check(&Source::File(file.to_owned()), |c| {
        Catalog::load(c.plugin_dir.as_deref())
    });
    for note in &checked.notes {
        eprintln!("{note}");
    }
    if checked.problems.is_empty() {
        println!("{}: ok", file.display());
        return ExitCode::SUCCESS;
    }
    for problem in &checked.problems {
        eprintln!("{}:{problem}", file.display());
    }
    eprintln!("{} problem(s) found.", checked.problems.len());
    ExitCode::FAILURE
}
