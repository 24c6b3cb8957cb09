//! The TSPI structures filled from the front end's view of lines and calls: LINEDEVCAPS,
//! LINEADDRESSCAPS, LINECALLINFO, LINECALLSTATUS, LINEADDRESSSTATUS, LINEDEVSTATUS and
//! VARSTRING. Every function takes the caller's whole buffer as a slice of `dwTotalSize`
//! bytes and follows [`crate::varstruct`]'s convention.

use crate::varstruct::VarWriter;
use crate::{wide, TspiError};
use std::time::{SystemTime, UNIX_EPOCH};
use tapir_core::{
    AddressId, AddressStatus, CallDirection, CallInfo, CallState, LineCaps, Operation, Party,
};
use tapir_tsp::tapi::layout::{
    lineaddresscaps as ac, lineaddressstatus as st, linecallinfo as ci, linecallstatus as cs,
    linedevcaps as dc, linedevstatus as ds, lineforward as fw, varstring as vs,
};
use tapir_tsp::tapi::version::TAPI_2_2;
use tapir_tsp::tapi::{self, address_state, call_info_state, line_dev_state, value as v};
use tapir_tsp::LineSnapshot;

/// What tapir calls itself in LINEDEVCAPS' provider info.
pub const PROVIDER_INFO: &str = "tapir";
/// The device classes tapir's lines name (LINEDEVCAPS / LINEADDRESSCAPS dwDeviceClasses).
pub const DEVICE_CLASSES: &[&str] = &["tapi/line"];

/// A call as the structures need it.
#[derive(Debug, Clone)]
pub struct CallView<'a> {
    /// The TAPI device id of its line.
    pub device_id: u32,
    /// Its call id (LINECALLINFO dwCallID).
    pub call_id: u32,
    /// Its state now.
    pub state: CallState,
    /// When it entered that state.
    pub entered: SystemTime,
    /// What is known about it.
    pub info: &'a CallInfo,
    /// The application-specific value (lineSetAppSpecific).
    pub app_specific: u32,
    /// What its line can do.
    pub caps: &'a LineCaps,
}

fn has(caps: &LineCaps, op: Operation) -> bool {
    caps.operations.contains(op)
}

/// LINECALLFEATURE bits of every call operation the line supports.
pub fn call_features_supported(caps: &LineCaps) -> u32 {
    caps.operations
        .iter()
        .map(tapi::call_feature)
        .fold(0, |a, b| a | b)
}

/// LINEADDRFEATURE bits the address offers.
pub fn address_features(caps: &LineCaps, can_make_call: bool) -> u32 {
    let mut bits = 0;
    if has(caps, Operation::MakeCall) && can_make_call {
        bits |= v::ADDRFEATURE_MAKECALL;
    }
    if has(caps, Operation::Forward) {
        bits |= v::ADDRFEATURE_FORWARD | v::ADDRFEATURE_FORWARDFWD;
    }
    if has(caps, Operation::DoNotDisturb) {
        bits |= v::ADDRFEATURE_FORWARD | v::ADDRFEATURE_FORWARDDND;
    }
    bits
}

/// LINEFEATURE bits the line offers.
pub fn line_features(caps: &LineCaps, can_make_call: bool) -> u32 {
    let mut bits = 0;
    if has(caps, Operation::MakeCall) && can_make_call {
        bits |= v::LINEFEATURE_MAKECALL;
    }
    if has(caps, Operation::Forward) {
        bits |= v::LINEFEATURE_FORWARD | v::LINEFEATURE_FORWARDFWD;
    }
    if has(caps, Operation::DoNotDisturb) {
        bits |= v::LINEFEATURE_FORWARD | v::LINEFEATURE_FORWARDDND;
    }
    bits
}

/// Fixed part of LINEDEVCAPS for a negotiated version.
pub fn dev_caps_size(version: u32) -> usize {
    if version >= TAPI_2_2 {
        dc::SIZE_2_2
    } else {
        dc::SIZE_2_0
    }
}

