//! Ordered search/replace rules: compiling one list, and applying it to a number.
//!
//! The replacement is parsed once, at compile time, into literal text and group references, so
//! a reference to a group the expression does not have is refused with the config rather than
//! silently expanding to nothing on a live call. We do not hand the replacement to the regex
//! crate's own `$`-syntax: a `$` in a phone-system replacement is meant literally, and the
//! manual's syntax is `\1`.

use super::config::{Category, RuleConfig};
use super::error::{RuleProblem, RuleProblemKind};
use regex::{Captures, Regex};

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Place in its list, from 1.
    pub position: usize,
    /// The rule as configured.
    pub config: RuleConfig,
    regex: Regex,
    template: Vec<Piece>,
}

/// A part of a parsed replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Group(usize),
}

impl Rule {
    /// Compiles one rule; `position` counts from 1.
    ///
    /// # Errors
    /// A [`RuleProblem`] naming `category`, `position` and what is wrong.
    pub fn compile(
        category: Category,
        position: usize,
        config: &RuleConfig,
    ) -> Result<Rule, RuleProblem> {
        let problem = |kind| RuleProblem {
            category,
            position,
            search: config.search.clone(),
            kind,
        };
        if config.search.is_empty() {
            return Err(problem(RuleProblemKind::EmptySearch));
        }
        let regex =
            Regex::new(&config.search).map_err(|e| problem(RuleProblemKind::BadRegex(e)))?;
        let template = parse_replacement(&config.replace).map_err(problem)?;
        // `captures_len` counts group 0, the whole match.
        let groups = regex.captures_len() - 1;
        if let Some(group) = template.iter().find_map(|p| match p {
            Piece::Group(g) if *g > groups => Some(*g),
            _ => None,
        }) {
            return Err(problem(RuleProblemKind::MissingGroup { group, groups }));
        }
        Ok(Rule {
            position,
            config: config.clone(),
            regex,
            template,
        })
    }

    /// The number with this rule applied, or `None` when the search expression is not found.
    ///
    /// Only the first (leftmost) match is replaced; text before and after it is kept.
    pub fn apply(&self, number: &str) -> Option<String> {
        let caps = self.regex.captures(number)?;
        let whole = caps.get(0)?;
        let mut out = String::with_capacity(number.len() + self.config.replace.len());
        out.push_str(&number[..whole.start()]);
        self.expand(&caps, &mut out);
        out.push_str(&number[whole.end()..]);
        Some(out)
    }

    fn expand(&self, caps: &Captures<'_>, out: &mut String) {
        for piece in &self.template {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                // A group that took no part in the match inserts nothing.
                Piece::Group(g) => out.push_str(caps.get(*g).map_or("", |m| m.as_str())),
            }
        }
    }
}

/// Splits a replacement into literal text and group references.
///
/// `\0`–`\9` is a group (one digit, so `\10` is group 1 followed by `0`, as in sed), `\{N}` is
/// group N, `\\` is a backslash, `\` before anything else stands for that character, and a
/// trailing `\` is kept.
fn parse_replacement(replace: &str) -> Result<Vec<Piece>, RuleProblemKind> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = replace.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            literal.push(c);
            continue;
        }
        let group = match chars.next() {
            None => {
                literal.push('\\');
                None
            }
            Some((_, d)) if d.is_ascii_digit() => Some(usize::from(d as u8 - b'0')),
            Some((_, '{')) => {
                let mut digits = String::new();
                let mut closed = false;
                for (_, d) in chars.by_ref() {
                    if d == '}' {
                        closed = true;
                        break;
                    }
                    digits.push(d);
                }
                let n = digits.parse::<usize>().ok().filter(|_| closed);
                Some(n.ok_or(RuleProblemKind::BadGroupReference { at })?)
            }
            Some((_, other)) => {
                literal.push(other);
                None
            }
        };
        if let Some(g) = group {
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Group(g));
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

/// An ordered rule list: the first rule whose expression is found wins.
#[derive(Debug, Clone, Default)]
pub struct RuleList {
    rules: Vec<Rule>,
}

