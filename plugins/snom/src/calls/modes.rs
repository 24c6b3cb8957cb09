//! Why a call ended: ECMA-269 event causes (as uaCSTA `FailedEvent` and
//! `ConnectionClearedEvent` carry them) mapped onto TAPI's disconnect modes, and the words the
//! application gets in the call's info (`CallInfo::cause`): the CSTA event and its cause when
//! the phone said why, else a short sentence saying what the phone reported (Action URLs carry
//! no reason).

use tapir_core::DisconnectMode;

/// Why a call ended: the disconnect mode and the words for the call's info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The mode of the `Disconnected` state.
    pub mode: DisconnectMode,
    /// What the application reads in `CallInfo::cause`.
    pub words: String,
}

impl Cause {
    /// A cause in the driver's own words.
    pub fn new(mode: DisconnectMode, words: impl Into<String>) -> Cause {
        Cause {
            mode,
            words: words.into(),
        }
    }

    /// A CSTA event's cause (`busy`, `callNotAnswered`, ...): its mode, and the event's own
    /// words, `FailedEvent: busy`.
    pub fn csta(event: Option<&str>, cause: &str) -> Cause {
        let cause = cause.trim();
        Cause {
            mode: cause_mode(cause),
            words: match event {
                Some(e) => format!("{e}: {cause}"),
                None => cause.to_owned(),
            },
        }
    }
}

/// The words where the phone gave no reason. Action URLs report that a call ended, never why.
pub mod said {
    /// An outgoing call ended before it was answered (Action URL `disconnected`).
    pub const NOT_ANSWERED_OUT: &str =
        "the call ended before it was answered; the phone's Action URLs do not say why";
    /// An incoming call nobody answered (`disconnected` while ringing, or `missed`).
    pub const MISSED: &str = "nobody answered the call on the phone (missed)";
    /// An answered call ended (Action URL `disconnected`).
    pub const HUNG_UP: &str = "the phone reported the call ended (Action URL `disconnected`)";
    /// The phone restarted (Action URL `setup`): its calls are gone.
    pub const RESTARTED: &str = "the phone restarted (Action URL `setup`)";
    /// The phone reports no call left (`$nr_ongoing_calls` is 0).
    pub const NONE_LEFT: &str = "the phone reports no call left";
    /// The CSTA snapshot of the phone's calls no longer lists it.
    pub const NOT_IN_SNAPSHOT: &str = "the phone's CSTA snapshot no longer lists the call";
    /// The phone gave the call's CSTA id to a new call (it restarted unnoticed).
    pub const ID_REUSED: &str = "the phone gave the call's CSTA id to a new call (it restarted)";
    /// A FailedEvent that names no cause.
    pub const FAILED: &str = "FailedEvent without a cause";
}

/// The disconnect mode for an ECMA-269 `EventCause` value (`busy`, `callNotAnswered`,
/// `destNotObtainable`, ...). Unknown causes map to `Unknown`.
pub fn cause_mode(cause: &str) -> DisconnectMode {
    use DisconnectMode as M;
    match cause.trim() {
        "normalClearing" | "normal" => M::Normal,
        "busy" | "trunksBusy" => M::Busy,
        "callNotAnswered" | "noAnswer" => M::NoAnswer,
        "callCancelled" => M::Cancelled,
        // Declined by the far end (SIP 603 / 403 reported by the phone).
        "callRejected" | "rejected" | "decline" => M::Reject,
        "destNotObtainable" | "networkNotObtainable" | "resourcesNotAvailable" => M::Unreachable,
        "invalidNumberFormat" | "invalidAccountCode" => M::BadAddress,
        "networkCongestion" | "reorderTone" => M::Congestion,
        "doNotDisturb" => M::DoNotDisturb,
        "blocked" | "lockout" => M::Blocked,
        "incompatibleDestination" => M::Incompatible,
        "callPickup" => M::Pickup,
        "redirected"
        | "callForward"
        | "callForwardImmediate"
        | "callForwardBusy"
        | "callForwardNoAnswer" => M::Forwarded,
        "numberChanged" => M::NumberChanged,
        "outOfOrder" | "maintenance" => M::OutOfOrder,
        _ => M::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_map_to_modes() {
        assert_eq!(cause_mode("busy"), DisconnectMode::Busy);
        assert_eq!(cause_mode("callNotAnswered"), DisconnectMode::NoAnswer);
        assert_eq!(cause_mode("destNotObtainable"), DisconnectMode::Unreachable);
        assert_eq!(cause_mode("callRejected"), DisconnectMode::Reject);
        assert_eq!(cause_mode("normalClearing"), DisconnectMode::Normal);
        assert_eq!(cause_mode("somethingNew"), DisconnectMode::Unknown);
    }

    #[test]
    fn csta_causes_keep_the_events_words() {
        let c = Cause::csta(Some("FailedEvent"), " busy ");
        assert_eq!(c.mode, DisconnectMode::Busy);
        assert_eq!(c.words, "FailedEvent: busy");
        let c = Cause::csta(None, "destNotObtainable");
        assert_eq!(c.mode, DisconnectMode::Unreachable);
        assert_eq!(c.words, "destNotObtainable");
    }
}
