//! Action URLs, sans I/O: the URLs the driver writes into phones (one per event, with snom's
//! run-time variables), and the parsing of the callbacks the phones send back.
//!
//! Paths below the driver instance's callback base:
//! - `/a/{phone}/{secret}/{event}?…` — written into one phone; `secret` is that phone's;
//! - `/m/{secret}/{event}?…` — from the mass-configuration files; `secret` is the driver's
//!   mass-configuration secret, the phone is known by `mac`.

use std::collections::HashMap;

/// The events a phone reports, with the snom setting that holds each URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// The phone booted.
    Setup,
    /// Registration failed.
    RegFailed,
    /// An identity logged on.
    LogOn,
    /// An identity logged off.
    LogOff,
    /// A call is ringing.
    Incoming,
    /// An outgoing call started.
    Outgoing,
    /// Handset lifted.
    Offhook,
    /// Handset replaced.
    Onhook,
    /// A call is connected.
    Connected,
    /// A call ended.
    Disconnected,
    /// A call was missed.
    Missed,
    /// Do-not-disturb on.
    DndOn,
    /// Do-not-disturb off.
    DndOff,
    /// Forwarding on.
    RedirectionOn,
    /// Forwarding off.
    RedirectionOff,
    /// A call was put on hold.
    Hold,
    /// A held call was retrieved.
    Unhold,
    /// A call was transferred (generic).
    Transfer,
    /// A call was transferred blind.
    BlindTransfer,
    /// A call was transferred after consultation.
    AttendedTransfer,
    /// This phone received an attended transfer (its far end changed).
    ReceivedAttendedTransfer,
}

impl Event {
    /// Every event, in the order the settings are written.
    pub const ALL: [Event; 21] = [
        Event::Setup,
        Event::RegFailed,
        Event::LogOn,
        Event::LogOff,
        Event::Incoming,
        Event::Outgoing,
        Event::Offhook,
        Event::Onhook,
        Event::Connected,
        Event::Disconnected,
        Event::Missed,
        Event::DndOn,
        Event::DndOff,
        Event::RedirectionOn,
        Event::RedirectionOff,
        Event::Hold,
        Event::Unhold,
        Event::Transfer,
        Event::BlindTransfer,
        Event::AttendedTransfer,
        Event::ReceivedAttendedTransfer,
    ];

    /// The name in the callback path.
    pub fn name(self) -> &'static str {
        match self {
            Event::Setup => "setup",
            Event::RegFailed => "reg_failed",
            Event::LogOn => "log_on",
            Event::LogOff => "log_off",
            Event::Incoming => "incoming",
            Event::Outgoing => "outgoing",
            Event::Offhook => "offhook",
            Event::Onhook => "onhook",
            Event::Connected => "connected",
            Event::Disconnected => "disconnected",
            Event::Missed => "missed",
            Event::DndOn => "dnd_on",
            Event::DndOff => "dnd_off",
            Event::RedirectionOn => "redirection_on",
            Event::RedirectionOff => "redirection_off",
            Event::Hold => "hold",
            Event::Unhold => "unhold",
            Event::Transfer => "transfer",
            Event::BlindTransfer => "blind_transfer",
            Event::AttendedTransfer => "attended_transfer",
            Event::ReceivedAttendedTransfer => "received_attended_transfer",
        }
    }

    /// The phone setting that holds the URL (snom's names; some have no `_url` suffix).
    pub fn setting(self) -> &'static str {
        match self {
            Event::Setup => "action_setup_url",
            Event::RegFailed => "action_reg_failed",
            Event::LogOn => "action_log_on_url",
            Event::LogOff => "action_log_off_url",
            Event::Incoming => "action_incoming_url",
            Event::Outgoing => "action_outgoing_url",
            Event::Offhook => "action_offhook_url",
            Event::Onhook => "action_onhook_url",
            Event::Connected => "action_connected_url",
            Event::Disconnected => "action_disconnected_url",
            Event::Missed => "action_missed_url",
            Event::DndOn => "action_dnd_on_url",
            Event::DndOff => "action_dnd_off_url",
            Event::RedirectionOn => "action_redirection_on_url",
            Event::RedirectionOff => "action_redirection_off_url",
            Event::Hold => "action_hold",
            Event::Unhold => "action_unhold",
            Event::Transfer => "action_transfer",
            Event::BlindTransfer => "action_blind_transfer",
            Event::AttendedTransfer => "action_attended_transfer",
            Event::ReceivedAttendedTransfer => "action_received_attended_transfer",
        }
    }

    /// The event named `name` in a callback path.
    pub fn from_name(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// The query every Action URL carries: snom run-time variables the phone fills in.
pub const QUERY_TEMPLATE: &str = "mac=$mac&ip=$phone_ip&type=$phone_type&local=$local&remote=$remote&name=$display_remote&csta=$csta_id&cid=$call-id&user=$active_user&n=$nr_ongoing_calls&fwd=$redirect_number&port=$http_port";

/// A phone's callback secret: the first 96 bits of SHA-256 over the driver's key and the
/// phone's key, in hex. The same `callback_key` gives the same secrets after a restart.
pub fn derive_secret(key: &[u8], phone: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(key);
    h.update([0u8]);
    h.update(phone.as_bytes());
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The URL for `event` written into one phone.
pub fn phone_url(base: &str, phone: &str, secret: &str, event: Event) -> String {
    format!(
        "{}/a/{phone}/{secret}/{}?{QUERY_TEMPLATE}",
        base.trim_end_matches('/'),
        event.name()
    )
}

/// The URL for `event` in a mass-configuration file.
pub fn mass_url(base: &str, secret: &str, event: Event) -> String {
    format!(
        "{}/m/{secret}/{}?{QUERY_TEMPLATE}",
        base.trim_end_matches('/'),
        event.name()
    )
}

/// Who sent a callback, as its path says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// `/a/{phone}/{secret}`.
    Phone {
        /// The phone's key.
        phone: String,
        /// The secret it presented.
        secret: String,
    },
    /// `/m/{secret}`.
    Mass {
        /// The secret it presented.
        secret: String,
    },
}

/// One callback, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// Who it claims to come from.
    pub sender: Sender,
    /// What happened.
    pub event: Event,
    /// The variables, decoded; unsubstituted (`$name`) and empty ones are left out.
    pub vars: Vars,
}

