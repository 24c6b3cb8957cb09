//! Why a number plan was refused. Compiling collects every problem before it fails, so that one
//! run of the check tool shows all the mistakes in a config file.

use super::config::Category;
use std::fmt;

/// A number plan that cannot be used, with every problem found in it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct NumberPlanError {
    /// The problems, location first, then rules in config order.
    pub problems: Vec<PlanProblem>,
}

impl fmt::Display for NumberPlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "number plan refused: {one}"),
            many => {
                write!(f, "number plan refused, {} problems:", many.len())?;
                for p in many {
                    write!(f, "\n- {p}")?;
                }
                Ok(())
            }
        }
    }
}

/// One problem in a number plan.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanProblem {
    /// A rule cannot be compiled.
    #[error(transparent)]
    Rule(#[from] RuleProblem),
    /// A location setting is missing or malformed.
    #[error(transparent)]
    Location(#[from] LocationProblem),
}

/// A rule that cannot be compiled, and where it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{category} rule {position} (search `{search}`): {kind}")]
pub struct RuleProblem {
    /// The list the rule is in.
    pub category: Category,
    /// Its place in that list, counting from 1 as the config file reads.
    pub position: usize,
    /// The rule's search expression as written.
    pub search: String,
    /// What is wrong with it.
    pub kind: RuleProblemKind,
}

/// What is wrong with a rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleProblemKind {
    /// The search expression is not a valid regular expression.
    #[error("the search expression does not compile: {0}")]
    BadRegex(#[source] regex::Error),
    /// The search expression is empty, which would match every number.
    #[error("the search expression is empty (write `^` to match every number)")]
    EmptySearch,
    /// The replacement names a group the search expression does not have.
    #[error("the replacement uses group {group}, but the search expression has only {groups}")]
    MissingGroup {
        /// The group the replacement asks for.
        group: usize,
        /// How many groups the search expression has.
        groups: usize,
    },
    /// The replacement has a malformed `\{…}` group reference.
    #[error("the replacement has a malformed group reference at byte {at}: write \\{{N}} with a number N")]
    BadGroupReference {
        /// Byte offset of the backslash in the replacement.
        at: usize,
    },
}

/// A location setting that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("location {field} `{value}`: {reason}")]
pub struct LocationProblem {
    /// The setting's name in the config.
    pub field: &'static str,
    /// The value as written (empty when missing).
    pub value: String,
    /// Why it is refused.
    pub reason: &'static str,
}
