//! Driving the real example library through the host-side adapter: events from the plugin's own
//! thread, completions, refusals, a panicking submit, build errors and shutdown.

mod common;

use common::{library, Recorder, EXAMPLE};
use std::sync::Arc;
use tapir_core::{
    AddressId, CallId, CallState, Completion, DriverEvent, ErrorKind, LineKey, PhoneDriver,
    Request, RequestEnvelope, RequestId,
};
use tapir_plugin_abi::load_plugin;

const FAST: &str = r#"{ "dial_ms": 10, "ring_ms": 10, "panic_on_number": "666" }"#;

fn envelope(id: u64, line: &str, request: Request) -> RequestEnvelope {
    RequestEnvelope {
        id: RequestId(id),
        line: LineKey::new(line),
        request,
    }
}

fn make_call(call: u64, to: &str) -> Request {
    Request::MakeCall {
        call: CallId(call),
        address: AddressId(0),
        destination: Some(to.to_owned()),
    }
}

fn start() -> (Box<dyn PhoneDriver>, Arc<Recorder>) {
    let plugin = load_plugin(&library(EXAMPLE)).unwrap();
    let sink = Recorder::new();
    let driver = plugin.build(FAST, sink.clone()).unwrap();
    (driver, sink)
}

#[test]
fn events_from_the_plugin_thread_arrive_through_the_sink() {
    let (driver, sink) = start();
    let host_thread = std::thread::current().id();
    // Lines are announced during build, on the caller's thread.
    let seen = sink.snapshot();
    assert!(matches!(
        &seen.events[0],
        (DriverEvent::LineCreated { info }, thread) if info.key.as_str() == "100" && *thread == host_thread
    ));
    driver
        .submit(envelope(1, "100", make_call(7, "200")))
        .unwrap();
    let seen = sink.wait_for("the call to connect", |r| {
        r.events.iter().any(|(e, _)| {
            matches!(e, DriverEvent::CallState { call, state: CallState::Connected, .. } if call.0 == 7)
        })
    });
    let states: Vec<CallState> = seen
        .events
        .iter()
        .filter_map(|(e, _)| match e {
            DriverEvent::CallState { state, .. } => Some(*state),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        vec![
            CallState::Dialing,
            CallState::Ringback,
            CallState::Connected
        ]
    );
    // Ringback and Connected come from the plugin's worker thread, not from submit's caller.
    let (_, ringback_thread) = seen
        .events
        .iter()
        .find(|(e, _)| {
            matches!(
                e,
                DriverEvent::CallState {
                    state: CallState::Ringback,
                    ..
                }
            )
        })
        .unwrap();
    assert_ne!(*ringback_thread, host_thread);
    assert_eq!(seen.completions, vec![(RequestId(1), Ok(Completion::Done))]);
    driver.shutdown();
}

#[test]
fn a_panicking_submit_fails_only_that_request() {
    let (driver, sink) = start();
    let error = driver
        .submit(envelope(1, "100", make_call(1, "666")))
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::OperationFailed);
    assert_eq!(
        error.detail,
        "driver panicked: panic_on_number: asked to dial 666"
    );
    // The host is alive and so is the driver: the next request works.
    driver
        .submit(envelope(2, "100", make_call(2, "200")))
        .unwrap();
    let seen = sink.wait_for("the second request to complete", |r| {
        !r.completions.is_empty()
    });
    assert_eq!(seen.completions, vec![(RequestId(2), Ok(Completion::Done))]);
    driver.shutdown();
}

#[test]
fn refusals_and_state_errors_cross_as_typed_errors() {
    let (driver, sink) = start();
    let refused = driver
        .submit(envelope(1, "nope", make_call(1, "200")))
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::BadDeviceId);
    driver
        .submit(envelope(2, "100", Request::Hold { call: CallId(99) }))
        .unwrap();
    let seen = sink.wait_for("the hold to complete", |r| !r.completions.is_empty());
    let (id, outcome) = &seen.completions[0];
    assert_eq!(*id, RequestId(2));
    assert_eq!(
        outcome.as_ref().unwrap_err().kind,
        ErrorKind::InvalidCallHandle
    );
    driver.shutdown();
}

#[test]
fn build_errors_come_back_typed() {
    let plugin = load_plugin(&library(EXAMPLE)).unwrap();
    let error = plugin
        .build(r#"{ "lines": [] }"#, Recorder::new())
        .err()
        .unwrap();
    assert_eq!(error.kind, ErrorKind::InvalidParameter);
    assert!(
        error.detail.contains("at least one line"),
        "{}",
        error.detail
    );
}

#[test]
fn shutdown_completes_pending_requests_and_refuses_new_ones() {
    let plugin = load_plugin(&library(EXAMPLE)).unwrap();
    let sink = Recorder::new();
    let driver = plugin
        .build(r#"{ "dial_ms": 60000 }"#, sink.clone())
        .unwrap();
    // MakeCall completes at once (dialling has begun); a Dial in dial tone stays pending
    // until dialling is done, a minute from now.
    driver
        .submit(envelope(
            1,
            "100",
            Request::MakeCall {
                call: CallId(1),
                address: AddressId(0),
                destination: None,
            },
        ))
        .unwrap();
    driver
        .submit(envelope(
            2,
            "100",
            Request::Dial {
                call: CallId(1),
                digits: "200".into(),
            },
        ))
        .unwrap();
    sink.wait_for("dialling", |r| {
        r.events.iter().any(|(e, _)| {
            matches!(
                e,
                DriverEvent::CallState {
                    state: CallState::Dialing,
                    ..
                }
            )
        })
    });
    driver.shutdown();
    let seen = sink.snapshot();
    assert_eq!(seen.completions.len(), 2);
    assert!(seen.completions[0].1.is_ok(), "the MakeCall");
    assert_eq!(
        seen.completions[1].1.as_ref().unwrap_err().kind,
        ErrorKind::Uninitialized
    );
    let after = driver
        .submit(envelope(3, "100", make_call(2, "200")))
        .unwrap_err();
    assert_eq!(after.kind, ErrorKind::Uninitialized);
}
