//! Sans-I/O pieces of click-to-dial: turning a dialled number into a URI, SIP status codes
//! into TAPI disconnect modes, and failures into typed errors with a clear sentence.

use tapir_core::{CallState, DisconnectMode, DriverError, ErrorKind};
use tapir_sip_ua::header::Uri;
use thiserror::Error;

/// The disconnect mode for a final SIP status (of our INVITE, or read from a sipfrag).
pub fn disconnect_mode(code: u16) -> DisconnectMode {
    match code {
        486 | 600 => DisconnectMode::Busy,
        603 | 403 => DisconnectMode::Reject,
        404 | 484 | 485 | 416 | 604 => DisconnectMode::BadAddress,
        408 | 480 => DisconnectMode::NoAnswer,
        487 => DisconnectMode::Cancelled,
        410 => DisconnectMode::NumberChanged,
        488 | 606 | 415 => DisconnectMode::Incompatible,
        502..=504 => DisconnectMode::TempFailure,
        _ => DisconnectMode::Unavailable,
    }
}

/// The call state a provisional sipfrag (or INVITE provisional) means.
pub fn progress_state(code: u16) -> CallState {
    match code {
        180 | 183 => CallState::Ringback,
        _ => CallState::Proceeding,
    }
}

/// Which leg a failure concerns, for the sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// The first INVITE (user's phone in sip-refer, the callee in sip-reverse).
    First,
    /// The call the REFER asked for (the callee in sip-refer, the user's phone in sip-reverse).
    Referred,
}

