//! Tests of the structure filling: the fixed-part layouts against packed mirrors of
//! mingw-w64's tapi.h, too-small buffers, and every buffer size up to the needed one.

use super::*;
use crate::varstruct::get;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use tapir_core::{AddressInfo, CallReason, ForwardMode, LineCaps, LineId, LineKey, OperationSet};

/// Packed mirrors of the tapi.h structures, member by member (runs of members the provider
/// never writes are arrays). They check the offsets in `tapi::layout` independently.
#[allow(dead_code)]
mod mirror {
    #[repr(C, packed)]
    pub struct VarString {
        pub total: u32,
        pub needed: u32,
        pub used: u32,
        pub string_format: u32,
        pub string_size: u32,
        pub string_offset: u32,
    }

    #[repr(C, packed)]
    pub struct LineDevCaps {
        pub sizes: [u32; 3],
        pub provider_info: [u32; 2],
        pub switch_info: [u32; 2],
        pub permanent_line_id: u32,
        pub line_name: [u32; 2],
        pub string_format: u32,
        pub address_modes: u32,
        pub num_addresses: u32,
        pub bearer_modes: u32,
        pub max_rate: u32,
        pub media_modes: u32,
        pub tone_digit_medctl: [u32; 12],
        pub dev_cap_flags: u32,
        pub max_num_active_calls: u32,
        pub answer_mode: u32,
        pub ring_modes: u32,
        pub line_states: u32,
        pub uui_sizes: [u32; 6],
        pub dial_params: [[u32; 4]; 3],
        pub num_terminals: u32,
        pub terminal_caps: [u32; 2],
        pub terminal_text_entry_size: u32,
        pub terminal_text: [u32; 2],
        pub dev_specific: [u32; 2],
        pub line_features: u32,
        pub settable_dev_status: u32,
        pub device_classes: [u32; 2],
        pub permanent_line_guid: [u8; 16],
        pub address_types: u32,
        pub protocol_guid: [u8; 16],
        pub available_tracking: u32,
    }

    #[repr(C, packed)]
    pub struct LineAddressCaps {
        pub sizes: [u32; 3],
        pub line_device_id: u32,
        pub address: [u32; 2],
        pub dev_specific: [u32; 2],
        pub address_sharing: u32,
        pub address_states: u32,
        pub call_info_states: u32,
        pub party_id_flags: [u32; 5],
        pub call_states: u32,
        pub dial_tone_modes: u32,
        pub busy_modes: u32,
        pub special_info: u32,
        pub disconnect_modes: u32,
        pub max_num_active_calls: u32,
        pub max_num_on_hold_calls: u32,
        pub max_num_on_hold_pending_calls: u32,
        pub max_num_conference: u32,
        pub max_num_trans_conf: u32,
        pub addr_cap_flags: u32,
        pub call_features: u32,
        pub remove_from_conf: [u32; 2],
        pub transfer_modes: u32,
        pub park_modes: u32,
        pub forward_modes: u32,
        pub max_forward_entries: u32,
        pub max_specific_entries: u32,
        pub fwd_num_rings: [u32; 2],
        pub completion: [u32; 7],
        pub address_features: u32,
        pub predictive_auto_transfer_states: u32,
        pub call_treatments: [u32; 3],
        pub device_classes: [u32; 2],
        pub max_call_data_size: u32,
        pub call_features2: u32,
        pub max_no_answer_timeout: u32,
        pub connected_modes: u32,
        pub offering_modes: u32,
        pub available_media_modes: u32,
    }

    #[repr(C, packed)]
    pub struct PartyId {
        pub flags: u32,
        pub id: [u32; 2],
        pub name: [u32; 2],
    }

    #[repr(C, packed)]
    pub struct LineCallInfo {
        pub sizes: [u32; 3],
        pub h_line: u32,
        pub line_device_id: u32,
        pub address_id: u32,
        pub bearer_mode: u32,
        pub rate: u32,
        pub media_mode: u32,
        pub app_specific: u32,
        pub call_id: u32,
        pub related_call_id: u32,
        pub call_param_flags: u32,
        pub call_states: u32,
        pub monitor_digit_modes: u32,
        pub monitor_media_modes: u32,
        pub dial_params: [u32; 4],
        pub origin: u32,
        pub reason: u32,
        pub completion_id: u32,
        pub num_owners: u32,
        pub num_monitors: u32,
        pub country_code: u32,
        pub trunk: u32,
        pub caller: PartyId,
        pub called: PartyId,
        pub connected: PartyId,
        pub redirection: PartyId,
        pub redirecting: PartyId,
        pub app_name: [u32; 2],
        pub displayable_address: [u32; 2],
        pub called_party: [u32; 2],
        pub comment: [u32; 2],
        pub display: [u32; 2],
        pub user_user_info: [u32; 2],
        pub hlc_llc_charging: [u32; 6],
        pub terminal_modes: [u32; 2],
        pub dev_specific: [u32; 2],
        pub call_treatment: u32,
        pub call_data: [u32; 2],
        pub flowspecs: [u32; 4],
        pub address_types: [u32; 5],
    }

