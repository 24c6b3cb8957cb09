//! The exported `TSPI_*` and `TUISPI_*` functions, with TAPI's names and parameter widths:
//! DWORD `u32`, LONG `i32`, DWORD_PTR and every HDRV*/HTAPI* handle `usize` (pointer-sized;
//! HTAPIDIALOGINSTANCE is 32-bit), strings UTF-16. Each function checks its pointers through
//! [`crate::ffi`], calls the safe [`crate::provider`], and turns the outcome into TAPI's
//! LONG. A panic never crosses the boundary: it becomes LINEERR_OPERATIONFAILED.
//!
//! Functions that read or write through a caller's pointer are `unsafe fn`s.
//!
//! # Safety (for those functions)
//! The caller keeps TAPI's contract for the function: pointers are NULL or valid for what
//! the TSPI reference says, structures are `dwTotalSize` bytes long, strings end with NUL.
//!
//! Every export carries `#[allow(unsafe_code)]` because the lint also flags `#[no_mangle]`;
//! the functions that touch no pointer are safe functions.

#![allow(non_snake_case)]

use crate::error::to_long;
use crate::provider::{self, CompletionProc, LineEventProc};
use crate::{ffi, structs, wide, TspiError};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use tapir_core::CallId;
use tapir_tsp::tapi::layout::LINEEXTENSIONID_SIZE;
use tapir_tsp::tapi::version::MAX_PATH;
use tapir_tsp::Action;

/// TUISPIDLLCALLBACK.
pub type TuiCallback = Option<extern "system" fn(usize, u32, *mut c_void, u32) -> i32>;

/// The file name of the UI DLL (the TSP itself), given by `TSPI_providerUIIdentify`.
pub const UI_DLL_NAME: &str = "tapir.tsp";

/// The only device class whose configuration tapir answers for.
const LINE_CLASS: &str = "tapi/line";

fn guarded(f: impl FnOnce() -> Result<i32, TspiError>) -> i32 {
    catch_unwind(AssertUnwindSafe(|| to_long(f())))
        .unwrap_or_else(|_| TspiError::OperationFailed.code())
}

/// An asynchronous function's answer: its request id when accepted.
fn accepted(request: u32, result: Result<(), TspiError>) -> Result<i32, TspiError> {
    result.map(|()| request as i32)
}

fn ok(result: Result<(), TspiError>) -> Result<i32, TspiError> {
    result.map(|()| 0)
}

fn call_action(request: u32, hd_call: usize, action: impl FnOnce(CallId) -> Action) -> i32 {
    guarded(|| {
        let provider = provider::current()?;
        accepted(request, provider.call_request(request, hd_call, action))
    })
}

/// The optional destination of a TSPI function.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated UTF-16 string.
#[allow(unsafe_code)]
unsafe fn destination(ptr: *const u16) -> Option<String> {
    // SAFETY: forwarded contract.
    unsafe { ffi::wide_string(ptr, ffi::MAX_STRING) }
}

// ---- Provider lifecycle -------------------------------------------------------------------

/// TSPI_lineNegotiateTSPIVersion.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineNegotiateTSPIVersion(
    dwDeviceID: u32,
    dwLowVersion: u32,
    dwHighVersion: u32,
    lpdwTSPIVersion: *mut u32,
) -> i32 {
    guarded(|| {
        let version = provider::negotiate(dwDeviceID, dwLowVersion, dwHighVersion)?;
        // SAFETY: lpdwTSPIVersion is NULL or a writable DWORD (TAPI's contract).
        unsafe { ffi::write_out(lpdwTSPIVersion, version) }?;
        Ok(0)
    })
}

/// TSPI_providerEnumDevices.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_providerEnumDevices(
    _dwPermanentProviderID: u32,
    lpdwNumLines: *mut u32,
    lpdwNumPhones: *mut u32,
    hProvider: usize,
    lpfnLineCreateProc: Option<LineEventProc>,
    _lpfnPhoneCreateProc: *const c_void,
) -> i32 {
    guarded(|| {
        if lpdwNumLines.is_null() || lpdwNumPhones.is_null() {
            return Err(TspiError::InvalidPointer);
        }
        let lines = provider::enum_devices(hProvider, lpfnLineCreateProc)?;
        // SAFETY: both pointers are non-NULL writable DWORDs (TAPI's contract).
        unsafe {
            ffi::write_out(lpdwNumLines, lines)?;
            ffi::write_out(lpdwNumPhones, 0)?;
        }
        Ok(0)
    })
}

