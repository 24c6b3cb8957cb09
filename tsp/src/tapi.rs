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

/// TSPI versions, negotiation and limits of the Windows TSP face.
pub mod version {
    /// TAPI 2.0.
    pub const TAPI_2_0: u32 = 0x0002_0000;
    /// TAPI 2.1.
    pub const TAPI_2_1: u32 = 0x0002_0001;
    /// TAPI 2.2.
    pub const TAPI_2_2: u32 = 0x0002_0002;
    /// The device id of the provider-level negotiation (before providerInit).
    pub const INITIALIZE_NEGOTIATION: u32 = 0xFFFF_FFFF;
    /// Size in wide characters of the buffer `TSPI_providerUIIdentify` fills (MAX_PATH).
    pub const MAX_PATH: usize = 260;
}

/// LINEERR codes that do not come from a driver's [`ErrorKind`] (TSPI argument checks).
pub mod lineerr {
    /// LINEERR_BADDEVICEID.
    pub const BADDEVICEID: u32 = 0x8000_0002;
    /// LINEERR_INCOMPATIBLEAPIVERSION.
    pub const INCOMPATIBLEAPIVERSION: u32 = 0x8000_000C;
    /// LINEERR_INCOMPATIBLEEXTVERSION.
    pub const INCOMPATIBLEEXTVERSION: u32 = 0x8000_000D;
    /// LINEERR_INVALADDRESS.
    pub const INVALADDRESS: u32 = 0x8000_0010;
    /// LINEERR_INVALADDRESSID.
    pub const INVALADDRESSID: u32 = 0x8000_0011;
    /// LINEERR_INVALADDRESSMODE.
    pub const INVALADDRESSMODE: u32 = 0x8000_0012;
    /// LINEERR_INVALCALLHANDLE.
    pub const INVALCALLHANDLE: u32 = 0x8000_0018;
    /// LINEERR_INVALCALLSTATE.
    pub const INVALCALLSTATE: u32 = 0x8000_001C;
    /// LINEERR_INVALDEVICECLASS.
    pub const INVALDEVICECLASS: u32 = 0x8000_0023;
    /// LINEERR_INVALLINEHANDLE.
    pub const INVALLINEHANDLE: u32 = 0x8000_002B;
    /// LINEERR_INVALMEDIAMODE.
    pub const INVALMEDIAMODE: u32 = 0x8000_002F;
    /// LINEERR_INVALPARAM.
    pub const INVALPARAM: u32 = 0x8000_0032;
    /// LINEERR_INVALPOINTER.
    pub const INVALPOINTER: u32 = 0x8000_0035;
    /// LINEERR_INVALTRANSFERMODE.
    pub const INVALTRANSFERMODE: u32 = 0x8000_003F;
    /// LINEERR_NODEVICE.
    pub const NODEVICE: u32 = 0x8000_0042;
    /// LINEERR_NOMEM.
    pub const NOMEM: u32 = 0x8000_0044;
    /// LINEERR_OPERATIONFAILED.
    pub const OPERATIONFAILED: u32 = 0x8000_0048;
    /// LINEERR_OPERATIONUNAVAIL.
    pub const OPERATIONUNAVAIL: u32 = 0x8000_0049;
    /// LINEERR_STRUCTURETOOSMALL.
    pub const STRUCTURETOOSMALL: u32 = 0x8000_004D;
    /// LINEERR_UNINITIALIZED.
    pub const UNINITIALIZED: u32 = 0x8000_0050;
    /// LINEERR_NOMULTIPLEINSTANCE (TUISPI_providerInstall: installed already).
    pub const NOMULTIPLEINSTANCE: u32 = 0x8000_0056;
}

/// LINEEVENT message ids (dwMsg) a call-control TSP sends.
pub mod line_msg {
    /// LINE_ADDRESSSTATE.
    pub const ADDRESSSTATE: u32 = 0;
    /// LINE_CALLINFO.
    pub const CALLINFO: u32 = 1;
    /// LINE_CALLSTATE.
    pub const CALLSTATE: u32 = 2;
    /// LINE_CLOSE.
    pub const CLOSE: u32 = 3;
    /// LINE_LINEDEVSTATE.
    pub const LINEDEVSTATE: u32 = 8;
    /// LINE_CREATE.
    pub const CREATE: u32 = 19;
    /// LINE_REMOVE.
    pub const REMOVE: u32 = 25;
    /// LINE_NEWCALL (TSPI only; TSPI_MESSAGE_BASE).
    pub const NEWCALL: u32 = 500;
}

