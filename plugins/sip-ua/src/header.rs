//! Typed views of the headers the stack itself reads: SIP URIs, name-addr (From, To, Contact,
//! Route, Refer-To), Via and CSeq, parsed as RFC 3261 §25.1 writes them (linear whitespace
//! around `/`, `;` and `=`, quoted strings with quoted-pairs). Each parser returns `None` on
//! anything it cannot read; none panics on any input.

pub mod lex;

use crate::message::Method;
use lex::{
    find_unquoted, is_host, is_token, is_token_byte, is_ws, parse_digits, parse_port, quoted_len,
    split_unquoted, take_token, trim_ws, unquote,
};
use std::fmt;

/// A `;name=value` parameter list, in order. Names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    /// Parses `;a=1;b;c="x"` leniently (the leading `;` optional, empty parts skipped): for URI
    /// parameters and values the stack built itself.
    pub fn parse(text: &str) -> Params {
        let mut out = Vec::new();
        for part in split_unquoted(text, ';') {
            let part = trim_ws(part);
            if part.is_empty() {
                continue;
            }
            match part.split_once('=') {
                Some((n, v)) => out.push((trim_ws(n).to_owned(), Some(trim_ws(v).to_owned()))),
                None => out.push((part.to_owned(), None)),
            }
        }
        Params(out)
    }

    /// Parses the header parameters after a value, `*( SEMI generic-param )` with SEMI and
    /// EQUAL allowing whitespace around them. `None` for an empty parameter (`;;`), a name that
    /// is not a token, or a value that is neither a token, a host nor a closed quoted string.
    pub fn parse_header(text: &str) -> Option<Params> {
        let mut out = Vec::new();
        walk_header_params(text, |name, value| {
            out.push((name.to_owned(), value.map(str::to_owned)));
        })
        .then_some(Params(out))
    }

    /// True when [`Self::parse_header`] would read `text`; allocates nothing.
    pub fn valid_header(text: &str) -> bool {
        walk_header_params(text, |_, _| {})
    }

    /// The value of a parameter: `Some("")` for a flag without value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// True if the parameter is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets (or adds) a parameter.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        if let Some(slot) = self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            slot.1 = value;
        } else {
            self.0.push((name.to_owned(), value));
        }
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, v) in &self.0 {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

/// Walks header parameters (see [`Params::parse_header`]), handing each name and value to
/// `each` as borrowed text; false (after handing some) when the list is malformed.
fn walk_header_params<'a>(text: &'a str, mut each: impl FnMut(&'a str, Option<&'a str>)) -> bool {
    let mut parts = split_unquoted(text, ';');
    if !parts.next().is_some_and(|first| trim_ws(first).is_empty()) {
        return false;
    }
    for part in parts {
        let (name, value) = match part.split_once('=') {
            Some((n, v)) => (trim_ws(n), Some(trim_ws(v))),
            None => (trim_ws(part), None),
        };
        if !is_token(name) {
            return false;
        }
        if let Some(v) = value {
            let ok = if v.starts_with('"') {
                quoted_len(v) == Some(v.len())
            } else {
                !v.is_empty()
                    && v.bytes()
                        .all(|b| is_token_byte(b) || b == b':' || b == b'[' || b == b']')
            };
            if !ok {
                return false;
            }
        }
        each(name, value);
    }
    true
}

/// A byte RFC 3261 allows (unescaped) in the user or password part of a SIP URI.
fn is_userinfo_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()%&=+$,;?/#:".contains(&b)
}

/// A `sip:`/`sips:` URI (RFC 3261 §19.1), or any other scheme kept opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// `sip`, `sips`, `tel`, ... in lower case.
    pub scheme: String,
    /// The user part (still escaped as on the wire), if any.
    pub user: Option<String>,
    /// Host name, IPv4 literal, or IPv6 literal *with* brackets.
    pub host: String,
    /// Explicit port.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`).
    pub params: Params,
    /// Embedded headers after `?`, as written.
    pub headers: Option<String>,
}

