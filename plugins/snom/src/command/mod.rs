//! Which requests carry out an operation, sans I/O: the route table.
//!
//! Three routes reach a snom phone, chosen per operation and per phone:
//! - **uaCSTA over SIP** ([`crate::uacsta`]), when a CSTA session to the phone is up: every
//!   per-call operation goes there, naming the call by its `$csta_id`; it is exact whatever
//!   else the phone shows.
//! - **keys** (`command.htm?key=…`): they carry no call id and act on whatever the phone shows,
//!   so a per-call operation goes over keys only when the target is unambiguous (the phone's
//!   only call, or the only call not on hold). Hold is a toggle: the key is sent only when the
//!   tracked state says it will have the wanted effect. D8xx phones have no key control.
//! - **CSTA over HTTP** (`csta_path`): where keys are ambiguous or missing, the same ECMA-323
//!   services are POSTed to the phone's web server.
//!
//! Otherwise the request is refused with `OperationUnavailable` and nothing is sent. DND and
//! forwarding are written as settings (`dnd_mode`, `redirect_event`), which are absolute, not
//! toggles.

mod plan;
#[cfg(test)]
mod tests;

pub use plan::plan;

use crate::action::percent_encode;
use tapir_core::{
    AddressId, AddressStatus, CallId, DriverError, ErrorKind, ForwardMode, Forwarding,
};

/// What the driver does besides sending the requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing.
    None,
    /// A call placed by the host: Dialing (or Dialtone) before the request goes out.
    MakeCall {
        /// The call.
        call: CallId,
        /// The identity it is placed from.
        address: AddressId,
        /// No number: dial tone.
        dialtone: bool,
    },
    /// Digits dialled on a dial-tone call.
    Dialing {
        /// The call.
        call: CallId,
    },
    /// A drop: the phone's `disconnected` ends the call as Idle.
    Drop {
        /// The call.
        call: CallId,
    },
    /// A call that is already gone on the phone: Idle at once, nothing is sent.
    DropLocal {
        /// The call.
        call: CallId,
    },
    /// Hold pending transfer, plus a dial-tone consultation call.
    SetupTransfer {
        /// The held call.
        held: CallId,
        /// The consultation call.
        consult: CallId,
    },
    /// The address state after the write.
    Address(AddressStatus),
    /// Read the settings and answer with the address state.
    Query,
}

/// Which transport carries a CSTA service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CstaVia {
    /// uaCSTA: INFO inside the CSTA session over SIP.
    Sip,
    /// POSTed to `csta_path` on the phone's web server.
    Http,
}

/// A CSTA service to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CstaCall {
    /// Its name (the answer must be `{name}Response`).
    pub name: &'static str,
    /// The XML.
    pub xml: String,
    /// The transport.
    pub via: CstaVia,
}

/// The requests (paths with query) and the effect of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// GET requests, sent in order, one at a time.
    pub steps: Vec<String>,
    /// A CSTA service to send after the steps.
    pub csta: Option<CstaCall>,
    /// What else happens.
    pub effect: Effect,
}

/// How the phone takes CSTA, when it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CstaRoute {
    /// The phone's CSTA device: `user@host` of identity 1.
    pub device: String,
    /// Over which transport.
    pub via: CstaVia,
}

/// What the route depends on besides the calls.
#[derive(Debug, Clone, Default)]
pub struct PhoneFacts {
    /// `sip:user@host` of each identity (address 0 = identity 1).
    pub identities: Vec<String>,
    /// Firmware major version, when known.
    pub firmware_major: Option<u32>,
    /// The model (`snomD785`), when known.
    pub model: Option<String>,
    /// The key that deflects a ringing call (a checked `redirect_key`), if any.
    pub redirect_key: Option<String>,
    /// CSTA: a uaCSTA session that is up, else CSTA over HTTP when `csta_path` is set and the
    /// phone has not shown that it lacks call control.
    pub csta: Option<CstaRoute>,
}