/// The decoded variables of a callback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(HashMap<String, String>);

impl Vars {
    /// A variable's value, if the phone filled it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The call's CSTA id.
    pub fn csta(&self) -> Option<&str> {
        self.get("csta")
    }

    /// The call's SIP Call-ID.
    pub fn sip_call_id(&self) -> Option<&str> {
        self.get("cid")
    }

    /// The normalised MAC.
    pub fn mac(&self) -> Option<String> {
        self.get("mac").and_then(normalize_mac)
    }

    /// The number of calls the phone has after the event.
    pub fn ongoing(&self) -> Option<u32> {
        self.get("n").and_then(|n| n.parse().ok())
    }

    /// Builds variables from pairs (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

/// Why a callback could not be read (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The path has no known shape.
    #[error("unknown callback path")]
    Path,
    /// The event is not one the driver writes.
    #[error("unknown event {0:?}")]
    Event(String),
    /// The query is not valid percent-encoded UTF-8 or is too long.
    #[error("malformed query")]
    Query,
}

/// Longest query accepted.
const MAX_QUERY: usize = 4096;

/// Parses a callback's path (below the instance) and query.
///
/// # Errors
/// A [`ParseError`] for anything but the two shapes the driver writes.
pub fn parse(path: &str, query: &str) -> Result<Callback, ParseError> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (sender, event) = match parts.as_slice() {
        ["a", phone, secret, event] if valid_segment(phone) && valid_segment(secret) => (
            Sender::Phone {
                phone: (*phone).to_owned(),
                secret: (*secret).to_owned(),
            },
            *event,
        ),
        ["m", secret, event] if valid_segment(secret) => (
            Sender::Mass {
                secret: (*secret).to_owned(),
            },
            *event,
        ),
        _ => return Err(ParseError::Path),
    };
    let event = Event::from_name(event).ok_or_else(|| ParseError::Event(truncate(event)))?;
    Ok(Callback {
        sender,
        event,
        vars: parse_query(query)?,
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// Decodes `a=b&c=d`; values that are empty or still `$variable` are left out.
///
/// # Errors
/// [`ParseError::Query`] for bad escapes, non-UTF-8, control characters (`%00`, line breaks:
/// no phone sends them, and they would end up in events and logs) or an overlong query.
pub fn parse_query(query: &str) -> Result<Vars, ParseError> {
    if query.len() > MAX_QUERY {
        return Err(ParseError::Query);
    }
    let mut vars = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k).ok_or(ParseError::Query)?;
        let v = percent_decode(v).ok_or(ParseError::Query)?;
        if k.chars().chain(v.chars()).any(char::is_control) {
            return Err(ParseError::Query);
        }
        let v = v.trim();
        if v.is_empty() || v.starts_with('$') {
            continue;
        }
        vars.insert(k, v.to_owned());
    }
    Ok(Vars(vars))
}

