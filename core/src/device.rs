//! Devices: the phones behind a driver's lines, as the phone table shows them to
//! administrators (connection, configuration, model, identity, addresses).

use serde::{Deserialize, Serialize};

/// How the host reaches the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// Reachable and registered with the host.
    Connected,
    /// Reachable, but it still has to register (or be configured) before it serves calls.
    NeedsRegistration,
    /// Not contacted so far.
    #[default]
    NotContacted,
    /// A connection is being set up.
    Connecting,
    /// No connection could be established.
    Unreachable,
}

/// Whether the device is configured the way the driver needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Configuration {
    /// Configured correctly.
    Correct,
    /// Not determined yet.
    #[default]
    Unknown,
    /// The callbacks (Action URLs) are missing or wrong on the device.
    CallbacksMissing,
    /// Other settings the driver needs are wrong.
    SettingsWrong,
    /// Some other problem; see the detail.
    Problem,
}

/// One device as the phone table shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The driver's key for the device (a MAC address, an account).
    pub key: String,
    /// The identified model ("snom D785").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// The identity registered now (SIP URI or user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The number of that identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Connection state.
    #[serde(default)]
    pub connection: Connection,
    /// Configuration state.
    #[serde(default)]
    pub configuration: Configuration,
    /// The line keys this device serves.
    #[serde(default)]
    pub lines: Vec<crate::LineKey>,
    /// A sentence with details (the tooltip of the table), never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
