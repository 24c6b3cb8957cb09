//! The dialer's own words for a failed transfer ([`TransferError`], completing
//! `BlindTransfer`). Status codes, call states and destinations are the shared leg's
//! ([`tapir_sip_ua::leg::outcome`]).

use tapir_core::{DriverError, ErrorKind};
use tapir_sip_ua::leg::ReferFailure;
use thiserror::Error;

pub use tapir_sip_ua::leg::outcome::{
    destination_uri, disconnect_mode, offer_end_mode, progress_state, BadDestination,
};

/// Why a transfer did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransferError {
    /// The target refused the REFER.
    #[error("the called party refused the transfer (REFER): {code} {reason}")]
    Refused {
        /// Status.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The REFER was challenged and our credentials were refused.
    #[error("the SIP server refused our credentials for the transfer ({0})")]
    Auth(String),
    /// The call to the agent failed (final sipfrag ≥ 300).
    #[error("the call to the agent failed: {code} {reason}")]
    AgentFailed {
        /// Status from the sipfrag.
        code: u16,
        /// Reason from the sipfrag.
        reason: String,
    },
    /// No final NOTIFY in time.
    #[error("no final transfer result within {secs} s (last: {last})")]
    Timeout {
        /// Seconds waited.
        secs: u64,
        /// Last sipfrag status seen.
        last: String,
    },
    /// The subscription ended without a final sipfrag.
    #[error("the called party ended the transfer report without a final status")]
    NoFinalStatus,
    /// No answer to the REFER, or the transport failed.
    #[error("the called party cannot be reached: {0}")]
    Unreachable(String),
    /// The called party hung up during the transfer.
    #[error("the called party hung up during the transfer")]
    HungUp,
    /// The application dropped the call during the transfer.
    #[error("the call was dropped during the transfer")]
    Dropped,
}

impl From<ReferFailure> for TransferError {
    fn from(f: ReferFailure) -> TransferError {
        match f {
            ReferFailure::Refused { code, reason } => TransferError::Refused { code, reason },
            ReferFailure::Auth { detail, .. } => TransferError::Auth(detail),
            ReferFailure::Failed { code, reason } => TransferError::AgentFailed { code, reason },
            ReferFailure::Timeout { secs, last } => TransferError::Timeout { secs, last },
            ReferFailure::NoFinalStatus => TransferError::NoFinalStatus,
            ReferFailure::Unreachable(d) => TransferError::Unreachable(d),
        }
    }
}

impl TransferError {
    /// As the error completing `BlindTransfer`.
    pub fn to_driver_error(&self) -> DriverError {
        DriverError::new(ErrorKind::OperationFailed, self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_failures_in_the_dialers_words() {
        let busy: TransferError = ReferFailure::Failed {
            code: 486,
            reason: "Busy Here".into(),
        }
        .into();
        assert_eq!(
            busy.to_string(),
            "the call to the agent failed: 486 Busy Here"
        );
        let late: TransferError = ReferFailure::Timeout {
            secs: 25,
            last: "180 Ringing".into(),
        }
        .into();
        assert_eq!(
            late.to_string(),
            "no final transfer result within 25 s (last: 180 Ringing)"
        );
        assert_eq!(
            busy.to_driver_error().kind,
            tapir_core::ErrorKind::OperationFailed
        );
    }
}
