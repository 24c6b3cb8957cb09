//! Tests of the route table: which route each operation takes in which situation.

use super::*;
use crate::action::{Event, Vars};
use crate::calls::CallTracker;
use tapir_core::{AddressId, LineKey, Request};

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
        identities: vec!["sip:100@pbx".into(), "sip:101@pbx".into()],
        firmware_major: Some(10),
        model: Some("snomD785".into()),
        redirect_key: None,
        csta: None,
    }
}

fn with(via: CstaVia) -> PhoneFacts {
    PhoneFacts {
        csta: Some(CstaRoute {
            device: "100@pbx".into(),
            via,
        }),
        ..facts()
    }
}

fn kind(result: Result<Plan, DriverError>) -> Result<Plan, ErrorKind> {
    result.map_err(|e| e.kind)
}

fn two_calls() -> CallTracker {
    tracker_with(&[
        (Event::Incoming, "a"),
        (Event::Connected, "a"),
        (Event::Incoming, "b"),
    ])
}

#[test]
fn csta_over_http_where_keys_are_ambiguous_and_keys_where_they_are_not() {
    let http = with(CstaVia::Http);
    let two = two_calls();
    let p = plan(
        &Request::BlindTransfer {
            call: CallId(1),
            destination: "2".into(),
        },
        &two,
        &http,
    )
    .expect("plans");
    assert!(p.steps.is_empty());
    let c = p.csta.expect("a CSTA request");
    assert_eq!((c.name, c.via), ("SingleStepTransferCall", CstaVia::Http));
    assert!(
        c.xml
            .contains("<callID>a</callID><deviceID>100@pbx</deviceID>"),
        "{}",
        c.xml
    );
    // Drop of the ringing call: ClearConnection, and the drop effect.
    let p = plan(&Request::Drop { call: CallId(2) }, &two, &http).expect("plans");
    assert_eq!(p.csta.map(|c| c.name), Some("ClearConnection"));
    assert_eq!(p.effect, Effect::Drop { call: CallId(2) });
    // The only ringing call is still answered with a key.
    let p = plan(&Request::Answer { call: CallId(2) }, &two, &http).expect("plans");
    assert_eq!(p.steps, vec!["/command.htm?key=ENTER"]);
    assert!(p.csta.is_none());
    // Swap hold needs a held call.
    let err = plan(
        &Request::SwapHold {
            active: CallId(1),
            held: CallId(2),
        },
        &two,
        &http,
    );
    assert_eq!(kind(err).err(), Some(ErrorKind::InvalidCallState));
}

#[test]
fn with_a_uacsta_session_every_per_call_operation_names_the_call() {
    let sip = with(CstaVia::Sip);
    let one = tracker_with(&[(Event::Incoming, "a")]);
    let p = plan(&Request::Answer { call: CallId(1) }, &one, &sip).expect("plans");
    let c = p.csta.expect("CSTA");
    assert_eq!((c.name, c.via), ("AnswerCall", CstaVia::Sip));
    assert!(p.steps.is_empty(), "no key is pressed");
    let p = plan(
        &Request::Redirect {
            call: CallId(1),
            destination: "300".into(),
        },
        &one,
        &sip,
    )
    .expect("plans");
    assert_eq!(p.csta.map(|c| c.name), Some("DeflectCall"));
    let connected = tracker_with(&[(Event::Incoming, "a"), (Event::Connected, "a")]);
    for (request, name) in [
        (Request::Hold { call: CallId(1) }, "HoldCall"),
        (Request::Drop { call: CallId(1) }, "ClearConnection"),
        (
            Request::SetupTransfer {
                call: CallId(1),
                consult: CallId(9),
            },
            "HoldCall",
        ),
    ] {
        let p = plan(&request, &connected, &sip).expect("plans");
        assert_eq!(p.csta.map(|c| c.name), Some(name), "{request:?}");
    }
    // A call placed by the host and not yet reported has no CSTA id: keys, as before.
    let mut t = CallTracker::default();
    t.start_make(&LineKey::new("L"), CallId(5), AddressId(0), false);
    let p = plan(&Request::Drop { call: CallId(5) }, &t, &sip).expect("plans");
    assert_eq!(p.steps, vec!["/command.htm?key=CANCEL"]);
}

