//! Number formatting: location settings and search/replace rules, applied in one place for every
//! driver.
//!
//! Applications and phone systems write numbers differently: Outlook dials "+43 (1) 505641",
//! the phone system wants "01505641" or "0043 1 505641", and phones report "0891234567",
//! "**12" or "sip:200@pbx". A [`NumberPlan`] turns one into the other. The TSP front end calls
//! [`NumberPlan::format`] for every number on its way to or from a driver, so no driver formats
//! numbers itself, and keeps [`Formatted::raw`] beside the result.
//!
//! The module follows the number-formatting chapter of the snom driver manual (location
//! settings, and rules in three categories). Where the manual is silent, the decisions are
//! written down below.
//!
//! - [`config`]: the serde types, as written under `[numbers]` and `[lines.N.numbers]`, and
//!   [`NumberPlanConfig::overlay`] for per-line overrides;
//! - [`rules`]: compiling and applying one ordered rule list;
//! - [`canonical`]: reading the shapes numbers come in (TAPI canonical, separators, service
//!   codes, SIP URIs);
//! - [`location`]: canonical to dialable, and reported to canonical;
//! - [`plan`]: the compiled [`NumberPlan`] and [`Formatted`];
//! - [`error`]: [`NumberPlanError`], which lists every problem in a config.
//!
//! # Config
//!
//! ```toml
//! [numbers.location]
//! country_code = "49"          # required when there is a location
//! area_code = "89"             # without the national prefix; "089" is accepted too
//! international_prefix = "00"  # default "00"
//! national_prefix = "0"        # default "0"; "" where there is none
//! outside_line_prefix = "0"    # default none
//! internal_length = 3          # extensions have at most 3 digits; default none
//! base_number = "12345"        # the phone system's own number in its area; optional
//! dial_area_code_locally = false
//! strip_outside_line_prefix = false
//! # national_number_length = 10  # North America: 10 digits without prefix are national
//!
//! [[numbers.dial]]
//! search = "^80(.*)"
//! replace = '0\1'
//! comment = "the old outside line"
//!
//! [[numbers.incoming]]
//! search = "^([0-9][0-9]?[0-9]?)$"
//! replace = '03012345\1'
//!
//! [lines.3.numbers.location]     # a line in Berlin: only the area code differs
//! area_code = "30"
//!
//! [lines.3.numbers]
//! dial = []                      # and it has no dial rules
//! ```
//!
//! # Rules
//!
//! - **Search.** The expression is searched for anywhere in the number, as the manual's table
//!   of expressions says: `^` pins it to the start, `$` to the end ("`152$` only for numbers
//!   that end with 152"). We do *not* anchor patterns implicitly: that would take that meaning
//!   away from `^` and `$`. All seven examples in the manual pin themselves with `^` and run to
//!   the end with `.*`, `.+` or `$`, so each replaces the whole number, which is what the
//!   manual's results show; the tests check each of them.
//! - **Replace.** The first (leftmost) match is replaced by the expanded replacement; text
//!   before and after the match is kept, so `^0` → `` removes a leading 0, as a sed user
//!   expects. Only one replacement is made per rule.
//! - **Replacement syntax.** `\1` … `\9` is a group, `\0` the whole match (one digit only, so
//!   `\10` is group 1 then "0", as in sed: `03012345\1` style rules stay unambiguous), `\{12}`
//!   is group 12, `\\` a backslash, `\` before any other character stands for that character.
//!   `$` is literal: the regex crate's own `$1` syntax is not used. A group that did not take
//!   part in the match inserts nothing; a group the expression does not have is refused when
//!   the config is compiled.
//! - **Dialect.** Expressions are those of the Rust `regex` crate, which covers everything the
//!   manual lists (`^ $ | . * + ? ( ) [ ] [^ ]`); look-around and back-references are refused
//!   when compiling. `\d` matches any Unicode digit: write `[0-9]`, as the manual does, for
//!   ASCII digits only.
//! - **Order.** Rules are tried in order; the first that matches decides, the rest are not
//!   tried. A number no rule matches passes unchanged. An empty replacement of the whole number
//!   (the manual's "withhold all internal numbers") gives an empty number.
//! - **Errors.** [`NumberPlan::compile`] refuses a plan with any bad rule (an expression that
//!   does not compile, an empty expression, a missing group) and reports all of them, each
//!   with its category, its position counted from 1, and the regex error.
//!
//! # Location
//!
//! Without a `location` the plan only applies its rules (exactly the manual's "Check" field).
//! With one:
//!
//! - **Dialled numbers**: a canonical number ("+49891234567", "+43 (1) 505641",
//!   "+49 (0)89 …"; spaces, parentheses, dashes, dots and slashes are dropped, a TAPI
//!   subaddress `|…` and name `^…` too) becomes what the phone system dials:
//!   - inside the phone system (own country, area and `base_number`, followed by at most
//!     `internal_length` digits): the extension alone;
//!   - own country and area: outside-line prefix and the local number (with national prefix
//!     and area code when `dial_area_code_locally`, for closed numbering plans);
//!   - own country: outside-line prefix, national prefix, area code and number;
//!   - another country: outside-line prefix, international prefix, country code and number.
//!
//!   Parentheses in TAPI input say exactly where the area code is (a national prefix written
//!   inside them for the own country, "+49 (089) …", is forgiven); without them, country and
//!   area code are recognised as prefixes of the digits. A number without `+` is taken as
//!   already dialable: only separators are removed, no prefix is added (that is what the
//!   manual's rule "add an initial 0 for outside lines" is for).
//! - **Reported numbers** (incoming, outgoing): first cleaned (a `sip:`/`tel:` URI whose user
//!   part is a number is reduced to it, so "sip:200@pbx" becomes "200"; separators are
//!   removed), then the rules, then made full canonical: `+` kept; outside-line prefix removed
//!   if `strip_outside_line_prefix`; an extension of at most `internal_length` digits stays as
//!   it is (or becomes `+`, country, area, base number and extension when `base_number` is
//!   set); international prefix → `+`; national prefix → `+` and country code; exactly
//!   `national_number_length` digits → `+` and country code; anything else → `+`, country
//!   code and area code. So "0891234567" becomes "+49891234567" and "004930123"
//!   becomes "+4930123".
//! - **Kept as they are**: `+`, `*` and `#`. A number with `*` or `#` is a service code
//!   ("**12", "*21#") and never gets or loses prefixes. Names and URIs whose user part is not a
//!   number ("sip:alice@pbx") are left unchanged. An empty number stays empty.
//!
//! # Order: location and rules
//!
//! The rules always work on the phone system's side of the location conversion: they see and
//! produce numbers as the phone system writes them.
//!
//! - For **dial**, the canonical number is converted first and the dial rules come last. The
//!   manual says dial rules format the number that is "sent after modification to the
//!   telephone", so the rules have the last word on what the phone dials; their examples
//!   ("replace the initial 80 with a 0", "strip a PIN after 50xxx", "add a 0 for outside
//!   lines") work on dialable digits, never on "+…".
//! - For **incoming and outgoing**, the rules come first and the canonical conversion last. The
//!   manual's examples for reported numbers ("add the base number 03012345 to internal
//!   numbers", "add the area code 08151 to numbers of 4 or more digits") produce numbers in
//!   national form, which the location then turns into the full canonical notation the
//!   location section asks for ("line numbers should be available in full canonical
//!   notation").
//!
//! # Example
//!
//! ```
//! use tapir_core::numbers::{Category, LocationConfig, NumberPlan, NumberPlanConfig, RuleConfig};
//!
//! let cfg = NumberPlanConfig {
//!     location: Some(LocationConfig {
//!         country_code: Some("49".into()),
//!         area_code: Some("89".into()),
//!         outside_line_prefix: Some("0".into()),
//!         internal_length: Some(3),
//!         ..LocationConfig::default()
//!     }),
//!     dial: Some(vec![RuleConfig::new(r"^080(.*)", r"00\1")]),
//!     ..NumberPlanConfig::default()
//! };
//! let plan = NumberPlan::compile(&cfg)?;
//! assert_eq!(plan.format(Category::Dial, "+43 (1) 505641").number, "000431505641");
//! assert_eq!(plan.format(Category::Dial, "+49 89 1234567").number, "01234567");
//! assert_eq!(plan.format(Category::Incoming, "0891234567").number, "+49891234567");
//! assert_eq!(plan.format(Category::Incoming, "sip:200@pbx").number, "200");
//! // The dial rule sees the dialable number, after the location.
//! assert_eq!(plan.format(Category::Dial, "080 555").number, "00555");
//! # Ok::<(), tapir_core::numbers::NumberPlanError>(())
//! ```

pub mod canonical;
pub mod config;
pub mod error;
pub mod location;
pub mod plan;
pub mod rules;

#[cfg(test)]
mod tests;

pub use config::{Category, LocationConfig, NumberPlanConfig, RuleConfig, UnknownCategory};
pub use error::{LocationProblem, NumberPlanError, PlanProblem, RuleProblem, RuleProblemKind};
pub use location::{Conversion, Location};
pub use plan::{Formatted, MatchedRule, NumberPlan};
pub use rules::{Rule, RuleList};
