//! The lexical pieces of RFC 3261 §25.1 the header parsers share: tokens, quoted strings with
//! quoted-pairs, linear whitespace, host names and IP literals, ports. Every function works on
//! `&str` slices and never panics.

/// A byte of `token` (RFC 3261 §25.1): alphanumerics and `-.!%*_+`'~`.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// True for a non-empty `token`.
pub fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_token_byte)
}

/// Space or horizontal tab (what is left of LWS once folding is undone).
pub fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `text` without leading and trailing SP/HTAB.
pub fn trim_ws(text: &str) -> &str {
    text.trim_matches(is_ws)
}

/// Splits the longest token off the front: `(token, rest)`; `None` when `text` does not start
/// with a token character.
pub fn take_token(text: &str) -> Option<(&str, &str)> {
    let end = text
        .bytes()
        .position(|b| !is_token_byte(b))
        .unwrap_or(text.len());
    (end > 0).then(|| text.split_at(end))
}

/// If `text` starts with a quoted string, its length in bytes through the closing quote; `None`
/// when it does not start with `"` or the string never closes. A backslash escapes the next
/// character (quoted-pair), so `\"` does not close it.
pub fn quoted_len(text: &str) -> Option<usize> {
    let mut chars = text.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut escaped = false;
    for (i, ch) in chars {
        if escaped {
            escaped = false;
        } else if ch == '\\' {
            escaped = true;
        } else if ch == '"' {
            return Some(i + 1);
        }
    }
    None
}

/// The content of a quoted string (`"a\"b"` → `a"b`): quotes removed, quoted-pairs undone.
pub fn unquote(quoted: &str) -> String {
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(quoted);
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for ch in inner.chars() {
        if escaped {
            out.push(ch);
            escaped = false;
        } else if ch == '\\' {
            escaped = true;
        } else {
            out.push(ch);
        }
    }
    out
}

/// `text` as a quoted string, escaping `"` and `\` (the inverse of [`unquote`]).
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        // Line breaks cannot be carried in a header value at all.
        if ch != '\r' && ch != '\n' {
            out.push(ch);
        }
    }
    out.push('"');
    out
}

/// Finds the first `needle` outside quoted strings (quoted-pairs respected).
pub fn find_unquoted(text: &str, needle: char) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, ch) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && ch == '\\' {
            escaped = true;
        } else if ch == '"' {
            quoted = !quoted;
        } else if ch == needle && !quoted {
            return Some(i);
        }
    }
    None
}

/// Splits at every `sep` outside quoted strings (always at least one part; nothing is
/// allocated).
pub fn split_unquoted(text: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        match find_unquoted(r, sep) {
            Some(i) => {
                rest = r.get(i + sep.len_utf8()..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// A port: 1 to 5 decimal digits (no sign) up to 65535.
pub fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A host: a name or IPv4 address (alphanumerics, `-`, `.`, and `_` as real networks use it),
/// or an IPv6 reference in brackets holding hex digits, colons and dots. The content of the
/// brackets is not checked further: RFC 5118 §4.10 asks parsers to tolerate the three-colon
/// form RFC 3261's grammar allowed.
pub fn is_host(text: &str) -> bool {
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return inner.contains(':')
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// A decimal number of at most `max_digits` digits, without sign or spaces.
pub fn parse_digits<T: std::str::FromStr>(text: &str, max_digits: usize) -> Option<T> {
    if text.is_empty() || text.len() > max_digits || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_respect_quoted_pairs() {
        assert_eq!(quoted_len(r#""a\"b" rest"#), Some(6));
        assert_eq!(quoted_len(r#""J Rosenberg \\\"" x"#), Some(18));
        assert_eq!(quoted_len(r#""open"#), None);
        assert_eq!(unquote(r#""J Rosenberg \\\"""#), r#"J Rosenberg \""#);
        assert_eq!(unquote(&quote(r#"a"b\c"#)), r#"a"b\c"#);
        assert_eq!(find_unquoted(r#""a;\";b";c"#, ';'), Some(8));
        assert_eq!(
            split_unquoted(r#"a;"b;c";d"#, ';').collect::<Vec<_>>(),
            vec!["a", r#""b;c""#, "d"]
        );
    }

    #[test]
    fn ports_hosts_and_digits_are_strict() {
        assert_eq!(parse_port("5060"), Some(5060));
        assert_eq!(parse_port("+5060"), None);
        assert_eq!(parse_port("99999"), None);
        assert!(is_host("[2001:db8::10:5070]"));
        assert!(is_host("[2001:db8:::192.0.2.1]"));
        assert!(is_host("chair-dnrc.example.com"));
        assert!(!is_host("a b"));
        assert!(!is_host("[zz]"));
        assert_eq!(parse_digits::<u32>("0009", 10), Some(9));
        assert_eq!(parse_digits::<u32>("+4", 10), None);
        assert_eq!(parse_digits::<u32>("4294967296", 10), None);
        assert_eq!(take_token("SIP  /"), Some(("SIP", "  /")));
    }
}
