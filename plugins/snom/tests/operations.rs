//! Every operation against a simulated phone, from the TAPI side and from the phone side.

mod common;

use common::*;
use std::time::Duration;
use tapir_core::{AddressId, CallState, DisconnectMode, ErrorKind, ForwardMode, Forwarding};
use tapir_snom_sim::SimConfig;
use tapir_tsp::{Action, RequestResult, TspEvent};

const MAC: &str = "000413000011";

fn setup(
    extra: &str,
    sim: SimConfig,
) -> (
    Harness,
    std::sync::Arc<tapir_snom_sim::SimPhone>,
    tapir_core::LineId,
) {
    let sim_rt = tapir_snom_sim::Sim::new(2).expect("sim");
    let phone = sim_rt.phone(sim).expect("phone");
    let h = Harness::start_with(&one_phone(phone.addr(), MAC, extra), sim_rt);
    h.configured(MAC);
    let line = h.open(MAC);
    (h, phone, line)
}

#[test]
fn make_call_connect_and_drop() {
    let (mut h, phone, line) = setup("", sim_config(MAC));
    let (call, result) = h
        .run(Action::MakeCall {
            line,
            address: AddressId(0),
            destination: Some("200".into()),
        })
        .expect("accepted");
    assert!(ok(&result), "{result:?}");
    let call = call.expect("call id");
    h.expect_state(call, CallState::Ringback);
    let csta = phone.calls()[0].csta;
    assert!(phone
        .requests()
        .iter()
        .any(|r| r.contains("number=200") && r.contains("outgoing_uri=sip%3A100%40pbx.local")));
    phone.remote_answer(csta);
    h.expect_state(call, CallState::Connected);
    let (_, result) = h.run(Action::Drop { call }).expect("accepted");
    assert!(ok(&result));
    h.expect_state(call, CallState::Idle);
    assert!(phone.calls().is_empty());
    assert_eq!(phone.parallel_violations(), 0);
}

#[test]
fn incoming_answer_hold_unhold_dtmf_and_far_end_hangup() {
    let (mut h, phone, _line) = setup("", sim_config(MAC));
    let call = h.incoming(&phone, "300");
    let (_, r) = h.run(Action::Answer { call }).expect("accepted");
    assert!(ok(&r));
    h.expect_state(call, CallState::Connected);
    let (_, r) = h.run(Action::Hold { call }).expect("accepted");
    assert!(ok(&r));
    h.expect_state(call, CallState::OnHold);
    let (_, r) = h.run(Action::Unhold { call }).expect("accepted");
    assert!(ok(&r));
    h.expect_state(call, CallState::Connected);
    let (_, r) = h
        .run(Action::Dial {
            call,
            digits: "12#".into(),
        })
        .expect("accepted");
    assert!(ok(&r));
    assert_eq!(phone.dtmf(), vec!["12#".to_owned()]);
    let csta = phone.calls()[0].csta;
    phone.remote_hangup(csta);
    h.ended(call, DisconnectMode::Normal);
}

#[test]
fn rejected_call_fires_disconnected_twice_but_ends_once() {
    let (mut h, phone, _line) = setup("", sim_config(MAC));
    let call = h.incoming(&phone, "301");
    let (_, r) = h.run(Action::Drop { call }).expect("accepted");
    assert!(ok(&r));
    h.expect_state(call, CallState::Idle);
    // Wait for the phone to have fired both disconnected and the onhook without call data.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while phone
        .fired()
        .iter()
        .filter(|u| u.contains("/disconnected?"))
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the phone did not fire twice"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let later = h.drain(Duration::from_millis(300));
    assert!(
        !later
            .iter()
            .any(|e| matches!(e, TspEvent::CallState { .. } | TspEvent::NewCall { .. })),
        "no further call events: {later:?}"
    );
}

