//! Configuration of the `acd` driver: one SIP account, any number of lines on it (1 to well
//! over 10 000), with per-line overrides (disable a line, give it its own account, switch
//! incoming-call indication on or off). Line keys are stable: `lines = 500` gives `"1"`..`"500"`,
//! and growing it to 600 adds `"501"`..`"600"` without touching the others.

use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use tapir_sip_ua::header::Uri;
use tapir_sip_ua::resolve::{DnsSettings, LineDns};
use tapir_sip_ua::{DnsConfig, Transport};
use thiserror::Error;

/// Most lines one driver instance accepts.
pub const MAX_LINES: usize = 100_000;

/// A password: usable by the code, never printed. `Debug` and `Display` show `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Which lines exist: a count (`"1"`..`"N"`) or a list of keys and ranges (`"1-500"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum LinesSpec {
    /// `lines = 1000`: keys `"1"` to `"1000"`.
    Count(u32),
    /// `lines = ["1-500", "900", "vip"]`: each entry a key or an inclusive numeric range.
    List(Vec<String>),
}

/// Settings for one line that differ from the account's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineOverride {
    /// The line's key (must be one of `lines`).
    pub key: String,
    /// `false` keeps the line (and its id) but refuses every request on it as unavailable.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Name shown to applications (default `"<name_prefix><key>"`).
    #[serde(default)]
    pub name: Option<String>,
    /// Own SIP user (own account) for this line.
    #[serde(default)]
    pub user: Option<String>,
    /// Password of the line's own account.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Authentication user of the line's own account.
    #[serde(default)]
    pub auth_user: Option<String>,
    /// Incoming-call indication (REGISTER) for this line.
    #[serde(default)]
    pub register: Option<bool>,
    /// ENUM for this line (`{ enum = true, enum_suffix = "..." }`) over the driver's `dns`.
    #[serde(default)]
    pub dns: Option<LineDns>,
}

fn default_transport() -> String {
    "udp".into()
}
fn default_bind() -> String {
    "0.0.0.0:0".into()
}
fn default_notify_timeout() -> u64 {
    25
}
fn default_ring_timeout() -> u64 {
    60
}
fn default_max_calls() -> u32 {
    1
}
fn default_true() -> bool {
    true
}
fn default_expires() -> u32 {
    300
}
fn default_rate() -> f64 {
    50.0
}
fn default_burst() -> u32 {
    20
}
fn default_offer_timeout() -> u64 {
    120
}
fn default_prefix() -> String {
    "ACD ".into()
}

/// The driver's section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcdConfig {
    /// Local `ip:port` of the driver's one SIP endpoint (UDP and TCP), default `0.0.0.0:0`.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// SIP domain (registrar / proxy), `host` or `host:port`; DNS SRV when no port is given.
    pub domain: String,
    /// Outbound proxy `host[:port]` or URI; requests go there with a loose `Route`.
    #[serde(default)]
    pub outbound_proxy: Option<String>,
    /// SIP user of the account (From of our requests, AoR of registrations).
    pub user: String,
    /// Password of the account; never logged.
    #[serde(default)]
    pub password: Secret,
    /// Authentication user when it differs from `user`.
    #[serde(default)]
    pub auth_user: Option<String>,
    /// Display name in our From header.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `udp` (default) or `tcp`.
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Answer digest challenges of any realm (default true); when false only `realm`'s.
    #[serde(default = "default_true")]
    pub ignore_realm: bool,
    /// The credentials' realm when `ignore_realm` is false (default: the domain's host).
    #[serde(default)]
    pub realm: Option<String>,
    /// The lines: a count or a list of keys and ranges.
    pub lines: LinesSpec,
    /// Prefix of line names (default `"ACD "`, so line `"7"` is called `"ACD 7"`).
    #[serde(default = "default_prefix")]
    pub name_prefix: String,
    /// Per-line overrides.
    #[serde(default)]
    pub line: Vec<LineOverride>,
    /// Calls one line may carry at once (default 1).
    #[serde(default = "default_max_calls")]
    pub max_calls: u32,
    /// Seconds the target may ring before we CANCEL (default 60).
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u64,
    /// Seconds to wait for the final NOTIFY of a transfer (default 25).
    #[serde(default = "default_notify_timeout")]
    pub notify_timeout_secs: u64,
    /// Incoming-call indication: REGISTER every line (default false; per line in `line`).
    #[serde(default)]
    pub register: bool,
    /// Requested registration expiry in seconds (default 300).
    #[serde(default = "default_expires")]
    pub register_expires: u32,
    /// REGISTERs per second the driver sends at most, over all its lines (default 50).
    #[serde(default = "default_rate")]
    pub register_rate: f64,
    /// REGISTERs that may go out at once before the rate applies (default 20).
    #[serde(default = "default_burst")]
    pub register_burst: u32,
    /// Seconds an incoming call may ring on a line before we answer 480 (default 120).
    #[serde(default = "default_offer_timeout")]
    pub offer_timeout_secs: u64,
    /// DNS: the servers to ask, the failover timeout, ENUM (see the sip-ua README).
    #[serde(default)]
    pub dns: DnsConfig,
}

