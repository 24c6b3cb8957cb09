//! What a click-to-dial reports when it fails: the leg's failure (shared mapping to disconnect
//! modes in [`tapir_sip_ua::leg::outcome`]) told about whom it concerns — the first leg (the
//! user's phone in `sip-refer`, the callee in `sip-reverse`) or the call the REFER asked for.

use tapir_core::{DisconnectMode, DriverError, ErrorKind};
use tapir_sip_ua::leg::{LegFailure, ReferFailure};
use thiserror::Error;

pub use tapir_sip_ua::leg::outcome::{destination_uri, progress_state, BadDestination};

/// Why a click-to-dial did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClickToDialError {
    /// The first INVITE failed.
    #[error("{}", failure.about(who))]
    FirstLeg {
        /// Who was called (`the user's phone (sip:201@pbx)`).
        who: String,
        /// What happened.
        failure: LegFailure,
    },
    /// The REFER did not bring the referred call about.
    #[error("{}", referred_sentence(who, target, failure))]
    Referred {
        /// Who was REFERred (the answered first leg).
        who: String,
        /// The target of the REFER.
        target: String,
        /// What happened.
        failure: ReferFailure,
    },
    /// The other side hung up our leg before the transfer was accepted.
    #[error("{who} hung up before the transfer started")]
    HungUp {
        /// Who.
        who: String,
    },
    /// The application dropped the call.
    #[error("the call was dropped before its outcome was known")]
    Dropped,
    /// The driver shut down.
    #[error("the SIP driver shut down")]
    Shutdown,
}

fn referred_sentence(who: &str, target: &str, failure: &ReferFailure) -> String {
    match failure {
        ReferFailure::Refused { .. } | ReferFailure::Unreachable(_) => format!("{who} {failure}"),
        ReferFailure::Auth { .. } => failure.to_string(),
        ReferFailure::Failed { .. } => format!("the call to {target} {failure}"),
        ReferFailure::Timeout { secs, last } => {
            format!("no final result for the call to {target} within {secs} s (last status {last})")
        }
        ReferFailure::NoFinalStatus => {
            format!("the phone ended the transfer report for {target} without a final status")
        }
    }
}

impl ClickToDialError {
    /// The TAPI disconnect mode for this failure.
    pub fn mode(&self) -> DisconnectMode {
        match self {
            ClickToDialError::FirstLeg { failure, .. } => failure.mode(),
            ClickToDialError::Referred { failure, .. } => failure.mode(),
            ClickToDialError::HungUp { .. } => DisconnectMode::Normal,
            ClickToDialError::Dropped | ClickToDialError::Shutdown => DisconnectMode::Cancelled,
        }
    }

    /// As a driver error completing `MakeCall`.
    pub fn to_driver_error(&self) -> DriverError {
        let kind = match self {
            ClickToDialError::Shutdown => ErrorKind::Uninitialized,
            _ => ErrorKind::OperationFailed,
        };
        DriverError::new(kind, self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_happened() {
        let e = ClickToDialError::Referred {
            who: "the user's phone".into(),
            target: "sip:1@x".into(),
            failure: ReferFailure::Failed {
                code: 486,
                reason: "Busy Here".into(),
            },
        };
        assert_eq!(e.mode(), DisconnectMode::Busy);
        assert_eq!(e.to_string(), "the call to sip:1@x failed: 486 Busy Here");
        let t = ClickToDialError::Referred {
            who: "w".into(),
            target: "t".into(),
            failure: ReferFailure::Timeout {
                secs: 25,
                last: "180 Ringing".into(),
            },
        };
        assert_eq!(t.mode(), DisconnectMode::NoAnswer);
        assert_eq!(
            t.to_string(),
            "no final result for the call to t within 25 s (last status 180 Ringing)"
        );
        let refused = ClickToDialError::Referred {
            who: "the callee".into(),
            target: "t".into(),
            failure: ReferFailure::Refused {
                code: 405,
                reason: "Method Not Allowed".into(),
            },
        };
        assert_eq!(refused.mode(), DisconnectMode::Incompatible);
        assert_eq!(
            refused.to_string(),
            "the callee refused the transfer request (REFER): 405 Method Not Allowed"
        );
        let first = ClickToDialError::FirstLeg {
            who: "the user's phone (sip:201@pbx)".into(),
            failure: LegFailure::Status {
                code: 603,
                reason: "Decline".into(),
            },
        };
        assert_eq!(
            first.to_string(),
            "the user's phone (sip:201@pbx) answered 603 Decline"
        );
        assert_eq!(first.mode(), DisconnectMode::Reject);
        assert_eq!(e.to_driver_error().kind, ErrorKind::OperationFailed);
        assert_eq!(
            ClickToDialError::Shutdown.to_driver_error().kind,
            ErrorKind::Uninitialized
        );
    }
}
