//! The location: converting full canonical numbers into what the phone system dials, and the
//! numbers the phone system reports back into full canonical numbers.

use super::canonical::{self, Canonical, Shape};
use super::config::LocationConfig;
use super::error::LocationProblem;

/// Checked location settings, with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    country_code: String,
    area_code: String,
    international_prefix: String,
    national_prefix: String,
    outside_line_prefix: String,
    internal_length: usize,
    base_number: String,
    dial_area_code_locally: bool,
    strip_outside_line_prefix: bool,
    national_number_length: usize,
}

/// A conversion's result, with a note on what was done for the check tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// The converted number.
    pub number: String,
    /// What the location did, in a few words.
    pub note: String,
}

impl Conversion {
    fn new(number: impl Into<String>, note: impl Into<String>) -> Conversion {
        Conversion {
            number: number.into(),
            note: note.into(),
        }
    }
}

fn digits_only(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_digit())
}

impl Location {
    /// Checks the settings and fills in defaults.
    ///
    /// An area code written with the national prefix in front (`"089"` with prefix `"0"`) is
    /// taken without it.
    ///
    /// # Errors
    /// A [`LocationProblem`] for every missing or malformed setting.
    pub fn compile(cfg: &LocationConfig) -> Result<Location, Vec<LocationProblem>> {
        let mut problems = Vec::new();
        let mut field =
            |field: &'static str, value: Option<&str>, default: &str, may_be_empty: bool| {
                let value = value.unwrap_or(default).trim().to_owned();
                if !digits_only(&value) {
                    problems.push(LocationProblem {
                        field,
                        value: value.clone(),
                        reason: "only digits are allowed",
                    });
                } else if value.is_empty() && !may_be_empty {
                    problems.push(LocationProblem {
                        field,
                        value: value.clone(),
                        reason: "must not be empty",
                    });
                }
                value
            };
        let country_code = cfg
            .country_code
            .as_deref()
            .map(|c| c.trim().trim_start_matches('+'));
        let country_code = field("country_code", country_code, "", false);
        let national_prefix = field("national_prefix", cfg.national_prefix.as_deref(), "0", true);
        let mut area_code = field("area_code", cfg.area_code.as_deref(), "", true);
        let international_prefix = field(
            "international_prefix",
            cfg.international_prefix.as_deref(),
            "00",
            false,
        );
        let base_number = field("base_number", cfg.base_number.as_deref(), "", true);
        let outside_line_prefix = cfg
            .outside_line_prefix
            .as_deref()
            .unwrap_or("")
            .trim()
            .to_owned();
        if !outside_line_prefix
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
        {
            problems.push(LocationProblem {
                field: "outside_line_prefix",
                value: outside_line_prefix.clone(),
                reason: "only digits, `*` and `#` are allowed",
            });
        }
        let internal_length = cfg.internal_length.unwrap_or(0);
        if cfg
            .national_number_length
            .is_some_and(|n| n <= internal_length)
        {
            problems.push(LocationProblem {
                field: "national_number_length",
                value: cfg.national_number_length.unwrap_or(0).to_string(),
                reason: "must be longer than internal_length",
            });
        }
        if internal_length > 15 {
            problems.push(LocationProblem {
                field: "internal_length",
                value: internal_length.to_string(),
                reason: "an extension has at most 15 digits",
            });
        }
        if !base_number.is_empty() && internal_length == 0 {
            problems.push(LocationProblem {
                field: "base_number",
                value: base_number.clone(),
                reason: "needs internal_length, the number of digits of an extension",
            });
        }
        if let Some(rest) = area_code.strip_prefix(national_prefix.as_str()) {
            if !national_prefix.is_empty() && !rest.is_empty() {
                area_code = rest.to_owned();
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Location {
            country_code,
            area_code,
            international_prefix,
            national_prefix,
            outside_line_prefix,
            internal_length,
            base_number,
            dial_area_code_locally: cfg.dial_area_code_locally.unwrap_or(false),
            strip_outside_line_prefix: cfg.strip_outside_line_prefix.unwrap_or(false),
            national_number_length: cfg.national_number_length.unwrap_or(0),
        })
    }