/// A configuration problem, with the sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Not valid JSON for the section, or unknown keys.
    #[error("invalid acd driver configuration: {0}")]
    Syntax(String),
    /// A value is out of range or malformed.
    #[error("{field}: {problem}")]
    Value {
        /// The key.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

fn bad(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        field: field.into(),
        problem: problem.into(),
    }
}

/// One line, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSpec {
    /// Key.
    pub key: String,
    /// Name.
    pub name: String,
    /// Enabled.
    pub enabled: bool,
    /// REGISTER for incoming calls.
    pub register: bool,
    /// Own account, if any (user, auth user, password).
    pub account: Option<(String, Option<String>, Secret)>,
    /// The ENUM suffix when ENUM is on for the line (shared by lines with the same one).
    pub enum_suffix: Option<Arc<str>>,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The section as written.
    pub cfg: AcdConfig,
    /// Parsed domain.
    pub domain_uri: Uri,
    /// Parsed outbound proxy.
    pub proxy_uri: Option<Uri>,
    /// Transport.
    pub transport: Transport,
    /// Bind address.
    pub bind: SocketAddr,
    /// The lines, in key order of the configuration.
    pub lines: Vec<LineSpec>,
    /// The checked DNS settings.
    pub dns: DnsSettings,
}

impl Parsed {
    /// The domain as written in URIs (`host[:port]`).
    pub fn domain(&self) -> String {
        match self.domain_uri.port {
            Some(p) => format!("{}:{p}", self.domain_uri.host),
            None => self.domain_uri.host.clone(),
        }
    }
}

fn host_uri(text: &str, field: &str) -> Result<Uri, ConfigError> {
    let text = text.trim();
    let candidate = if text.starts_with("sip:") || text.starts_with("sips:") {
        text.to_owned()
    } else {
        format!("sip:{text}")
    };
    let uri = Uri::parse(&candidate).ok_or_else(|| bad(field, "not a host[:port] or sip: URI"))?;
    if uri.scheme == "sips" {
        return Err(bad(field, "sips/TLS is not supported"));
    }
    Ok(uri)
}

fn check_user(field: &str, user: &str) -> Result<(), ConfigError> {
    if user.trim().is_empty() || user.contains(['@', ' ', '<', '>', ';', ':']) {
        return Err(bad(field, format!("{user:?} is not a SIP user name")));
    }
    Ok(())
}

/// Expands the line keys: a count or keys and inclusive ranges, in order, no duplicates.
///
/// # Errors
/// [`ConfigError`] for empty, duplicate, reversed or too many keys.
pub fn expand_keys(spec: &LinesSpec) -> Result<Vec<String>, ConfigError> {
    let mut keys = Vec::new();
    match spec {
        LinesSpec::Count(n) => {
            if *n == 0 || *n as usize > MAX_LINES {
                return Err(bad("lines", format!("must be 1..={MAX_LINES}")));
            }
            keys.extend((1..=*n).map(|i| i.to_string()));
        }
        LinesSpec::List(items) => {
            for item in items {
                let item = item.trim();
                let range = item.split_once('-').and_then(|(a, b)| {
                    Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?))
                });
                match range {
                    Some((a, b)) => {
                        if a > b {
                            return Err(bad("lines", format!("range {item:?} is reversed")));
                        }
                        if (b - a) as usize + keys.len() >= MAX_LINES {
                            return Err(bad("lines", format!("more than {MAX_LINES} lines")));
                        }
                        keys.extend((a..=b).map(|i| i.to_string()));
                    }
                    None => {
                        if item.is_empty() || item.contains([' ', ';', '<', '>', '"']) {
                            return Err(bad("lines", format!("{item:?} is not a line key")));
                        }
                        keys.push(item.to_owned());
                    }
                }
            }
        }
    }
    if keys.is_empty() {
        return Err(bad("lines", "at least one line is needed"));
    }
    if keys.len() > MAX_LINES {
        return Err(bad("lines", format!("more than {MAX_LINES} lines")));
    }
    let mut seen = HashSet::with_capacity(keys.len());
    for k in &keys {
        if !seen.insert(k.as_str()) {
            return Err(bad("lines", format!("line key {k:?} appears twice")));
        }
    }
    Ok(keys)
}