    #[repr(C, packed)]
    pub struct LineCallStatus {
        pub sizes: [u32; 3],
        pub call_state: u32,
        pub call_state_mode: u32,
        pub call_privilege: u32,
        pub call_features: u32,
        pub dev_specific: [u32; 2],
        pub call_features2: u32,
        pub state_entry_time: [u16; 8],
    }

    #[repr(C, packed)]
    pub struct LineAddressStatus {
        pub sizes: [u32; 3],
        pub num_in_use: u32,
        pub num_active_calls: u32,
        pub num_on_hold_calls: u32,
        pub num_on_hold_pend_calls: u32,
        pub address_features: u32,
        pub num_rings_no_answer: u32,
        pub forward_num_entries: u32,
        pub forward: [u32; 2],
        pub terminal_modes: [u32; 2],
        pub dev_specific: [u32; 2],
    }

    #[repr(C, packed)]
    pub struct LineForward {
        pub forward_mode: u32,
        pub caller_address: [u32; 2],
        pub dest_country_code: u32,
        pub dest_address: [u32; 2],
        pub caller_address_type: u32,
        pub dest_address_type: u32,
    }

    #[repr(C, packed)]
    pub struct LineDevStatus {
        pub sizes: [u32; 3],
        pub num_opens: u32,
        pub open_media_modes: u32,
        pub num_active_calls: u32,
        pub num_on_hold_calls: u32,
        pub num_on_hold_pend_calls: u32,
        pub line_features: u32,
        pub num_call_completions: u32,
        pub ring_mode: u32,
        pub signal_level: u32,
        pub battery_level: u32,
        pub roam_mode: u32,
        pub dev_status_flags: u32,
        pub terminal_modes: [u32; 2],
        pub dev_specific: [u32; 2],
        pub available_media_modes: u32,
        pub app_info: [u32; 2],
    }
}

