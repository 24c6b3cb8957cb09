//! The front end's call table, with each line's count of live calls (neither Disconnected nor
//! Idle) kept correct on every insert, state change and removal, so the `max_calls` check of
//! MakeCall reads one number instead of scanning every call of every line.
//!
//! Every change of a call's state goes through [`CallTable::set_state`]: there is no other way
//! to reach a call mutably, so the counters cannot drift.

use crate::front::CallSnapshot;
use std::collections::HashMap;
use tapir_core::{CallId, CallInfo, CallState, LineId};

/// One call as the front end knows it.
pub(crate) struct CallEntry {
    /// Its line.
    pub line: LineId,
    /// Its state.
    pub state: CallState,
    /// What is known about it.
    pub info: CallInfo,
    /// States were published for this call (it is visible to applications).
    pub announced: bool,
    /// When the front end learnt of the call (milliseconds since the Unix epoch).
    pub created_ms: u64,
    /// When the call entered its current state (milliseconds since the Unix epoch).
    pub state_ms: u64,
}

impl CallEntry {
    /// A call learnt of now.
    pub fn new(line: LineId, state: CallState, info: CallInfo, announced: bool) -> Self {
        let now = now_ms();
        Self {
            line,
            state,
            info,
            announced,
            created_ms: now,
            state_ms: now,
        }
    }

    /// What applications read of the call.
    pub fn snapshot(&self, id: CallId) -> CallSnapshot {
        CallSnapshot {
            id,
            line: self.line,
            state: self.state,
            info: self.info.clone(),
            created_ms: self.created_ms,
            state_ms: self.state_ms,
        }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Every call not yet closed, and the live calls per line.
#[derive(Default)]
pub(crate) struct CallTable {
    calls: HashMap<CallId, CallEntry>,
    live: HashMap<LineId, u32>,
}

impl CallTable {
    /// The call, if known.
    pub fn get(&self, call: &CallId) -> Option<&CallEntry> {
        self.calls.get(call)
    }

    /// True if the call is known.
    pub fn contains(&self, call: &CallId) -> bool {
        self.calls.contains_key(call)
    }

    /// Every call.
    pub fn iter(&self) -> impl Iterator<Item = (&CallId, &CallEntry)> {
        self.calls.iter()
    }

    /// How many calls on `line` are live (count toward its `max_calls`).
    pub fn live_on(&self, line: LineId) -> u32 {
        self.live.get(&line).copied().unwrap_or(0)
    }

    /// Adds a call (replacing none: callers check [`Self::contains`] first).
    pub fn insert(&mut self, call: CallId, entry: CallEntry) {
        let (line, live) = (entry.line, entry.state.is_live());
        if let Some(old) = self.calls.insert(call, entry) {
            self.uncount(&old);
        }
        if live {
            *self.live.entry(line).or_insert(0) += 1;
        }
    }

    /// Forgets a call.
    pub fn remove(&mut self, call: &CallId) -> Option<CallEntry> {
        let entry = self.calls.remove(call)?;
        self.uncount(&entry);
        Some(entry)
    }

    /// Forgets every call of `line` (the line was removed).
    pub fn remove_line(&mut self, line: LineId) {
        self.calls.retain(|_, c| c.line != line);
        self.live.remove(&line);
    }

    /// Moves a call to `state`; returns the state it had.
    pub fn set_state(&mut self, call: &CallId, state: CallState) -> Option<CallState> {
        let entry = self.calls.get_mut(call)?;
        let old = std::mem::replace(&mut entry.state, state);
        entry.state_ms = now_ms();
        match (old.is_live(), state.is_live()) {
            (true, false) => {
                if let Some(n) = self.live.get_mut(&entry.line) {
                    *n = n.saturating_sub(1);
                }
            }
            (false, true) => *self.live.entry(entry.line).or_insert(0) += 1,
            _ => {}
        }
        Some(old)
    }

    /// Replaces a call's info.
    pub fn set_info(&mut self, call: &CallId, info: CallInfo) {
        if let Some(entry) = self.calls.get_mut(call) {
            entry.info = info;
        }
    }

    /// Marks a call as visible to applications.
    pub fn announce(&mut self, call: &CallId) {
        if let Some(entry) = self.calls.get_mut(call) {
            entry.announced = true;
        }
    }

    fn uncount(&mut self, entry: &CallEntry) {
        if entry.state.is_live() {
            if let Some(n) = self.live.get_mut(&entry.line) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapir_core::{BusyMode, DisconnectMode};

    fn entry(line: u32, state: CallState) -> CallEntry {
        CallEntry::new(LineId(line), state, CallInfo::default(), true)
    }

    #[test]
    fn the_live_count_follows_every_change() {
        let mut t = CallTable::default();
        t.insert(CallId(1), entry(0, CallState::Unknown));
        t.insert(CallId(2), entry(0, CallState::Offering));
        t.insert(CallId(3), entry(1, CallState::Connected));
        assert_eq!((t.live_on(LineId(0)), t.live_on(LineId(1))), (2, 1));
        t.set_state(&CallId(1), CallState::Busy(BusyMode::Station));
        assert_eq!(t.live_on(LineId(0)), 2, "Busy still holds its place");
        t.set_state(&CallId(1), CallState::Disconnected(DisconnectMode::Busy));
        assert_eq!(t.live_on(LineId(0)), 1);
        t.set_state(&CallId(1), CallState::Idle);
        assert_eq!(
            t.live_on(LineId(0)),
            1,
            "Disconnected to Idle changes nothing"
        );
        t.remove(&CallId(1));
        assert_eq!(t.live_on(LineId(0)), 1);
        t.remove(&CallId(2));
        assert_eq!(t.live_on(LineId(0)), 0);
        t.remove_line(LineId(1));
        assert_eq!(t.live_on(LineId(1)), 0);
        assert!(!t.contains(&CallId(3)));
        assert_eq!(t.set_state(&CallId(9), CallState::Idle), None);
    }
}
