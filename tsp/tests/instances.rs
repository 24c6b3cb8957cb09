//! Driver instances that come and go while the front end runs: removal ends the instance's
//! calls (Disconnected, then Idle) and lines, leaves every other instance alone, and an instance
//! added again under the same name gets its lines' old ids back.

mod support;

use std::time::Duration;
use support::Script;
use tapir_core::*;
use tapir_tsp::*;

fn drain(rx: &mut tokio::sync::broadcast::Receiver<Sequenced>) -> Vec<TspEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e.event);
    }
    out
}

fn ids(tsp: &Tsp, driver: &str) -> Vec<(String, u32)> {
    tsp.lines()
        .into_iter()
        .filter(|l| l.driver == driver)
        .map(|l| (l.key.0, l.id.0))
        .collect()
}

/// A call placed on `line` and reported Connected by the scripted driver.
fn connected_call(tsp: &Tsp, script: &Script, line: u32, key: &str) -> CallId {
    let accepted = tsp
        .submit(Action::MakeCall {
            line: LineId(line),
            address: AddressId(0),
            destination: Some("200".into()),
        })
        .expect("accepted");
    let call = accepted.call.expect("call");
    script.event(DriverEvent::CallState {
        line: LineKey::new(key),
        call,
        state: CallState::Connected,
    });
    script.complete(accepted.request, Ok(Completion::Done));
    tsp.sync();
    call
}

fn states_of(events: &[TspEvent], call: CallId) -> Vec<CallState> {
    events
        .iter()
        .filter_map(|e| match e {
            TspEvent::CallState { call: c, state, .. } if *c == call => Some(*state),
            _ => None,
        })
        .collect()
}