#[test]
fn fixed_parts_match_tapi_h() {
    use mirror::*;
    assert_eq!(size_of::<VarString>(), vs::SIZE);
    assert_eq!(offset_of!(VarString, string_size), vs::STRING_SIZE);
    assert_eq!(size_of::<LineDevCaps>(), dc::SIZE_3_0);
    assert_eq!(offset_of!(LineDevCaps, permanent_line_guid), dc::SIZE_2_0);
    assert_eq!(offset_of!(LineDevCaps, address_types), dc::SIZE_2_2);
    assert_eq!(offset_of!(LineDevCaps, line_name), dc::LINE_NAME);
    assert_eq!(offset_of!(LineDevCaps, string_format), dc::STRING_FORMAT);
    assert_eq!(offset_of!(LineDevCaps, dev_cap_flags), dc::DEV_CAP_FLAGS);
    assert_eq!(offset_of!(LineDevCaps, line_states), dc::LINE_STATES);
    assert_eq!(offset_of!(LineDevCaps, num_terminals), dc::NUM_TERMINALS);
    assert_eq!(offset_of!(LineDevCaps, line_features), dc::LINE_FEATURES);
    assert_eq!(offset_of!(LineDevCaps, device_classes), dc::DEVICE_CLASSES);
    assert_eq!(size_of::<LineAddressCaps>(), ac::SIZE);
    assert_eq!(offset_of!(LineAddressCaps, call_states), ac::CALL_STATES);
    assert_eq!(
        offset_of!(LineAddressCaps, addr_cap_flags),
        ac::ADDR_CAP_FLAGS
    );
    assert_eq!(
        offset_of!(LineAddressCaps, forward_modes),
        ac::FORWARD_MODES
    );
    assert_eq!(
        offset_of!(LineAddressCaps, address_features),
        ac::ADDRESS_FEATURES
    );
    assert_eq!(
        offset_of!(LineAddressCaps, device_classes),
        ac::DEVICE_CLASSES
    );
    assert_eq!(
        offset_of!(LineAddressCaps, call_features2),
        ac::CALL_FEATURES2
    );
    assert_eq!(
        offset_of!(LineAddressCaps, available_media_modes),
        ac::AVAILABLE_MEDIA_MODES
    );
    assert_eq!(size_of::<LineCallInfo>(), ci::SIZE_3_0);
    assert_eq!(offset_of!(LineCallInfo, address_types), ci::SIZE_2_0);
    assert_eq!(offset_of!(LineCallInfo, origin), ci::ORIGIN);
    assert_eq!(offset_of!(LineCallInfo, num_owners), ci::NUM_OWNERS);
    assert_eq!(offset_of!(LineCallInfo, caller), ci::CALLER_ID_FLAGS);
    assert_eq!(offset_of!(LineCallInfo, called), ci::CALLED_ID_FLAGS);
    assert_eq!(offset_of!(LineCallInfo, connected), ci::CONNECTED_ID_FLAGS);
    assert_eq!(
        offset_of!(LineCallInfo, redirection),
        ci::REDIRECTION_ID_FLAGS
    );
    assert_eq!(
        offset_of!(LineCallInfo, redirecting),
        ci::REDIRECTING_ID_FLAGS
    );
    assert_eq!(offset_of!(LineCallInfo, app_name), ci::APP_NAME);
    assert_eq!(offset_of!(LineCallInfo, comment), ci::COMMENT);
    assert_eq!(size_of::<LineCallStatus>(), cs::SIZE);
    assert_eq!(
        offset_of!(LineCallStatus, call_features2),
        cs::CALL_FEATURES2
    );
    assert_eq!(
        offset_of!(LineCallStatus, state_entry_time),
        cs::STATE_ENTRY_TIME
    );
    assert_eq!(size_of::<LineAddressStatus>(), st::SIZE);
    assert_eq!(offset_of!(LineAddressStatus, forward), st::FORWARD);
    assert_eq!(size_of::<LineForward>(), fw::SIZE);
    assert_eq!(offset_of!(LineForward, dest_address), fw::DEST_ADDRESS);
    assert_eq!(size_of::<LineDevStatus>(), ds::SIZE);
    assert_eq!(
        offset_of!(LineDevStatus, dev_status_flags),
        ds::DEV_STATUS_FLAGS
    );
    assert_eq!(
        offset_of!(LineDevStatus, available_media_modes),
        ds::AVAILABLE_MEDIA_MODES
    );
}

fn line(name: &str, number: &str) -> LineSnapshot {
    let mut addresses = BTreeMap::new();
    addresses.insert(
        AddressId(0),
        AddressStatus {
            forwarding: vec![tapir_core::Forwarding {
                mode: ForwardMode::Unconditional,
                destination: format!("{number}9"),
            }],
            do_not_disturb: false,
        },
    );
    LineSnapshot {
        id: LineId(4),
        driver: "office".into(),
        key: LineKey::new(number),
        name: name.into(),
        caps: LineCaps {
            operations: OperationSet::all(),
            forward_modes: vec![ForwardMode::Unconditional, ForwardMode::Busy],
            max_calls: 2,
            addresses: vec![AddressInfo {
                id: AddressId(0),
                number: number.into(),
                name: name.into(),
            }],
        },
        in_service: true,
        opens: 1,
        addresses,
    }
}

fn info(caller: &str, name: &str) -> CallInfo {
    CallInfo {
        direction: CallDirection::Incoming,
        calling: Party::number(caller).with_name(name),
        called: Party::number("100"),
        reason: CallReason::Direct,
        ..CallInfo::default()
    }
}

/// A filled structure's size/offset pairs all lie between the fixed part and dwUsedSize.
fn strings_inside(buf: &[u8], fixed: usize, pairs: &[usize]) -> bool {
    let used = get(buf, 8).unwrap_or(0) as usize;
    pairs.iter().all(|at| {
        let size = get(buf, *at).unwrap_or(0) as usize;
        let offset = get(buf, at + 4).unwrap_or(0) as usize;
        (size == 0 && offset == 0) || (offset >= fixed && offset + size <= used)
    })
}

const CANARY: u8 = 0xCD;

