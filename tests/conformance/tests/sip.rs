//! Conformance of `sip-refer` and `sip-reverse` against SIPp: calls in a row on one line
//! (`max_calls = 1`) with answered, busy, declined, not-found, unanswered and unreachable
//! outcomes mixed. For `sip-refer` the user's phone goes away for two calls and comes back on
//! the same port (TCP: the connection is refused at once, so "unreachable" is fast).

mod common;

use common::*;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tapir_conformance::{run, Expect, Step, Subject};
use tapir_core::{builtin_driver, DisconnectMode, SharedSink};

fn build(
    name: &'static str,
    config: serde_json::Value,
) -> impl FnOnce(SharedSink) -> Result<Box<dyn tapir_core::PhoneDriver>, tapir_core::DriverError> {
    // Names an item of the plugin crate so it is linked and its drivers are registered.
    let _ = tapir_plugin_sip::config::EXAMPLE;
    move |sink| match builtin_driver(name) {
        Some(d) => (d.build)(&config.to_string(), sink),
        None => panic!("{name} is not registered"),
    }
}

#[test]
fn sip_refer_many_calls_on_one_line_with_failures_and_a_phone_that_restarts() {
    let Some(bin) = sipp() else { return };
    let (before, after) = (24, 16);
    let phone = Rc::new(RefCell::new(Some(peer(
        &bin,
        "refer_phone",
        before,
        true,
        None,
    ))));
    let port = phone.borrow().as_ref().map(Sipp::port).unwrap_or_default();
    let mut steps = mixed_calls(before);
    let first = phone.clone();
    steps.push(Step::act("the phone goes away", move || {
        if let Some(mut p) = first.borrow_mut().take() {
            p.assert_passed(Duration::from_secs(30));
        }
    }));
    for _ in 0..2 {
        steps.push(Step::call(
            "200",
            Expect::failed(DisconnectMode::Unreachable, "cannot be reached"),
        ));
    }
    let back = phone.clone();
    let bin_again = bin.clone();
    steps.push(Step::act("the phone is back", move || {
        *back.borrow_mut() = Some(peer(&bin_again, "refer_phone", after, true, Some(port)));
    }));
    steps.extend(mixed_calls(after));
    let config = json!({ "bind": "127.0.0.1:0", "lines": [{
        "key": "alice", "domain": format!("127.0.0.1:{port}"), "user": "alice",
        "phone_user": "201", "transport": "tcp", "notify_timeout_secs": 10, "max_calls": 1 }] });
    let report = run(
        Subject {
            name: "pbx".into(),
            build: build("sip-refer", config),
            line: "alice".into(),
            answered_calls_end_by_themselves: true,
            per_call: PER_CALL,
        },
        steps,
    );
    println!("sip-refer: {report}");
    if let Some(mut p) = phone.borrow_mut().take() {
        p.assert_passed(Duration::from_secs(30));
    }
    assert_eq!(report.calls, before + 2 + after);
}

#[test]
fn sip_reverse_many_calls_on_one_line_with_failures() {
    let Some(bin) = sipp() else { return };
    let n = 40;
    let mut callee = peer(&bin, "reverse_callee", n, false, None);
    let dead = free_tcp_port();
    let mut steps = mixed_calls(n);
    steps.insert(10, unreachable_call(dead));
    steps.insert(30, unreachable_call(dead));
    let config = json!({ "bind": "127.0.0.1:0", "lines": [{
        "key": "alice", "domain": format!("127.0.0.1:{}", callee.port()), "user": "alice",
        "phone_user": "201", "notify_timeout_secs": 10, "max_calls": 1 }] });
    let report = run(
        Subject {
            name: "pbx".into(),
            build: build("sip-reverse", config),
            line: "alice".into(),
            answered_calls_end_by_themselves: true,
            per_call: PER_CALL,
        },
        steps,
    );
    println!("sip-reverse: {report}");
    callee.assert_passed(Duration::from_secs(30));
    assert_eq!(report.calls, n + 2);
}
