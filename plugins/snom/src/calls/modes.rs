//! Why a call ended: ECMA-269 event causes (as uaCSTA `FailedEvent` and
//! `ConnectionClearedEvent` carry them) mapped onto TAPI's disconnect modes.

use tapir_core::DisconnectMode;

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
}