/// Decodes `%XX` escapes and `+`.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes a value for a query string (everything but unreserved characters).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A MAC in the driver's form (12 upper-case hex digits), from any common spelling.
pub fn normalize_mac(mac: &str) -> Option<String> {
    let hex: String = mac
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    (hex.len() == 12 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| hex.to_uppercase())
}

/// The user part of a SIP URI or number (`sip:123@pbx` → `123`, `"Ann" <sip:12@x>` → `12`).
pub fn user_part(uri: &str) -> String {
    let s = match (uri.find('<'), uri.rfind('>')) {
        (Some(a), Some(b)) if a < b => &uri[a + 1..b],
        _ => uri,
    };
    let s = s
        .trim()
        .trim_start_matches("sips:")
        .trim_start_matches("sip:")
        .trim_start_matches("tel:");
    let s = s.split(['@', ';']).next().unwrap_or(s);
    s.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_phone_callbacks() {
        let cb = parse(
            "/a/000413A1B2C3/s3cr3t/incoming",
            "mac=000413a1b2c3&remote=sip%3A200%40pbx&csta=7&cid=abc%40host&n=1&name=Ann+Lee&fwd=$redirect_number",
        )
        .expect("parses");
        assert_eq!(
            cb.sender,
            Sender::Phone {
                phone: "000413A1B2C3".into(),
                secret: "s3cr3t".into()
            }
        );
        assert_eq!(cb.event, Event::Incoming);
        assert_eq!(cb.vars.csta(), Some("7"));
        assert_eq!(cb.vars.sip_call_id(), Some("abc@host"));
        assert_eq!(cb.vars.mac().as_deref(), Some("000413A1B2C3"));
        assert_eq!(cb.vars.get("name"), Some("Ann Lee"));
        assert_eq!(
            cb.vars.get("fwd"),
            None,
            "unsubstituted variables are absent"
        );
        assert_eq!(cb.vars.ongoing(), Some(1));
    }

    #[test]
    fn refuses_junk() {
        assert_eq!(parse("/x", ""), Err(ParseError::Path));
        assert_eq!(parse("/a/p/s", ""), Err(ParseError::Path));
        assert_eq!(parse("/a/p/s/x/y", ""), Err(ParseError::Path));
        assert_eq!(parse("/a/p/s%20/incoming", ""), Err(ParseError::Path));
        assert!(matches!(
            parse("/a/p/s/explode", ""),
            Err(ParseError::Event(_))
        ));
        assert_eq!(parse("/m/s/incoming", "a=%zz"), Err(ParseError::Query));
        assert_eq!(parse("/m/s/incoming", "a=%ff"), Err(ParseError::Query));
        // A NUL (or any control character) in a name or value is refused.
        assert_eq!(
            parse("/m/s/incoming", "remote=12%0034"),
            Err(ParseError::Query)
        );
        assert_eq!(
            parse("/m/s/incoming", "re%00mote=1"),
            Err(ParseError::Query)
        );
        assert_eq!(
            parse("/m/s/incoming", "name=a%0D%0Ab"),
            Err(ParseError::Query)
        );
        let long = "a=".to_owned() + &"x".repeat(5000);
        assert_eq!(parse("/m/s/incoming", &long), Err(ParseError::Query));
        assert!(parse("/m/s/onhook", "").is_ok());
    }

    #[test]
    fn urls_round_trip_through_the_parser() {
        for event in Event::ALL {
            let url = phone_url("http://h:1/phones/x/", "K1", "sec", event);
            let path = url
                .strip_prefix("http://h:1/phones/x")
                .and_then(|p| p.split_once('?'))
                .map(|(p, _)| p)
                .expect("shape");
            assert_eq!(parse(path, "").expect("parses").event, event);
        }
        assert!(mass_url("http://h", "m", Event::Setup).starts_with("http://h/m/m/setup?mac=$mac"));
    }

    #[test]
    fn secrets_are_stable_per_key_and_phone() {
        let a = derive_secret(b"k", "P1");
        assert_eq!(a, derive_secret(b"k", "P1"));
        assert_eq!(a.len(), 24);
        assert_ne!(a, derive_secret(b"k", "P2"));
        assert_ne!(a, derive_secret(b"k2", "P1"));
    }

    #[test]
    fn helpers() {
        assert_eq!(
            normalize_mac("00:04:13:a1:b2:c3").as_deref(),
            Some("000413A1B2C3")
        );
        assert_eq!(normalize_mac("0004"), None);
        assert_eq!(user_part("sip:200@pbx.local"), "200");
        assert_eq!(user_part("\"Ann\" <sip:12@x;user=phone>"), "12");
        assert_eq!(user_part("0301234"), "0301234");
        assert_eq!(percent_encode("a b/#"), "a%20b%2F%23");
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
    }
}
