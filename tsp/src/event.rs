//! What the front end tells applications: line, call and completion events with a sequence
//! number, already mapped to device ids and formatted numbers.

use serde::{Deserialize, Serialize};
use tapir_core::{
    AddressId, AddressStatus, CallId, CallInfo, CallState, Completion, DriverError, LineId,
    RequestId,
};

/// One application-facing event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TspEvent {
    /// A line device appeared (TAPI's LINE_CREATE).
    LineCreated {
        /// Its device id.
        line: LineId,
        /// Its name.
        name: String,
    },
    /// A line device is gone (LINE_REMOVE).
    LineRemoved {
        /// Its device id.
        line: LineId,
    },
    /// In or out of service (LINE_LINEDEVSTATE INSERVICE / OUTOFSERVICE).
    LineService {
        /// The line.
        line: LineId,
        /// In service now?
        in_service: bool,
        /// Why it is out of service.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A call the application did not create (LINE_NEWCALL, always followed by `CallState`).
    NewCall {
        /// The line.
        line: LineId,
        /// The call.
        call: CallId,
        /// What is known.
        info: CallInfo,
    },
    /// A call changed state (LINE_CALLSTATE).
    CallState {
        /// The line.
        line: LineId,
        /// The call.
        call: CallId,
        /// The state.
        state: CallState,
    },
    /// Call info changed (LINE_CALLINFO).
    CallInfo {
        /// The line.
        line: LineId,
        /// The call.
        call: CallId,
        /// The info now.
        info: CallInfo,
    },
    /// Forwarding / DND changed (LINE_ADDRESSSTATE FORWARD).
    AddressState {
        /// The line.
        line: LineId,
        /// The address.
        address: AddressId,
        /// The state now.
        status: AddressStatus,
    },
    /// A request completed (ASYNC_COMPLETION). Exactly one per accepted request.
    Completed {
        /// The request.
        request: RequestId,
        /// The line it ran on.
        line: LineId,
        /// Its outcome.
        result: RequestResult,
    },
}

impl TspEvent {
    /// The line the event concerns.
    pub fn line(&self) -> LineId {
        match self {
            TspEvent::LineCreated { line, .. }
            | TspEvent::LineRemoved { line }
            | TspEvent::LineService { line, .. }
            | TspEvent::NewCall { line, .. }
            | TspEvent::CallState { line, .. }
            | TspEvent::CallInfo { line, .. }
            | TspEvent::AddressState { line, .. }
            | TspEvent::Completed { line, .. } => *line,
        }
    }
}

/// A request's outcome in a serializable shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestResult {
    /// It worked.
    Ok(Completion),
    /// It failed.
    Err(DriverError),
}

impl From<Result<Completion, DriverError>> for RequestResult {
    fn from(value: Result<Completion, DriverError>) -> Self {
        match value {
            Ok(c) => RequestResult::Ok(c),
            Err(e) => RequestResult::Err(e),
        }
    }
}

/// An event with its position in the stream (strictly increasing, starting at 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequenced {
    /// Position in the event stream.
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: TspEvent,
}
