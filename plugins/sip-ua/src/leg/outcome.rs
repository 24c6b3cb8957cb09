//! What a call leg's SIP outcomes mean in tapir's words, sans-I/O: status codes to disconnect
//! modes and call states, the typed failures of an INVITE ([`LegFailure`]) and of a REFER
//! ([`ReferFailure`]) with their modes and sentences, incoming offers' ends, and dialled numbers
//! to `sip:` URIs. The drivers put these into their own reports (which leg, whose words).

use crate::header::Uri;
use crate::offer::OfferEnd;
use tapir_core::{CallState, DisconnectMode};
use thiserror::Error;

/// The disconnect mode for a final SIP status (of an INVITE, or read from a sipfrag).
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

/// The call state a provisional status means (of an INVITE, or read from a sipfrag): 180 and
/// 183 ring back, other 1xx proceed; `None` for anything else.
pub fn progress_state(code: u16) -> Option<CallState> {
    match code {
        180 | 183 => Some(CallState::Ringback),
        100..=199 => Some(CallState::Proceeding),
        _ => None,
    }
}

/// The disconnect mode of an incoming offer that ended without being taken.
pub fn offer_end_mode(end: &OfferEnd) -> DisconnectMode {
    match end {
        OfferEnd::Cancelled {
            answered_elsewhere: true,
            ..
        } => DisconnectMode::Pickup,
        OfferEnd::Cancelled {
            cause: Some(code), ..
        } if *code >= 300 => disconnect_mode(*code),
        OfferEnd::Cancelled { .. } => DisconnectMode::Cancelled,
        OfferEnd::RingTimeout => DisconnectMode::NoAnswer,
        OfferEnd::Redirected => DisconnectMode::Forwarded,
        OfferEnd::Rejected => DisconnectMode::Reject,
    }
}

/// Why an outgoing INVITE did not lead to a call.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LegFailure {
    /// A final status ≥ 300.
    #[error("answered {code} {reason}")]
    Status {
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// No answer within the ring timeout (we sent CANCEL).
    #[error("did not answer within {secs} s")]
    NoAnswer {
        /// Seconds it rang.
        secs: u64,
    },
    /// The server challenged us and refused our credentials (or the challenge cannot be
    /// answered).
    #[error("the SIP server refused our credentials for user {user:?} ({detail})")]
    Auth {
        /// Authentication user.
        user: String,
        /// What happened.
        detail: String,
    },
    /// Nothing answered (Timer B), the transport failed (ICMP unreachable, TCP refused), there
    /// is no address for the first hop, or the answer could not form a dialog.
    #[error("cannot be reached: {0}")]
    Unreachable(String),
    /// The SIP endpoint stopped (the driver shuts down).
    #[error("cannot be called: the SIP endpoint stopped")]
    Stopped,
}

impl LegFailure {
    /// The disconnect mode.
    pub fn mode(&self) -> DisconnectMode {
        match self {
            LegFailure::Status { code, .. } => disconnect_mode(*code),
            LegFailure::NoAnswer { .. } => DisconnectMode::NoAnswer,
            LegFailure::Auth { .. } => DisconnectMode::Blocked,
            LegFailure::Unreachable(_) => DisconnectMode::Unreachable,
            LegFailure::Stopped => DisconnectMode::Unavailable,
        }
    }

    /// The sentence about `who` (`the callee (sip:200@pbx) answered 486 Busy Here`); credential
    /// problems are about the account, not `who`.
    pub fn about(&self, who: &str) -> String {
        match self {
            LegFailure::Auth { .. } => self.to_string(),
            other => format!("{who} {other}"),
        }
    }
}

/// Why a REFER did not bring the referred call about.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReferFailure {
    /// The REFER was answered with a final error.
    #[error("refused the transfer request (REFER): {code} {reason}")]
    Refused {
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// A challenge to the REFER could not be answered, or was repeated.
    #[error("the SIP server refused our credentials for user {user:?} ({detail})")]
    Auth {
        /// Authentication user.
        user: String,
        /// What happened.
        detail: String,
    },
    /// The referred call failed: final sipfrag ≥ 300.
    #[error("failed: {code} {reason}")]
    Failed {
        /// Status from the sipfrag.
        code: u16,
        /// Reason from the sipfrag.
        reason: String,
    },
    /// No final NOTIFY within the notify timeout.
    #[error("no final result within {secs} s (last status {last})")]
    Timeout {
        /// Seconds waited.
        secs: u64,
        /// The last sipfrag status seen (`180 Ringing`), or `none`.
        last: String,
    },
    /// The subscription ended without a final sipfrag.
    #[error("ended the transfer report without a final status")]
    NoFinalStatus,
    /// No answer to the REFER, or the transport failed.
    #[error("cannot be reached: {0}")]
    Unreachable(String),
}