#[test]
fn make_call_names_the_identity() {
    let t = CallTracker::default();
    let p = plan(
        &Request::MakeCall {
            call: CallId(9),
            address: AddressId(1),
            destination: Some("0301#".into()),
        },
        &t,
        &facts(),
    )
    .expect("plans");
    assert_eq!(
        p.steps,
        vec!["/command.htm?number=0301%23&outgoing_uri=sip%3A101%40pbx"]
    );
    assert_eq!(
        p.effect,
        Effect::MakeCall {
            call: CallId(9),
            address: AddressId(1),
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

    let two = two_calls();
    let err = plan(
        &Request::BlindTransfer {
            call: CallId(1),
            destination: "2".into(),
        },
        &two,
        &facts(),
    );
    assert_eq!(kind(err).err(), Some(ErrorKind::OperationUnavailable));
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
    assert_eq!(kind(err).err(), Some(ErrorKind::OperationUnavailable));
}

#[test]
fn complete_transfer_of_a_held_and_a_connected_call_over_keys() {
    // No SetupTransfer by the host: a call held on the phone, a second one connected.
    let t = tracker_with(&[
        (Event::Incoming, "a"),
        (Event::Connected, "a"),
        (Event::Hold, "a"),
        (Event::Outgoing, "b"),
        (Event::Connected, "b"),
    ]);
    let p = plan(
        &Request::CompleteTransfer {
            call: CallId(1),
            consult: CallId(2),
        },
        &t,
        &facts(),
    )
    .expect("plans");
    assert_eq!(p.steps, vec!["/command.htm?key=TRANSFER"]);
    // The connected call is not the held one: refused.
    let err = plan(
        &Request::CompleteTransfer {
            call: CallId(2),
            consult: CallId(1),
        },
        &t,
        &facts(),
    );
    assert_eq!(kind(err).err(), Some(ErrorKind::InvalidCallState));
}

#[test]
fn dropping_a_call_the_phone_already_ended_sends_nothing() {
    let t = CallTracker::default();
    let p = plan(&Request::Drop { call: CallId(42) }, &t, &facts()).expect("plans");
    assert!(p.steps.is_empty() && p.csta.is_none());
    assert_eq!(p.effect, Effect::DropLocal { call: CallId(42) });
}

#[test]
fn redirect_never_by_a_key_that_could_answer() {
    let one = tracker_with(&[(Event::Incoming, "a")]);
    let redirect = Request::Redirect {
        call: CallId(1),
        destination: "99".into(),
    };
    let err = plan(&redirect, &one, &facts());
    assert_eq!(kind(err).err(), Some(ErrorKind::OperationUnavailable));
    let deflect = PhoneFacts {
        redirect_key: Some("F_DEFLECT".into()),
        ..facts()
    };
    let p = plan(&redirect, &one, &deflect).expect("plans");
    assert_eq!(p.steps, vec!["/command.htm?key=F_DEFLECT;9;9;ENTER"]);
}

#[test]
fn d8xx_has_no_key_control_but_csta_drives_it() {
    let t = CallTracker::default();
    let d865 = PhoneFacts {
        model: Some("snomD865".into()),
        ..facts()
    };
    let make = Request::MakeCall {
        call: CallId(1),
        address: AddressId(0),
        destination: Some("1".into()),
    };
    let err = plan(&make, &t, &d865);
    assert_eq!(kind(err).err(), Some(ErrorKind::OperationUnavailable));
    assert!(plan(
        &Request::SetDoNotDisturb {
            address: AddressId(0),
            enabled: true
        },
        &t,
        &d865
    )
    .is_ok());
    let d865_csta = PhoneFacts {
        csta: Some(CstaRoute {
            device: "100@pbx".into(),
            via: CstaVia::Sip,
        }),
        ..d865
    };
    let p = plan(&make, &t, &d865_csta).expect("plans");
    let c = p.csta.expect("CSTA MakeCall");
    assert_eq!(c.name, "MakeCall");
    assert!(c.xml.contains("<callingDevice>sip:100@pbx</callingDevice>"));
    let one = tracker_with(&[(Event::Incoming, "a")]);
    let p = plan(&Request::Answer { call: CallId(1) }, &one, &d865_csta).expect("plans");
    assert_eq!(p.csta.map(|c| c.name), Some("AnswerCall"));
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
    assert_eq!(
        p.steps,
        vec!["/dummy.htm?settings=save&store_settings=save&redirect_event=all&redirect_number=55"]
    );
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
    assert_eq!(kind(err).err(), Some(ErrorKind::OperationUnavailable));
}