/// LINEDEVSTATE bits (LINE_LINEDEVSTATE dwParam1, LINEDEVCAPS dwLineStates).
pub mod line_dev_state {
    /// LINEDEVSTATE_OTHER.
    pub const OTHER: u32 = 0x1;
    /// LINEDEVSTATE_INSERVICE.
    pub const INSERVICE: u32 = 0x40;
    /// LINEDEVSTATE_OUTOFSERVICE.
    pub const OUTOFSERVICE: u32 = 0x80;
    /// LINEDEVSTATE_REMOVED.
    pub const REMOVED: u32 = 0x0100_0000;
}

/// LINEADDRESSSTATE bits.
pub mod address_state {
    /// LINEADDRESSSTATE_FORWARD.
    pub const FORWARD: u32 = 0x40;
}

/// LINECALLINFOSTATE bits (LINE_CALLINFO dwParam1).
pub mod call_info_state {
    /// LINECALLINFOSTATE_APPSPECIFIC.
    pub const APPSPECIFIC: u32 = 0x20;
    /// LINECALLINFOSTATE_ORIGIN.
    pub const ORIGIN: u32 = 0x100;
    /// LINECALLINFOSTATE_REASON.
    pub const REASON: u32 = 0x200;
    /// LINECALLINFOSTATE_CALLERID.
    pub const CALLERID: u32 = 0x8000;
    /// LINECALLINFOSTATE_CALLEDID.
    pub const CALLEDID: u32 = 0x1_0000;
    /// LINECALLINFOSTATE_CONNECTEDID.
    pub const CONNECTEDID: u32 = 0x2_0000;
}

