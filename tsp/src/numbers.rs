//! The hook through which the front end applies number rules, once, for every driver.
//!
//! The front end calls [`NumberRules`] on every number an application dials and on every party
//! number a driver reports; drivers never format numbers themselves. The host plugs in the
//! configured rules; [`Verbatim`] leaves numbers as they are.

use tapir_core::{CallDirection, CallInfo, LineId, LineKey, Party};

/// Which line a number belongs to, by every name it has.
#[derive(Debug, Clone, Copy)]
pub struct LineRef<'a> {
    /// Device id.
    pub id: LineId,
    /// Driver instance.
    pub driver: &'a str,
    /// The driver's key for the line.
    pub key: &'a LineKey,
}

/// Number rewriting per line.
pub trait NumberRules: Send + Sync {
    /// A number the application dials on `line`, before it goes to the driver.
    fn dial(&self, line: LineRef<'_>, number: &str) -> String;
    /// A number reported for an incoming call on `line`.
    fn incoming(&self, line: LineRef<'_>, number: &str) -> String;
    /// A number reported for an outgoing call on `line`.
    fn outgoing(&self, line: LineRef<'_>, number: &str) -> String;
}

/// Leaves every number as it is.
#[derive(Debug, Default, Clone, Copy)]
pub struct Verbatim;

impl NumberRules for Verbatim {
    fn dial(&self, _line: LineRef<'_>, number: &str) -> String {
        number.to_owned()
    }
    fn incoming(&self, _line: LineRef<'_>, number: &str) -> String {
        number.to_owned()
    }
    fn outgoing(&self, _line: LineRef<'_>, number: &str) -> String {
        number.to_owned()
    }
}

/// Rewrites the parties of a reported call: the raw number is kept, the shown number is the raw
/// number through the incoming or outgoing rules of the line.
pub(crate) fn format_info(rules: &dyn NumberRules, line: LineRef<'_>, info: &mut CallInfo) {
    let direction = info.direction;
    for party in [&mut info.calling, &mut info.called, &mut info.connected] {
        format_party(rules, line, direction, party);
    }
}

fn format_party(
    rules: &dyn NumberRules,
    line: LineRef<'_>,
    direction: CallDirection,
    party: &mut Party,
) {
    let Some(raw) = party.raw_number.clone().or_else(|| party.number.clone()) else {
        return;
    };
    let shown = match direction {
        CallDirection::Incoming => rules.incoming(line, &raw),
        CallDirection::Outgoing => rules.outgoing(line, &raw),
        CallDirection::Unknown => raw.clone(),
    };
    party.raw_number = Some(raw);
    party.number = Some(shown);
}