/// Fills LINEDEVCAPS (everything except dwTotalSize).
///
/// # Errors
/// [`TspiError::StructureTooSmall`].
pub fn dev_caps(buf: &mut [u8], version: u32, line: &LineSnapshot) -> Result<(), TspiError> {
    let mut w = VarWriter::new(buf, dev_caps_size(version))?;
    w.clear_fixed(&[]);
    let caps = &line.caps;
    w.append(dc::PROVIDER_INFO, &wide::encode(PROVIDER_INFO));
    w.append(dc::SWITCH_INFO, &wide::encode(&line.driver));
    w.put(dc::PERMANENT_LINE_ID, line.id.0);
    w.append(dc::LINE_NAME, &wide::encode(&line.name));
    w.put(dc::STRING_FORMAT, v::STRINGFORMAT_UNICODE);
    w.put(dc::ADDRESS_MODES, v::ADDRESSMODE_ADDRESSID);
    w.put(dc::NUM_ADDRESSES, caps.addresses.len() as u32);
    w.put(dc::BEARER_MODES, v::BEARERMODE_VOICE);
    w.put(dc::MEDIA_MODES, v::MEDIAMODE_INTERACTIVEVOICE);
    w.put(dc::DEV_CAP_FLAGS, v::DEVCAPFLAGS_CLOSEDROP);
    w.put(dc::MAX_NUM_ACTIVE_CALLS, caps.max_calls);
    let answer = if has(caps, Operation::Hold) && caps.max_calls > 1 {
        v::ANSWERMODE_HOLD
    } else {
        v::ANSWERMODE_NONE
    };
    w.put(dc::ANSWER_MODE, answer);
    w.put(
        dc::LINE_STATES,
        line_dev_state::OTHER
            | line_dev_state::INSERVICE
            | line_dev_state::OUTOFSERVICE
            | line_dev_state::REMOVED,
    );
    w.put(dc::LINE_FEATURES, line_features(caps, line.in_service));
    w.append(dc::DEVICE_CLASSES, &wide::encode_multi(DEVICE_CLASSES));
    w.finish();
    Ok(())
}

/// Fills LINEADDRESSCAPS for one address of a line.
///
/// # Errors
/// [`TspiError::InvalidAddressId`], [`TspiError::StructureTooSmall`].
pub fn address_caps(
    buf: &mut [u8],
    device_id: u32,
    address: AddressId,
    line: &LineSnapshot,
) -> Result<(), TspiError> {
    let caps = &line.caps;
    let info = caps
        .addresses
        .iter()
        .find(|a| a.id == address)
        .ok_or(TspiError::InvalidAddressId)?;
    let mut w = VarWriter::new(buf, ac::SIZE)?;
    w.clear_fixed(&[]);
    w.put(ac::LINE_DEVICE_ID, device_id);
    w.append(ac::ADDRESS, &wide::encode(&info.number));
    w.put(ac::ADDRESS_SHARING, v::ADDRESSSHARING_PRIVATE);
    let forwarding = has(caps, Operation::Forward) || has(caps, Operation::DoNotDisturb);
    w.put(
        ac::ADDRESS_STATES,
        if forwarding {
            address_state::FORWARD
        } else {
            0
        },
    );
    w.put(
        ac::CALL_INFO_STATES,
        call_info_state::APPSPECIFIC
            | call_info_state::ORIGIN
            | call_info_state::REASON
            | call_info_state::CALLERID
            | call_info_state::CALLEDID
            | call_info_state::CONNECTEDID,
    );
    for party in 0..5 {
        w.put(ac::CALLER_ID_FLAGS + 4 * party, v::CALLPARTYID_ALL);
    }
    w.put(ac::CALL_STATES, tapi::ALL_CALL_STATES);
    w.put(ac::DIAL_TONE_MODES, v::DIALTONEMODE_ALL);
    w.put(ac::BUSY_MODES, v::BUSYMODE_ALL);
    w.put(ac::DISCONNECT_MODES, v::DISCONNECTMODE_ALL);
    w.put(ac::MAX_NUM_ACTIVE_CALLS, caps.max_calls);
    if has(caps, Operation::Hold) {
        w.put(ac::MAX_NUM_ON_HOLD_CALLS, caps.max_calls);
    }
    let mut flags = v::ADDRCAPFLAGS_DIALED;
    if has(caps, Operation::SetupTransfer) {
        w.put(ac::MAX_NUM_ON_HOLD_PENDING_CALLS, 1);
        flags |= v::ADDRCAPFLAGS_TRANSFERHELD | v::ADDRCAPFLAGS_TRANSFERMAKE;
    }
    if forwarding {
        flags |= v::ADDRCAPFLAGS_FWDSTATUSVALID;
    }
    w.put(ac::ADDR_CAP_FLAGS, flags);
    w.put(ac::CALL_FEATURES, call_features_supported(caps));
    if has(caps, Operation::CompleteTransfer) {
        w.put(ac::TRANSFER_MODES, v::TRANSFERMODE_TRANSFER);
        w.put(ac::CALL_FEATURES2, v::CALLFEATURE2_TRANSFERNORM);
    }
    if has(caps, Operation::Forward) {
        let modes = caps
            .forward_modes
            .iter()
            .map(|m| tapi::forward_mode(*m))
            .fold(0, |a, b| a | b);
        w.put(ac::FORWARD_MODES, modes);
        w.put(ac::MAX_FORWARD_ENTRIES, 1);
    }
    w.put(
        ac::ADDRESS_FEATURES,
        address_features(caps, line.in_service),
    );
    w.append(ac::DEVICE_CLASSES, &wide::encode_multi(DEVICE_CLASSES));
    w.put(ac::CONNECTED_MODES, v::CONNECTEDMODE_ACTIVE);
    w.put(ac::OFFERING_MODES, v::OFFERINGMODE_ACTIVE);
    w.put(ac::AVAILABLE_MEDIA_MODES, v::MEDIAMODE_INTERACTIVEVOICE);
    w.finish();
    Ok(())
}