/// TSPI_providerInit.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn TSPI_providerInit(
    dwTSPIVersion: u32,
    _dwPermanentProviderID: u32,
    dwLineDeviceIDBase: u32,
    _dwPhoneDeviceIDBase: u32,
    _dwNumLines: usize,
    _dwNumPhones: usize,
    lpfnCompletionProc: Option<CompletionProc>,
    lpdwTSPIOptions: *mut u32,
) -> i32 {
    guarded(|| {
        if !lpdwTSPIOptions.is_null() {
            // SAFETY: non-NULL writable DWORD (TAPI's contract). 0: the provider is reentrant.
            unsafe { ffi::write_out(lpdwTSPIOptions, 0) }?;
        }
        ok(provider::init(
            dwTSPIVersion,
            dwLineDeviceIDBase,
            lpfnCompletionProc,
        ))
    })
}

/// TSPI_providerShutdown.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_providerShutdown(
    _dwTSPIVersion: u32,
    _dwPermanentProviderID: u32,
) -> i32 {
    guarded(|| {
        provider::shutdown();
        Ok(0)
    })
}

/// TSPI_providerCreateLineDevice.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_providerCreateLineDevice(dwTempID: usize, dwDeviceID: u32) -> i32 {
    guarded(|| ok(provider::current()?.create_line_device(dwTempID, dwDeviceID)))
}

/// TSPI_providerFreeDialogInstance: tapir opens no dialogs.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_providerFreeDialogInstance(_hdDlgInst: usize) -> i32 {
    0
}

/// TSPI_providerGenericDialogData: tapir opens no dialogs, so there is nothing to receive.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_providerGenericDialogData(
    _dwObjectID: usize,
    _dwObjectType: u32,
    _lpParams: *mut c_void,
    _dwSize: u32,
) -> i32 {
    0
}

/// TSPI_providerUIIdentify: the TSP is its own UI DLL.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_providerUIIdentify(lpszUIDLLName: *mut u16) -> i32 {
    guarded(|| {
        let name = wide::encode(UI_DLL_NAME);
        if name.len() > MAX_PATH * 2 {
            return Err(TspiError::OperationFailed);
        }
        // SAFETY: TAPI passes a buffer of MAX_PATH wide characters; the name is shorter.
        unsafe { ffi::write_bytes(lpszUIDLLName.cast(), &name) }?;
        Ok(0)
    })
}

// ---- Line devices -----------------------------------------------------------------------

/// TSPI_lineGetDevCaps.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineGetDevCaps(
    dwDeviceID: u32,
    dwTSPIVersion: u32,
    _dwExtVersion: u32,
    lpLineDevCaps: *mut u8,
) -> i32 {
    guarded(|| {
        let provider = provider::current()?;
        // SAFETY: LINEDEVCAPS of dwTotalSize bytes (TAPI's contract).
        let buf = unsafe { ffi::var_struct(lpLineDevCaps) }?;
        ok(provider.get_dev_caps(dwDeviceID, dwTSPIVersion, buf))
    })
}

/// TSPI_lineGetAddressCaps.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineGetAddressCaps(
    dwDeviceID: u32,
    dwAddressID: u32,
    _dwTSPIVersion: u32,
    _dwExtVersion: u32,
    lpAddressCaps: *mut u8,
) -> i32 {
    guarded(|| {
        let provider = provider::current()?;
        // SAFETY: LINEADDRESSCAPS of dwTotalSize bytes (TAPI's contract).
        let buf = unsafe { ffi::var_struct(lpAddressCaps) }?;
        ok(provider.get_address_caps(dwDeviceID, dwAddressID, buf))
    })
}

/// TSPI_lineOpen.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineOpen(
    dwDeviceID: u32,
    htLine: usize,
    lphdLine: *mut usize,
    dwTSPIVersion: u32,
    lpfnEventProc: Option<LineEventProc>,
) -> i32 {
    guarded(|| {
        if lphdLine.is_null() {
            return Err(TspiError::InvalidPointer);
        }
        let provider = provider::current()?;
        let hd_line = provider.open(dwDeviceID, htLine, dwTSPIVersion, lpfnEventProc)?;
        // SAFETY: non-NULL writable HDRVLINE (TAPI's contract).
        unsafe { ffi::write_out(lphdLine, hd_line) }?;
        Ok(0)
    })
}

