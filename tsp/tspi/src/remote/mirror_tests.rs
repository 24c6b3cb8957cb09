//! The mirror's mapping rules, event by event, without a host.

use super::*;
use tapir_core::{AddressInfo, Completion, Operation, OperationSet, Party};

fn view(id: u32, key: &str, name: &str) -> LineView {
    LineView {
        id: LineId(id),
        driver: "office".into(),
        key: LineKey::new(key),
        name: name.into(),
        caps: LineCaps {
            operations: OperationSet::empty()
                .with(Operation::MakeCall)
                .with(Operation::Drop),
            forward_modes: Vec::new(),
            max_calls: 2,
            addresses: vec![AddressInfo::default()],
        },
        in_service: true,
    }
}

fn seq(n: u64, event: TspEvent) -> Sequenced {
    Sequenced { seq: n, event }
}

struct Ids(u64);
impl Ids {
    fn next(&mut self) -> impl FnMut() -> CallId + '_ {
        move || {
            self.0 += 1;
            CallId(self.0)
        }
    }
}

fn connected(filter: &[&str]) -> (Mirror, Ids) {
    let mut m = Mirror::new(LineFilter::new(
        filter.iter().map(|s| s.to_string()).collect(),
    ));
    let mut ids = Ids(100);
    let out = m.reload(
        vec![view(3, "100", "Reception"), view(4, "101", "Sales")],
        Some(Vec::new()),
        false,
        &mut ids.next(),
    );
    assert!(out
        .iter()
        .all(|o| matches!(o, Out::Event(e) if matches!(**e, DriverEvent::LineCreated { .. }))));
    (m, ids)
}

