//! Typed errors. Every [`ErrorKind`] maps to exactly one TAPI LINEERR code at the TSP edge
//! (`tapir-tsp`'s `tapi` module); nothing else in tapir knows those numbers.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong, as a caller would branch on it.
///
/// The variants mirror the LINEERR codes a call-control provider returns; the comment on each
/// names its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The line does not support the operation (LINEERR_OPERATIONUNAVAIL).
    OperationUnavailable,
    /// The operation was tried and failed (LINEERR_OPERATIONFAILED).
    OperationFailed,
    /// The call is not in a state that allows the operation (LINEERR_INVALCALLSTATE).
    InvalidCallState,
    /// The call does not exist (LINEERR_INVALCALLHANDLE).
    InvalidCallHandle,
    /// The consultation call does not exist (LINEERR_INVALCONSULTCALLHANDLE).
    InvalidConsultCallHandle,
    /// The line device id does not exist (LINEERR_BADDEVICEID).
    BadDeviceId,
    /// The line is not open, or the handle is stale (LINEERR_INVALLINEHANDLE).
    InvalidLineHandle,
    /// The destination is not a valid address (LINEERR_INVALADDRESS).
    InvalidAddress,
    /// The address id does not exist on the line (LINEERR_INVALADDRESSID).
    InvalidAddressId,
    /// A parameter is invalid (LINEERR_INVALPARAM).
    InvalidParameter,
    /// The line has no room for another call or the device is busy (LINEERR_RESOURCEUNAVAIL).
    ResourceUnavailable,
    /// The device is not reachable or not registered (LINEERR_DISCONNECTED).
    Disconnected,
    /// The provider is not initialised or already shut down (LINEERR_UNINITIALIZED).
    Uninitialized,
    /// A buffer the caller passed is too small (LINEERR_STRUCTURETOOSMALL).
    StructureTooSmall,
    /// The provider has no memory or queue space (LINEERR_NOMEM).
    NoMemory,
    /// The version asked for is not supported (LINEERR_INCOMPATIBLEAPIVERSION).
    IncompatibleVersion,
}

impl ErrorKind {
    /// Every kind, for exhaustive tests of the mapping.
    pub const ALL: [ErrorKind; 16] = [
        ErrorKind::OperationUnavailable,
        ErrorKind::OperationFailed,
        ErrorKind::InvalidCallState,
        ErrorKind::InvalidCallHandle,
        ErrorKind::InvalidConsultCallHandle,
        ErrorKind::BadDeviceId,
        ErrorKind::InvalidLineHandle,
        ErrorKind::InvalidAddress,
        ErrorKind::InvalidAddressId,
        ErrorKind::InvalidParameter,
        ErrorKind::ResourceUnavailable,
        ErrorKind::Disconnected,
        ErrorKind::Uninitialized,
        ErrorKind::StructureTooSmall,
        ErrorKind::NoMemory,
        ErrorKind::IncompatibleVersion,
    ];

    /// A short lower-case name (`"invalid_call_state"`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::OperationUnavailable => "operation_unavailable",
            ErrorKind::OperationFailed => "operation_failed",
            ErrorKind::InvalidCallState => "invalid_call_state",
            ErrorKind::InvalidCallHandle => "invalid_call_handle",
            ErrorKind::InvalidConsultCallHandle => "invalid_consult_call_handle",
            ErrorKind::BadDeviceId => "bad_device_id",
            ErrorKind::InvalidLineHandle => "invalid_line_handle",
            ErrorKind::InvalidAddress => "invalid_address",
            ErrorKind::InvalidAddressId => "invalid_address_id",
            ErrorKind::InvalidParameter => "invalid_parameter",
            ErrorKind::ResourceUnavailable => "resource_unavailable",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::Uninitialized => "uninitialized",
            ErrorKind::StructureTooSmall => "structure_too_small",
            ErrorKind::NoMemory => "no_memory",
            ErrorKind::IncompatibleVersion => "incompatible_version",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error from a driver or the front end: a kind to branch on and a sentence for people.
///
/// The detail must never contain a password or other secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct DriverError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Why, in a sentence.
    pub detail: String,
}

impl DriverError {
    /// Builds an error.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// The line does not support the operation.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::OperationUnavailable, detail)
    }

    /// The operation failed.
    pub fn failed(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::OperationFailed, detail)
    }

    /// The call is in the wrong state.
    pub fn invalid_state(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidCallState, detail)
    }
}
