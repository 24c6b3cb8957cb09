//! The snom driver's configuration: its section of the host configuration, received as JSON.
//! The doc comment of each field is the user documentation (README.md repeats it).

use crate::secret::Secret;
use serde::Deserialize;
use std::time::Duration;

/// A working example, used by `tapir plugins` and checked by a test.
pub const EXAMPLE_CONFIG: &str = r#"{
  "phones": [
    { "address": "192.0.2.10", "mac": "000413A1B2C3", "login": "admin", "password": "s3cr3tpw" },
    { "address": "192.0.2.11:8080", "auth": "digest", "login": "admin", "password": "other" }
  ],
  "passwords": [ { "login": "admin", "password": "0000" } ],
  "auto_reconfigure": true,
  "snapshot_interval_secs": 30
}"#;

/// The configuration of one snom driver instance. Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnomConfig {
    /// The phones to serve, one line each. Default: none.
    pub phones: Vec<PhoneConfig>,
    /// The password list: logins tried in order on a phone that has no login of its own. Tried
    /// one after another only on phones that use Basic authentication; on Digest phones at most
    /// two wrong attempts are ever made (the phone locks after three). The login that worked
    /// is remembered for that phone. Default: none.
    pub passwords: Vec<Login>,
    /// The admin-mode password. When set, every phone is accessed as user `admin` with this
    /// password and the phones' own logins are no longer used (snom firmware newer than
    /// 8.4.35 / 8.7.3.15). Default: none.
    pub admin_password: Option<Secret>,
    /// "Falsely configured telephones are automatically reconfigured": when the settings read
    /// back from a phone lack the driver's Action URLs, write them again. Default `true`.
    pub auto_reconfigure: bool,
    /// "Unknown telephones are automatically put into operation": a phone that is not listed
    /// but calls in with the mass-configuration secret becomes a new line. Default `false`.
    pub accept_unknown_phones: bool,
    /// The secret put into the mass-configuration files' Action URLs
    /// (`tapir snom mass-config`). Callbacks carrying it are accepted from phones known by MAC,
    /// and from unknown phones when `accept_unknown_phones` is on. Default: none (mass
    /// configuration callbacks are refused).
    pub mass_config_secret: Option<Secret>,
    /// "Allow access from external telephones": accept callbacks whose source IP differs from
    /// the phone's address (phones behind NAT, VPN). The per-phone secret and the MAC are still
    /// checked. Default `false`.
    pub allow_external_phones: bool,
    /// The key from which each phone's callback secret is derived. Set it to keep the Action
    /// URLs in the phones valid across restarts; without it a random key is chosen at start
    /// and phones are rewritten (with `auto_reconfigure`). Default: random.
    pub callback_key: Option<Secret>,
    /// The base URL written into the phones for their Action URLs, when it must differ from
    /// the host's `[phones] public_url` (a dyndns name for phones on the Internet), e.g.
    /// `http://pbx.example.com:8781/phones/office`. Default: the host's URL for this instance.
    pub public_url: Option<String>,
    /// "Snapshot for active calls": every this many seconds, calls shown for a phone are
    /// checked against the phone and the ones it no longer has are cleared. `0` = off.
    /// Default 30.
    pub snapshot_interval_secs: u64,
    /// Every this many seconds each phone is contacted: reachability, identity and
    /// configuration are refreshed. `0` = only at start and on demand. Default 300.
    pub status_interval_secs: u64,
    /// Every this many seconds an idle phone is checked for reachability (one unauthenticated
    /// request; any HTTP answer counts). A phone that stays away is checked from
    /// `liveness_busy_secs` on, less and less often (doubling up to `liveness_max_secs`).
    /// `0` = off. Default 30.
    pub liveness_interval_secs: u64,
    /// The same check for phones with calls or requests under way. Default 5.
    pub liveness_busy_secs: u64,
    /// The longest wait between checks of a phone that stays unreachable. Default 300.
    pub liveness_max_secs: u64,
    /// A phone that refuses access (403: locked out after wrong passwords) is asked again
    /// after this many seconds (only with a request that carries no password, until it
    /// answers with a login challenge again). Default 300.
    pub lockout_retry_secs: u64,
    /// uaCSTA over SIP (ECMA TR/87): `auto` opens a CSTA session to phones whose
    /// `csta_control` setting is on and uses it for per-call operations, events and
    /// snapshots; `configure` also switches `csta_control` on in the phones; `off` never uses
    /// it. Default `auto`.
    pub uacsta: UaCstaMode,
    /// Where the driver's SIP endpoint for uaCSTA listens (UDP and TCP). Default
    /// `0.0.0.0:0` (any address, a free port).
    pub sip_listen: String,
    /// The SIP port of phones that name none (`network_id_port` in their settings, or
    /// `sip_port` per phone). Default 5060.
    pub sip_port: u16,
    /// Which identity setting holds the line's number: `user_name` (the SIP user),
    /// `user_pname` (the authentication name) or `user_realname` (the display name).
    /// Default `user_name`.
    pub number_field: NumberField,
    /// Address ranges scanned for snom phones at start (the `Server: snom embedded` header);
    /// phones found are added as lines. Form `A[-B][:P[-Q]]`, e.g. `10.0.0.1-10.0.0.254`
    /// or `127.0.0.1:18000-18010`. At most 65,536 addresses per range. Default: none.
    pub discovery: Vec<String>,
    /// The scheme for phones that do not name one: `http` or `https`. Default `http`.
    pub default_scheme: Scheme,
    /// At most this many HTTP requests to phones are in flight at once (one per phone in any
    /// case). Default 64.
    pub max_connections: usize,
    /// How long one HTTP request to a phone may take, in milliseconds. Default 5000.
    pub request_timeout_ms: u64,
    /// The page from which the phone's settings are read back (text `name: value` lines or
    /// XML). Default `/settings.xml`.
    pub settings_path: String,
    /// The path of the phone's CSTA-over-HTTP interface (firmware 8.7.3 and later). When set,
    /// the snapshot of active calls uses CSTA `SnapshotDevice` and per-call operations that
    /// keys cannot address unambiguously use CSTA. Default: none (keys only).
    pub csta_path: Option<String>,
    /// The phone types `tapir snom mass-config` writes files for (`snomD785` →
    /// `snomD785.xml`). Default: a list of common desk phones.
    pub phone_types: Vec<String>,
    /// Most jobs (requests, configuration) waiting for one phone; more are refused.
    /// Default 32.
    pub queue_per_phone: usize,
    /// The key that deflects a ringing call: `F_DEFLECT` (snom's call-deflection key event),
    /// or a function key `P1`… programmed with `keyevent F_DEFLECT` (checked in the
    /// phone's settings). The driver sends `KEY;digits…;ENTER` for the only ringing call.
    /// Keys that do something else (`F_REDIRECT` toggles call forwarding) are refused, so a
    /// redirect can never end up answering the call. Default: none (redirect over keys
    /// unavailable; CSTA `DeflectCall` is used where the phone has CSTA).
    pub redirect_key: Option<String>,
}

