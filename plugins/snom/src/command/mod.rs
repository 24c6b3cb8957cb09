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

#[cfg(test)]
mod tests;

use crate::action::percent_encode;
use crate::calls::CallTracker;
use crate::csta::{Connection, Service};
use tapir_core::{
    AddressId, AddressStatus, CallId, CallState, DriverError, ErrorKind, ForwardMode, Forwarding,
    Request,
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

/// The routes of one request, with what the planner needs at hand.
struct Router<'a> {
    calls: &'a CallTracker,
    facts: &'a PhoneFacts,
    live: Vec<&'a crate::calls::Tracked>,
}

impl<'a> Router<'a> {
    fn only(&self, id: CallId) -> bool {
        self.live.len() == 1 && self.live[0].id == id
    }

    fn only_active(&self, id: CallId) -> bool {
        let active: Vec<_> = self
            .live
            .iter()
            .filter(|c| {
                !matches!(
                    c.state,
                    CallState::OnHold | CallState::OnHoldPendingTransfer
                )
            })
            .collect();
        active.len() == 1 && active[0].id == id
    }

    fn only_ringing(&self, id: CallId) -> bool {
        let ringing: Vec<_> = self
            .live
            .iter()
            .filter(|c| c.state == CallState::Offering)
            .collect();
        ringing.len() == 1 && ringing[0].id == id
    }

    fn state_of(&self, id: CallId) -> Result<CallState, DriverError> {
        self.calls.get(id).map(|c| c.state).ok_or_else(|| {
            DriverError::new(
                ErrorKind::InvalidCallHandle,
                format!("the phone has no call {id}"),
            )
        })
    }

    /// The CSTA name of a call, when the phone takes CSTA and the call has a `$csta_id`.
    fn conn(&self, id: CallId) -> Option<Connection<'a>> {
        let device = self.facts.csta.as_ref()?.device.as_str();
        let call = self.calls.get(id)?.csta.as_deref()?;
        Some(Connection { call, device })
    }

    fn csta(&self, service: Service<'_>, effect: Effect) -> Result<Plan, DriverError> {
        let via = self.facts.csta.as_ref().map_or(CstaVia::Http, |c| c.via);
        Ok(Plan {
            steps: Vec::new(),
            csta: Some(CstaCall {
                name: service.name(),
                xml: service.to_xml(),
                via,
            }),
            effect,
        })
    }

    fn keys(&self, op: &str, steps: Vec<String>, effect: Effect) -> Result<Plan, DriverError> {
        if !self.facts.has_key_control() {
            return Err(no_route(op, self.facts));
        }
        Ok(Plan {
            steps,
            csta: None,
            effect,
        })
    }

    /// A per-call operation: CSTA first when it is the phone's first route, keys when they
    /// are unambiguous (`keys_ok`), CSTA again where keys are not, else refused.
    fn route(
        &self,
        op: &str,
        service: Option<Service<'_>>,
        keys_ok: bool,
        steps: impl FnOnce() -> Result<Vec<String>, DriverError>,
        effect: Effect,
    ) -> Result<Plan, DriverError> {
        match service {
            Some(s) if self.facts.csta_first() => self.csta(s, effect),
            _ if keys_ok && self.facts.has_key_control() => self.keys(op, steps()?, effect),
            Some(s) => self.csta(s, effect),
            None if !self.facts.can_control_calls() => Err(no_route(op, self.facts)),
            None if !self.facts.has_key_control() => Err(DriverError::unavailable(format!(
                "{op}: the phone has not named this call's CSTA id yet"
            ))),
            None => Err(ambiguous(op)),
        }
    }
}