#[test]
fn blind_transfer() {
    let (mut h, phone, _line) = setup("", sim_config(MAC));
    let call = h.incoming(&phone, "302");
    h.run(Action::Answer { call }).expect("accepted");
    h.expect_state(call, CallState::Connected);
    let (_, r) = h
        .run(Action::BlindTransfer {
            call,
            destination: "400".into(),
        })
        .expect("accepted");
    assert!(ok(&r));
    h.expect_state(call, CallState::Idle);
    assert!(phone
        .requests()
        .iter()
        .any(|r| r.contains("key=TRANSFER;4;0;0;ENTER")));
    assert!(phone.calls().is_empty());
}

#[test]
fn setup_and_complete_transfer_with_dial_tone_dialling() {
    let (mut h, phone, _line) = setup("", sim_config(MAC));
    let call = h.incoming(&phone, "303");
    h.run(Action::Answer { call }).expect("accepted");
    h.expect_state(call, CallState::Connected);
    let (consult, r) = h.run(Action::SetupTransfer { call }).expect("accepted");
    assert!(ok(&r), "{r:?}");
    let consult = consult.expect("consultation call");
    h.expect_state(call, CallState::OnHoldPendingTransfer);
    let (_, r) = h
        .run(Action::Dial {
            call: consult,
            digits: "500".into(),
        })
        .expect("accepted");
    assert!(ok(&r), "{r:?}");
    h.expect_state(consult, CallState::Ringback);
    let c = phone
        .calls()
        .into_iter()
        .find(|c| c.remote == "500")
        .expect("consult on phone");
    phone.remote_answer(c.csta);
    h.expect_state(consult, CallState::Connected);
    let (_, r) = h
        .run(Action::CompleteTransfer { call, consult })
        .expect("accepted");
    assert!(ok(&r), "{r:?}");
    h.expect_state(call, CallState::Idle);
    assert!(phone.calls().is_empty());
    let states: Vec<_> = h.drain(Duration::from_millis(300));
    assert!(!states.iter().any(|e| matches!(
        e,
        TspEvent::CallState {
            state: CallState::Connected,
            ..
        }
    )));
}

#[test]
fn make_call_in_dial_tone_mode() {
    let (mut h, phone, line) = setup("", sim_config(MAC));
    let (call, r) = h
        .run(Action::MakeCall {
            line,
            address: AddressId(0),
            destination: None,
        })
        .expect("accepted");
    assert!(ok(&r), "{r:?}");
    let call = call.expect("call");
    h.expect_state(call, CallState::Dialtone(tapir_core::DialToneMode::Normal));
    let (_, r) = h
        .run(Action::Dial {
            call,
            digits: "201".into(),
        })
        .expect("accepted");
    assert!(ok(&r));
    h.expect_state(call, CallState::Ringback);
    let csta = phone.calls()[0].csta;
    phone.remote_answer(csta);
    h.expect_state(call, CallState::Connected);
}

#[test]
fn ambiguous_operations_are_unavailable_not_guessed() {
    let (mut h, phone, _line) = setup("", sim_config(MAC));
    let first = h.incoming(&phone, "304");
    h.run(Action::Answer { call: first }).expect("accepted");
    h.expect_state(first, CallState::Connected);
    let second = h.incoming(&phone, "305");
    let before = phone.requests().len();
    let (_, r) = h
        .run(Action::BlindTransfer {
            call: first,
            destination: "1".into(),
        })
        .expect("accepted");
    assert!(
        matches!(r, RequestResult::Err(ref e) if e.kind == ErrorKind::OperationUnavailable),
        "{r:?}"
    );
    let refused = h.tsp.submit(Action::Redirect {
        call: second,
        destination: "9".into(),
    });
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.kind),
        Err(ErrorKind::OperationUnavailable)
    );
    assert_eq!(
        phone.requests().len(),
        before,
        "nothing was sent to the phone"
    );
    // The waiting call can be answered: it is the only ringing one.
    let (_, r) = h.run(Action::Answer { call: second }).expect("accepted");
    assert!(ok(&r));
    h.expect_state(first, CallState::OnHold);
    h.expect_state(second, CallState::Connected);
}

