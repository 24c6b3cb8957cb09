//! The driver conformance test: "many calls on one long-running host, failures included".
//!
//! [`run`] starts one front end ([`tapir_tsp::Tsp`]) with the driver under test, opens one
//! line, and places the calls of a script one after the other on that line, the way an
//! application does: MakeCall, wait for the outcome, drop and deallocate. It checks the
//! failed-call rule of ARCHITECTURE.md for every call:
//! - every MakeCall is accepted (a line is never left full: no `resource_unavailable`) and
//!   completes exactly once, Ok (the call was placed);
//! - an answered call is Connected and ends Idle; a failed one ends `Disconnected` with the
//!   expected mode (after `Busy` only when the mode is Busy), never Connected, with a `cause`
//!   in its info that says why;
//! - the application's Drop of a Disconnected call completes Ok at once and the call is Idle;
//! - after each call nothing is live on the line, and after the script no call is left and
//!   no request is pending.
//!
//! The driver holds nothing for a Disconnected call: instantiations give the line
//! `max_calls = 1` (or place more failures in a row than the line has places), so a driver
//! that kept a failed call would refuse the next MakeCall and fail the run.
//!
//! Instantiations live in this crate's `tests/` (one file per driver, each with its real peer);
//! see README.md for adding a driver.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};
use tapir_core::{
    AddressId, CallId, CallState, Completion, DisconnectMode, DriverError, LineId, PhoneDriver,
    RequestId, SharedSink,
};
use tapir_tsp::{Action, RequestResult, Sequenced, Tsp, TspConfig, TspEvent};
use tokio::sync::broadcast::{error::TryRecvError, Receiver};

/// What a call must come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The far end answers: the call is Connected, then ends Idle (by itself, or dropped by
    /// the runner, see [`Subject::answered_calls_end_by_themselves`]).
    Answered,
    /// Placed, then failed: the call ends `Disconnected(mode)`, and its info's `cause`
    /// contains `cause` (case-insensitive).
    Failed {
        /// The disconnect mode.
        mode: DisconnectMode,
        /// Text the cause must contain (the protocol's words, e.g. `603 Decline`).
        cause: String,
    },
}

impl Expect {
    /// A failure with `mode` whose cause contains `cause`.
    pub fn failed(mode: DisconnectMode, cause: &str) -> Expect {
        Expect::Failed {
            mode,
            cause: cause.to_owned(),
        }
    }

    fn label(&self) -> String {
        match self {
            Expect::Answered => "answered".into(),
            Expect::Failed { mode, .. } => format!("{mode:?}").to_lowercase(),
        }
    }
}

/// One step of a script.
pub enum Step {
    /// Place a call to `dial`; it must come to `expect`.
    Call {
        /// The number or URI dialled.
        dial: String,
        /// The expected outcome.
        expect: Expect,
    },
    /// Do something between calls (stop or restart a peer); the text says what, for messages.
    Do(String, Box<dyn FnOnce()>),
}

impl Step {
    /// A call step.
    pub fn call(dial: impl Into<String>, expect: Expect) -> Step {
        Step::Call {
            dial: dial.into(),
            expect,
        }
    }

    /// An action step.
    pub fn act(what: &str, f: impl FnOnce() + 'static) -> Step {
        Step::Do(what.to_owned(), Box::new(f))
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Call { dial, expect } => write!(f, "call {dial} ({})", expect.label()),
            Step::Do(what, _) => write!(f, "{what}"),
        }
    }
}

/// The driver under test.
pub struct Subject<F> {
    /// The driver instance's name in the front end.
    pub name: String,
    /// Builds the driver (given the front end's sink).
    pub build: F,
    /// The key of the line the calls are placed on.
    pub line: String,
    /// True when an answered call ends Idle by itself (click-to-dial hands it over); false
    /// when it stays Connected until the application drops it.
    pub answered_calls_end_by_themselves: bool,
    /// How long one call may take to reach its end.
    pub per_call: Duration,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Calls placed.
    pub calls: usize,
    /// Calls per outcome (`answered`, `busy`, `reject`, ...).
    pub outcomes: BTreeMap<String, usize>,
    /// The whole run.
    pub elapsed: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} calls in a row on one line in {:.1} s:",
            self.calls,
            self.elapsed.as_secs_f64()
        )?;
        for (outcome, n) in &self.outcomes {
            write!(f, " {outcome} {n}")?;
        }
        Ok(())
    }
}