/// Why a click-to-dial did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClickToDialError {
    /// The first leg answered with a final error.
    #[error("{who} answered {code} {reason}")]
    FirstLegFailed {
        /// Who was called.
        who: String,
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The first leg did not answer in time (we sent CANCEL).
    #[error("{who} did not answer within {secs} s")]
    NoAnswer {
        /// Who was called.
        who: String,
        /// Seconds waited.
        secs: u64,
    },
    /// The server challenged us and refused our credentials.
    #[error("the SIP server refused our credentials for user {user:?} ({detail})")]
    AuthRejected {
        /// Authentication user.
        user: String,
        /// What happened.
        detail: String,
    },
    /// Nothing answered our request at all (Timer B/F) or the transport failed.
    #[error("{who} cannot be reached: {detail}")]
    Unreachable {
        /// Who.
        who: String,
        /// What happened.
        detail: String,
    },
    /// The phone refused the REFER.
    #[error("{who} refused the transfer request (REFER): {code} {reason}")]
    ReferRejected {
        /// Who.
        who: String,
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The referred call failed (final sipfrag ≥ 300).
    #[error("the call to {target} failed: {code} {reason}")]
    ReferredFailed {
        /// Target of the REFER.
        target: String,
        /// Status from the sipfrag.
        code: u16,
        /// Reason from the sipfrag.
        reason: String,
    },
    /// No final NOTIFY in time.
    #[error("no final result for the call to {target} within {secs} s (last status {last})")]
    NotifyTimeout {
        /// Target of the REFER.
        target: String,
        /// Seconds waited.
        secs: u64,
        /// Last sipfrag status seen, or "none".
        last: String,
    },
    /// The subscription ended without a final sipfrag.
    #[error("the phone ended the transfer report for {target} without a final status")]
    NoFinalStatus {
        /// Target of the REFER.
        target: String,
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

impl ClickToDialError {
    /// The TAPI disconnect mode for this failure.
    pub fn mode(&self) -> DisconnectMode {
        match self {
            ClickToDialError::FirstLegFailed { code, .. }
            | ClickToDialError::ReferredFailed { code, .. } => disconnect_mode(*code),
            ClickToDialError::NoAnswer { .. } => DisconnectMode::NoAnswer,
            ClickToDialError::AuthRejected { .. } => DisconnectMode::Blocked,
            ClickToDialError::Unreachable { .. } => DisconnectMode::Unreachable,
            ClickToDialError::ReferRejected { .. } => DisconnectMode::Incompatible,
            ClickToDialError::NotifyTimeout { last, .. } => {
                if last.starts_with("18") {
                    DisconnectMode::NoAnswer
                } else {
                    DisconnectMode::Unreachable
                }
            }
            ClickToDialError::NoFinalStatus { .. } => DisconnectMode::Unknown,
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

/// Why a destination was refused at once.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct BadDestination(pub String);

/// Builds the URI for a dialled destination: a full `sip:` URI is taken as it is; otherwise
/// the number keeps `+`, `*` and `#` (the latter escaped as `%23`, RFC 3261 §25.1) and is put in
/// the line's domain. Spaces, dashes, dots, slashes and parentheses are dropped.
///
/// # Errors
/// [`BadDestination`] for empty numbers and characters that cannot be dialled.
pub fn destination_uri(dest: &str, domain: &str) -> Result<String, BadDestination> {
    let dest = dest.trim();
    if dest.to_ascii_lowercase().starts_with("sip:") {
        let uri = Uri::parse(dest)
            .ok_or_else(|| BadDestination(format!("{dest:?} is not a valid SIP URI")))?;
        return Ok(uri.to_string());
    }
    if dest.to_ascii_lowercase().starts_with("sips:") {
        return Err(BadDestination(
            "sips: destinations are not supported".into(),
        ));
    }
    let (number, host) = match dest.split_once('@') {
        Some((n, h)) if !h.is_empty() && !h.contains(['<', '>', ' ', '"']) => (n, h),
        Some(_) => {
            return Err(BadDestination(format!(
                "{dest:?} is not a number or SIP address"
            )))
        }
        None => (dest, domain),
    };
    let mut user = String::with_capacity(number.len());
    for ch in number.chars() {
        match ch {
            '0'..='9' | '+' | '*' | 'a'..='z' | 'A'..='Z' | '_' => user.push(ch),
            '#' => user.push_str("%23"),
            ' ' | '-' | '.' | '/' | '(' | ')' => {}
            other => {
                return Err(BadDestination(format!(
                    "{other:?} cannot be dialled in {dest:?}"
                )))
            }
        }
    }
    if user.is_empty() {
        return Err(BadDestination("the destination is empty".into()));
    }
    Ok(format!("sip:{user}@{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_plus_star_hash() {
        assert_eq!(
            destination_uri("+49 (30) 123-45", "pbx"),
            Ok("sip:+493012345@pbx".into())
        );
        assert_eq!(destination_uri("*21#", "pbx"), Ok("sip:*21%23@pbx".into()));
        assert_eq!(
            destination_uri("sip:bob@10.0.0.1:5070;transport=tcp", "pbx"),
            Ok("sip:bob@10.0.0.1:5070;transport=tcp".into())
        );
        assert_eq!(
            destination_uri("bob@other.example", "pbx"),
            Ok("sip:bob@other.example".into())
        );
        assert!(destination_uri("", "pbx").is_err());
        assert!(destination_uri("12<3", "pbx").is_err());
        assert!(destination_uri("sip:", "pbx").is_err());
    }

    #[test]
    fn status_codes_map_to_disconnect_modes() {
        assert_eq!(disconnect_mode(486), DisconnectMode::Busy);
        assert_eq!(disconnect_mode(600), DisconnectMode::Busy);
        assert_eq!(disconnect_mode(603), DisconnectMode::Reject);
        assert_eq!(disconnect_mode(404), DisconnectMode::BadAddress);
        assert_eq!(disconnect_mode(484), DisconnectMode::BadAddress);
        assert_eq!(disconnect_mode(480), DisconnectMode::NoAnswer);
        assert_eq!(disconnect_mode(408), DisconnectMode::NoAnswer);
        assert_eq!(disconnect_mode(487), DisconnectMode::Cancelled);
        assert_eq!(disconnect_mode(500), DisconnectMode::Unavailable);
        assert_eq!(progress_state(180), CallState::Ringback);
        assert_eq!(progress_state(100), CallState::Proceeding);
    }

    #[test]
    fn errors_say_what_happened() {
        let e = ClickToDialError::ReferredFailed {
            target: "sip:1@x".into(),
            code: 486,
            reason: "Busy Here".into(),
        };
        assert_eq!(e.mode(), DisconnectMode::Busy);
        assert_eq!(e.to_string(), "the call to sip:1@x failed: 486 Busy Here");
        let t = ClickToDialError::NotifyTimeout {
            target: "t".into(),
            secs: 25,
            last: "180 Ringing".into(),
        };
        assert_eq!(t.mode(), DisconnectMode::NoAnswer);
        assert_eq!(e.to_driver_error().kind, ErrorKind::OperationFailed);
    }
}
