//! The front end: the line table, the call table, pending requests, and the one loop that turns
//! driver reports into application events.
//!
//! Application calls ([`Tsp::submit`], [`Tsp::open_line`], ...) are checked and recorded under
//! one lock, then handed to the driver outside the lock. Everything drivers report goes through
//! a channel into a single thread (the *event loop*), which updates the tables and publishes
//! [`Sequenced`] events. That thread is the only sender of events, so subscribers never see two
//! events at once or out of order.

use crate::numbers::{format_info, LineRef, NumberRules, Verbatim};
use crate::{Accepted, Action, RequestResult, Sequenced, TspEvent};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use tapir_core::{
    AddressId, AddressStatus, CallId, CallInfo, CallState, DriverError, DriverEvent, ErrorKind,
    EventSink, LineCaps, LineId, LineInfo, LineKey, Operation, Outcome, PhoneDriver, Request,
    RequestEnvelope, RequestId, SharedSink,
};
use tokio::sync::broadcast;

/// How the front end is set up.
#[derive(Debug, Clone)]
pub struct TspConfig {
    /// The first device id handed out (TAPI's dwLineDeviceIDBase).
    pub line_base: u32,
    /// Lines whose id is fixed: (driver instance, line key) → id. They keep it across restarts.
    pub pinned: Vec<(String, LineKey, LineId)>,
    /// How many past events are kept for subscribers that resume.
    pub history: usize,
    /// Where phones reach the host's callback endpoint; each driver instance is told
    /// `{callback_base}/{instance}`.
    pub callback_base: Option<String>,
    /// Where drivers keep small state files; each driver instance is told
    /// `{state_dir}/{instance}`.
    pub state_dir: Option<std::path::PathBuf>,
}

impl Default for TspConfig {
    fn default() -> Self {
        Self {
            line_base: 0,
            pinned: Vec::new(),
            history: 4096,
            callback_base: None,
            state_dir: None,
        }
    }
}

/// A line as applications see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineSnapshot {
    /// Device id.
    pub id: LineId,
    /// The driver instance serving it (its config section name).
    pub driver: String,
    /// The driver's key for it.
    pub key: LineKey,
    /// Human name.
    pub name: String,
    /// What it can do.
    pub caps: LineCaps,
    /// In service now?
    pub in_service: bool,
    /// How many times it is open.
    pub opens: u32,
    /// Forwarding / DND per address, as last reported.
    pub addresses: BTreeMap<AddressId, AddressStatus>,
}

/// A call as applications see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallSnapshot {
    /// The call.
    pub id: CallId,
    /// Its line.
    pub line: LineId,
    /// Its state (`unknown` until the driver reports one).
    pub state: CallState,
    /// What is known.
    pub info: CallInfo,
}

/// The front end. Cheap to share behind an `Arc`.
pub struct Tsp {
    inner: Arc<Inner>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

struct Inner {
    state: Mutex<State>,
    tx: mpsc::Sender<Input>,
    events: broadcast::Sender<Sequenced>,
    next_call: Arc<AtomicU64>,
    next_request: AtomicU64,
    rules: Arc<dyn NumberRules>,
    callback_base: Option<String>,
    state_dir: Option<std::path::PathBuf>,
}

enum Input {
    Driver(usize, Box<DriverEvent>),
    Complete(usize, RequestId, Outcome),
    Barrier(mpsc::Sender<()>),
    Stop,
}

struct DriverSlot {
    name: String,
    driver: Option<Arc<dyn PhoneDriver>>,
}

struct LineEntry {
    driver: usize,
    info: LineInfo,
    in_service: bool,
    opens: u32,
    removed: bool,
    addresses: BTreeMap<AddressId, AddressStatus>,
}

struct CallEntry {
    line: LineId,
    state: CallState,
    info: CallInfo,
    /// States were published for this call (it is visible to applications).
    announced: bool,
}

struct Pending {
    line: LineId,
    created: Vec<CallId>,
    /// Internal requests (a drop issued by `close_call`) complete without an event.
    silent: bool,
}

struct State {
    drivers: Vec<DriverSlot>,
    lines: BTreeMap<LineId, LineEntry>,
    by_key: HashMap<(usize, LineKey), LineId>,
    pinned: HashMap<(String, LineKey), LineId>,
    calls: HashMap<CallId, CallEntry>,
    pending: HashMap<RequestId, Pending>,
    next_line: u32,
    seq: u64,
    history: VecDeque<Sequenced>,
    history_cap: usize,
    shut_down: bool,
}

/// The events a subscriber missed are no longer kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryGap {
    /// The oldest position still kept.
    pub oldest: u64,
}