fn make_call(m: &mut Mirror, local_req: u64, local_call: u64) -> HttpCall {
    let envelope = RequestEnvelope {
        id: RequestId(local_req),
        line: LineKey::new("office/100"),
        request: Request::MakeCall {
            call: CallId(local_call),
            address: Default::default(),
            destination: Some("200".into()),
        },
    };
    match m.prepare(&envelope) {
        Ok(Prepared::Send(http)) => http,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_filter_picks_lines_by_key_name_or_id() {
    let (m, _) = connected(&["Sales"]);
    assert_eq!(m.lines.keys().collect::<Vec<_>>(), vec!["office/101"]);
    for entry in ["101", "office/101", "4", "Sales"] {
        assert!(LineFilter::new(vec![entry.into()]).admits(&view(4, "101", "Sales")));
    }
    assert!(!LineFilter::new(vec!["10".into()]).admits(&view(4, "101", "Sales")));
    assert!(LineFilter::default().admits(&view(4, "101", "Sales")));
}

#[test]
fn a_call_made_here_is_mapped_and_completes_once() {
    let (mut m, mut ids) = connected(&[]);
    let http = make_call(&mut m, 1, 50);
    assert_eq!(http.method, "POST");
    assert_eq!(http.path, "/v1/lines/3/calls");
    assert_eq!(
        http.body,
        Some(serde_json::json!({"destination": "200", "address": 0}))
    );
    m.accepted(RequestId(1), RequestId(900), Some(CallId(77)));
    let (out, _) = m.event(
        seq(
            5,
            TspEvent::CallState {
                line: LineId(3),
                call: CallId(77),
                state: CallState::Dialing,
            },
        ),
        &mut ids.next(),
    );
    assert_eq!(
        out,
        vec![Out::event(DriverEvent::CallState {
            line: LineKey::new("office/100"),
            call: CallId(50),
            state: CallState::Dialing
        })]
    );
    let done = seq(
        6,
        TspEvent::Completed {
            request: RequestId(900),
            line: LineId(3),
            result: RequestResult::Ok(Completion::Done),
        },
    );
    let (out, _) = m.event(done.clone(), &mut ids.next());
    assert_eq!(out, vec![Out::Complete(RequestId(1), Ok(Completion::Done))]);
    let (out, _) = m.event(done, &mut ids.next());
    assert!(out.is_empty(), "a completion is passed on once");
    assert_eq!(m.pending(), 0);
    // Drop goes to the host's call id.
    let drop = RequestEnvelope {
        id: RequestId(2),
        line: LineKey::new("office/100"),
        request: Request::Drop { call: CallId(50) },
    };
    assert!(matches!(m.prepare(&drop), Ok(Prepared::Send(h)) if h.path == "/v1/calls/77/drop"));
}

#[test]
fn calls_nobody_here_made_are_new_calls_with_the_hosts_numbers() {
    let (mut m, mut ids) = connected(&[]);
    let info = CallInfo {
        calling: Party {
            number: Some("+49301234567".into()),
            raw_number: Some("0301234567".into()),
            name: Some("Alice".into()),
        },
        ..CallInfo::default()
    };
    let (out, _) = m.event(
        seq(
            1,
            TspEvent::NewCall {
                line: LineId(4),
                call: CallId(9),
                info: info.clone(),
            },
        ),
        &mut ids.next(),
    );
    assert!(out.is_empty(), "announced with its first state");
    let (out, _) = m.event(
        seq(
            2,
            TspEvent::CallState {
                line: LineId(4),
                call: CallId(9),
                state: CallState::Offering,
            },
        ),
        &mut ids.next(),
    );
    let Some(Out::Event(event)) = out.first() else {
        panic!("{out:?}")
    };
    let DriverEvent::NewCall {
        line,
        call,
        state,
        info,
    } = &**event
    else {
        panic!("{event:?}")
    };
    assert_eq!(
        (line.0.as_str(), *call, *state),
        ("office/101", CallId(101), CallState::Offering)
    );
    assert_eq!(
        info.calling.raw_number.as_deref(),
        Some("+49301234567"),
        "shown as the host shows it"
    );
    // A call on a line this workstation does not show is ignored.
    let (mut filtered, mut ids) = connected(&["100"]);
    let (out, _) = filtered.event(
        seq(
            3,
            TspEvent::CallState {
                line: LineId(4),
                call: CallId(10),
                state: CallState::Offering,
            },
        ),
        &mut ids.next(),
    );
    assert!(out.is_empty());
}

#[test]
fn losing_the_host_fails_pending_requests_once_and_forgets_their_calls() {
    let (mut m, mut ids) = connected(&[]);
    make_call(&mut m, 1, 50);
    m.accepted(RequestId(1), RequestId(900), Some(CallId(77)));
    let out = m.lost("connection reset");
    let completions: Vec<_> = out
        .iter()
        .filter(|o| matches!(o, Out::Complete(..)))
        .collect();
    assert_eq!(completions.len(), 1);
    assert!(
        matches!(completions[0], Out::Complete(RequestId(1), Err(e)) if e.kind == ErrorKind::Disconnected)
    );
    let out_of_service = out
        .iter()
        .filter(
            |o| matches!(o, Out::Event(e) if matches!(**e, DriverEvent::LineOutOfService { .. })),
        )
        .count();
    assert_eq!(out_of_service, 2);
    // The host's late completion and the failed call's states are not passed on as that call.
    let (out, _) = m.event(
        seq(
            7,
            TspEvent::Completed {
                request: RequestId(900),
                line: LineId(3),
                result: RequestResult::Ok(Completion::Done),
            },
        ),
        &mut ids.next(),
    );
    assert!(out.is_empty());
    assert!(m
        .lost("again")
        .iter()
        .all(|o| !matches!(o, Out::Complete(..))));
}

#[test]
fn after_a_restart_known_calls_are_disconnected_and_dropped_here() {
    let (mut m, mut ids) = connected(&[]);
    make_call(&mut m, 1, 50);
    m.accepted(RequestId(1), RequestId(900), Some(CallId(77)));
    let _ = m.event(
        seq(
            8,
            TspEvent::Completed {
                request: RequestId(900),
                line: LineId(3),
                result: RequestResult::Ok(Completion::Done),
            },
        ),
        &mut ids.next(),
    );
    let _ = m.lost("killed");
    // The new host has call 77 too, but it is another call: it is a new call here.
    let other = CallView {
        id: CallId(77),
        line: LineId(3),
        state: CallState::Offering,
        info: CallInfo::default(),
    };
    let out = m.reload(
        vec![view(3, "100", "Reception"), view(4, "101", "Sales")],
        Some(vec![other]),
        true,
        &mut ids.next(),
    );
    assert!(out.contains(&Out::event(DriverEvent::CallState {
        line: LineKey::new("office/100"),
        call: CallId(50),
        state: CallState::Disconnected(DisconnectMode::Unknown),
    })));
    assert!(out.iter().any(|o| matches!(o, Out::Event(e) if matches!(&**e, DriverEvent::NewCall { call: CallId(101), .. }))));
    assert!(out.contains(&Out::event(DriverEvent::LineInService {
        line: LineKey::new("office/100")
    })));
    let drop = RequestEnvelope {
        id: RequestId(2),
        line: LineKey::new("office/100"),
        request: Request::Drop { call: CallId(50) },
    };
    let Ok(Prepared::Settled(out)) = m.prepare(&drop) else {
        panic!("settled here")
    };
    assert_eq!(out[1], Out::Complete(RequestId(2), Ok(Completion::Done)));
    let hold = RequestEnvelope {
        id: RequestId(3),
        line: LineKey::new("office/100"),
        request: Request::Hold { call: CallId(50) },
    };
    assert!(m.prepare(&hold).is_err(), "the call is gone after its drop");
}

#[test]
fn a_reload_of_the_same_host_ends_forgotten_calls_and_follows_lines() {
    let (mut m, mut ids) = connected(&[]);
    make_call(&mut m, 1, 50);
    m.accepted(RequestId(1), RequestId(900), Some(CallId(77)));
    let out = m.reload(
        vec![view(3, "100", "Reception"), view(6, "102", "New")],
        Some(Vec::new()),
        false,
        &mut ids.next(),
    );
    assert!(out.contains(&Out::event(DriverEvent::CallState {
        line: LineKey::new("office/100"),
        call: CallId(50),
        state: CallState::Idle
    })));
    assert!(out.contains(&Out::event(DriverEvent::LineRemoved {
        line: LineKey::new("office/101")
    })));
    assert!(out.iter().any(|o| matches!(o, Out::Event(e) if matches!(&**e, DriverEvent::LineCreated { info } if info.key.0 == "office/102"))));
    // line_created asks for the line; a removal maps back to the local key.
    let (out, fetch) = m.event(
        seq(
            9,
            TspEvent::LineCreated {
                line: LineId(8),
                name: "x".into(),
            },
        ),
        &mut ids.next(),
    );
    assert!(out.is_empty());
    assert_eq!(fetch, Some(LineId(8)));
    let (out, _) = m.event(
        seq(10, TspEvent::LineRemoved { line: LineId(6) }),
        &mut ids.next(),
    );
    assert_eq!(
        out,
        vec![Out::event(DriverEvent::LineRemoved {
            line: LineKey::new("office/102")
        })]
    );
    assert_eq!(m.last().map(|e| e.seq), Some(10));
}
