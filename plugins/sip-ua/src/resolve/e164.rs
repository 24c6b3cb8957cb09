//! ENUM (RFC 6116): an E.164 number to a SIP URI through NAPTR records, sans-I/O.
//!
//! - [`aus`]: the Application Unique String, `+` and the digits of a dialled E.164 number;
//! - [`owner_name`]: where its records live (`+4989123` → `3.2.1.9.8.9.4.e164.arpa.`);
//! - [`step`]: what a set of NAPTR records says: a URI (a terminal `u` rule whose enumservice is
//!   SIP, its substitution expression applied to the AUS), another domain to ask (a
//!   non-terminal rule), or nothing;
//! - [`Substitution`]: the `delim ERE delim replacement delim flags` expression of RFC 3402 §3.2.
//!
//! Case is ignored in flags and services, as RFC 6116 §3.6 asks of clients in the open
//! Internet.

use super::naptr::NaptrRecord;
use crate::header::Uri;
use thiserror::Error;

/// Most digits an E.164 number has (ITU-T E.164 §6).
pub const MAX_DIGITS: usize = 15;

/// The AUS of a dialled number: `+` followed by its digits, when the text is `+` then 1 to 15
/// digits, with only visual separators (space, `-`, `.`, `/`, parentheses) between them.
/// Anything else (no `+`, letters, `*`, `#`, a URI) is not an E.164 number: `None`.
pub fn aus(dialled: &str) -> Option<String> {
    let rest = dialled.trim().strip_prefix('+')?;
    let mut out = String::from("+");
    for c in rest.chars() {
        match c {
            '0'..='9' => out.push(c),
            ' ' | '-' | '.' | '/' | '(' | ')' => {}
            _ => return None,
        }
    }
    let digits = out.len() - 1;
    (1..=MAX_DIGITS).contains(&digits).then_some(out)
}

/// The domain whose NAPTR records hold `aus`'s URIs: its digits reversed, one label each,
/// under `suffix` (RFC 6116 §2.4), fully qualified.
pub fn owner_name(aus: &str, suffix: &str) -> String {
    let mut name = String::with_capacity(aus.len() * 2 + suffix.len() + 1);
    for d in aus.chars().rev().filter(char::is_ascii_digit) {
        name.push(d);
        name.push('.');
    }
    name.push_str(suffix.trim().trim_matches('.'));
    name.push('.');
    name
}

/// True when the service field is an E2U service with a SIP enumservice: `E2U+sip`, or an
/// enumservice with subtype `sip` (`E2U+voice:sip`).
pub fn is_sip_enumservice(services: &str) -> bool {
    let mut parts = services.trim().split('+');
    if !parts.next().is_some_and(|p| p.eq_ignore_ascii_case("E2U")) {
        return false;
    }
    parts.any(|svc| svc.split(':').any(|t| t.eq_ignore_ascii_case("sip")))
}

/// Why a substitution expression could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SubstitutionError {
    /// Not `delim ERE delim replacement delim flags`.
    #[error("malformed substitution expression {0:?}")]
    Malformed(String),
    /// The regular expression does not compile (or is too large).
    #[error("bad regular expression in {expr:?}: {detail}")]
    Regex {
        /// The expression.
        expr: String,
        /// What the regex engine said.
        detail: String,
    },
}

/// A parsed substitution expression (RFC 3402 §3.2).
#[derive(Debug, Clone)]
pub struct Substitution {
    regex: regex::Regex,
    replacement: String,
}

/// Compiled size limit for a regex read from DNS (bytes); ENUM patterns are tiny.
const REGEX_SIZE_LIMIT: usize = 64 * 1024;

