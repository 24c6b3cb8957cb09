//! Why a TSPI function refuses, as one typed error, and the LINEERR code for each reason.

use tapir_core::{DriverError, ErrorKind};
use tapir_tsp::tapi::{self, lineerr};

/// A refusal. TSPI functions return it as a negative LINEERR (see [`TspiError::code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TspiError {
    /// The front end or the driver refused (capabilities, call state, out of service ...).
    Driver(ErrorKind),
    /// No such line device id.
    BadDeviceId,
    /// The versions asked for do not overlap with 2.0 ..= 2.2.
    IncompatibleApiVersion,
    /// tapir has no device-specific extensions.
    IncompatibleExtVersion,
    /// No address with that dialable number.
    InvalidAddress,
    /// No address with that id.
    InvalidAddressId,
    /// Address mode other than LINEADDRESSMODE_DIALABLEADDR.
    InvalidAddressMode,
    /// Unknown or closed call handle.
    InvalidCallHandle,
    /// Unknown or closed line handle.
    InvalidLineHandle,
    /// A device class tapir does not serve.
    InvalidDeviceClass,
    /// A media mode other than interactive voice.
    InvalidMediaMode,
    /// A parameter out of range.
    InvalidParam,
    /// A NULL pointer where one is required.
    InvalidPointer,
    /// A transfer mode other than LINETRANSFERMODE_TRANSFER.
    InvalidTransferMode,
    /// The configuration could not be read or checked.
    NoDevice,
    /// The provider is installed already (one instance per machine).
    NoMultipleInstance,
    /// tapir does not offer this function.
    OperationUnavailable,
    /// Something failed inside tapir.
    OperationFailed,
    /// dwTotalSize is smaller than the fixed part of the structure.
    StructureTooSmall,
    /// providerInit has not run, or providerShutdown has.
    Uninitialized,
}

impl TspiError {
    /// The LINEERR code as a TSPI function returns it (a negative LONG).
    pub fn code(&self) -> i32 {
        let code = match self {
            TspiError::Driver(kind) => tapi::lineerr(*kind),
            TspiError::BadDeviceId => lineerr::BADDEVICEID,
            TspiError::IncompatibleApiVersion => lineerr::INCOMPATIBLEAPIVERSION,
            TspiError::IncompatibleExtVersion => lineerr::INCOMPATIBLEEXTVERSION,
            TspiError::InvalidAddress => lineerr::INVALADDRESS,
            TspiError::InvalidAddressId => lineerr::INVALADDRESSID,
            TspiError::InvalidAddressMode => lineerr::INVALADDRESSMODE,
            TspiError::InvalidCallHandle => lineerr::INVALCALLHANDLE,
            TspiError::InvalidLineHandle => lineerr::INVALLINEHANDLE,
            TspiError::InvalidDeviceClass => lineerr::INVALDEVICECLASS,
            TspiError::InvalidMediaMode => lineerr::INVALMEDIAMODE,
            TspiError::InvalidParam => lineerr::INVALPARAM,
            TspiError::InvalidPointer => lineerr::INVALPOINTER,
            TspiError::InvalidTransferMode => lineerr::INVALTRANSFERMODE,
            TspiError::NoDevice => lineerr::NODEVICE,
            TspiError::NoMultipleInstance => lineerr::NOMULTIPLEINSTANCE,
            TspiError::OperationUnavailable => lineerr::OPERATIONUNAVAIL,
            TspiError::OperationFailed => lineerr::OPERATIONFAILED,
            TspiError::StructureTooSmall => lineerr::STRUCTURETOOSMALL,
            TspiError::Uninitialized => lineerr::UNINITIALIZED,
        };
        // LINEERR values have the top bit set; as a LONG they are negative by design.
        code as i32
    }
}

impl From<DriverError> for TspiError {
    fn from(error: DriverError) -> Self {
        TspiError::Driver(error.kind)
    }
}

impl std::fmt::Display for TspiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TspiError::Driver(kind) => write!(f, "refused by the front end: {kind:?}"),
            other => write!(f, "refused: {other:?}"),
        }
    }
}

impl std::error::Error for TspiError {}

/// What TSPI functions return: 0 (or a request id) on success, a negative LINEERR otherwise.
pub fn to_long(result: Result<i32, TspiError>) -> i32 {
    result.unwrap_or_else(|e| e.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_a_negative_lineerr() {
        let all = [
            TspiError::Driver(ErrorKind::InvalidCallState),
            TspiError::BadDeviceId,
            TspiError::IncompatibleApiVersion,
            TspiError::StructureTooSmall,
            TspiError::OperationUnavailable,
            TspiError::InvalidPointer,
        ];
        for e in all {
            assert!(e.code() < 0, "{e:?}");
        }
        assert_eq!(
            TspiError::Driver(ErrorKind::InvalidCallState).code(),
            0x8000_001Cu32 as i32
        );
        assert_eq!(TspiError::StructureTooSmall.code(), 0x8000_004Du32 as i32);
        assert_eq!(TspiError::NoMultipleInstance.code(), 0x8000_0056u32 as i32);
    }
}
