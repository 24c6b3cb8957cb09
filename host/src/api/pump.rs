//! The API's background task. Events are published only for open lines (TAPI's rule), so the
//! API opens every line once, at start and whenever one appears, and never closes them. It
//! also forgets ended calls after a while (TSPI's CloseCall) and counts completions.
//!
//! It reads the front end through a [`Follower`](tapir_tsp::Follower), which never skips an
//! event: a missed Idle would leave the call in `/v1/calls` for ever, a missed completion would
//! be missing from the metrics. The work per event is small, so the follower's queue stays short.
//!
//! The REST API has no deallocation, so the task plays the application's part of the
//! failed-call rule: a call left Disconnected for the linger is dropped (the front end answers
//! that Drop at once: Idle), and an Idle call is closed after the linger. Nothing accumulates.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapir_core::{CallId, CallState, LineId};
use tapir_tsp::{Action, RequestResult, Tsp, TspEvent};

/// What the linger does to a call once it has passed.
#[derive(Debug, Clone, Copy)]
enum Due {
    /// An Idle call: close it (forget it).
    Close,
    /// A Disconnected call: drop it if it is still Disconnected.
    Drop,
}

/// Starts the task; it ends when the front end's event stream closes or the runtime stops.
///
/// Ended calls wait in one queue in the order they ended: the linger is the same for every
/// call, so the queue is also in deadline order and one timer (the front's) serves them all,
/// instead of a task and a timer per call.
pub fn spawn(tsp: Arc<Tsp>, linger: Duration) -> tokio::task::JoinHandle<()> {
    spawn_for(tsp, linger, Arc::new(|_| true))
}

/// Which lines the task drops lingering Disconnected calls on: on a cluster node only the lines
/// it runs (the node running a line drops them for every node, and mirrors follow).
pub type Dropper = Arc<dyn Fn(LineId) -> bool + Send + Sync>;

/// [`spawn`], dropping lingering Disconnected calls only on the lines `drops` names.
pub fn spawn_for(tsp: Arc<Tsp>, linger: Duration, drops: Dropper) -> tokio::task::JoinHandle<()> {
    // Following before the lines are opened, so a line created in between is not missed.
    let mut events = tsp.follow();
    let mut open = HashSet::new();
    open_all(&tsp, &mut open);
    tokio::spawn(async move {
        let mut lingering: VecDeque<(Instant, CallId, Due)> = VecDeque::new();
        loop {
            let next_due = lingering.front().map(|(at, _, _)| *at);
            let event = tokio::select! {
                e = events.next() => e,
                () = async {
                    match next_due {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let now = Instant::now();
                    while let Some((_, call, due)) =
                        lingering.front().copied().filter(|(at, _, _)| *at <= now)
                    {
                        lingering.pop_front();
                        expire(&tsp, call, due);
                    }
                    continue;
                }
            };
            let Some(e) = event else { break };
            match e.event {
                TspEvent::LineCreated { line, .. } => open_one(&tsp, &mut open, line),
                TspEvent::LineRemoved { line } => {
                    open.remove(&line);
                }
                TspEvent::CallState { call, state, .. } if state.is_idle() => {
                    lingering.push_back((Instant::now() + linger, call, Due::Close));
                }
                TspEvent::CallState {
                    call,
                    line,
                    state: CallState::Disconnected(_),
                } if drops(line) => {
                    lingering.push_back((Instant::now() + linger, call, Due::Drop));
                }
                TspEvent::Completed { result, .. } => match result {
                    RequestResult::Ok(_) => {
                        metrics::counter!("tapir_request_completions_total", "result" => "ok")
                            .increment(1);
                    }
                    RequestResult::Err(error) => {
                        let kind = error.kind.name();
                        metrics::counter!("tapir_request_completions_total", "result" => kind)
                            .increment(1);
                        metrics::counter!("tapir_driver_errors_total", "kind" => kind).increment(1);
                    }
                },
                _ => {}
            }
        }
    })
}

/// The linger of `call` has passed.
fn expire(tsp: &Tsp, call: CallId, due: Due) {
    match due {
        // Gone already (the line was removed) is fine.
        Due::Close => {
            let _ = tsp.close_call(call);
        }
        // Dropped by a client meanwhile, or gone: nothing to do.
        Due::Drop => {
            let still = tsp
                .call(call)
                .is_some_and(|c| matches!(c.state, CallState::Disconnected(_)));
            if still {
                let _ = tsp.submit(Action::Drop { call });
            }
        }
    }
}

fn open_all(tsp: &Tsp, open: &mut HashSet<LineId>) {
    for line in tsp.lines() {
        open_one(tsp, open, line.id);
    }
}

fn open_one(tsp: &Tsp, open: &mut HashSet<LineId>, line: LineId) {
    if open.contains(&line) {
        return;
    }
    match tsp.open_line(line) {
        Ok(()) => {
            open.insert(line);
        }
        Err(error) => tracing::warn!(line = %line, %error, "Could not open a line for the API."),
    }
}