impl std::error::Error for HistoryGap {}

impl std::fmt::Display for HistoryGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "events before position {} are no longer kept",
            self.oldest
        )
    }
}

struct Sink {
    driver: usize,
    tx: mpsc::Sender<Input>,
    next_call: Arc<AtomicU64>,
    callback_url: Option<String>,
    state_dir: Option<std::path::PathBuf>,
}

impl EventSink for Sink {
    fn event(&self, event: DriverEvent) {
        // A send fails only after shutdown, when reports are no longer wanted.
        let _ = self.tx.send(Input::Driver(self.driver, Box::new(event)));
    }

    fn complete(&self, request: RequestId, outcome: Outcome) {
        let _ = self.tx.send(Input::Complete(self.driver, request, outcome));
    }

    fn new_call_id(&self) -> CallId {
        CallId(self.next_call.fetch_add(1, Ordering::Relaxed))
    }

    fn callback_url(&self) -> Option<String> {
        self.callback_url.clone()
    }

    fn state_dir(&self) -> Option<std::path::PathBuf> {
        self.state_dir.clone()
    }
}

fn err(kind: ErrorKind, detail: impl Into<String>) -> DriverError {
    DriverError::new(kind, detail)
}

impl Tsp {
    /// Starts a front end with no drivers and numbers passed through unchanged.
    pub fn new(config: TspConfig) -> Self {
        Self::with_rules(config, Arc::new(Verbatim))
    }

