//! `sip-refer` and `sip-reverse` against SIPp playing the user's phone or the callee, on
//! 127.0.0.1. Each test checks the states and outcome tapir reports AND that SIPp completed
//! its scenario (exit 0), which proves it saw the messages it expects in that order.
//!
//! The failed-call rule: MakeCall completes Ok once the first INVITE is out; a failure after
//! that is `Disconnected` with its mode and the SIP status and reason in the call's `cause`,
//! and the driver holds nothing for the call afterwards.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use tapir_core::*;

const T: Duration = Duration::from_secs(20);

fn line(port: u16, extra: serde_json::Value) -> serde_json::Value {
    let mut l = json!({
        "key": "alice",
        "domain": format!("127.0.0.1:{port}"),
        "user": "alice",
        "password": "secret",
        "bind": "127.0.0.1:0",
    });
    if let (Some(obj), Some(more)) = (l.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            obj.insert(k.clone(), v.clone());
        }
    }
    json!({ "lines": [l] })
}

fn err_text(o: &Outcome) -> String {
    match o {
        Ok(_) => "ok".into(),
        Err(e) => e.detail.clone(),
    }
}

/// Checks the rule for a call that failed after it was placed: MakeCall completed Ok (once),
/// the call ended in `end`, and the driver forgot it (a Drop is refused as an unknown call).
/// Returns the cause the driver gave in the call's info.
fn failed_with(
    driver: &dyn PhoneDriver,
    rec: &Recorder,
    id: RequestId,
    call: u64,
    end: CallState,
) -> String {
    let outcome = rec.wait_complete(id, T);
    assert_eq!(outcome, Ok(Completion::Done), "{}", err_text(&outcome));
    rec.wait_state(CallId(call), end, T);
    let states = rec.states(CallId(call));
    assert_eq!(states.first(), Some(&CallState::Dialing), "{states:?}");
    assert_eq!(
        states.last(),
        Some(&end),
        "nothing after {end:?}: {states:?}"
    );
    let gone = submit(driver, "alice", Request::Drop { call: CallId(call) });
    assert_eq!(
        gone.map_err(|e| e.kind),
        Err(ErrorKind::InvalidCallHandle),
        "a Disconnected call holds nothing in the driver"
    );
    assert_eq!(rec.completions_of(id), 1);
    rec.info(CallId(call))
        .and_then(|i| i.cause)
        .unwrap_or_default()
}

#[test]
fn refer_success_follows_sipfrag_and_keeps_plus_star_hash() {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "phone_ok", false, 1, &[]);
    let rec = Recorder::new();
    let cfg = line(
        phone.port(),
        json!({"auto_answer": true, "auto_answer_header": "call_info"}),
    );
    let driver = build("sip-refer", &cfg, rec.clone());
    let lines = rec.lines();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].caps.operations.contains(Operation::MakeCall));
    assert!(!lines[0].caps.operations.contains(Operation::Hold));
    let id = make_call(driver.as_ref(), "alice", 1, "+49 30 123*7#");
    let outcome = rec.wait_complete(id, T);
    assert!(outcome.is_ok(), "{}", err_text(&outcome));
    rec.wait_state(CallId(1), CallState::Idle, T);
    phone.assert_passed(T);
    assert_eq!(
        rec.states(CallId(1)),
        vec![
            CallState::Dialing,
            CallState::Ringback,
            CallState::Proceeding,
            CallState::Proceeding,
            CallState::Ringback,
            CallState::Connected,
            CallState::Idle
        ]
    );
    assert_eq!(rec.completions_of(id), 1);
    driver.shutdown();
}

#[test]
fn refer_phone_busy_is_busy_then_disconnected_and_frees_the_line() {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "phone_busy", false, 1, &[]);
    let rec = Recorder::new();
    let driver = build("sip-refer", &line(phone.port(), json!({})), rec.clone());
    let id = make_call(driver.as_ref(), "alice", 2, "100");
    let end = CallState::Disconnected(DisconnectMode::Busy);
    let text = failed_with(driver.as_ref(), &rec, id, 2, end);
    assert!(
        text.contains("user's phone") && text.contains("486 Busy Here"),
        "{text}"
    );
    assert!(rec
        .states(CallId(2))
        .contains(&CallState::Busy(BusyMode::Station)));
    phone.assert_passed(T);
    // The line (max_calls 1) takes the next call at once; no Drop was needed.
    let next = submit(
        driver.as_ref(),
        "alice",
        Request::MakeCall {
            call: CallId(102),
            address: AddressId(0),
            destination: Some("101".into()),
        },
    );
    assert!(next.is_ok(), "{next:?}");
    driver.shutdown();
}

