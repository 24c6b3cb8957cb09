//! The only code that touches pointers handed in by the caller (TAPISRV or the harness). Each
//! function states what it relies on; everything after it works on safe slices and values.

use crate::TspiError;
use tapir_tsp::tapi::layout::USED_SIZE;

/// Longest string read from a caller (wide characters), so a missing terminator cannot make
/// the provider read without end.
pub const MAX_STRING: usize = 32 * 1024;

/// The caller's variable-size structure as a slice of its `dwTotalSize` bytes.
///
/// # Errors
/// NULL → [`TspiError::InvalidPointer`]; `dwTotalSize` smaller than the three size fields →
/// [`TspiError::StructureTooSmall`].
///
/// # Safety
/// `ptr` is NULL or points to writable memory of at least `dwTotalSize` bytes (its first
/// DWORD), not accessed by anyone else during the call. That is TAPI's contract for every
/// structure it passes to a TSPI function.
#[allow(unsafe_code)]
pub unsafe fn var_struct<'a>(ptr: *mut u8) -> Result<&'a mut [u8], TspiError> {
    if ptr.is_null() {
        return Err(TspiError::InvalidPointer);
    }
    // SAFETY: non-NULL, and the structure starts with its 4-byte dwTotalSize (caller's
    // contract). Packed structures may be unaligned, hence read_unaligned.
    let total = unsafe { ptr.cast::<u32>().read_unaligned() } as usize;
    if total < USED_SIZE + 4 {
        return Err(TspiError::StructureTooSmall);
    }
    // SAFETY: the caller allocated `total` writable bytes at `ptr` for the provider alone.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, total) })
}

/// The bytes of a read-only structure that starts with its `dwTotalSize` (LINEFORWARDLIST).
///
/// # Safety
/// As [`var_struct`], but only read.
#[allow(unsafe_code)]
pub unsafe fn sized_bytes<'a>(ptr: *const u8) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL and starts with the 4-byte dwTotalSize (caller's contract).
    let total = unsafe { ptr.cast::<u32>().read_unaligned() } as usize;
    // SAFETY: the caller's structure is `total` readable bytes long.
    Some(unsafe { std::slice::from_raw_parts(ptr, total.max(4)) })
}

/// A NUL-terminated UTF-16 string, or `None` for NULL. At most `limit` characters are read
/// (TSPI passes a byte size with some strings; others end at the NUL).
///
/// # Safety
/// `ptr` is NULL or points to a UTF-16 string ending with NUL or at least `limit` units long.
#[allow(unsafe_code)]
pub unsafe fn wide_string(ptr: *const u16, limit: usize) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    let mut units = Vec::new();
    for i in 0..limit.min(MAX_STRING) {
        // SAFETY: index `i` is before the terminator or below `limit` (caller's contract);
        // read_unaligned because strings inside packed structures need not be aligned.
        let unit = unsafe { ptr.add(i).read_unaligned() };
        if unit == 0 {
            break;
        }
        units.push(unit);
    }
    Some(String::from_utf16_lossy(&units))
}

/// Writes an out-parameter.
///
/// # Errors
/// [`TspiError::InvalidPointer`] for NULL.
///
/// # Safety
/// `ptr` is NULL or points to writable memory for one `T`.
#[allow(unsafe_code)]
pub unsafe fn write_out<T>(ptr: *mut T, value: T) -> Result<(), TspiError> {
    if ptr.is_null() {
        return Err(TspiError::InvalidPointer);
    }
    // SAFETY: non-NULL and writable for one T (caller's contract); unaligned-safe.
    unsafe { ptr.write_unaligned(value) };
    Ok(())
}

/// Writes `bytes` to a fixed-size caller buffer (LINEEXTENSIONID, the UI DLL name).
///
/// # Errors
/// [`TspiError::InvalidPointer`] for NULL.
///
/// # Safety
/// `ptr` is NULL or points to at least `bytes.len()` writable bytes.
#[allow(unsafe_code)]
pub unsafe fn write_bytes(ptr: *mut u8, bytes: &[u8]) -> Result<(), TspiError> {
    if ptr.is_null() {
        return Err(TspiError::InvalidPointer);
    }
    // SAFETY: the destination holds `bytes.len()` writable bytes (caller's contract) and
    // cannot overlap our own vector.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len()) };
    Ok(())
}
