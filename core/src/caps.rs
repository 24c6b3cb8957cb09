//! Capabilities: which operations a line supports, and which call states allow each operation.

use crate::{AddressId, CallState, ForwardMode};
use serde::{Deserialize, Serialize};

/// Every operation of the TSPI call-control set that tapir models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Operation {
    /// Place a call.
    MakeCall = 0,
    /// Hang up.
    Drop = 1,
    /// Answer an offered call.
    Answer = 2,
    /// Hold.
    Hold = 3,
    /// Retrieve a held call.
    Unhold = 4,
    /// Deflect an offered call.
    Redirect = 5,
    /// One-step transfer.
    BlindTransfer = 6,
    /// Start a consultation transfer.
    SetupTransfer = 7,
    /// Finish a consultation transfer.
    CompleteTransfer = 8,
    /// Swap active and held call.
    SwapHold = 9,
    /// Send digits.
    Dial = 10,
    /// Set or cancel forwarding.
    Forward = 11,
    /// Do-not-disturb on/off.
    DoNotDisturb = 12,
    /// Read forwarding/DND state.
    AddressStatus = 13,
}

impl Operation {
    /// All operations, in declaration order.
    pub const ALL: [Operation; 14] = [
        Operation::MakeCall,
        Operation::Drop,
        Operation::Answer,
        Operation::Hold,
        Operation::Unhold,
        Operation::Redirect,
        Operation::BlindTransfer,
        Operation::SetupTransfer,
        Operation::CompleteTransfer,
        Operation::SwapHold,
        Operation::Dial,
        Operation::Forward,
        Operation::DoNotDisturb,
        Operation::AddressStatus,
    ];

    /// Whether a call in `state` may be the target of this operation. Operations that do not act
    /// on an existing call accept any state.
    ///
    /// The table follows TAPI's rules: answer and redirect act on offered calls, hold and the
    /// transfers on established calls, unhold on held calls; drop is valid in every state except
    /// Idle.
    pub fn valid_in(self, state: &CallState) -> bool {
        use CallState as S;
        match self {
            Operation::MakeCall
            | Operation::Forward
            | Operation::DoNotDisturb
            | Operation::AddressStatus => true,
            Operation::Drop => !state.is_idle(),
            Operation::Answer => matches!(state, S::Offering | S::Accepted),
            Operation::Redirect => matches!(state, S::Offering | S::Accepted),
            Operation::Hold => matches!(state, S::Connected),
            Operation::Unhold => matches!(
                state,
                S::OnHold | S::OnHoldPendingTransfer | S::OnHoldPendingConference
            ),
            Operation::BlindTransfer => matches!(state, S::Connected | S::OnHold),
            Operation::SetupTransfer => matches!(state, S::Connected | S::OnHold),
            Operation::CompleteTransfer => matches!(state, S::OnHoldPendingTransfer | S::OnHold),
            Operation::SwapHold => matches!(state, S::Connected | S::Dialtone(_) | S::Ringback | S::Dialing | S::Proceeding),
            Operation::Dial => matches!(
                state,
                S::Dialtone(_) | S::Dialing | S::Proceeding | S::Ringback | S::Connected
            ),
        }
    }

    /// The lower-case name used in JSON and logs.
    pub fn name(self) -> &'static str {
        match self {
            Operation::MakeCall => "make_call",
            Operation::Drop => "drop",
            Operation::Answer => "answer",
            Operation::Hold => "hold",
            Operation::Unhold => "unhold",
            Operation::Redirect => "redirect",
            Operation::BlindTransfer => "blind_transfer",
            Operation::SetupTransfer => "setup_transfer",
            Operation::CompleteTransfer => "complete_transfer",
            Operation::SwapHold => "swap_hold",
            Operation::Dial => "dial",
            Operation::Forward => "forward",
            Operation::DoNotDisturb => "do_not_disturb",
            Operation::AddressStatus => "address_status",
        }
    }
}

/// A set of operations, kept as a bit set so it is cheap to copy and compare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct OperationSet(u32);

impl OperationSet {
    /// No operation.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Every operation.
    pub fn all() -> Self {
        Operation::ALL.into_iter().collect()
    }

    /// Adds an operation.
    pub fn with(mut self, op: Operation) -> Self {
        self.insert(op);
        self
    }

    /// Adds an operation in place.
    pub fn insert(&mut self, op: Operation) {
        self.0 |= 1 << (op as u8);
    }

    /// Removes an operation in place.
    pub fn remove(&mut self, op: Operation) {
        self.0 &= !(1 << (op as u8));
    }

    /// Whether the set holds `op`.
    pub fn contains(&self, op: Operation) -> bool {
        self.0 & (1 << (op as u8)) != 0
    }

    /// The operations in the set, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = Operation> + '_ {
        Operation::ALL.into_iter().filter(|op| self.contains(*op))
    }
}

impl FromIterator<Operation> for OperationSet {
    fn from_iter<T: IntoIterator<Item = Operation>>(iter: T) -> Self {
        let mut set = Self::empty();
        for op in iter {
            set.insert(op);
        }
        set
    }
}

impl Serialize for OperationSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for OperationSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let ops = Vec::<Operation>::deserialize(deserializer)?;
        Ok(ops.into_iter().collect())
    }
}

/// One address of a line: its dialable number and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressInfo {
    /// The address id (0 for the first).
    #[serde(default)]
    pub id: AddressId,
    /// The dialable address (extension or SIP identity).
    #[serde(default)]
    pub number: String,
    /// A display name.
    #[serde(default)]
    pub name: String,
}

/// What a line can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineCaps {
    /// The operations the driver supports on this line.
    pub operations: OperationSet,
    /// The forwarding modes the line accepts.
    #[serde(default)]
    pub forward_modes: Vec<ForwardMode>,
    /// How many calls the line carries at once (TAPI's dwMaxNumActiveCalls).
    pub max_calls: u32,
    /// The line's addresses; at least one.
    pub addresses: Vec<AddressInfo>,
}

impl Default for LineCaps {
    fn default() -> Self {
        Self {
            operations: OperationSet::empty()
                .with(Operation::MakeCall)
                .with(Operation::Drop),
            forward_modes: Vec::new(),
            max_calls: 1,
            addresses: vec![AddressInfo::default()],
        }
    }
}

impl LineCaps {
    /// Whether `address` exists on this line.
    pub fn has_address(&self, address: AddressId) -> bool {
        self.addresses.iter().any(|a| a.id == address)
    }
}

/// A line as the driver describes it when it appears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineInfo {
    /// The driver's key for the line.
    pub key: crate::LineKey,
    /// A human name ("snom 320 (00041325A1B2) line 1").
    pub name: String,
    /// What the line can do.
    pub caps: LineCaps,
    /// Whether the line is in service now.
    #[serde(default = "yes")]
    pub in_service: bool,
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_set_round_trips_through_json() {
        let set = OperationSet::empty()
            .with(Operation::Hold)
            .with(Operation::MakeCall);
        let json = serde_json::to_string(&set).expect("serializes");
        assert_eq!(json, r#"["make_call","hold"]"#);
        let back: OperationSet = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, set);
        assert!(!back.contains(Operation::Drop));
    }

    #[test]
    fn state_table_follows_tapi() {
        assert!(Operation::Answer.valid_in(&CallState::Offering));
        assert!(!Operation::Answer.valid_in(&CallState::Connected));
        assert!(!Operation::Drop.valid_in(&CallState::Idle));
        assert!(Operation::Unhold.valid_in(&CallState::OnHold));
        assert!(!Operation::Hold.valid_in(&CallState::OnHold));
    }
}