/// Members of LINECALLINFO that TAPI fills and the provider must leave alone.
const TAPI_OWNED_CALL_INFO: &[(usize, usize)] = &[
    (ci::HLINE, 4),
    (ci::MONITOR_DIGIT_MODES, 4),
    (ci::MONITOR_MEDIA_MODES, 4),
    (ci::NUM_OWNERS, 4),
    (ci::NUM_MONITORS, 4),
    (ci::APP_NAME, 8),
    (ci::DISPLAYABLE_ADDRESS, 8),
    (ci::CALLED_PARTY, 8),
    (ci::COMMENT, 8),
];

/// LINECALLPARTYID flags for a party.
pub fn party_flags(party: &Party) -> u32 {
    let mut flags = 0;
    if party.number.is_some() {
        flags |= v::CALLPARTYID_ADDRESS;
    }
    if party.name.is_some() {
        flags |= v::CALLPARTYID_NAME;
    }
    if flags == 0 {
        v::CALLPARTYID_UNKNOWN
    } else {
        flags
    }
}

/// LINECALLORIGIN of a call.
pub fn origin(info: &CallInfo) -> u32 {
    match info.direction {
        CallDirection::Outgoing => v::CALLORIGIN_OUTBOUND,
        CallDirection::Incoming => v::CALLORIGIN_UNKNOWN,
        CallDirection::Unknown => v::CALLORIGIN_UNAVAIL,
    }
}

/// The LINECALLINFOSTATE bits that differ between two infos.
pub fn info_changes(old: &CallInfo, new: &CallInfo) -> u32 {
    let mut bits = 0;
    if old.calling != new.calling {
        bits |= call_info_state::CALLERID;
    }
    if old.called != new.called {
        bits |= call_info_state::CALLEDID;
    }
    if old.connected != new.connected {
        bits |= call_info_state::CONNECTEDID;
    }
    if old.direction != new.direction {
        bits |= call_info_state::ORIGIN;
    }
    if old.reason != new.reason {
        bits |= call_info_state::REASON;
    }
    bits
}

/// Fixed part of LINECALLINFO for TSPI 2.x.
pub const CALL_INFO_SIZE: usize = ci::SIZE_2_0;

/// Fills LINECALLINFO, keeping the members TAPI owns.
///
/// # Errors
/// [`TspiError::StructureTooSmall`].
pub fn call_info(buf: &mut [u8], call: &CallView<'_>) -> Result<(), TspiError> {
    let mut w = VarWriter::new(buf, CALL_INFO_SIZE)?;
    w.clear_fixed(TAPI_OWNED_CALL_INFO);
    let info = call.info;
    w.put(ci::LINE_DEVICE_ID, call.device_id);
    w.put(ci::ADDRESS_ID, info.address.0);
    w.put(ci::BEARER_MODE, v::BEARERMODE_VOICE);
    w.put(ci::MEDIA_MODE, v::MEDIAMODE_INTERACTIVEVOICE);
    w.put(ci::APP_SPECIFIC, call.app_specific);
    w.put(ci::CALL_ID, call.call_id);
    w.put(ci::CALL_STATES, tapi::ALL_CALL_STATES);
    w.put(ci::ORIGIN, origin(info));
    w.put(ci::REASON, tapi::call_reason(info.reason));
    let parties = [
        (ci::CALLER_ID_FLAGS, &info.calling),
        (ci::CALLED_ID_FLAGS, &info.called),
        (ci::CONNECTED_ID_FLAGS, &info.connected),
    ];
    for (at, party) in parties {
        w.put(at, party_flags(party));
        if let Some(number) = &party.number {
            w.append(at + 4, &wide::encode(number));
        }
        if let Some(name) = &party.name {
            w.append(at + 12, &wide::encode(name));
        }
    }
    w.put(ci::REDIRECTION_ID_FLAGS, v::CALLPARTYID_UNKNOWN);
    w.put(ci::REDIRECTING_ID_FLAGS, v::CALLPARTYID_UNKNOWN);
    w.finish();
    Ok(())
}