/// Values of the plain (non-bit-set-per-concept) fields of the TSPI structures.
pub mod value {
    /// LINEADDRESSMODE_ADDRESSID.
    pub const ADDRESSMODE_ADDRESSID: u32 = 0x1;
    /// LINEADDRESSMODE_DIALABLEADDR.
    pub const ADDRESSMODE_DIALABLEADDR: u32 = 0x2;
    /// LINEADDRESSSHARING_PRIVATE.
    pub const ADDRESSSHARING_PRIVATE: u32 = 0x1;
    /// LINEBEARERMODE_VOICE.
    pub const BEARERMODE_VOICE: u32 = 0x1;
    /// LINEMEDIAMODE_UNKNOWN.
    pub const MEDIAMODE_UNKNOWN: u32 = 0x2;
    /// LINEMEDIAMODE_INTERACTIVEVOICE.
    pub const MEDIAMODE_INTERACTIVEVOICE: u32 = 0x4;
    /// STRINGFORMAT_UNICODE.
    pub const STRINGFORMAT_UNICODE: u32 = 3;
    /// STRINGFORMAT_BINARY.
    pub const STRINGFORMAT_BINARY: u32 = 4;
    /// LINEDEVCAPFLAGS_CLOSEDROP.
    pub const DEVCAPFLAGS_CLOSEDROP: u32 = 0x20;
    /// LINEANSWERMODE_NONE.
    pub const ANSWERMODE_NONE: u32 = 0x1;
    /// LINEANSWERMODE_HOLD.
    pub const ANSWERMODE_HOLD: u32 = 0x4;
    /// LINECALLPRIVILEGE_OWNER.
    pub const CALLPRIVILEGE_OWNER: u32 = 0x4;
    /// LINECALLORIGIN_OUTBOUND.
    pub const CALLORIGIN_OUTBOUND: u32 = 0x1;
    /// LINECALLORIGIN_UNKNOWN (incoming, internal or external not known).
    pub const CALLORIGIN_UNKNOWN: u32 = 0x10;
    /// LINECALLORIGIN_UNAVAIL.
    pub const CALLORIGIN_UNAVAIL: u32 = 0x20;
    /// LINECALLPARTYID_NAME.
    pub const CALLPARTYID_NAME: u32 = 0x4;
    /// LINECALLPARTYID_ADDRESS.
    pub const CALLPARTYID_ADDRESS: u32 = 0x8;
    /// LINECALLPARTYID_UNKNOWN.
    pub const CALLPARTYID_UNKNOWN: u32 = 0x20;
    /// Every LINECALLPARTYID bit a TSP may report (BLOCKED .. UNAVAIL).
    pub const CALLPARTYID_ALL: u32 = 0x7F;
    /// Every LINEDIALTONEMODE bit.
    pub const DIALTONEMODE_ALL: u32 = 0x3F;
    /// Every LINEBUSYMODE bit.
    pub const BUSYMODE_ALL: u32 = 0xF;
    /// Every LINEDISCONNECTMODE bit.
    pub const DISCONNECTMODE_ALL: u32 = 0xF_FFFF;
    /// LINECONNECTEDMODE_ACTIVE.
    pub const CONNECTEDMODE_ACTIVE: u32 = 0x1;
    /// LINEOFFERINGMODE_ACTIVE.
    pub const OFFERINGMODE_ACTIVE: u32 = 0x1;
    /// LINETRANSFERMODE_TRANSFER.
    pub const TRANSFERMODE_TRANSFER: u32 = 0x1;
    /// LINEADDRCAPFLAGS_DIALED.
    pub const ADDRCAPFLAGS_DIALED: u32 = 0x20;
    /// LINEADDRCAPFLAGS_TRANSFERHELD.
    pub const ADDRCAPFLAGS_TRANSFERHELD: u32 = 0x1000;
    /// LINEADDRCAPFLAGS_TRANSFERMAKE.
    pub const ADDRCAPFLAGS_TRANSFERMAKE: u32 = 0x2000;
    /// LINEADDRCAPFLAGS_FWDSTATUSVALID.
    pub const ADDRCAPFLAGS_FWDSTATUSVALID: u32 = 0x2_0000;
    /// LINECALLFEATURE2_TRANSFERNORM.
    pub const CALLFEATURE2_TRANSFERNORM: u32 = 0x40;
    /// LINEADDRFEATURE_FORWARD.
    pub const ADDRFEATURE_FORWARD: u32 = 0x1;
    /// LINEADDRFEATURE_MAKECALL.
    pub const ADDRFEATURE_MAKECALL: u32 = 0x2;
    /// LINEADDRFEATURE_FORWARDFWD.
    pub const ADDRFEATURE_FORWARDFWD: u32 = 0x1000;
    /// LINEADDRFEATURE_FORWARDDND.
    pub const ADDRFEATURE_FORWARDDND: u32 = 0x2000;
    /// LINEFEATURE_FORWARD.
    pub const LINEFEATURE_FORWARD: u32 = 0x4;
    /// LINEFEATURE_MAKECALL.
    pub const LINEFEATURE_MAKECALL: u32 = 0x8;
    /// LINEFEATURE_FORWARDFWD.
    pub const LINEFEATURE_FORWARDFWD: u32 = 0x80;
    /// LINEFEATURE_FORWARDDND.
    pub const LINEFEATURE_FORWARDDND: u32 = 0x100;
    /// LINEDEVSTATUSFLAGS_CONNECTED.
    pub const DEVSTATUSFLAGS_CONNECTED: u32 = 0x1;
    /// LINEDEVSTATUSFLAGS_INSERVICE.
    pub const DEVSTATUSFLAGS_INSERVICE: u32 = 0x4;
    /// LINETSPIOPTION_NONREENTRANT (not asked for: the provider is reentrant).
    pub const TSPIOPTION_NONREENTRANT: u32 = 0x1;
}

/// The LINECALLREASON bit of a call reason.
pub fn call_reason(reason: tapir_core::CallReason) -> u32 {
    use tapir_core::CallReason as R;
    match reason {
        R::Direct => 0x1,
        R::ForwardBusy => 0x2,
        R::ForwardNoAnswer => 0x4,
        R::ForwardUnconditional => 0x8,
        R::Pickup => 0x10,
        R::Redirect => 0x40,
        R::Transfer => 0x100,
        R::Unknown => 0x400,
    }
}

/// The [`ForwardMode`] of a LINEFORWARDMODE value, for the modes tapir models.
pub fn forward_mode_from(value: u32) -> Option<ForwardMode> {
    [
        ForwardMode::Unconditional,
        ForwardMode::UnconditionalInternal,
        ForwardMode::UnconditionalExternal,
        ForwardMode::Busy,
        ForwardMode::NoAnswer,
    ]
    .into_iter()
    .find(|m| forward_mode(*m) == value)
}

/// Byte offsets and fixed-part sizes of the byte-packed TAPI structures (mingw-w64 tapi.h),
/// for the TSPI 2.x versions tapir negotiates. Every structure starts with dwTotalSize (0),
/// dwNeededSize (4) and dwUsedSize (8), except LINEFORWARDLIST (dwTotalSize, dwNumEntries).
pub mod layout {
    /// dwTotalSize.
    pub const TOTAL_SIZE: usize = 0;
    /// dwNeededSize.
    pub const NEEDED_SIZE: usize = 4;
    /// dwUsedSize.
    pub const USED_SIZE: usize = 8;