impl Default for SnomConfig {
    fn default() -> Self {
        Self {
            phones: Vec::new(),
            passwords: Vec::new(),
            admin_password: None,
            auto_reconfigure: true,
            accept_unknown_phones: false,
            mass_config_secret: None,
            allow_external_phones: false,
            callback_key: None,
            public_url: None,
            snapshot_interval_secs: 30,
            status_interval_secs: 300,
            liveness_interval_secs: 30,
            liveness_busy_secs: 5,
            liveness_max_secs: 300,
            lockout_retry_secs: 300,
            uacsta: UaCstaMode::Auto,
            sip_listen: "0.0.0.0:0".to_owned(),
            sip_port: 5060,
            number_field: NumberField::UserName,
            discovery: Vec::new(),
            default_scheme: Scheme::Http,
            max_connections: 64,
            request_timeout_ms: 5000,
            settings_path: "/settings.xml".to_owned(),
            csta_path: None,
            phone_types: [
                "snom300", "snom320", "snom370", "snom710", "snom715", "snom720", "snom760",
                "snomD715", "snomD735", "snomD765", "snomD785",
            ]
            .map(str::to_owned)
            .to_vec(),
            queue_per_phone: 32,
            redirect_key: None,
        }
    }
}

/// One phone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneConfig {
    /// The phone's web server: `host` or `host:port` (IPv6 as `[addr]:port`). Required.
    pub address: String,
    /// The phone's MAC (any of `000413A1B2C3`, `00:04:13:a1:b2:c3`). When given it is the
    /// line's key and callbacks must carry it. Default: learnt from the phone.
    #[serde(default)]
    pub mac: Option<String>,
    /// `http` or `https`. Default: the driver's `default_scheme`.
    #[serde(default)]
    pub scheme: Option<Scheme>,
    /// The web login. Default: none (the password list is tried).
    #[serde(default)]
    pub login: Option<String>,
    /// The web password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// `basic` or `digest`. Default: whatever the phone asks for.
    #[serde(default)]
    pub auth: Option<AuthScheme>,
    /// The line's name. Default: "snom KEY".
    #[serde(default)]
    pub name: Option<String>,
    /// The phone's SIP port for uaCSTA. Default: `network_id_port` from its settings, else
    /// the driver's `sip_port`.
    #[serde(default)]
    pub sip_port: Option<u16>,
    /// The user name answering the phone's CSTA challenge (`csta_challenge`): default the
    /// phone's identity 1 user.
    #[serde(default)]
    pub sip_user: Option<String>,
    /// The password answering the phone's CSTA challenge: the identity's SIP password
    /// (`user_pass`), which the phone does not export.
    #[serde(default)]
    pub sip_password: Option<Secret>,
}