/// Runs `steps` against the driver `subject` builds and checks every call.
///
/// # Panics
/// On the first call that breaks the rule, with the call's number in the script, what was
/// expected and every event seen for it.
pub fn run<F>(subject: Subject<F>, steps: Vec<Step>) -> Report
where
    F: FnOnce(SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError>,
{
    let started = Instant::now();
    let tsp = Tsp::new(TspConfig::default());
    if let Err(e) = tsp.add_driver(&subject.name, subject.build) {
        panic!("{} does not build: {e}", subject.name);
    }
    tsp.sync();
    let Some(line) = tsp
        .lines()
        .into_iter()
        .find(|l| l.key.as_str() == subject.line)
    else {
        panic!("{} has no line {}", subject.name, subject.line);
    };
    let mut run = Run {
        tsp: &tsp,
        line: line.id,
        rx: tsp.subscribe(),
        seen: Vec::new(),
        completions: HashMap::new(),
        accepted: Vec::new(),
        per_call: subject.per_call,
    };
    if let Err(e) = tsp.open_line(line.id) {
        panic!("cannot open line {}: {e}", line.id);
    }
    let mut report = Report::default();
    for (index, step) in steps.into_iter().enumerate() {
        match step {
            Step::Do(_, f) => f(),
            Step::Call { dial, expect } => {
                report.calls += 1;
                let n = report.calls;
                run.call(
                    n,
                    index,
                    &dial,
                    &expect,
                    subject.answered_calls_end_by_themselves,
                );
                *report.outcomes.entry(expect.label()).or_default() += 1;
            }
        }
    }
    run.finish();
    tsp.shutdown();
    report.elapsed = started.elapsed();
    report
}

struct Run<'a> {
    tsp: &'a Tsp,
    line: LineId,
    rx: Receiver<Sequenced>,
    seen: Vec<TspEvent>,
    completions: HashMap<RequestId, Vec<RequestResult>>,
    accepted: Vec<RequestId>,
    per_call: Duration,
}

