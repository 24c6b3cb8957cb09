//! Configuration of the `acd` driver: one SIP account, any number of lines on it (1 to well
//! over 10 000), with per-line overrides (disable a line, give it its own account, switch
//! incoming-call indication on or off). Line keys are stable: `lines = 500` gives `"1"`..`"500"`,
//! and growing it to 600 adds `"501"`..`"600"` without touching the others.

use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use tapir_sip_ua::leg::config::check_user;
use tapir_sip_ua::leg::{Account, ConfigProblem, LegConfig, NetConfig};
use tapir_sip_ua::resolve::DnsSettings;
use tapir_sip_ua::LineDns;
use thiserror::Error;

pub use tapir_sip_ua::leg::Secret;

/// Most lines one driver instance accepts.
pub const MAX_LINES: usize = 100_000;

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

fn default_bind() -> String {
    "0.0.0.0:0".into()
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
    /// The lines: a count or a list of keys and ranges.
    pub lines: LinesSpec,
    /// Prefix of line names (default `"ACD "`, so line `"7"` is called `"ACD 7"`).
    #[serde(default = "default_prefix")]
    pub name_prefix: String,
    /// Per-line overrides.
    #[serde(default)]
    pub line: Vec<LineOverride>,
    /// REGISTERs per second the driver sends at most, over all its lines (default 50).
    #[serde(default = "default_rate")]
    pub register_rate: f64,
    /// REGISTERs that may go out at once before the rate applies (default 20).
    #[serde(default = "default_burst")]
    pub register_burst: u32,
    /// Seconds an incoming call may ring on a line before we answer 480 (default 120).
    #[serde(default = "default_offer_timeout")]
    pub offer_timeout_secs: u64,
    /// The `tls`, `nat` and `dns` tables (for the driver's endpoint and resolver).
    #[serde(flatten)]
    pub net: NetConfig,
    /// The account every line uses unless it has its own, the call timers, registration,
    /// PRACK (the keys every SIP driver shares; `register` is every line's default).
    #[serde(flatten)]
    pub sip: LegConfig,
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

impl From<ConfigProblem> for ConfigError {
    fn from(p: ConfigProblem) -> ConfigError {
        ConfigError::Value {
            field: p.field,
            problem: p.problem,
        }
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
    /// The checked account (domain, proxy, transport, timers).
    pub account: Account,
    /// Bind address.
    pub bind: SocketAddr,
    /// The lines, in key order of the configuration.
    pub lines: Vec<LineSpec>,
    /// The checked DNS settings.
    pub dns: DnsSettings,
}

impl Parsed {
    /// True when the endpoint needs TLS: the transport is TLS, or `tls` is configured.
    pub fn needs_tls(&self) -> bool {
        self.cfg.net.needs_tls([&self.account])
    }

    /// The domain as written in URIs (`host[:port]`).
    pub fn domain(&self) -> String {
        self.account.domain()
    }
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
    let account = Account::check(cfg.sip.clone())?;
    cfg.net.check()?;
    let bind: SocketAddr = cfg
        .bind
        .parse()
        .map_err(|_| bad("bind", format!("{:?} is not an ip:port", cfg.bind)))?;
    if cfg.offer_timeout_secs == 0 || cfg.offer_timeout_secs > 3600 {
        return Err(bad("offer_timeout_secs", "must be 1..=3600"));
    }
    if cfg.offer_timeout_secs > 170 {
        return Err(bad(
            "offer_timeout_secs",
            "must be at most 170 (the INVITE server transaction's own limit is 180 s)",
        ));
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
    let dns = cfg
        .net
        .dns
        .settings()
        .map_err(|_| bad("dns", "checked above"))?;
    let enum_default: Option<Arc<str>> = cfg.net.enum_suffix_for(None)?.map(Arc::from);
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
        cfg.net
            .enum_suffix_for(o.dns.as_ref())
            .map_err(|p| bad(format!("line {:?}", o.key), p.to_string()))?;
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
                    .net
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
                register: o.and_then(|o| o.register).unwrap_or(cfg.sip.register),
                account,
                key,
            }
        })
        .collect();
    Ok(Parsed {
        cfg,
        account,
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
        assert_eq!(p.cfg.sip.password.expose(), "secret");
    }

    /// The README's TOML example is a valid section and names every key.
    #[test]
    fn readme_toml_example_names_every_key() {
        use tapir_test_support::docs::{keys_not_named, toml_example};
        let (block, section) = toml_example(include_str!("../README.md"), &["drivers", "dialer"]);
        let p = parse(&section.to_string()).expect("the example is a valid section");
        let shared = serde_json::to_value(&p.account.config).expect("keys");
        let own = [
            "bind",
            "lines",
            "name_prefix",
            "register_rate",
            "register_burst",
            "offer_timeout_secs",
            "key",
            "enabled",
            "name",
        ];
        let keys = shared.as_object().into_iter().flat_map(|o| o.keys());
        let missing = keys_not_named(&block, keys.map(String::as_str).chain(own));
        assert!(missing.is_empty(), "the README's example lacks {missing:?}");
        assert!(block.contains("[[drivers.dialer.line]]"));
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
        assert!(parse(
            &EXAMPLE
                .replace("\"udp\"", "\"tcp\"")
                .replace("pbx.example.com", "sips:pbx")
        )
        .is_err());
        assert!(parse(
            &EXAMPLE.replace("\"register\": true", "\"nat\": {\"pong_timeout_secs\": 0}")
        )
        .unwrap_err()
        .to_string()
        .contains("pong_timeout_secs"));
    }

    #[test]
    fn sips_and_tls_tables() {
        use tapir_sip_ua::Transport;
        let p = parse(&EXAMPLE.replace("pbx.example.com", "sips:pbx")).expect("sips: is TLS");
        assert_eq!(p.account.transport, Transport::Tls);
        assert!(p.needs_tls());
        let p = parse(&EXAMPLE.replace(
            "\"transport\": \"udp\"",
            "\"transport\": \"tls\", \"tls\": {\"ca_file\": \"/etc/tapir/ca.pem\", \"insecure_skip_verify\": false}, \"nat\": {\"keepalive_secs\": 60}",
        ))
        .expect("valid");
        assert_eq!(p.account.transport, Transport::Tls);
        assert_eq!(p.cfg.net.nat.keepalive_secs, 60);
        assert!(!parse(EXAMPLE).expect("example").needs_tls());
    }
}
