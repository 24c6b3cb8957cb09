//! Configuration of the `sip-refer` and `sip-reverse` drivers: one section per driver with any
//! number of lines, each line its own SIP account (or several lines on one account).

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::SocketAddr;
use tapir_sip_ua::header::Uri;
use tapir_sip_ua::resolve::{DnsSettings, LineDns};
use tapir_sip_ua::{DnsConfig, Transport};

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

/// Which auto-answer header(s) the INVITE to the user's phone carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoAnswerHeader {
    /// `Call-Info: <sip:DOMAIN>;answer-after=0` (snom, Grandstream, Yealink, Gigaset, Tiptel).
    #[default]
    CallInfo,
    /// `Alert-Info: <http://127.0.0.1>;info=alert-autoanswer;delay=0` (Aastra/Mitel, Unify,
    /// Yealink, snom).
    AlertInfoAutoanswer,
    /// `Alert-Info: Ring Answer` (Polycom ring class).
    AlertInfoRingAnswer,
    /// `Alert-Info: ring-answer` (Polycom, AudioCodes).
    AlertInfoRingAnswerDash,
    /// All of the above at once (what SIPTAPI sent).
    All,
}

impl AutoAnswerHeader {
    /// The (name, value) pairs to add.
    pub fn headers(self, domain: &str) -> Vec<(&'static str, String)> {
        let call_info = ("Call-Info", format!("<sip:{domain}>;answer-after=0"));
        let alert = (
            "Alert-Info",
            "<http://127.0.0.1>;info=alert-autoanswer;delay=0".to_owned(),
        );
        let ring = ("Alert-Info", "Ring Answer".to_owned());
        let dash = ("Alert-Info", "ring-answer".to_owned());
        match self {
            AutoAnswerHeader::CallInfo => vec![call_info],
            AutoAnswerHeader::AlertInfoAutoanswer => vec![alert],
            AutoAnswerHeader::AlertInfoRingAnswer => vec![ring],
            AutoAnswerHeader::AlertInfoRingAnswerDash => vec![dash],
            AutoAnswerHeader::All => vec![call_info, alert, dash, ring],
        }
    }
}

fn default_transport() -> String {
    "udp".into()
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
fn default_register_expires() -> u32 {
    300
}
fn default_bind() -> String {
    "0.0.0.0:0".into()
}

/// One line: a SIP account and the user's phone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// The line's key (unique within the driver), e.g. `"alice"`.
    pub key: String,
    /// Name shown to applications; defaults to the key.
    #[serde(default)]
    pub name: Option<String>,
    /// SIP domain (registrar / proxy), `host` or `host:port`. Requests go there unless
    /// `outbound_proxy` or `phone_address` says otherwise; DNS SRV is used when no port is given.
    pub domain: String,
    /// Outbound proxy URI or `host[:port]`; requests are sent there with a `Route` (loose routing).
    #[serde(default)]
    pub outbound_proxy: Option<String>,
    /// SIP user of the account tapir uses (From of our requests).
    pub user: String,
    /// Password of the account; never logged.
    #[serde(default)]
    pub password: Secret,
    /// Authentication user name when it differs from `user`.
    #[serde(default)]
    pub auth_user: Option<String>,
    /// The user's phone / extension (the AoR tapir INVITEs in `sip-refer`, the REFER target in
    /// `sip-reverse`); defaults to `user`. May be a full `sip:` URI.
    #[serde(default)]
    pub phone_user: Option<String>,
    /// SIPTAPI's "alternative mode": the phone's own `host:port`; the INVITE goes straight there
    /// instead of through the domain's server. Excludes `outbound_proxy` (refused together).
    #[serde(default)]
    pub phone_address: Option<String>,
    /// `udp` (default) or `tcp`.
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Ask the user's phone to answer our INVITE by itself.
    #[serde(default)]
    pub auto_answer: bool,
    /// Which auto-answer header variant to send when `auto_answer` is on.
    #[serde(default)]
    pub auto_answer_header: AutoAnswerHeader,
    /// Seconds to wait for the final NOTIFY after the REFER was accepted (default 25).
    #[serde(default = "default_notify_timeout")]
    pub notify_timeout_secs: u64,
    /// Seconds to let the first INVITE ring before giving up with CANCEL (default 60).
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u64,
    /// Answer digest challenges of any realm (SIPTAPI's "ignore realm", default true); when
    /// false, only challenges whose realm equals `realm` (or the domain's host) are answered.
    #[serde(default = "default_true")]
    pub ignore_realm: bool,
    /// The realm the credentials belong to, when `ignore_realm` is false; defaults to the
    /// domain's host.
    #[serde(default)]
    pub realm: Option<String>,
    /// Local `ip:port` to send from; lines with the same bind share one socket. Defaults to the
    /// driver's `bind`.
    #[serde(default)]
    pub bind: Option<String>,
    /// Display name in our From header.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Calls this line may carry at once (default 1, like a phone line).
    #[serde(default = "default_max_calls")]
    pub max_calls: u32,
    /// Incoming-call indication: REGISTER this line's account (Contact with `line=<key>`),
    /// keep the line out of service while unregistered, and offer incoming INVITEs as new
    /// calls (answered 180; the application may redirect or drop them). Default false.
    #[serde(default)]
    pub register: bool,
    /// Requested registration expiry in seconds (default 300, 60..=86400).
    #[serde(default = "default_register_expires")]
    pub register_expires: u32,
    /// ENUM for this line (`{ enum = true, enum_suffix = "..." }`) over the driver's `dns`.
    #[serde(default)]
    pub dns: Option<LineDns>,
}