    /// What the phone system dials for a number from the application.
    ///
    /// - A canonical number (`+…`, TAPI's "+43 (1) 505641" included) becomes: the extension
    ///   alone when it lies inside the phone system (needs `base_number`); else the local number
    ///   after the outside-line prefix when country and area are the own (with national prefix
    ///   and area code if `dial_area_code_locally`); else outside-line prefix, national prefix
    ///   and the national number in the own country; else outside-line prefix, international
    ///   prefix and all digits.
    /// - Digits with separators lose the separators and are otherwise taken as already
    ///   dialable; no prefix is added (the manual has rules for that).
    /// - Service codes lose their separators; anything else is left unchanged.
    pub fn to_dialable(&self, number: &str) -> Conversion {
        match canonical::read(number) {
            Shape::Empty => Conversion::new("", "empty"),
            Shape::Canonical(c) => self.dial_canonical(&c),
            Shape::Digits(d) => Conversion::new(d, "not canonical: taken as dialable"),
            Shape::Service(s) => Conversion::new(s, "service code: no prefixes"),
            Shape::Other => Conversion::new(number, "not a phone number: unchanged"),
        }
    }

    fn dial_canonical(&self, c: &Canonical) -> Conversion {
        let out = self.outside_line_prefix.as_str();
        let national_number = match &c.split {
            Some((cc, area)) if *cc == self.country_code => {
                let nsn = &c.digits[cc.len()..];
                // "+49 (089) …": the national prefix written inside the parentheses by mistake.
                match area.strip_prefix(self.national_prefix.as_str()) {
                    Some(bare) if !self.national_prefix.is_empty() && !bare.is_empty() => {
                        Some((&nsn[self.national_prefix.len()..], Some(bare)))
                    }
                    _ => Some((nsn, Some(area.as_str()))),
                }
            }
            Some(_) => None,
            None => c
                .digits
                .strip_prefix(self.country_code.as_str())
                .map(|nsn| (nsn, None)),
        };
        let Some((nsn, area_hint)) = national_number else {
            return Conversion::new(
                format!("{out}{}{}", self.international_prefix, c.digits),
                "other country: international prefix",
            );
        };
        let local = if self.area_code.is_empty() {
            Some(nsn)
        } else {
            match area_hint {
                Some(area) => (area == self.area_code).then(|| &nsn[area.len()..]),
                None => nsn.strip_prefix(self.area_code.as_str()),
            }
        };
        let Some(local) = local else {
            return Conversion::new(
                format!("{out}{}{nsn}", self.national_prefix),
                "own country, other area: national prefix",
            );
        };
        if let Some(ext) = self.extension_of(local) {
            return Conversion::new(ext, "inside the phone system: extension");
        }
        if self.dial_area_code_locally && !self.area_code.is_empty() {
            Conversion::new(
                format!("{out}{}{}{local}", self.national_prefix, self.area_code),
                "own area, dialled with area code",
            )
        } else {
            Conversion::new(format!("{out}{local}"), "own area: local number")
        }
    }