impl PhoneFacts {
    /// snom: HTTP remote control (keys, `number=`) works on D3xx/D7xx and older models, not
    /// on D8xx.
    pub fn has_key_control(&self) -> bool {
        !self
            .model
            .as_deref()
            .is_some_and(|m| m.to_ascii_lowercase().starts_with("snomd8"))
    }

    /// The hold key: `F_HOLD`, or `F_R` on firmware before 7.
    pub fn hold_key(&self) -> &'static str {
        match self.firmware_major {
            Some(major) if major < 7 => "F_R",
            _ => "F_HOLD",
        }
    }

    /// CSTA is the first route (before keys): a uaCSTA session is up, or the phone has no key
    /// control but CSTA over HTTP.
    pub fn csta_first(&self) -> bool {
        match &self.csta {
            Some(c) => c.via == CstaVia::Sip || !self.has_key_control(),
            None => false,
        }
    }

    /// Whether calls can be placed and answered at all (keys or CSTA).
    pub fn can_control_calls(&self) -> bool {
        self.has_key_control() || self.csta.is_some()
    }
}

/// `command.htm?key=A;B;C`.
pub fn keys(keys: &[&str]) -> String {
    let list: Vec<String> = keys.iter().map(|k| percent_encode(k)).collect();
    format!("/command.htm?key={}", list.join(";"))
}

/// The keys that type `digits` (`*` and `#` included).
pub fn digit_keys(digits: &str) -> Result<Vec<&'static str>, DriverError> {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    digits
        .chars()
        .map(|c| match c {
            '0'..='9' => Ok(DIGITS[(c as u8 - b'0') as usize]),
            '*' => Ok("*"),
            '#' => Ok("#"),
            _ => Err(DriverError::new(
                ErrorKind::InvalidAddress,
                format!("{c:?} cannot be typed on a phone keypad"),
            )),
        })
        .collect()
}

/// `dummy.htm?settings=save&store_settings=save&k=v…`.
pub fn write_settings(pairs: &[(&str, &str)]) -> String {
    let mut s = "/dummy.htm?settings=save&store_settings=save".to_owned();
    for (k, v) in pairs {
        s.push('&');
        s.push_str(&percent_encode(k));
        s.push('=');
        s.push_str(&percent_encode(v));
    }
    s
}

fn check_number(number: &str) -> Result<(), DriverError> {
    if number.is_empty() || number.len() > 128 || number.chars().any(|c| c.is_control()) {
        return Err(DriverError::new(
            ErrorKind::InvalidAddress,
            "the destination is empty, too long or has control characters",
        ));
    }
    Ok(())
}

fn ambiguous(op: &str) -> DriverError {
    DriverError::unavailable(format!(
        "{op}: the phone has several calls and its key interface cannot tell them apart"
    ))
}

fn no_route(op: &str, facts: &PhoneFacts) -> DriverError {
    DriverError::unavailable(format!(
        "{op}: {} has no HTTP remote control (snom D8xx) and no CSTA session",
        facts.model.as_deref().unwrap_or("this model")
    ))
}

/// The address state a settings dump shows.
pub fn address_from_settings(settings: &crate::settings::Settings) -> AddressStatus {
    let dnd = settings.get("dnd_mode") == Some("on");
    let event = settings.get("redirect_event").unwrap_or("none");
    let forward = |mode, key: &str| {
        settings
            .get(key)
            .filter(|d| !d.is_empty())
            .map(|d| {
                vec![Forwarding {
                    mode,
                    destination: d.to_owned(),
                }]
            })
            .unwrap_or_default()
    };
    let forwarding = match event {
        "all" => forward(ForwardMode::Unconditional, "redirect_number"),
        "busy" => forward(ForwardMode::Busy, "redirect_busy_number"),
        "time" => forward(ForwardMode::NoAnswer, "redirect_time_number"),
        _ => Vec::new(),
    };
    AddressStatus {
        forwarding,
        do_not_disturb: dnd,
    }
}
