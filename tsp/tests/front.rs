//! Scenario tests of the front end against the scripted driver.

mod support;

use std::time::Duration;
use support::{Mode, Script};
use tapir_core::*;
use tapir_tsp::*;

fn setup(lines: usize) -> (Tsp, Script) {
    let tsp = Tsp::new(TspConfig::default());
    let script = Script::new();
    tsp.add_driver("scripted", script.build(lines))
        .expect("builds");
    tsp.sync();
    (tsp, script)
}

fn drain(rx: &mut tokio::sync::broadcast::Receiver<Sequenced>) -> Vec<TspEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e.event);
    }
    out
}

#[test]
fn lines_are_numbered_from_the_base_in_announcement_order() {
    let tsp = Tsp::new(TspConfig {
        line_base: 10,
        pinned: vec![("scripted".into(), LineKey::new("L1"), LineId(3))],
        history: 64,
        callback_base: None,
        state_dir: None,
        id_base: 0,
    });
    let script = Script::new();
    tsp.add_driver("scripted", script.build(3)).expect("builds");
    tsp.sync();
    let ids: Vec<_> = tsp
        .lines()
        .iter()
        .map(|l| (l.key.0.clone(), l.id.0))
        .collect();
    assert_eq!(
        ids,
        vec![("L1".into(), 3), ("L0".into(), 10), ("L2".into(), 11)]
    );
}

#[test]
fn a_request_completes_once_and_states_flow_in_order() {
    let (tsp, script) = setup(1);
    let mut rx = tsp.subscribe();
    tsp.open_line(LineId(0)).expect("opens");
    let accepted = tsp
        .submit(Action::MakeCall {
            line: LineId(0),
            address: AddressId(0),
            destination: Some("200".into()),
        })
        .expect("accepted");
    let call = accepted.call.expect("call created");
    let line = LineKey::new("L0");
    for state in [
        CallState::Dialing,
        CallState::Ringback,
        CallState::Connected,
    ] {
        script.event(DriverEvent::CallState {
            line: line.clone(),
            call,
            state,
        });
    }
    script.complete(accepted.request, Ok(Completion::Done));
    script.complete(accepted.request, Ok(Completion::Done));
    tsp.sync();
    let events = drain(&mut rx);
    let completions = events
        .iter()
        .filter(
            |e| matches!(e, TspEvent::Completed { request, .. } if *request == accepted.request),
        )
        .count();
    assert_eq!(completions, 1, "{events:?}");
    let states: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            TspEvent::CallState { state, .. } => Some(*state),
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
}

#[test]
fn requests_are_checked_before_the_driver_sees_them() {
    let (tsp, script) = setup(1);
    // Closed line.
    let refused = tsp.submit(Action::MakeCall {
        line: LineId(0),
        address: AddressId(0),
        destination: None,
    });
    assert_eq!(
        refused.map_err(|e| e.kind),
        Err(ErrorKind::InvalidLineHandle)
    );
    tsp.open_line(LineId(0)).expect("opens");
    // Unknown line and call.
    let refused = tsp.submit(Action::MakeCall {
        line: LineId(9),
        address: AddressId(0),
        destination: None,
    });
    assert_eq!(refused.map_err(|e| e.kind), Err(ErrorKind::BadDeviceId));
    let refused = tsp.submit(Action::Hold { call: CallId(999) });
    assert_eq!(
        refused.map_err(|e| e.kind),
        Err(ErrorKind::InvalidCallHandle)
    );
    // Wrong state: answer a call that is dialling.
    let accepted = tsp
        .submit(Action::MakeCall {
            line: LineId(0),
            address: AddressId(0),
            destination: Some("1".into()),
        })
        .expect("accepted");
    let call = accepted.call.expect("call");
    script.event(DriverEvent::CallState {
        line: LineKey::new("L0"),
        call,
        state: CallState::Dialing,
    });
    tsp.sync();
    let refused = tsp.submit(Action::Answer { call });
    assert_eq!(
        refused.map_err(|e| e.kind),
        Err(ErrorKind::InvalidCallState)
    );
    // Unknown address.
    let refused = tsp.submit(Action::SetDoNotDisturb {
        line: LineId(0),
        address: AddressId(5),
        enabled: true,
    });
    assert_eq!(
        refused.map_err(|e| e.kind),
        Err(ErrorKind::InvalidAddressId)
    );
    // Only the make call reached the driver.
    assert_eq!(script.received().len(), 1);
}

#[test]
fn unsupported_operations_are_unavailable() {
    let tsp = Tsp::new(TspConfig::default());
    tsp.add_driver("minimal", |sink: SharedSink| {
        sink.event(DriverEvent::LineCreated {
            info: LineInfo {
                key: LineKey::new("x"),
                name: "minimal".into(),
                caps: LineCaps::default(),
                in_service: true,
            },
        });
        Ok(Box::new(support::ScriptedDriver(Script::new())) as Box<dyn PhoneDriver>)
    })
    .expect("builds");
    tsp.sync();
    tsp.open_line(LineId(0)).expect("opens");
    let refused = tsp.submit(Action::SetDoNotDisturb {
        line: LineId(0),
        address: AddressId(0),
        enabled: true,
    });
    assert_eq!(
        refused.map_err(|e| e.kind),
        Err(ErrorKind::OperationUnavailable)
    );
}

