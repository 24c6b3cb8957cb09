//! The front end: the line table, the call table, pending requests, and turning driver reports
//! into application events.
//!
//! Application calls ([`Tsp::submit`], [`Tsp::open_line`], ...) are checked and recorded under
//! one lock, then handed to the driver outside the lock. A driver's report is applied under the
//! same lock, which updates the tables and publishes [`Sequenced`] events: on the reporting
//! thread when nothing is queued for the *event loop* (one thread), else queued behind what is
//! (`Inner::apply_or_queue`). Publishing only ever happens under the lock, so subscribers never
//! see two events at once or out of order, and each driver's reports keep their order.
//!
//! Driver instances come and go at run time through [`Tsp::add_driver`] and
//! [`Tsp::remove_driver`] (in `front/instances.rs`): the one way instances start and stop.

use crate::calls::{CallEntry, CallTable};
use crate::delivery::{Follower, Outlets, RequestWatch, Waiter};
use crate::numbers::{format_info, LineRef, NumberRules, Verbatim};
use crate::{Accepted, Action, RequestResult, Sequenced, TspEvent};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;
use tapir_core::{
    AddressId, AddressStatus, CallId, CallInfo, CallState, DriverError, DriverEvent, ErrorKind,
    EventSink, LineCaps, LineId, LineInfo, LineKey, Operation, Outcome, PhoneDriver, Request,
    RequestEnvelope, RequestId, SharedSink,
};
use tokio::sync::broadcast;

mod instances;
pub use instances::{Removal, RemovedDriver};

/// Where line ids come from besides the front end's own counter: a cluster hands out one id
/// per (driver instance, line key) for every node. Asked only when a line appears whose id is
/// not pinned (never per request).
pub trait LineIds: Send + Sync {
    /// The id line `key` of instance `driver` must have, or `None` to let the front end pick.
    fn line_id(&self, driver: &str, key: &LineKey) -> Option<LineId>;
}

/// Lines, calls and the event position they reflect, read together under one lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The position of the newest event the tables reflect.
    pub seq: u64,
    /// The lines.
    pub lines: Vec<LineSnapshot>,
    /// Their calls.
    pub calls: Vec<CallSnapshot>,
}

/// A request whose ids another front end allocated (a cluster node forwards a request to the
/// node that owns the line): accepted here under the same request and call ids, with the dial
/// rules already applied.
struct Preset {
    id: RequestId,
    request: Request,
}

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
    /// Call and request ids start after this number (0 alone: from 1). Cluster nodes give
    /// each run a range of its own, so ids never collide between nodes.
    pub id_base: u64,
}

impl Default for TspConfig {
    fn default() -> Self {
        Self {
            line_base: 0,
            pinned: Vec::new(),
            history: 4096,
            callback_base: None,
            state_dir: None,
            id_base: 0,
        }
    }
}

/// A line as applications see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSnapshot {
    /// The call.
    pub id: CallId,
    /// Its line.
    pub line: LineId,
    /// Its state (`unknown` until the driver reports one).
    pub state: CallState,
    /// What is known.
    pub info: CallInfo,
    /// When the front end learnt of the call, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// When the call entered its current state, in milliseconds since the Unix epoch (the
    /// page's call durations).
    pub state_ms: u64,
}

