//! The configured number plans behind the front end's number-rules hook: the host's plan for
//! every line, and a line's own plan where `[[lines]]` gives one (its parts replace the
//! host's, see `NumberPlanConfig::overlay`).

use crate::config::Config;
use std::collections::HashMap;
use tapir_core::numbers::{Category, Formatted, NumberPlan, NumberPlanError, PlanProblem};
use tapir_tsp::{LineRef, NumberRules};

/// Compiled plans, found by (driver instance, line key).
#[derive(Debug, Default)]
pub struct HostNumbers {
    default: NumberPlan,
    lines: HashMap<(String, String), NumberPlan>,
}

impl HostNumbers {
    /// Compiles the host's plan and every line's.
    ///
    /// # Errors
    /// Every problem, each with its key path (`numbers.incoming[2]`, `lines[0].numbers.dial[0]`).
    pub fn compile(config: &Config) -> Result<Self, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let default = NumberPlan::compile(&config.numbers)
            .map_err(|e| problems.extend(describe("numbers", &e)))
            .unwrap_or_default();
        let mut lines = HashMap::new();
        for (i, line) in config.lines.iter().enumerate() {
            let Some(own) = &line.numbers else { continue };
            let merged = config.numbers.overlay(own);
            match NumberPlan::compile(&merged) {
                Ok(plan) => {
                    lines.insert((line.driver.clone(), line.key.clone()), plan);
                }
                Err(e) => problems.extend(describe(&format!("lines[{i}].numbers"), &e)),
            }
        }
        if problems.is_empty() {
            Ok(Self { default, lines })
        } else {
            Err(problems)
        }
    }

    /// The plan of a line.
    pub fn plan(&self, driver: &str, key: &str) -> &NumberPlan {
        self.lines
            .get(&(driver.to_owned(), key.to_owned()))
            .unwrap_or(&self.default)
    }

    fn apply(&self, line: LineRef<'_>, category: Category, number: &str) -> String {
        let formatted: Formatted = self
            .plan(line.driver, line.key.as_str())
            .format(category, number);
        if formatted.changed() {
            tracing::debug!(line = %line.id, category = category.name(), raw = number, shown = %formatted.number, "Number formatted.");
        }
        formatted.number
    }
}

/// One (path, message) per problem of a plan.
fn describe(base: &str, error: &NumberPlanError) -> Vec<(String, String)> {
    error
        .problems
        .iter()
        .map(|p| {
            let path = match p {
                PlanProblem::Rule(r) => {
                    format!(
                        "{base}.{}[{}]",
                        r.category.name(),
                        r.position.saturating_sub(1)
                    )
                }
                PlanProblem::Location(l) => format!("{base}.location.{}", l.field),
                _ => base.to_owned(),
            };
            (path, p.to_string())
        })
        .collect()
}

impl NumberRules for HostNumbers {
    fn dial(&self, line: LineRef<'_>, number: &str) -> String {
        self.apply(line, Category::Dial, number)
    }

    fn incoming(&self, line: LineRef<'_>, number: &str) -> String {
        self.apply(line, Category::Incoming, number)
    }

    fn outgoing(&self, line: LineRef<'_>, number: &str) -> String {
        self.apply(line, Category::Outgoing, number)
    }
}
