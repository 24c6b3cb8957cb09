//! TAPI's numeric codes. This is the only module in tapir that knows them: LINEERR values for
//! every [`ErrorKind`], LINECALLSTATE bits and their mode values, LINEDISCONNECTMODE, and the
//! LINECALLFEATURE bits for each [`Operation`].

use tapir_core::{
    BusyMode, CallState, DialToneMode, DisconnectMode, ErrorKind, ForwardMode, Operation,
};

/// The LINEERR code for an error kind. The mapping is one-to-one (tested).
pub fn lineerr(kind: ErrorKind) -> u32 {
    match kind {
        ErrorKind::OperationUnavailable => 0x8000_0049,
        ErrorKind::OperationFailed => 0x8000_0048,
        ErrorKind::InvalidCallState => 0x8000_001C,
        ErrorKind::InvalidCallHandle => 0x8000_0018,
        ErrorKind::InvalidConsultCallHandle => 0x8000_0021,
        ErrorKind::BadDeviceId => 0x8000_0002,
        ErrorKind::InvalidLineHandle => 0x8000_002B,
        ErrorKind::InvalidAddress => 0x8000_0010,
        ErrorKind::InvalidAddressId => 0x8000_0011,
        ErrorKind::InvalidParameter => 0x8000_0032,
        ErrorKind::ResourceUnavailable => 0x8000_004B,
        ErrorKind::Disconnected => 0x8000_0060,
        ErrorKind::Uninitialized => 0x8000_0050,
        ErrorKind::StructureTooSmall => 0x8000_004D,
        ErrorKind::NoMemory => 0x8000_0044,
        ErrorKind::IncompatibleVersion => 0x8000_000C,
        // ErrorKind is non_exhaustive for drivers, but this crate sees every variant; a new one
        // added to core without a code here fails the exhaustive test below.
        _ => 0x8000_0048,
    }
}

/// The LINEERR code as TSPI functions return it (a negative LONG).
pub fn lineerr_long(kind: ErrorKind) -> i32 {
    lineerr(kind) as i32
}

/// LINECALLSTATE bit and the mode value that goes with it (LINE_CALLSTATE's dwParam1/dwParam2).
pub fn call_state(state: &CallState) -> (u32, u32) {
    match state {
        CallState::Idle => (0x1, 0),
        CallState::Offering => (0x2, 0x1),
        CallState::Accepted => (0x4, 0),
        CallState::Dialtone(mode) => (0x8, dial_tone_mode(*mode)),
        CallState::Dialing => (0x10, 0),
        CallState::Ringback => (0x20, 0),
        CallState::Busy(mode) => (0x40, busy_mode(*mode)),
        CallState::SpecialInfo => (0x80, 0),
        CallState::Connected => (0x100, 0x1),
        CallState::Proceeding => (0x200, 0),
        CallState::OnHold => (0x400, 0),
        CallState::Conferenced => (0x800, 0),
        CallState::OnHoldPendingConference => (0x1000, 0),
        CallState::OnHoldPendingTransfer => (0x2000, 0),
        CallState::Disconnected(mode) => (0x4000, disconnect_mode(*mode)),
        CallState::Unknown => (0x8000, 0),
    }
}

/// LINEDIALTONEMODE value.
pub fn dial_tone_mode(mode: DialToneMode) -> u32 {
    match mode {
        DialToneMode::Normal => 0x1,
        DialToneMode::Special => 0x2,
        DialToneMode::Internal => 0x4,
        DialToneMode::External => 0x8,
        DialToneMode::Unknown => 0x10,
        DialToneMode::Unavailable => 0x20,
    }
}

/// LINEBUSYMODE value.
pub fn busy_mode(mode: BusyMode) -> u32 {
    match mode {
        BusyMode::Station => 0x1,
        BusyMode::Trunk => 0x2,
        BusyMode::Unknown => 0x4,
        BusyMode::Unavailable => 0x8,
    }
}

/// LINEDISCONNECTMODE value.
pub fn disconnect_mode(mode: DisconnectMode) -> u32 {
    match mode {
        DisconnectMode::Normal => 0x1,
        DisconnectMode::Unknown => 0x2,
        DisconnectMode::Reject => 0x4,
        DisconnectMode::Pickup => 0x8,
        DisconnectMode::Forwarded => 0x10,
        DisconnectMode::Busy => 0x20,
        DisconnectMode::NoAnswer => 0x40,
        DisconnectMode::BadAddress => 0x80,
        DisconnectMode::Unreachable => 0x100,
        DisconnectMode::Congestion => 0x200,
        DisconnectMode::Incompatible => 0x400,
        DisconnectMode::Unavailable => 0x800,
        DisconnectMode::NoDialtone => 0x1000,
        DisconnectMode::NumberChanged => 0x2000,
        DisconnectMode::OutOfOrder => 0x4000,
        DisconnectMode::TempFailure => 0x8000,
        DisconnectMode::QosUnavailable => 0x10000,
        DisconnectMode::Blocked => 0x20000,
        DisconnectMode::DoNotDisturb => 0x40000,
        DisconnectMode::Cancelled => 0x80000,
    }
}

/// LINEFORWARDMODE value.
pub fn forward_mode(mode: ForwardMode) -> u32 {
    match mode {
        ForwardMode::Unconditional => 0x1,
        ForwardMode::UnconditionalInternal => 0x2,
        ForwardMode::UnconditionalExternal => 0x4,
        ForwardMode::Busy => 0x10,
        ForwardMode::NoAnswer => 0x100,
    }
}

/// The LINECALLFEATURE bit of a call-level operation; 0 for line- and address-level ones.
pub fn call_feature(op: Operation) -> u32 {
    match op {
        Operation::Answer => 0x4,
        Operation::BlindTransfer => 0x8,
        Operation::CompleteTransfer => 0x20,
        Operation::Dial => 0x40,
        Operation::Drop => 0x80,
        Operation::Hold => 0x800,
        Operation::Redirect => 0x20000,
        Operation::SetupTransfer => 0x0200_0000,
        Operation::SwapHold => 0x0400_0000,
        Operation::Unhold => 0x0800_0000,
        Operation::MakeCall
        | Operation::Forward
        | Operation::DoNotDisturb
        | Operation::AddressStatus => 0,
    }
}

/// LINECALLSTATE bits a TSP would announce as dwCallStates for a line that reports every state.
pub const ALL_CALL_STATES: u32 = 0xFFFF;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_error_kind_has_its_own_lineerr() {
        let codes: HashSet<u32> = ErrorKind::ALL.iter().map(|k| lineerr(*k)).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
        assert!(codes.iter().all(|c| c & 0x8000_0000 != 0));
        assert_eq!(lineerr_long(ErrorKind::OperationUnavailable), -2147483575);
    }

    #[test]
    fn call_states_use_the_tapi_bits() {
        assert_eq!(call_state(&CallState::Idle).0, 0x1);
        assert_eq!(
            call_state(&CallState::Disconnected(DisconnectMode::Busy)),
            (0x4000, 0x20)
        );
        assert_eq!(call_state(&CallState::OnHoldPendingTransfer).0, 0x2000);
    }
}
