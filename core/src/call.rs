//! Calls: their state (mirroring TAPI's LINECALLSTATE with its detail modes) and their info.

use serde::{Deserialize, Serialize};

/// The state of a call, in the order of TAPI's LINECALLSTATE table.
///
/// Each variant that TAPI qualifies with a mode carries it. `Idle` is terminal: once a call is
/// Idle, no further state is reported for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", content = "mode", rename_all = "snake_case")]
pub enum CallState {
    /// No activity; the call is gone. Terminal.
    Idle,
    /// An incoming call is being presented (ringing).
    Offering,
    /// An offered call was accepted (the phone rings, ownership claimed) but is not yet answered.
    Accepted,
    /// The call waits for digits; dial tone is present.
    Dialtone(DialToneMode),
    /// Digits are being sent.
    Dialing,
    /// The far end is being alerted.
    Ringback,
    /// The far end is busy.
    Busy(BusyMode),
    /// A special information tone (number not in service, congestion) was received.
    SpecialInfo,
    /// The call is established.
    Connected,
    /// Dialling is complete and the call proceeds through the network.
    Proceeding,
    /// The call is on hold.
    OnHold,
    /// The call is a member of a conference.
    Conferenced,
    /// Held while a conference is being set up.
    OnHoldPendingConference,
    /// Held while a consultation call for a transfer is being set up.
    OnHoldPendingTransfer,
    /// The far end disconnected; the call will become Idle when dropped.
    Disconnected(DisconnectMode),
    /// The state is not known.
    Unknown,
}

impl CallState {
    /// True for `Idle`, the state no call ever leaves.
    pub fn is_idle(&self) -> bool {
        matches!(self, CallState::Idle)
    }

    /// True while the call holds a place on its line: every state but `Disconnected` and
    /// `Idle`. A line's `max_calls` counts these calls only, in the front end and in every
    /// driver (a Disconnected call holds nothing: the application only has to drop it).
    pub fn is_live(&self) -> bool {
        !matches!(self, CallState::Idle | CallState::Disconnected(_))
    }

    /// True while the call is up or parked on hold (states where hold/transfer make sense).
    pub fn is_established(&self) -> bool {
        matches!(
            self,
            CallState::Connected
                | CallState::OnHold
                | CallState::OnHoldPendingTransfer
                | CallState::OnHoldPendingConference
                | CallState::Conferenced
        )
    }

    /// True while an outgoing call is being set up and has not been answered yet.
    pub fn is_outgoing_setup(&self) -> bool {
        matches!(
            self,
            CallState::Dialtone(_)
                | CallState::Dialing
                | CallState::Proceeding
                | CallState::Ringback
        )
    }

    /// A short lower-case name, used in logs and JSON (`"ringback"`, `"on_hold"`).
    pub fn name(&self) -> &'static str {
        match self {
            CallState::Idle => "idle",
            CallState::Offering => "offering",
            CallState::Accepted => "accepted",
            CallState::Dialtone(_) => "dialtone",
            CallState::Dialing => "dialing",
            CallState::Ringback => "ringback",
            CallState::Busy(_) => "busy",
            CallState::SpecialInfo => "special_info",
            CallState::Connected => "connected",
            CallState::Proceeding => "proceeding",
            CallState::OnHold => "on_hold",
            CallState::Conferenced => "conferenced",
            CallState::OnHoldPendingConference => "on_hold_pending_conference",
            CallState::OnHoldPendingTransfer => "on_hold_pending_transfer",
            CallState::Disconnected(_) => "disconnected",
            CallState::Unknown => "unknown",
        }
    }
}

/// Which dial tone a call in `Dialtone` hears (LINEDIALTONEMODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DialToneMode {
    /// An ordinary dial tone.
    Normal,
    /// A special dial tone (for example, messages waiting or forwarding active).
    Special,
    /// Dial tone from the internal switch.
    Internal,
    /// Dial tone from the public network.
    External,
    /// The kind of dial tone is not known.
    Unknown,
    /// The kind of dial tone cannot be told.
    Unavailable,
}

/// Why the far end is busy (LINEBUSYMODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusyMode {
    /// The called station is busy.
    Station,
    /// A trunk or circuit is busy.
    Trunk,
    /// Busy, cause not known.
    Unknown,
    /// Busy, cause cannot be told.
    Unavailable,
}

