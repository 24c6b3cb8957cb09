//! Reading tapir's registry values on Windows (`HKEY_LOCAL_MACHINE\SOFTWARE\tapir`), and the
//! list of installed telephony providers. Elsewhere there is no registry: every value is
//! absent.
//!
//! Views: TAPISRV on 64-bit Windows is a 64-bit process and loads only 64-bit providers, so the
//! 64-bit view is read first. A value written into the 32-bit view (a 32-bit `reg.exe` or
//! installer writes to `SOFTWARE\WOW6432Node\tapir`) is read when the 64-bit view has none.

/// The registry key (under HKEY_LOCAL_MACHINE) holding tapir's settings.
pub const KEY: &str = "SOFTWARE\\tapir";

/// Where TAPI lists its installed providers (`ProviderFileName0`, `ProviderFileName1`, ...).
pub const PROVIDERS_KEY: &str =
    "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Telephony\\Providers";

/// A `REG_SZ` value under HKLM\\`key`, from the 64-bit view or else the 32-bit view.
/// `None` when absent or empty.
pub fn string(key: &str, value: &str) -> Option<String> {
    imp::string(key, value)
}

/// The file names of the installed telephony providers, as TAPI lists them.
pub fn provider_files() -> Vec<String> {
    let count = string(PROVIDERS_KEY, "NumProviders")
        .and_then(|n| n.trim().parse::<u32>().ok())
        .or_else(|| imp::dword(PROVIDERS_KEY, "NumProviders"))
        .unwrap_or(0);
    // TAPI numbers the entries 0..NumProviders; gaps are skipped, and a few more are looked
    // at in case NumProviders is stale.
    (0..count.saturating_add(8).min(1024))
        .filter_map(|i| string(PROVIDERS_KEY, &format!("ProviderFileName{i}")))
        .collect()
}

#[cfg(not(windows))]
mod imp {
    pub fn string(_key: &str, _value: &str) -> Option<String> {
        None
    }

    pub fn dword(_key: &str, _value: &str) -> Option<u32> {
        None
    }
}

#[cfg(windows)]
#[allow(unsafe_code)]
mod imp {
    use std::os::windows::ffi::OsStringExt;
    use windows_sys::Win32::Foundation::ERROR_SUCCESS;
    use windows_sys::Win32::System::Registry::{
        RegGetValueW, HKEY_LOCAL_MACHINE, RRF_RT_DWORD, RRF_RT_REG_SZ, RRF_SUBKEY_WOW6432KEY,
        RRF_SUBKEY_WOW6464KEY,
    };

    fn wide(text: &str) -> Vec<u16> {
        text.encode_utf16().chain(Some(0)).collect()
    }

    fn read(key: &str, value: &str, flags: u32, data: &mut [u8]) -> Option<usize> {
        let key = wide(key);
        let value = wide(value);
        let mut bytes = data.len() as u32;
        // SAFETY: key and value are NUL-terminated UTF-16 buffers that outlive the call;
        // `data` has `bytes` writable bytes, and RegGetValueW writes at most that many and
        // stores the count it wrote in `bytes`.
        let status = unsafe {
            RegGetValueW(
                HKEY_LOCAL_MACHINE,
                key.as_ptr(),
                value.as_ptr(),
                flags,
                std::ptr::null_mut(),
                data.as_mut_ptr().cast(),
                &mut bytes,
            )
        };
        (status == ERROR_SUCCESS).then_some((bytes as usize).min(data.len()))
    }

    pub fn string(key: &str, value: &str) -> Option<String> {
        for view in [RRF_SUBKEY_WOW6464KEY, RRF_SUBKEY_WOW6432KEY] {
            let mut data = vec![0u8; 8192];
            let flags = RRF_RT_REG_SZ | view;
            let Some(len) = read(key, value, flags, &mut data) else {
                continue;
            };
            let units: Vec<u16> = data[..len]
                .chunks_exact(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]))
                .collect();
            let end = units.iter().position(|u| *u == 0).unwrap_or(units.len());
            let text = std::ffi::OsString::from_wide(&units[..end])
                .to_string_lossy()
                .into_owned();
            if !text.is_empty() {
                return Some(text);
            }
        }
        None
    }

    pub fn dword(key: &str, value: &str) -> Option<u32> {
        for view in [RRF_SUBKEY_WOW6464KEY, RRF_SUBKEY_WOW6432KEY] {
            let mut data = [0u8; 4];
            if read(key, value, RRF_RT_DWORD | view, &mut data) == Some(4) {
                return Some(u32::from_le_bytes(data));
            }
        }
        None
    }
}