impl Uri {
    /// Parses a SIP or SIPS URI. Other schemes and malformed text give `None`.
    ///
    /// The user part ends at the first `@` (an `@` inside it must be escaped), so `?`, `;` and
    /// `:` in the user part stay there; the headers start at the first `?` after the host.
    pub fn parse(text: &str) -> Option<Uri> {
        let text = trim_ws(text);
        if text.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (scheme, rest) = text.split_once(':')?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "sip" && scheme != "sips" {
            return None;
        }
        let (user, after) = match rest.find('@') {
            Some(at) => {
                let userinfo = &rest[..at];
                if userinfo.is_empty() || !userinfo.bytes().all(is_userinfo_byte) {
                    return None;
                }
                let user = userinfo.split(':').next().unwrap_or("");
                if user.is_empty() {
                    return None;
                }
                (Some(user.to_owned()), &rest[at + 1..])
            }
            None => (None, rest),
        };
        let (before_headers, headers) = match after.split_once('?') {
            Some((r, h)) => (r, Some(h.to_owned())),
            None => (after, None),
        };
        let (hostport, params) = match before_headers.split_once(';') {
            Some((hp, p)) => (hp, Params::parse(p)),
            None => (before_headers, Params::default()),
        };
        let (host, port) = split_host_port(hostport)?;
        Some(Uri {
            scheme,
            user,
            host,
            port,
            params,
            headers,
        })
    }

    /// A `sip:user@host[:port]` URI.
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Uri {
        Uri {
            scheme: "sip".into(),
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            params: Params::default(),
            headers: None,
        }
    }

    /// The `transport` parameter, lower-cased.
    pub fn transport(&self) -> Option<String> {
        self.params.get("transport").map(str::to_ascii_lowercase)
    }
}

/// Splits `host[:port]`, keeping IPv6 brackets on the host. `None` unless the host is a name,
/// an IPv4 address or a bracketed IPv6 reference, and the port is 1–5 digits up to 65535.
pub fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    split_host_port_ref(text).map(|(host, port)| (host.to_owned(), port))
}

/// [`split_host_port`] without copying the host.
pub fn split_host_port_ref(text: &str) -> Option<(&str, Option<u16>)> {
    let text = trim_ws(text);
    let (host, port) = if text.starts_with('[') {
        let close = text.find(']')?;
        let (host, after) = text.split_at(close + 1);
        match after.strip_prefix(':') {
            Some(p) => (host, Some(parse_port(p)?)),
            None if after.is_empty() => (host, None),
            None => return None,
        }
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(parse_port(p)?)),
            None => (text, None),
        }
    };
    is_host(host).then_some((host, port))
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// `["Display"] <uri>;params` or `uri;params` (From, To, Contact, Route, Refer-To).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted (quoted-pairs undone).
    pub display: Option<String>,
    /// The URI text between the angle brackets (any scheme).
    pub uri: String,
    /// Header parameters (`tag`, `expires`, ...).
    pub params: Params,
}

/// A URI as it may stand in a header: a scheme, no whitespace, no control characters.
fn plausible_uri(uri: &str) -> bool {
    !uri.is_empty()
        && !uri.contains(|c: char| c.is_whitespace() || c.is_control() || "<>\"".contains(c))
        && uri.split_once(':').is_some_and(|(scheme, _)| {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        })
}

/// A name-addr's display name as written.
enum Display<'a> {
    None,
    Quoted(&'a str),
    Token(&'a str),
}

/// A name-addr cut into its parts, nothing copied; the parameters are not checked yet.
struct NameAddrParts<'a> {
    display: Display<'a>,
    uri: &'a str,
    params: &'a str,
}

impl<'a> NameAddrParts<'a> {
    fn split(text: &'a str) -> Option<NameAddrParts<'a>> {
        let text = trim_ws(text);
        let (display, rest) = if text.starts_with('"') {
            let len = quoted_len(text)?;
            let rest = text[len..].trim_start_matches(is_ws);
            if !rest.starts_with('<') {
                return None;
            }
            (Display::Quoted(&text[..len]), rest)
        } else if let Some(open) = find_unquoted(text, '<') {
            let name = trim_ws(&text[..open]);
            if !name.split(is_ws).all(|w| w.is_empty() || is_token(w)) {
                return None;
            }
            let display = if name.is_empty() {
                Display::None
            } else {
                Display::Token(name)
            };
            (display, &text[open..])
        } else {
            // addr-spec: parameters after the URI belong to the header (RFC 3261 §20).
            let (uri, params) = match text.find(';') {
                Some(i) => (trim_ws(&text[..i]), &text[i..]),
                None => (text, ""),
            };
            if !plausible_uri(uri) || uri.contains(['?', ',']) {
                return None;
            }
            return Some(NameAddrParts {
                display: Display::None,
                uri,
                params,
            });
        };
        let inner = rest.strip_prefix('<')?;
        let close = inner.find('>')?;
        let uri = &inner[..close];
        if !plausible_uri(uri) {
            return None;
        }
        Some(NameAddrParts {
            display,
            uri,
            params: &inner[close + 1..],
        })
    }
}

impl NameAddr {
    /// Parses a name-addr or addr-spec (RFC 3261 §20.10, §25.1). `None` if there is no URI,
    /// a quote never closes, an unquoted display name holds non-token characters, the URI in
    /// angle brackets has whitespace, an addr-spec holds `?` or `,` (it must then be in angle
    /// brackets), or a header parameter is malformed.
    pub fn parse(text: &str) -> Option<NameAddr> {
        let parts = NameAddrParts::split(text)?;
        let display = match parts.display {
            Display::None => None,
            Display::Quoted(q) => Some(unquote(q)),
            Display::Token(t) => Some(t.to_owned()),
        };
        Some(NameAddr {
            display: display.filter(|d| !d.is_empty()),
            uri: parts.uri.to_owned(),
            params: Params::parse_header(parts.params)?,
        })
    }