    /// VARSTRING.
    pub mod varstring {
        /// Fixed part.
        pub const SIZE: usize = 24;
        /// dwStringFormat.
        pub const STRING_FORMAT: usize = 12;
        /// dwStringSize.
        pub const STRING_SIZE: usize = 16;
        /// dwStringOffset.
        pub const STRING_OFFSET: usize = 20;
    }

    /// LINEDEVCAPS.
    pub mod linedevcaps {
        /// Fixed part for TSPI 2.0 and 2.1.
        pub const SIZE_2_0: usize = 252;
        /// Fixed part for TSPI 2.2 (PermanentLineGuid added).
        pub const SIZE_2_2: usize = 268;
        /// Fixed part for TAPI 3.x.
        pub const SIZE_3_0: usize = 292;
        /// dwProviderInfoSize / Offset.
        pub const PROVIDER_INFO: usize = 12;
        /// dwSwitchInfoSize / Offset.
        pub const SWITCH_INFO: usize = 20;
        /// dwPermanentLineID.
        pub const PERMANENT_LINE_ID: usize = 28;
        /// dwLineNameSize / Offset.
        pub const LINE_NAME: usize = 32;
        /// dwStringFormat.
        pub const STRING_FORMAT: usize = 40;
        /// dwAddressModes.
        pub const ADDRESS_MODES: usize = 44;
        /// dwNumAddresses.
        pub const NUM_ADDRESSES: usize = 48;
        /// dwBearerModes.
        pub const BEARER_MODES: usize = 52;
        /// dwMaxRate.
        pub const MAX_RATE: usize = 56;
        /// dwMediaModes.
        pub const MEDIA_MODES: usize = 60;
        /// dwDevCapFlags.
        pub const DEV_CAP_FLAGS: usize = 112;
        /// dwMaxNumActiveCalls.
        pub const MAX_NUM_ACTIVE_CALLS: usize = 116;
        /// dwAnswerMode.
        pub const ANSWER_MODE: usize = 120;
        /// dwRingModes.
        pub const RING_MODES: usize = 124;
        /// dwLineStates.
        pub const LINE_STATES: usize = 128;
        /// dwNumTerminals.
        pub const NUM_TERMINALS: usize = 204;
        /// dwLineFeatures.
        pub const LINE_FEATURES: usize = 236;
        /// dwSettableDevStatus.
        pub const SETTABLE_DEV_STATUS: usize = 240;
        /// dwDeviceClassesSize / Offset.
        pub const DEVICE_CLASSES: usize = 244;
        /// PermanentLineGuid (2.2).
        pub const PERMANENT_LINE_GUID: usize = 252;
    }

    /// LINEADDRESSCAPS.
    pub mod lineaddresscaps {
        /// Fixed part for TSPI 2.x.
        pub const SIZE: usize = 228;
        /// dwLineDeviceID.
        pub const LINE_DEVICE_ID: usize = 12;
        /// dwAddressSize / Offset.
        pub const ADDRESS: usize = 16;
        /// dwAddressSharing.
        pub const ADDRESS_SHARING: usize = 32;
        /// dwAddressStates.
        pub const ADDRESS_STATES: usize = 36;
        /// dwCallInfoStates.
        pub const CALL_INFO_STATES: usize = 40;
        /// dwCallerIDFlags (Called, Connected, Redirection, Redirecting follow, 4 bytes each).
        pub const CALLER_ID_FLAGS: usize = 44;
        /// dwCallStates.
        pub const CALL_STATES: usize = 64;
        /// dwDialToneModes.
        pub const DIAL_TONE_MODES: usize = 68;
        /// dwBusyModes.
        pub const BUSY_MODES: usize = 72;
        /// dwDisconnectModes.
        pub const DISCONNECT_MODES: usize = 80;
        /// dwMaxNumActiveCalls.
        pub const MAX_NUM_ACTIVE_CALLS: usize = 84;
        /// dwMaxNumOnHoldCalls.
        pub const MAX_NUM_ON_HOLD_CALLS: usize = 88;
        /// dwMaxNumOnHoldPendingCalls.
        pub const MAX_NUM_ON_HOLD_PENDING_CALLS: usize = 92;
        /// dwAddrCapFlags.
        pub const ADDR_CAP_FLAGS: usize = 104;
        /// dwCallFeatures.
        pub const CALL_FEATURES: usize = 108;
        /// dwTransferModes.
        pub const TRANSFER_MODES: usize = 120;
        /// dwForwardModes.
        pub const FORWARD_MODES: usize = 128;
        /// dwMaxForwardEntries.
        pub const MAX_FORWARD_ENTRIES: usize = 132;
        /// dwAddressFeatures (2.0).
        pub const ADDRESS_FEATURES: usize = 176;
        /// dwDeviceClassesSize / Offset (2.0).
        pub const DEVICE_CLASSES: usize = 196;
        /// dwCallFeatures2 (2.0).
        pub const CALL_FEATURES2: usize = 208;
        /// dwConnectedModes (2.0).
        pub const CONNECTED_MODES: usize = 216;
        /// dwOfferingModes (2.0).
        pub const OFFERING_MODES: usize = 220;
        /// dwAvailableMediaModes (2.0).
        pub const AVAILABLE_MEDIA_MODES: usize = 224;
    }

