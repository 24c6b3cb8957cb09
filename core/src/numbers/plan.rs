//! The compiled number plan and the one function every number goes through.

use super::config::{Category, NumberPlanConfig};
use super::error::{NumberPlanError, PlanProblem};
use super::location::{Conversion, Location};
use super::rules::RuleList;
use serde::Serialize;
use std::fmt;

/// A checked number plan, ready to format numbers. Cheap to share; formatting does not mutate.
#[derive(Debug, Clone, Default)]
pub struct NumberPlan {
    location: Option<Location>,
    dial: RuleList,
    incoming: RuleList,
    outgoing: RuleList,
}

/// The rule that changed a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchedRule {
    /// Its place in the category's list, from 1.
    pub position: usize,
    /// Its search expression.
    pub search: String,
    /// Its replacement.
    pub replace: String,
    /// Its comment, if any.
    pub comment: Option<String>,
}

/// A formatted number, with the number it came from and how it got there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Formatted {
    /// The number to use: to dial for [`Category::Dial`], to report to the application
    /// otherwise. Empty when a rule withholds the number.
    pub number: String,
    /// The number exactly as it was given.
    pub raw: String,
    /// The rule that matched, or `None` when no rule did.
    pub matched: Option<MatchedRule>,
    /// What happened, one line a step, for the check tool and for logs.
    pub steps: Vec<String>,
}

impl MatchedRule {
    /// Its index in the category's list, from 0.
    pub fn index(&self) -> usize {
        self.position.saturating_sub(1)
    }
}

impl Formatted {
    /// Whether the number came out different from the raw one.
    pub fn changed(&self) -> bool {
        self.number != self.raw
    }
}

/// The check tool's report: one line a step, then the result.
impl fmt::Display for Formatted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            writeln!(f, "{step}")?;
        }
        write!(f, "result: `{}`", self.number)
    }
}

impl NumberPlan {
    /// Checks a config and compiles its rules.
    ///
    /// # Errors
    /// A [`NumberPlanError`] listing every problem: location settings first, then each rule
    /// that does not compile with its category, position (from 1) and the reason, in config
    /// order. Nothing stops at the first problem.
    pub fn compile(cfg: &NumberPlanConfig) -> Result<NumberPlan, NumberPlanError> {
        let mut problems: Vec<PlanProblem> = Vec::new();
        let location = match cfg.location.as_ref().map(Location::compile) {
            None => None,
            Some(Ok(l)) => Some(l),
            Some(Err(ps)) => {
                problems.extend(ps.into_iter().map(PlanProblem::from));
                None
            }
        };
        let mut list = |category: Category| {
            let rules = cfg.rules(category).unwrap_or_default();
            RuleList::compile(category, rules).unwrap_or_else(|ps| {
                problems.extend(ps.into_iter().map(PlanProblem::from));
                RuleList::default()
            })
        };
        let plan = NumberPlan {
            location,
            dial: list(Category::Dial),
            incoming: list(Category::Incoming),
            outgoing: list(Category::Outgoing),
        };
        if problems.is_empty() {
            Ok(plan)
        } else {
            Err(NumberPlanError { problems })
        }
    }

    /// The location, when the config has one.
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    /// The compiled rules of one category.
    pub fn rules(&self, category: Category) -> &RuleList {
        match category {
            Category::Dial => &self.dial,
            Category::Incoming => &self.incoming,
            Category::Outgoing => &self.outgoing,
        }
    }

    /// Formats one number. Never fails: a number nothing applies to passes unchanged.
    ///
    /// Without a location only the rules apply. With one, a dialled number is converted from
    /// canonical to dialable *before* the dial rules, and a reported number is cleaned, then
    /// given to the rules, then made canonical *after* them; see the [module
    /// docs](super#order-location-and-rules) for why.
    pub fn format(&self, category: Category, number: &str) -> Formatted {
        let mut steps = vec![format!("{category} number `{number}`")];
        let mut current = number.to_owned();
        let location = self.location.as_ref();
        if let Some(loc) = location {
            let conv = if category.is_reported() {
                loc.clean_reported(&current)
            } else {
                loc.to_dialable(&current)
            };
            steps.push(location_step(&current, &conv));
            current = conv.number;
        }
        let rules = self.rules(category);
        let matched = match rules.apply(&current) {
            Some((rule, out)) => {
                steps.push(format!(
                    "{category} rule {} (`{}` -> `{}`) matched: `{current}` -> `{out}`",
                    rule.position, rule.config.search, rule.config.replace
                ));
                current = out;
                Some(MatchedRule {
                    position: rule.position,
                    search: rule.config.search.clone(),
                    replace: rule.config.replace.clone(),
                    comment: rule.config.comment.clone(),
                })
            }
            None if rules.is_empty() => {
                steps.push(format!("no {category} rules"));
                None
            }
            None => {
                steps.push(format!(
                    "none of the {} {category} rules matched: unchanged",
                    rules.rules().len()
                ));
                None
            }
        };
        if let (Some(loc), true) = (location, category.is_reported()) {
            let conv = loc.to_canonical(&current);
            steps.push(location_step(&current, &conv));
            current = conv.number;
        }
        Formatted {
            number: current,
            raw: number.to_owned(),
            matched,
            steps,
        }
    }
}

fn location_step(before: &str, conv: &Conversion) -> String {
    if before == conv.number {
        format!("location: `{before}` unchanged ({})", conv.note)
    } else {
        format!("location: `{before}` -> `{}` ({})", conv.number, conv.note)
    }
}
