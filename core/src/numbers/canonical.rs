//! Reading the shapes numbers arrive in: TAPI canonical input ("+43 (1) 505641"), digits with
//! visual separators ("089 / 123-45.67"), service codes ("**12", "*21#"), and SIP or tel URIs
//! ("sip:200@pbx"), into a [`Shape`] the location logic can work on.

/// What a number string turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Nothing but whitespace (for example a withheld number).
    Empty,
    /// A number starting with `+`.
    Canonical(Canonical),
    /// Digits only, separators removed.
    Digits(String),
    /// Digits with `*` or `#` (a feature or service code), separators removed. Never gets
    /// prefixes and is never made canonical.
    Service(String),
    /// Anything else (a name, a URI whose user part is not a number): left as it came.
    Other,
}

/// A number given with a leading `+`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    /// All digits after the `+` (country code, area code, subscriber number).
    pub digits: String,
    /// Country code and area code, when the input marked the area code with parentheses
    /// (`+43 (1) 505641`), so they need not be guessed from the location.
    pub split: Option<(String, String)>,
}

/// Whether `c` only formats a number for the eye.
pub fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '-' | '.' | '/')
}

/// Reads a number string.
///
/// A TAPI canonical address may carry a subaddress after `|` and a name after `^`; both are
/// dropped. `(0)` right after the country code ("+49 (0)89 …", the usual way to show the trunk
/// prefix) is dropped too.
pub fn read(number: &str) -> Shape {
    let trimmed = number.trim();
    if trimmed.is_empty() {
        return Shape::Empty;
    }
    if let Some(rest) = trimmed.strip_prefix('+') {
        let address = rest.split(['|', '^']).next().unwrap_or_default();
        return read_canonical(address).map_or(Shape::Other, Shape::Canonical);
    }
    let compact: String = trimmed.chars().filter(|c| !is_separator(*c)).collect();
    if compact.is_empty() {
        Shape::Other
    } else if compact.chars().all(|c| c.is_ascii_digit()) {
        Shape::Digits(compact)
    } else if compact
        .chars()
        .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
    {
        Shape::Service(compact)
    } else {
        Shape::Other
    }
}

/// `rest` is what follows the `+`.
fn read_canonical(rest: &str) -> Option<Canonical> {
    let mut head = String::new();
    let mut area: Option<String> = None;
    let mut tail = String::new();
    let mut in_parens = false;
    for c in rest.chars() {
        match c {
            '(' if area.is_none() && !in_parens => {
                in_parens = true;
                area = Some(String::new());
            }
            ')' if in_parens => in_parens = false,
            d if d.is_ascii_digit() => {
                let part = match (&mut area, in_parens) {
                    (None, _) => &mut head,
                    (Some(a), true) => a,
                    (Some(_), false) => &mut tail,
                };
                part.push(d);
            }
            s if is_separator(s) => {}
            _ => return None,
        }
    }
    if in_parens {
        return None;
    }
    let mut digits = head.clone();
    let split = match area {
        // "(0)" marks the trunk prefix, not an area code.
        Some(a) if a == "0" || a.is_empty() => None,
        Some(a) if !head.is_empty() => {
            digits.push_str(&a);
            Some((head, a))
        }
        Some(a) => {
            digits.push_str(&a);
            None
        }
        None => None,
    };
    digits.push_str(&tail);
    if digits.is_empty() {
        None
    } else {
        Some(Canonical { digits, split })
    }
}

/// The user part of a `sip:`, `sips:` or `tel:` URI (optionally in `<…>` with a display name),
/// or `None` when `number` is no such URI.
pub fn uri_user(number: &str) -> Option<&str> {
    let s = number.trim();
    let s = match (s.find('<'), s.rfind('>')) {
        (Some(open), Some(close)) if open < close => &s[open + 1..close],
        _ => s,
    };
    let (scheme, rest) = s.split_once(':')?;
    if !["sip", "sips", "tel"]
        .iter()
        .any(|k| scheme.eq_ignore_ascii_case(k))
    {
        return None;
    }
    let user = match rest.split_once('@') {
        Some((user, _host)) => user,
        None if scheme.eq_ignore_ascii_case("tel") => rest,
        None => return None,
    };
    // URI parameters (";user=phone", ";phone-context=…") are not part of the number.
    let user = user.split(';').next().unwrap_or_default();
    (!user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(digits: &str, split: Option<(&str, &str)>) -> Shape {
        Shape::Canonical(Canonical {
            digits: digits.into(),
            split: split.map(|(c, a)| (c.into(), a.into())),
        })
    }

    #[test]
    fn shapes() {
        let cases = [
            ("", Shape::Empty),
            ("   ", Shape::Empty),
            ("+43 (1) 505641", canonical("431505641", Some(("43", "1")))),
            (
                "+1 (425) 555-1212",
                canonical("14255551212", Some(("1", "425"))),
            ),
            ("+49 (0)89 1234567", canonical("49891234567", None)),
            ("+49891234567", canonical("49891234567", None)),
            (
                "+44 20 7946 0958 | 12 ^ Reception",
                canonical("442079460958", None),
            ),
            ("+(43) 1", canonical("431", None)),
            ("+43 (1 505", Shape::Other),
            ("+", Shape::Other),
            ("+43 abc", Shape::Other),
            ("089 / 123-45.67", Shape::Digits("0891234567".into())),
            ("**12", Shape::Service("**12".into())),
            ("*21# ", Shape::Service("*21#".into())),
            ("sip:200@pbx", Shape::Other),
            ("Anna", Shape::Other),
            ("()", Shape::Other),
            ("０８９", Shape::Other),
        ];
        for (input, want) in cases {
            assert_eq!(read(input), want, "{input:?}");
        }
    }

    #[test]
    fn uri_users() {
        let cases = [
            ("sip:200@pbx", Some("200")),
            ("SIP:+4989123;user=phone@pbx.example", Some("+4989123")),
            ("sips:alice@example.com", Some("alice")),
            ("tel:+49-89-123", Some("+49-89-123")),
            ("tel:+49891;phone-context=x", Some("+49891")),
            ("\"Anna\" <sip:201@10.0.0.1:5060>", Some("201")),
            ("sip:pbx.example", None),
            ("http://x@y", None),
            ("200", None),
            ("sip:@pbx", None),
        ];
        for (input, want) in cases {
            assert_eq!(uri_user(input), want, "{input:?}");
        }
    }
}
