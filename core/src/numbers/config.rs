//! The number plan as it is written in the config file: location settings and three ordered rule
//! lists, plus how a per-line section overlays the host default.
//!
//! These are plain serde types. Nothing here is checked; [`NumberPlan::compile`] checks everything
//! at once and reports every problem.
//!
//! [`NumberPlan::compile`]: super::NumberPlan::compile

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The number plan of the host (`[numbers]`) or of one line (`[lines.N.numbers]`).
///
/// Every field is optional so that a line can override only what differs from the host default;
/// see [`NumberPlanConfig::overlay`].
///
/// ```toml
/// [numbers.location]
/// country_code = "49"
/// area_code = "89"
/// outside_line_prefix = "0"
/// internal_length = 3
///
/// [[numbers.dial]]
/// search = "^80(.*)"
/// replace = "0\\1"
/// comment = "80 was the old outside line"
/// ```
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NumberPlanConfig {
    /// Where the phone system is: used to convert between full canonical numbers
    /// (`+49891234567`) and what the phone system dials and reports. Without a location the plan
    /// only applies its rules.
    pub location: Option<LocationConfig>,
    /// Rules for numbers the application dials, applied before the number goes to a driver.
    pub dial: Option<Vec<RuleConfig>>,
    /// Rules for numbers of incoming calls, as a driver reports them.
    pub incoming: Option<Vec<RuleConfig>>,
    /// Rules for numbers of outgoing calls, as a driver reports them.
    pub outgoing: Option<Vec<RuleConfig>>,
}

impl NumberPlanConfig {
    /// Lays `over` (a line's section) on top of `self` (the host default).
    ///
    /// - A rule list present in `over` replaces the default's list as a whole, even when it is
    ///   empty: `dial = []` switches the default dial rules off for that line. Lists are never
    ///   concatenated, because rule order decides which rule wins and a merged order would be
    ///   hard to see in the config.
    /// - The location is merged field by field ([`LocationConfig::overlay`]), so a line in another
    ///   town only sets `area_code`.
    pub fn overlay(&self, over: &NumberPlanConfig) -> NumberPlanConfig {
        let location = match (&self.location, &over.location) {
            (Some(base), Some(over)) => Some(base.overlay(over)),
            (None, Some(over)) => Some(over.clone()),
            (base, None) => base.clone(),
        };
        NumberPlanConfig {
            location,
            dial: over.dial.clone().or_else(|| self.dial.clone()),
            incoming: over.incoming.clone().or_else(|| self.incoming.clone()),
            outgoing: over.outgoing.clone().or_else(|| self.outgoing.clone()),
        }
    }

    /// The rule list of one category, if the config has one.
    pub fn rules(&self, category: Category) -> Option<&[RuleConfig]> {
        match category {
            Category::Dial => self.dial.as_deref(),
            Category::Incoming => self.incoming.as_deref(),
            Category::Outgoing => self.outgoing.as_deref(),
        }
    }
}