/// Plans `request` against the calls the phone has now.
///
/// # Errors
/// `OperationUnavailable` where no route can do it unambiguously;
/// `InvalidCallHandle`/`InvalidCallState`/`InvalidAddress` for bad requests.
pub fn plan(
    request: &Request,
    calls: &CallTracker,
    facts: &PhoneFacts,
) -> Result<Plan, DriverError> {
    let r = Router {
        calls,
        facts,
        live: calls.live().collect(),
    };
    let plain = |steps: Vec<String>, effect| {
        Ok(Plan {
            steps,
            csta: None,
            effect,
        })
    };
    match request {
        Request::MakeCall {
            call,
            address,
            destination,
        } => {
            let effect = |dialtone| Effect::MakeCall {
                call: *call,
                address: *address,
                dialtone,
            };
            match destination {
                Some(number) => {
                    check_number(number)?;
                    let identity = facts.identities.get(address.0 as usize);
                    if !facts.has_key_control() {
                        let calling = identity
                            .map(String::as_str)
                            .ok_or_else(|| no_route("make call", facts))?;
                        if facts.csta.is_none() {
                            return Err(no_route("make call", facts));
                        }
                        let service = Service::MakeCall {
                            calling,
                            to: number,
                        };
                        return r.csta(service, effect(false));
                    }
                    let mut path = format!("/command.htm?number={}", percent_encode(number));
                    if let Some(uri) = identity {
                        path.push_str("&outgoing_uri=");
                        path.push_str(&percent_encode(uri));
                    }
                    r.keys("make call", vec![path], effect(false))
                }
                None if r.live.is_empty() => {
                    r.keys("make call", vec![keys(&["OFFHOOK"])], effect(true))
                }
                None => Err(DriverError::unavailable(
                    "dial tone can only be given while the phone has no call",
                )),
            }
        }
        Request::Drop { call } => {
            let Some(tracked) = calls.get(*call) else {
                // The phone ended it already (reported Disconnected): nothing to send.
                return plain(Vec::new(), Effect::DropLocal { call: *call });
            };
            if matches!(tracked.state, CallState::Disconnected(_)) {
                return plain(Vec::new(), Effect::DropLocal { call: *call });
            }
            if matches!(tracked.state, CallState::Dialtone(_)) && tracked.csta.is_none() {
                // A dial-tone call the host made: hang up the handset if it is the only one.
                let s = if r.live.is_empty() && facts.has_key_control() {
                    vec![keys(&["ONHOOK"])]
                } else {
                    Vec::new()
                };
                return plain(s, Effect::DropLocal { call: *call });
            }
            let keys_ok = r.only(*call) || r.only_active(*call);
            r.route(
                "drop",
                r.conn(*call).map(Service::Clear),
                keys_ok,
                || Ok(vec![keys(&["CANCEL"])]),
                Effect::Drop { call: *call },
            )
        }
        Request::Answer { call } => {
            if r.state_of(*call)? != CallState::Offering {
                return Err(DriverError::invalid_state(
                    "only a ringing call can be answered",
                ));
            }
            let key = if r.live.len() == 1 {
                "OFFHOOK"
            } else {
                "ENTER"
            };
            r.route(
                "answer",
                r.conn(*call).map(Service::Answer),
                r.only_ringing(*call),
                || Ok(vec![keys(&[key])]),
                Effect::None,
            )
        }
        Request::Hold { call } => {
            if r.state_of(*call)? != CallState::Connected {
                return Err(DriverError::invalid_state(
                    "only a connected call can be held",
                ));
            }
            r.route(
                "hold",
                r.conn(*call).map(Service::Hold),
                r.only_active(*call),
                || Ok(vec![keys(&[facts.hold_key()])]),
                Effect::None,
            )
        }
        Request::Unhold { call } => {
            if !matches!(
                r.state_of(*call)?,
                CallState::OnHold | CallState::OnHoldPendingTransfer
            ) {
                return Err(DriverError::invalid_state("the call is not on hold"));
            }
            r.route(
                "unhold",
                r.conn(*call).map(Service::Retrieve),
                r.only(*call),
                || Ok(vec![keys(&[facts.hold_key()])]),
                Effect::None,
            )
        }
        Request::BlindTransfer { call, destination } => {
            check_number(destination)?;
            if r.state_of(*call)? != CallState::Connected {
                return Err(DriverError::invalid_state(
                    "only a connected call can be transferred",
                ));
            }
            let service = r.conn(*call).map(|active| Service::SingleStepTransfer {
                active,
                to: destination,
            });
            r.route(
                "blind transfer",
                service,
                r.only(*call),
                || {
                    let mut k = vec!["TRANSFER"];
                    k.extend(digit_keys(destination)?);
                    k.push("ENTER");
                    Ok(vec![keys(&k)])
                },
                Effect::None,
            )
        }
        Request::SetupTransfer { call, consult } => {
            if r.state_of(*call)? != CallState::Connected {
                return Err(DriverError::invalid_state(
                    "only a connected call can be held for a transfer",
                ));
            }
            let effect = Effect::SetupTransfer {
                held: *call,
                consult: *consult,
            };
            // CSTA ConsultationCall needs the number up front; TAPI's SetupTransfer gives
            // dial tone and the number comes later with Dial. So: hold now, dial later.
            let hold = r.conn(*call).map(Service::Hold);
            match hold {
                Some(s) if facts.csta_first() => r.csta(s, effect),
                _ if r.only(*call) => {
                    r.keys("setup transfer", vec![keys(&[facts.hold_key()])], effect)
                }
                _ => Err(ambiguous("setup transfer")),
            }
        }
        Request::CompleteTransfer { call, consult } => {
            let held = matches!(
                r.state_of(*call)?,
                CallState::OnHold | CallState::OnHoldPendingTransfer
            );
            let other = r.state_of(*consult)?;
            if !held || !(other.is_established() || other.is_outgoing_setup()) {
                return Err(DriverError::invalid_state(
                    "a transfer is completed from a held call and its consultation call",
                ));
            }
            // The TRANSFER key joins the held call and the active one: exactly these two.
            let keys_ok = r.live.len() == 2 && r.live.iter().any(|c| c.id == *consult);
            let service = r
                .conn(*call)
                .zip(r.conn(*consult))
                .map(|(held, active)| Service::Transfer { held, active });
            r.route(
                "complete transfer",
                service,
                keys_ok,
                || Ok(vec![keys(&["TRANSFER"])]),
                Effect::None,
            )
        }
        Request::SwapHold { active, held } => {
            if facts.csta.is_none() {
                return Err(DriverError::unavailable(
                    "swap hold needs CSTA (a uaCSTA session or csta_path); keys cannot pick the held call",
                ));
            }
            if r.state_of(*active)? != CallState::Connected
                || !matches!(
                    r.state_of(*held)?,
                    CallState::OnHold | CallState::OnHoldPendingTransfer
                )
            {
                return Err(DriverError::invalid_state(
                    "swap hold needs one connected and one held call",
                ));
            }
            let service = r
                .conn(*held)
                .zip(r.conn(*active))
                .map(|(held, active)| Service::Alternate { held, active });
            match service {
                Some(s) => r.csta(s, Effect::None),
                None => Err(DriverError::unavailable(
                    "swap hold: the phone has not named these calls' CSTA ids",
                )),
            }
        }
        Request::Redirect { call, destination } => {
            check_number(destination)?;
            if r.state_of(*call)? != CallState::Offering {
                return Err(DriverError::invalid_state(
                    "only a ringing call can be redirected",
                ));
            }
            let service = r.conn(*call).map(|call| Service::Deflect {
                call,
                to: destination,
            });
            // Keys only with a key that deflects (never one that could answer the call), and
            // only for the phone's only ringing call.
            let key = facts.redirect_key.as_deref();
            match (service, key) {
                (Some(s), _) if facts.csta_first() => r.csta(s, Effect::Drop { call: *call }),
                (_, Some(key)) if r.only_ringing(*call) && facts.has_key_control() => {
                    let mut k = vec![key];
                    k.extend(digit_keys(destination)?);
                    k.push("ENTER");
                    r.keys("redirect", vec![keys(&k)], Effect::Drop { call: *call })
                }
                (Some(s), _) => r.csta(s, Effect::Drop { call: *call }),
                (None, _) => Err(DriverError::unavailable(
                    "redirect needs CSTA (DeflectCall) or a redirect_key that deflects (F_DEFLECT) for the only ringing call",
                )),
            }
        }
        Request::Dial { call, digits } => {
            check_number(digits)?;
            match r.state_of(*call)? {
                CallState::Dialtone(_) if facts.has_key_control() => r.keys(
                    "dial",
                    vec![format!("/command.htm?number={}", percent_encode(digits))],
                    Effect::Dialing { call: *call },
                ),
                CallState::Dialtone(_) => {
                    let address = calls.get(*call).map(|c| c.info.address).unwrap_or_default();
                    let calling = facts
                        .identities
                        .get(address.0 as usize)
                        .filter(|_| facts.csta.is_some())
                        .ok_or_else(|| no_route("dial", facts))?;
                    let service = Service::MakeCall {
                        calling,
                        to: digits,
                    };
                    r.csta(service, Effect::Dialing { call: *call })
                }
                CallState::Connected if r.only_active(*call) => {
                    digit_keys(digits)?;
                    r.keys(
                        "dial",
                        vec![format!("/command.htm?key_dtmf={}", percent_encode(digits))],
                        Effect::None,
                    )
                }
                CallState::Connected => Err(ambiguous("dial")),
                _ => Err(DriverError::unavailable(
                    "more digits cannot be sent while the call is being set up",
                )),
            }
        }
        Request::Forward { address, forward } => {
            if address.0 != 0 {
                return Err(DriverError::new(
                    ErrorKind::InvalidAddressId,
                    "forwarding is per phone (address 0)",
                ));
            }
            let mut status = calls.address().clone();
            let path = match forward {
                None => {
                    status.forwarding.clear();
                    write_settings(&[("redirect_event", "none")])
                }
                Some(Forwarding { mode, destination }) => {
                    check_number(destination)?;
                    let (event, setting) = match mode {
                        ForwardMode::Unconditional => ("all", "redirect_number"),
                        ForwardMode::Busy => ("busy", "redirect_busy_number"),
                        ForwardMode::NoAnswer => ("time", "redirect_time_number"),
                        ForwardMode::UnconditionalInternal | ForwardMode::UnconditionalExternal => {
                            return Err(DriverError::unavailable(
                                "snom phones do not tell internal from external callers when forwarding",
                            ))
                        }
                    };
                    status.forwarding = vec![Forwarding {
                        mode: *mode,
                        destination: destination.clone(),
                    }];
                    write_settings(&[("redirect_event", event), (setting, destination)])
                }
            };
            plain(vec![path], Effect::Address(status))
        }
        Request::SetDoNotDisturb { address, enabled } => {
            if address.0 != 0 {
                return Err(DriverError::new(
                    ErrorKind::InvalidAddressId,
                    "DND is per phone (address 0)",
                ));
            }
            let mut status = calls.address().clone();
            status.do_not_disturb = *enabled;
            let value = if *enabled { "on" } else { "off" };
            plain(
                vec![write_settings(&[("dnd_mode", value)])],
                Effect::Address(status),
            )
        }
        Request::QueryAddressStatus { .. } => plain(Vec::new(), Effect::Query),
    }
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