    /// Starts a front end that applies `rules` to dialled and reported numbers.
    pub fn with_rules(config: TspConfig, rules: Arc<dyn NumberRules>) -> Self {
        let (tx, rx) = mpsc::channel();
        let (events, _) = broadcast::channel(config.history.max(16));
        let pinned = config
            .pinned
            .iter()
            .map(|(d, k, id)| ((d.clone(), k.clone()), *id))
            .collect();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                drivers: Vec::new(),
                lines: BTreeMap::new(),
                by_key: HashMap::new(),
                pinned,
                calls: HashMap::new(),
                pending: HashMap::new(),
                next_line: config.line_base,
                seq: 0,
                history: VecDeque::new(),
                history_cap: config.history,
                shut_down: false,
            }),
            tx,
            events,
            next_call: Arc::new(AtomicU64::new(1)),
            next_request: AtomicU64::new(1),
            rules,
            callback_base: config.callback_base.clone(),
            state_dir: config.state_dir.clone(),
        });
        let loop_inner = Arc::clone(&inner);
        let worker = std::thread::Builder::new()
            .name("tapir-tsp-events".into())
            .spawn(move || event_loop(&loop_inner, rx))
            .ok();
        if worker.is_none() {
            tracing::error!("Could not start the front end's event thread.");
        }
        Self {
            inner,
            worker: Mutex::new(worker),
        }
    }

    /// Builds a driver instance named `name` and routes its lines through this front end.
    ///
    /// Returns the driver handle, for the host's phone-facing HTTP callbacks.
    ///
    /// # Errors
    /// Whatever `build` returns, or an error if it panicked.
    pub fn add_driver<F>(&self, name: &str, build: F) -> Result<Arc<dyn PhoneDriver>, DriverError>
    where
        F: FnOnce(SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError>,
    {
        let index = {
            let mut st = self.inner.lock();
            if st.drivers.iter().any(|d| d.name == name) {
                return Err(err(
                    ErrorKind::InvalidParameter,
                    format!("a driver instance named {name:?} exists already"),
                ));
            }
            st.drivers.push(DriverSlot {
                name: name.to_owned(),
                driver: None,
            });
            st.drivers.len() - 1
        };
        let sink: SharedSink = Arc::new(Sink {
            driver: index,
            tx: self.inner.tx.clone(),
            next_call: Arc::clone(&self.inner.next_call),
            callback_url: self
                .inner
                .callback_base
                .as_ref()
                .map(|base| format!("{}/{name}", base.trim_end_matches('/'))),
            state_dir: self.inner.state_dir.as_ref().map(|dir| dir.join(name)),
        });
        let built = catch_unwind(AssertUnwindSafe(|| build(sink)))
            .unwrap_or_else(|panic| Err(DriverError::failed(panic_text("building", &panic))))?;
        let driver: Arc<dyn PhoneDriver> = Arc::from(built);
        let mut st = self.inner.lock();
        if let Some(slot) = st.drivers.get_mut(index) {
            slot.driver = Some(Arc::clone(&driver));
        }
        Ok(driver)
    }

    /// All lines, in device id order.
    pub fn lines(&self) -> Vec<LineSnapshot> {
        let st = self.inner.lock();
        st.lines
            .iter()
            .filter(|(_, l)| !l.removed)
            .map(|(id, l)| st.line_snapshot(*id, l))
            .collect()
    }

    /// One line.
    pub fn line(&self, id: LineId) -> Option<LineSnapshot> {
        let st = self.inner.lock();
        st.lines
            .get(&id)
            .filter(|l| !l.removed)
            .map(|l| st.line_snapshot(id, l))
    }

    /// All calls not yet closed.
    pub fn calls(&self) -> Vec<CallSnapshot> {
        let st = self.inner.lock();
        let mut calls: Vec<_> = st
            .calls
            .iter()
            .map(|(id, c)| CallSnapshot {
                id: *id,
                line: c.line,
                state: c.state,
                info: c.info.clone(),
            })
            .collect();
        calls.sort_by_key(|c| c.id);
        calls
    }

    /// One call.
    pub fn call(&self, id: CallId) -> Option<CallSnapshot> {
        let st = self.inner.lock();
        st.calls.get(&id).map(|c| CallSnapshot {
            id,
            line: c.line,
            state: c.state,
            info: c.info.clone(),
        })
    }

    /// What a call allows now (TAPI's call features): its line's capabilities and state, and
    /// for the two-call operations a partner on the same line (complete transfer needs a
    /// consultation call, swap hold a held call). Empty for an unknown call.
    pub fn call_features(&self, id: CallId) -> Vec<Operation> {
        let st = self.inner.lock();
        let Some(call) = st.calls.get(&id) else {
            return Vec::new();
        };
        let Some(line) = st.lines.get(&call.line) else {
            return Vec::new();
        };
        let others: Vec<CallState> = st
            .calls
            .iter()
            .filter(|(other, c)| **other != id && c.line == call.line)
            .map(|(_, c)| c.state)
            .collect();
        call_features(&line.info.caps, &call.state)
            .into_iter()
            .filter(|op| match op {
                Operation::CompleteTransfer => others
                    .iter()
                    .any(|s| !s.is_idle() && !matches!(s, CallState::Disconnected(_))),
                Operation::SwapHold => others
                    .iter()
                    .any(|s| matches!(s, CallState::OnHold | CallState::OnHoldPendingTransfer)),
                _ => true,
            })
            .collect()
    }

    /// Opens a line: its events are published from now on.
    ///
    /// # Errors
    /// `BadDeviceId` for an unknown line, `Uninitialized` after shutdown.
    pub fn open_line(&self, id: LineId) -> Result<(), DriverError> {
        let mut st = self.inner.lock();
        if st.shut_down {
            return Err(err(ErrorKind::Uninitialized, "the front end is shut down"));
        }
        let line = st
            .lines
            .get_mut(&id)
            .filter(|l| !l.removed)
            .ok_or_else(|| err(ErrorKind::BadDeviceId, format!("no line {id}")))?;
        line.opens += 1;
        if line.opens != 1 {
            return Ok(());
        }
        // First opener: tell the driver (outside the lock; it may check the device).
        let key = line.info.key.clone();
        let driver_index = line.driver;
        let driver = st.drivers.get(driver_index).and_then(|d| d.driver.clone());
        drop(st);
        if let Some(driver) = driver {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| driver.line_opened(&key))) {
                tracing::warn!(
                    line = %id,
                    panic = %panic_text("being told a line opened", &panic),
                    "Driver panicked; the line is open anyway."
                );
            }
        }
        Ok(())
    }

    /// Closes a line once; when no opener is left, its events stop.
    ///
    /// # Errors
    /// `InvalidLineHandle` when the line is not open.
    pub fn close_line(&self, id: LineId) -> Result<(), DriverError> {
        let mut st = self.inner.lock();
        let line = st
            .lines
            .get_mut(&id)
            .filter(|l| l.opens > 0)
            .ok_or_else(|| {
                err(
                    ErrorKind::InvalidLineHandle,
                    format!("line {id} is not open"),
                )
            })?;
        line.opens -= 1;
        Ok(())
    }

    /// Subscribes to every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Sequenced> {
        self.inner.events.subscribe()
    }

    /// Subscribes and also returns the kept events after position `after`, atomically, so that
    /// nothing is missed or seen twice.
    ///
    /// # Errors
    /// [`HistoryGap`] when events after `after` are no longer kept.
    pub fn resume(
        &self,
        after: u64,
    ) -> Result<(Vec<Sequenced>, broadcast::Receiver<Sequenced>), HistoryGap> {
        let st = self.inner.lock();
        let oldest = st.history.front().map(|e| e.seq).unwrap_or(st.seq + 1);
        if after + 1 < oldest && after < st.seq {
            return Err(HistoryGap { oldest });
        }
        let missed = st
            .history
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect();
        Ok((missed, self.inner.events.subscribe()))
    }

    /// The position of the newest event published.
    pub fn last_seq(&self) -> u64 {
        self.inner.lock().seq
    }

    /// Checks an action against the line's capabilities and the call's state, records it, and
    /// hands it to the driver.
    ///
    /// # Errors
    /// The request is refused at once: no completion will follow.
    pub fn submit(&self, action: Action) -> Result<Accepted, DriverError> {
        self.submit_inner(action, false)
    }

    fn submit_inner(&self, action: Action, silent: bool) -> Result<Accepted, DriverError> {
        let rules = Arc::clone(&self.inner.rules);
        let (driver, envelope, created) = {
            let mut st = self.inner.lock();
            if st.shut_down {
                return Err(err(ErrorKind::Uninitialized, "the front end is shut down"));
            }
            let op = action.operation();
            let line_id = match (action.line(), action.call()) {
                (Some(line), _) => line,
                (None, Some(call)) => st.call_line(call)?,
                (None, None) => return Err(err(ErrorKind::InvalidParameter, "no line or call")),
            };
            let line = st
                .lines
                .get(&line_id)
                .filter(|l| !l.removed)
                .ok_or_else(|| err(ErrorKind::BadDeviceId, format!("no line {line_id}")))?;
            if line.opens == 0 && !silent {
                return Err(err(
                    ErrorKind::InvalidLineHandle,
                    format!("line {line_id} is not open"),
                ));
            }
            if !line.info.caps.operations.contains(op) {
                return Err(err(
                    ErrorKind::OperationUnavailable,
                    format!("line {line_id} does not support {}", op.name()),
                ));
            }
            if !line.in_service {
                return Err(err(
                    ErrorKind::Disconnected,
                    format!("line {line_id} is out of service"),
                ));
            }
            if let Some(call) = action.call() {
                let entry = st
                    .calls
                    .get(&call)
                    .ok_or_else(|| err(ErrorKind::InvalidCallHandle, format!("no call {call}")))?;
                if !op.valid_in(&entry.state) {
                    return Err(err(
                        ErrorKind::InvalidCallState,
                        format!(
                            "{} is not possible while call {call} is {}",
                            op.name(),
                            entry.state.name()
                        ),
                    ));
                }
            }
            st.check_second_call(&action, line_id)?;
            let caps = &line.info.caps;
            let key = line.info.key.clone();
            let driver_index = line.driver;
            if let Some(address) = address_of(&action) {
                if !caps.has_address(address) {
                    return Err(err(
                        ErrorKind::InvalidAddressId,
                        format!("line {line_id} has no address {address}"),
                    ));
                }
            }
            if matches!(action, Action::MakeCall { .. }) {
                let active = st
                    .calls
                    .values()
                    .filter(|c| c.line == line_id && !c.state.is_idle())
                    .count();
                if active >= caps.max_calls as usize {
                    return Err(err(
                        ErrorKind::ResourceUnavailable,
                        format!("line {line_id} carries {active} calls, its maximum"),
                    ));
                }
            }
            let driver = st
                .drivers
                .get(driver_index)
                .and_then(|d| d.driver.clone())
                .ok_or_else(|| err(ErrorKind::Disconnected, "the line's driver did not start"))?;
            let mut new_call = || CallId(self.inner.next_call.fetch_add(1, Ordering::Relaxed));
            let driver_name = st
                .drivers
                .get(driver_index)
                .map(|d| d.name.clone())
                .unwrap_or_default();
            let line_ref = LineRef {
                id: line_id,
                driver: &driver_name,
                key: &key,
            };
            let dial = |n: &str| rules.dial(line_ref, n);
            let (request, created) = to_request(action, &mut new_call, &dial);
            let id = RequestId(self.inner.next_request.fetch_add(1, Ordering::Relaxed));
            for call in &created {
                st.calls.insert(
                    *call,
                    CallEntry {
                        line: line_id,
                        state: CallState::Unknown,
                        info: CallInfo {
                            direction: tapir_core::CallDirection::Outgoing,
                            ..CallInfo::default()
                        },
                        announced: false,
                    },
                );
            }
            st.pending.insert(
                id,
                Pending {
                    line: line_id,
                    created: created.clone(),
                    silent,
                },
            );
            let envelope = RequestEnvelope {
                id,
                line: key,
                request,
            };
            (driver, envelope, created)
        };
        let id = envelope.id;
        let submitted =
            catch_unwind(AssertUnwindSafe(|| driver.submit(envelope))).unwrap_or_else(|panic| {
                Err(DriverError::failed(panic_text(
                    "handling a request",
                    &panic,
                )))
            });
        match submitted {
            Ok(()) => Ok(Accepted {
                request: id,
                call: created.first().copied(),
            }),
            Err(error) => {
                let mut st = self.inner.lock();
                if st.pending.remove(&id).is_some() {
                    for call in &created {
                        st.calls.remove(call);
                    }
                } else {
                    tracing::warn!(request = %id, "Driver refused a request it had already completed.");
                }
                Err(error)
            }
        }
    }

    /// Forgets a call (TSPI's CloseCall). A call that is not Idle yet is dropped first.
    ///
    /// # Errors
    /// `InvalidCallHandle` for an unknown call.
    pub fn close_call(&self, call: CallId) -> Result<(), DriverError> {
        let idle = {
            let st = self.inner.lock();
            let entry = st
                .calls
                .get(&call)
                .ok_or_else(|| err(ErrorKind::InvalidCallHandle, format!("no call {call}")))?;
            entry.state.is_idle() || entry.state == CallState::Unknown
        };
        if !idle {
            if let Err(error) = self.submit_inner(Action::Drop { call }, true) {
                tracing::debug!(call = %call, %error, "Drop before close was refused.");
            }
        }
        self.inner.lock().calls.remove(&call);
        Ok(())
    }

    /// Stops every driver and the event loop. Requests still pending complete with
    /// `Uninitialized`; the calls that were still up are returned so they can be reported.
    pub fn shutdown(&self) -> Vec<CallSnapshot> {
        let drivers: Vec<_> = {
            let mut st = self.inner.lock();
            if st.shut_down {
                return Vec::new();
            }
            st.shut_down = true;
            st.drivers.iter().filter_map(|d| d.driver.clone()).collect()
        };
        let open: Vec<_> = self
            .calls()
            .into_iter()
            .filter(|c| !c.state.is_idle())
            .collect();
        for driver in drivers {
            if catch_unwind(AssertUnwindSafe(|| driver.shutdown())).is_err() {
                tracing::warn!("A driver panicked while shutting down.");
            }
        }
        let _ = self.inner.tx.send(Input::Stop);
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(worker) = worker {
            if worker.join().is_err() {
                tracing::error!("The front end's event thread panicked.");
            }
        }
        open
    }

    /// Waits until every report that drivers sent before this call has been processed and its
    /// events published. Tests and one-shot tools use it to observe a settled state.
    pub fn sync(&self) {
        let (done, wait) = mpsc::channel();
        if self.inner.tx.send(Input::Barrier(done)).is_ok() {
            let _ = wait.recv_timeout(std::time::Duration::from_secs(10));
        }
    }

    /// Ids handed out so far for (driver instance, line key), for the host to remember.
    pub fn line_ids(&self) -> Vec<(String, LineKey, LineId)> {
        let st = self.inner.lock();
        st.by_key
            .iter()
            .filter_map(|((d, k), id)| {
                st.drivers
                    .get(*d)
                    .map(|slot| (slot.name.clone(), k.clone(), *id))
            })
            .collect()
    }
}

