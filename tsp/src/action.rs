//! What an application asks of the front end, before ids are allocated and the line is resolved.

use serde::{Deserialize, Serialize};
use tapir_core::{AddressId, CallId, Forwarding, LineId, Operation};

/// One application operation. Call-level actions name only the call; the front end knows its line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Action {
    /// Place a call on a line; no destination asks for dial tone.
    MakeCall {
        /// The line.
        line: LineId,
        /// The address to call from.
        #[serde(default)]
        address: AddressId,
        /// What to dial, as the application gives it (the dial rules are applied).
        destination: Option<String>,
    },
    /// Hang up or reject.
    Drop {
        /// The call.
        call: CallId,
    },
    /// Answer an offered call.
    Answer {
        /// The call.
        call: CallId,
    },
    /// Hold.
    Hold {
        /// The call.
        call: CallId,
    },
    /// Retrieve.
    Unhold {
        /// The call.
        call: CallId,
    },
    /// Deflect an offered call.
    Redirect {
        /// The call.
        call: CallId,
        /// Where to.
        destination: String,
    },
    /// One-step transfer.
    BlindTransfer {
        /// The call.
        call: CallId,
        /// Where to.
        destination: String,
    },
    /// Start a consultation transfer; a consultation call is created.
    SetupTransfer {
        /// The call to transfer.
        call: CallId,
    },
    /// Finish a consultation transfer.
    CompleteTransfer {
        /// The held call.
        call: CallId,
        /// The consultation call.
        consult: CallId,
    },
    /// Swap active and held.
    SwapHold {
        /// Active now.
        active: CallId,
        /// Held now.
        held: CallId,
    },
    /// Send digits.
    Dial {
        /// The call.
        call: CallId,
        /// Digits (the dial rules are applied).
        digits: String,
    },
    /// Set or cancel forwarding.
    Forward {
        /// The line.
        line: LineId,
        /// The address.
        #[serde(default)]
        address: AddressId,
        /// `None` cancels.
        forward: Option<Forwarding>,
    },
    /// Do-not-disturb on or off.
    SetDoNotDisturb {
        /// The line.
        line: LineId,
        /// The address.
        #[serde(default)]
        address: AddressId,
        /// On or off.
        enabled: bool,
    },
    /// Read forwarding and DND.
    QueryAddressStatus {
        /// The line.
        line: LineId,
        /// The address.
        #[serde(default)]
        address: AddressId,
    },
}

impl Action {
    /// The operation, for capability checks.
    pub fn operation(&self) -> Operation {
        match self {
            Action::MakeCall { .. } => Operation::MakeCall,
            Action::Drop { .. } => Operation::Drop,
            Action::Answer { .. } => Operation::Answer,
            Action::Hold { .. } => Operation::Hold,
            Action::Unhold { .. } => Operation::Unhold,
            Action::Redirect { .. } => Operation::Redirect,
            Action::BlindTransfer { .. } => Operation::BlindTransfer,
            Action::SetupTransfer { .. } => Operation::SetupTransfer,
            Action::CompleteTransfer { .. } => Operation::CompleteTransfer,
            Action::SwapHold { .. } => Operation::SwapHold,
            Action::Dial { .. } => Operation::Dial,
            Action::Forward { .. } => Operation::Forward,
            Action::SetDoNotDisturb { .. } => Operation::DoNotDisturb,
            Action::QueryAddressStatus { .. } => Operation::AddressStatus,
        }
    }

    /// The line named by a line-level action.
    pub fn line(&self) -> Option<LineId> {
        match self {
            Action::MakeCall { line, .. }
            | Action::Forward { line, .. }
            | Action::SetDoNotDisturb { line, .. }
            | Action::QueryAddressStatus { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The call a call-level action acts on.
    pub fn call(&self) -> Option<CallId> {
        match self {
            Action::Drop { call }
            | Action::Answer { call }
            | Action::Hold { call }
            | Action::Unhold { call }
            | Action::Redirect { call, .. }
            | Action::BlindTransfer { call, .. }
            | Action::SetupTransfer { call }
            | Action::CompleteTransfer { call, .. }
            | Action::Dial { call, .. } => Some(*call),
            Action::SwapHold { active, .. } => Some(*active),
            _ => None,
        }
    }
}

/// What the front end says when it accepts an action: the request id to wait for, and the call
/// the action created (MakeCall, SetupTransfer), usable at once as TSPI's lphdCall is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The request; exactly one completion follows.
    pub request: tapir_core::RequestId,
    /// The call created by the action, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallId>,
}