/// The driver's section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverConfig {
    /// Default local `ip:port` for lines without their own `bind` (default `0.0.0.0:0`).
    #[serde(default = "default_bind")]
    pub bind: String,
    /// The lines.
    pub lines: Vec<LineConfig>,
    /// DNS: the servers to ask, the failover timeout, ENUM (see the sip-ua README).
    #[serde(default)]
    pub dns: DnsConfig,
}

/// A line's configuration, checked and parsed.
#[derive(Debug, Clone)]
pub struct Line {
    /// The raw configuration.
    pub cfg: LineConfig,
    /// Parsed domain (`sip:host[:port]`).
    pub domain_uri: Uri,
    /// Parsed outbound proxy.
    pub proxy_uri: Option<Uri>,
    /// Parsed phone address (alternative mode).
    pub phone_addr: Option<Uri>,
    /// Transport.
    pub transport: Transport,
    /// Local bind address.
    pub bind: SocketAddr,
    /// The ENUM suffix when ENUM is on for this line.
    pub enum_suffix: Option<String>,
}

impl Line {
    /// The domain's host (without port).
    pub fn domain_host(&self) -> &str {
        &self.domain_uri.host
    }

    /// The domain as written in URIs (`host[:port]`).
    pub fn domain(&self) -> String {
        match self.domain_uri.port {
            Some(p) => format!("{}:{p}", self.domain_uri.host),
            None => self.domain_uri.host.clone(),
        }
    }
}

fn host_uri(text: &str, what: &str) -> Result<Uri, String> {
    let text = text.trim();
    let candidate = if text.starts_with("sip:") || text.starts_with("sips:") {
        text.to_owned()
    } else {
        format!("sip:{text}")
    };
    let uri = Uri::parse(&candidate)
        .ok_or_else(|| format!("{what} {text:?} is not a host[:port] or sip: URI"))?;
    if uri.scheme == "sips" {
        return Err(format!("{what} {text:?}: sips/TLS is not supported"));
    }
    Ok(uri)
}

/// Parses and checks a driver section; the checked DNS settings come with it.
///
/// # Errors
/// A sentence naming the first problem.
pub fn parse(json: &str) -> Result<(DriverConfig, Vec<Line>, DnsSettings), String> {
    let cfg: DriverConfig =
        serde_json::from_str(json).map_err(|e| format!("invalid SIP driver configuration: {e}"))?;
    let dns = cfg.dns.settings().map_err(|e| e.to_string())?;
    if cfg.lines.is_empty() {
        return Err("the SIP driver needs at least one line".into());
    }
    let mut lines = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for l in &cfg.lines {
        if l.key.trim().is_empty() {
            return Err("a line has an empty key".into());
        }
        if !keys.insert(l.key.clone()) {
            return Err(format!("line key {:?} is used twice", l.key));
        }
        let ctx = |m: String| format!("line {:?}: {m}", l.key);
        if l.user.trim().is_empty() || l.user.contains(['@', ' ', '<', '>']) {
            return Err(ctx(format!("user {:?} is not a SIP user name", l.user)));
        }
        let domain_uri = host_uri(&l.domain, "domain").map_err(ctx)?;
        let proxy_uri = l
            .outbound_proxy
            .as_deref()
            .map(|p| host_uri(p, "outbound_proxy"))
            .transpose()
            .map_err(ctx)?;
        let phone_addr = l
            .phone_address
            .as_deref()
            .map(|p| host_uri(p, "phone_address"))
            .transpose()
            .map_err(ctx)?;
        if phone_addr.is_some() && proxy_uri.is_some() {
            // Decided: refused rather than one silently winning. The phone's own address sends
            // the INVITE straight to the phone, so the proxy would be bypassed.
            return Err(ctx(
                "phone_address and outbound_proxy exclude each other: phone_address sends the \
                 INVITE straight to the phone and would bypass the proxy; set only one of them"
                    .into(),
            ));
        }
        let transport = Transport::parse(&l.transport)
            .ok_or_else(|| ctx(format!("transport {:?} is not udp or tcp", l.transport)))?;
        let bind_text = l.bind.as_deref().unwrap_or(&cfg.bind);
        let bind: SocketAddr = bind_text
            .parse()
            .map_err(|_| ctx(format!("bind {bind_text:?} is not an ip:port")))?;
        if l.notify_timeout_secs == 0 || l.notify_timeout_secs > 3600 {
            return Err(ctx("notify_timeout_secs must be 1..=3600".into()));
        }
        if l.ring_timeout_secs == 0 || l.ring_timeout_secs > 3600 {
            return Err(ctx("ring_timeout_secs must be 1..=3600".into()));
        }
        if !(60..=86_400).contains(&l.register_expires) {
            return Err(ctx("register_expires must be 60..=86400".into()));
        }
        if l.max_calls == 0 {
            return Err(ctx("max_calls must be at least 1".into()));
        }
        let enum_suffix = cfg
            .dns
            .enum_suffix_for(l.dns.as_ref())
            .map_err(|e| ctx(e.to_string()))?;
        lines.push(Line {
            cfg: l.clone(),
            domain_uri,
            proxy_uri,
            phone_addr,
            transport,
            bind,
            enum_suffix,
        });
    }
    Ok((cfg, lines, dns))
}