#[test]
fn dnd_forwarding_and_address_status() {
    let (mut h, phone, line) = setup("", sim_config(MAC));
    let (_, r) = h
        .run(Action::SetDoNotDisturb {
            line,
            address: AddressId(0),
            enabled: true,
        })
        .expect("accepted");
    assert!(ok(&r));
    h.expect(
        "dnd on",
        |e| matches!(e, TspEvent::AddressState { status, .. } if status.do_not_disturb),
    );
    assert_eq!(phone.setting("dnd_mode").as_deref(), Some("on"));
    let fwd = Forwarding {
        mode: ForwardMode::Unconditional,
        destination: "600".into(),
    };
    let (_, r) = h
        .run(Action::Forward {
            line,
            address: AddressId(0),
            forward: Some(fwd.clone()),
        })
        .expect("accepted");
    assert!(ok(&r));
    assert_eq!(phone.setting("redirect_event").as_deref(), Some("all"));
    assert_eq!(phone.setting("redirect_number").as_deref(), Some("600"));
    let internal = Forwarding {
        mode: ForwardMode::UnconditionalInternal,
        destination: "600".into(),
    };
    let (_, r) = h
        .run(Action::Forward {
            line,
            address: AddressId(0),
            forward: Some(internal),
        })
        .expect("accepted");
    assert!(
        matches!(r, RequestResult::Err(ref e) if e.kind == ErrorKind::OperationUnavailable),
        "{r:?}"
    );
    // Changed on the phone itself: the query reads it back.
    phone.set_setting("dnd_mode", "off");
    let (_, r) = h
        .run(Action::QueryAddressStatus {
            line,
            address: AddressId(0),
        })
        .expect("accepted");
    match r {
        RequestResult::Ok(tapir_core::Completion::AddressStatus(s)) => {
            assert!(!s.do_not_disturb);
            assert_eq!(s.forwarding, vec![fwd]);
        }
        other => panic!("{other:?}"),
    }
    let (_, r) = h
        .run(Action::Forward {
            line,
            address: AddressId(0),
            forward: None,
        })
        .expect("accepted");
    assert!(ok(&r));
    assert_eq!(phone.setting("redirect_event").as_deref(), Some("none"));
    assert_eq!(phone.parallel_violations(), 0);
}

#[test]
fn calls_placed_on_the_phone_itself_appear() {
    let (mut h, phone, _line) = setup("", sim_config(MAC));
    // Typed on the phone: off-hook then a number.
    let addr = phone.addr();
    let status =
        tapir_snom_sim::Sim::new(1)
            .expect("rt")
            .handle()
            .block_on(tapir_snom_sim::fire::get(
                &format!("http://{addr}/command.htm?number=777"),
                Duration::from_secs(2),
            ));
    assert_eq!(status, Some(200));
    let ev = h.expect("new outgoing call", |e| {
        matches!(e, TspEvent::NewCall { .. })
    });
    let TspEvent::NewCall { call, info, .. } = ev else {
        unreachable!()
    };
    assert_eq!(info.direction, tapir_core::CallDirection::Outgoing);
    h.expect_state(call, CallState::Ringback);
}

