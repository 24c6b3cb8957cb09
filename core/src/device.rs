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

/// An operation of the phone table on one device (what an administrator does to a phone, as
/// opposed to a call operation). It crosses to the driver through
/// [`PhoneDriver::device_action`](crate::PhoneDriver::device_action).
///
/// On the wire (API body, plugin boundary) it is tagged by `action`:
/// `{"action": "set_login", "login": "admin", "password": "..."}`.
///
/// `Debug` never shows a password, and drivers must not log or echo one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeviceAction {
    /// Adds a device; the `device` argument is its address (`host`, `host:port`).
    Add {
        /// The MAC address, when known (then it becomes the device's key).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
        /// The web login to use.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        login: Option<String>,
        /// Its password (a secret: never logged).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
    },
    /// Contacts the device again and updates its status (reachability, identity,
    /// configuration).
    Refresh,
    /// Removes the device and its lines.
    Remove,
    /// Reads the device's configuration for support ("save configuration locally"); the
    /// outcome carries it as text.
    SaveConfiguration,
    /// Sets the login the driver uses on the device, then refreshes its status.
    SetLogin {
        /// The login.
        login: String,
        /// The password (a secret: never logged).
        password: String,
    },
    /// Checks the device's configuration and writes what is missing or wrong.
    WriteConfiguration,
}

impl DeviceAction {
    /// The action's name as on the wire (`set_login`), for logs and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Add { .. } => "add",
            Self::Refresh => "refresh",
            Self::Remove => "remove",
            Self::SaveConfiguration => "save_configuration",
            Self::SetLogin { .. } => "set_login",
            Self::WriteConfiguration => "write_configuration",
        }
    }
}

impl std::fmt::Debug for DeviceAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Add {
                mac,
                login,
                password,
            } => f
                .debug_struct("Add")
                .field("mac", mac)
                .field("login", login)
                .field("password", &password.as_ref().map(|_| "<redacted>"))
                .finish(),
            Self::SetLogin { login, .. } => f
                .debug_struct("SetLogin")
                .field("login", login)
                .field("password", &"<redacted>")
                .finish(),
            other => f.write_str(other.name()),
        }
    }
}

/// What a [`DeviceAction`] achieved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeviceActionOutcome {
    /// The work was queued for the device; its result shows in the phone table later.
    Queued,
    /// Done.
    Done,
    /// A device was added under this key.
    Added {
        /// The new device's key (for the phone table and later actions).
        key: String,
    },
    /// The device's configuration, as the device gave it (for support).
    Configuration {
        /// The text (a snom settings dump: XML or `name!: value` lines).
        text: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_from_their_wire_form() {
        let action: DeviceAction =
            serde_json::from_str(r#"{"action":"set_login","login":"admin","password":"pw"}"#)
                .expect("set_login parses");
        assert_eq!(
            action,
            DeviceAction::SetLogin {
                login: "admin".into(),
                password: "pw".into()
            }
        );
        let action: DeviceAction =
            serde_json::from_str(r#"{"action":"write_configuration"}"#).expect("parses");
        assert_eq!(action, DeviceAction::WriteConfiguration);
        assert!(serde_json::from_str::<DeviceAction>(r#"{"action":"explode"}"#).is_err());
    }

    #[test]
    fn debug_never_shows_a_password() {
        let set = DeviceAction::SetLogin {
            login: "admin".into(),
            password: "hunter2".into(),
        };
        let add = DeviceAction::Add {
            mac: None,
            login: Some("admin".into()),
            password: Some("hunter2".into()),
        };
        for action in [set, add] {
            let text = format!("{action:?}");
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("admin"), "{text}");
        }
        assert_eq!(format!("{:?}", DeviceAction::Refresh), "refresh");
    }

    #[test]
    fn outcomes_are_tagged() {
        let json = serde_json::to_string(&DeviceActionOutcome::Added {
            key: "000413A1B2C3".into(),
        })
        .expect("serializes");
        assert_eq!(json, r#"{"outcome":"added","key":"000413A1B2C3"}"#);
    }
}