/// Location settings, as in the "Location information" of a TAPI driver.
///
/// Digits only (a leading `+` on the country code is accepted). Defaults are those of most of
/// Europe: international prefix `00`, national (trunk) prefix `0`, no outside-line prefix, no
/// internal extensions.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LocationConfig {
    /// Country calling code without `+`: `"49"` Germany, `"43"` Austria, `"1"` North America.
    /// Required once all layers are merged.
    pub country_code: Option<String>,
    /// Area code without the national prefix: `"89"` Munich, `"1"` Vienna. Empty or absent
    /// where the country has no area codes.
    pub area_code: Option<String>,
    /// Prefix for international calls; default `"00"` (`"011"` in North America).
    pub international_prefix: Option<String>,
    /// National (trunk) prefix for calls to another area; default `"0"` (`"1"` in North
    /// America). An empty string means the country has none.
    pub national_prefix: Option<String>,
    /// What the phone system needs dialled first to get an outside line, such as `"0"` or `"9"`;
    /// default none.
    pub outside_line_prefix: Option<String>,
    /// Internal extensions have at most this many digits (`3` for 100–999); default none.
    /// Such numbers never get prefixes.
    pub internal_length: Option<usize>,
    /// The phone system's own number inside its area, without area code (`"12345"` for
    /// `+49 30 12345-0`). When set, internal extensions are reported as full canonical numbers
    /// (`"123"` becomes `+4930 12345 123`), and a canonical number inside the phone system is
    /// dialled as the bare extension.
    pub base_number: Option<String>,
    /// Numbers in the own area are dialled with national prefix and area code, as closed
    /// numbering plans (Switzerland, France, Italy) require; default `false`, the local number
    /// alone.
    pub dial_area_code_locally: Option<bool>,
    /// The phone system reports call numbers with the outside-line prefix in front (ready for a
    /// call-back), and it must be removed before the number is made canonical; default `false`.
    pub strip_outside_line_prefix: Option<bool>,
    /// A reported number of exactly this many digits, without any prefix, is a national number
    /// written without the national prefix (area code and subscriber number), as North
    /// American phone systems report ten-digit numbers; default none.
    pub national_number_length: Option<usize>,
}

impl LocationConfig {
    /// Lays `over` on top of `self`, field by field: each field present in `over` wins.
    pub fn overlay(&self, over: &LocationConfig) -> LocationConfig {
        fn pick<T: Clone>(base: &Option<T>, over: &Option<T>) -> Option<T> {
            over.clone().or_else(|| base.clone())
        }
        LocationConfig {
            country_code: pick(&self.country_code, &over.country_code),
            area_code: pick(&self.area_code, &over.area_code),
            international_prefix: pick(&self.international_prefix, &over.international_prefix),
            national_prefix: pick(&self.national_prefix, &over.national_prefix),
            outside_line_prefix: pick(&self.outside_line_prefix, &over.outside_line_prefix),
            internal_length: pick(&self.internal_length, &over.internal_length),
            base_number: pick(&self.base_number, &over.base_number),
            dial_area_code_locally: pick(
                &self.dial_area_code_locally,
                &over.dial_area_code_locally,
            ),
            strip_outside_line_prefix: pick(
                &self.strip_outside_line_prefix,
                &over.strip_outside_line_prefix,
            ),
            national_number_length: pick(
                &self.national_number_length,
                &over.national_number_length,
            ),
        }
    }
}

/// One search/replace rule, as the manual's "Search for" and "Replace with" fields.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A regular expression (Rust `regex` syntax, which covers everything the manual lists).
    /// It is searched for anywhere in the number; write `^` and `$` to pin it.
    pub search: String,
    /// What replaces the matched text. `\1` … `\9` insert a group (`\0` the whole match),
    /// `\{12}` group 12, `\\` a backslash; everything else, `$` included, is literal.
    #[serde(default)]
    pub replace: String,
    /// A note for people; shown by the check tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl RuleConfig {
    /// A rule without a comment.
    pub fn new(search: impl Into<String>, replace: impl Into<String>) -> RuleConfig {
        RuleConfig {
            search: search.into(),
            replace: replace.into(),
            comment: None,
        }
    }
}

/// Which way a number travels, and so which rule list applies.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A number the application dials, on its way to a driver.
    Dial,
    /// The number of an incoming call, as a driver reports it.
    Incoming,
    /// The number of an outgoing call, as a driver reports it.
    Outgoing,
}

impl Category {
    /// All three, in config order.
    pub const ALL: [Category; 3] = [Category::Dial, Category::Incoming, Category::Outgoing];