impl Drop for Tsp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves tables that are still consistent (every
        // update is a single insert or remove), so the poison is cleared.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn panic_text(what: &str, panic: &Box<dyn std::any::Any + Send>) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    format!("driver panicked while {what}: {message}")
}

fn address_of(action: &Action) -> Option<AddressId> {
    match action {
        Action::MakeCall { address, .. }
        | Action::Forward { address, .. }
        | Action::SetDoNotDisturb { address, .. }
        | Action::QueryAddressStatus { address, .. } => Some(*address),
        _ => None,
    }
}

/// Turns an action into the driver's request, allocating the ids of calls it creates and
/// applying the dial rules to every number it carries.
fn to_request(
    action: Action,
    new_call: &mut dyn FnMut() -> CallId,
    dial: &dyn Fn(&str) -> String,
) -> (Request, Vec<CallId>) {
    match action {
        Action::MakeCall {
            address,
            destination,
            ..
        } => {
            let call = new_call();
            let destination = destination.map(|d| dial(&d));
            (
                Request::MakeCall {
                    call,
                    address,
                    destination,
                },
                vec![call],
            )
        }
        Action::Drop { call } => (Request::Drop { call }, vec![]),
        Action::Answer { call } => (Request::Answer { call }, vec![]),
        Action::Hold { call } => (Request::Hold { call }, vec![]),
        Action::Unhold { call } => (Request::Unhold { call }, vec![]),
        Action::Redirect { call, destination } => (
            Request::Redirect {
                call,
                destination: dial(&destination),
            },
            vec![],
        ),
        Action::BlindTransfer { call, destination } => (
            Request::BlindTransfer {
                call,
                destination: dial(&destination),
            },
            vec![],
        ),
        Action::SetupTransfer { call } => {
            let consult = new_call();
            (Request::SetupTransfer { call, consult }, vec![consult])
        }
        Action::CompleteTransfer { call, consult } => {
            (Request::CompleteTransfer { call, consult }, vec![])
        }
        Action::SwapHold { active, held } => (Request::SwapHold { active, held }, vec![]),
        Action::Dial { call, digits } => (
            Request::Dial {
                call,
                digits: dial(&digits),
            },
            vec![],
        ),
        Action::Forward {
            address, forward, ..
        } => {
            let forward = forward.map(|mut f| {
                f.destination = dial(&f.destination);
                f
            });
            (Request::Forward { address, forward }, vec![])
        }
        Action::SetDoNotDisturb {
            address, enabled, ..
        } => (Request::SetDoNotDisturb { address, enabled }, vec![]),
        Action::QueryAddressStatus { address, .. } => {
            (Request::QueryAddressStatus { address }, vec![])
        }
    }
}