#[test]
fn redirect_only_with_a_configured_key() {
    let (mut h, phone, _line) = setup(r#", "redirect_key": "F_DEFLECT""#, sim_config(MAC));
    let call = h.incoming(&phone, "306");
    let (_, r) = h
        .run(Action::Redirect {
            call,
            destination: "990".into(),
        })
        .expect("accepted");
    assert!(ok(&r), "{r:?}");
    h.expect_state(call, CallState::Idle);
    assert_eq!(phone.redirected(), vec!["990".to_owned()]);
    assert!(phone.calls().is_empty());
}

#[test]
fn many_calls_in_a_row_on_one_line_with_failures_mixed_in() {
    use tapir_snom_sim::Outcome;
    let (mut h, phone, line) = setup("", sim_config(MAC));
    let ms = Duration::from_millis;
    phone.script("2000", Outcome::Answer(ms(20)));
    phone.script("2001", Outcome::Busy(ms(20)));
    phone.script("2002", Outcome::Decline(ms(20)));
    phone.script("2003", Outcome::NoAnswer(ms(100)));
    phone.script("2004", Outcome::Unreachable(ms(20)));
    // More calls than the line carries at once (4): each ends and frees its place.
    for round in 0..30 {
        let call = h.make_call(line, &format!("200{}", round % 5));
        if round % 5 == 0 {
            h.expect_state(call, CallState::Connected);
            let (_, r) = h.run(Action::Drop { call }).expect("accepted");
            assert!(ok(&r));
            h.expect_state(call, CallState::Idle);
        } else {
            // Without uaCSTA the phone's Action URLs do not say why an attempt failed, and
            // the cause says so.
            let cause = h.cause_of(call);
            assert!(cause.contains("Action URLs do not say why"), "{cause}");
            h.ended(call, DisconnectMode::Unavailable);
        }
    }
    assert!(phone.calls().is_empty());
    assert!(h.tsp.calls().iter().all(|c| c.state.is_idle()));
    assert_eq!(phone.parallel_violations(), 0);
}

#[test]
fn a_refused_or_unreachable_dial_command_fails_make_call_and_says_why() {
    let (mut h, phone, line) = setup("", sim_config(MAC));
    let make = |h: &mut Harness, number: Option<&str>| {
        h.run(Action::MakeCall {
            line,
            address: AddressId(0),
            destination: number.map(str::to_owned),
        })
        .expect("accepted")
    };
    // The phone refuses the command: MakeCall fails with its status, the call (shown Dialing)
    // says why and is gone; the line takes the next call.
    phone.refuse_commands(Some(500));
    let (call, r) = make(&mut h, Some("200"));
    let call = call.expect("a call id");
    assert!(
        matches!(&r, RequestResult::Err(e) if e.detail.contains("answered 500")),
        "{r:?}"
    );
    assert_eq!(h.cause_of(call), "the phone answered 500 to the command");
    h.expect_state(call, CallState::Idle);
    assert!(h.tsp.call(call).is_none());
    // Digits refused on a dial-tone call: the call is back at dial tone, and can be dialled.
    phone.refuse_commands(None);
    let (call, r) = make(&mut h, None);
    assert!(ok(&r), "{r:?}");
    let call = call.expect("a call id");
    h.expect_state(call, CallState::Dialtone(tapir_core::DialToneMode::Normal));
    phone.refuse_commands(Some(500));
    let (_, r) = h
        .run(Action::Dial {
            call,
            digits: "201".into(),
        })
        .expect("accepted");
    assert!(matches!(r, RequestResult::Err(_)), "{r:?}");
    h.expect_state(call, CallState::Dialing);
    h.expect_state(call, CallState::Dialtone(tapir_core::DialToneMode::Normal));
    phone.refuse_commands(None);
    h.done(Action::Dial {
        call,
        digits: "201".into(),
    });
    h.expect_state(call, CallState::Ringback);
    h.done(Action::Drop { call });
    h.expect_state(call, CallState::Idle);
    // The phone cannot be reached: MakeCall fails, the cause says so, nothing is left.
    phone.go_offline();
    let (call, r) = make(&mut h, Some("202"));
    let call = call.expect("a call id");
    assert!(
        matches!(&r, RequestResult::Err(e) if e.kind == ErrorKind::Disconnected),
        "{r:?}"
    );
    let cause = h.cause_of(call);
    assert!(cause.starts_with("cannot reach the phone: "), "{cause}");
    h.expect_state(call, CallState::Idle);
    assert!(h.tsp.call(call).is_none());
    assert!(h.tsp.calls().iter().all(|c| c.state.is_idle()));
    assert_eq!(phone.parallel_violations(), 0);
}