/// Parses and checks a driver section.
///
/// # Errors
/// [`ConfigError`] naming the first problem.
pub fn parse(json: &str) -> Result<Parsed, ConfigError> {
    let cfg: AcdConfig =
        serde_json::from_str(json).map_err(|e| ConfigError::Syntax(e.to_string()))?;
    check_user("user", &cfg.user)?;
    let domain_uri = host_uri(&cfg.domain, "domain")?;
    let proxy_uri = cfg
        .outbound_proxy
        .as_deref()
        .map(|p| host_uri(p, "outbound_proxy"))
        .transpose()?;
    let transport = Transport::parse(&cfg.transport).ok_or_else(|| {
        bad(
            "transport",
            format!("{:?} is not udp or tcp", cfg.transport),
        )
    })?;
    let bind: SocketAddr = cfg
        .bind
        .parse()
        .map_err(|_| bad("bind", format!("{:?} is not an ip:port", cfg.bind)))?;
    for (field, v) in [
        ("ring_timeout_secs", cfg.ring_timeout_secs),
        ("notify_timeout_secs", cfg.notify_timeout_secs),
        ("offer_timeout_secs", cfg.offer_timeout_secs),
    ] {
        if v == 0 || v > 3600 {
            return Err(bad(field, "must be 1..=3600"));
        }
    }
    if cfg.offer_timeout_secs > 170 {
        return Err(bad(
            "offer_timeout_secs",
            "must be at most 170 (the INVITE server transaction's own limit is 180 s)",
        ));
    }
    if cfg.max_calls == 0 {
        return Err(bad("max_calls", "must be at least 1"));
    }
    if !(60..=86_400).contains(&cfg.register_expires) {
        return Err(bad("register_expires", "must be 60..=86400"));
    }
    if !(cfg.register_rate.is_finite()
        && cfg.register_rate >= 0.1
        && cfg.register_rate <= 100_000.0)
    {
        return Err(bad("register_rate", "must be 0.1..=100000 per second"));
    }
    if cfg.register_burst == 0 {
        return Err(bad("register_burst", "must be at least 1"));
    }
    let dns_error = |e: tapir_sip_ua::resolve::DnsConfigError| {
        let text = e.to_string();
        match text.split_once(": ") {
            Some((field, problem)) => bad(field, problem),
            None => bad("dns", text),
        }
    };
    let dns = cfg.dns.settings().map_err(dns_error)?;
    let enum_default: Option<Arc<str>> = cfg
        .dns
        .enum_suffix_for(None)
        .map_err(dns_error)?
        .map(Arc::from);
    let keys = expand_keys(&cfg.lines)?;
    let mut overrides: BTreeMap<&str, &LineOverride> = BTreeMap::new();
    let known: HashSet<&str> = keys.iter().map(String::as_str).collect();
    for o in &cfg.line {
        if !known.contains(o.key.as_str()) {
            return Err(bad(
                format!("line {:?}", o.key),
                "is not one of `lines` (an override needs its line)",
            ));
        }
        if overrides.insert(o.key.as_str(), o).is_some() {
            return Err(bad(format!("line {:?}", o.key), "is overridden twice"));
        }
        if let Some(u) = &o.user {
            check_user(&format!("line {:?} user", o.key), u)?;
        }
        if o.password.is_some() && o.user.is_none() {
            return Err(bad(
                format!("line {:?}", o.key),
                "a password needs the line's own `user`",
            ));
        }
        cfg.dns
            .enum_suffix_for(o.dns.as_ref())
            .map_err(|e| bad(format!("line {:?}", o.key), e.to_string()))?;
    }
    let lines = keys
        .into_iter()
        .map(|key| {
            let o = overrides.get(key.as_str());
            let account = o.and_then(|o| {
                o.user.clone().map(|u| {
                    (
                        u,
                        o.auth_user.clone(),
                        o.password.clone().unwrap_or_default(),
                    )
                })
            });
            let enum_suffix = match o.and_then(|o| o.dns.as_ref()) {
                // Checked above, so the error cannot happen here.
                Some(own) => cfg
                    .dns
                    .enum_suffix_for(Some(own))
                    .ok()
                    .flatten()
                    .map(Arc::from),
                None => enum_default.clone(),
            };
            LineSpec {
                enum_suffix,
                name: o
                    .and_then(|o| o.name.clone())
                    .unwrap_or_else(|| format!("{}{key}", cfg.name_prefix)),
                enabled: o.and_then(|o| o.enabled).unwrap_or(true),
                register: o.and_then(|o| o.register).unwrap_or(cfg.register),
                account,
                key,
            }
        })
        .collect();
    Ok(Parsed {
        cfg,
        domain_uri,
        proxy_uri,
        transport,
        bind,
        lines,
        dns,
    })
}

