//! The DNS settings of a SIP driver instance ([`DnsConfig`], the `dns` table of its section)
//! and of one line ([`LineDns`], the line's own `dns` table: ENUM on or off, its suffix).
//!
//! ```toml
//! [drivers.office.dns]
//! servers = ["192.0.2.53", "[2001:db8::53]:5353"]   # default: the system's resolver
//! failover_timeout_ms = 4000                         # a silent target is left after this
//! enum = true                                        # ENUM for dialled +E.164 numbers
//! enum_suffix = "e164.arpa"
//! ```

use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use thiserror::Error;

/// The ENUM suffix when none is configured (RFC 6116 §2.4).
pub const DEFAULT_ENUM_SUFFIX: &str = "e164.arpa";
/// Default of [`DnsConfig::failover_timeout_ms`].
pub const DEFAULT_FAILOVER_MS: u64 = 4_000;
/// Most DNS servers one instance may name.
pub const MAX_SERVERS: usize = 8;

fn default_failover_ms() -> u64 {
    DEFAULT_FAILOVER_MS
}

fn default_suffix() -> String {
    DEFAULT_ENUM_SUFFIX.into()
}

/// A driver instance's `dns` table. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// DNS servers (`ip` or `ip:port`, port 53 by default) asked for NAPTR, SRV, A and AAAA
    /// alike; all are asked at once and the first answer counts, so a server that is down
    /// costs nothing. Empty (the default): the system's resolver configuration, with A/AAAA
    /// through the system's name service (`/etc/hosts` included).
    #[serde(default)]
    pub servers: Vec<String>,
    /// Milliseconds a target may stay completely silent (not even `100 Trying`) before the
    /// request goes to the next target; 0 waits for the transaction's own timeout (32 s).
    /// Default 4000.
    #[serde(default = "default_failover_ms")]
    pub failover_timeout_ms: u64,
    /// ENUM (RFC 6116) for every line: a dialled `+E.164` number is looked up as NAPTR under
    /// `enum_suffix`, and its SIP URI called instead. Default false.
    #[serde(default, rename = "enum")]
    pub enum_lookup: bool,
    /// The ENUM tree (default `e164.arpa`).
    #[serde(default = "default_suffix")]
    pub enum_suffix: String,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            servers: Vec::new(),
            failover_timeout_ms: DEFAULT_FAILOVER_MS,
            enum_lookup: false,
            enum_suffix: default_suffix(),
        }
    }
}

/// A line's own `dns` table: only ENUM can differ per line (the servers are the instance's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineDns {
    /// ENUM for this line (default: the instance's `dns.enum`).
    #[serde(default, rename = "enum")]
    pub enum_lookup: Option<bool>,
    /// ENUM suffix for this line (default: the instance's `dns.enum_suffix`).
    #[serde(default)]
    pub enum_suffix: Option<String>,
}

/// The checked settings a [`super::Resolver`] is built from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsSettings {
    /// The servers; empty for the system's resolver.
    pub servers: Vec<SocketAddr>,
    /// How long a silent target is waited for before the next is tried.
    pub failover_timeout: Option<Duration>,
}

impl DnsSettings {
    /// The failover timeout of a resolver built without settings (4 s).
    pub fn default_failover() -> Option<Duration> {
        Some(Duration::from_millis(DEFAULT_FAILOVER_MS))
    }
}

/// A problem in a `dns` table.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DnsConfigError {
    /// A server that is not `ip` or `ip:port`.
    #[error(
        "dns.servers: {0:?} is not an IP address or ip:port (DNS servers are given by address)"
    )]
    Server(String),
    /// Too many servers.
    #[error("dns.servers: at most {MAX_SERVERS} servers")]
    TooManyServers,
    /// Failover timeout out of range.
    #[error("dns.failover_timeout_ms: must be 0 (off) or 100..=32000")]
    FailoverTimeout,
    /// A suffix that is not a domain name.
    #[error("dns.enum_suffix: {0:?} is not a domain name")]
    Suffix(String),
}

/// Parses `ip`, `ip:port`, `[v6]:port` or a bare IPv6 address; port 53 when none is given.
pub fn parse_server(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

fn check_suffix(suffix: &str) -> Result<String, DnsConfigError> {
    let s = suffix.trim().trim_matches('.');
    let ok = !s.is_empty()
        && s.len() <= 200
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(DnsConfigError::Suffix(suffix.to_owned()))
    }
}