/// Fills `fill` into every dwTotalSize from 0 to `needed` inside a larger canary buffer and
/// checks the convention each time.
fn sweep(fixed: usize, pairs: &[usize], fill: &dyn Fn(&mut [u8]) -> Result<(), TspiError>) {
    let mut full = vec![0u8; 4096];
    fill(&mut full).expect("fills a big buffer");
    let needed = get(&full, 4).expect("needed") as usize;
    assert!(needed >= fixed);
    for total in 0..=needed {
        let mut buf = vec![CANARY; total + 64];
        if total >= 4 {
            buf[..4].copy_from_slice(&(total as u32).to_ne_bytes());
        }
        let result = fill(&mut buf[..total]);
        assert!(
            buf[total..].iter().all(|b| *b == CANARY),
            "overrun at {total}"
        );
        if total < fixed {
            assert_eq!(result, Err(TspiError::StructureTooSmall), "size {total}");
            continue;
        }
        assert_eq!(result, Ok(()), "size {total}");
        assert_eq!(
            get(&buf, 0),
            Some(total as u32),
            "dwTotalSize is the caller's"
        );
        assert_eq!(get(&buf, 4), Some(needed as u32), "needed at {total}");
        let used = get(&buf, 8).expect("used") as usize;
        assert!(used >= fixed && used <= total, "used {used} at {total}");
        assert!(strings_inside(&buf, fixed, pairs), "strings at {total}");
    }
}

#[test]
fn dev_caps_fill_and_report_needed() {
    let line = line("Reception", "100");
    let mut buf = vec![0u8; 1024];
    dev_caps(&mut buf, TAPI_2_2, &line).expect("fills");
    let needed = get(&buf, 4).expect("needed") as usize;
    let name = wide::encode("Reception");
    let at = get(&buf, dc::LINE_NAME + 4).expect("offset") as usize;
    assert_eq!(get(&buf, dc::LINE_NAME), Some(name.len() as u32));
    assert_eq!(&buf[at..at + name.len()], &name[..]);
    assert_eq!(get(&buf, 8), Some(needed as u32));
    assert_eq!(get(&buf, dc::NUM_ADDRESSES), Some(1));
    assert_eq!(get(&buf, dc::MAX_NUM_ACTIVE_CALLS), Some(2));
    assert_eq!(get(&buf, dc::STRING_FORMAT), Some(v::STRINGFORMAT_UNICODE));
    // 2.0 has the shorter fixed part.
    let mut small = vec![0u8; dc::SIZE_2_0];
    assert_eq!(dev_caps(&mut small, 0x0002_0000, &line), Ok(()));
    assert_eq!(get(&small, 8), Some(dc::SIZE_2_0 as u32));
    let mut too_small = vec![0u8; dc::SIZE_2_0];
    assert_eq!(
        dev_caps(&mut too_small, TAPI_2_2, &line),
        Err(TspiError::StructureTooSmall)
    );
}

#[test]
fn call_info_keeps_what_tapi_owns() {
    let caps = line("x", "100").caps;
    let info = info("0301234567", "Alice");
    let view = CallView {
        device_id: 12,
        call_id: 7,
        state: CallState::Offering,
        entered: SystemTime::now(),
        info: &info,
        app_specific: 5,
        caps: &caps,
    };
    let mut buf = vec![0x11u8; 1024];
    call_info(&mut buf, &view).expect("fills");
    assert_eq!(get(&buf, ci::HLINE), Some(0x1111_1111));
    assert_eq!(get(&buf, ci::NUM_OWNERS), Some(0x1111_1111));
    assert_eq!(get(&buf, ci::LINE_DEVICE_ID), Some(12));
    assert_eq!(get(&buf, ci::CALL_ID), Some(7));
    assert_eq!(get(&buf, ci::APP_SPECIFIC), Some(5));
    assert_eq!(get(&buf, ci::ORIGIN), Some(v::CALLORIGIN_UNKNOWN));
    assert_eq!(
        get(&buf, ci::CALLER_ID_FLAGS),
        Some(v::CALLPARTYID_ADDRESS | v::CALLPARTYID_NAME)
    );
    let at = get(&buf, ci::CALLER_ID_FLAGS + 8).expect("offset") as usize;
    let size = get(&buf, ci::CALLER_ID_FLAGS + 4).expect("size") as usize;
    assert_eq!(wide::decode_bytes(&buf[at..at + size]), "0301234567");
}