/// A working example section (also the descriptor's).
pub const EXAMPLE: &str = r#"{
  "bind": "0.0.0.0:0",
  "domain": "pbx.example.com",
  "user": "dialer",
  "password": "secret",
  "transport": "udp",
  "lines": 1000,
  "register": true,
  "register_expires": 300,
  "register_rate": 50,
  "ring_timeout_secs": 45,
  "line": [
    { "key": "7", "enabled": false },
    { "key": "8", "user": "dialer8", "password": "other", "name": "Campaign B" }
  ]
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_and_secret_is_hidden() {
        let p = parse(EXAMPLE).expect("valid");
        assert_eq!(p.lines.len(), 1000);
        assert_eq!(p.lines[0].key, "1");
        assert_eq!(p.lines[999].key, "1000");
        assert!(!p.lines[6].enabled);
        assert!(p.lines[5].enabled && p.lines[5].register);
        assert_eq!(p.lines[7].name, "Campaign B");
        assert_eq!(p.lines[0].name, "ACD 1");
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("secret") && !dbg.contains("other"), "{dbg}");
        assert_eq!(p.cfg.password.expose(), "secret");
    }

    #[test]
    fn growing_the_count_keeps_keys_and_overrides() {
        let small = parse(&EXAMPLE.replace("\"lines\": 1000", "\"lines\": 10")).expect("10");
        let big = parse(&EXAMPLE.replace("\"lines\": 1000", "\"lines\": 12000")).expect("12000");
        assert_eq!(big.lines.len(), 12_000);
        assert_eq!(small.lines[..], big.lines[..10]);
    }

    #[test]
    fn ranges_and_keys() {
        let keys = expand_keys(&LinesSpec::List(vec![
            "1-3".into(),
            "10".into(),
            "vip".into(),
        ]))
        .expect("keys");
        assert_eq!(keys, ["1", "2", "3", "10", "vip"]);
        assert!(expand_keys(&LinesSpec::List(vec!["1-3".into(), "2".into()])).is_err());
        assert!(expand_keys(&LinesSpec::List(vec!["5-1".into()])).is_err());
        assert!(expand_keys(&LinesSpec::Count(0)).is_err());
        assert!(expand_keys(&LinesSpec::Count(MAX_LINES as u32 + 1)).is_err());
    }

    #[test]
    fn dns_table_and_enum_per_line() {
        let cfg = EXAMPLE.replace(
            "\"lines\": 1000,",
            "\"lines\": 1000, \"dns\": {\"servers\": [\"127.0.0.1:5353\"], \"enum\": true},",
        );
        let cfg = cfg.replace(
            "{ \"key\": \"7\", \"enabled\": false }",
            "{ \"key\": \"7\", \"enabled\": false, \"dns\": { \"enum\": false } }",
        );
        let p = parse(&cfg).expect("valid");
        assert_eq!(p.dns.servers.len(), 1);
        assert_eq!(p.lines[0].enum_suffix.as_deref(), Some("e164.arpa"));
        assert_eq!(p.lines[6].enum_suffix, None);
        // Lines without an override share the instance's suffix.
        let (a, b) = (&p.lines[0].enum_suffix, &p.lines[999].enum_suffix);
        assert!(matches!((a, b), (Some(a), Some(b)) if Arc::ptr_eq(a, b)));
        let bad = cfg.replace("127.0.0.1:5353", "dns.example.com");
        assert!(
            matches!(parse(&bad), Err(ConfigError::Value { field, .. }) if field == "dns.servers")
        );
        let bad_suffix = cfg.replace("\"enum\": false", "\"enum_suffix\": \"no way\"");
        assert!(parse(&bad_suffix).is_err());
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values() {
        assert!(matches!(
            parse(&EXAMPLE.replace("\"transport\"", "\"transprot\"")),
            Err(ConfigError::Syntax(_))
        ));
        assert!(parse(&EXAMPLE.replace("\"enabled\"", "\"enable\"")).is_err());
        assert!(parse(&EXAMPLE.replace("\"key\": \"7\"", "\"key\": \"5000\"")).is_err());
        assert!(parse(&EXAMPLE.replace("\"udp\"", "\"sctp\"")).is_err());
        assert!(parse(&EXAMPLE.replace("\"register_rate\": 50", "\"register_rate\": 0")).is_err());
        assert!(parse(&EXAMPLE.replace("pbx.example.com", "sips:pbx")).is_err());
    }
}