fn refer_failure(scenario: &str, mode: DisconnectMode, code: &str) {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, scenario, false, 1, &[]);
    let rec = Recorder::new();
    let driver = build("sip-refer", &line(phone.port(), json!({})), rec.clone());
    let id = make_call(driver.as_ref(), "alice", 3, "200");
    let text = failed_with(driver.as_ref(), &rec, id, 3, CallState::Disconnected(mode));
    assert!(
        text.contains("the call to sip:200@") && text.contains(code),
        "{text}"
    );
    phone.assert_passed(T); // includes our BYE
    assert!(!rec.states(CallId(3)).contains(&CallState::Connected));
    driver.shutdown();
}

#[test]
fn refer_callee_busy_from_sipfrag() {
    refer_failure("refer_busy", DisconnectMode::Busy, "486 Busy Here");
}

#[test]
fn refer_callee_declined_from_sipfrag() {
    refer_failure("refer_decline", DisconnectMode::Reject, "603 Decline");
}

#[test]
fn refer_callee_not_found_from_sipfrag() {
    refer_failure(
        "refer_notfound",
        DisconnectMode::BadAddress,
        "404 Not Found",
    );
}

#[test]
fn refer_phone_not_answering_is_cancelled_after_ring_timeout() {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "phone_noanswer", false, 1, &[]);
    let rec = Recorder::new();
    let driver = build(
        "sip-refer",
        &line(phone.port(), json!({"ring_timeout_secs": 1})),
        rec.clone(),
    );
    let id = make_call(driver.as_ref(), "alice", 4, "300");
    let end = CallState::Disconnected(DisconnectMode::NoAnswer);
    let text = failed_with(driver.as_ref(), &rec, id, 4, end);
    assert!(text.contains("did not answer within 1 s"), "{text}");
    phone.assert_passed(T); // saw our CANCEL, sent 487, got the ACK
    driver.shutdown();
}

#[test]
fn drop_while_ringing_sends_cancel() {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "phone_noanswer", false, 1, &[]);
    let rec = Recorder::new();
    let driver = build("sip-refer", &line(phone.port(), json!({})), rec.clone());
    let id = make_call(driver.as_ref(), "alice", 5, "300");
    rec.wait_state(CallId(5), CallState::Ringback, T);
    let d = drop_call(driver.as_ref(), "alice", 5);
    assert!(rec.wait_complete(d, T).is_ok());
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done), "placed");
    rec.wait_state(CallId(5), CallState::Idle, T);
    assert_eq!(rec.completions_of(id), 1);
    phone.assert_passed(T);
    driver.shutdown();
}

#[test]
fn missing_final_notify_times_out_with_bye() {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "refer_no_final", false, 1, &[]);
    let rec = Recorder::new();
    let driver = build(
        "sip-refer",
        &line(phone.port(), json!({"notify_timeout_secs": 2})),
        rec.clone(),
    );
    let id = make_call(driver.as_ref(), "alice", 6, "400");
    let end = CallState::Disconnected(DisconnectMode::Unreachable);
    let text = failed_with(driver.as_ref(), &rec, id, 6, end);
    assert!(
        text.contains("no final result")
            && text.contains("within 2 s")
            && text.contains("100 Trying"),
        "{text}"
    );
    phone.assert_passed(T);
    driver.shutdown();
}

#[test]
fn refer_sub_false_counts_as_accepted() {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "refer_nosub", false, 1, &[]);
    let rec = Recorder::new();
    let driver = build("sip-refer", &line(phone.port(), json!({})), rec.clone());
    let id = make_call(driver.as_ref(), "alice", 7, "500");
    assert!(rec.wait_complete(id, T).is_ok());
    rec.wait_state(CallId(7), CallState::Idle, T);
    phone.assert_passed(T);
    driver.shutdown();
}

