//! Installing the provider: TAPI calls `TUISPI_providerInstall` when an administrator adds it
//! (Phone and Modem → Advanced → Add, or `lineAddProvider`), before it enters the provider
//! into its list. tapir runs one provider per machine (one host, one set of device ids), so a
//! second install is refused with `LINEERR_NOMULTIPLEINSTANCE` when TAPI's list
//! (`HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Telephony\Providers`,
//! `ProviderFileName<N>`) names this file already.

use crate::exports::UI_DLL_NAME;
use crate::TspiError;

/// Whether `entry` (a `ProviderFileName<N>` value: a bare file name or a full path) names
/// this provider's file.
pub fn names_us(entry: &str) -> bool {
    let file = entry.trim().rsplit(['\\', '/']).next().unwrap_or_default();
    file.eq_ignore_ascii_case(UI_DLL_NAME)
}

/// `TUISPI_providerInstall`'s decision over TAPI's list of provider files.
///
/// # Errors
/// [`TspiError::NoMultipleInstance`] when the list names this provider already.
pub fn check(installed: &[String]) -> Result<(), TspiError> {
    if installed.iter().any(|entry| names_us(entry)) {
        tracing::warn!("tapir.tsp is installed already; a second instance is refused.");
        return Err(TspiError::NoMultipleInstance);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_install_is_refused() {
        assert_eq!(check(&[]), Ok(()));
        assert_eq!(check(&["unimdm.tsp".into(), "kmddsp.tsp".into()]), Ok(()));
        assert_eq!(
            check(&["unimdm.tsp".into(), "TAPIR.TSP".into()]),
            Err(TspiError::NoMultipleInstance)
        );
        assert_eq!(
            check(&["C:\\Windows\\System32\\tapir.tsp".into()]),
            Err(TspiError::NoMultipleInstance)
        );
        assert!(!names_us("notapir.tsp"));
    }
}
