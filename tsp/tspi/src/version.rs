//! TSPI version negotiation: tapir speaks TSPI 2.0, 2.1 and 2.2.

use crate::TspiError;
use tapir_tsp::tapi::version::{TAPI_2_0, TAPI_2_2};

/// The lowest version tapir supports.
pub const LOWEST: u32 = TAPI_2_0;
/// The highest version tapir supports.
pub const HIGHEST: u32 = TAPI_2_2;

/// The highest version within `low ..= high` that tapir supports.
///
/// # Errors
/// [`TspiError::IncompatibleApiVersion`] when the ranges do not overlap.
pub fn negotiate(low: u32, high: u32) -> Result<u32, TspiError> {
    if low > high || high < LOWEST || low > HIGHEST {
        return Err(TspiError::IncompatibleApiVersion);
    }
    Ok(high.min(HIGHEST))
}

/// Whether `version` is one tapir can fill structures for.
pub fn is_supported(version: u32) -> bool {
    (LOWEST..=HIGHEST).contains(&version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_highest_common_version() {
        assert_eq!(negotiate(0x0001_0003, 0x0003_0001), Ok(TAPI_2_2));
        assert_eq!(negotiate(0x0001_0004, 0x0002_0001), Ok(0x0002_0001));
        assert_eq!(negotiate(TAPI_2_0, TAPI_2_0), Ok(TAPI_2_0));
    }

    #[test]
    fn refuses_ranges_outside() {
        assert_eq!(
            negotiate(0x0001_0003, 0x0001_0004),
            Err(TspiError::IncompatibleApiVersion)
        );
        assert_eq!(
            negotiate(0x0003_0000, 0x0003_0001),
            Err(TspiError::IncompatibleApiVersion)
        );
        assert_eq!(
            negotiate(TAPI_2_2, TAPI_2_0),
            Err(TspiError::IncompatibleApiVersion)
        );
    }
}
