//! Deliveries that cannot be lost: a watched request gets its own completion and a follower
//! sees every event, while a broadcast subscriber that falls behind is told it lagged.

mod support;

use support::{Mode, Script};
use tapir_core::*;
use tapir_tsp::*;
use tokio::sync::broadcast::error::TryRecvError;

/// A front end with a broadcast of only 16 events, so that falling behind is easy.
fn small(lines: usize) -> (Tsp, Script) {
    let tsp = Tsp::new(TspConfig {
        history: 16,
        ..TspConfig::default()
    });
    let script = Script::new();
    tsp.add_driver("scripted", script.build(lines))
        .expect("builds");
    tsp.sync();
    for line in tsp.lines() {
        tsp.open_line(line.id).expect("opens");
    }
    (tsp, script)
}

fn query(line: LineId) -> Action {
    Action::QueryAddressStatus {
        line,
        address: AddressId(0),
    }
}

#[test]
fn every_watched_request_gets_its_own_completion_while_subscribers_lag() {
    let (tsp, script) = small(1);
    // A subscriber that never reads: the broadcast overflows many times over.
    let mut idle = tsp.subscribe();
    let mut watches = Vec::new();
    for _ in 0..1_000 {
        watches.push(tsp.submit_watched(query(LineId(0))).expect("accepted"));
    }
    // Completed in reverse order, with a failure every seventh.
    let received = script.received();
    assert_eq!(received.len(), 1_000);
    for (i, envelope) in received.iter().enumerate().rev() {
        let outcome = if i % 7 == 0 {
            Err(DriverError::new(
                ErrorKind::OperationFailed,
                format!("no {i}"),
            ))
        } else {
            Ok(Completion::Done)
        };
        script.complete(envelope.id, outcome);
    }
    tsp.sync();
    for (i, (accepted, mut watch)) in watches.into_iter().enumerate() {
        let result = watch
            .try_result()
            .unwrap_or_else(|| panic!("request {i} ({}) has no completion", accepted.request));
        match (i % 7 == 0, result) {
            (false, RequestResult::Ok(Completion::Done)) => {}
            (true, RequestResult::Err(e)) => assert_eq!(e.detail, format!("no {i}")),
            (_, other) => panic!("request {i}: unexpected {other:?}"),
        }
    }
    assert!(matches!(idle.try_recv(), Err(TryRecvError::Lagged(_))));
}

#[test]
fn a_refused_request_returns_the_error_and_no_watch() {
    let (tsp, script) = small(1);
    script.push_mode(Mode::Refuse);
    let refused = tsp.submit_watched(query(LineId(0)));
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn watched_requests_still_pending_at_shutdown_complete_uninitialized() {
    let (tsp, _script) = small(1);
    let (_, mut watch) = tsp.submit_watched(query(LineId(0))).expect("accepted");
    assert!(
        watch.try_result().is_none(),
        "completed before the driver did"
    );
    tsp.shutdown();
    match watch.try_result() {
        Some(RequestResult::Err(e)) => assert_eq!(e.kind, ErrorKind::Uninitialized),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_follower_sees_every_event_in_order_where_a_subscriber_lags() {
    let (tsp, script) = small(4);
    let mut follower = tsp.follow();
    let mut lagging = tsp.subscribe();
    let start = tsp.last_seq();
    // 250 calls on 4 lines, each through three states: far more than the broadcast holds.
    for n in 0..250u64 {
        let key = LineKey::new(format!("L{}", n % 4));
        let call = CallId(10_000 + n);
        script.event(DriverEvent::NewCall {
            line: key.clone(),
            call,
            state: CallState::Offering,
            info: CallInfo::default(),
        });
        script.event(DriverEvent::CallState {
            line: key.clone(),
            call,
            state: CallState::Connected,
        });
        script.event(DriverEvent::CallState {
            line: key,
            call,
            state: CallState::Idle,
        });
    }
    tsp.sync();
    let end = tsp.last_seq();
    assert_eq!(
        end - start,
        250 * 4,
        "NewCall, Offering, Connected, Idle per call"
    );
    let mut seqs = Vec::new();
    let mut idle = 0;
    while let Some(e) = follower.try_next() {
        if matches!(e.event, TspEvent::CallState { state, .. } if state.is_idle()) {
            idle += 1;
        }
        seqs.push(e.seq);
    }
    let expected: Vec<u64> = (start + 1..=end).collect();
    assert_eq!(seqs, expected, "the follower missed or reordered events");
    assert_eq!(idle, 250);
    assert!(matches!(lagging.try_recv(), Err(TryRecvError::Lagged(_))));
}

#[test]
fn a_dropped_follower_is_forgotten() {
    let (tsp, script) = small(1);
    drop(tsp.follow());
    let mut kept = tsp.follow();
    script.event(DriverEvent::LineOutOfService {
        line: LineKey::new("L0"),
        reason: "test".into(),
    });
    tsp.sync();
    assert!(kept.try_next().is_some());
}