impl Substitution {
    /// Parses `!^\+49(.*)$!sip:\1@example.com!` and the like: the first character is the
    /// delimiter (not a digit, not a backslash); a delimiter inside the parts is escaped with a
    /// backslash; the only flag is `i` (ignore case).
    ///
    /// # Errors
    /// [`SubstitutionError`] for a malformed expression or a regex that does not compile.
    pub fn parse(expr: &str) -> Result<Substitution, SubstitutionError> {
        let malformed = || SubstitutionError::Malformed(expr.to_owned());
        let mut chars = expr.chars();
        let delim = chars.next().ok_or_else(malformed)?;
        if delim.is_ascii_digit() || delim == '\\' || delim.is_ascii_alphanumeric() {
            return Err(malformed());
        }
        let mut parts: Vec<String> = vec![String::new()];
        let mut escaped = false;
        for c in chars {
            let in_regex = parts.len() == 1;
            let part = parts.last_mut().ok_or_else(malformed)?;
            if escaped {
                // `\<delim>` stands for the delimiter itself (escaped again where the regex
                // would read it as an operator); other escapes stay for the regex and the
                // replacement to read.
                if c != delim {
                    part.push('\\');
                    part.push(c);
                } else if in_regex {
                    part.push_str(&regex::escape(&c.to_string()));
                } else {
                    part.push(c);
                }
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == delim {
                parts.push(String::new());
            } else {
                part.push(c);
            }
        }
        if escaped || parts.len() != 3 {
            return Err(malformed());
        }
        let flags = parts.pop().unwrap_or_default();
        let repl = parts.pop().unwrap_or_default();
        let ere = parts.pop().unwrap_or_default();
        let ignore_case = match flags.as_str() {
            "" => false,
            "i" | "I" => true,
            _ => return Err(malformed()),
        };
        let regex = regex::RegexBuilder::new(&ere)
            .case_insensitive(ignore_case)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| SubstitutionError::Regex {
                expr: expr.to_owned(),
                detail: e.to_string(),
            })?;
        Ok(Substitution {
            regex,
            replacement: replacement_template(&repl),
        })
    }

    /// Applies the expression to `input`: `None` when the regex does not match, else the input
    /// with its first match replaced (`\1`..`\9` inserting the groups).
    pub fn apply(&self, input: &str) -> Option<String> {
        if !self.regex.is_match(input) {
            return None;
        }
        Some(
            self.regex
                .replacen(input, 1, self.replacement.as_str())
                .into_owned(),
        )
    }
}

/// RFC 3402's replacement (`\1`..`\9` back-references, `\\` a backslash, anything else
/// literal) as a template for the regex crate (`${1}`, `$$` for a literal dollar).
fn replacement_template(repl: &str) -> String {
    let mut out = String::with_capacity(repl.len() + 8);
    let mut chars = repl.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(d @ '1'..='9') => {
                    out.push_str("${");
                    out.push(d);
                    out.push('}');
                }
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            other => out.push(other),
        }
    }
    out
}

/// What a set of ENUM NAPTR records says about an AUS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The SIP URI to call.
    Uri(String),
    /// A non-terminal rule: ask this domain next (fully qualified).
    Next(String),
    /// Nothing usable.
    Nothing,
}

