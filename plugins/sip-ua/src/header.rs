//! Typed views of the headers the stack itself reads: SIP URIs, name-addr (From, To, Contact,
//! Route, Refer-To), Via and CSeq. Each parser returns `None` on anything it cannot read; none
//! panics on any input.

use crate::message::Method;
use std::fmt;

/// A `;name=value` parameter list, in order. Names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    /// Parses `;a=1;b;c="x"` (the leading `;` optional).
    pub fn parse(text: &str) -> Params {
        let mut out = Vec::new();
        for part in split_params(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            match part.split_once('=') {
                Some((n, v)) => out.push((n.trim().to_owned(), Some(v.trim().to_owned()))),
                None => out.push((part.to_owned(), None)),
            }
        }
        Params(out)
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

/// Splits at `;` outside double quotes.
fn split_params(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, ch) in text.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
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
    pub fn parse(text: &str) -> Option<Uri> {
        let text = text.trim();
        let (scheme, rest) = text.split_once(':')?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "sip" && scheme != "sips" {
            return None;
        }
        let (rest, headers) = match rest.split_once('?') {
            Some((r, h)) => (r, Some(h.to_owned())),
            None => (rest, None),
        };
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let user = userinfo.map(|u| u.split(':').next().unwrap_or("").to_owned());
        let (hostport, params) = match hostpart.find(';') {
            Some(i) => (&hostpart[..i], Params::parse(&hostpart[i + 1..])),
            None => (hostpart, Params::default()),
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() {
            return None;
        }
        Some(Uri {
            scheme,
            user: user.filter(|u| !u.is_empty()),
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

/// Splits `host[:port]`, keeping IPv6 brackets on the host.
pub fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix('[') {
        let close = rest.find(']')?;
        let host = format!("[{}]", &rest[..close]);
        let after = &rest[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match text.split_once(':') {
        Some((h, p)) => Some((h.to_owned(), Some(p.parse().ok()?))),
        None => Some((text.to_owned(), None)),
    }
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
    /// Display name, unquoted.
    pub display: Option<String>,
    /// The URI text between the angle brackets (any scheme).
    pub uri: String,
    /// Header parameters (`tag`, `expires`, ...).
    pub params: Params,
}

impl NameAddr {
    /// Parses a name-addr or addr-spec. `None` if there is no URI.
    pub fn parse(text: &str) -> Option<NameAddr> {
        let text = text.trim();
        if let Some(open) = find_unquoted(text, '<') {
            let close = text[open..].find('>')? + open;
            let display = text[..open].trim().trim_matches('"').trim();
            let uri = text[open + 1..close].trim();
            if uri.is_empty() {
                return None;
            }
            let params = Params::parse(&text[close + 1..]);
            return Some(NameAddr {
                display: (!display.is_empty()).then(|| display.to_owned()),
                uri: uri.to_owned(),
                params,
            });
        }
        // addr-spec: parameters after the URI belong to the header (RFC 3261 §20).
        let (uri, params) = match text.find(';') {
            Some(i) => (&text[..i], Params::parse(&text[i + 1..])),
            None => (text, Params::default()),
        };
        if uri.is_empty() || !uri.contains(':') || uri.contains(' ') {
            return None;
        }
        Some(NameAddr {
            display: None,
            uri: uri.to_owned(),
            params,
        })
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

fn find_unquoted(text: &str, needle: char) -> Option<usize> {
    let mut quoted = false;
    for (i, ch) in text.char_indices() {
        if ch == '"' {
            quoted = !quoted;
        } else if ch == needle && !quoted {
            return Some(i);
        }
    }
    None
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{}\" ", d.replace('"', ""))?;
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
    /// Parses one Via value.
    pub fn parse(text: &str) -> Option<Via> {
        let text = text.trim();
        let (proto, rest) = text.split_once([' ', '\t'])?;
        let mut p = proto.split('/');
        let (Some(name), Some(version), Some(transport), None) =
            (p.next(), p.next(), p.next(), p.next())
        else {
            return None;
        };
        if !name.trim().eq_ignore_ascii_case("SIP") || version.trim() != "2.0" {
            return None;
        }
        let rest = rest.trim();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (&rest[..i], Params::parse(&rest[i + 1..])),
            None => (rest, Params::default()),
        };
        let (host, port) = split_host_port(sent_by)?;
        if host.is_empty() {
            return None;
        }
        Some(Via {
            transport: transport.trim().to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch").filter(|b| !b.is_empty())
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
    /// Parses a CSeq value.
    pub fn parse(text: &str) -> Option<CSeq> {
        let mut it = text.split_whitespace();
        let seq = it.next()?.parse().ok()?;
        let method = Method::parse(it.next()?);
        if it.next().is_some() {
            return None;
        }
        Some(CSeq { seq, method })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uris() {
        let u = Uri::parse("sip:+49*30#1@[::1]:5070;transport=tcp;lr?Replaces=x").expect("uri");
        assert_eq!(u.user.as_deref(), Some("+49*30#1"));
        assert_eq!(u.host, "[::1]");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert!(u.params.has("lr"));
        assert_eq!(
            u.to_string(),
            "sip:+49*30#1@[::1]:5070;transport=tcp;lr?Replaces=x"
        );
        assert!(Uri::parse("tel:+123").is_none());
        assert!(Uri::parse("sip:@").is_none());
        assert!(Uri::parse("sip:host:99999").is_none());
    }

    #[test]
    fn parses_name_addr_and_via() {
        let n = NameAddr::parse("\"A; b\" <sip:a@b;lr>;tag=99").expect("na");
        assert_eq!(n.display.as_deref(), Some("A; b"));
        assert_eq!(n.uri, "sip:a@b;lr");
        assert_eq!(n.tag(), Some("99"));
        let spec = NameAddr::parse("sip:a@b;tag=1").expect("spec");
        assert_eq!((spec.uri.as_str(), spec.tag()), ("sip:a@b", Some("1")));
        let v = Via::parse("SIP/2.0/udp 1.2.3.4:5060;branch=z9hG4bKx;rport").expect("via");
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("z9hG4bKx"));
        assert_eq!(v.params.get("rport"), Some(""));
        assert!(Via::parse("SIP/3.0/UDP h").is_none());
        assert_eq!(CSeq::parse("7 REFER").map(|c| c.seq), Some(7));
        assert!(CSeq::parse("x REFER").is_none());
    }
}