/// Why a call was disconnected (LINEDISCONNECTMODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectMode {
    /// Normal hang-up by the far end.
    Normal,
    /// Reason not known.
    Unknown,
    /// The far end rejected the call.
    Reject,
    /// The call was picked up elsewhere.
    Pickup,
    /// The call was forwarded.
    Forwarded,
    /// The far end was busy.
    Busy,
    /// The far end did not answer.
    NoAnswer,
    /// The destination address is invalid.
    BadAddress,
    /// The destination could not be reached.
    Unreachable,
    /// The network is congested.
    Congestion,
    /// The far end is incompatible.
    Incompatible,
    /// Reason unavailable.
    Unavailable,
    /// No dial tone was detected.
    NoDialtone,
    /// The number has changed.
    NumberChanged,
    /// The far end is out of order.
    OutOfOrder,
    /// A temporary failure in the network.
    TempFailure,
    /// The requested quality of service is unavailable.
    QosUnavailable,
    /// The call was blocked.
    Blocked,
    /// The far end has do-not-disturb on.
    DoNotDisturb,
    /// The call was cancelled (for example answered elsewhere before it was answered here).
    Cancelled,
}

/// Which way a call goes, seen from the line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    /// Placed from this line.
    Outgoing,
    /// Received on this line.
    Incoming,
    /// Not known (for example a call already present when the host started).
    #[default]
    Unknown,
}

/// Why the call arrived the way it did (LINECALLREASON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallReason {
    /// Dialled directly.
    #[default]
    Direct,
    /// Forwarded because the original destination was busy.
    ForwardBusy,
    /// Forwarded because the original destination did not answer.
    ForwardNoAnswer,
    /// Forwarded unconditionally.
    ForwardUnconditional,
    /// Picked up from another station.
    Pickup,
    /// Redirected (deflected) to this line.
    Redirect,
    /// Transferred to this line.
    Transfer,
    /// Reason not known.
    Unknown,
}

/// One party of a call: a number (raw from the driver, and formatted by the number rules) and a
/// display name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// The number in the shape the application sees (after the number rules of the line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// The number exactly as the driver reported it, before any rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_number: Option<String>,
    /// The display name, when the phone or network gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Party {
    /// A party known by its number only. The number is both the raw and the shown number until
    /// the number rules rewrite it.
    pub fn number(number: impl Into<String>) -> Self {
        let number = number.into();
        Self {
            number: Some(number.clone()),
            raw_number: Some(number),
            name: None,
        }
    }

    /// Adds a display name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// True when nothing is known about the party.
    pub fn is_empty(&self) -> bool {
        self.number.is_none() && self.raw_number.is_none() && self.name.is_none()
    }
}

/// What is known about a call besides its state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallInfo {
    /// Which way the call goes.
    #[serde(default)]
    pub direction: CallDirection,
    /// The address on the line the call belongs to.
    #[serde(default)]
    pub address: crate::AddressId,
    /// The calling party (caller id).
    #[serde(default, skip_serializing_if = "Party::is_empty")]
    pub calling: Party,
    /// The called party.
    #[serde(default, skip_serializing_if = "Party::is_empty")]
    pub called: Party,
    /// The party the call is connected to now (may differ after transfers).
    #[serde(default, skip_serializing_if = "Party::is_empty")]
    pub connected: Party,
    /// Why the call arrived.
    #[serde(default)]
    pub reason: CallReason,
    /// The driver's own key for the call (a SIP Call-ID, a snom `csta_id`), for logs and support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_key: Option<String>,
    /// Why the call failed or ended, in the protocol's own words when there are any (a SIP
    /// status line such as `603 Decline`, a sipfrag's `486 Busy Here`), else a short sentence.
    /// Drivers set it with the state that ends the call (Busy, Disconnected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialize_with_their_mode() {
        let json = serde_json::to_string(&CallState::Disconnected(DisconnectMode::Busy))
            .expect("serializes");
        assert_eq!(json, r#"{"state":"disconnected","mode":"busy"}"#);
        let back: CallState = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, CallState::Disconnected(DisconnectMode::Busy));
        let idle = serde_json::to_string(&CallState::Idle).expect("serializes");
        assert_eq!(idle, r#"{"state":"idle"}"#);
    }

    #[test]
    fn only_idle_is_idle() {
        assert!(CallState::Idle.is_idle());
        assert!(!CallState::Disconnected(DisconnectMode::Normal).is_idle());
    }

    #[test]
    fn disconnected_and_idle_calls_are_not_live() {
        assert!(!CallState::Idle.is_live());
        assert!(!CallState::Disconnected(DisconnectMode::Busy).is_live());
        assert!(CallState::Busy(BusyMode::Station).is_live());
        assert!(CallState::Unknown.is_live());
        assert!(CallState::Offering.is_live());
        assert!(CallState::Connected.is_live());
    }

    #[test]
    fn the_cause_travels_with_the_info_and_is_optional() {
        let info = CallInfo {
            cause: Some("603 Decline".into()),
            ..CallInfo::default()
        };
        let json = serde_json::to_string(&info).expect("serializes");
        assert!(json.contains(r#""cause":"603 Decline""#), "{json}");
        let old: CallInfo = serde_json::from_str(r#"{"direction":"outgoing"}"#).expect("parses");
        assert_eq!(old.cause, None);
    }
}
