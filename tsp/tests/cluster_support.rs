//! What the front end offers a cluster: id ranges per front end, line ids from a shared
//! source, forwarded requests that keep their ids, an atomic snapshot, and the removal of an
//! instance whose node failed (the cause in each call's info, Disconnected, Idle, nothing
//! sent to the driver).

mod support;

use std::sync::Arc;
use support::Script;
use tapir_core::*;
use tapir_tsp::*;

fn events(rx: &mut tokio::sync::broadcast::Receiver<Sequenced>) -> Vec<TspEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e.event);
    }
    out
}

struct Shared;

impl LineIds for Shared {
    fn line_id(&self, driver: &str, key: &LineKey) -> Option<LineId> {
        (driver == "remote").then(|| LineId(500 + key.as_str()[1..].parse::<u32>().unwrap_or(0)))
    }
}

#[test]
fn ids_come_from_the_front_ends_range_and_lines_from_the_shared_source() {
    let tsp = Tsp::new(TspConfig {
        id_base: 7 << 32,
        ..TspConfig::default()
    });
    tsp.set_line_ids(Arc::new(Shared));
    let script = Script::new();
    tsp.add_driver("remote", script.build(2)).expect("builds");
    let local = Script::new();
    tsp.add_driver("local", local.build(1)).expect("builds");
    tsp.sync();
    let ids: Vec<(String, u32)> = tsp
        .lines()
        .into_iter()
        .map(|l| (l.driver, l.id.0))
        .collect();
    assert!(ids.contains(&("remote".into(), 500)) && ids.contains(&("remote".into(), 501)));
    assert!(ids.contains(&("local".into(), 0)), "{ids:?}");
    tsp.open_line(LineId(500)).expect("open");
    let accepted = tsp
        .submit(Action::MakeCall {
            line: LineId(500),
            address: AddressId(0),
            destination: Some("1".into()),
        })
        .expect("accepted");
    assert_eq!(accepted.request.0 >> 32, 7);
    assert_eq!(accepted.call.expect("call").0 >> 32, 7);
}

#[test]
fn a_forwarded_request_keeps_its_ids_and_is_checked_like_any_other() {
    let tsp = Tsp::new(TspConfig::default());
    let script = Script::new();
    tsp.add_driver("office", script.build(1)).expect("builds");
    tsp.sync();
    tsp.open_line(LineId(0)).expect("open");
    let mut rx = tsp.subscribe();
    let (id, call) = (RequestId(9 << 32 | 1), CallId(9 << 32 | 1));
    let request = Request::MakeCall {
        call,
        address: AddressId(0),
        destination: Some("200".into()),
    };
    let accepted = tsp
        .submit_forwarded(LineId(0), id, request.clone())
        .expect("accepted");
    assert_eq!(
        accepted,
        Accepted {
            request: id,
            call: Some(call)
        }
    );
    assert_eq!(
        script.received()[0].request,
        request,
        "numbers are not formatted again"
    );
    // The same ids again are refused, as is a request the line cannot take.
    assert!(tsp
        .submit_forwarded(LineId(0), id, request.clone())
        .is_err());
    let other = Request::MakeCall {
        call,
        address: AddressId(0),
        destination: None,
    };
    assert!(
        tsp.submit_forwarded(LineId(0), RequestId(5), other)
            .is_err(),
        "call id in use"
    );
    assert!(
        tsp.submit_forwarded(LineId(0), RequestId(6), Request::Answer { call })
            .is_err(),
        "not valid in the call's state"
    );
    script.complete(id, Ok(Completion::Done));
    tsp.sync();
    assert!(events(&mut rx).contains(&TspEvent::Completed {
        request: id,
        line: LineId(0),
        result: RequestResult::Ok(Completion::Done),
    }));
    let snapshot = tsp.snapshot(Some("office"));
    assert_eq!(snapshot.lines.len(), 1);
    assert_eq!(snapshot.calls[0].id, call);
    assert_eq!(snapshot.seq, tsp.last_seq());
    assert!(tsp.snapshot(Some("nobody")).lines.is_empty());
}