/// TSPI_lineClose.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineClose(hdLine: usize) -> i32 {
    guarded(|| ok(provider::current()?.close(hdLine)))
}

/// TSPI_lineSetStatusMessages.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineSetStatusMessages(
    hdLine: usize,
    dwLineStates: u32,
    dwAddressStates: u32,
) -> i32 {
    guarded(|| ok(provider::current()?.set_status_messages(hdLine, dwLineStates, dwAddressStates)))
}

/// TSPI_lineSetDefaultMediaDetection.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineSetDefaultMediaDetection(hdLine: usize, dwMediaModes: u32) -> i32 {
    guarded(|| ok(provider::current()?.media_detection(hdLine, dwMediaModes)))
}

/// TSPI_lineConditionalMediaDetection.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineConditionalMediaDetection(
    hdLine: usize,
    dwMediaModes: u32,
    _lpCallParams: *const u8,
) -> i32 {
    guarded(|| ok(provider::current()?.media_detection(hdLine, dwMediaModes)))
}

/// TSPI_lineGetLineDevStatus.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineGetLineDevStatus(
    hdLine: usize,
    lpLineDevStatus: *mut u8,
) -> i32 {
    guarded(|| {
        let provider = provider::current()?;
        // SAFETY: LINEDEVSTATUS of dwTotalSize bytes (TAPI's contract).
        let buf = unsafe { ffi::var_struct(lpLineDevStatus) }?;
        ok(provider.get_line_dev_status(hdLine, buf))
    })
}

/// TSPI_lineGetAddressStatus.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineGetAddressStatus(
    hdLine: usize,
    dwAddressID: u32,
    lpAddressStatus: *mut u8,
) -> i32 {
    guarded(|| {
        let provider = provider::current()?;
        // SAFETY: LINEADDRESSSTATUS of dwTotalSize bytes (TAPI's contract).
        let buf = unsafe { ffi::var_struct(lpAddressStatus) }?;
        ok(provider.get_address_status(hdLine, dwAddressID, buf))
    })
}

/// TSPI_lineGetNumAddressIDs.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineGetNumAddressIDs(
    hdLine: usize,
    lpdwNumAddressIDs: *mut u32,
) -> i32 {
    guarded(|| {
        let count = provider::current()?.num_address_ids(hdLine)?;
        // SAFETY: NULL or a writable DWORD (TAPI's contract).
        unsafe { ffi::write_out(lpdwNumAddressIDs, count) }?;
        Ok(0)
    })
}

/// TSPI_lineGetAddressID.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineGetAddressID(
    hdLine: usize,
    lpdwAddressID: *mut u32,
    dwAddressMode: u32,
    lpsAddress: *const u16,
    dwSize: u32,
) -> i32 {
    guarded(|| {
        // SAFETY: lpsAddress is NULL or dwSize bytes of UTF-16 (TAPI's contract).
        let address = unsafe { ffi::wide_string(lpsAddress, dwSize as usize / 2) }
            .ok_or(TspiError::InvalidPointer)?;
        let id = provider::current()?.address_id(hdLine, dwAddressMode, &address)?;
        // SAFETY: NULL or a writable DWORD.
        unsafe { ffi::write_out(lpdwAddressID, id) }?;
        Ok(0)
    })
}

/// TSPI_lineGetID: tapir serves no device classes beyond what TAPI answers itself.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn TSPI_lineGetID(
    _hdLine: usize,
    _dwAddressID: u32,
    _hdCall: usize,
    _dwSelect: u32,
    lpDeviceID: *mut u8,
    _lpszDeviceClass: *const u16,
    _hTargetProcess: *mut c_void,
) -> i32 {
    guarded(|| {
        // SAFETY: VARSTRING of dwTotalSize bytes (TAPI's contract).
        unsafe { ffi::var_struct(lpDeviceID) }?;
        Err(TspiError::InvalidDeviceClass)
    })
}