#[test]
fn a_panicking_driver_fails_that_request_only() {
    let (tsp, script) = setup(1);
    tsp.open_line(LineId(0)).expect("opens");
    script.push_mode(Mode::Panic);
    let refused = tsp
        .submit(Action::MakeCall {
            line: LineId(0),
            address: AddressId(0),
            destination: Some("1".into()),
        })
        .expect_err("panic becomes an error");
    assert_eq!(refused.kind, ErrorKind::OperationFailed);
    assert!(
        refused.detail.contains("scripted panic"),
        "{}",
        refused.detail
    );
    assert!(tsp.calls().is_empty(), "the failed call was forgotten");
    let accepted = tsp.submit(Action::MakeCall {
        line: LineId(0),
        address: AddressId(0),
        destination: Some("1".into()),
    });
    assert!(accepted.is_ok());
}

#[test]
fn incoming_calls_are_announced_then_stated_and_closed_lines_hear_nothing() {
    let (tsp, script) = setup(2);
    let mut rx = tsp.subscribe();
    tsp.open_line(LineId(0)).expect("opens");
    let sink = script.sink();
    for key in ["L0", "L1"] {
        let call = sink.new_call_id();
        sink.event(DriverEvent::NewCall {
            line: LineKey::new(key),
            call,
            state: CallState::Offering,
            info: CallInfo {
                direction: CallDirection::Incoming,
                calling: Party::number("0301234"),
                ..CallInfo::default()
            },
        });
    }
    tsp.sync();
    let events = drain(&mut rx);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(
        events[0],
        TspEvent::NewCall {
            line: LineId(0),
            ..
        }
    ));
    assert!(matches!(
        events[1],
        TspEvent::CallState {
            line: LineId(0),
            state: CallState::Offering,
            ..
        }
    ));
}

#[test]
fn shutdown_completes_pending_requests_and_reports_open_calls() {
    let (tsp, script) = setup(1);
    let mut rx = tsp.subscribe();
    tsp.open_line(LineId(0)).expect("opens");
    let accepted = tsp
        .submit(Action::MakeCall {
            line: LineId(0),
            address: AddressId(0),
            destination: Some("1".into()),
        })
        .expect("accepted");
    let call = accepted.call.expect("call");
    script.event(DriverEvent::CallState {
        line: LineKey::new("L0"),
        call,
        state: CallState::Connected,
    });
    tsp.sync();
    let open = tsp.shutdown();
    assert_eq!(open.len(), 1);
    let events = drain(&mut rx);
    assert!(events.iter().any(|e| matches!(e, TspEvent::Completed { request, result: RequestResult::Err(DriverError { kind: ErrorKind::Uninitialized, .. }), .. } if *request == accepted.request)));
    // Nothing is accepted afterwards.
    let refused = tsp.submit(Action::Drop { call });
    assert_eq!(refused.map_err(|e| e.kind), Err(ErrorKind::Uninitialized));
    let _ = Duration::from_millis(0);
}

#[test]
fn lines_appear_and_go_at_run_time_and_keep_their_id() {
    let (tsp, script) = setup(1);
    let mut first = tsp.subscribe();
    let mut second = tsp.subscribe();
    let info = LineInfo {
        key: LineKey::new("phone-7"),
        name: "A phone that reported in".into(),
        caps: LineCaps::default(),
        in_service: true,
    };
    script.event(DriverEvent::LineCreated { info: info.clone() });
    tsp.sync();
    let created = tsp
        .lines()
        .into_iter()
        .find(|l| l.key.as_str() == "phone-7")
        .expect("new line");
    assert_eq!(created.id, LineId(1));
    for rx in [&mut first, &mut second] {
        let events = drain(rx);
        assert_eq!(
            events,
            vec![TspEvent::LineCreated {
                line: LineId(1),
                name: info.name.clone()
            }]
        );
    }
    tsp.open_line(LineId(1)).expect("opens");
    script.event(DriverEvent::LineRemoved {
        line: LineKey::new("phone-7"),
    });
    tsp.sync();
    assert!(tsp.line(LineId(1)).is_none());
    let refused = tsp.submit(Action::MakeCall {
        line: LineId(1),
        address: AddressId(0),
        destination: Some("1".into()),
    });
    assert_eq!(refused.map_err(|e| e.kind), Err(ErrorKind::BadDeviceId));
    assert!(drain(&mut first).contains(&TspEvent::LineRemoved { line: LineId(1) }));
    // The phone comes back: same device id.
    script.event(DriverEvent::LineCreated { info });
    tsp.sync();
    assert_eq!(
        tsp.line(LineId(1)).map(|l| l.key.0),
        Some("phone-7".to_owned())
    );
}

#[test]
fn out_of_service_lines_refuse_requests_and_say_so() {
    let (tsp, script) = setup(1);
    let mut rx = tsp.subscribe();
    tsp.open_line(LineId(0)).expect("opens");
    script.event(DriverEvent::LineOutOfService {
        line: LineKey::new("L0"),
        reason: "phone unreachable".into(),
    });
    tsp.sync();
    let refused = tsp.submit(Action::MakeCall {
        line: LineId(0),
        address: AddressId(0),
        destination: Some("1".into()),
    });
    assert_eq!(refused.map_err(|e| e.kind), Err(ErrorKind::Disconnected));
    script.event(DriverEvent::LineInService {
        line: LineKey::new("L0"),
    });
    tsp.sync();
    let events = drain(&mut rx);
    assert_eq!(
        events,
        vec![
            TspEvent::LineService {
                line: LineId(0),
                in_service: false,
                reason: Some("phone unreachable".into())
            },
            TspEvent::LineService {
                line: LineId(0),
                in_service: true,
                reason: None
            },
        ]
    );
    assert!(tsp
        .submit(Action::MakeCall {
            line: LineId(0),
            address: AddressId(0),
            destination: Some("1".into())
        })
        .is_ok());
}
