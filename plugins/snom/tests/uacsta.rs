//! uaCSTA over SIP against the simulator's SIP side: the session opens (challenge answered),
//! per-call operations go over it naming the call, its events follow calls even without
//! Action URLs, failures arrive as states with their mode over many calls on one line, a
//! phone that refuses the session is driven over HTTP, a restart reopens it, a D8xx is driven
//! through it.

mod common;

use common::*;
use std::time::Duration;
use tapir_core::{CallState, Configuration, DisconnectMode, Operation};
use tapir_snom_sim::{Outcome, SimConfig, SimSip};
use tapir_tsp::Action;

const MAC: &str = "000413000131";

fn sip_phone(sip: SimSip) -> SimConfig {
    SimConfig {
        sip: Some(sip),
        ..sim_config(MAC)
    }
}

fn start(
    sim: SimConfig,
    extra: &str,
) -> (
    Harness,
    std::sync::Arc<tapir_snom_sim::SimPhone>,
    tapir_core::LineId,
) {
    let sim_rt = tapir_snom_sim::Sim::new(2).expect("sim");
    let phone = sim_rt.phone(sim).expect("phone");
    let extra = format!(r#", "sip_listen": "127.0.0.1:0"{extra}"#);
    let h = Harness::start_with(&one_phone(phone.addr(), MAC, &extra), sim_rt);
    let line = h.open(MAC);
    (h, phone, line)
}

fn session_up(h: &Harness, phone: &tapir_snom_sim::SimPhone, line: tapir_core::LineId) {
    h.wait_until("a uaCSTA session", || {
        phone.sip_session().0
            && h.line_now(line)
                .caps
                .operations
                .contains(Operation::SwapHold)
    });
}

fn only_csta(phone: &tapir_snom_sim::SimPhone) -> u64 {
    let calls = phone.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    calls[0].csta
}

fn key_presses(phone: &tapir_snom_sim::SimPhone) -> usize {
    phone
        .requests()
        .iter()
        .filter(|r| r.starts_with("/command.htm"))
        .count()
}

#[test]
fn per_call_operations_go_over_the_session_naming_the_call() {
    let (mut h, phone, line) = start(sip_phone(SimSip::default()), "");
    h.configured(MAC);
    session_up(&h, &phone, line);
    let d = h.wait_device(MAC, "session shown", |d| {
        d.detail
            .as_deref()
            .is_some_and(|t| t.contains("uaCSTA session up"))
    });
    assert_eq!(d.configuration, Configuration::Correct);
    let call = h.incoming(&phone, "800");
    let id = only_csta(&phone);
    let sip_before = phone.sip_session().1;
    h.done(Action::Answer { call });
    h.expect_state(call, CallState::Connected);
    h.done(Action::Hold { call });
    h.expect_state(call, CallState::OnHold);
    h.done(Action::Unhold { call });
    h.expect_state(call, CallState::Connected);
    h.done(Action::Drop { call });
    h.expect_state(call, CallState::Idle);
    assert_eq!(
        phone.csta_requests(),
        [
            format!("AnswerCall {id}"),
            format!("HoldCall {id}"),
            format!("RetrieveCall {id}"),
            format!("ClearConnection {id}"),
        ]
    );
    assert_eq!(phone.sip_session().1, sip_before + 4, "over SIP");
    assert_eq!(key_presses(&phone), 0, "no key pressed");
    assert!(
        !phone.requests().iter().any(|r| r.starts_with("/csta")),
        "not over HTTP"
    );
}

#[test]
fn events_over_sip_follow_calls_without_action_urls() {
    // The driver may not write its Action URLs: only the CSTA monitor reports calls.
    let (mut h, phone, line) = start(
        sip_phone(SimSip::default()),
        r#", "auto_reconfigure": false"#,
    );
    h.wait_device(MAC, "no Action URLs", |d| {
        d.configuration == Configuration::CallbacksMissing
    });
    session_up(&h, &phone, line);
    let call = h.incoming(&phone, "801");
    phone.remote_hangup(only_csta(&phone));
    h.ended(call, DisconnectMode::NoAnswer);
    let call = h.incoming(&phone, "802");
    h.done(Action::Answer { call });
    h.expect_state(call, CallState::Connected);
    phone.remote_hangup(only_csta(&phone));
    h.ended(call, DisconnectMode::Normal);
    assert!(phone.fired().is_empty(), "no Action URL was ever fired");
}

#[test]
fn failures_arrive_as_states_with_their_mode_over_many_calls_on_one_line() {
    let (mut h, phone, line) = start(sip_phone(SimSip::default()), "");
    h.configured(MAC);
    session_up(&h, &phone, line);
    let ms = Duration::from_millis;
    phone.script("1000", Outcome::Answer(ms(30)));
    phone.script("1001", Outcome::Busy(ms(30)));
    phone.script("1002", Outcome::Decline(ms(30)));
    phone.script("1003", Outcome::NoAnswer(ms(200)));
    phone.script("1004", Outcome::Unreachable(ms(30)));
    for round in 0..25 {
        let number = format!("100{}", round % 5);
        let call = h.make_call(line, &number);
        match round % 5 {
            0 => {
                h.expect_state(call, CallState::Connected);
                h.done(Action::Drop { call });
                h.expect_state(call, CallState::Idle);
            }
            1 => {
                // The CSTA cause, in its event's words, before Busy.
                assert_eq!(h.cause_of(call), "FailedEvent: busy");
                h.expect_state(call, CallState::Busy(tapir_core::BusyMode::Station));
                h.ended(call, DisconnectMode::Busy);
            }
            n => {
                let (cause, mode) = match n {
                    2 => ("callRejected", DisconnectMode::Reject),
                    3 => ("callNotAnswered", DisconnectMode::NoAnswer),
                    _ => ("destNotObtainable", DisconnectMode::Unreachable),
                };
                assert_eq!(h.cause_of(call), format!("FailedEvent: {cause}"));
                h.ended(call, mode);
            }
        }
        assert!(
            phone.calls().is_empty(),
            "round {round}: {:?}",
            phone.calls()
        );
    }
    assert!(h.tsp.calls().iter().all(|c| c.state.is_idle()));
    assert_eq!(phone.parallel_violations(), 0);
}

#[test]
fn a_phone_that_refuses_the_session_is_driven_over_http() {
    for sip in [
        SimSip {
            csta_control: false,
            ..SimSip::default()
        },
        SimSip {
            refuse: Some(403),
            ..SimSip::default()
        },
    ] {
        // csta_control off: "auto" does not even try; a refusal (403) is shown.
        let refuses = sip.csta_control;
        let (mut h, phone, line) = start(sip_phone(sip), "");
        h.configured(MAC);
        if refuses {
            h.wait_device(MAC, "refusal shown", |d| {
                d.detail
                    .as_deref()
                    .is_some_and(|t| t.contains("refused the CSTA session: 403"))
            });
        }
        assert!(!phone.sip_session().0);
        assert!(!h
            .line_now(line)
            .caps
            .operations
            .contains(Operation::SwapHold));
        let call = h.incoming(&phone, "803");
        h.done(Action::Answer { call });
        h.expect_state(call, CallState::Connected);
        assert!(phone.requests().iter().any(|r| r.contains("key=OFFHOOK")));
        assert!(phone.csta_requests().is_empty());
    }
}

#[test]
fn uacsta_configure_switches_csta_control_on() {
    let (h, phone, line) = start(
        sip_phone(SimSip {
            csta_control: false,
            ..SimSip::default()
        }),
        r#", "uacsta": "configure""#,
    );
    h.configured(MAC);
    session_up(&h, &phone, line);
    assert_eq!(phone.setting("csta_control").as_deref(), Some("on"));
}

#[test]
fn the_csta_challenge_is_answered_with_the_identity_login() {
    let challenged = SimSip {
        password: Some("sip-secret".into()),
        ..SimSip::default()
    };
    let config = |addr: std::net::SocketAddr, password: &str| {
        format!(
            r#"{{"phones": [{{"address": "{addr}", "mac": "{MAC}", "sip_password": "{password}"}}], "status_interval_secs": 0, "snapshot_interval_secs": 0, "sip_listen": "127.0.0.1:0"}}"#
        )
    };
    let sim_rt = tapir_snom_sim::Sim::new(2).expect("sim");
    let phone = sim_rt.phone(sip_phone(challenged.clone())).expect("phone");
    let h = Harness::start_with(&config(phone.addr(), "sip-secret"), sim_rt);
    let line = h.open(MAC);
    session_up(&h, &phone, line);
    drop(h);
    // A wrong SIP password: no session, said so; HTTP still works.
    let sim_rt = tapir_snom_sim::Sim::new(2).expect("sim");
    let phone = sim_rt.phone(sip_phone(challenged)).expect("phone");
    let h = Harness::start_with(&config(phone.addr(), "not-it"), sim_rt);
    h.configured(MAC);
    let d = h.wait_device(MAC, "challenge failed", |d| {
        d.detail
            .as_deref()
            .is_some_and(|t| t.contains("challenge was not met"))
    });
    assert!(
        !d.detail.unwrap_or_default().contains("not-it"),
        "no password shown"
    );
    assert!(!phone.sip_session().0);
}

#[test]
fn after_a_restart_the_session_is_opened_again() {
    let (mut h, phone, line) = start(sip_phone(SimSip::default()), "");
    h.configured(MAC);
    session_up(&h, &phone, line);
    phone.reboot(Duration::from_millis(300));
    h.wait_until("the phone's restart reported", || {
        phone.fired().iter().any(|u| u.contains("/log_on?"))
    });
    session_up(&h, &phone, line);
    let call = h.incoming(&phone, "804");
    assert_eq!(only_csta(&phone), 1);
    h.done(Action::Answer { call });
    h.expect_state(call, CallState::Connected);
    assert_eq!(
        phone.csta_requests().last().map(String::as_str),
        Some("AnswerCall 1")
    );
}

#[test]
fn a_d8xx_is_driven_through_the_session() {
    let (mut h, phone, line) = start(
        SimConfig {
            model: "snomD865".into(),
            ..sip_phone(SimSip::default())
        },
        "",
    );
    h.configured(MAC);
    session_up(&h, &phone, line);
    assert!(h
        .line_now(line)
        .caps
        .operations
        .contains(Operation::MakeCall));
    phone.script("900", Outcome::Answer(Duration::from_millis(30)));
    let call = h.make_call(line, "900");
    h.expect_state(call, CallState::Connected);
    assert_eq!(
        phone.csta_requests().first().map(String::as_str),
        Some("MakeCall 900")
    );
    h.done(Action::Drop { call });
    h.expect_state(call, CallState::Idle);
    assert_eq!(key_presses(&phone), 0, "a D8xx has no keys to press");
}

#[test]
fn the_snapshot_goes_over_the_session() {
    // No csta_path: only the session can ask the phone which calls it has.
    let sim_rt = tapir_snom_sim::Sim::new(2).expect("sim");
    let phone = sim_rt.phone(sip_phone(SimSip::default())).expect("phone");
    let config = format!(
        r#"{{"phones": [{{"address": "{}", "mac": "{MAC}"}}], "status_interval_secs": 0, "snapshot_interval_secs": 1, "sip_listen": "127.0.0.1:0"}}"#,
        phone.addr()
    );
    let mut h = Harness::start_with(&config, sim_rt);
    let line = h.open(MAC);
    h.configured(MAC);
    session_up(&h, &phone, line);
    let call = h.incoming(&phone, "805");
    let before = phone.sip_session().1;
    // The phone loses the call without a word (no event, no Action URL).
    phone.forget_calls();
    h.ended(call, DisconnectMode::Unknown);
    assert!(phone.sip_session().1 > before, "asked over SIP");
    assert!(!phone.requests().iter().any(|r| r.starts_with("/csta")));
}

#[test]
fn a_silent_sip_side_never_holds_up_http_requests() {
    // csta_control is on, but the port takes datagrams and never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let (mut h, phone, _line) = start(
        SimConfig {
            settings: vec![
                ("csta_control".into(), "on".into()),
                ("network_id_port".into(), port.to_string()),
            ],
            ..sim_config(MAC)
        },
        // The session attempt takes 8 s to fail: a request that waited for it would take
        // seconds (the driver's start waits 3 s of it), one that does not takes milliseconds.
        r#", "request_timeout_ms": 8000"#,
    );
    h.configured(MAC);
    let call = h.incoming(&phone, "806");
    let started = std::time::Instant::now();
    h.done(Action::Answer { call });
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the answer waited for the SIP side: {:?}",
        started.elapsed()
    );
    h.expect_state(call, CallState::Connected);
    h.wait_device(MAC, "the SIP side's silence shown", |d| {
        d.detail
            .as_deref()
            .is_some_and(|t| t.contains("SIP side cannot be reached"))
    });
    drop(silent);
}
