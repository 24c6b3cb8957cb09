//! Driver instances at run time. [`Tsp::add_driver`] starts one; this file stops one
//! ([`Tsp::remove_driver`]: its calls end Disconnected then Idle, its lines go, the driver shuts
//! down), swaps the number rules and pinned line ids, and finds running instances by name.
//!
//! This is the one way instances come and go while the front end runs: the host's
//! configuration reload uses it, and so does failover between cluster nodes (`Removal::failed`).

use super::{
    err, panic_text, CallState, DriverError, ErrorKind, Input, LineId, LineKey, NumberRules,
    PhoneDriver, RequestResult, SlotState, State, Tsp, TspEvent,
};
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tapir_core::{CallId, DisconnectMode};

/// The mode of the Disconnected state a call shows when its driver instance is removed.
pub const REMOVED_MODE: DisconnectMode = DisconnectMode::Unavailable;

/// How an instance is removed: [`Removal::stop`] for a reload (calls are hung up through the
/// driver), [`Removal::failed`] when whatever ran its calls is gone (a cluster node that
/// failed): calls end at once with the cause in their info, nothing is sent to the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// How long calls get to end through the driver (with `drop_calls`).
    pub grace: Duration,
    /// Drop every call through the driver, so it hangs up properly.
    pub drop_calls: bool,
    /// The Disconnected mode calls show.
    pub mode: DisconnectMode,
    /// Put in each call's info (`cause`) before it shows Disconnected.
    pub cause: Option<String>,
}

impl Removal {
    /// A reload's removal: calls are dropped through the driver within `grace`.
    pub fn stop(grace: Duration) -> Self {
        Self {
            grace,
            drop_calls: true,
            mode: REMOVED_MODE,
            cause: None,
        }
    }

    /// The calls' owner failed: they end Disconnected with `cause`, then Idle, at once.
    pub fn failed(cause: impl Into<String>) -> Self {
        Self {
            grace: Duration::ZERO,
            drop_calls: false,
            mode: REMOVED_MODE,
            cause: Some(cause.into()),
        }
    }
}

/// The steps of removing an instance. They run on the event loop, which alone publishes.
pub(super) enum Step {
    /// Every call still up on the instance's lines shows Disconnected (with this mode, after
    /// this cause in its info).
    Disconnect(DisconnectMode, Option<String>),
    /// The instance is gone: calls left end Idle, its pending requests fail, its lines go.
    Remove,
}

/// What removing a driver instance ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovedDriver {
    /// The lines that were removed.
    pub lines: Vec<LineId>,
    /// The calls that were still up and were ended.
    pub calls: Vec<CallId>,
}

impl Tsp {
    /// Stops the driver instance `name` and takes its lines away, in this order:
    /// 1. applications' requests on its lines are refused (`Disconnected`);
    /// 2. every call still up shows `Disconnected` (mode [`REMOVED_MODE`]) and is dropped
    ///    through the driver, so it hangs up properly; the driver's `Idle` is awaited for up
    ///    to `grace`;
    /// 3. the driver is shut down (it completes what it still holds);
    /// 4. calls still not Idle become Idle, requests still pending fail with `Uninitialized`,
    ///    and each line is removed (`LineRemoved`).
    ///
    /// Line ids are remembered: when an instance of the same name brings the same line key
    /// back, the line gets its old id.
    ///
    /// # Errors
    /// `InvalidParameter` when no running instance has that name; `Uninitialized` after
    /// shutdown.
    pub fn remove_driver(&self, name: &str, grace: Duration) -> Result<RemovedDriver, DriverError> {
        self.remove_driver_with(name, Removal::stop(grace))
    }

    /// [`Tsp::remove_driver`] the way `how` says: with [`Removal::failed`] no call is dropped
    /// through the driver and none waits; each shows the cause, Disconnected, then Idle.
    ///
    /// # Errors
    /// As [`Tsp::remove_driver`].
    pub fn remove_driver_with(
        &self,
        name: &str,
        how: Removal,
    ) -> Result<RemovedDriver, DriverError> {
        let grace = how.grace;
        let (index, driver, lines, up) = {
            let mut st = self.inner.lock();
            if st.shut_down {
                return Err(err(ErrorKind::Uninitialized, "the front end is shut down"));
            }
            let index = st
                .drivers
                .iter()
                .position(|d| d.name == name && d.state == SlotState::Running)
                .ok_or_else(|| {
                    err(
                        ErrorKind::InvalidParameter,
                        format!("no running driver instance named {name:?}"),
                    )
                })?;
            st.drivers[index].state = SlotState::Leaving;
            let driver = st.drivers[index].driver.clone();
            let lines = lines_of(&st, index);
            let up: Vec<CallId> = st
                .calls
                .iter()
                .filter(|(_, c)| lines.contains(&c.line) && !c.state.is_idle())
                .map(|(id, _)| *id)
                .collect();
            (index, driver, lines, up)
        };
        self.step(index, Step::Disconnect(how.mode, how.cause.clone()));
        if how.drop_calls {
            for call in &up {
                let drop = crate::Action::Drop { call: *call };
                if let Err(error) = self.submit_inner(drop, true, None, None) {
                    tracing::debug!(call = %call, %error, "Drop of a call of a removed instance refused.");
                }
            }
        }
        let deadline = Instant::now() + grace;
        // With a failed owner nothing was dropped: nothing to wait for.
        let mut waiting = how.drop_calls;
        while waiting {
            self.sync();
            let left = {
                let st = self.inner.lock();
                up.iter()
                    .filter(|c| st.calls.get(c).is_some_and(|c| !c.state.is_idle()))
                    .count()
            };
            waiting = left > 0 && Instant::now() < deadline;
            if waiting {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(driver) = driver {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| driver.shutdown())) {
                tracing::warn!(instance = name, panic = %panic_text("shutting down", &panic), "Driver panicked while being removed.");
            }
        }
        self.step(index, Step::Remove);
        tracing::info!(
            instance = name,
            lines = lines.len(),
            calls = up.len(),
            "Driver instance removed."
        );
        let mut calls = up;
        calls.sort();
        Ok(RemovedDriver { lines, calls })
    }