/// The front end. Cheap to share behind an `Arc`.
pub struct Tsp {
    inner: Arc<Inner>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

struct Inner {
    state: Mutex<State>,
    tx: mpsc::Sender<Input>,
    /// Inputs sent to the event thread and not yet applied. A driver's report is applied on
    /// the driver's own thread when this is 0 (checked under the state lock), else queued
    /// behind them, so every driver's reports keep their order ([`Sink::event`]).
    queued: AtomicUsize,
    events: broadcast::Sender<Sequenced>,
    next_call: Arc<AtomicU64>,
    next_request: AtomicU64,
    callback_base: Option<String>,
    state_dir: Option<std::path::PathBuf>,
}

enum Input {
    Report(Report),
    /// A Drop of a Disconnected call, answered by the front end itself: the call goes Idle and
    /// the request completes Ok (the driver already holds nothing for the call).
    DropDisconnected(RequestId, CallId),
    Barrier(mpsc::Sender<()>),
    /// A step of removing a driver instance (see `instances`), then a signal when done.
    Retire(usize, instances::Step, mpsc::Sender<()>),
    Stop,
}

/// What a driver reports through its sink (driver instance index first).
enum Report {
    Event(usize, Box<DriverEvent>),
    Complete(usize, RequestId, Outcome),
}

struct DriverSlot {
    name: String,
    driver: Option<Arc<dyn PhoneDriver>>,
    state: SlotState,
}

/// Where a driver instance is in its life. Slots are never reused: a removed instance's slot
/// stays `Retired` (its sink's late reports are ignored), and an instance added again under the
/// same name gets a new slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Running,
    /// Being removed: applications' requests are refused, the front end's own drops go through.
    Leaving,
    Retired,
}

struct LineEntry {
    driver: usize,
    info: LineInfo,
    in_service: bool,
    opens: u32,
    removed: bool,
    addresses: BTreeMap<AddressId, AddressStatus>,
}

struct Pending {
    line: LineId,
    created: Vec<CallId>,
    /// Internal requests (a drop issued by `close_call`) complete without an event.
    silent: bool,
    /// The submitter's own copy of the completion ([`Tsp::submit_watched`]).
    waiter: Option<Waiter>,
    /// For the request-duration histogram: what, on which driver instance, since when.
    operation: Operation,
    driver: usize,
    since: Instant,
    /// The call a Drop is for: a Drop the driver fails as an unknown call that it has reported
    /// Disconnected meanwhile is answered by the front end ([`on_complete`]).
    drops: Option<CallId>,
}

impl Pending {
    /// Hands `result` to the request's waiter, if any, and (unless silent) to `out` as its
    /// completion event.
    fn deliver(
        self,
        request: RequestId,
        result: RequestResult,
        outlets: &mut Outlets,
        out: &mut Vec<TspEvent>,
    ) {
        if let Some(waiter) = self.waiter {
            outlets.complete(waiter, result.clone());
        }
        if !self.silent {
            out.push(TspEvent::Completed {
                request,
                line: self.line,
                result,
            });
        }
    }
}

struct State {
    drivers: Vec<DriverSlot>,
    lines: BTreeMap<LineId, LineEntry>,
    by_key: HashMap<(usize, LineKey), LineId>,
    pinned: HashMap<(String, LineKey), LineId>,
    /// Every id handed out, by (driver instance name, line key): a line that goes and comes
    /// back (also with its instance restarted) keeps its id.
    known: HashMap<(String, LineKey), LineId>,
    rules: Arc<dyn NumberRules>,
    line_ids: Option<Arc<dyn LineIds>>,
    calls: CallTable,
    pending: HashMap<RequestId, Pending>,
    next_line: u32,
    seq: u64,
    history: VecDeque<Sequenced>,
    history_cap: usize,
    shut_down: bool,
    /// The event loop has stopped (after shutdown): reports are no longer applied.
    stopped: bool,
    /// Followers and watched completions: deliveries that cannot lag.
    outlets: Outlets,
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
    /// Weak: the front end owns the drivers, which own their sinks.
    inner: std::sync::Weak<Inner>,
    next_call: Arc<AtomicU64>,
    callback_url: Option<String>,
    state_dir: Option<std::path::PathBuf>,
}

