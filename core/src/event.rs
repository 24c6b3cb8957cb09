//! Events: what a driver reports about its lines and calls.

use crate::{AddressId, AddressStatus, CallId, CallInfo, CallState, LineInfo, LineKey};
use serde::{Deserialize, Serialize};

/// Something that happened on a driver's line. Drivers send these through their
/// [`EventSink`](crate::EventSink); the front end maps line keys to device ids, applies the
/// number rules and fans the events out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DriverEvent {
    /// A line appeared (at start-up, or a phone reported in for the first time).
    LineCreated {
        /// The line.
        info: LineInfo,
    },
    /// A line is gone for good.
    LineRemoved {
        /// The line.
        line: LineKey,
    },
    /// The line can carry calls again (phone reachable, account registered).
    LineInService {
        /// The line.
        line: LineKey,
    },
    /// The line cannot carry calls now.
    LineOutOfService {
        /// The line.
        line: LineKey,
        /// Why, in a sentence.
        reason: String,
    },
    /// A call the application did not create appeared (incoming, or placed on the phone itself).
    /// The id comes from [`EventSink::new_call_id`](crate::EventSink::new_call_id).
    NewCall {
        /// The line.
        line: LineKey,
        /// The new call's id.
        call: CallId,
        /// Its first state (usually Offering).
        state: CallState,
        /// What is known about it.
        info: CallInfo,
    },
    /// A call changed state.
    CallState {
        /// The line.
        line: LineKey,
        /// The call.
        call: CallId,
        /// The new state.
        state: CallState,
    },
    /// What is known about a call changed (caller id arrived, connected party changed).
    CallInfo {
        /// The line.
        line: LineKey,
        /// The call.
        call: CallId,
        /// The whole info as it is now.
        info: CallInfo,
    },
    /// Forwarding or do-not-disturb of an address changed.
    AddressState {
        /// The line.
        line: LineKey,
        /// The address.
        address: AddressId,
        /// The state as it is now.
        status: AddressStatus,
    },
}

impl DriverEvent {
    /// The line the event concerns.
    pub fn line(&self) -> &LineKey {
        match self {
            DriverEvent::LineCreated { info } => &info.key,
            DriverEvent::LineRemoved { line }
            | DriverEvent::LineInService { line }
            | DriverEvent::LineOutOfService { line, .. }
            | DriverEvent::NewCall { line, .. }
            | DriverEvent::CallState { line, .. }
            | DriverEvent::CallInfo { line, .. }
            | DriverEvent::AddressState { line, .. } => line,
        }
    }
}