impl Run<'_> {
    /// Reads what was published so far.
    fn pump(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(e) => {
                    if let TspEvent::Completed {
                        request, result, ..
                    } = &e.event
                    {
                        self.completions
                            .entry(*request)
                            .or_default()
                            .push(result.clone());
                    }
                    self.seen.push(e.event);
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => return,
                Err(TryRecvError::Lagged(n)) => {
                    panic!("the runner missed {n} events; it reads after every call")
                }
            }
        }
    }

    /// Waits until `f` holds over the events seen, at most one call's time.
    fn wait(&mut self, what: &str, call: CallId, f: impl Fn(&Run<'_>) -> bool) {
        let end = Instant::now() + self.per_call;
        loop {
            self.pump();
            if f(self) {
                return;
            }
            if Instant::now() >= end {
                panic!(
                    "{what}: not within {:?}; events of call {call}: {:#?}",
                    self.per_call,
                    self.of(call)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn of(&self, call: CallId) -> Vec<&TspEvent> {
        self.seen
            .iter()
            .filter(|e| match e {
                TspEvent::NewCall { call: c, .. }
                | TspEvent::CallState { call: c, .. }
                | TspEvent::CallInfo { call: c, .. } => *c == call,
                _ => false,
            })
            .collect()
    }

    fn states(&self, call: CallId) -> Vec<CallState> {
        self.of(call)
            .into_iter()
            .filter_map(|e| match e {
                TspEvent::CallState { state, .. } => Some(*state),
                _ => None,
            })
            .collect()
    }

    fn cause(&self, call: CallId) -> Option<String> {
        self.of(call).into_iter().rev().find_map(|e| match e {
            TspEvent::CallInfo { info, .. } => info.cause.clone(),
            _ => None,
        })
    }

    fn completed(&self, request: RequestId) -> bool {
        self.completions.contains_key(&request)
    }

    fn call(&mut self, n: usize, index: usize, dial: &str, expect: &Expect, ends_itself: bool) {
        let what = format!("call #{n} (step {index}) to {dial}, {}", expect.label());
        let accepted = match self.tsp.submit(Action::MakeCall {
            line: self.line,
            address: AddressId(0),
            destination: Some(dial.to_owned()),
        }) {
            Ok(a) => a,
            Err(e) => panic!(
                "{what}: MakeCall refused ({}: {}); a line must never stay full after failed calls",
                e.kind.name(),
                e.detail
            ),
        };
        self.accepted.push(accepted.request);
        let Some(call) = accepted.call else {
            panic!("{what}: the front end made no call");
        };
        let make = accepted.request;
        self.wait(&format!("{what}: MakeCall completion"), call, |r| {
            r.completed(make)
        });
        match self.completions.get(&make).map(Vec::as_slice) {
            Some([RequestResult::Ok(Completion::Done)]) => {}
            other => panic!(
                "{what}: MakeCall must complete Ok once the call is placed, got {other:?}; events: {:#?}",
                self.of(call)
            ),
        }
        match expect {
            Expect::Answered => {
                self.wait(&format!("{what}: Connected"), call, |r| {
                    r.states(call).contains(&CallState::Connected)
                });
                if !ends_itself {
                    self.drop_call(&what, call, false);
                }
                self.wait(&format!("{what}: Idle"), call, |r| {
                    r.states(call).last() == Some(&CallState::Idle)
                });
            }
            Expect::Failed { mode, cause } => {
                let end = CallState::Disconnected(*mode);
                self.wait(&format!("{what}: {end:?}"), call, |r| {
                    r.states(call).contains(&end)
                });
                let states = self.states(call);
                let bad = states.iter().any(|s| {
                    *s == CallState::Connected
                        || matches!(s, CallState::Busy(_)) && *mode != DisconnectMode::Busy
                        || matches!(s, CallState::Disconnected(m) if m != mode)
                        || s.is_idle()
                });
                assert!(!bad, "{what}: states {states:?}");
                let said = self.cause(call).unwrap_or_default();
                assert!(
                    said.to_lowercase().contains(&cause.to_lowercase()),
                    "{what}: the cause {said:?} does not say {cause:?}"
                );
                self.drop_call(&what, call, true);
            }
        }
        if let Err(e) = self.tsp.close_call(call) {
            panic!("{what}: deallocating the call failed: {e}");
        }
        assert!(self.tsp.call(call).is_none(), "{what}: still known");
        assert_eq!(
            self.tsp.live_calls(self.line),
            Some(0),
            "{what}: a call is still live on the line"
        );
    }

    /// The application's Drop; a Disconnected call's Drop must complete Ok at once.
    fn drop_call(&mut self, what: &str, call: CallId, disconnected: bool) {
        let dropped = match self.tsp.submit(Action::Drop { call }) {
            Ok(a) => a.request,
            Err(e) => panic!("{what}: Drop refused: {e}"),
        };
        self.accepted.push(dropped);
        let limit = if disconnected {
            // Answered by the front end: no signalling, no driver.
            Duration::from_secs(5)
        } else {
            self.per_call
        };
        let end = Instant::now() + limit;
        while !self.completed(dropped) && Instant::now() < end {
            self.pump();
            std::thread::sleep(Duration::from_millis(2));
        }
        match self.completions.get(&dropped).map(Vec::as_slice) {
            Some([RequestResult::Ok(Completion::Done)]) => {}
            other => panic!("{what}: Drop must complete Ok once, got {other:?}"),
        }
        self.wait(&format!("{what}: Idle after Drop"), call, |r| {
            r.states(call).last() == Some(&CallState::Idle)
        });
    }

    /// After the script: every request completed exactly once, nothing is left, and no call
    /// reported anything after its Idle.
    fn finish(&mut self) {
        self.tsp.sync();
        self.pump();
        for id in &self.accepted {
            let n = self.completions.get(id).map_or(0, Vec::len);
            assert_eq!(n, 1, "request {id} completed {n} times");
        }
        assert!(
            self.tsp.calls().is_empty(),
            "calls left: {:?}",
            self.tsp.calls()
        );
        let mut ended = std::collections::HashSet::new();
        for e in &self.seen {
            match e {
                TspEvent::CallState { call, state, .. } => {
                    assert!(!ended.contains(call), "{call}: {state:?} after Idle");
                    if state.is_idle() {
                        ended.insert(*call);
                    }
                }
                TspEvent::CallInfo { call, .. } => {
                    assert!(!ended.contains(call), "{call}: info after Idle");
                }
                _ => {}
            }
        }
    }
}