#[test]
fn removing_an_instance_ends_its_calls_and_lines_and_leaves_the_others_alone() {
    let tsp = std::sync::Arc::new(Tsp::new(TspConfig::default()));
    let kept = Script::new();
    let going = Script::new();
    tsp.add_driver("kept", kept.build(2)).expect("kept builds");
    tsp.add_driver("going", going.build(2))
        .expect("going builds");
    tsp.sync();
    for line in tsp.lines() {
        tsp.open_line(line.id).expect("opens");
    }
    assert_eq!(ids(&tsp, "going"), vec![("L0".into(), 2), ("L1".into(), 3)]);
    let stays = connected_call(&tsp, &kept, 0, "L0");
    let ends = connected_call(&tsp, &going, 2, "L0");
    // A request the removed driver never completes.
    let stuck = tsp
        .submit(Action::MakeCall {
            line: LineId(3),
            address: AddressId(0),
            destination: Some("201".into()),
        })
        .expect("accepted");
    let mut rx = tsp.subscribe();

    // The driver hangs up the connected call when the front end drops it.
    let answering = going.clone();
    let answerer = std::thread::spawn(move || {
        for _ in 0..500 {
            let drop = answering
                .received()
                .into_iter()
                .find(|r| matches!(r.request, Request::Drop { call } if call == ends));
            if let Some(drop) = drop {
                answering.event(DriverEvent::CallState {
                    line: drop.line.clone(),
                    call: ends,
                    state: CallState::Idle,
                });
                answering.complete(drop.id, Ok(Completion::Done));
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    });
    let removed = tsp
        .remove_driver("going", Duration::from_secs(1))
        .expect("removed");
    assert!(answerer.join().expect("answerer"), "the driver got no drop");
    assert_eq!(removed.lines, vec![LineId(2), LineId(3)]);
    assert_eq!(removed.calls, vec![ends, stuck.call.expect("call")]);

    let events = drain(&mut rx);
    assert_eq!(
        states_of(&events, ends),
        vec![
            CallState::Disconnected(DisconnectMode::Unavailable),
            CallState::Idle
        ],
        "{events:#?}"
    );
    // The call the driver never heard back about ends too, and its request fails once.
    let stuck_call = stuck.call.expect("call");
    assert_eq!(
        states_of(&events, stuck_call),
        vec![
            CallState::Disconnected(DisconnectMode::Unavailable),
            CallState::Idle
        ]
    );
    let completions: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            TspEvent::Completed {
                request, result, ..
            } if *request == stuck.request => Some(result.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(completions.len(), 1, "{events:#?}");
    assert!(matches!(&completions[0], RequestResult::Err(e) if e.kind == ErrorKind::Uninitialized));
    let removed_lines: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            TspEvent::LineRemoved { line } => Some(*line),
            _ => None,
        })
        .collect();
    assert_eq!(removed_lines, vec![LineId(2), LineId(3)]);
    // Nothing happened on the other instance's lines.
    assert!(
        events.iter().all(|e| !matches!(e.line(), LineId(0 | 1))),
        "{events:#?}"
    );
    assert_eq!(tsp.call(stays).map(|c| c.state), Some(CallState::Connected));
    assert!(tsp.call(ends).is_none());
    assert_eq!(
        tsp.submit(Action::MakeCall {
            line: LineId(2),
            address: AddressId(0),
            destination: Some("1".into()),
        })
        .expect_err("line is gone")
        .kind,
        ErrorKind::BadDeviceId
    );
    assert!(tsp.driver("going").is_none());
    assert!(tsp.driver("kept").is_some());

    // The removed driver's late reports change nothing.
    going.event(DriverEvent::LineCreated {
        info: LineInfo {
            key: LineKey::new("late"),
            name: "late".into(),
            caps: LineCaps::default(),
            in_service: true,
        },
    });
    tsp.sync();
    assert!(drain(&mut rx).is_empty());

    // Another instance takes new ids; the same name brings the old ids back.
    let other = Script::new();
    tsp.add_driver("other", other.build(1))
        .expect("other builds");
    let again = Script::new();
    tsp.add_driver("going", again.build(3))
        .expect("added again");
    tsp.sync();
    assert_eq!(ids(&tsp, "other"), vec![("L0".into(), 4)]);
    assert_eq!(
        ids(&tsp, "going"),
        vec![("L0".into(), 2), ("L1".into(), 3), ("L2".into(), 5)]
    );
    let created: Vec<_> = drain(&mut rx)
        .into_iter()
        .filter_map(|e| match e {
            TspEvent::LineCreated { line, .. } => Some(line.0),
            _ => None,
        })
        .collect();
    assert_eq!(created, vec![4, 2, 3, 5]);
    assert_eq!(tsp.call(stays).map(|c| c.state), Some(CallState::Connected));
}

#[test]
fn removing_twice_or_an_unknown_instance_is_an_error() {
    let tsp = Tsp::new(TspConfig::default());
    let script = Script::new();
    tsp.add_driver("a", script.build(1)).expect("builds");
    assert_eq!(
        tsp.add_driver("a", Script::new().build(1))
            .err()
            .map(|e| e.kind),
        Some(ErrorKind::InvalidParameter)
    );
    tsp.remove_driver("a", Duration::ZERO).expect("removed");
    for name in ["a", "nobody"] {
        assert_eq!(
            tsp.remove_driver(name, Duration::ZERO)
                .expect_err(name)
                .kind,
            ErrorKind::InvalidParameter
        );
    }
    assert!(tsp.lines().is_empty());
}

#[test]
fn pins_set_at_run_time_apply_to_lines_that_appear_later_and_never_steal_an_id() {
    let tsp = Tsp::new(TspConfig::default());
    tsp.add_driver("a", Script::new().build(2)).expect("builds");
    tsp.sync();
    tsp.set_pinned(vec![
        ("b".into(), LineKey::new("L0"), LineId(20)),
        // Taken by a line that is there: refused, with a fresh id instead.
        ("b".into(), LineKey::new("L1"), LineId(1)),
        // A line that exists keeps its id.
        ("a".into(), LineKey::new("L0"), LineId(30)),
    ]);
    tsp.add_driver("b", Script::new().build(2)).expect("builds");
    tsp.sync();
    assert_eq!(ids(&tsp, "a"), vec![("L0".into(), 0), ("L1".into(), 1)]);
    let mut b = ids(&tsp, "b");
    b.sort();
    assert_eq!(b, vec![("L0".into(), 20), ("L1".into(), 2)]);
}

#[test]
fn number_rules_swapped_at_run_time_apply_to_the_next_number() {
    struct Prefix(&'static str);
    impl NumberRules for Prefix {
        fn dial(&self, _line: LineRef<'_>, number: &str) -> String {
            format!("{}{number}", self.0)
        }
        fn incoming(&self, _line: LineRef<'_>, number: &str) -> String {
            number.to_owned()
        }
        fn outgoing(&self, _line: LineRef<'_>, number: &str) -> String {
            number.to_owned()
        }
    }
    let tsp = Tsp::with_rules(TspConfig::default(), std::sync::Arc::new(Prefix("0")));
    let script = Script::new();
    tsp.add_driver("a", script.build(1)).expect("builds");
    tsp.sync();
    tsp.open_line(LineId(0)).expect("opens");
    let dial = |n: &str| {
        tsp.submit(Action::MakeCall {
            line: LineId(0),
            address: AddressId(0),
            destination: Some(n.into()),
        })
        .expect("accepted");
    };
    dial("200");
    tsp.set_rules(std::sync::Arc::new(Prefix("9")));
    dial("200");
    let dialled: Vec<_> = script
        .received()
        .into_iter()
        .filter_map(|r| match r.request {
            Request::MakeCall { destination, .. } => destination,
            _ => None,
        })
        .collect();
    assert_eq!(dialled, vec!["0200".to_owned(), "9200".to_owned()]);
}