/// When uaCSTA over SIP is used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UaCstaMode {
    /// Never.
    Off,
    /// With phones whose `csta_control` is on.
    #[default]
    Auto,
    /// Also switch `csta_control` on in the phones (written with the Action URLs).
    Configure,
}

/// The keys that deflect a ringing call: `F_DEFLECT`, or a programmable key (`P1`…)
/// whose function the driver checks in the phone's settings. Returns the function-key index
/// (`fkey{N}`, `P1` = 0) for programmable keys.
///
/// # Errors
/// A sentence saying why the key cannot be used for redirect.
pub fn deflect_key(key: &str) -> Result<Option<u32>, String> {
    if key == "F_DEFLECT" {
        return Ok(None);
    }
    let number = |prefix: &str| {
        key.strip_prefix(prefix)
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n >= 1)
    };
    if let Some(n) = number("P") {
        return Ok(Some(n - 1));
    }
    if key == "F_REDIRECT" {
        return Err("redirect_key F_REDIRECT toggles call forwarding on snom phones and does not deflect a ringing call; use F_DEFLECT".into());
    }
    Err(format!(
        "redirect_key {key:?} is not a key that deflects a ringing call; use F_DEFLECT or a function key P1… programmed with keyevent F_DEFLECT"
    ))
}

/// A login from the password list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// User name.
    pub login: String,
    /// Password.
    pub password: Secret,
}

/// HTTP or HTTPS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP (port 80 by default).
    #[default]
    Http,
    /// HTTPS (port 443 by default). Phones carry self-signed certificates; the certificate is
    /// not checked (the phone is authenticated by its login, the driver by the per-phone
    /// callback secret).
    Https,
}

/// The phone's web authentication scheme (`http_scheme` off/on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    /// Basic: safe to try a password list.
    Basic,
    /// Digest: the phone locks after three wrong passwords.
    Digest,
}

/// Which identity setting gives the line number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberField {
    /// `user_nameN`.
    #[default]
    UserName,
    /// `user_pnameN`.
    UserPname,
    /// `user_realnameN`.
    UserRealname,
}