/// TSPI_lineGetDevConfig: the configuration of a tapir line is empty ("tapi/line" only).
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineGetDevConfig(
    dwDeviceID: u32,
    lpDeviceConfig: *mut u8,
    lpszDeviceClass: *const u16,
) -> i32 {
    guarded(|| {
        provider::current()?.check_device(dwDeviceID)?;
        // SAFETY: NULL or a NUL-terminated UTF-16 string.
        let class = unsafe { ffi::wide_string(lpszDeviceClass, ffi::MAX_STRING) };
        if class.is_some_and(|c| !c.is_empty() && c != LINE_CLASS) {
            return Err(TspiError::InvalidDeviceClass);
        }
        // SAFETY: VARSTRING of dwTotalSize bytes (TAPI's contract).
        let buf = unsafe { ffi::var_struct(lpDeviceConfig) }?;
        ok(structs::varstring_binary(buf, &[]))
    })
}

/// TSPI_lineSetDevConfig: only the empty configuration is accepted.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineSetDevConfig(
    dwDeviceID: u32,
    _lpDeviceConfig: *const c_void,
    dwSize: u32,
    lpszDeviceClass: *const u16,
) -> i32 {
    guarded(|| {
        provider::current()?.check_device(dwDeviceID)?;
        // SAFETY: NULL or a NUL-terminated UTF-16 string.
        let class = unsafe { ffi::wide_string(lpszDeviceClass, ffi::MAX_STRING) };
        if class.is_some_and(|c| !c.is_empty() && c != LINE_CLASS) {
            return Err(TspiError::InvalidDeviceClass);
        }
        if dwSize != 0 {
            return Err(TspiError::InvalidParam);
        }
        Ok(0)
    })
}

/// TSPI_lineGetExtensionID: no extensions (all zero).
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineGetExtensionID(
    dwDeviceID: u32,
    _dwTSPIVersion: u32,
    lpExtensionID: *mut u8,
) -> i32 {
    guarded(|| {
        provider::current()?.check_device(dwDeviceID)?;
        // SAFETY: LINEEXTENSIONID is 16 writable bytes (TAPI's contract).
        unsafe { ffi::write_bytes(lpExtensionID, &[0; LINEEXTENSIONID_SIZE]) }?;
        Ok(0)
    })
}

/// TSPI_lineGetIcon: no icon of its own (TAPI uses its default).
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineGetIcon(
    dwDeviceID: u32,
    _lpszDeviceClass: *const u16,
    lphIcon: *mut *mut c_void,
) -> i32 {
    guarded(|| {
        provider::current()?.check_device(dwDeviceID)?;
        // SAFETY: NULL or a writable HICON.
        unsafe { ffi::write_out(lphIcon, std::ptr::null_mut()) }?;
        Ok(0)
    })
}

/// TSPI_lineNegotiateExtVersion: tapir has no extensions.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineNegotiateExtVersion(
    _dwDeviceID: u32,
    _dwTSPIVersion: u32,
    _dwLowVersion: u32,
    _dwHighVersion: u32,
    lpdwExtVersion: *mut u32,
) -> i32 {
    guarded(|| {
        if !lpdwExtVersion.is_null() {
            // SAFETY: non-NULL writable DWORD.
            unsafe { ffi::write_out(lpdwExtVersion, 0) }?;
        }
        Err(TspiError::IncompatibleExtVersion)
    })
}

/// TSPI_lineSelectExtVersion: only "no extension" (0).
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineSelectExtVersion(hdLine: usize, dwExtVersion: u32) -> i32 {
    guarded(|| {
        provider::current()?.check_line(hdLine)?;
        if dwExtVersion == 0 {
            Ok(0)
        } else {
            Err(TspiError::IncompatibleExtVersion)
        }
    })
}

/// TSPI_lineDevSpecific: none (refused at once, no completion).
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineDevSpecific(
    _dwRequestID: u32,
    _hdLine: usize,
    _dwAddressID: u32,
    _hdCall: usize,
    _lpParams: *mut c_void,
    _dwSize: u32,
) -> i32 {
    TspiError::OperationUnavailable.code()
}

/// TSPI_lineDevSpecificFeature: none (refused at once, no completion).
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineDevSpecificFeature(
    _dwRequestID: u32,
    _hdLine: usize,
    _dwFeature: u32,
    _lpParams: *mut c_void,
    _dwSize: u32,
) -> i32 {
    TspiError::OperationUnavailable.code()
}