    /// The running driver instance `name`.
    pub fn driver(&self, name: &str) -> Option<Arc<dyn PhoneDriver>> {
        let st = self.inner.lock();
        st.drivers
            .iter()
            .find(|d| d.name == name && d.state == SlotState::Running)
            .and_then(|d| d.driver.clone())
    }

    /// Every running driver instance with its name, in the order they were added.
    pub fn drivers(&self) -> Vec<(String, Arc<dyn PhoneDriver>)> {
        let st = self.inner.lock();
        st.drivers
            .iter()
            .filter(|d| d.state == SlotState::Running)
            .filter_map(|d| Some((d.name.clone(), d.driver.clone()?)))
            .collect()
    }

    /// Replaces the number rules; numbers dialled or reported from now on use them.
    pub fn set_rules(&self, rules: Arc<dyn NumberRules>) {
        self.inner.lock().rules = rules;
    }

    /// Replaces the pinned line ids. Lines that exist keep their ids; a new pin applies when its
    /// line appears next (an instance that is added or restarted).
    pub fn set_pinned(&self, pinned: Vec<(String, LineKey, LineId)>) {
        self.inner.lock().pinned = pinned.into_iter().map(|(d, k, id)| ((d, k), id)).collect();
    }

    fn step(&self, driver: usize, step: Step) {
        let (done, wait) = mpsc::channel();
        if self.inner.send(Input::Retire(driver, step, done)) {
            let _ = wait.recv_timeout(Duration::from_secs(10));
        }
    }
}

fn lines_of(st: &State, driver: usize) -> Vec<LineId> {
    st.lines
        .iter()
        .filter(|(_, l)| l.driver == driver && !l.removed)
        .map(|(id, _)| *id)
        .collect()
}

/// Runs a step of [`Tsp::remove_driver`] on the event loop.
pub(super) fn retire(st: &mut State, driver: usize, step: Step, out: &mut Vec<TspEvent>) {
    let lines = lines_of(st, driver);
    let open: HashSet<LineId> = lines.iter().copied().filter(|l| st.is_open(*l)).collect();
    let on_lines: HashSet<LineId> = lines.iter().copied().collect();
    let mut calls: Vec<CallId> = st
        .calls
        .iter()
        .filter(|(_, c)| on_lines.contains(&c.line))
        .map(|(id, _)| *id)
        .collect();
    calls.sort();
    let (target, cause) = match &step {
        Step::Disconnect(mode, cause) => (CallState::Disconnected(*mode), cause.clone()),
        Step::Remove => (CallState::Idle, None),
    };
    for id in calls {
        let Some(call) = st.calls.get(&id) else {
            continue;
        };
        let done = match step {
            Step::Disconnect(..) => {
                call.state.is_idle() || matches!(call.state, CallState::Disconnected(_))
            }
            Step::Remove => call.state.is_idle(),
        };
        if done {
            continue;
        }
        let line = call.line;
        if let Some(cause) = &cause {
            let mut info = call.info.clone();
            info.cause = Some(cause.clone());
            let announced = call.announced;
            st.calls.set_info(&id, info.clone());
            if open.contains(&line) && announced {
                out.push(TspEvent::CallInfo {
                    line,
                    call: id,
                    info,
                });
            }
        }
        st.calls.set_state(&id, target);
        if open.contains(&line) {
            st.calls.announce(&id);
            out.push(TspEvent::CallState {
                line,
                call: id,
                state: target,
            });
        }
    }
    if matches!(step, Step::Disconnect(..)) {
        return;
    }
    if let Some(slot) = st.drivers.get_mut(driver) {
        slot.state = SlotState::Retired;
        slot.driver = None;
    }
    let mut stuck: Vec<_> = st
        .pending
        .iter()
        .filter(|(_, p)| on_lines.contains(&p.line))
        .map(|(id, _)| *id)
        .collect();
    stuck.sort();
    for id in stuck {
        if let Some(pending) = st.pending.remove(&id) {
            let result = RequestResult::Err(err(
                ErrorKind::Uninitialized,
                "the line's driver instance was removed",
            ));
            pending.deliver(id, result, &mut st.outlets, out);
        }
    }
    for line in lines {
        if let Some(entry) = st.lines.get_mut(&line) {
            entry.removed = true;
            entry.opens = 0;
        }
        st.calls.remove_line(line);
        tracing::info!(line = %line, "Line removed with its driver instance.");
        out.push(TspEvent::LineRemoved { line });
    }
    st.by_key.retain(|(d, _), _| *d != driver);
}
