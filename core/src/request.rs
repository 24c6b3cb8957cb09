//! Requests: every operation an application can ask of a line, and what completes them.

use crate::{AddressId, CallId, Operation};
use serde::{Deserialize, Serialize};

/// One operation asked of a driver. It arrives wrapped in a [`RequestEnvelope`] carrying its
/// [`RequestId`](crate::RequestId) and must be completed exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Place a new call. The front end has already allocated `call`; the driver reports its
    /// states under that id. `destination: None` asks for dial tone (digits follow with `Dial`).
    MakeCall {
        /// The id the new call will carry.
        call: CallId,
        /// The address (identity) to call from.
        #[serde(default)]
        address: AddressId,
        /// The number or URI to call, already formatted by the dial rules; none for dial tone.
        destination: Option<String>,
    },
    /// Hang up a call (or reject an offered one).
    Drop {
        /// The call.
        call: CallId,
    },
    /// Answer an offered call.
    Answer {
        /// The call.
        call: CallId,
    },
    /// Put a connected call on hold.
    Hold {
        /// The call.
        call: CallId,
    },
    /// Retrieve a held call.
    Unhold {
        /// The call.
        call: CallId,
    },
    /// Deflect an offered call to another destination before it is answered.
    Redirect {
        /// The call.
        call: CallId,
        /// Where to send it.
        destination: String,
    },
    /// Transfer a call to a destination in one step.
    BlindTransfer {
        /// The call.
        call: CallId,
        /// Where to send it.
        destination: String,
    },
    /// Hold `call` pending transfer and create the consultation call `consult` in dial tone.
    SetupTransfer {
        /// The call to transfer.
        call: CallId,
        /// The id the consultation call will carry.
        consult: CallId,
    },
    /// Join the held call with the consultation call and leave.
    CompleteTransfer {
        /// The call held pending transfer.
        call: CallId,
        /// The consultation call.
        consult: CallId,
    },
    /// Swap the active and the held call.
    SwapHold {
        /// The call that is active now.
        active: CallId,
        /// The call that is held now.
        held: CallId,
    },
    /// Send digits on a call (dial-tone mode dialling, or DTMF on an established call).
    Dial {
        /// The call.
        call: CallId,
        /// The digits.
        digits: String,
    },
    /// Set or cancel call forwarding on an address.
    Forward {
        /// The address.
        #[serde(default)]
        address: AddressId,
        /// The forwarding to set; `None` cancels all forwarding.
        forward: Option<Forwarding>,
    },
    /// Switch do-not-disturb on or off for an address.
    SetDoNotDisturb {
        /// The address.
        #[serde(default)]
        address: AddressId,
        /// True to switch it on.
        enabled: bool,
    },
    /// Ask the driver for the current forwarding and do-not-disturb state of an address.
    QueryAddressStatus {
        /// The address.
        #[serde(default)]
        address: AddressId,
    },
}

impl Request {
    /// The operation this request performs, for capability checks.
    pub fn operation(&self) -> Operation {
        match self {
            Request::MakeCall { .. } => Operation::MakeCall,
            Request::Drop { .. } => Operation::Drop,
            Request::Answer { .. } => Operation::Answer,
            Request::Hold { .. } => Operation::Hold,
            Request::Unhold { .. } => Operation::Unhold,
            Request::Redirect { .. } => Operation::Redirect,
            Request::BlindTransfer { .. } => Operation::BlindTransfer,
            Request::SetupTransfer { .. } => Operation::SetupTransfer,
            Request::CompleteTransfer { .. } => Operation::CompleteTransfer,
            Request::SwapHold { .. } => Operation::SwapHold,
            Request::Dial { .. } => Operation::Dial,
            Request::Forward { .. } => Operation::Forward,
            Request::SetDoNotDisturb { .. } => Operation::DoNotDisturb,
            Request::QueryAddressStatus { .. } => Operation::AddressStatus,
        }
    }

    /// The existing call this request acts on, if any (`MakeCall` creates one instead).
    pub fn target_call(&self) -> Option<CallId> {
        match self {
            Request::Drop { call }
            | Request::Answer { call }
            | Request::Hold { call }
            | Request::Unhold { call }
            | Request::Redirect { call, .. }
            | Request::BlindTransfer { call, .. }
            | Request::SetupTransfer { call, .. }
            | Request::CompleteTransfer { call, .. }
            | Request::Dial { call, .. } => Some(*call),
            Request::SwapHold { active, .. } => Some(*active),
            Request::MakeCall { .. }
            | Request::Forward { .. }
            | Request::SetDoNotDisturb { .. }
            | Request::QueryAddressStatus { .. } => None,
        }
    }

    /// The call this request brings into being, if any.
    pub fn created_call(&self) -> Option<CallId> {
        match self {
            Request::MakeCall { call, .. } => Some(*call),
            Request::SetupTransfer { consult, .. } => Some(*consult),
            _ => None,
        }
    }

    /// The address this request acts on, for address-level operations.
    pub fn address(&self) -> Option<AddressId> {
        match self {
            Request::MakeCall { address, .. }
            | Request::Forward { address, .. }
            | Request::SetDoNotDisturb { address, .. }
            | Request::QueryAddressStatus { address } => Some(*address),
            _ => None,
        }
    }
}

/// Which calls a forwarding applies to (LINEFORWARDMODE, the modes desk phones offer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardMode {
    /// All calls.
    Unconditional,
    /// Calls from internal parties.
    UnconditionalInternal,
    /// Calls from external parties.
    UnconditionalExternal,
    /// Calls while busy.
    Busy,
    /// Calls not answered in time.
    NoAnswer,
}

/// A forwarding: which calls, and where they go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarding {
    /// Which calls.
    pub mode: ForwardMode,
    /// Where they go.
    pub destination: String,
}

/// The forwarding and do-not-disturb state of an address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressStatus {
    /// Forwardings in force (empty when none).
    #[serde(default)]
    pub forwarding: Vec<Forwarding>,
    /// Whether do-not-disturb is on.
    #[serde(default)]
    pub do_not_disturb: bool,
}

/// A request with everything the driver needs to route it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEnvelope {
    /// The id to complete.
    pub id: crate::RequestId,
    /// The driver's line.
    pub line: crate::LineKey,
    /// The operation.
    pub request: Request,
}

/// What a successful request returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Completion {
    /// Done; nothing to return.
    #[default]
    Done,
    /// The answer to [`Request::QueryAddressStatus`].
    AddressStatus(AddressStatus),
}

/// The outcome of a request: exactly one of these is delivered per request id.
pub type Outcome = Result<Completion, crate::DriverError>;