/// A working example section (also used by the descriptor).
pub const EXAMPLE: &str = r#"{
  "bind": "0.0.0.0:0",
  "lines": [
    {
      "key": "alice",
      "name": "Alice (desk phone)",
      "domain": "pbx.example.com",
      "user": "alice",
      "password": "secret",
      "auth_user": "alice",
      "phone_user": "alice",
      "transport": "udp",
      "auto_answer": true,
      "auto_answer_header": "call_info",
      "notify_timeout_secs": 25
    }
  ]
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_and_secret_is_hidden() {
        let (cfg, lines, _) = parse(EXAMPLE).expect("example is valid");
        assert_eq!(lines.len(), 1);
        let dbg = format!("{cfg:?} {lines:?}");
        assert!(!dbg.contains("secret"), "password leaked: {dbg}");
        assert!(dbg.contains("***"));
        assert_eq!(lines[0].cfg.password.expose(), "secret");
        assert_eq!(lines[0].domain(), "pbx.example.com");
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values() {
        let unknown = EXAMPLE.replace("\"name\"", "\"nmae\"");
        assert!(parse(&unknown).is_err());
        let bad_transport = EXAMPLE.replace("\"udp\"", "\"sctp\"");
        assert!(parse(&bad_transport).unwrap_err().contains("transport"));
        assert!(parse(r#"{"lines": []}"#).is_err());
        let tls = EXAMPLE.replace("pbx.example.com", "sips:pbx.example.com");
        assert!(parse(&tls).is_err());
    }

    #[test]
    fn phone_address_and_outbound_proxy_are_refused_together() {
        let both = EXAMPLE.replace(
            "\"transport\": \"udp\",",
            "\"transport\": \"udp\", \"phone_address\": \"10.0.0.7:5060\", \"outbound_proxy\": \"proxy.example.com\",",
        );
        let err = parse(&both).expect_err("both at once");
        assert!(
            err.contains("line \"alice\"") && err.contains("exclude each other"),
            "{err}"
        );
        let one = EXAMPLE.replace(
            "\"transport\": \"udp\",",
            "\"transport\": \"udp\", \"phone_address\": \"10.0.0.7:5060\",",
        );
        assert!(parse(&one).is_ok());
    }

    #[test]
    fn dns_table_and_enum_per_line() {
        let with_dns = EXAMPLE.replacen(
            "\"bind\": \"0.0.0.0:0\",",
            "\"bind\": \"0.0.0.0:0\", \"dns\": {\"servers\": [\"127.0.0.1:5353\"], \"enum\": true},",
            1,
        );
        let (_, lines, dns) = parse(&with_dns).expect("valid");
        assert_eq!(dns.servers, vec!["127.0.0.1:5353".parse().expect("addr")]);
        assert_eq!(lines[0].enum_suffix.as_deref(), Some("e164.arpa"));
        let line_off = with_dns.replace(
            "\"notify_timeout_secs\": 25",
            "\"notify_timeout_secs\": 25, \"dns\": {\"enum\": false}",
        );
        let (_, lines, _) = parse(&line_off).expect("valid");
        assert_eq!(lines[0].enum_suffix, None);
        let bad = with_dns.replace("127.0.0.1:5353", "dns.example.com");
        assert!(parse(&bad).unwrap_err().contains("dns.servers"));
        let line_servers = with_dns.replace(
            "\"notify_timeout_secs\": 25",
            "\"notify_timeout_secs\": 25, \"dns\": {\"servers\": []}",
        );
        assert!(parse(&line_servers).is_err());
        // Without a `dns` table: the system's resolver, no ENUM.
        let (_, lines, dns) = parse(EXAMPLE).expect("valid");
        assert!(dns.servers.is_empty() && lines[0].enum_suffix.is_none());
    }

    #[test]
    fn auto_answer_variants() {
        assert_eq!(
            AutoAnswerHeader::CallInfo.headers("pbx"),
            vec![("Call-Info", "<sip:pbx>;answer-after=0".to_owned())]
        );
        assert_eq!(AutoAnswerHeader::All.headers("pbx").len(), 4);
        assert_eq!(
            AutoAnswerHeader::AlertInfoRingAnswer.headers("x")[0].1,
            "Ring Answer"
        );
    }
}