#[test]
fn digest_md5_challenge_is_answered() {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "phone_auth", false, 1, &[]);
    let rec = Recorder::new();
    let driver = build("sip-refer", &line(phone.port(), json!({})), rec.clone());
    let id = make_call(driver.as_ref(), "alice", 8, "600");
    let outcome = rec.wait_complete(id, T);
    assert!(outcome.is_ok(), "{}", err_text(&outcome));
    phone.assert_passed(T);
    driver.shutdown();
}

#[test]
fn wrong_password_ends_with_auth_reason() {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "phone_auth", false, 1, &[]);
    let rec = Recorder::new();
    let driver = build(
        "sip-refer",
        &line(phone.port(), json!({"password": "wrong"})),
        rec.clone(),
    );
    let id = make_call(driver.as_ref(), "alice", 9, "600");
    let end = CallState::Disconnected(DisconnectMode::Blocked);
    let text = failed_with(driver.as_ref(), &rec, id, 9, end);
    assert!(
        text.contains("refused our credentials") && text.contains("403"),
        "{text}"
    );
    phone.assert_passed(T);
    driver.shutdown();
}

#[test]
fn reverse_calls_the_callee_and_refers_it_to_the_users_phone() {
    let Some(bin) = sipp() else { return };
    let mut callee = start_sipp(&bin, "callee_ok", false, 1, &[]);
    let rec = Recorder::new();
    let driver = build("sip-reverse", &line(callee.port(), json!({})), rec.clone());
    let id = make_call(driver.as_ref(), "alice", 10, "0301234");
    let outcome = rec.wait_complete(id, T);
    assert!(outcome.is_ok(), "{}", err_text(&outcome));
    rec.wait_state(CallId(10), CallState::Idle, T);
    callee.assert_passed(T); // its REFER check wants Refer-To: <sip:alice@...>
    driver.shutdown();
}

#[test]
fn reverse_refers_to_a_full_sip_uri_phone_user_as_it_is() {
    // 16.6: `phone_user = "sip:201@phone.example"` used to become
    // `Refer-To: <sip:sip:201@phone.example@domain>`; SIPp checks the header exactly.
    let Some(bin) = sipp() else { return };
    let mut callee = start_sipp(&bin, "callee_refer_to_uri", false, 1, &[]);
    let rec = Recorder::new();
    let cfg = line(
        callee.port(),
        json!({"phone_user": "sip:201@phone.example"}),
    );
    let driver = build("sip-reverse", &cfg, rec.clone());
    let id = make_call(driver.as_ref(), "alice", 14, "0301234");
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done));
    rec.wait_state(CallId(14), CallState::Idle, T);
    callee.assert_passed(T);
    assert!(rec.states(CallId(14)).contains(&CallState::Connected));
    driver.shutdown();
}

#[test]
fn a_call_that_cannot_be_sent_fails_its_makecall_and_leaves_nothing() {
    // No INVITE can go out (a transport tapir does not speak): the call never existed.
    let rec = Recorder::new();
    let driver = build("sip-reverse", &line(9, json!({})), rec.clone());
    let id = make_call(
        driver.as_ref(),
        "alice",
        15,
        "sip:bob@127.0.0.1:9;transport=sctp",
    );
    let outcome = rec.wait_complete(id, T);
    let text = err_text(&outcome);
    assert!(outcome.is_err() && text.contains("cannot route"), "{text}");
    assert!(
        rec.states(CallId(15)).is_empty(),
        "no state for a call never placed"
    );
    // Its place on the line (max_calls 1) was free before the completion was reported.
    let next = make_call(
        driver.as_ref(),
        "alice",
        16,
        "sip:bob@127.0.0.1:9;transport=sctp",
    );
    assert!(rec.wait_complete(next, T).is_err());
    assert_eq!(rec.completions_of(id), 1);
    driver.shutdown();
}