impl NumberField {
    /// The snom setting name without the identity index.
    pub fn setting(self) -> &'static str {
        match self {
            NumberField::UserName => "user_name",
            NumberField::UserPname => "user_pname",
            NumberField::UserRealname => "user_realname",
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The JSON does not fit the schema.
    #[error("snom configuration: {0}")]
    Json(#[from] serde_json::Error),
    /// A value is out of range or malformed.
    #[error("snom configuration: {0}")]
    Invalid(String),
}

impl SnomConfig {
    /// Parses and checks a configuration section.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the problem.
    pub fn parse(json: &str) -> Result<Self, ConfigError> {
        let config: SnomConfig = serde_json::from_str(json)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1".into());
        }
        if self.queue_per_phone == 0 {
            return bad("queue_per_phone must be at least 1".into());
        }
        if self.request_timeout_ms == 0 {
            return bad("request_timeout_ms must be at least 1".into());
        }
        let mut keys = std::collections::HashSet::new();
        for (i, phone) in self.phones.iter().enumerate() {
            crate::http::Target::parse(&phone.address, Scheme::Http)
                .map_err(|e| ConfigError::Invalid(format!("phones[{i}].address: {e}")))?;
            if let Some(mac) = &phone.mac {
                if crate::action::normalize_mac(mac).is_none() {
                    return bad(format!("phones[{i}].mac: {mac:?} is not a MAC address"));
                }
            }
            if phone.password.is_some() && phone.login.is_none() {
                return bad(format!("phones[{i}]: a password needs a login"));
            }
            if !keys.insert(phone_key(phone)) {
                return bad(format!("phones[{i}]: the phone is listed twice"));
            }
        }
        for (i, range) in self.discovery.iter().enumerate() {
            crate::discovery::Range::parse(range)
                .map_err(|e| ConfigError::Invalid(format!("discovery[{i}]: {e}")))?;
        }
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return bad("public_url must start with http:// or https://".into());
            }
        }
        if let Some(k) = &self.redirect_key {
            deflect_key(k).map_err(ConfigError::Invalid)?;
        }
        if self.sip_listen.parse::<std::net::SocketAddr>().is_err() {
            return bad(format!(
                "sip_listen {:?} is not an address with a port (e.g. 0.0.0.0:0)",
                self.sip_listen
            ));
        }
        if self.liveness_busy_secs == 0 && self.liveness_interval_secs > 0 {
            return bad("liveness_busy_secs must be at least 1".into());
        }
        if !self.settings_path.starts_with('/') {
            return bad("settings_path must start with /".into());
        }
        if let Some(p) = &self.csta_path {
            if !p.starts_with('/') {
                return bad("csta_path must start with /".into());
            }
        }
        Ok(())
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// The line key of a configured phone: its MAC when given, else its address made path-safe.
pub fn phone_key(phone: &PhoneConfig) -> String {
    match phone.mac.as_deref().and_then(crate::action::normalize_mac) {
        Some(mac) => mac,
        None => address_key(&phone.address),
    }
}

/// A path-safe key from an address (`127.0.0.1:8080` → `127.0.0.1_8080`).
pub fn address_key(address: &str) -> String {
    address
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses() {
        let c = SnomConfig::parse(EXAMPLE_CONFIG).expect("example parses");
        assert_eq!(c.phones.len(), 2);
        assert_eq!(phone_key(&c.phones[0]), "000413A1B2C3");
        assert_eq!(phone_key(&c.phones[1]), "192.0.2.11_8080");
        assert!(!format!("{c:?}").contains("s3cr3tpw"));
    }

    #[test]
    fn refuses_unknown_fields_and_bad_values() {
        assert!(SnomConfig::parse(r#"{"phonez": []}"#).is_err());
        assert!(SnomConfig::parse(r#"{"phones": [{"address": "a", "mac": "xyz"}]}"#).is_err());
        assert!(SnomConfig::parse(r#"{"phones": [{"address": "a"}, {"address": "a"}]}"#).is_err());
        assert!(SnomConfig::parse(r#"{"max_connections": 0}"#).is_err());
        assert!(SnomConfig::parse(r#"{"discovery": ["nonsense"]}"#).is_err());
        assert!(SnomConfig::parse("{}").is_ok());
        assert!(SnomConfig::parse(r#"{"sip_listen": "nowhere"}"#).is_err());
    }

    #[test]
    fn only_keys_that_deflect_may_redirect() {
        assert!(SnomConfig::parse(r#"{"redirect_key": "F_DEFLECT"}"#).is_ok());
        assert_eq!(deflect_key("P3"), Ok(Some(2)));
        let err = SnomConfig::parse(r#"{"redirect_key": "F_REDIRECT"}"#)
            .expect_err("F_REDIRECT toggles forwarding");
        assert!(err.to_string().contains("F_DEFLECT"), "{err}");
        assert!(SnomConfig::parse(r#"{"redirect_key": "ENTER"}"#).is_err());
        assert!(SnomConfig::parse(r#"{"redirect_key": "P0"}"#).is_err());
    }
}