// ---- Calls ----------------------------------------------------------------------------------

/// TSPI_lineMakeCall. `*lphdCall` is written before the function returns (and before the
/// completion can be sent). lpCallParams is not read: calls go out on the first address.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineMakeCall(
    dwRequestID: u32,
    hdLine: usize,
    htCall: usize,
    lphdCall: *mut usize,
    lpszDestAddress: *const u16,
    _dwCountryCode: u32,
    _lpCallParams: *const u8,
) -> i32 {
    guarded(|| {
        if lphdCall.is_null() {
            return Err(TspiError::InvalidPointer);
        }
        // SAFETY: NULL or a NUL-terminated UTF-16 string.
        let dest = unsafe { destination(lpszDestAddress) };
        let provider = provider::current()?;
        let result = provider.make_call(dwRequestID, hdLine, htCall, dest, |hd_call| {
            // SAFETY: lphdCall is non-NULL (checked above) and writable (TAPI's contract).
            let _ = unsafe { ffi::write_out(lphdCall, hd_call) };
        });
        accepted(dwRequestID, result)
    })
}

/// TSPI_lineDrop (user-user information is not sent).
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineDrop(
    dwRequestID: u32,
    hdCall: usize,
    _lpsUserUserInfo: *const u8,
    _dwSize: u32,
) -> i32 {
    call_action(dwRequestID, hdCall, |call| Action::Drop { call })
}

/// TSPI_lineAnswer (user-user information is not sent).
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineAnswer(
    dwRequestID: u32,
    hdCall: usize,
    _lpsUserUserInfo: *const u8,
    _dwSize: u32,
) -> i32 {
    call_action(dwRequestID, hdCall, |call| Action::Answer { call })
}

/// TSPI_lineHold.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineHold(dwRequestID: u32, hdCall: usize) -> i32 {
    call_action(dwRequestID, hdCall, |call| Action::Hold { call })
}

/// TSPI_lineUnhold.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineUnhold(dwRequestID: u32, hdCall: usize) -> i32 {
    call_action(dwRequestID, hdCall, |call| Action::Unhold { call })
}

/// TSPI_lineRedirect.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineRedirect(
    dwRequestID: u32,
    hdCall: usize,
    lpszDestAddress: *const u16,
    _dwCountryCode: u32,
) -> i32 {
    // SAFETY: NULL or a NUL-terminated UTF-16 string.
    match unsafe { destination(lpszDestAddress) } {
        Some(destination) => call_action(dwRequestID, hdCall, |call| Action::Redirect {
            call,
            destination,
        }),
        None => TspiError::InvalidPointer.code(),
    }
}

/// TSPI_lineBlindTransfer.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineBlindTransfer(
    dwRequestID: u32,
    hdCall: usize,
    lpszDestAddress: *const u16,
    _dwCountryCode: u32,
) -> i32 {
    // SAFETY: NULL or a NUL-terminated UTF-16 string.
    match unsafe { destination(lpszDestAddress) } {
        Some(destination) => call_action(dwRequestID, hdCall, |call| Action::BlindTransfer {
            call,
            destination,
        }),
        None => TspiError::InvalidPointer.code(),
    }
}

/// TSPI_lineDial.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineDial(
    dwRequestID: u32,
    hdCall: usize,
    lpszDestAddress: *const u16,
    _dwCountryCode: u32,
) -> i32 {
    // SAFETY: NULL or a NUL-terminated UTF-16 string.
    match unsafe { destination(lpszDestAddress) } {
        Some(digits) => call_action(dwRequestID, hdCall, |call| Action::Dial { call, digits }),
        None => TspiError::InvalidPointer.code(),
    }
}

/// TSPI_lineSetupTransfer. `*lphdConsultCall` is written before the function returns.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineSetupTransfer(
    dwRequestID: u32,
    hdCall: usize,
    htConsultCall: usize,
    lphdConsultCall: *mut usize,
    _lpCallParams: *const u8,
) -> i32 {
    guarded(|| {
        if lphdConsultCall.is_null() {
            return Err(TspiError::InvalidPointer);
        }
        let provider = provider::current()?;
        let result = provider.setup_transfer(dwRequestID, hdCall, htConsultCall, |hd| {
            // SAFETY: non-NULL (checked above) and writable (TAPI's contract).
            let _ = unsafe { ffi::write_out(lphdConsultCall, hd) };
        });
        accepted(dwRequestID, result)
    })
}