impl RuleList {
    /// Compiles a list, collecting a problem for every bad rule.
    ///
    /// # Errors
    /// Every [`RuleProblem`] in the list, in order.
    pub fn compile(
        category: Category,
        configs: &[RuleConfig],
    ) -> Result<RuleList, Vec<RuleProblem>> {
        let mut rules = Vec::with_capacity(configs.len());
        let mut problems = Vec::new();
        for (i, cfg) in configs.iter().enumerate() {
            match Rule::compile(category, i + 1, cfg) {
                Ok(rule) => rules.push(rule),
                Err(p) => problems.push(p),
            }
        }
        if problems.is_empty() {
            Ok(RuleList { rules })
        } else {
            Err(problems)
        }
    }

    /// The first rule that matches, and the number it makes.
    pub fn apply(&self, number: &str) -> Option<(&Rule, String)> {
        self.rules
            .iter()
            .find_map(|r| r.apply(number).map(|out| (r, out)))
    }

    /// The compiled rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether the list has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(search: &str, replace: &str) -> Rule {
        match Rule::compile(Category::Dial, 1, &RuleConfig::new(search, replace)) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn replacement_syntax() {
        // (search, replace, number, expected)
        let cases = [
            ("^0(.*)", r"\1", "0891234", Some("891234")),
            ("^(..)(..)", r"\2\1", "1234", Some("3412")),
            ("^(1)", r"\10", "123", Some("1023")),
            ("^(1)", r"\{1}0", "123", Some("1023")),
            ("^1", r"$1", "123", Some("$123")),
            ("^1", r"${1}x$", "123", Some("${1}x$23")),
            ("^1", r"\\", "123", Some(r"\23")),
            ("^1", r"a\", "123", Some(r"a\23")),
            ("^1", r"\+", "123", Some("+23")),
            ("^1", r"[\0]", "123", Some("[1]23")),
            ("^(a)?1", r"<\1>", "123", Some("<>23")),
            ("^(?P<x>1)", r"\{1}", "123", Some("123")),
            ("x", "y", "123", None),
            ("2", "", "1232", Some("132")),
            ("^0", "", "0891", Some("891")),
            ("152$", "X", "0891152", Some("0891X")),
            ("152$", "X", "1520891", None),
            ("^", "0", "123", Some("0123")),
            ("3$", "", "", None),
        ];
        for (search, replace, number, want) in cases {
            assert_eq!(
                rule(search, replace).apply(number).as_deref(),
                want,
                "{search} -> {replace} on {number}"
            );
        }
    }

    #[test]
    fn bad_rules_are_refused() {
        type IsExpected = fn(&RuleProblemKind) -> bool;
        let cases: [(&str, &str, IsExpected); 6] = [
            ("(", "", |k| matches!(k, RuleProblemKind::BadRegex(_))),
            ("", "x", |k| matches!(k, RuleProblemKind::EmptySearch)),
            ("^0", r"\1", |k| {
                matches!(
                    k,
                    RuleProblemKind::MissingGroup {
                        group: 1,
                        groups: 0
                    }
                )
            }),
            ("^(0)", r"\{2}", |k| {
                matches!(
                    k,
                    RuleProblemKind::MissingGroup {
                        group: 2,
                        groups: 1
                    }
                )
            }),
            ("^0", r"x\{", |k| {
                matches!(k, RuleProblemKind::BadGroupReference { at: 1 })
            }),
            ("^0", r"\{a}", |k| {
                matches!(k, RuleProblemKind::BadGroupReference { at: 0 })
            }),
        ];
        for (search, replace, is_expected) in cases {
            match Rule::compile(Category::Incoming, 4, &RuleConfig::new(search, replace)) {
                Ok(_) => panic!("{search} -> {replace} compiled"),
                Err(p) => {
                    assert!(is_expected(&p.kind), "{search} -> {replace}: {p}");
                    assert_eq!((p.category, p.position), (Category::Incoming, 4));
                }
            }
        }
    }

    #[test]
    fn first_hit_wins() {
        let cfgs = [
            RuleConfig::new("^9(.*)", r"\1"),
            RuleConfig::new("^0(.*)", "A"),
            RuleConfig::new("^0(.*)", "B"),
        ];
        let list = match RuleList::compile(Category::Dial, &cfgs) {
            Ok(l) => l,
            Err(e) => panic!("{e:?}"),
        };
        let hit = list.apply("0123").map(|(r, out)| (r.position, out));
        assert_eq!(hit, Some((2, "A".to_owned())));
        assert!(list.apply("123").is_none());
    }
}