impl State {
    fn line_snapshot(&self, id: LineId, l: &LineEntry) -> LineSnapshot {
        LineSnapshot {
            id,
            driver: self
                .drivers
                .get(l.driver)
                .map(|d| d.name.clone())
                .unwrap_or_default(),
            key: l.info.key.clone(),
            name: l.info.name.clone(),
            caps: l.info.caps.clone(),
            in_service: l.in_service,
            opens: l.opens,
            addresses: l.addresses.clone(),
        }
    }

    fn call_line(&self, call: CallId) -> Result<LineId, DriverError> {
        self.calls
            .get(&call)
            .map(|c| c.line)
            .ok_or_else(|| err(ErrorKind::InvalidCallHandle, format!("no call {call}")))
    }

    /// Checks the second call of two-call actions (the consultation call, the held call).
    fn check_second_call(&self, action: &Action, line: LineId) -> Result<(), DriverError> {
        let (other, held_expected) = match action {
            Action::CompleteTransfer { consult, .. } => (*consult, false),
            Action::SwapHold { held, .. } => (*held, true),
            _ => return Ok(()),
        };
        let entry = self
            .calls
            .get(&other)
            .filter(|c| c.line == line)
            .ok_or_else(|| {
                err(
                    ErrorKind::InvalidConsultCallHandle,
                    format!("no call {other} on line {line}"),
                )
            })?;
        let ok = if held_expected {
            matches!(
                entry.state,
                CallState::OnHold | CallState::OnHoldPendingTransfer
            )
        } else {
            !entry.state.is_idle() && !matches!(entry.state, CallState::Disconnected(_))
        };
        if ok {
            Ok(())
        } else {
            Err(err(
                ErrorKind::InvalidCallState,
                format!("call {other} is {}", entry.state.name()),
            ))
        }
    }