#[test]
fn call_status_reports_features_of_the_state() {
    let caps = line("x", "100").caps;
    let info = CallInfo::default();
    let view = CallView {
        device_id: 1,
        call_id: 1,
        state: CallState::Connected,
        entered: UNIX_EPOCH,
        info: &info,
        app_specific: 0,
        caps: &caps,
    };
    let mut buf = vec![0u8; cs::SIZE];
    call_status(&mut buf, &view).expect("fills");
    assert_eq!(get(&buf, cs::CALL_STATE), Some(0x100));
    let features = get(&buf, cs::CALL_FEATURES).expect("features");
    assert_ne!(features & tapi::call_feature(Operation::Hold), 0);
    assert_eq!(features & tapi::call_feature(Operation::Answer), 0);
    // 1970-01-01 was a Thursday.
    assert_eq!(system_time(UNIX_EPOCH), [1970, 1, 4, 1, 0, 0, 0, 0]);
}

#[test]
fn address_status_lists_forwarding_or_leaves_it_out_whole() {
    let line = line("x", "100");
    let status = line.addresses.get(&AddressId(0));
    let mut buf = vec![0u8; 256];
    address_status(&mut buf, &line, &[CallState::Connected], status).expect("fills");
    assert_eq!(get(&buf, st::FORWARD_NUM_ENTRIES), Some(1));
    assert_eq!(get(&buf, st::NUM_ACTIVE_CALLS), Some(1));
    let list = get(&buf, st::FORWARD + 4).expect("offset") as usize;
    assert_eq!(get(&buf, list + fw::FORWARD_MODE), Some(1));
    let dest = get(&buf, list + fw::DEST_ADDRESS + 4).expect("dest") as usize;
    assert_eq!(wide::decode_bytes(&buf[dest..]), "1009");
    let mut small = vec![0u8; st::SIZE];
    address_status(&mut small, &line, &[], status).expect("fills");
    assert_eq!(get(&small, st::FORWARD_NUM_ENTRIES), Some(0));
    assert_eq!(get(&small, st::FORWARD), Some(0));
    assert!(get(&small, 4).expect("needed") > st::SIZE as u32);
}

#[test]
fn forward_lists_are_read_within_bounds() {
    let mut list = vec![0u8; 8 + 32 + 8];
    list[..4].copy_from_slice(&48u32.to_ne_bytes());
    list[4..8].copy_from_slice(&1u32.to_ne_bytes());
    list[8..12].copy_from_slice(&1u32.to_ne_bytes());
    list[24..28].copy_from_slice(&8u32.to_ne_bytes());
    list[28..32].copy_from_slice(&40u32.to_ne_bytes());
    list[40..48].copy_from_slice(&wide::encode("300"));
    assert_eq!(forward_list(&list), Ok(vec![(1, "300".to_owned())]));
    list[28..32].copy_from_slice(&44u32.to_ne_bytes());
    assert_eq!(forward_list(&list), Err(TspiError::InvalidParam));
    list[4..8].copy_from_slice(&9u32.to_ne_bytes());
    assert_eq!(forward_list(&list), Err(TspiError::InvalidParam));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn no_buffer_size_overruns(name in "\\PC{0,12}", number in "[0-9]{1,8}", caller in "[0-9+]{0,12}") {
        let line = line(&name, &number);
        sweep(dev_caps_size(TAPI_2_2), &[dc::PROVIDER_INFO, dc::SWITCH_INFO, dc::LINE_NAME, dc::DEVICE_CLASSES],
            &|b| dev_caps(b, TAPI_2_2, &line));
        sweep(ac::SIZE, &[ac::ADDRESS, ac::DEVICE_CLASSES],
            &|b| address_caps(b, 9, AddressId(0), &line));
        let info = info(&caller, &name);
        let view = CallView {
            device_id: 9,
            call_id: 3,
            state: CallState::Offering,
            entered: SystemTime::now(),
            info: &info,
            app_specific: 0,
            caps: &line.caps,
        };
        let parties = [ci::CALLER_ID_FLAGS + 4, ci::CALLER_ID_FLAGS + 12, ci::CALLED_ID_FLAGS + 4,
            ci::CALLED_ID_FLAGS + 12, ci::CONNECTED_ID_FLAGS + 4, ci::CONNECTED_ID_FLAGS + 12];
        sweep(CALL_INFO_SIZE, &parties, &|b| call_info(b, &view));
        sweep(cs::SIZE, &[], &|b| call_status(b, &view));
        sweep(st::SIZE, &[st::FORWARD],
            &|b| address_status(b, &line, &[], line.addresses.get(&AddressId(0))));
        sweep(ds::SIZE, &[], &|b| line_dev_status(b, &line, &[CallState::OnHold]));
        sweep(vs::SIZE, &[vs::STRING_SIZE], &|b| varstring_binary(b, name.as_bytes()));
    }
}
