//! An `EventSink` that records everything a driver reports, with waits on what tests expect,
//! and helpers that submit requests to a driver directly (no front end in between).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tapir_core::{
    AddressId, CallId, CallInfo, CallState, DriverError, DriverEvent, EventSink, LineInfo, LineKey,
    Outcome, PhoneDriver, Request, RequestEnvelope, RequestId,
};

/// Call ids the recorder hands out for calls a driver creates itself (incoming calls) start
/// here, far from the ids tests pick for their own calls.
pub const FIRST_DRIVER_CALL_ID: u64 = 100_000;

/// Records every event and completion.
#[derive(Default)]
pub struct Recorder {
    /// Events, in the order reported.
    pub events: Mutex<Vec<DriverEvent>>,
    /// Completions, in the order reported.
    pub done: Mutex<Vec<(RequestId, Outcome)>>,
    cv: Condvar,
    next: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EventSink for Recorder {
    fn event(&self, event: DriverEvent) {
        lock(&self.events).push(event);
        self.cv.notify_all();
    }

    fn complete(&self, request: RequestId, outcome: Outcome) {
        lock(&self.done).push((request, outcome));
        self.cv.notify_all();
    }

    fn new_call_id(&self) -> CallId {
        CallId(FIRST_DRIVER_CALL_ID + self.next.fetch_add(1, Ordering::SeqCst))
    }
}

impl Recorder {
    /// A new, empty recorder.
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    /// Waits until `f` holds over the events, at most `limit`.
    ///
    /// # Panics
    /// On timeout, with `what` and every event seen.
    pub fn wait_for(&self, limit: Duration, what: &str, f: impl Fn(&[DriverEvent]) -> bool) {
        let end = Instant::now() + limit;
        let mut ev = lock(&self.events);
        loop {
            if f(&ev) {
                return;
            }
            let now = Instant::now();
            assert!(now < end, "timed out waiting for {what}; events: {:?}", *ev);
            ev = self
                .cv
                .wait_timeout(ev, end - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The outcome of request `id`, waiting at most `limit`.
    ///
    /// # Panics
    /// When it does not complete in time.
    pub fn wait_complete(&self, id: RequestId, limit: Duration) -> Outcome {
        let end = Instant::now() + limit;
        let mut done = lock(&self.done);
        loop {
            if let Some((_, o)) = done.iter().find(|(r, _)| *r == id) {
                return o.clone();
            }
            let now = Instant::now();
            assert!(
                now < end,
                "request {id} not completed within {limit:?}; states: {:?}",
                self.all_states()
            );
            done = self
                .cv
                .wait_timeout(done, end - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// How many times request `id` completed.
    pub fn completions_of(&self, id: RequestId) -> usize {
        lock(&self.done).iter().filter(|(r, _)| *r == id).count()
    }

    /// The states reported for `call`, in order.
    pub fn states(&self, call: CallId) -> Vec<CallState> {
        lock(&self.events)
            .iter()
            .filter_map(|e| match e {
                DriverEvent::CallState { call: c, state, .. } if *c == call => Some(*state),
                _ => None,
            })
            .collect()
    }

    /// Every (call, state) reported, in order.
    pub fn all_states(&self) -> Vec<(CallId, CallState)> {
        lock(&self.events)
            .iter()
            .filter_map(|e| match e {
                DriverEvent::CallState { call, state, .. } => Some((*call, *state)),
                _ => None,
            })
            .collect()
    }

    /// The last info reported for `call`.
    pub fn info(&self, call: CallId) -> Option<CallInfo> {
        lock(&self.events).iter().rev().find_map(|e| match e {
            DriverEvent::CallInfo { call: c, info, .. } if *c == call => Some(info.clone()),
            DriverEvent::NewCall { call: c, info, .. } if *c == call => Some(info.clone()),
            _ => None,
        })
    }

    /// Waits until `call` has been reported in `want`.
    ///
    /// # Panics
    /// On timeout.
    pub fn wait_state(&self, call: CallId, want: CallState, limit: Duration) {
        self.wait_for(limit, &format!("{call} {want:?}"), |ev| {
            ev.iter().any(|e| {
                matches!(e, DriverEvent::CallState { call: c, state, .. } if *c == call && *state == want)
            })
        });
    }

    /// How many events satisfy `f`.
    pub fn count(&self, f: impl Fn(&DriverEvent) -> bool) -> usize {
        lock(&self.events).iter().filter(|e| f(e)).count()
    }

    /// The calls the driver announced itself: (line, call, info).
    pub fn new_calls(&self) -> Vec<(LineKey, CallId, CallInfo)> {
        lock(&self.events)
            .iter()
            .filter_map(|e| match e {
                DriverEvent::NewCall {
                    line, call, info, ..
                } => Some((line.clone(), *call, info.clone())),
                _ => None,
            })
            .collect()
    }

    /// The lines the driver created.
    pub fn lines(&self) -> Vec<LineInfo> {
        lock(&self.events)
            .iter()
            .filter_map(|e| match e {
                DriverEvent::LineCreated { info } => Some(info.clone()),
                _ => None,
            })
            .collect()
    }
}

static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// A request id not used before in this test process.
pub fn rid() -> RequestId {
    RequestId(NEXT_REQUEST.fetch_add(1, Ordering::SeqCst))
}

/// Submits `request` on `line`; its id, or the driver's refusal.
///
/// # Errors
/// What the driver's `submit` returned.
pub fn submit(
    driver: &dyn PhoneDriver,
    line: &str,
    request: Request,
) -> Result<RequestId, DriverError> {
    let id = rid();
    driver
        .submit(RequestEnvelope {
            id,
            line: LineKey::new(line),
            request,
        })
        .map(|()| id)
}

/// MakeCall of call `call` to `dest` on `line`.
///
/// # Panics
/// When the driver refuses it.
pub fn make_call(driver: &dyn PhoneDriver, line: &str, call: u64, dest: &str) -> RequestId {
    match submit(
        driver,
        line,
        Request::MakeCall {
            call: CallId(call),
            address: AddressId(0),
            destination: Some(dest.into()),
        },
    ) {
        Ok(id) => id,
        Err(e) => panic!("MakeCall refused: {e}"),
    }
}

/// Drop of call `call` on `line`.
///
/// # Panics
/// When the driver refuses it.
pub fn drop_call(driver: &dyn PhoneDriver, line: &str, call: u64) -> RequestId {
    match submit(driver, line, Request::Drop { call: CallId(call) }) {
        Ok(id) => id,
        Err(e) => panic!("Drop refused: {e}"),
    }
}

/// BlindTransfer of call `call` on `line` to `to`.
///
/// # Panics
/// When the driver refuses it.
pub fn transfer(driver: &dyn PhoneDriver, line: &str, call: u64, to: &str) -> RequestId {
    match submit(
        driver,
        line,
        Request::BlindTransfer {
            call: CallId(call),
            destination: to.into(),
        },
    ) {
        Ok(id) => id,
        Err(e) => panic!("BlindTransfer refused: {e}"),
    }
}

/// Builds the built-in driver `name` with a JSON configuration. The caller makes sure the
/// driver's crate is linked (by naming any item of it), so its registration exists.
///
/// # Panics
/// When no such driver is registered or it does not build.
pub fn build_builtin(
    name: &str,
    config: &serde_json::Value,
    sink: Arc<Recorder>,
) -> Box<dyn PhoneDriver> {
    let Some(d) = tapir_core::builtin_driver(name) else {
        panic!("no built-in driver {name}");
    };
    match (d.build)(&config.to_string(), sink) {
        Ok(driver) => driver,
        Err(e) => panic!("{name} does not build: {e}"),
    }
}
