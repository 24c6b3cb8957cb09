//! The virtual phone's configuration: the driver's section of the host configuration, received
//! as JSON. The doc comment of each field is the user documentation.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;

/// The configuration of one virtual-phone driver instance. Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VirtualPhoneConfig {
    /// The simulated lines. Default: one line with key, number and name "100" /
    /// "Virtual 100".
    pub lines: Vec<LineConfig>,
    /// How long dialling takes, in milliseconds: a call stays in Dialing this long before it
    /// rings (or turns out busy or unreachable). Default 200.
    pub dial_ms: u64,
    /// How long the far end rings, in milliseconds, before it answers (Ringback, then
    /// Connected). Default 500.
    pub ring_ms: u64,
    /// The far end hangs up (Disconnected(Normal)) this many milliseconds after a call becomes
    /// Connected; `null` means never. Applies to outgoing and answered incoming calls.
    /// Default `null`.
    pub hangup_after_ms: Option<u64>,
    /// Destinations that are busy: a call to one goes Dialing, then Busy(Station).
    /// Default `["486"]`.
    pub busy_numbers: Vec<String>,
    /// Destinations that cannot be reached: a call to one goes Dialing, then
    /// Disconnected(Unreachable). Default `["404"]`.
    pub unreachable_numbers: Vec<String>,
    /// Scripted incoming calls. Default: none.
    pub incoming: Vec<IncomingConfig>,
    /// How long an incoming call is offered before the caller gives up
    /// (Disconnected(NoAnswer)), in milliseconds. Default 20000.
    pub ring_timeout_ms: u64,
    /// **Test hook**: `submit` panics when asked to dial exactly this number (as the
    /// destination of MakeCall or the digits of Dial). Lets a host test that a panicking driver
    /// fails only that request. Default `null` (never panics).
    pub panic_on_number: Option<String>,
}

impl Default for VirtualPhoneConfig {
    fn default() -> Self {
        Self {
            lines: vec![LineConfig::new("100")],
            dial_ms: 200,
            ring_ms: 500,
            hangup_after_ms: None,
            busy_numbers: vec!["486".to_owned()],
            unreachable_numbers: vec!["404".to_owned()],
            incoming: Vec::new(),
            ring_timeout_ms: 20_000,
            panic_on_number: None,
        }
    }
}

/// One simulated line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// The line's key (unique in this driver). Required.
    pub key: String,
    /// The name applications show. Default: "Virtual `key`".
    #[serde(default)]
    pub name: Option<String>,
    /// The line's own number (the calling party of its outgoing calls). Default: the key.
    #[serde(default)]
    pub number: Option<String>,
}

impl LineConfig {
    /// A line with this key and the default name and number.
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            name: None,
            number: None,
        }
    }

    /// The name, or "Virtual `key`".
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("Virtual {}", self.key))
    }

    /// The number, or the key.
    pub fn own_number(&self) -> &str {
        self.number.as_deref().unwrap_or(&self.key)
    }
}

/// A scripted incoming call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomingConfig {
    /// The key of the line the call arrives on. Required.
    pub line: String,
    /// When the call arrives, in milliseconds after the driver starts. Default 1000.
    #[serde(default = "default_after_ms")]
    pub after_ms: u64,
    /// The caller's number. Required.
    pub from: String,
    /// The caller's display name. Default: none.
    #[serde(default)]
    pub name: Option<String>,
    /// If set, the call comes again this many milliseconds after each arrival. Default
    /// `null` (once).
    #[serde(default)]
    pub repeat_ms: Option<u64>,
}

fn default_after_ms() -> u64 {
    1000
}