    /// The lower-case name used in config and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Category::Dial => "dial",
            Category::Incoming => "incoming",
            Category::Outgoing => "outgoing",
        }
    }

    /// Whether the number comes from the phone system (incoming or outgoing) rather than from
    /// the application.
    pub fn is_reported(self) -> bool {
        !matches!(self, Category::Dial)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A category name that is none of `dial`, `incoming`, `outgoing`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown number category `{0}`: expected dial, incoming or outgoing")]
pub struct UnknownCategory(pub String);

impl FromStr for Category {
    type Err = UnknownCategory;

    fn from_str(s: &str) -> Result<Category, UnknownCategory> {
        Category::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownCategory(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(searches: &[&str]) -> Option<Vec<RuleConfig>> {
        Some(searches.iter().map(|s| RuleConfig::new(*s, "")).collect())
    }

    #[test]
    fn category_names_round_trip() {
        for c in Category::ALL {
            assert_eq!(c.name().parse::<Category>(), Ok(c));
            assert_eq!(c.to_string(), c.name());
        }
        assert_eq!("Incoming".parse::<Category>(), Ok(Category::Incoming));
        assert!("inbound".parse::<Category>().is_err());
    }

    #[test]
    fn overlay_replaces_present_fields_only() {
        let host = NumberPlanConfig {
            location: Some(LocationConfig {
                country_code: Some("49".into()),
                area_code: Some("89".into()),
                outside_line_prefix: Some("0".into()),
                ..LocationConfig::default()
            }),
            dial: rules(&["^a"]),
            incoming: rules(&["^b", "^c"]),
            outgoing: None,
        };
        let line = NumberPlanConfig {
            location: Some(LocationConfig {
                area_code: Some("30".into()),
                ..LocationConfig::default()
            }),
            dial: Some(vec![]),
            incoming: None,
            outgoing: rules(&["^d"]),
        };
        let merged = host.overlay(&line);
        let loc = merged.location.clone().unwrap_or_default();
        assert_eq!(loc.country_code.as_deref(), Some("49"));
        assert_eq!(loc.area_code.as_deref(), Some("30"));
        assert_eq!(loc.outside_line_prefix.as_deref(), Some("0"));
        assert_eq!(
            merged.dial,
            Some(vec![]),
            "an empty list switches the defaults off"
        );
        assert_eq!(
            merged.incoming, host.incoming,
            "absent list keeps the default"
        );
        assert_eq!(merged.outgoing, line.outgoing);
    }

    #[test]
    fn overlay_table() {
        let a = NumberPlanConfig {
            dial: rules(&["^a"]),
            ..NumberPlanConfig::default()
        };
        let b = NumberPlanConfig {
            dial: rules(&["^b"]),
            ..NumberPlanConfig::default()
        };
        let empty = NumberPlanConfig::default();
        let cases = [
            (&empty, &empty, &empty),
            (&a, &empty, &a),
            (&empty, &a, &a),
            (&a, &b, &b),
            (&b, &a, &a),
        ];
        for (base, over, want) in cases {
            assert_eq!(&base.overlay(over), want, "{base:?} + {over:?}");
        }
        let only_line = NumberPlanConfig {
            location: Some(LocationConfig {
                country_code: Some("43".into()),
                ..LocationConfig::default()
            }),
            ..NumberPlanConfig::default()
        };
        assert_eq!(empty.overlay(&only_line), only_line);
        assert_eq!(only_line.overlay(&empty), only_line);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = r#"{"location": {"country": "49"}}"#;
        assert!(serde_json::from_str::<NumberPlanConfig>(bad).is_err());
        let bad = r#"{"dial": [{"search": "^0", "replace": "", "note": "x"}]}"#;
        assert!(serde_json::from_str::<NumberPlanConfig>(bad).is_err());
        let good = r#"{"dial": [{"search": "^0(.*)", "replace": "\\1"}], "location": {"country_code": "49"}}"#;
        let cfg: Result<NumberPlanConfig, _> = serde_json::from_str(good);
        assert!(cfg.is_ok(), "{cfg:?}");
    }
}
