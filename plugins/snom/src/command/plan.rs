//! The planner: for one request and the calls the phone has now, the route it takes
//! (uaCSTA, keys or CSTA over HTTP), the requests to send and what else happens.

use super::{
    ambiguous, check_number, digit_keys, keys, no_route, write_settings, CstaCall, CstaVia, Effect,
    PhoneFacts, Plan,
};
use crate::action::percent_encode;
use crate::calls::CallTracker;
use crate::csta::{Connection, Service};
use tapir_core::{CallId, CallState, DriverError, ErrorKind, ForwardMode, Forwarding, Request};

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
