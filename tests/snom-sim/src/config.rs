//! How a simulated phone is set up ([`SimConfig`], its SIP side [`SimSip`]), and what the far
//! end of an outgoing call does ([`Outcome`]).

use std::net::SocketAddr;
use std::time::Duration;

/// The phone's SIP side for uaCSTA.
#[derive(Debug, Clone)]
pub struct SimSip {
    /// `csta_control`: the phone takes CSTA sessions (otherwise it refuses them with 488).
    pub csta_control: bool,
    /// `csta_challenge` 1 with this identity password (`user_pass1`): the INVITE must answer
    /// a Digest challenge.
    pub password: Option<String>,
    /// Refuse every session with this status (a phone that will not be driven over SIP).
    pub refuse: Option<u16>,
}

impl Default for SimSip {
    fn default() -> Self {
        Self {
            csta_control: true,
            password: None,
            refuse: None,
        }
    }
}

/// How a simulated phone is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen (loopback only).
    pub bind: SocketAddr,
    /// MAC (12 hex digits).
    pub mac: String,
    /// `phone_type`.
    pub model: String,
    /// `firmware_version`.
    pub firmware: String,
    /// Identity 1 user.
    pub user: String,
    /// Identity host (every identity).
    pub host: String,
    /// Users of identities 2, 3, … on the same host.
    pub more_identities: Vec<String>,
    /// Web login; `None` = no authentication.
    pub login: Option<(String, String)>,
    /// Digest instead of Basic.
    pub digest: bool,
    /// After a Digest lock-out the phone accepts logins again after this long (and counts
    /// from zero); `None` = only [`SimPhone::unlock`] ends it.
    pub lockout: Option<Duration>,
    /// The far end answers outgoing calls after this long; `None` = never by itself.
    pub answer_after: Option<Duration>,
    /// Serve CSTA over HTTP at `/csta`.
    pub csta: bool,
    /// The SIP side for uaCSTA (its port is the `network_id_port` setting).
    pub sip: Option<SimSip>,
    /// Settings preset (e.g. Action URLs of a mass configuration).
    pub settings: Vec<(String, String)>,
    /// Serve HTTPS (a fresh self-signed certificate) instead of HTTP.
    pub tls: bool,
    /// Serve the settings dump at `/settings.xml` (its URL is not documented by snom; a phone
    /// without it answers 404).
    pub settings_page: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            mac: "000413000001".into(),
            model: "snomD785".into(),
            firmware: "10.1.33.33".into(),
            user: "100".into(),
            host: "pbx.local".into(),
            more_identities: Vec::new(),
            login: None,
            digest: false,
            lockout: None,
            answer_after: None,
            csta: true,
            sip: None,
            settings: Vec::new(),
            tls: false,
            settings_page: true,
        }
    }
}

/// What the far end of an outgoing call does, scripted per dialled number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answers after this long.
    Answer(Duration),
    /// Is busy (SIP 486) after this long.
    Busy(Duration),
    /// Declines (SIP 603) after this long.
    Decline(Duration),
    /// Rings until this long has passed, then the attempt ends unanswered.
    NoAnswer(Duration),
    /// Cannot be reached (no route, SIP 404/408) after this long.
    Unreachable(Duration),
}

impl Outcome {
    /// The ECMA-269 cause the phone reports for a failure (uaCSTA `FailedEvent`).
    pub fn cause(self) -> Option<&'static str> {
        match self {
            Outcome::Answer(_) => None,
            Outcome::Busy(_) => Some("busy"),
            Outcome::Decline(_) => Some("callRejected"),
            Outcome::NoAnswer(_) => Some("callNotAnswered"),
            Outcome::Unreachable(_) => Some("destNotObtainable"),
        }
    }

    /// After how long it happens.
    pub fn after(self) -> Duration {
        match self {
            Outcome::Answer(d)
            | Outcome::Busy(d)
            | Outcome::Decline(d)
            | Outcome::NoAnswer(d)
            | Outcome::Unreachable(d) => d,
        }
    }
}