    /// The extension, when `local` is base number plus an extension of internal length.
    fn extension_of<'a>(&self, local: &'a str) -> Option<&'a str> {
        if self.base_number.is_empty() {
            return None;
        }
        let ext = local.strip_prefix(self.base_number.as_str())?;
        (!ext.is_empty() && ext.len() <= self.internal_length).then_some(ext)
    }

    /// Cleans a number the phone system reported, before the rules see it: a `sip:`/`tel:` URI
    /// whose user part is a number is reduced to that number, and separators are removed.
    /// Anything that is not a phone number is left unchanged.
    pub fn clean_reported(&self, number: &str) -> Conversion {
        let (text, from_uri) = match canonical::uri_user(number) {
            Some(user) => (user, true),
            None => (number, false),
        };
        let cleaned = match canonical::read(text) {
            Shape::Empty => String::new(),
            Shape::Canonical(c) => format!("+{}", c.digits),
            Shape::Digits(d) | Shape::Service(d) => d,
            Shape::Other => return Conversion::new(number, "not a phone number: unchanged"),
        };
        let note = if from_uri {
            "user part of the URI"
        } else if cleaned != number {
            "separators removed"
        } else {
            "nothing to clean"
        };
        Conversion::new(cleaned, note)
    }

    /// The full canonical number (`+49891234567`) for a number the phone system reported.
    ///
    /// In this order: a number with `+` keeps it (separators removed); the outside-line prefix
    /// is removed if `strip_outside_line_prefix`; an extension (at most `internal_length`
    /// digits) stays as it is, or gets country, area and base number when `base_number` is
    /// set; a number starting with the international prefix gets `+` instead; one starting with
    /// the national prefix gets `+` and the country code instead; one of `national_number_length`
    /// digits gets `+` and the country code; any other gets `+`, country code and area code. Service codes and non-numbers are left unchanged.
    pub fn to_canonical(&self, number: &str) -> Conversion {
        let digits = match canonical::read(number) {
            Shape::Empty => return Conversion::new("", "empty"),
            Shape::Canonical(c) => return Conversion::new(format!("+{}", c.digits), "canonical"),
            Shape::Digits(d) => d,
            Shape::Service(s) => return Conversion::new(s, "service code: unchanged"),
            Shape::Other => return Conversion::new(number, "not a phone number: unchanged"),
        };
        let mut d = digits.as_str();
        if self.strip_outside_line_prefix && !self.outside_line_prefix.is_empty() {
            if let Some(rest) = d.strip_prefix(self.outside_line_prefix.as_str()) {
                if !rest.is_empty() {
                    d = rest;
                }
            }
        }
        let cc = &self.country_code;
        if d.len() <= self.internal_length {
            return if self.base_number.is_empty() {
                Conversion::new(d, "extension: unchanged")
            } else {
                Conversion::new(
                    format!("+{cc}{}{}{d}", self.area_code, self.base_number),
                    "extension: with base number",
                )
            };
        }
        if let Some(rest) = non_empty_after(d, &self.international_prefix) {
            return Conversion::new(format!("+{rest}"), "international prefix");
        }
        if let Some(rest) = non_empty_after(d, &self.national_prefix) {
            return Conversion::new(format!("+{cc}{rest}"), "national prefix: own country");
        }
        if d.len() == self.national_number_length {
            return Conversion::new(format!("+{cc}{d}"), "national number without prefix");
        }
        Conversion::new(
            format!("+{cc}{}{d}", self.area_code),
            "local: own country and area",
        )
    }
}