    fn is_open(&self, line: LineId) -> bool {
        self.lines
            .get(&line)
            .is_some_and(|l| l.opens > 0 && !l.removed)
    }

    fn allocate_line(&mut self, driver: usize, key: &LineKey) -> LineId {
        let name = self
            .drivers
            .get(driver)
            .map(|d| d.name.clone())
            .unwrap_or_default();
        if let Some(id) = self.pinned.get(&(name, key.clone())) {
            return *id;
        }
        let taken: std::collections::HashSet<LineId> = self
            .lines
            .keys()
            .copied()
            .chain(self.pinned.values().copied())
            .collect();
        while taken.contains(&LineId(self.next_line)) {
            self.next_line += 1;
        }
        let id = LineId(self.next_line);
        self.next_line += 1;
        id
    }
}

/// The single consumer of driver reports.
fn event_loop(inner: &Inner, rx: mpsc::Receiver<Input>) {
    while let Ok(input) = rx.recv() {
        let mut st = inner.lock();
        let mut out = Vec::new();
        match input {
            Input::Stop => {
                let leftover: Vec<_> = st.pending.drain().collect();
                for (id, pending) in leftover {
                    if !pending.silent {
                        out.push(TspEvent::Completed {
                            request: id,
                            line: pending.line,
                            result: RequestResult::Err(err(
                                ErrorKind::Uninitialized,
                                "the host shut down before the request completed",
                            )),
                        });
                    }
                }
                publish(inner, &mut st, out);
                return;
            }
            Input::Barrier(done) => {
                let _ = done.send(());
            }
            Input::Complete(_driver, request, outcome) => {
                on_complete(inner, &mut st, request, outcome, &mut out)
            }
            Input::Driver(driver, event) => {
                on_driver_event(inner, &mut st, driver, *event, &mut out)
            }
        }
        publish(inner, &mut st, out);
    }
}

