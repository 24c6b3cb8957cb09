//! `tapir format`: the check tool for number rules. Shows which rule matched a number (or
//! none), every step the location applied, and the result.

use crate::config::Source;
use crate::numbers::HostNumbers;
use std::path::PathBuf;
use std::process::ExitCode;
use tapir_core::numbers::Category;

/// Prints how `number` is formatted in `category` on `line` (a `[[lines]]` entry named by
/// `KEY`, `DRIVER/KEY` or its pinned id; the host's plan when no line is named).
pub fn run(
    config: Option<PathBuf>,
    line: Option<String>,
    category: &str,
    number: &str,
    json: bool,
) -> ExitCode {
    let category: Category = match category.parse() {
        Ok(c) => c,
        Err(error) => {
            eprintln!("tapir format: {error}");
            return ExitCode::from(2);
        }
    };
    let source = config.map(Source::File).unwrap_or(Source::Embedded);
    let Some((config, _catalog)) = super::load(&source) else {
        return ExitCode::from(2);
    };
    let numbers = match HostNumbers::compile(&config) {
        Ok(n) => n,
        Err(problems) => {
            for (path, message) in problems {
                eprintln!("{path}: {message}");
            }
            return ExitCode::from(2);
        }
    };
    let (driver, key) = match &line {
        None => (String::new(), String::new()),
        Some(name) => {
            let found = config.lines.iter().find(|l| {
                l.key == *name
                    || format!("{}/{}", l.driver, l.key) == *name
                    || l.id.map(|id| id.to_string()).as_deref() == Some(name.as_str())
            });
            match found {
                Some(l) => (l.driver.clone(), l.key.clone()),
                None => {
                    eprintln!(
                        "tapir format: no [[lines]] entry {name:?}; lines without one use the host's plan"
                    );
                    return ExitCode::from(2);
                }
            }
        }
    };
    let formatted = numbers.plan(&driver, &key).format(category, number);
    if json {
        let out = serde_json::json!({
            "category": category.name(),
            "input": number,
            "result": formatted.number,
            "matched": formatted.matched.as_ref().map(|m| serde_json::json!({
                "position": m.position,
                "search": m.search,
                "replace": m.replace,
                "comment": m.comment,
            })),
            "steps": formatted.steps,
        });
        println!("{out:#}");
    } else {
        println!("{formatted}");
        match &formatted.matched {
            Some(m) => println!(
                "matched: {} rule {} (search `{}`, replace `{}`)",
                category.name(),
                m.position,
                m.search,
                m.replace
            ),
            None => println!("matched: no rule"),
        }
    }
    ExitCode::SUCCESS
}