    /// True when [`Self::parse`] would read `text`; allocates nothing.
    pub fn valid(text: &str) -> bool {
        NameAddrParts::split(text).is_some_and(|p| Params::valid_header(p.params))
    }

    /// A name-addr around a URI.
    pub fn new(uri: impl Into<String>) -> NameAddr {
        NameAddr {
            display: None,
            uri: uri.into(),
            params: Params::default(),
        }
    }

    /// A header parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name)
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag")
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "{} ", lex::quote(d))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// One Via value: `SIP/2.0/UDP host:port;branch=...;rport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token, upper-case (`UDP`, `TCP`).
    pub transport: String,
    /// sent-by host.
    pub host: String,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters.
    pub params: Params,
}

impl Via {
    /// Parses one Via value: `SIP / 2.0 / UDP host[:port] *(; param)`, whitespace allowed
    /// around each `/`, `;` and `=` (RFC 3261 §25.1 SLASH, SEMI, EQUAL). Only SIP/2.0 is read.
    pub fn parse(text: &str) -> Option<Via> {
        let via = ViaRef::parse(text)?;
        Some(Via {
            transport: via.transport.to_ascii_uppercase(),
            host: via.host.to_owned(),
            port: via.port,
            params: Params::parse_header(via.params)?,
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch").filter(|b| !b.is_empty())
    }
}

/// One Via value read in place, nothing copied: what the transaction layer needs of every
/// message it sees (the branch and the sent-by) without building a [`Via`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViaRef<'a> {
    /// Transport token as written.
    pub transport: &'a str,
    /// sent-by host.
    pub host: &'a str,
    /// sent-by port.
    pub port: Option<u16>,
    /// The parameters as written (`;branch=...;rport`), checked well formed.
    pub params: &'a str,
}

impl<'a> ViaRef<'a> {
    /// Reads what [`Via::parse`] reads; `None` for the same input.
    pub fn parse(text: &'a str) -> Option<ViaRef<'a>> {
        let (name, rest) = take_token(trim_ws(text))?;
        let rest = rest.trim_start_matches(is_ws).strip_prefix('/')?;
        let (version, rest) = take_token(rest.trim_start_matches(is_ws))?;
        let rest = rest.trim_start_matches(is_ws).strip_prefix('/')?;
        let (transport, rest) = take_token(rest.trim_start_matches(is_ws))?;
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" || !rest.starts_with(is_ws) {
            return None;
        }
        let rest = rest.trim_start_matches(is_ws);
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !Params::valid_header(params) {
            return None;
        }
        let (host, port) = split_host_port_ref(sent_by)?;
        Some(ViaRef {
            transport,
            host,
            port,
            params,
        })
    }

    /// A parameter (`Some("")` for a flag), names compared case-insensitively.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        let mut found = None;
        walk_header_params(self.params, |n, v| {
            if found.is_none() && n.eq_ignore_ascii_case(name) {
                found = Some(v.unwrap_or(""));
            }
        });
        found
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.param("branch").filter(|b| !b.is_empty())
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// `CSeq: 1 INVITE`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number.
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl CSeq {
    /// Parses a CSeq value: 1–10 digits up to 2³²−1 (no sign), LWS, a method token.
    pub fn parse(text: &str) -> Option<CSeq> {
        let mut it = text.split(is_ws).filter(|p| !p.is_empty());
        let seq = parse_digits(it.next()?, 10)?;
        let method = it.next()?;
        if it.next().is_some() || !is_token(method) {
            return None;
        }
        Some(CSeq {
            seq,
            method: Method::parse(method),
        })
    }
}

#[cfg(test)]
mod tests;
