//! Configuration of the `sip-refer` and `sip-reverse` drivers: one section per driver with any
//! number of lines, each line its own SIP account (or several lines on one account).

use serde::Deserialize;
use std::net::SocketAddr;
use tapir_sip_ua::header::Uri;
use tapir_sip_ua::leg::config::host_uri;
use tapir_sip_ua::leg::{Account, LegConfig, NetConfig};
use tapir_sip_ua::LineDns;

pub use tapir_sip_ua::leg::Secret;

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

fn default_bind() -> String {
    "0.0.0.0:0".into()
}

/// One line: a SIP account (the shared keys of [`LegConfig`]) and the user's phone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// The line's key (unique within the driver), e.g. `"alice"`.
    pub key: String,
    /// Name shown to applications; defaults to the key.
    #[serde(default)]
    pub name: Option<String>,
    /// The user's phone / extension (the AoR tapir INVITEs in `sip-refer`, the REFER target in
    /// `sip-reverse`); defaults to `user`. May be a full `sip:` URI.
    #[serde(default)]
    pub phone_user: Option<String>,
    /// SIPTAPI's "alternative mode": the phone's own `host:port`; the INVITE goes straight there
    /// instead of through the domain's server. Excludes `outbound_proxy` (refused together).
    #[serde(default)]
    pub phone_address: Option<String>,
    /// Ask the user's phone to answer our INVITE by itself.
    #[serde(default)]
    pub auto_answer: bool,
    /// Which auto-answer header variant to send when `auto_answer` is on.
    #[serde(default)]
    pub auto_answer_header: AutoAnswerHeader,
    /// Local `ip:port` to send from; lines with the same bind share one socket. Defaults to the
    /// driver's `bind`.
    #[serde(default)]
    pub bind: Option<String>,
    /// ENUM for this line (`{ enum = true, enum_suffix = "..." }`) over the driver's `dns`.
    #[serde(default)]
    pub dns: Option<LineDns>,
    /// The account, its timers, registration and PRACK (the keys every SIP driver shares).
    #[serde(flatten)]
    pub sip: LegConfig,
}

/// The driver's section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverConfig {
    /// Default local `ip:port` for lines without their own `bind` (default `0.0.0.0:0`).
    #[serde(default = "default_bind")]
    pub bind: String,
    /// The `tls`, `nat` and `dns` tables (for every endpoint of the driver).
    #[serde(flatten)]
    pub net: NetConfig,
    /// The lines.
    pub lines: Vec<LineConfig>,
}

impl DriverConfig {
    /// True when the endpoints need TLS: a line uses it, or `tls` is configured.
    pub fn needs_tls(&self, lines: &[Line]) -> bool {
        self.net.needs_tls(lines.iter().map(|l| &l.account))
    }
}

/// A line's configuration, checked and parsed.
#[derive(Debug, Clone)]
pub struct Line {
    /// The raw configuration.
    pub cfg: LineConfig,
    /// The checked SIP account (domain, proxy, transport, credentials).
    pub account: Account,
    /// Parsed phone address (alternative mode).
    pub phone_addr: Option<Uri>,
    /// Local bind address.
    pub bind: SocketAddr,
    /// The ENUM suffix when ENUM is on for this line.
    pub enum_suffix: Option<String>,
}

impl Line {
    /// The domain's host (without port).
    pub fn domain_host(&self) -> &str {
        self.account.domain_host()
    }

    /// The domain as written in URIs (`host[:port]`).
    pub fn domain(&self) -> String {
        self.account.domain()
    }

    /// The account's SIP user.
    pub fn user(&self) -> &str {
        &self.account.config.user
    }
}

