//! Sans-I/O rules of the dialer: dialled numbers to URIs, SIP status codes to TAPI call states
//! and disconnect modes, and the typed failures of calls and transfers.

use tapir_core::{CallState, DisconnectMode, DriverError, ErrorKind};
use tapir_sip_ua::header::Uri;
use thiserror::Error;

/// The disconnect mode for a final SIP status.
pub fn disconnect_mode(code: u16) -> DisconnectMode {
    match code {
        486 | 600 => DisconnectMode::Busy,
        603 | 403 => DisconnectMode::Reject,
        404 | 484 | 485 | 416 | 604 => DisconnectMode::BadAddress,
        408 | 480 => DisconnectMode::NoAnswer,
        487 => DisconnectMode::Cancelled,
        410 => DisconnectMode::NumberChanged,
        488 | 606 | 415 => DisconnectMode::Incompatible,
        503 => DisconnectMode::Congestion,
        502 | 504 => DisconnectMode::TempFailure,
        _ => DisconnectMode::Unavailable,
    }
}

/// The call state of a provisional response.
pub fn progress_state(code: u16) -> Option<CallState> {
    match code {
        180 | 183 => Some(CallState::Ringback),
        101..=199 => Some(CallState::Proceeding),
        _ => None,
    }
}

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

impl TransferError {
    /// As the error completing `BlindTransfer`.
    pub fn to_driver_error(&self) -> DriverError {
        DriverError::new(ErrorKind::OperationFailed, self.to_string())
    }
}

/// Why a destination was refused at once.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct BadDestination(pub String);

/// Builds the URI for a dialled destination: a `sip:` URI as it is; otherwise the number keeps
/// `+` and `*`, `#` becomes `%23`, separators (space - . / ( )) are dropped, and it is put in
/// `domain` (or the host after `@`).
///
/// # Errors
/// [`BadDestination`] for empty numbers and characters that cannot be dialled.
pub fn destination_uri(dest: &str, domain: &str) -> Result<String, BadDestination> {
    let dest = dest.trim();
    let lower = dest.to_ascii_lowercase();
    if lower.starts_with("sip:") {
        let uri = Uri::parse(dest)
            .ok_or_else(|| BadDestination(format!("{dest:?} is not a valid SIP URI")))?;
        return Ok(uri.to_string());
    }
    if lower.starts_with("sips:") {
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
    fn modes_for_final_failures() {
        assert_eq!(disconnect_mode(486), DisconnectMode::Busy);
        assert_eq!(disconnect_mode(404), DisconnectMode::BadAddress);
        assert_eq!(disconnect_mode(603), DisconnectMode::Reject);
        assert_eq!(disconnect_mode(480), DisconnectMode::NoAnswer);
        assert_eq!(disconnect_mode(503), DisconnectMode::Congestion);
        assert_eq!(progress_state(180), Some(CallState::Ringback));
        assert_eq!(progress_state(183), Some(CallState::Ringback));
        assert_eq!(progress_state(100), None);
    }

    #[test]
    fn numbers_become_uris() {
        assert_eq!(
            destination_uri("+49 (30) 123-45", "pbx"),
            Ok("sip:+493012345@pbx".into())
        );
        assert_eq!(destination_uri("*5#", "pbx"), Ok("sip:*5%23@pbx".into()));
        assert_eq!(
            destination_uri("queue@10.0.0.1:5070", "pbx"),
            Ok("sip:queue@10.0.0.1:5070".into())
        );
        assert!(destination_uri("", "pbx").is_err());
        assert!(destination_uri("1<2", "pbx").is_err());
    }
}