fn publish(inner: &Inner, st: &mut State, out: Vec<TspEvent>) {
    for event in out {
        st.seq += 1;
        let sequenced = Sequenced { seq: st.seq, event };
        if st.history_cap > 0 {
            if st.history.len() == st.history_cap {
                st.history.pop_front();
            }
            st.history.push_back(sequenced.clone());
        }
        // No subscriber is not an error: events are also kept in the history.
        let _ = inner.events.send(sequenced);
    }
}

fn on_complete(
    _inner: &Inner,
    st: &mut State,
    request: RequestId,
    outcome: Outcome,
    out: &mut Vec<TspEvent>,
) {
    let Some(pending) = st.pending.remove(&request) else {
        tracing::warn!(request = %request, "Driver completed a request that is not pending (twice, or unknown); ignored.");
        return;
    };
    if outcome.is_err() {
        // A call whose creation failed is invalid afterwards.
        for call in &pending.created {
            if let Some(entry) = st.calls.get_mut(call) {
                if entry.announced && !entry.state.is_idle() {
                    entry.state = CallState::Idle;
                    if st.is_open(pending.line) {
                        out.push(TspEvent::CallState {
                            line: pending.line,
                            call: *call,
                            state: CallState::Idle,
                        });
                    }
                } else if !entry.announced {
                    st.calls.remove(call);
                }
            }
        }
    }
    if !pending.silent {
        out.push(TspEvent::Completed {
            request,
            line: pending.line,
            result: outcome.into(),
        });
    }
}