/// Parses and checks a driver section.
///
/// # Errors
/// A sentence naming the first problem.
pub fn parse(json: &str) -> Result<(DriverConfig, Vec<Line>), String> {
    let cfg: DriverConfig =
        serde_json::from_str(json).map_err(|e| format!("invalid SIP driver configuration: {e}"))?;
    if cfg.lines.is_empty() {
        return Err("the SIP driver needs at least one line".into());
    }
    cfg.net.check().map_err(|p| p.to_string())?;
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
        let mut account = Account::check(l.sip.clone()).map_err(|p| ctx(p.to_string()))?;
        let phone_addr = l
            .phone_address
            .as_deref()
            .map(|p| host_uri(p, "phone_address"))
            .transpose()
            .map_err(|p| ctx(p.to_string()))?;
        if let Some(uri) = &phone_addr {
            account
                .require_tls_for(uri)
                .map_err(|p| ctx(p.to_string()))?;
        }
        if phone_addr.is_some() && account.proxy_uri.is_some() {
            // Decided: refused rather than one silently winning. The phone's own address sends
            // the INVITE straight to the phone, so the proxy would be bypassed.
            return Err(ctx(
                "phone_address and outbound_proxy exclude each other: phone_address sends the \
                 INVITE straight to the phone and would bypass the proxy; set only one of them"
                    .into(),
            ));
        }
        let bind_text = l.bind.as_deref().unwrap_or(&cfg.bind);
        let bind: SocketAddr = bind_text
            .parse()
            .map_err(|_| ctx(format!("bind {bind_text:?} is not an ip:port")))?;
        let enum_suffix = cfg
            .net
            .enum_suffix_for(l.dns.as_ref())
            .map_err(|p| ctx(p.to_string()))?;
        lines.push(Line {
            cfg: l.clone(),
            account,
            phone_addr,
            bind,
            enum_suffix,
        });
    }
    Ok((cfg, lines))
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
    use tapir_sip_ua::Transport;

    #[test]
    fn example_parses_and_secret_is_hidden() {
        let (cfg, lines) = parse(EXAMPLE).expect("example is valid");
        assert_eq!(lines.len(), 1);
        let dbg = format!("{cfg:?} {lines:?}");
        assert!(!dbg.contains("secret"), "password leaked: {dbg}");
        assert!(dbg.contains("***"));
        assert_eq!(lines[0].account.config.password.expose(), "secret");
        assert_eq!(lines[0].domain(), "pbx.example.com");
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values() {
        let unknown = EXAMPLE.replace("\"name\"", "\"nmae\"");
        assert!(parse(&unknown).is_err());
        let bad_transport = EXAMPLE.replace("\"udp\"", "\"sctp\"");
        assert!(parse(&bad_transport).unwrap_err().contains("transport"));
        assert!(parse(r#"{"lines": []}"#).is_err());
        let tls = EXAMPLE.replace(
            "\"domain\": \"pbx.example.com\"",
            "\"domain\": \"sips:pbx.example.com\"",
        );
        let (cfg, lines) = parse(&tls).expect("sips: is TLS");
        assert_eq!(lines[0].account.transport, Transport::Tls);
        assert!(cfg.needs_tls(&lines));
        let tcp = tls.replace("\"udp\"", "\"tcp\"");
        assert!(parse(&tcp).unwrap_err().contains("needs tls"));
        let (cfg, lines) = parse(&EXAMPLE.replace("\"udp\"", "\"tls\"")).expect("tls");
        assert_eq!(lines[0].account.transport, Transport::Tls);
        assert!(cfg.needs_tls(&lines));
        let (cfg, lines) = parse(EXAMPLE).expect("example");
        assert!(!cfg.needs_tls(&lines));
    }

    #[test]
    fn tls_and_nat_tables_are_read_and_checked() {
        let with = EXAMPLE.replacen(
            "\"bind\": \"0.0.0.0:0\",",
            "\"bind\": \"0.0.0.0:0\", \"tls\": {\"ca_file\": \"/etc/tapir/pbx-ca.pem\"}, \
             \"nat\": {\"stun_server\": \"stun.example.com\", \"udp_keepalive_secs\": 25},",
            1,
        );
        let (cfg, lines) = parse(&with).expect("valid");
        assert_eq!(
            cfg.net.tls.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/tapir/pbx-ca.pem"))
        );
        assert!(cfg.needs_tls(&lines), "a tls table starts TLS");
        assert_eq!(cfg.net.nat.stun_server.as_deref(), Some("stun.example.com"));
        let bad = with.replace(
            "\"udp_keepalive_secs\": 25",
            "\"udp_keepalive_secs\": 99999",
        );
        assert!(parse(&bad).unwrap_err().contains("udp_keepalive_secs"));
        let typo = with.replace("ca_file", "ca_fiel");
        assert!(parse(&typo).unwrap_err().contains("ca_fiel"));
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

    /// The README's TOML example is a valid section and names every key.
    #[test]
    fn readme_toml_example_names_every_key() {
        use tapir_test_support::docs::{keys_not_named, toml_example};
        let (block, section) = toml_example(include_str!("../README.md"), &["drivers", "pbx"]);
        let (_, lines) = parse(&section.to_string()).expect("the example is a valid section");
        let shared = serde_json::to_value(&lines[0].account.config).expect("keys");
        let own = [
            "bind",
            "key",
            "name",
            "phone_user",
            "phone_address",
            "auto_answer",
            "auto_answer_header",
        ];
        let keys = shared.as_object().into_iter().flat_map(|o| o.keys());
        let missing = keys_not_named(&block, keys.map(String::as_str).chain(own));
        assert!(missing.is_empty(), "the README's example lacks {missing:?}");
    }

    #[test]
    fn dns_table_and_enum_per_line() {
        let with_dns = EXAMPLE.replacen(
            "\"bind\": \"0.0.0.0:0\",",
            "\"bind\": \"0.0.0.0:0\", \"dns\": {\"servers\": [\"127.0.0.1:5353\"], \"enum\": true},",
            1,
        );
        let (cfg, lines) = parse(&with_dns).expect("valid");
        let dns = cfg.net.dns.settings().expect("checked");
        assert_eq!(dns.servers, vec!["127.0.0.1:5353".parse().expect("addr")]);
        assert_eq!(lines[0].enum_suffix.as_deref(), Some("e164.arpa"));
        let line_off = with_dns.replace(
            "\"notify_timeout_secs\": 25",
            "\"notify_timeout_secs\": 25, \"dns\": {\"enum\": false}",
        );
        let (_, lines) = parse(&line_off).expect("valid");
        assert_eq!(lines[0].enum_suffix, None);
        let bad = with_dns.replace("127.0.0.1:5353", "dns.example.com");
        assert!(parse(&bad).unwrap_err().contains("dns.servers"));
        let line_servers = with_dns.replace(
            "\"notify_timeout_secs\": 25",
            "\"notify_timeout_secs\": 25, \"dns\": {\"servers\": []}",
        );
        assert!(parse(&line_servers).is_err());
        // Without a `dns` table: the system's resolver, no ENUM.
        let (cfg, lines) = parse(EXAMPLE).expect("valid");
        let dns = cfg.net.dns.settings().expect("checked");
        assert!(dns.servers.is_empty() && lines[0].enum_suffix.is_none());
    }

    /// Every TOML example of the README parses, and together they name every key of the
    /// `tls`, `nat` and `dns` tables and the line's `dns`.
    #[test]
    fn every_readme_toml_example_parses_and_names_the_network_keys() {
        use tapir_test_support::docs::{driver_sections, keys_not_named};
        let (text, sections) =
            driver_sections(include_str!("../README.md"), &["sip-refer", "sip-reverse"]);
        assert!(sections.len() >= 3, "{sections:?}");
        for (name, section) in &sections {
            if let Err(e) = parse(&section.to_string()) {
                panic!("the README's example {name} does not parse: {e}");
            }
        }
        let network = [
            "ca_file",
            "cert_file",
            "key_file",
            "server_name",
            "insecure_skip_verify",
            "stun_server",
            "stun_refresh_secs",
            "keepalive_secs",
            "udp_keepalive_secs",
            "udp_keepalive",
            "pong_timeout_secs",
            "servers",
            "failover_timeout_ms",
            "enum",
            "enum_suffix",
            "dns",
        ];
        let missing = keys_not_named(&text, network);
        assert!(missing.is_empty(), "the README's examples lack {missing:?}");
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