#[test]
fn alternative_mode_sends_straight_to_the_phone() {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "phone_ok_any", false, 1, &[]);
    let rec = Recorder::new();
    let mut cfg = line(
        phone.port(),
        json!({"phone_address": format!("127.0.0.1:{}", phone.port())}),
    );
    cfg["lines"][0]["domain"] = json!("pbx.invalid");
    let driver = build("sip-refer", &cfg, rec.clone());
    let id = make_call(driver.as_ref(), "alice", 11, "700");
    let outcome = rec.wait_complete(id, T);
    assert!(outcome.is_ok(), "{}", err_text(&outcome));
    phone.assert_passed(T);
    driver.shutdown();
}

#[test]
fn tcp_transport_works() {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "phone_ok_any", true, 1, &[]);
    let rec = Recorder::new();
    let driver = build(
        "sip-refer",
        &line(phone.port(), json!({"transport": "tcp"})),
        rec.clone(),
    );
    let id = make_call(driver.as_ref(), "alice", 12, "800");
    let outcome = rec.wait_complete(id, T);
    assert!(outcome.is_ok(), "{}", err_text(&outcome));
    phone.assert_passed(T);
    driver.shutdown();
}

#[test]
fn unsupported_operations_and_bad_input_are_refused_at_once() {
    let rec = Recorder::new();
    let driver = build("sip-refer", &line(9, json!({})), rec.clone());
    let hold = driver.submit(RequestEnvelope {
        id: rid(),
        line: LineKey::new("alice"),
        request: Request::Hold { call: CallId(1) },
    });
    assert_eq!(
        hold.map_err(|e| e.kind),
        Err(ErrorKind::OperationUnavailable)
    );
    let bad = driver.submit(RequestEnvelope {
        id: rid(),
        line: LineKey::new("alice"),
        request: Request::MakeCall {
            call: CallId(2),
            address: AddressId(0),
            destination: Some("12<3".into()),
        },
    });
    assert_eq!(bad.map_err(|e| e.kind), Err(ErrorKind::InvalidAddress));
    let no_line = driver.submit(RequestEnvelope {
        id: rid(),
        line: LineKey::new("bob"),
        request: Request::MakeCall {
            call: CallId(3),
            address: AddressId(0),
            destination: Some("1".into()),
        },
    });
    assert_eq!(no_line.map_err(|e| e.kind), Err(ErrorKind::BadDeviceId));
    driver.shutdown();
    assert!(rec
        .done
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_empty());
}

#[test]
fn drop_after_refer_sends_bye() {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "refer_no_final", false, 1, &[]);
    let rec = Recorder::new();
    let driver = build("sip-refer", &line(phone.port(), json!({})), rec.clone());
    let id = make_call(driver.as_ref(), "alice", 13, "900");
    rec.wait_state(CallId(13), CallState::Proceeding, T);
    // Let the NOTIFY 100 arrive, then drop: tapir must BYE its leg (the scenario's last step).
    std::thread::sleep(Duration::from_millis(300));
    let d = drop_call(driver.as_ref(), "alice", 13);
    assert!(rec.wait_complete(d, T).is_ok());
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done), "placed");
    rec.wait_state(CallId(13), CallState::Idle, T);
    phone.assert_passed(T);
    assert_eq!(rec.completions_of(id), 1);
    driver.shutdown();
}

#[test]
fn several_lines_on_one_account_call_at_once() {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "phone_ok_any", false, 3, &[]);
    let rec = Recorder::new();
    let mut lines = Vec::new();
    for key in ["desk-1", "desk-2", "desk-3"] {
        lines.push(json!({
            "key": key, "domain": format!("127.0.0.1:{}", phone.port()), "user": "alice",
            "password": "secret", "bind": "127.0.0.1:0",
        }));
    }
    let driver = build("sip-refer", &json!({ "lines": lines }), rec.clone());
    assert_eq!(rec.lines().len(), 3);
    let ids: Vec<_> = ["desk-1", "desk-2", "desk-3"]
        .iter()
        .enumerate()
        .map(|(i, key)| make_call(driver.as_ref(), key, 20 + i as u64, &format!("10{i}")))
        .collect();
    for id in ids {
        let outcome = rec.wait_complete(id, T);
        assert!(outcome.is_ok(), "{}", err_text(&outcome));
    }
    phone.assert_passed(T);
    driver.shutdown();
}