/// Fills LINECALLSTATUS; dwCallPrivilege is TAPI's and kept.
///
/// # Errors
/// [`TspiError::StructureTooSmall`].
pub fn call_status(buf: &mut [u8], call: &CallView<'_>) -> Result<(), TspiError> {
    let mut w = VarWriter::new(buf, cs::SIZE)?;
    w.clear_fixed(&[(cs::CALL_PRIVILEGE, 4)]);
    let (state, mode) = tapi::call_state(&call.state);
    w.put(cs::CALL_STATE, state);
    w.put(cs::CALL_STATE_MODE, mode);
    let features = tapir_tsp::call_features(call.caps, &call.state)
        .into_iter()
        .map(tapi::call_feature)
        .fold(0, |a, b| a | b);
    w.put(cs::CALL_FEATURES, features);
    if features & tapi::call_feature(Operation::CompleteTransfer) != 0 {
        w.put(cs::CALL_FEATURES2, v::CALLFEATURE2_TRANSFERNORM);
    }
    for (i, word) in system_time(call.entered).iter().enumerate() {
        w.put_u16(cs::STATE_ENTRY_TIME + 2 * i, *word);
    }
    w.finish();
    Ok(())
}

/// Counts of a line's or address's calls by kind: (active, on hold, on hold pending).
pub fn count_calls(states: &[CallState]) -> (u32, u32, u32) {
    let mut counts = (0, 0, 0);
    for state in states {
        match state {
            CallState::Idle => {}
            CallState::OnHold => counts.1 += 1,
            CallState::OnHoldPendingTransfer | CallState::OnHoldPendingConference => counts.2 += 1,
            _ => counts.0 += 1,
        }
    }
    counts
}

/// Fills LINEADDRESSSTATUS, forwarding entries included.
///
/// # Errors
/// [`TspiError::StructureTooSmall`].
pub fn address_status(
    buf: &mut [u8],
    line: &LineSnapshot,
    calls: &[CallState],
    status: Option<&AddressStatus>,
) -> Result<(), TspiError> {
    let mut w = VarWriter::new(buf, st::SIZE)?;
    w.clear_fixed(&[]);
    let (active, held, pending) = count_calls(calls);
    let busy = active + held + pending;
    w.put(st::NUM_IN_USE, u32::from(busy > 0));
    w.put(st::NUM_ACTIVE_CALLS, active);
    w.put(st::NUM_ON_HOLD_CALLS, held);
    w.put(st::NUM_ON_HOLD_PEND_CALLS, pending);
    let can_make = line.in_service && busy < line.caps.max_calls;
    w.put(st::ADDRESS_FEATURES, address_features(&line.caps, can_make));
    let forwards: Vec<(u32, Vec<u8>)> = status
        .map(|s| {
            s.forwarding
                .iter()
                .map(|f| (tapi::forward_mode(f.mode), wide::encode(&f.destination)))
                .collect()
        })
        .unwrap_or_default();
    if !forwards.is_empty() {
        let strings: usize = forwards.iter().map(|(_, d)| d.len()).sum();
        let len = forwards.len() * fw::SIZE + strings;
        let fit = w.append_with(st::FORWARD, len, |base| forward_array(base, &forwards));
        w.put(
            st::FORWARD_NUM_ENTRIES,
            if fit { forwards.len() as u32 } else { 0 },
        );
    }
    w.finish();
    Ok(())
}