/// What follows a non-empty `prefix` in `s`, if anything does.
fn non_empty_after<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return None;
    }
    s.strip_prefix(prefix).filter(|rest| !rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(cc: &str, area: &str, f: impl FnOnce(&mut LocationConfig)) -> Location {
        let mut cfg = LocationConfig {
            country_code: Some(cc.into()),
            area_code: Some(area.into()),
            ..LocationConfig::default()
        };
        f(&mut cfg);
        match Location::compile(&cfg) {
            Ok(l) => l,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn bad_settings_are_all_reported() {
        let cfg = LocationConfig {
            country_code: None,
            area_code: Some("8x".into()),
            international_prefix: Some(String::new()),
            outside_line_prefix: Some("0a".into()),
            internal_length: Some(99),
            base_number: Some("123".into()),
            ..LocationConfig::default()
        };
        let fields: Vec<_> = match Location::compile(&cfg) {
            Ok(l) => panic!("accepted {l:?}"),
            Err(problems) => problems.iter().map(|p| p.field).collect(),
        };
        assert_eq!(
            fields,
            [
                "country_code",
                "area_code",
                "international_prefix",
                "outside_line_prefix",
                "internal_length"
            ]
        );
        let cfg = LocationConfig {
            country_code: Some("49".into()),
            base_number: Some("123".into()),
            ..LocationConfig::default()
        };
        assert!(
            Location::compile(&cfg).is_err(),
            "base number without internal length"
        );
    }

    #[test]
    fn area_code_with_national_prefix_is_accepted() {
        let a = location("+49", "089", |_| {});
        let b = location("49", "89", |_| {});
        assert_eq!(a, b);
    }

    #[test]
    fn dialable() {
        let munich = location("49", "89", |c| c.outside_line_prefix = Some("0".into()));
        let pbx = location("49", "30", |c| {
            c.base_number = Some("12345".into());
            c.internal_length = Some(3);
        });
        let zurich = location("41", "44", |c| c.dial_area_code_locally = Some(true));
        let cases = [
            (&munich, "+49 (89) 1234567", "01234567"),
            (&munich, "+49 89 1234567", "01234567"),
            (&munich, "+49 (0)89 1234567", "01234567"),
            (&munich, "+49 (30) 123", "0030123"),
            (&munich, "+43 (1) 505641", "000431505641"),
            (&munich, "0891 234-567", "0891234567"),
            (&munich, "*21#", "*21#"),
            (&munich, "sip:200@pbx", "sip:200@pbx"),
            (&munich, " ", ""),
            (&pbx, "+49 30 12345 123", "123"),
            (&pbx, "+49 30 12345 1234", "123451234"),
            (&pbx, "+49 30 12345 6", "6"),
            (&pbx, "+49 30 99 1234", "991234"),
            (&zurich, "+41 44 668 18 00", "0446681800"),
            (&zurich, "+41 31 123 45 67", "0311234567"),
            (&munich, "+49 (089) 1234567", "01234567"),
            (&munich, "+49 (030) 1234567", "00301234567"),
            (&munich, "+41 (044) 1234567", "000410441234567"),
        ];
        for (loc, input, want) in cases {
            assert_eq!(loc.to_dialable(input).number, want, "{input:?}");
        }
    }

    #[test]
    fn canonical() {
        let munich = location("49", "89", |c| c.internal_length = Some(3));
        let stripping = location("49", "89", |c| {
            c.outside_line_prefix = Some("0".into());
            c.strip_outside_line_prefix = Some(true);
        });
        let pbx = location("49", "30", |c| {
            c.base_number = Some("12345".into());
            c.internal_length = Some(3);
        });
        let nanp = location("1", "206", |c| {
            c.international_prefix = Some("011".into());
            c.national_prefix = Some("1".into());
            c.national_number_length = Some(10);
        });
        let cases = [
            (&munich, "0891234567", "+49891234567"),
            (&munich, "004930123", "+4930123"),
            (&munich, "1234567", "+49891234567"),
            (&munich, "200", "200"),
            (&munich, "**12", "**12"),
            (&munich, "+49 (89) 123", "+4989123"),
            (&munich, "0", "0"),
            (&munich, "0000", "+00"),
            (&stripping, "0", "+49890"),
            (&stripping, "00", "+49890"),
            (&stripping, "000", "+490"),
            (&munich, "Anna", "Anna"),
            (&stripping, "00891234567", "+49891234567"),
            (&stripping, "0004930123", "+4930123"),
            (&stripping, "01234567", "+49891234567"),
            (&pbx, "200", "+493012345200"),
            (&nanp, "4255551212", "+14255551212"),
            (&nanp, "14255551212", "+14255551212"),
            (&nanp, "5551212", "+12065551212"),
            (&nanp, "01144207946", "+44207946"),
        ];
        for (loc, input, want) in cases {
            assert_eq!(loc.to_canonical(input).number, want, "{input:?}");
        }
    }

    #[test]
    fn clean_reported() {
        let loc = location("49", "89", |_| {});
        let cases = [
            ("sip:200@pbx", "200"),
            ("sip:+49 89 123@pbx", "+4989123"),
            ("sip:alice@pbx", "sip:alice@pbx"),
            ("089 / 12 34", "0891234"),
            ("*21 #", "*21#"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(loc.clean_reported(input).number, want, "{input:?}");
        }
    }
}