impl EventSink for Sink {
    fn event(&self, event: DriverEvent) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        // A new line may need its shared id first (a cluster asks NATS): the event thread
        // does that without holding the lock.
        if matches!(event, DriverEvent::LineCreated { .. }) {
            inner.send(Input::Report(Report::Event(self.driver, Box::new(event))));
            return;
        }
        inner.apply_or_queue(Report::Event(self.driver, Box::new(event)));
    }

    fn complete(&self, request: RequestId, outcome: Outcome) {
        if let Some(inner) = self.inner.upgrade() {
            inner.apply_or_queue(Report::Complete(self.driver, request, outcome));
        }
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
                known: HashMap::new(),
                rules,
                line_ids: None,
                calls: CallTable::default(),
                pending: HashMap::new(),
                next_line: config.line_base,
                seq: 0,
                history: VecDeque::new(),
                history_cap: config.history,
                shut_down: false,
                stopped: false,
                outlets: Outlets::default(),
            }),
            tx,
            queued: AtomicUsize::new(0),
            events,
            next_call: Arc::new(AtomicU64::new(config.id_base + 1)),
            next_request: AtomicU64::new(config.id_base + 1),
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
            if st
                .drivers
                .iter()
                .any(|d| d.name == name && d.state != SlotState::Retired)
            {
                return Err(err(
                    ErrorKind::InvalidParameter,
                    format!("a driver instance named {name:?} exists already"),
                ));
            }
            st.drivers.push(DriverSlot {
                name: name.to_owned(),
                driver: None,
                state: SlotState::Running,
            });
            st.drivers.len() - 1
        };
        let sink: SharedSink = Arc::new(Sink {
            driver: index,
            inner: Arc::downgrade(&self.inner),
            next_call: Arc::clone(&self.inner.next_call),
            callback_url: self
                .inner
                .callback_base
                .as_ref()
                .map(|base| format!("{}/{name}", base.trim_end_matches('/'))),
            state_dir: self.inner.state_dir.as_ref().map(|dir| dir.join(name)),
        });
        let built = catch_unwind(AssertUnwindSafe(|| build(sink)))
            .unwrap_or_else(|panic| Err(DriverError::failed(panic_text("building", &panic))));
        let built = match built {
            Ok(built) => built,
            Err(error) => {
                // The name is free again (a later attempt, a reload, a cluster's retry).
                if let Some(slot) = self.inner.lock().drivers.get_mut(index) {
                    slot.state = SlotState::Retired;
                }
                return Err(error);
            }
        };
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
        let mut calls: Vec<_> = st.calls.iter().map(|(id, c)| c.snapshot(*id)).collect();
        calls.sort_by_key(|c| c.id);
        calls
    }

    /// One call.
    pub fn call(&self, id: CallId) -> Option<CallSnapshot> {
        let st = self.inner.lock();
        st.calls.get(&id).map(|c| c.snapshot(id))
    }

    /// How many calls of a line hold a place toward its `max_calls` now (calls that are neither
    /// Disconnected nor Idle), or `None` for an unknown line.
    pub fn live_calls(&self, id: LineId) -> Option<u32> {
        let st = self.inner.lock();
        st.lines
            .get(&id)
            .filter(|l| !l.removed)
            .map(|_| st.calls.live_on(id))
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

    /// Follows every event published from now on, none skipped (see [`Follower`]): for the
    /// host's own bookkeeping, which must see every completion and every ended call. Its
    /// consumer must keep up; clients that may fall behind use [`Tsp::subscribe`].
    pub fn follow(&self) -> Follower {
        self.inner.lock().outlets.follow()
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

    /// The lines of driver instance `driver` (every line with `None`) and their calls, with
    /// the position of the newest event they reflect, read at one instant.
    pub fn snapshot(&self, driver: Option<&str>) -> Snapshot {
        let st = self.inner.lock();
        let lines: Vec<LineSnapshot> = st
            .lines
            .iter()
            .filter(|(_, l)| !l.removed)
            .map(|(id, l)| st.line_snapshot(*id, l))
            .filter(|l| driver.is_none_or(|d| l.driver == d))
            .collect();
        let ids: std::collections::HashSet<LineId> = lines.iter().map(|l| l.id).collect();
        let mut calls: Vec<CallSnapshot> = st
            .calls
            .iter()
            .filter(|(_, c)| ids.contains(&c.line))
            .map(|(id, c)| c.snapshot(*id))
            .collect();
        calls.sort_by_key(|c| c.id);
        Snapshot {
            seq: st.seq,
            lines,
            calls,
        }
    }

    /// Where line ids come from besides pins and the front end's counter (a cluster's shared
    /// table). Lines that exist keep their ids.
    pub fn set_line_ids(&self, ids: Arc<dyn LineIds>) {
        self.inner.lock().line_ids = Some(ids);
    }

    /// Checks an action against the line's capabilities and the call's state, records it, and
    /// hands it to the driver.
    ///
    /// # Errors
    /// The request is refused at once: no completion will follow.
    pub fn submit(&self, action: Action) -> Result<Accepted, DriverError> {
        self.submit_inner(action, false, None, None)
    }

    /// Accepts a request another front end checked and numbered (cluster forwarding to the
    /// line's owner): the same checks as [`Tsp::submit`], but the request and the calls it
    /// creates keep the ids they were given, and the dial rules (applied there) are not
    /// applied again. Its completion is published as usual.
    ///
    /// # Errors
    /// The request is refused at once (as by [`Tsp::submit`], or because an id is in use).
    pub fn submit_forwarded(
        &self,
        line: LineId,
        id: RequestId,
        request: Request,
    ) -> Result<Accepted, DriverError> {
        let action = action_of(line, &request);
        self.submit_inner(action, false, None, Some(Preset { id, request }))
    }

    /// Like [`Tsp::submit`], and also hands back the request's own completion, registered
    /// before the driver sees the request, so it cannot be missed however busy the event
    /// stream is. The `completed` event is published as usual.
    ///
    /// # Errors
    /// The request is refused at once: no completion will follow.
    pub fn submit_watched(&self, action: Action) -> Result<(Accepted, RequestWatch), DriverError> {
        let (waiter, watch) = crate::delivery::watch();
        let accepted = self.submit_inner(action, false, Some(waiter), None)?;
        Ok((accepted, watch))
    }

    fn submit_inner(
        &self,
        action: Action,
        silent: bool,
        waiter: Option<Waiter>,
        preset: Option<Preset>,
    ) -> Result<Accepted, DriverError> {
        let (driver, envelope, created) = {
            let mut st = self.inner.lock();
            let rules = Arc::clone(&st.rules);
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
                // Only live calls count: a Disconnected call holds no place (see
                // ARCHITECTURE.md, "when MakeCall completes").
                let live = st.calls.live_on(line_id);
                if live >= caps.max_calls {
                    return Err(err(
                        ErrorKind::ResourceUnavailable,
                        format!("line {line_id} carries {live} calls, its maximum"),
                    ));
                }
            }
            // The front end's own drops (`silent`: removing a driver instance, whose calls the
            // front end marked Disconnected while the driver still holds them) always reach the
            // driver; one the driver no longer knows is answered below all the same.
            if let (&Action::Drop { call }, false) = (&action, silent) {
                if st
                    .calls
                    .get(&call)
                    .is_some_and(|c| matches!(c.state, CallState::Disconnected(_)))
                {
                    // The driver forgot the call when it reported it Disconnected: the front
                    // end answers this Drop itself.
                    let id = match &preset {
                        Some(p) => st.free_request(p.id)?,
                        None => RequestId(self.inner.next_request.fetch_add(1, Ordering::Relaxed)),
                    };
                    st.pending.insert(
                        id,
                        Pending {
                            line: line_id,
                            created: Vec::new(),
                            silent,
                            waiter,
                            operation: op,
                            driver: driver_index,
                            since: Instant::now(),
                            drops: Some(call),
                        },
                    );
                    self.inner.send(Input::DropDisconnected(id, call));
                    return Ok(Accepted {
                        request: id,
                        call: None,
                    });
                }
            }
            let slot = st.drivers.get(driver_index);
            if slot.is_some_and(|d| d.state != SlotState::Running) && !silent {
                return Err(err(
                    ErrorKind::Disconnected,
                    format!("line {line_id}'s driver instance is being removed"),
                ));
            }
            let driver = slot
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
            let operation = action.operation();
            let (request, created, id) = match preset {
                None => {
                    let (request, created) = to_request(action, &mut new_call, &dial);
                    let id = RequestId(self.inner.next_request.fetch_add(1, Ordering::Relaxed));
                    (request, created, id)
                }
                Some(Preset { id, request }) => {
                    let id = st.free_request(id)?;
                    let created = created_by(&request);
                    if let Some(call) = created.iter().find(|c| st.calls.contains(c)) {
                        return Err(err(
                            ErrorKind::InvalidParameter,
                            format!("call id {call} is in use"),
                        ));
                    }
                    (request, created, id)
                }
            };
            for call in &created {
                st.calls.insert(
                    *call,
                    CallEntry::new(
                        line_id,
                        CallState::Unknown,
                        CallInfo {
                            direction: tapir_core::CallDirection::Outgoing,
                            ..CallInfo::default()
                        },
                        false,
                    ),
                );
            }
            let drops = match &request {
                Request::Drop { call } => Some(*call),
                _ => None,
            };
            st.pending.insert(
                id,
                Pending {
                    line: line_id,
                    created: created.clone(),
                    silent,
                    waiter,
                    operation,
                    driver: driver_index,
                    since: Instant::now(),
                    drops,
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
        let dropping = match &envelope.request {
            Request::Drop { call } => Some(*call),
            _ => None,
        };
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
                if let (Some(call), ErrorKind::InvalidCallHandle) = (dropping, error.kind) {
                    if self.drop_crossed_disconnect(id, call) {
                        return Ok(Accepted {
                            request: id,
                            call: None,
                        });
                    }
                }
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

    /// A Drop the driver refused as an unknown call may have crossed the driver's report that
    /// the call is Disconnected (drivers forget a call when they report it so). Once every
    /// report the driver sent before is applied, a call that is Disconnected now gets this Drop
    /// answered by the front end (true); anything else keeps the driver's refusal (false).
    fn drop_crossed_disconnect(&self, request: RequestId, call: CallId) -> bool {
        self.sync();
        let st = self.inner.lock();
        let disconnected = st
            .calls
            .get(&call)
            .is_some_and(|c| matches!(c.state, CallState::Disconnected(_)));
        if disconnected && st.pending.contains_key(&request) {
            self.inner.send(Input::DropDisconnected(request, call));
            return true;
        }
        false
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
            // A Disconnected call holds nothing in its driver: there is nothing to drop.
            !entry.state.is_live() || entry.state == CallState::Unknown
        };
        if !idle {
            if let Err(error) = self.submit_inner(Action::Drop { call }, true, None, None) {
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
            .filter(|c| c.state.is_live())
            .collect();
        for driver in drivers {
            if catch_unwind(AssertUnwindSafe(|| driver.shutdown())).is_err() {
                tracing::warn!("A driver panicked while shutting down.");
            }
        }
        self.inner.send(Input::Stop);
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
        if self.inner.send(Input::Barrier(done)) {
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
    /// Hands `input` to the event thread; false once it has stopped.
    fn send(&self, input: Input) -> bool {
        self.queued.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(input).is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Applies a driver's report on the calling thread when nothing is queued for the event
    /// thread, else queues it there. Applying in place saves a wake-up of the event thread
    /// per report (two thread switches), the largest cost per call the `versus_kamailio`
    /// bench found after the SIP runtime's own; the lock is the same either way.
    fn apply_or_queue(&self, report: Report) {
        let mut st = self.lock();
        if self.queued.load(Ordering::SeqCst) != 0 {
            drop(st);
            self.send(Input::Report(report));
            return;
        }
        if st.stopped {
            // After shutdown, reports are no longer wanted.
            return;
        }
        let mut out = Vec::new();
        apply_report(self, &mut st, report, None, &mut out);
        publish(self, &mut st, out);
    }

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

/// The calls a request creates.
fn created_by(request: &Request) -> Vec<CallId> {
    match request {
        Request::MakeCall { call, .. } => vec![*call],
        Request::SetupTransfer { consult, .. } => vec![*consult],
        _ => Vec::new(),
    }
}

/// The action a driver request came from (for the checks of a forwarded request); numbers
/// are taken as they are.
fn action_of(line: LineId, request: &Request) -> Action {
    match request.clone() {
        Request::MakeCall {
            address,
            destination,
            ..
        } => Action::MakeCall {
            line,
            address,
            destination,
        },
        Request::Drop { call } => Action::Drop { call },
        Request::Answer { call } => Action::Answer { call },
        Request::Hold { call } => Action::Hold { call },
        Request::Unhold { call } => Action::Unhold { call },
        Request::Redirect { call, destination } => Action::Redirect { call, destination },
        Request::BlindTransfer { call, destination } => Action::BlindTransfer { call, destination },
        Request::SetupTransfer { call, .. } => Action::SetupTransfer { call },
        Request::CompleteTransfer { call, consult } => Action::CompleteTransfer { call, consult },
        Request::SwapHold { active, held } => Action::SwapHold { active, held },
        Request::Dial { call, digits } => Action::Dial { call, digits },
        Request::Forward { address, forward } => Action::Forward {
            line,
            address,
            forward,
        },
        Request::SetDoNotDisturb { address, enabled } => Action::SetDoNotDisturb {
            line,
            address,
            enabled,
        },
        Request::QueryAddressStatus { address } => Action::QueryAddressStatus { line, address },
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

    /// A preset request id, if no pending request has it.
    fn free_request(&self, id: RequestId) -> Result<RequestId, DriverError> {
        if self.pending.contains_key(&id) {
            return Err(err(
                ErrorKind::InvalidParameter,
                format!("request id {id} is in use"),
            ));
        }
        Ok(id)
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

    fn allocate_line(&mut self, driver: usize, key: &LineKey, shared: Option<LineId>) -> LineId {
        let name = self
            .drivers
            .get(driver)
            .map(|d| d.name.clone())
            .unwrap_or_default();
        let slot = (name, key.clone());
        // A pinned id, else the id this line had before; either only while no other line that
        // is there now holds it (a pin added by a reload may name a taken id).
        for candidate in [
            self.pinned.get(&slot),
            shared.as_ref(),
            self.known.get(&slot),
        ]
        .into_iter()
        .flatten()
        {
            let taken = self.lines.get(candidate).is_some_and(|l| !l.removed);
            if !taken {
                return *candidate;
            }
            tracing::warn!(line = %candidate, driver = %slot.0, key = %slot.1, "Line id taken by another line; a new id is handed out.");
        }
        // Checked per candidate rather than by collecting every id first: at 10,000 lines
        // that was 10,000 × 10,000 steps while an instance started (pins are few).
        while self.lines.contains_key(&LineId(self.next_line))
            || self.pinned.values().any(|p| *p == LineId(self.next_line))
        {
            self.next_line += 1;
        }
        let id = LineId(self.next_line);
        self.next_line += 1;
        id
    }
}

/// The consumer of what is queued: inputs from the front end itself, new lines, and driver
/// reports that came while something was queued ([`Inner::apply_or_queue`]).
fn event_loop(inner: &Inner, rx: mpsc::Receiver<Input>) {
    while let Ok(input) = rx.recv() {
        // A new line's shared id is asked for before the lock is taken: the source may wait
        // (a cluster asks NATS), and nothing else may wait for the lock meanwhile.
        let shared = match &input {
            Input::Report(Report::Event(driver, event)) => match &**event {
                DriverEvent::LineCreated { info } => shared_id(inner, *driver, &info.key),
                _ => None,
            },
            _ => None,
        };
        let mut st = inner.lock();
        let mut out = Vec::new();
        match input {
            Input::Stop => {
                let leftover: Vec<_> = st.pending.drain().collect();
                for (id, pending) in leftover {
                    let result = RequestResult::Err(err(
                        ErrorKind::Uninitialized,
                        "the host shut down before the request completed",
                    ));
                    pending.deliver(id, result, &mut st.outlets, &mut out);
                }
                publish(inner, &mut st, out);
                st.outlets.close();
                st.stopped = true;
                return;
            }
            Input::Barrier(done) => {
                let _ = done.send(());
            }
            Input::Retire(driver, step, done) => {
                instances::retire(&mut st, driver, step, &mut out);
                publish(inner, &mut st, std::mem::take(&mut out));
                let _ = done.send(());
            }
            Input::Report(report) => apply_report(inner, &mut st, report, shared, &mut out),
            Input::DropDisconnected(request, call) => {
                idle_if_disconnected(&mut st, call, &mut out);
                on_complete(
                    inner,
                    &mut st,
                    request,
                    Ok(tapir_core::Completion::Done),
                    &mut out,
                );
            }
        }
        publish(inner, &mut st, out);
        // Under the lock: a report applied in place after this sees everything before it done.
        inner.queued.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Applies one driver report to the tables; `shared` is a new line's id from the shared source.
fn apply_report(
    inner: &Inner,
    st: &mut State,
    report: Report,
    shared: Option<LineId>,
    out: &mut Vec<TspEvent>,
) {
    match report {
        Report::Event(driver, event) => on_driver_event(inner, st, driver, *event, shared, out),
        Report::Complete(_driver, request, outcome) => {
            on_complete(inner, st, request, outcome, out)
        }
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
        st.outlets.publish(&sequenced);
        // No subscriber is not an error: events are also kept in the history.
        let _ = inner.events.send(sequenced);
    }
    // Watched completions go out once their report's events are published, so a watcher that
    // then reads the tables or the stream finds them there.
    st.outlets.deliver();
}

/// Moves a call the driver reported Disconnected (and so forgot) to Idle, as a Drop of it
/// does; false if the call is not Disconnected.
fn idle_if_disconnected(st: &mut State, call: CallId, out: &mut Vec<TspEvent>) -> bool {
    let Some((line, CallState::Disconnected(_))) = st.calls.get(&call).map(|c| (c.line, c.state))
    else {
        return false;
    };
    st.calls.set_state(&call, CallState::Idle);
    if st.is_open(line) {
        st.calls.announce(&call);
        out.push(TspEvent::CallState {
            line,
            call,
            state: CallState::Idle,
        });
    }
    true
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
    let outcome = match (outcome, pending.drops) {
        (Err(error), Some(call)) if error.kind == ErrorKind::InvalidCallHandle => {
            // The Drop crossed the driver's own report that the call ended (drivers forget a
            // call when they report it Disconnected; that report came through before this
            // completion): the call goes Idle here and the Drop succeeds.
            if idle_if_disconnected(st, call, out) {
                Ok(tapir_core::Completion::Done)
            } else {
                Err(error)
            }
        }
        (outcome, _) => outcome,
    };
    record_duration(st, &pending, &outcome);
    if outcome.is_err() {
        // A call whose creation failed never existed (the driver holds nothing for it): it is
        // forgotten, after an Idle for applications that already saw it.
        for call in &pending.created {
            if let Some(entry) = st.calls.remove(call) {
                if entry.announced && !entry.state.is_idle() && st.is_open(pending.line) {
                    out.push(TspEvent::CallState {
                        line: pending.line,
                        call: *call,
                        state: CallState::Idle,
                    });
                }
            }
        }
    }
    pending.deliver(request, outcome.into(), &mut st.outlets, out);
}

/// The id the shared source ([`LineIds`]) gives a line that has none here yet, asked with the
/// lock released.
fn shared_id(inner: &Inner, driver: usize, key: &LineKey) -> Option<LineId> {
    let (name, ids) = {
        let st = inner.lock();
        let ids = st.line_ids.clone()?;
        let name = st.drivers.get(driver)?.name.clone();
        if st.by_key.contains_key(&(driver, key.clone()))
            || st.pinned.contains_key(&(name.clone(), key.clone()))
        {
            return None;
        }
        (name, ids)
    };
    ids.line_id(&name, key)
}

fn on_driver_event(
    _inner: &Inner,
    st: &mut State,
    driver: usize,
    event: DriverEvent,
    shared: Option<LineId>,
    out: &mut Vec<TspEvent>,
) {
    if st
        .drivers
        .get(driver)
        .is_none_or(|d| d.state == SlotState::Retired)
    {
        tracing::debug!(key = %event.line(), "Report from a removed driver instance; ignored.");
        return;
    }
    if st
        .drivers
        .get(driver)
        .is_some_and(|d| d.state == SlotState::Leaving)
        && match &event {
            DriverEvent::NewCall { .. } => true,
            DriverEvent::CallState { state, .. } => !state.is_idle(),
            _ => false,
        }
    {
        // The instance is going: its calls show Disconnected until the driver says Idle.
        return;
    }
    if let DriverEvent::LineCreated { info } = event {
        let slot = (driver, info.key.clone());
        let existing = st.by_key.get(&slot).copied();
        let id = match existing {
            Some(id) => id,
            None => {
                let id = st.allocate_line(driver, &info.key, shared);
                st.by_key.insert(slot, id);
                if let Some(d) = st.drivers.get(driver) {
                    st.known.insert((d.name.clone(), info.key.clone()), id);
                }
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
            st.calls.remove_line(line);
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
            if st.calls.contains(&call) {
                tracing::warn!(call = %call, "Driver announced a call id twice; ignored.");
                return;
            }
            format_rules(st, driver, line, &mut info);
            st.calls
                .insert(call, CallEntry::new(line, state, info.clone(), open));
            if open {
                out.push(TspEvent::NewCall { line, call, info });
                out.push(TspEvent::CallState { line, call, state });
            }
        }
        DriverEvent::CallState { call, state, .. } => {
            let Some(entry) = st.calls.get(&call).filter(|c| c.line == line) else {
                tracing::debug!(call = %call, "State for an unknown or closed call; ignored.");
                return;
            };
            if entry.state.is_idle() || entry.state == state {
                // Idle is terminal, and a repeated state (phones report some twice) is news to
                // nobody.
                return;
            }
            st.calls.set_state(&call, state);
            if open {
                st.calls.announce(&call);
                out.push(TspEvent::CallState { line, call, state });
            }
        }
        DriverEvent::CallInfo { call, mut info, .. } => {
            format_rules(st, driver, line, &mut info);
            let Some(entry) = st.calls.get(&call).filter(|c| c.line == line) else {
                return;
            };
            if entry.state.is_idle() || entry.info == info {
                return;
            }
            let announced = entry.announced;
            st.calls.set_info(&call, info.clone());
            if open && announced {
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

fn format_rules(st: &State, driver: usize, line: LineId, info: &mut CallInfo) {
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
    format_info(st.rules.as_ref(), line_ref, info);
}

/// The histogram of how long requests take from submission to completion, per operation and
/// driver instance (a no-op unless the host installed a `metrics` recorder).
pub const REQUEST_DURATION: &str = "tapir_request_duration_seconds";

fn record_duration(st: &State, pending: &Pending, outcome: &Outcome) {
    if pending.silent {
        return;
    }
    let driver = st
        .drivers
        .get(pending.driver)
        .map(|d| d.name.clone())
        .unwrap_or_default();
    let result = match outcome {
        Ok(_) => "ok",
        Err(error) => error.kind.name(),
    };
    metrics::histogram!(
        REQUEST_DURATION,
        "operation" => pending.operation.name(),
        "driver" => driver,
        "result" => result
    )
    .record(pending.since.elapsed().as_secs_f64());
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