/// A LINEFORWARD array followed by its strings, placed at `base` in the structure.
fn forward_array(base: usize, forwards: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut entries = vec![0u8; forwards.len() * fw::SIZE];
    let mut strings = Vec::new();
    let mut next = base + entries.len();
    for (i, (mode, dest)) in forwards.iter().enumerate() {
        let entry = i * fw::SIZE;
        let mut set = |off: usize, value: u32| {
            entries[entry + off..entry + off + 4].copy_from_slice(&value.to_ne_bytes());
        };
        set(fw::FORWARD_MODE, *mode);
        set(fw::DEST_ADDRESS, dest.len() as u32);
        set(fw::DEST_ADDRESS + 4, next as u32);
        next += dest.len();
        strings.extend_from_slice(dest);
    }
    entries.extend(strings);
    entries
}

/// Fills LINEDEVSTATUS; dwNumOpens and dwOpenMediaModes are TAPI's and kept.
///
/// # Errors
/// [`TspiError::StructureTooSmall`].
pub fn line_dev_status(
    buf: &mut [u8],
    line: &LineSnapshot,
    calls: &[CallState],
) -> Result<(), TspiError> {
    let mut w = VarWriter::new(buf, ds::SIZE)?;
    w.clear_fixed(&[(ds::NUM_OPENS, 4), (ds::OPEN_MEDIA_MODES, 4)]);
    let (active, held, pending) = count_calls(calls);
    w.put(ds::NUM_ACTIVE_CALLS, active);
    w.put(ds::NUM_ON_HOLD_CALLS, held);
    w.put(ds::NUM_ON_HOLD_PEND_CALLS, pending);
    let can_make = line.in_service && active + held + pending < line.caps.max_calls;
    w.put(ds::LINE_FEATURES, line_features(&line.caps, can_make));
    w.put(ds::SIGNAL_LEVEL, 0xFFFF);
    w.put(ds::BATTERY_LEVEL, 0xFFFF);
    let mut flags = v::DEVSTATUSFLAGS_CONNECTED;
    if line.in_service {
        flags |= v::DEVSTATUSFLAGS_INSERVICE;
    }
    w.put(ds::DEV_STATUS_FLAGS, flags);
    w.put(ds::AVAILABLE_MEDIA_MODES, v::MEDIAMODE_INTERACTIVEVOICE);
    w.finish();
    Ok(())
}

/// Fills a VARSTRING with binary data (an empty device configuration, for instance).
///
/// # Errors
/// [`TspiError::StructureTooSmall`].
pub fn varstring_binary(buf: &mut [u8], data: &[u8]) -> Result<(), TspiError> {
    let mut w = VarWriter::new(buf, vs::SIZE)?;
    w.clear_fixed(&[]);
    w.put(vs::STRING_FORMAT, v::STRINGFORMAT_BINARY);
    w.append(vs::STRING_SIZE, data);
    w.finish();
    Ok(())
}

/// The entries of a LINEFORWARDLIST (`dwTotalSize` bytes): (LINEFORWARDMODE, destination).
/// Destination offsets are relative to the start of the list.
///
/// # Errors
/// [`TspiError::InvalidParam`] for a list whose entries or strings lie outside it.
pub fn forward_list(bytes: &[u8]) -> Result<Vec<(u32, String)>, TspiError> {
    use crate::varstruct::get;
    let count = get(bytes, fw::LIST_NUM_ENTRIES).ok_or(TspiError::InvalidParam)? as usize;
    let mut out = Vec::new();
    for i in 0..count {
        let entry = fw::LIST_ENTRIES + i * fw::SIZE;
        let mode = get(bytes, entry + fw::FORWARD_MODE).ok_or(TspiError::InvalidParam)?;
        let size = get(bytes, entry + fw::DEST_ADDRESS).ok_or(TspiError::InvalidParam)? as usize;
        let offset =
            get(bytes, entry + fw::DEST_ADDRESS + 4).ok_or(TspiError::InvalidParam)? as usize;
        let dest = if size == 0 {
            String::new()
        } else {
            let raw = bytes
                .get(offset..offset.saturating_add(size))
                .ok_or(TspiError::InvalidParam)?;
            wide::decode_bytes(raw)
        };
        out.push((mode, dest));
    }
    Ok(out)
}

/// A time as Windows' SYSTEMTIME (UTC): year, month, weekday, day, hour, minute, second, ms.
pub fn system_time(at: SystemTime) -> [u16; 8] {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday (4).
    [
        year as u16,
        month as u16,
        weekday as u16,
        day as u16,
        (rem / 3600) as u16,
        (rem % 3600 / 60) as u16,
        (rem % 60) as u16,
        since.subsec_millis() as u16,
    ]
}

#[cfg(test)]
mod tests;