/// TSPI_lineCompleteTransfer (LINETRANSFERMODE_TRANSFER; conference is refused).
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineCompleteTransfer(
    dwRequestID: u32,
    hdCall: usize,
    hdConsultCall: usize,
    _htConfCall: usize,
    _lphdConfCall: *mut usize,
    dwTransferMode: u32,
) -> i32 {
    guarded(|| {
        let provider = provider::current()?;
        accepted(
            dwRequestID,
            provider.complete_transfer(dwRequestID, hdCall, hdConsultCall, dwTransferMode),
        )
    })
}

/// TSPI_lineSwapHold.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineSwapHold(
    dwRequestID: u32,
    hdActiveCall: usize,
    hdHeldCall: usize,
) -> i32 {
    guarded(|| {
        let provider = provider::current()?;
        accepted(
            dwRequestID,
            provider.swap_hold(dwRequestID, hdActiveCall, hdHeldCall),
        )
    })
}

/// TSPI_lineForward. NULL or an empty list cancels forwarding; one entry with an empty
/// destination switches do-not-disturb on. No consultation call is ever created.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn TSPI_lineForward(
    dwRequestID: u32,
    hdLine: usize,
    bAllAddresses: u32,
    dwAddressID: u32,
    lpForwardList: *const u8,
    _dwNumRingsNoAnswer: u32,
    _htConsultCall: usize,
    lphdConsultCall: *mut usize,
    _lpCallParams: *const u8,
) -> i32 {
    guarded(|| {
        // SAFETY: NULL or a LINEFORWARDLIST of dwTotalSize bytes (TAPI's contract).
        let entries = match unsafe { ffi::sized_bytes(lpForwardList) } {
            Some(bytes) => Some(structs::forward_list(bytes)?),
            None => None,
        };
        if !lphdConsultCall.is_null() {
            // SAFETY: non-NULL writable HDRVCALL: no consultation call.
            unsafe { ffi::write_out(lphdConsultCall, 0) }?;
        }
        let provider = provider::current()?;
        accepted(
            dwRequestID,
            provider.forward(
                dwRequestID,
                hdLine,
                bAllAddresses != 0,
                dwAddressID,
                entries,
            ),
        )
    })
}

/// TSPI_lineSendUserUserInfo: not supported (refused at once).
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineSendUserUserInfo(
    _dwRequestID: u32,
    _hdCall: usize,
    _lpsUserUserInfo: *const u8,
    _dwSize: u32,
) -> i32 {
    TspiError::OperationUnavailable.code()
}

/// TSPI_lineSetCallData: not supported (refused at once).
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineSetCallData(
    _dwRequestID: u32,
    _hdCall: usize,
    _lpCallData: *mut c_void,
    _dwSize: u32,
) -> i32 {
    TspiError::OperationUnavailable.code()
}

/// TSPI_lineCloseCall: the handle is invalid afterwards.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineCloseCall(hdCall: usize) -> i32 {
    guarded(|| ok(provider::current()?.close_call(hdCall)))
}

/// TSPI_lineGetCallInfo.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineGetCallInfo(hdCall: usize, lpCallInfo: *mut u8) -> i32 {
    guarded(|| {
        let provider = provider::current()?;
        // SAFETY: LINECALLINFO of dwTotalSize bytes (TAPI's contract).
        let buf = unsafe { ffi::var_struct(lpCallInfo) }?;
        ok(provider.get_call_info(hdCall, buf))
    })
}

/// TSPI_lineGetCallStatus.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineGetCallStatus(hdCall: usize, lpCallStatus: *mut u8) -> i32 {
    guarded(|| {
        let provider = provider::current()?;
        // SAFETY: LINECALLSTATUS of dwTotalSize bytes (TAPI's contract).
        let buf = unsafe { ffi::var_struct(lpCallStatus) }?;
        ok(provider.get_call_status(hdCall, buf))
    })
}