    /// LINECALLINFO.
    pub mod linecallinfo {
        /// Fixed part for TSPI 2.x.
        pub const SIZE_2_0: usize = 324;
        /// Fixed part for TAPI 3.x.
        pub const SIZE_3_0: usize = 344;
        /// hLine (TAPI's).
        pub const HLINE: usize = 12;
        /// dwLineDeviceID.
        pub const LINE_DEVICE_ID: usize = 16;
        /// dwAddressID.
        pub const ADDRESS_ID: usize = 20;
        /// dwBearerMode.
        pub const BEARER_MODE: usize = 24;
        /// dwRate.
        pub const RATE: usize = 28;
        /// dwMediaMode.
        pub const MEDIA_MODE: usize = 32;
        /// dwAppSpecific.
        pub const APP_SPECIFIC: usize = 36;
        /// dwCallID.
        pub const CALL_ID: usize = 40;
        /// dwRelatedCallID.
        pub const RELATED_CALL_ID: usize = 44;
        /// dwCallParamFlags.
        pub const CALL_PARAM_FLAGS: usize = 48;
        /// dwCallStates.
        pub const CALL_STATES: usize = 52;
        /// dwMonitorDigitModes (TAPI's).
        pub const MONITOR_DIGIT_MODES: usize = 56;
        /// dwMonitorMediaModes (TAPI's).
        pub const MONITOR_MEDIA_MODES: usize = 60;
        /// dwOrigin.
        pub const ORIGIN: usize = 80;
        /// dwReason.
        pub const REASON: usize = 84;
        /// dwNumOwners (TAPI's).
        pub const NUM_OWNERS: usize = 92;
        /// dwNumMonitors (TAPI's).
        pub const NUM_MONITORS: usize = 96;
        /// dwCallerIDFlags; CallerID size/offset and CallerIDName size/offset follow.
        pub const CALLER_ID_FLAGS: usize = 108;
        /// dwCalledIDFlags; as above.
        pub const CALLED_ID_FLAGS: usize = 128;
        /// dwConnectedIDFlags; as above.
        pub const CONNECTED_ID_FLAGS: usize = 148;
        /// dwRedirectionIDFlags; as above.
        pub const REDIRECTION_ID_FLAGS: usize = 168;
        /// dwRedirectingIDFlags; as above.
        pub const REDIRECTING_ID_FLAGS: usize = 188;
        /// dwAppNameSize / Offset (TAPI's).
        pub const APP_NAME: usize = 208;
        /// dwDisplayableAddressSize / Offset (TAPI's).
        pub const DISPLAYABLE_ADDRESS: usize = 216;
        /// dwCalledPartySize / Offset (TAPI's).
        pub const CALLED_PARTY: usize = 224;
        /// dwCommentSize / Offset (TAPI's).
        pub const COMMENT: usize = 232;
    }

    /// LINECALLSTATUS.
    pub mod linecallstatus {
        /// Fixed part for TSPI 2.x.
        pub const SIZE: usize = 56;
        /// dwCallState.
        pub const CALL_STATE: usize = 12;
        /// dwCallStateMode.
        pub const CALL_STATE_MODE: usize = 16;
        /// dwCallPrivilege (TAPI's).
        pub const CALL_PRIVILEGE: usize = 20;
        /// dwCallFeatures.
        pub const CALL_FEATURES: usize = 24;
        /// dwCallFeatures2 (2.0).
        pub const CALL_FEATURES2: usize = 36;
        /// tStateEntryTime, a SYSTEMTIME of eight WORDs (2.0).
        pub const STATE_ENTRY_TIME: usize = 40;
    }