impl DnsConfig {
    /// Checks the table and gives the resolver's settings.
    ///
    /// # Errors
    /// [`DnsConfigError`] naming the first problem.
    pub fn settings(&self) -> Result<DnsSettings, DnsConfigError> {
        if self.servers.len() > MAX_SERVERS {
            return Err(DnsConfigError::TooManyServers);
        }
        let servers = self
            .servers
            .iter()
            .map(|s| parse_server(s).ok_or_else(|| DnsConfigError::Server(s.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let failover_timeout = match self.failover_timeout_ms {
            0 => None,
            ms @ 100..=32_000 => Some(Duration::from_millis(ms)),
            _ => return Err(DnsConfigError::FailoverTimeout),
        };
        check_suffix(&self.enum_suffix)?;
        Ok(DnsSettings {
            servers,
            failover_timeout,
        })
    }

    /// The ENUM suffix a line uses, `None` when ENUM is off for it: the line's own `dns`
    /// settings over the instance's.
    ///
    /// # Errors
    /// [`DnsConfigError::Suffix`] for a suffix that is not a domain name.
    pub fn enum_suffix_for(
        &self,
        line: Option<&LineDns>,
    ) -> Result<Option<String>, DnsConfigError> {
        let on = line.and_then(|l| l.enum_lookup).unwrap_or(self.enum_lookup);
        let suffix = line
            .and_then(|l| l.enum_suffix.as_deref())
            .unwrap_or(&self.enum_suffix);
        let checked = check_suffix(suffix)?;
        Ok(on.then_some(checked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_system_resolver_and_no_enum() {
        let cfg: DnsConfig = serde_json::from_str("{}").expect("empty table");
        assert_eq!(cfg, DnsConfig::default());
        let s = cfg.settings().expect("valid");
        assert!(s.servers.is_empty());
        assert_eq!(s.failover_timeout, Some(Duration::from_millis(4000)));
        assert_eq!(cfg.enum_suffix_for(None), Ok(None));
    }

    #[test]
    fn servers_and_failover_are_checked() {
        let cfg: DnsConfig = serde_json::from_str(
            r#"{"servers": ["127.0.0.1:5353", "192.0.2.1", "::1", "[::1]:53"], "failover_timeout_ms": 0}"#,
        )
        .expect("parse");
        let s = cfg.settings().expect("valid");
        assert_eq!(
            s.servers,
            vec![
                "127.0.0.1:5353".parse().expect("a"),
                "192.0.2.1:53".parse().expect("b"),
                "[::1]:53".parse().expect("c"),
                "[::1]:53".parse().expect("d"),
            ]
        );
        assert_eq!(s.failover_timeout, None);
        let named = DnsConfig {
            servers: vec!["dns.example.com".into()],
            ..DnsConfig::default()
        };
        assert!(matches!(named.settings(), Err(DnsConfigError::Server(_))));
        let fast = DnsConfig {
            failover_timeout_ms: 50,
            ..DnsConfig::default()
        };
        assert_eq!(fast.settings(), Err(DnsConfigError::FailoverTimeout));
        let many = DnsConfig {
            servers: vec!["127.0.0.1".into(); 9],
            ..DnsConfig::default()
        };
        assert_eq!(many.settings(), Err(DnsConfigError::TooManyServers));
        assert!(serde_json::from_str::<DnsConfig>(r#"{"server": []}"#).is_err());
    }

    #[test]
    fn enum_per_line_over_the_instance() {
        let inst: DnsConfig =
            serde_json::from_str(r#"{"enum": true, "enum_suffix": "e164.example.net."}"#)
                .expect("parse");
        assert_eq!(
            inst.enum_suffix_for(None),
            Ok(Some("e164.example.net".into()))
        );
        let off: LineDns = serde_json::from_str(r#"{"enum": false}"#).expect("parse");
        assert_eq!(inst.enum_suffix_for(Some(&off)), Ok(None));
        let own: LineDns = serde_json::from_str(r#"{"enum_suffix": "E164.Arpa"}"#).expect("parse");
        assert_eq!(
            inst.enum_suffix_for(Some(&own)),
            Ok(Some("e164.arpa".into()))
        );
        let bad = LineDns {
            enum_lookup: Some(true),
            enum_suffix: Some("bad suffix".into()),
        };
        assert!(matches!(
            DnsConfig::default().enum_suffix_for(Some(&bad)),
            Err(DnsConfigError::Suffix(_))
        ));
        // Servers are the instance's: a line cannot name its own.
        assert!(serde_json::from_str::<LineDns>(r#"{"servers": ["127.0.0.1"]}"#).is_err());
    }
}