fn on_driver_event(
    inner: &Inner,
    st: &mut State,
    driver: usize,
    event: DriverEvent,
    out: &mut Vec<TspEvent>,
) {
    if let DriverEvent::LineCreated { info } = event {
        let slot = (driver, info.key.clone());
        let existing = st.by_key.get(&slot).copied();
        let id = match existing {
            Some(id) => id,
            None => {
                let id = st.allocate_line(driver, &info.key);
                st.by_key.insert(slot, id);
                id
            }
        };
        let name = info.name.clone();
        let in_service = info.in_service;
        match st.lines.get_mut(&id) {
            Some(line) if !line.removed => {
                line.info = info;
                line.in_service = in_service;
                return;
            }
            _ => {
                st.lines.insert(
                    id,
                    LineEntry {
                        driver,
                        info,
                        in_service,
                        opens: 0,
                        removed: false,
                        addresses: BTreeMap::new(),
                    },
                );
            }
        }
        tracing::info!(line = %id, name = %name, "Line created.");
        out.push(TspEvent::LineCreated { line: id, name });
        return;
    }
    let Some(line) = st.by_key.get(&(driver, event.line().clone())).copied() else {
        tracing::warn!(key = %event.line(), "Driver reported on a line it never created; ignored.");
        return;
    };
    let open = st.is_open(line);
    match event {
        DriverEvent::LineCreated { .. } => {}
        DriverEvent::LineRemoved { .. } => {
            if let Some(entry) = st.lines.get_mut(&line) {
                entry.removed = true;
                entry.opens = 0;
            }
            st.calls.retain(|_, c| c.line != line);
            out.push(TspEvent::LineRemoved { line });
        }
        DriverEvent::LineInService { .. } | DriverEvent::LineOutOfService { .. } => {
            let (in_service, reason) = match event {
                DriverEvent::LineOutOfService { reason, .. } => (false, Some(reason)),
                _ => (true, None),
            };
            if let Some(entry) = st.lines.get_mut(&line) {
                if entry.in_service == in_service {
                    return;
                }
                entry.in_service = in_service;
            }
            if open {
                out.push(TspEvent::LineService {
                    line,
                    in_service,
                    reason,
                });
            }
        }
        DriverEvent::NewCall {
            call,
            state,
            mut info,
            ..
        } => {
            if st.calls.contains_key(&call) {
                tracing::warn!(call = %call, "Driver announced a call id twice; ignored.");
                return;
            }
            format_rules(inner, st, driver, line, &mut info);
            st.calls.insert(
                call,
                CallEntry {
                    line,
                    state,
                    info: info.clone(),
                    announced: open,
                },
            );
            if open {
                out.push(TspEvent::NewCall { line, call, info });
                out.push(TspEvent::CallState { line, call, state });
            }
        }
        DriverEvent::CallState { call, state, .. } => {
            let Some(entry) = st.calls.get_mut(&call).filter(|c| c.line == line) else {
                tracing::debug!(call = %call, "State for an unknown or closed call; ignored.");
                return;
            };
            if entry.state.is_idle() || entry.state == state {
                // Idle is terminal, and a repeated state (phones report some twice) is news to
                // nobody.
                return;
            }
            entry.state = state;
            if open {
                entry.announced = true;
                out.push(TspEvent::CallState { line, call, state });
            }
        }
        DriverEvent::CallInfo { call, mut info, .. } => {
            format_rules(inner, st, driver, line, &mut info);
            let Some(entry) = st.calls.get_mut(&call).filter(|c| c.line == line) else {
                return;
            };
            if entry.state.is_idle() || entry.info == info {
                return;
            }
            entry.info = info.clone();
            if open && entry.announced {
                out.push(TspEvent::CallInfo { line, call, info });
            }
        }
        DriverEvent::AddressState {
            address, status, ..
        } => {
            if let Some(entry) = st.lines.get_mut(&line) {
                entry.addresses.insert(address, status.clone());
            }
            if open {
                out.push(TspEvent::AddressState {
                    line,
                    address,
                    status,
                });
            }
        }
    }
}

fn format_rules(inner: &Inner, st: &State, driver: usize, line: LineId, info: &mut CallInfo) {
    let Some(entry) = st.lines.get(&line) else {
        return;
    };
    let driver_name = st
        .drivers
        .get(driver)
        .map(|d| d.name.as_str())
        .unwrap_or_default();
    let line_ref = LineRef {
        id: line,
        driver: driver_name,
        key: &entry.info.key,
    };
    format_info(inner.rules.as_ref(), line_ref, info);
}

/// Which operations a call allows now, given the line's capabilities (TAPI's dwCallFeatures).
pub fn call_features(caps: &LineCaps, state: &CallState) -> Vec<Operation> {
    caps.operations
        .iter()
        .filter(|op| {
            !matches!(
                op,
                Operation::MakeCall
                    | Operation::Forward
                    | Operation::DoNotDisturb
                    | Operation::AddressStatus
            ) && op.valid_in(state)
        })
        .collect()
}