#[test]
fn a_failed_owners_calls_end_with_the_cause_and_nothing_reaches_the_driver() {
    let tsp = Tsp::new(TspConfig::default());
    let script = Script::new();
    tsp.add_driver("office", script.build(1)).expect("builds");
    tsp.sync();
    tsp.open_line(LineId(0)).expect("open");
    let accepted = tsp
        .submit(Action::MakeCall {
            line: LineId(0),
            address: AddressId(0),
            destination: Some("200".into()),
        })
        .expect("accepted");
    let call = accepted.call.expect("call");
    script.event(DriverEvent::CallState {
        line: LineKey::new("L0"),
        call,
        state: CallState::Connected,
    });
    tsp.sync();
    let mut rx = tsp.subscribe();
    let removed = tsp
        .remove_driver_with("office", Removal::failed("the node failed"))
        .expect("removed");
    assert_eq!(removed.calls, vec![call]);
    let seen = events(&mut rx);
    let cause = seen.iter().find_map(|e| match e {
        TspEvent::CallInfo { info, .. } => info.cause.clone(),
        _ => None,
    });
    assert_eq!(cause.as_deref(), Some("the node failed"));
    let states: Vec<CallState> = seen
        .iter()
        .filter_map(|e| match e {
            TspEvent::CallState { state, .. } => Some(*state),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        vec![
            CallState::Disconnected(DisconnectMode::Unavailable),
            CallState::Idle
        ]
    );
    // The pending MakeCall failed; no Drop was sent to the driver.
    assert!(seen.iter().any(|e| matches!(e, TspEvent::Completed { request, result: RequestResult::Err(_), .. } if *request == accepted.request)));
    assert_eq!(
        script.received().len(),
        1,
        "only the MakeCall reached the driver"
    );
}

#[test]
fn a_driver_that_fails_to_build_leaves_its_name_free() {
    let tsp = Tsp::new(TspConfig::default());
    let refused = tsp.add_driver("office", |_sink| Err(DriverError::failed("no")));
    assert!(refused.is_err());
    let script = Script::new();
    tsp.add_driver("office", script.build(1))
        .expect("the name is free again");
}

/// A shared id source that takes its time, as NATS does.
struct Slow;

impl LineIds for Slow {
    fn line_id(&self, _driver: &str, _key: &LineKey) -> Option<LineId> {
        std::thread::sleep(std::time::Duration::from_millis(5));
        None
    }
}

#[test]
fn reports_after_a_new_line_wait_for_it_and_keep_their_order() {
    // A new line goes through the event loop (its id may come from NATS); the driver's next
    // report, applied on the driver's own thread when nothing is queued, must not overtake it:
    // each line is created out of service and then put in service at once; a report that
    // overtook its line would be dropped (unknown line) and leave the line out of service.
    let tsp = Tsp::new(TspConfig::default());
    tsp.set_line_ids(Arc::new(Slow));
    let script = Script::new();
    tsp.add_driver("slow", script.build(0)).expect("builds");
    let sink = script.sink();
    let reporter = std::thread::spawn(move || {
        for i in 0..20 {
            let key = LineKey::new(format!("N{i}"));
            sink.event(DriverEvent::LineCreated {
                info: LineInfo {
                    key: key.clone(),
                    name: format!("new {i}"),
                    caps: LineCaps {
                        operations: OperationSet::all(),
                        forward_modes: vec![],
                        max_calls: 1,
                        addresses: vec![AddressInfo::default()],
                    },
                    in_service: false,
                },
            });
            sink.event(DriverEvent::LineInService { line: key });
        }
    });
    reporter.join().expect("reporter");
    tsp.sync();
    let lines = tsp.lines();
    assert_eq!(lines.len(), 20);
    for line in lines {
        assert!(line.in_service, "{line:?}");
    }
}