/// TSPI_lineGetCallAddressID.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineGetCallAddressID(
    hdCall: usize,
    lpdwAddressID: *mut u32,
) -> i32 {
    guarded(|| {
        let id = provider::current()?.get_call_address_id(hdCall)?;
        // SAFETY: NULL or a writable DWORD.
        unsafe { ffi::write_out(lpdwAddressID, id) }?;
        Ok(0)
    })
}

/// TSPI_lineGetCallIDs.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "system" fn TSPI_lineGetCallIDs(
    hdCall: usize,
    lpdwAddressID: *mut u32,
    lpdwCallID: *mut u32,
    lpdwRelatedCallID: *mut u32,
) -> i32 {
    guarded(|| {
        let (address, call, related) = provider::current()?.get_call_ids(hdCall)?;
        // SAFETY: each pointer is NULL or a writable DWORD.
        unsafe {
            ffi::write_out(lpdwAddressID, address)?;
            ffi::write_out(lpdwCallID, call)?;
            ffi::write_out(lpdwRelatedCallID, related)?;
        }
        Ok(0)
    })
}

/// TSPI_lineSetAppSpecific.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TSPI_lineSetAppSpecific(hdCall: usize, dwAppSpecific: u32) -> i32 {
    guarded(|| ok(provider::current()?.set_app_specific(hdCall, dwAppSpecific)))
}

// ---- UI (TUISPI) ------------------------------------------------------------------------------

/// TUISPI_lineConfigDialog: tapir's lines are configured in its TOML file; no dialog.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TUISPI_lineConfigDialog(
    _lpfnUIDLLCallback: TuiCallback,
    _dwDeviceID: u32,
    _hwndOwner: *mut c_void,
    _lpszDeviceClass: *const u16,
) -> i32 {
    0
}

/// TUISPI_lineConfigDialogEdit: the (empty) configuration comes back unchanged.
///
/// # Safety
/// See the module documentation.
#[no_mangle]
#[allow(unsafe_code)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn TUISPI_lineConfigDialogEdit(
    _lpfnUIDLLCallback: TuiCallback,
    _dwDeviceID: u32,
    _hwndOwner: *mut c_void,
    _lpszDeviceClass: *const u16,
    _lpDeviceConfigIn: *const c_void,
    _dwSize: u32,
    lpDeviceConfigOut: *mut u8,
) -> i32 {
    guarded(|| {
        // SAFETY: VARSTRING of dwTotalSize bytes (TAPI's contract).
        let buf = unsafe { ffi::var_struct(lpDeviceConfigOut) }?;
        ok(structs::varstring_binary(buf, &[]))
    })
}

/// TUISPI_providerConfig: no dialog (see the README for the configuration file).
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TUISPI_providerConfig(
    _lpfnUIDLLCallback: TuiCallback,
    _hwndOwner: *mut c_void,
    _dwPermanentProviderID: u32,
) -> i32 {
    0
}

/// TUISPI_providerInstall: nothing to set up beyond the configuration; a second instance is
/// refused with LINEERR_NOMULTIPLEINSTANCE (see [`crate::install`]).
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TUISPI_providerInstall(
    _lpfnUIDLLCallback: TuiCallback,
    _hwndOwner: *mut c_void,
    _dwPermanentProviderID: u32,
) -> i32 {
    guarded(|| {
        crate::install::check(&crate::registry::provider_files())?;
        Ok(0)
    })
}

/// TUISPI_providerRemove: nothing to clean up.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TUISPI_providerRemove(
    _lpfnUIDLLCallback: TuiCallback,
    _hwndOwner: *mut c_void,
    _dwPermanentProviderID: u32,
) -> i32 {
    0
}

/// TUISPI_providerGenericDialog: tapir never asks for one.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TUISPI_providerGenericDialog(
    _lpfnUIDLLCallback: TuiCallback,
    _htDlgInst: u32,
    _lpParams: *mut c_void,
    _dwSize: u32,
    _hEvent: *mut c_void,
) -> i32 {
    0
}

/// TUISPI_providerGenericDialogData: tapir never asks for one.
#[no_mangle]
#[allow(unsafe_code)]
pub extern "system" fn TUISPI_providerGenericDialogData(
    _htDlgInst: u32,
    _lpParams: *mut c_void,
    _dwSize: u32,
) -> i32 {
    0
}