#[test]
fn shutdown_ends_ringing_calls_and_silences_events() {
    let Some(bin) = sipp() else { return };
    let _phone = start_sipp(&bin, "phone_noanswer", false, 1, &[]);
    let rec = Recorder::new();
    let driver = build("sip-refer", &line(_phone.port(), json!({})), rec.clone());
    let id = make_call(driver.as_ref(), "alice", 30, "1");
    rec.wait_state(CallId(30), CallState::Ringback, T);
    driver.shutdown();
    // Placed before the shutdown: completed Ok once, when the INVITE went out.
    let outcome = rec.wait_complete(id, Duration::from_secs(1));
    assert_eq!(outcome, Ok(Completion::Done), "{}", err_text(&outcome));
    let events_after = rec
        .events
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .len();
    std::thread::sleep(Duration::from_millis(500));
    let events_later = rec
        .events
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .len();
    assert_eq!(events_after, events_later, "events after shutdown");
    assert_eq!(rec.completions_of(id), 1);
}

#[test]
fn refer_answered_200_instead_of_202_is_accepted() {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "refer_200", false, 1, &[]);
    let rec = Recorder::new();
    let driver = build("sip-refer", &line(phone.port(), json!({})), rec.clone());
    let id = make_call(driver.as_ref(), "alice", 40, "41");
    let outcome = rec.wait_complete(id, T);
    assert!(outcome.is_ok(), "{}", err_text(&outcome));
    rec.wait_state(CallId(40), CallState::Idle, T);
    phone.assert_passed(T);
    driver.shutdown();
}

#[test]
fn phone_declining_is_disconnected_reject() {
    let Some(bin) = sipp() else { return };
    let mut phone = start_sipp(&bin, "phone_decline", false, 1, &[]);
    let rec = Recorder::new();
    let driver = build("sip-refer", &line(phone.port(), json!({})), rec.clone());
    let id = make_call(driver.as_ref(), "alice", 41, "42");
    let end = CallState::Disconnected(DisconnectMode::Reject);
    let text = failed_with(driver.as_ref(), &rec, id, 41, end);
    assert!(
        text.contains("user's phone") && text.contains("603 Decline"),
        "{text}"
    );
    phone.assert_passed(T);
    driver.shutdown();
}

#[test]
fn reverse_callee_busy_is_disconnected_busy() {
    let Some(bin) = sipp() else { return };
    let mut callee = start_sipp(&bin, "phone_busy", false, 1, &[]);
    let rec = Recorder::new();
    let driver = build("sip-reverse", &line(callee.port(), json!({})), rec.clone());
    let id = make_call(driver.as_ref(), "alice", 42, "0301234");
    let end = CallState::Disconnected(DisconnectMode::Busy);
    let text = failed_with(driver.as_ref(), &rec, id, 42, end);
    assert!(
        text.contains("the callee (sip:0301234@") && text.contains("486"),
        "{text}"
    );
    callee.assert_passed(T);
    driver.shutdown();
}

#[test]
fn realm_binding_refuses_a_foreign_realm() {
    let Some(bin) = sipp() else { return };
    // The phone challenges with realm "sipp.test"; the line only answers realm "pbx.test".
    let mut phone = start_sipp(&bin, "phone_auth", false, 1, &[]);
    let rec = Recorder::new();
    let cfg = line(
        phone.port(),
        json!({"ignore_realm": false, "realm": "pbx.test"}),
    );
    let driver = build("sip-refer", &cfg, rec.clone());
    let id = make_call(driver.as_ref(), "alice", 50, "51");
    let end = CallState::Disconnected(DisconnectMode::Blocked);
    let text = failed_with(driver.as_ref(), &rec, id, 50, end);
    assert!(
        text.contains("realm \"sipp.test\" is not the configured realm \"pbx.test\""),
        "{text}"
    );
    driver.shutdown();
    // SIPp waits for a second INVITE that never comes; it is stopped by its guard.
    let _ = phone.wait_exit(Duration::from_millis(10));
}