/// The configuration shown to users as an example (and tested to validate).
pub const EXAMPLE_CONFIG: &str = r#"{
  "lines": [ { "key": "100", "name": "Virtual 100", "number": "100" } ],
  "dial_ms": 200,
  "ring_ms": 500,
  "hangup_after_ms": 1000,
  "busy_numbers": ["486"],
  "unreachable_numbers": ["404"],
  "incoming": [ { "line": "100", "after_ms": 1000, "from": "0301234567", "name": "Alice", "repeat_ms": null } ],
  "ring_timeout_ms": 20000,
  "panic_on_number": null
}"#;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl VirtualPhoneConfig {
    /// Parses and checks a configuration section.
    ///
    /// # Errors
    /// Returns a sentence naming the problem: bad JSON, an unknown key, no lines, a duplicate
    /// or empty line key, an incoming call on an unknown line, or `repeat_ms` of 0.
    pub fn parse(json: &str) -> Result<Self, ConfigError> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        let config: Self = serde_json::from_str(json)
            .map_err(|e| ConfigError(format!("virtual-phone configuration: {e}")))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.lines.is_empty() {
            return Err(ConfigError("`lines` must name at least one line".into()));
        }
        let mut keys = HashSet::new();
        for line in &self.lines {
            if line.key.trim().is_empty() {
                return Err(ConfigError("a line key must not be empty".into()));
            }
            if !keys.insert(line.key.as_str()) {
                return Err(ConfigError(format!(
                    "line key {:?} is used twice",
                    line.key
                )));
            }
        }
        for call in &self.incoming {
            if !keys.contains(call.line.as_str()) {
                return Err(ConfigError(format!(
                    "incoming call from {:?} names unknown line {:?}",
                    call.from, call.line
                )));
            }
            if call.repeat_ms == Some(0) {
                return Err(ConfigError(format!(
                    "incoming call from {:?}: `repeat_ms` must be more than 0",
                    call.from
                )));
            }
        }
        Ok(())
    }

    /// `dial_ms` as a duration.
    pub fn dial(&self) -> Duration {
        Duration::from_millis(self.dial_ms)
    }

    /// `ring_ms` as a duration.
    pub fn ring(&self) -> Duration {
        Duration::from_millis(self.ring_ms)
    }

    /// `ring_timeout_ms` as a duration.
    pub fn ring_timeout(&self) -> Duration {
        Duration::from_millis(self.ring_timeout_ms)
    }

    /// `hangup_after_ms` as a duration.
    pub fn hangup_after(&self) -> Option<Duration> {
        self.hangup_after_ms.map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_and_differs_from_the_defaults_only_where_it_says() {
        let example = VirtualPhoneConfig::parse(EXAMPLE_CONFIG).unwrap();
        assert_eq!(example.hangup_after_ms, Some(1000));
        assert_eq!(example.incoming.len(), 1);
        assert_eq!(example.incoming[0].name.as_deref(), Some("Alice"));
        assert_eq!(example.lines[0].display_name(), "Virtual 100");
    }

    #[test]
    fn an_empty_section_gives_the_defaults() {
        assert_eq!(
            VirtualPhoneConfig::parse("{}").unwrap(),
            VirtualPhoneConfig::default()
        );
        assert_eq!(
            VirtualPhoneConfig::parse("").unwrap(),
            VirtualPhoneConfig::default()
        );
        let line = &VirtualPhoneConfig::default().lines[0];
        assert_eq!(
            (
                line.key.as_str(),
                line.own_number(),
                line.display_name().as_str()
            ),
            ("100", "100", "Virtual 100")
        );
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let error = VirtualPhoneConfig::parse(r#"{ "dial_msec": 5 }"#).unwrap_err();
        assert!(error.0.contains("dial_msec"), "{error}");
        let error =
            VirtualPhoneConfig::parse(r#"{ "lines": [ { "key": "1", "colour": "red" } ] }"#)
                .unwrap_err();
        assert!(error.0.contains("colour"), "{error}");
    }

    #[test]
    fn inconsistent_configs_are_refused() {
        for (json, expected) in [
            (r#"{ "lines": [] }"#, "at least one line"),
            (
                r#"{ "lines": [ {"key": "1"}, {"key": "1"} ] }"#,
                "used twice",
            ),
            (r#"{ "lines": [ {"key": " "} ] }"#, "must not be empty"),
            (
                r#"{ "incoming": [ { "line": "200", "from": "1" } ] }"#,
                "unknown line",
            ),
            (
                r#"{ "incoming": [ { "line": "100", "from": "1", "repeat_ms": 0 } ] }"#,
                "more than 0",
            ),
        ] {
            let error = VirtualPhoneConfig::parse(json).unwrap_err();
            assert!(error.0.contains(expected), "{json}: {error}");
        }
    }
}
