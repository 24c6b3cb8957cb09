//! Which HTTP requests carry out an operation, sans I/O: the route table.
//!
//! The key interface (`command.htm?key=…`) carries no call id: a key acts on whatever the
//! phone shows. A per-call operation therefore goes over keys only when the target is
//! unambiguous (the phone's only call, or the only call not on hold); otherwise it is refused
//! with `OperationUnavailable` instead of guessing. Hold is a toggle: the key is sent only when
//! the tracked state says it will have the wanted effect. DND and forwarding are written as
//! settings (`dnd_mode`, `redirect_event`), which are absolute, not toggles.
//!
//! Where keys are ambiguous and the phone has CSTA over HTTP (`csta_path`), the per-call
//! operations go as ECMA-323 services naming the call by its `$csta_id` ([`crate::csta`]):
//! drop, answer, hold, retrieve, swap hold, blind transfer, complete transfer and redirect.
//! Keys stay the route wherever they are unambiguous.

use crate::action::percent_encode;
use crate::calls::CallTracker;
use crate::csta::{Connection, Service};
use tapir_core::{
    AddressStatus, CallId, CallState, DriverError, ErrorKind, ForwardMode, Forwarding, Request,
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

/// The requests (paths with query) and the effect of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// GET requests, sent in order, one at a time.
    pub steps: Vec<String>,
    /// A CSTA service to POST to `csta_path` after the steps: its name (the answer must be
    /// `{name}Response`) and the XML.
    pub csta: Option<(&'static str, String)>,
    /// What else happens.
    pub effect: Effect,
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
    /// The key that redirects a ringing call (configured `redirect_key`), if any.
    pub redirect_key: Option<String>,
    /// The phone's CSTA device (`user@host` of identity 1) when CSTA over HTTP is configured
    /// (`csta_path`) and the phone has not shown that it lacks call control.
    pub csta_device: Option<String>,
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

/// Plans `request` against the calls the phone has now.
///
/// # Errors
/// `OperationUnavailable` where keys would be ambiguous or the phone cannot do it;
/// `InvalidCallHandle`/`InvalidCallState`/`InvalidAddress` for bad requests.
pub fn plan(
    request: &Request,
    calls: &CallTracker,
    facts: &PhoneFacts,
) -> Result<Plan, DriverError> {
    let live: Vec<_> = calls.live().collect();
    let only = |id: CallId| live.len() == 1 && live[0].id == id;
    let only_active = |id: CallId| {
        let active: Vec<_> = live
            .iter()
            .filter(|c| {
                !matches!(
                    c.state,
                    CallState::OnHold | CallState::OnHoldPendingTransfer
                )
            })
            .collect();
        active.len() == 1 && active[0].id == id
    };
    let state_of = |id: CallId| {
        calls.get(id).map(|c| c.state).ok_or_else(|| {
            DriverError::new(
                ErrorKind::InvalidCallHandle,
                format!("the phone has no call {id}"),
            )
        })
    };
    let steps = |s: Vec<String>, effect| {
        Ok(Plan {
            steps: s,
            csta: None,
            effect,
        })
    };
    // The CSTA name of a call, when the phone has CSTA and the call a `$csta_id`.
    let conn = |id: CallId| -> Option<Connection<'_>> {
        let device = facts.csta_device.as_deref()?;
        let call = calls.get(id)?.csta.as_deref()?;
        Some(Connection { call, device })
    };
    let csta = |service: Option<Service<'_>>, op: &str, effect| match service {
        Some(service) => Ok(Plan {
            steps: Vec::new(),
            csta: Some((service.name(), service.to_xml())),
            effect,
        }),
        None => Err(ambiguous(op)),
    };
    let uses_keys = !matches!(
        request,
        Request::Forward { .. }
            | Request::SetDoNotDisturb { .. }
            | Request::QueryAddressStatus { .. }
    );
    if uses_keys && !facts.has_key_control() {
        return Err(DriverError::unavailable(format!(
            "{} has no HTTP remote control (snom D8xx)",
            facts.model.as_deref().unwrap_or("this model")
        )));
    }
    match request {
        Request::MakeCall {
            call,
            address,
            destination,
        } => match destination {
            Some(number) => {
                check_number(number)?;
                let mut path = format!("/command.htm?number={}", percent_encode(number));
                if let Some(uri) = facts.identities.get(address.0 as usize) {
                    path.push_str("&outgoing_uri=");
                    path.push_str(&percent_encode(uri));
                }
                steps(
                    vec![path],
                    Effect::MakeCall {
                        call: *call,
                        dialtone: false,
                    },
                )
            }
            None if live.is_empty() => steps(
                vec![keys(&["OFFHOOK"])],
                Effect::MakeCall {
                    call: *call,
                    dialtone: true,
                },
            ),
            None => Err(DriverError::unavailable(
                "dial tone can only be given while the phone has no call",
            )),
        },
        Request::Drop { call } => {
            let state = state_of(*call)?;
            if matches!(state, CallState::Disconnected(_)) {
                return steps(Vec::new(), Effect::DropLocal { call: *call });
            }
            if matches!(state, CallState::Dialtone(_))
                && calls.get(*call).is_some_and(|c| c.csta.is_none())
            {
                // A dial-tone call the host made: hang up the handset if it is the only one.
                let s = if live.is_empty() {
                    vec![keys(&["ONHOOK"])]
                } else {
                    Vec::new()
                };
                return steps(s, Effect::DropLocal { call: *call });
            }
            if only(*call) || only_active(*call) {
                steps(vec![keys(&["CANCEL"])], Effect::Drop { call: *call })
            } else {
                csta(
                    conn(*call).map(Service::Clear),
                    "drop",
                    Effect::Drop { call: *call },
                )
            }
        }
        Request::Answer { call } => {
            let state = state_of(*call)?;
            let ringing: Vec<_> = live
                .iter()
                .filter(|c| c.state == CallState::Offering)
                .collect();
            if ringing.len() != 1 || ringing[0].id != *call {
                if state != CallState::Offering {
                    return Err(DriverError::invalid_state(
                        "only a ringing call can be answered",
                    ));
                }
                return csta(conn(*call).map(Service::Answer), "answer", Effect::None);
            }
            let key = if live.len() == 1 { "OFFHOOK" } else { "ENTER" };
            steps(vec![keys(&[key])], Effect::None)
        }
        Request::Hold { call } => {
            if state_of(*call)? != CallState::Connected {
                return Err(DriverError::invalid_state(
                    "only a connected call can be held",
                ));
            }
            if !only_active(*call) {
                return csta(conn(*call).map(Service::Hold), "hold", Effect::None);
            }
            steps(vec![keys(&[facts.hold_key()])], Effect::None)
        }
        Request::Unhold { call } => {
            if !matches!(
                state_of(*call)?,
                CallState::OnHold | CallState::OnHoldPendingTransfer
            ) {
                return Err(DriverError::invalid_state("the call is not on hold"));
            }
            if !only(*call) {
                return csta(conn(*call).map(Service::Retrieve), "unhold", Effect::None);
            }
            steps(vec![keys(&[facts.hold_key()])], Effect::None)
        }
        Request::BlindTransfer { call, destination } => {
            check_number(destination)?;
            if state_of(*call)? != CallState::Connected {
                return Err(DriverError::invalid_state(
                    "only a connected call can be transferred",
                ));
            }
            if !only(*call) {
                let service = conn(*call).map(|active| Service::SingleStepTransfer {
                    active,
                    to: destination,
                });
                return csta(service, "blind transfer", Effect::None);
            }
            let mut k = vec!["TRANSFER"];
            k.extend(digit_keys(destination)?);
            k.push("ENTER");
            steps(vec![keys(&k)], Effect::None)
        }
        Request::SetupTransfer { call, consult } => {
            if state_of(*call)? != CallState::Connected || !only(*call) {
                return Err(ambiguous("setup transfer"));
            }
            steps(
                vec![keys(&[facts.hold_key()])],
                Effect::SetupTransfer {
                    held: *call,
                    consult: *consult,
                },
            )
        }
        Request::CompleteTransfer { call, consult } => {
            state_of(*call)?;
            state_of(*consult)?;
            let pair_ok = calls.transfer() == Some((*call, *consult))
                && live.len() == 2
                && live.iter().any(|c| {
                    c.id == *consult && c.state.is_established() | c.state.is_outgoing_setup()
                });
            if !pair_ok {
                let held = matches!(
                    state_of(*call)?,
                    CallState::OnHold | CallState::OnHoldPendingTransfer
                );
                let service = conn(*call)
                    .zip(conn(*consult))
                    .filter(|_| held)
                    .map(|(held, active)| Service::Transfer { held, active });
                return csta(service, "complete transfer", Effect::None);
            }
            steps(vec![keys(&["TRANSFER"])], Effect::None)
        }
        Request::SwapHold { active, held } => {
            if facts.csta_device.is_none() {
                return Err(DriverError::unavailable(
                    "swap hold needs CSTA (csta_path); the key interface cannot pick the held call",
                ));
            }
            if state_of(*active)? != CallState::Connected
                || !matches!(
                    state_of(*held)?,
                    CallState::OnHold | CallState::OnHoldPendingTransfer
                )
            {
                return Err(DriverError::invalid_state(
                    "swap hold needs one connected and one held call",
                ));
            }
            let service = conn(*held)
                .zip(conn(*active))
                .map(|(held, active)| Service::Alternate { held, active });
            csta(service, "swap hold", Effect::None)
        }
        Request::Redirect { call, destination } => {
            check_number(destination)?;
            let offering = state_of(*call)? == CallState::Offering;
            let deflect = || {
                conn(*call)
                    .filter(|_| offering)
                    .map(|call| Service::Deflect {
                        call,
                        to: destination,
                    })
            };
            let Some(key) = facts.redirect_key.as_deref() else {
                if let Some(service) = deflect() {
                    return csta(Some(service), "redirect", Effect::Drop { call: *call });
                }
                return Err(DriverError::unavailable(
                    "redirect needs CSTA or a configured redirect_key; snom documents no deflect key",
                ));
            };
            let ringing: Vec<_> = live
                .iter()
                .filter(|c| c.state == CallState::Offering)
                .collect();
            if !offering || ringing.len() != 1 || ringing[0].id != *call {
                return csta(deflect(), "redirect", Effect::Drop { call: *call });
            }
            let mut k = vec![key];
            k.extend(digit_keys(destination)?);
            k.push("ENTER");
            steps(vec![keys(&k)], Effect::Drop { call: *call })
        }
        Request::Dial { call, digits } => {
            check_number(digits)?;
            match state_of(*call)? {
                CallState::Dialtone(_) => steps(
                    vec![format!("/command.htm?number={}", percent_encode(digits))],
                    Effect::Dialing { call: *call },
                ),
                CallState::Connected if only_active(*call) => {
                    digit_keys(digits)?;
                    steps(
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
            steps(vec![path], Effect::Address(status))
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
            steps(
                vec![write_settings(&[("dnd_mode", value)])],
                Effect::Address(status),
            )
        }
        Request::QueryAddressStatus { .. } => steps(Vec::new(), Effect::Query),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{Event, Vars};
    use tapir_core::{AddressId, LineKey};

    fn tracker_with(events: &[(Event, &str)]) -> CallTracker {
        let mut t = CallTracker::default();
        let mut n = 0;
        let mut ids = move || {
            n += 1;
            CallId(n)
        };
        for (e, csta) in events {
            t.apply(
                &LineKey::new("L"),
                &mut ids,
                *e,
                &Vars::from_pairs([("csta", *csta)]),
            );
        }
        t
    }

    fn facts() -> PhoneFacts {
        PhoneFacts {
            identities: vec!["sip:100@pbx".into()],
            firmware_major: Some(10),
            model: Some("snomD785".into()),
            redirect_key: None,
            csta_device: None,
        }
    }

    #[test]
    fn csta_where_keys_are_ambiguous_and_keys_where_they_are_not() {
        let with_csta = PhoneFacts {
            csta_device: Some("100@pbx".into()),
            ..facts()
        };
        let two = tracker_with(&[
            (Event::Incoming, "a"),
            (Event::Connected, "a"),
            (Event::Incoming, "b"),
        ]);
        let p = plan(
            &Request::BlindTransfer {
                call: CallId(1),
                destination: "2".into(),
            },
            &two,
            &with_csta,
        )
        .expect("plans");
        assert!(p.steps.is_empty());
        let (name, xml) = p.csta.expect("a CSTA request");
        assert_eq!(name, "SingleStepTransferCall");
        assert!(
            xml.contains("<callID>a</callID><deviceID>100@pbx</deviceID>"),
            "{xml}"
        );
        // Drop of the ringing call: ClearConnection, and the drop effect.
        let p = plan(&Request::Drop { call: CallId(2) }, &two, &with_csta).expect("plans");
        assert_eq!(p.csta.map(|c| c.0), Some("ClearConnection"));
        assert_eq!(p.effect, Effect::Drop { call: CallId(2) });
        // The only ringing call is still answered with a key.
        let p = plan(&Request::Answer { call: CallId(2) }, &two, &with_csta).expect("plans");
        assert_eq!(p.steps, vec!["/command.htm?key=ENTER"]);
        assert!(p.csta.is_none());
        // Swap hold needs a held call.
        let err = plan(
            &Request::SwapHold {
                active: CallId(1),
                held: CallId(2),
            },
            &two,
            &with_csta,
        );
        assert_eq!(err.map_err(|e| e.kind), Err(ErrorKind::InvalidCallState));
        // Setup transfer has no CSTA route here: still refused.
        let err = plan(
            &Request::SetupTransfer {
                call: CallId(1),
                consult: CallId(9),
            },
            &two,
            &with_csta,
        );
        assert_eq!(
            err.map_err(|e| e.kind),
            Err(ErrorKind::OperationUnavailable)
        );
    }

    #[test]
    fn make_call_names_the_identity() {
        let t = CallTracker::default();
        let p = plan(
            &Request::MakeCall {
                call: CallId(9),
                address: AddressId(0),
                destination: Some("0301#".into()),
            },
            &t,
            &facts(),
        )
        .expect("plans");
        assert_eq!(
            p.steps,
            vec!["/command.htm?number=0301%23&outgoing_uri=sip%3A100%40pbx"]
        );
        assert_eq!(
            p.effect,
            Effect::MakeCall {
                call: CallId(9),
                dialtone: false
            }
        );
    }

    #[test]
    fn keys_only_when_unambiguous() {
        let one = tracker_with(&[(Event::Incoming, "a"), (Event::Connected, "a")]);
        let p = plan(&Request::Drop { call: CallId(1) }, &one, &facts()).expect("plans");
        assert_eq!(p.steps, vec!["/command.htm?key=CANCEL"]);
        let p = plan(&Request::Hold { call: CallId(1) }, &one, &facts()).expect("plans");
        assert_eq!(p.steps, vec!["/command.htm?key=F_HOLD"]);
        let old = PhoneFacts {
            firmware_major: Some(6),
            ..facts()
        };
        let p = plan(&Request::Hold { call: CallId(1) }, &one, &old).expect("plans");
        assert_eq!(p.steps, vec!["/command.htm?key=F_R"]);
        let p = plan(
            &Request::BlindTransfer {
                call: CallId(1),
                destination: "2*3".into(),
            },
            &one,
            &facts(),
        )
        .expect("plans");
        assert_eq!(p.steps, vec!["/command.htm?key=TRANSFER;2;%2A;3;ENTER"]);

        let two = tracker_with(&[
            (Event::Incoming, "a"),
            (Event::Connected, "a"),
            (Event::Incoming, "b"),
        ]);
        let err = plan(
            &Request::BlindTransfer {
                call: CallId(1),
                destination: "2".into(),
            },
            &two,
            &facts(),
        );
        assert_eq!(
            err.map_err(|e| e.kind),
            Err(ErrorKind::OperationUnavailable)
        );
        let p = plan(&Request::Answer { call: CallId(2) }, &two, &facts()).expect("plans");
        assert_eq!(p.steps, vec!["/command.htm?key=ENTER"]);
        let err = plan(
            &Request::SwapHold {
                active: CallId(1),
                held: CallId(2),
            },
            &two,
            &facts(),
        );
        assert_eq!(
            err.map_err(|e| e.kind),
            Err(ErrorKind::OperationUnavailable)
        );
    }

    #[test]
    fn d8xx_has_no_key_control() {
        let t = CallTracker::default();
        let d865 = PhoneFacts {
            model: Some("snomD865".into()),
            ..facts()
        };
        let err = plan(
            &Request::MakeCall {
                call: CallId(1),
                address: AddressId(0),
                destination: Some("1".into()),
            },
            &t,
            &d865,
        );
        assert_eq!(
            err.map_err(|e| e.kind),
            Err(ErrorKind::OperationUnavailable)
        );
        assert!(plan(
            &Request::SetDoNotDisturb {
                address: AddressId(0),
                enabled: true
            },
            &t,
            &d865
        )
        .is_ok());
    }

    #[test]
    fn settings_are_absolute() {
        let t = CallTracker::default();
        let p = plan(
            &Request::SetDoNotDisturb {
                address: AddressId(0),
                enabled: true,
            },
            &t,
            &facts(),
        )
        .expect("plans");
        assert_eq!(
            p.steps,
            vec!["/dummy.htm?settings=save&store_settings=save&dnd_mode=on"]
        );
        let p = plan(
            &Request::Forward {
                address: AddressId(0),
                forward: Some(Forwarding {
                    mode: ForwardMode::Unconditional,
                    destination: "55".into(),
                }),
            },
            &t,
            &facts(),
        )
        .expect("plans");
        assert_eq!(p.steps, vec!["/dummy.htm?settings=save&store_settings=save&redirect_event=all&redirect_number=55"]);
        let err = plan(
            &Request::Forward {
                address: AddressId(0),
                forward: Some(Forwarding {
                    mode: ForwardMode::UnconditionalInternal,
                    destination: "55".into(),
                }),
            },
            &t,
            &facts(),
        );
        assert_eq!(
            err.map_err(|e| e.kind),
            Err(ErrorKind::OperationUnavailable)
        );
    }
}