    /// LINEADDRESSSTATUS.
    pub mod lineaddressstatus {
        /// Fixed part.
        pub const SIZE: usize = 64;
        /// dwNumInUse.
        pub const NUM_IN_USE: usize = 12;
        /// dwNumActiveCalls.
        pub const NUM_ACTIVE_CALLS: usize = 16;
        /// dwNumOnHoldCalls.
        pub const NUM_ON_HOLD_CALLS: usize = 20;
        /// dwNumOnHoldPendCalls.
        pub const NUM_ON_HOLD_PEND_CALLS: usize = 24;
        /// dwAddressFeatures.
        pub const ADDRESS_FEATURES: usize = 28;
        /// dwNumRingsNoAnswer.
        pub const NUM_RINGS_NO_ANSWER: usize = 32;
        /// dwForwardNumEntries.
        pub const FORWARD_NUM_ENTRIES: usize = 36;
        /// dwForwardSize / Offset.
        pub const FORWARD: usize = 40;
    }

    /// LINEFORWARD and LINEFORWARDLIST.
    pub mod lineforward {
        /// One LINEFORWARD entry.
        pub const SIZE: usize = 32;
        /// dwForwardMode.
        pub const FORWARD_MODE: usize = 0;
        /// dwCallerAddressSize / Offset.
        pub const CALLER_ADDRESS: usize = 4;
        /// dwDestCountryCode.
        pub const DEST_COUNTRY_CODE: usize = 12;
        /// dwDestAddressSize / Offset.
        pub const DEST_ADDRESS: usize = 16;
        /// LINEFORWARDLIST.dwNumEntries.
        pub const LIST_NUM_ENTRIES: usize = 4;
        /// LINEFORWARDLIST's first entry.
        pub const LIST_ENTRIES: usize = 8;
    }

    /// LINEDEVSTATUS.
    pub mod linedevstatus {
        /// Fixed part for TSPI 2.x.
        pub const SIZE: usize = 88;
        /// dwNumOpens (TAPI's).
        pub const NUM_OPENS: usize = 12;
        /// dwOpenMediaModes (TAPI's).
        pub const OPEN_MEDIA_MODES: usize = 16;
        /// dwNumActiveCalls.
        pub const NUM_ACTIVE_CALLS: usize = 20;
        /// dwNumOnHoldCalls.
        pub const NUM_ON_HOLD_CALLS: usize = 24;
        /// dwNumOnHoldPendCalls.
        pub const NUM_ON_HOLD_PEND_CALLS: usize = 28;
        /// dwLineFeatures.
        pub const LINE_FEATURES: usize = 32;
        /// dwRingMode.
        pub const RING_MODE: usize = 40;
        /// dwSignalLevel.
        pub const SIGNAL_LEVEL: usize = 44;
        /// dwBatteryLevel.
        pub const BATTERY_LEVEL: usize = 48;
        /// dwDevStatusFlags.
        pub const DEV_STATUS_FLAGS: usize = 56;
        /// dwAvailableMediaModes (2.0).
        pub const AVAILABLE_MEDIA_MODES: usize = 76;
    }

    /// LINEEXTENSIONID: four DWORDs, no size header.
    pub const LINEEXTENSIONID_SIZE: usize = 16;
}

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
    fn forward_modes_round_trip() {
        for mode in [
            ForwardMode::Unconditional,
            ForwardMode::UnconditionalInternal,
            ForwardMode::UnconditionalExternal,
            ForwardMode::Busy,
            ForwardMode::NoAnswer,
        ] {
            assert_eq!(forward_mode_from(forward_mode(mode)), Some(mode));
        }
        assert_eq!(
            forward_mode_from(0x8),
            None,
            "UNCONDSPECIFIC is not modelled"
        );
    }

    #[test]
    fn fixed_parts_follow_the_spec() {
        assert_eq!(layout::varstring::SIZE, 24);
        assert_eq!(layout::linedevcaps::SIZE_2_0, 252);
        assert_eq!(layout::lineaddresscaps::SIZE, 228);
        assert_eq!(layout::linecallinfo::SIZE_2_0, 324);
        assert_eq!(layout::linecallstatus::SIZE, 56);
        assert_eq!(layout::lineaddressstatus::SIZE, 64);
        assert_eq!(layout::linedevstatus::SIZE, 88);
        assert_eq!(line_msg::NEWCALL, 500);
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