/// Reads ENUM records for `aus` (RFC 6116 §2, RFC 3402 §3): by order, then preference; the first
/// terminal `u` rule with a SIP enumservice whose expression matches gives the URI (`sip:`, or
/// `sips:` with `sips`); a non-terminal rule (no flags, a replacement) met first gives the next
/// domain. Records with other flags or services are skipped; a bad expression skips its record.
pub fn step(records: &[NaptrRecord], aus: &str, sips: bool) -> Step {
    let mut sorted: Vec<&NaptrRecord> = records.iter().collect();
    sorted.sort_by_key(|r| (r.order, r.preference));
    for r in sorted {
        if r.flags.trim().is_empty() {
            let services = r.services.trim();
            let e2u = services.is_empty() || is_sip_enumservice(services);
            if let (true, Some(next)) = (e2u, r.replacement_domain()) {
                return Step::Next(format!("{next}."));
            }
            continue;
        }
        if !(r.has_flag('U') && is_sip_enumservice(&r.services)) {
            continue;
        }
        let Ok(sub) = Substitution::parse(&r.regexp) else {
            tracing::debug!(regexp = %r.regexp, "ENUM record with a bad expression skipped");
            continue;
        };
        let Some(uri) = sub.apply(aus) else { continue };
        let scheme_ok =
            Uri::parse(&uri).is_some_and(|u| u.scheme == "sip" || sips && u.scheme == "sips");
        if scheme_ok {
            return Step::Uri(uri);
        }
    }
    Step::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        order: u16,
        pref: u16,
        flags: &str,
        services: &str,
        regexp: &str,
        repl: &str,
    ) -> NaptrRecord {
        NaptrRecord {
            order,
            preference: pref,
            flags: flags.into(),
            services: services.into(),
            regexp: regexp.into(),
            replacement: repl.into(),
        }
    }

    #[test]
    fn aus_takes_only_e164_numbers() {
        assert_eq!(aus("+49 (89) 123-45.6"), Some("+4989123456".into()));
        assert_eq!(aus(" +1/555 0100 "), Some("+15550100".into()));
        for bad in [
            "4989123",
            "+",
            "+49*1",
            "+49#",
            "sip:+4989@x",
            "+49a",
            "+1234567890123456",
        ] {
            assert_eq!(aus(bad), None, "{bad}");
        }
        assert_eq!(aus("+123456789012345").map(|a| a.len()), Some(16));
    }

    #[test]
    fn owner_name_reverses_the_digits() {
        assert_eq!(
            owner_name("+4989123", "e164.arpa"),
            "3.2.1.9.8.9.4.e164.arpa."
        );
        assert_eq!(
            owner_name("+12", ".e164.example.net."),
            "2.1.e164.example.net."
        );
    }

    #[test]
    fn enumservices() {
        assert!(is_sip_enumservice("E2U+sip"));
        assert!(is_sip_enumservice("e2u+SIP"));
        assert!(is_sip_enumservice("E2U+voice:sip"));
        assert!(is_sip_enumservice("E2U+email:mailto+sip"));
        assert!(!is_sip_enumservice("E2U+voice:tel"));
        assert!(!is_sip_enumservice("SIP+D2U"));
        assert!(!is_sip_enumservice("E2U"));
    }

    #[test]
    fn substitutions_follow_rfc3402() {
        let s = Substitution::parse(r"!^\+49(.*)$!sip:\1@example.com!").expect("parse");
        assert_eq!(
            s.apply("+4989123").as_deref(),
            Some("sip:89123@example.com")
        );
        assert_eq!(s.apply("+4312"), None);
        let whole = Substitution::parse("!^.*$!sip:info@example.com!").expect("parse");
        assert_eq!(
            whole.apply("+4989123").as_deref(),
            Some("sip:info@example.com")
        );
        // Another delimiter, an escaped delimiter, the i flag, a literal dollar.
        let s = Substitution::parse(r"/^\+(4\/?9)(.*)$/sip:\2\/x$@A.example/i").expect("parse");
        assert_eq!(s.apply("+4989").as_deref(), Some("sip:89/x$@A.example"));
        // An escaped delimiter that is a regex operator stays a literal character.
        let s = Substitution::parse(r"|^\+1\|2$|sip:x@h|").expect("parse");
        assert_eq!(s.apply("+1|2").as_deref(), Some("sip:x@h"));
        assert_eq!(s.apply("+1"), None);
        // Groups beyond the match are empty.
        let s = Substitution::parse(r"!^\+(1)$!sip:\1\2@h!").expect("parse");
        assert_eq!(s.apply("+1").as_deref(), Some("sip:1@h"));
        for bad in ["", "!a!b", "!a!b!c!d", "1a1b1", "!(!x!", "!a!b!x", r"!a!b\"] {
            assert!(Substitution::parse(bad).is_err(), "{bad:?}");
        }
        // A pathological size is refused, not compiled.
        let huge = format!("!{}!x!", "(a{1000}){1000}");
        assert!(matches!(
            Substitution::parse(&huge),
            Err(SubstitutionError::Regex { .. })
        ));
    }

    #[test]
    fn step_picks_by_order_and_preference() {
        let aus = "+4989123";
        let records = vec![
            rec(
                100,
                10,
                "u",
                "E2U+sip",
                "!^.*$!sip:second@example.com!",
                ".",
            ),
            rec(
                100,
                5,
                "u",
                "E2U+mailto",
                "!^.*$!mailto:a@example.com!",
                ".",
            ),
            rec(100, 20, "u", "E2U+sip", "!^.*$!sip:third@example.com!", "."),
            rec(
                50,
                5,
                "u",
                "E2U+sip",
                "!^\\+43(.*)$!sip:no-match@example.com!",
                ".",
            ),
            rec(50, 6, "u", "E2U+sip", "!^.*$!tel:+4989123!", "."),
            rec(50, 7, "u", "E2U+sip", "!(!sip:broken@x!", "."),
        ];
        assert_eq!(
            step(&records, aus, false),
            Step::Uri("sip:second@example.com".into())
        );
        let sips = vec![rec(
            10,
            10,
            "u",
            "E2U+sip",
            "!^.*$!sips:s@example.com!",
            ".",
        )];
        assert_eq!(step(&sips, aus, false), Step::Nothing);
        assert_eq!(
            step(&sips, aus, true),
            Step::Uri("sips:s@example.com".into())
        );
    }

    #[test]
    fn non_terminal_rules_lead_elsewhere() {
        let records = vec![
            rec(10, 10, "", "", "", "3.2.1.e164.example.net."),
            rec(20, 10, "u", "E2U+sip", "!^.*$!sip:later@example.com!", "."),
        ];
        assert_eq!(
            step(&records, "+123", false),
            Step::Next("3.2.1.e164.example.net.".into())
        );
        assert_eq!(step(&[], "+123", false), Step::Nothing);
    }
}