impl ReferFailure {
    /// The disconnect mode, when the failure ends the call.
    pub fn mode(&self) -> DisconnectMode {
        match self {
            ReferFailure::Refused { .. } => DisconnectMode::Incompatible,
            ReferFailure::Auth { .. } => DisconnectMode::Blocked,
            ReferFailure::Failed { code, .. } => disconnect_mode(*code),
            ReferFailure::Timeout { last, .. } if last.starts_with("18") => {
                DisconnectMode::NoAnswer
            }
            ReferFailure::Timeout { .. } | ReferFailure::Unreachable(_) => {
                DisconnectMode::Unreachable
            }
            ReferFailure::NoFinalStatus => DisconnectMode::Unknown,
        }
    }
}

/// Why a destination was refused at once.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct BadDestination(pub String);

/// Builds the URI for a dialled destination: a full `sip:` URI is taken as it is; otherwise
/// the number keeps `+`, `*` and `#` (the latter escaped as `%23`, RFC 3261 §25.1) and is put in
/// `domain` (or the host after `@`). Spaces, dashes, dots, slashes and parentheses are dropped.
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
    fn status_codes_map_to_disconnect_modes() {
        assert_eq!(disconnect_mode(486), DisconnectMode::Busy);
        assert_eq!(disconnect_mode(600), DisconnectMode::Busy);
        assert_eq!(disconnect_mode(603), DisconnectMode::Reject);
        assert_eq!(disconnect_mode(404), DisconnectMode::BadAddress);
        assert_eq!(disconnect_mode(484), DisconnectMode::BadAddress);
        assert_eq!(disconnect_mode(480), DisconnectMode::NoAnswer);
        assert_eq!(disconnect_mode(408), DisconnectMode::NoAnswer);
        assert_eq!(disconnect_mode(487), DisconnectMode::Cancelled);
        assert_eq!(disconnect_mode(503), DisconnectMode::Congestion);
        assert_eq!(disconnect_mode(504), DisconnectMode::TempFailure);
        assert_eq!(disconnect_mode(500), DisconnectMode::Unavailable);
        assert_eq!(progress_state(180), Some(CallState::Ringback));
        assert_eq!(progress_state(183), Some(CallState::Ringback));
        assert_eq!(progress_state(100), Some(CallState::Proceeding));
        assert_eq!(progress_state(200), None);
    }

    #[test]
    fn failures_have_modes_and_sentences() {
        let busy = LegFailure::Status {
            code: 486,
            reason: "Busy Here".into(),
        };
        assert_eq!(busy.mode(), DisconnectMode::Busy);
        assert_eq!(
            busy.about("the callee"),
            "the callee answered 486 Busy Here"
        );
        let auth = LegFailure::Auth {
            user: "alice".into(),
            detail: "403 Forbidden".into(),
        };
        assert_eq!(auth.mode(), DisconnectMode::Blocked);
        assert!(auth.about("x").starts_with("the SIP server refused"));
        assert_eq!(
            LegFailure::NoAnswer { secs: 3 }.about("bob"),
            "bob did not answer within 3 s"
        );
        let t = ReferFailure::Timeout {
            secs: 25,
            last: "180 Ringing".into(),
        };
        assert_eq!(t.mode(), DisconnectMode::NoAnswer);
        let none = ReferFailure::Timeout {
            secs: 25,
            last: "none".into(),
        };
        assert_eq!(none.mode(), DisconnectMode::Unreachable);
        let f = ReferFailure::Failed {
            code: 603,
            reason: "Decline".into(),
        };
        assert_eq!(
            (f.mode(), f.to_string()),
            (DisconnectMode::Reject, "failed: 603 Decline".into())
        );
        assert_eq!(ReferFailure::NoFinalStatus.mode(), DisconnectMode::Unknown);
    }

    #[test]
    fn offers_end_with_their_modes() {
        let cancelled = |answered_elsewhere, cause| OfferEnd::Cancelled {
            answered_elsewhere,
            cause,
        };
        assert_eq!(
            offer_end_mode(&cancelled(true, Some(200))),
            DisconnectMode::Pickup
        );
        assert_eq!(
            offer_end_mode(&cancelled(false, Some(486))),
            DisconnectMode::Busy
        );
        assert_eq!(
            offer_end_mode(&cancelled(false, None)),
            DisconnectMode::Cancelled
        );
        assert_eq!(
            offer_end_mode(&OfferEnd::Redirected),
            DisconnectMode::Forwarded
        );
        assert_eq!(
            offer_end_mode(&OfferEnd::RingTimeout),
            DisconnectMode::NoAnswer
        );
        assert_eq!(offer_end_mode(&OfferEnd::Rejected), DisconnectMode::Reject);
    }

    #[test]
    fn numbers_become_uris() {
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
            destination_uri("queue@10.0.0.1:5070", "pbx"),
            Ok("sip:queue@10.0.0.1:5070".into())
        );
        assert!(destination_uri("", "pbx").is_err());
        assert!(destination_uri("12<3", "pbx").is_err());
        assert!(destination_uri("sip:", "pbx").is_err());
        assert!(destination_uri("sips:bob@pbx", "pbx").is_err());
    }
}
