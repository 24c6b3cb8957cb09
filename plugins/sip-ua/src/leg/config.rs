//! The SIP settings every SIP driver shares, as one serde struct ([`LegConfig`]) that driver
//! configurations flatten into their own (`#[serde(flatten)]`), and its checked form
//! ([`Account`]): the account, its credentials and realm, the outbound proxy, the transport, the
//! call timers, registration, PRACK and the user agent. Drivers keep only their own keys (lines,
//! binds, auto-answer, ...).

use crate::digest::Credentials;
use crate::header::Uri;
use crate::register::{Backoff, Registration};
use crate::resolve::Transport;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;
use thiserror::Error;

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

/// Serialized as `***` too: a configuration written out (to list its keys, say) never carries
/// the secret.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

fn default_transport() -> String {
    "udp".into()
}
fn default_ring_timeout() -> u64 {
    60
}
fn default_notify_timeout() -> u64 {
    25
}
fn default_max_calls() -> u32 {
    1
}
fn default_true() -> bool {
    true
}
fn default_register_expires() -> u32 {
    300
}

/// The shared SIP keys of a driver section (or of one line of it). Flatten it into the driver's
/// own struct; unknown keys are refused by the driver's `deny_unknown_fields`. Serializing it
/// lists every key (the password as `***`), which the drivers' README tests use.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LegConfig {
    /// SIP domain (registrar / proxy), `host` or `host:port`; DNS SRV when no port is given.
    pub domain: String,
    /// Outbound proxy `host[:port]` or `sip:` URI; requests go there with a loose `Route`.
    #[serde(default)]
    pub outbound_proxy: Option<String>,
    /// SIP user of the account (From of our requests, AoR of registrations).
    pub user: String,
    /// Password of the account; never logged.
    #[serde(default)]
    pub password: Secret,
    /// Authentication user name when it differs from `user`.
    #[serde(default)]
    pub auth_user: Option<String>,
    /// Display name in our From header.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `udp` (default), `tcp` or `tls`. A `sips:` domain or proxy means `tls`.
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Answer digest challenges of any realm (SIPTAPI's "ignore realm", default true); when
    /// false only challenges of `realm` (default: the domain's host) are answered.
    #[serde(default = "default_true")]
    pub ignore_realm: bool,
    /// The realm the credentials belong to, when `ignore_realm` is false.
    #[serde(default)]
    pub realm: Option<String>,
    /// Seconds an INVITE may ring before we CANCEL it (default 60, 1..=3600).
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u64,
    /// Seconds to wait for the final NOTIFY after a REFER was accepted (default 25, 1..=3600).
    #[serde(default = "default_notify_timeout")]
    pub notify_timeout_secs: u64,
    /// Calls one line may carry at once (default 1).
    #[serde(default = "default_max_calls")]
    pub max_calls: u32,
    /// Incoming-call indication: REGISTER the account (default false).
    #[serde(default)]
    pub register: bool,
    /// Requested registration expiry in seconds (default 300, 60..=86400).
    #[serde(default = "default_register_expires")]
    pub register_expires: u32,
    /// Offer reliable provisional responses (`Supported: 100rel`, RFC 3262) on our INVITEs
    /// (default true). Reliable provisional responses are answered with PRACK either way.
    #[serde(default = "default_true")]
    pub prack: bool,
    /// `User-Agent` of our requests (default: the driver's, `tapir/<version>`).
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// A value that is out of range or malformed, with the key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {problem}")]
pub struct ConfigProblem {
    /// The key.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// A [`ConfigProblem`] for `field`.
pub fn problem(field: impl Into<String>, problem: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Parses `host[:port]` or a `sip:`/`sips:` URI (for `domain`, `outbound_proxy` and the like).
///
/// # Errors
/// [`ConfigProblem`] for text that is no host or URI.
pub fn host_uri(text: &str, field: &str) -> Result<Uri, ConfigProblem> {
    let text = text.trim();
    let candidate = if text.starts_with("sip:") || text.starts_with("sips:") {
        text.to_owned()
    } else {
        format!("sip:{text}")
    };
    Uri::parse(&candidate).ok_or_else(|| {
        problem(
            field,
            format!("{text:?} is not a host[:port] or sip:/sips: URI"),
        )
    })
}

/// Checks a SIP user name (the user part of our AoR).
///
/// # Errors
/// [`ConfigProblem`] for empty names and characters that cannot stand in a user part unescaped.
pub fn check_user(field: &str, user: &str) -> Result<(), ConfigProblem> {
    if user.trim().is_empty() || user.contains(['@', ' ', '<', '>', ';', ':']) {
        return Err(problem(field, format!("{user:?} is not a SIP user name")));
    }
    Ok(())
}

/// A checked [`LegConfig`]: the account with its parsed domain, proxy and transport.
#[derive(Debug, Clone)]
pub struct Account {
    /// The keys as written.
    pub config: LegConfig,
    /// The domain as a URI (`sip:host[:port]`).
    pub domain_uri: Uri,
    /// The outbound proxy, if any.
    pub proxy_uri: Option<Uri>,
    /// The transport.
    pub transport: Transport,
}

impl Account {
    /// Checks the shared keys.
    ///
    /// # Errors
    /// [`ConfigProblem`] naming the first key that is wrong.
    pub fn check(config: LegConfig) -> Result<Account, ConfigProblem> {
        check_user("user", &config.user)?;
        let domain_uri = host_uri(&config.domain, "domain")?;
        let proxy_uri = config
            .outbound_proxy
            .as_deref()
            .map(|p| host_uri(p, "outbound_proxy"))
            .transpose()?;
        let transport = Transport::parse(&config.transport).ok_or_else(|| {
            problem(
                "transport",
                format!("{:?} is not udp, tcp or tls", config.transport),
            )
        })?;
        for (field, v) in [
            ("ring_timeout_secs", config.ring_timeout_secs),
            ("notify_timeout_secs", config.notify_timeout_secs),
        ] {
            if v == 0 || v > 3600 {
                return Err(problem(field, "must be 1..=3600"));
            }
        }
        if config.max_calls == 0 {
            return Err(problem("max_calls", "must be at least 1"));
        }
        if !(60..=86_400).contains(&config.register_expires) {
            return Err(problem("register_expires", "must be 60..=86400"));
        }
        if let Some(ua) = &config.user_agent {
            if ua.trim().is_empty() || ua.chars().any(char::is_control) {
                return Err(problem("user_agent", "must be one line of text"));
            }
        }
        let mut account = Account {
            config,
            domain_uri,
            proxy_uri,
            transport,
        };
        let sips: Vec<Uri> = [Some(&account.domain_uri), account.proxy_uri.as_ref()]
            .into_iter()
            .flatten()
            .filter(|u| u.scheme == "sips")
            .cloned()
            .collect();
        for uri in &sips {
            account.require_tls_for(uri)?;
        }
        Ok(account)
    }

    /// A `sips:` URI the account sends to asks for TLS (RFC 3261 §26.2): the transport becomes
    /// `tls`; `tcp` next to it is a contradiction. Other URIs change nothing.
    ///
    /// # Errors
    /// [`ConfigProblem`] on `transport` when it says `tcp`.
    pub fn require_tls_for(&mut self, uri: &Uri) -> Result<(), ConfigProblem> {
        if uri.scheme != "sips" {
            return Ok(());
        }
        if self.transport == Transport::Tcp {
            return Err(problem("transport", "a sips: URI needs tls, not tcp"));
        }
        self.transport = Transport::Tls;
        Ok(())
    }

    /// The domain as written in URIs (`host[:port]`).
    pub fn domain(&self) -> String {
        match self.domain_uri.port {
            Some(p) => format!("{}:{p}", self.domain_uri.host),
            None => self.domain_uri.host.clone(),
        }
    }

    /// The domain's host (without port).
    pub fn domain_host(&self) -> &str {
        &self.domain_uri.host
    }

    /// The address of record of `user` in this domain.
    pub fn aor(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.domain())
    }

    /// Digest credentials of `user` (authenticating as `auth_user` when given), bound to the
    /// configured realm unless `ignore_realm`.
    pub fn credentials_of(
        &self,
        user: &str,
        auth_user: Option<&str>,
        password: &Secret,
    ) -> Credentials {
        Credentials {
            username: auth_user.unwrap_or(user).to_owned(),
            password: password.expose().to_owned(),
            realm: if self.config.ignore_realm {
                None
            } else {
                Some(
                    self.config
                        .realm
                        .clone()
                        .unwrap_or_else(|| self.domain_host().to_owned()),
                )
            },
        }
    }

    /// The credentials of the account itself.
    pub fn credentials(&self) -> Credentials {
        let c = &self.config;
        self.credentials_of(&c.user, c.auth_user.as_deref(), &c.password)
    }

    /// The outbound proxy and the preloaded `Route` (with `lr`) that sends requests there.
    pub fn proxy_route(&self) -> Option<(Uri, String)> {
        self.proxy_uri.as_ref().map(|proxy| {
            let mut r = proxy.clone();
            r.params.set("lr", None);
            (proxy.clone(), format!("<{r}>"))
        })
    }

    /// How long an INVITE may ring.
    pub fn ring_timeout(&self) -> Duration {
        Duration::from_secs(self.config.ring_timeout_secs)
    }

    /// How long to wait for the final NOTIFY of a REFER.
    pub fn notify_timeout(&self) -> Duration {
        Duration::from_secs(self.config.notify_timeout_secs)
    }

    /// The registration of `user` for line `line_key` (Contact `line=<key>`): to the domain,
    /// through the outbound proxy when there is one.
    pub fn registration(
        &self,
        line_key: &str,
        user: &str,
        credentials: Credentials,
    ) -> Registration {
        let (next_hop, route) = match self.proxy_route() {
            Some((proxy, route)) => (proxy, Some(route)),
            None => (self.domain_uri.clone(), None),
        };
        let mut registrar = self.domain_uri.clone();
        registrar.user = None;
        Registration {
            aor: self.aor(user),
            registrar,
            next_hop,
            route,
            contact_user: user.to_owned(),
            contact_params: vec![("line".into(), Some(line_key.to_owned()))],
            expires: self.config.register_expires,
            transport: self.transport,
            credentials,
            backoff: Backoff::default(),
            user_agent: self.config.user_agent.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Account, ConfigProblem> {
        let config: LegConfig = serde_json::from_str(json).expect("json");
        Account::check(config)
    }

    #[test]
    fn defaults_and_secrets() {
        let a = parse(r#"{"domain": "pbx.example.com:5070", "user": "alice", "password": "pw"}"#)
            .expect("valid");
        assert_eq!(a.domain(), "pbx.example.com:5070");
        assert_eq!(a.transport, Transport::Udp);
        assert_eq!(a.config.ring_timeout_secs, 60);
        assert_eq!(a.config.notify_timeout_secs, 25);
        assert!(a.config.prack && a.config.ignore_realm && !a.config.register);
        assert_eq!(a.credentials().realm, None);
        assert_eq!(a.credentials().password, "pw");
        assert!(!format!("{a:?}").contains("pw"));
        assert_eq!(a.aor("bob"), "sip:bob@pbx.example.com:5070");
    }

    #[test]
    fn realm_proxy_and_registration() {
        let a = parse(
            r#"{"domain": "pbx.example.com", "user": "alice", "auth_user": "a1",
                "ignore_realm": false, "outbound_proxy": "10.0.0.1:5060", "transport": "TCP"}"#,
        )
        .expect("valid");
        assert_eq!(a.credentials().realm.as_deref(), Some("pbx.example.com"));
        assert_eq!(a.credentials().username, "a1");
        let (proxy, route) = a.proxy_route().expect("proxy");
        assert_eq!(proxy.host, "10.0.0.1");
        assert_eq!(route, "<sip:10.0.0.1:5060;lr>");
        let reg = a.registration("7", "alice", a.credentials());
        assert_eq!(reg.aor, "sip:alice@pbx.example.com");
        assert_eq!(reg.route.as_deref(), Some("<sip:10.0.0.1:5060;lr>"));
        assert_eq!(reg.transport, Transport::Tcp);
        assert_eq!(reg.contact_params, vec![("line".into(), Some("7".into()))]);
    }

    #[test]
    fn sips_means_tls() {
        let a = parse(r#"{"domain": "sips:pbx.example.com", "user": "alice"}"#).expect("valid");
        assert_eq!(a.transport, Transport::Tls);
        let a = parse(r#"{"domain": "pbx", "user": "alice", "transport": "tls"}"#).expect("tls");
        assert_eq!(a.transport, Transport::Tls);
    }

    #[test]
    fn written_out_it_names_every_key_and_hides_the_password() {
        let a = parse(r#"{"domain": "pbx", "user": "alice", "password": "pw"}"#).expect("valid");
        let v = serde_json::to_value(&a.config).expect("json");
        assert_eq!(v["password"], "***");
        assert!(!v.to_string().contains("pw"));
        assert_eq!(v.as_object().map(|o| o.len()), Some(16));
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |extra: &str| {
            parse(&format!(r#"{{"domain": "pbx", "user": "alice", {extra}}}"#))
                .expect_err(extra)
                .field
        };
        assert_eq!(bad(r#""transport": "sctp""#), "transport");
        assert_eq!(bad(r#""ring_timeout_secs": 0"#), "ring_timeout_secs");
        assert_eq!(bad(r#""notify_timeout_secs": 7200"#), "notify_timeout_secs");
        assert_eq!(bad(r#""max_calls": 0"#), "max_calls");
        assert_eq!(bad(r#""register_expires": 10"#), "register_expires");
        assert_eq!(bad(r#""user_agent": "a\nb""#), "user_agent");
        assert_eq!(bad(r#""outbound_proxy": "sip:""#), "outbound_proxy");
        assert_eq!(
            bad(r#""outbound_proxy": "sips:p", "transport": "tcp""#),
            "transport"
        );
        let user = parse(r#"{"domain": "pbx", "user": "a@b"}"#).expect_err("user");
        assert_eq!(user.to_string(), "user: \"a@b\" is not a SIP user name");
    }
}
