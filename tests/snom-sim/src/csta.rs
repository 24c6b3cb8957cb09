//! CSTA on the simulated phone (ECMA-323 XML, POSTed to `/csta` or sent in INFO over the SIP
//! side): `AnswerCall`, `ClearConnection`, `HoldCall`, `RetrieveCall`, `AlternateCall`,
//! `SingleStepTransferCall`, `TransferCall` and `DeflectCall`, each acting on the call its
//! `callID` names (the phone's `$csta_id`) and firing the same Action URLs a key press would;
//! `MakeCall`, `SnapshotDevice`, `RequestSystemStatus`. Answers are `{Request}Response`, or
//! `CSTAErrorCode` for an unknown call or device or a call in the wrong state. Also the CSTA
//! events a monitored phone sends (`DeliveredEvent`, `EstablishedEvent`, ...).

use crate::phone::{Inner, SimCall, SimCallState, SimPhone};
use std::sync::Arc;

pub(crate) const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed5";

/// The services this module answers.
pub const SERVICES: [&str; 8] = [
    "AnswerCall",
    "ClearConnection",
    "HoldCall",
    "RetrieveCall",
    "AlternateCall",
    "SingleStepTransferCall",
    "TransferCall",
    "DeflectCall",
];

/// The root element's name of an XML document.
pub fn root_name(xml: &str) -> Option<&str> {
    let mut rest = xml;
    loop {
        let start = rest.find('<')?;
        rest = &rest[start + 1..];
        if rest.starts_with('?') || rest.starts_with('!') {
            continue;
        }
        let end = rest.find(|c: char| c.is_whitespace() || c == '>' || c == '/')?;
        return Some(&rest[..end]);
    }
}

/// Every text of `<tag>…</tag>`, in order.
fn texts<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        let Some(end) = rest.find(&close) else { break };
        out.push(rest[..end].trim());
        rest = &rest[end..];
    }
    out
}

fn error(kind: &str, value: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<CSTAErrorCode xmlns=\"{NS}\"><{kind}>{value}</{kind}></CSTAErrorCode>")
}

/// Carries out one call-control request on `phone`; returns the XML answer.
pub(crate) fn serve(phone: &Arc<SimPhone>, st: &mut Inner, xml: &str) -> String {
    let Some(name) = root_name(xml).filter(|n| SERVICES.contains(n)) else {
        return error("operation", "requestIncompatibleWithObject");
    };
    let me = format!("{}@{}", phone.config.user, phone.config.host);
    if texts(xml, "deviceID")
        .iter()
        .any(|d| d.trim_start_matches("sip:") != me)
    {
        return error("operation", "invalidDeviceID");
    }
    let ids = texts(xml, "callID");
    let mut index = Vec::new();
    for id in &ids {
        match st.calls.iter().position(|c| c.csta.to_string() == *id) {
            Some(i) => index.push(i),
            None => return error("operation", "invalidConnectionID"),
        }
    }
    let state = |st: &Inner, k: usize| index.get(k).map(|i| st.calls[*i].state);
    let wrong = || error("state", "incorrectObjectState");
    st.csta_requests.push(format!("{name} {}", ids.join(" ")));
    match (name, index.as_slice()) {
        ("AnswerCall", [i]) if state(st, 0) == Some(SimCallState::Ringing) => {
            for j in 0..st.calls.len() {
                if st.calls[j].state == SimCallState::Connected {
                    st.calls[j].state = SimCallState::Held;
                    let c = st.calls[j].clone();
                    phone.fire(st, "action_hold", Some(&c));
                }
            }
            st.calls[*i].state = SimCallState::Connected;
            let c = st.calls[*i].clone();
            phone.fire(st, "action_connected_url", Some(&c));
        }
        ("ClearConnection", [i]) => {
            let c = st.calls.remove(*i);
            phone.fire(st, "action_disconnected_url", Some(&c));
            if st.calls.is_empty() {
                phone.fire(st, "action_onhook_url", None);
            }
        }
        ("HoldCall", [i]) if state(st, 0) == Some(SimCallState::Connected) => {
            st.calls[*i].state = SimCallState::Held;
            let c = st.calls[*i].clone();
            phone.fire(st, "action_hold", Some(&c));
        }
        ("RetrieveCall", [i]) if state(st, 0) == Some(SimCallState::Held) => {
            for j in 0..st.calls.len() {
                if st.calls[j].state == SimCallState::Connected {
                    st.calls[j].state = SimCallState::Held;
                    let c = st.calls[j].clone();
                    phone.fire(st, "action_hold", Some(&c));
                }
            }
            st.calls[*i].state = SimCallState::Connected;
            let c = st.calls[*i].clone();
            phone.fire(st, "action_unhold", Some(&c));
        }
        ("AlternateCall", [held, active])
            if state(st, 0) == Some(SimCallState::Held)
                && state(st, 1) == Some(SimCallState::Connected) =>
        {
            st.calls[*active].state = SimCallState::Held;
            let c = st.calls[*active].clone();
            phone.fire(st, "action_hold", Some(&c));
            st.calls[*held].state = SimCallState::Connected;
            let c = st.calls[*held].clone();
            phone.fire(st, "action_unhold", Some(&c));
        }
        ("SingleStepTransferCall", [i]) if state(st, 0) == Some(SimCallState::Connected) => {
            let to = texts(xml, "transferredTo").first().copied().unwrap_or("");
            st.transferred_to.push(to.to_owned());
            let c = st.calls.remove(*i);
            phone.fire(st, "action_blind_transfer", Some(&c));
            phone.fire(st, "action_disconnected_url", Some(&c));
        }
        ("TransferCall", [held, active])
            if state(st, 0) == Some(SimCallState::Held) && held != active =>
        {
            let (h, a) = (st.calls[*held].clone(), st.calls[*active].clone());
            phone.fire_csta(transferred_event(&h, &a));
            phone.fire_url(st, "action_attended_transfer", Some(&h));
            st.calls.retain(|c| c.csta != h.csta && c.csta != a.csta);
            phone.fire_url(st, "action_disconnected_url", Some(&h));
            phone.fire_url(st, "action_disconnected_url", Some(&a));
        }
        ("DeflectCall", [i]) if state(st, 0) == Some(SimCallState::Ringing) => {
            let to = texts(xml, "newDestination").first().copied().unwrap_or("");
            st.redirected_to.push(to.to_owned());
            let c = st.calls.remove(*i);
            phone.fire_csta(diverted_event(&c));
            phone.fire_url(st, "action_disconnected_url", Some(&c));
        }
        _ => return wrong(),
    }
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<{name}Response xmlns=\"{NS}\"/>")
}

/// Answers every CSTA request the phone takes (over HTTP and SIP) but `MonitorStart`, which
/// belongs to the SIP session.
pub(crate) fn serve_any(phone: &Arc<SimPhone>, st: &mut Inner, xml: &str) -> String {
    match root_name(xml) {
        Some("RequestSystemStatus") => format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<RequestSystemStatusResponse xmlns=\"{NS}\"><systemStatus>normal</systemStatus></RequestSystemStatusResponse>"),
        Some("SnapshotDevice") => snapshot(st),
        Some("MakeCall") => {
            let number = texts(xml, "calledDirectoryNumber")
                .first()
                .copied()
                .unwrap_or("")
                .to_owned();
            let calling = texts(xml, "callingDevice").first().copied().unwrap_or("").to_owned();
            if number.is_empty() {
                return error("operation", "invalidDestination");
            }
            st.csta_requests.push(format!("MakeCall {number}"));
            let identity = phone.identity_of(&calling);
            let id = phone.dial(st, &number, identity);
            format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<MakeCallResponse xmlns=\"{NS}\"><callingDevice><callID>{id}</callID><deviceID>{calling}</deviceID></callingDevice></MakeCallResponse>")
        }
        _ => serve(phone, st, xml),
    }
}

/// The `SnapshotDeviceResponse` for the phone's calls now.
pub(crate) fn snapshot(st: &Inner) -> String {
    let mut xml = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<SnapshotDeviceResponse xmlns=\"{NS}\"><crossRefIDorSnapshotData><snapshotData>");
    for c in &st.calls {
        let state = match c.state {
            SimCallState::Ringing => "alerting",
            SimCallState::Held => "hold",
            _ => "connected",
        };
        xml.push_str(&format!("<snapshotDeviceResponseInfo><connectionIdentifier><callID>{}</callID></connectionIdentifier><localCallState><compoundCallState><localConnectionState>{state}</localConnectionState></compoundCallState></localCallState></snapshotDeviceResponseInfo>", c.csta));
    }
    xml.push_str("</snapshotData></crossRefIDorSnapshotData></SnapshotDeviceResponse>");
    xml
}

fn device(tag: &str, id: &str) -> String {
    format!("<{tag}><deviceIdentifier>{id}</deviceIdentifier></{tag}>")
}

fn event(name: &str, inner: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<{name} xmlns=\"{NS}\"><monitorCrossRefID>1</monitorCrossRefID>{inner}</{name}>")
}

/// The CSTA event a monitored phone sends along with the Action URL `setting` for `call`.
pub(crate) fn event_for(phone: &SimPhone, setting: &str, call: &SimCall) -> Option<String> {
    let me = format!(
        "sip:{}@{}",
        phone.identity_user(call.identity),
        phone.config.host
    );
    let other = format!("sip:{}@{}", call.remote, phone.config.host);
    let conn = |tag: &str| {
        format!(
            "<{tag}><callID>{}</callID><deviceID>{me}</deviceID></{tag}>",
            call.csta
        )
    };
    Some(match setting {
        "action_incoming_url" => event(
            "DeliveredEvent",
            &format!(
                "{}{}{}{}<cause>newCall</cause>",
                conn("connection"),
                device("alertingDevice", &me),
                device("callingDevice", &other),
                device("calledDevice", &me)
            ),
        ),
        "action_outgoing_url" => event(
            "DeliveredEvent",
            &format!(
                "{}{}{}{}<cause>newCall</cause>",
                conn("connection"),
                device("alertingDevice", &other),
                device("callingDevice", &me),
                device("calledDevice", &other)
            ),
        ),
        "action_connected_url" => event(
            "EstablishedEvent",
            &format!(
                "{}{}{}<cause>normal</cause>",
                conn("establishedConnection"),
                device("answeringDevice", &other),
                device("callingDevice", &me)
            ),
        ),
        "action_hold" => event(
            "HeldEvent",
            &format!("{}<cause>normal</cause>", conn("heldConnection")),
        ),
        "action_unhold" => event(
            "RetrievedEvent",
            &format!("{}<cause>normal</cause>", conn("retrievedConnection")),
        ),
        "action_disconnected_url" => return Some(cleared_event(call, "normalClearing")),
        "action_blind_transfer" => event(
            "TransferredEvent",
            &format!(
                "<primaryOldCall><callID>{}</callID></primaryOldCall><cause>singleStepTransfer</cause>",
                call.csta
            ),
        ),
        _ => return None,
    })
}

/// `ConnectionClearedEvent` with `cause`.
pub(crate) fn cleared_event(call: &SimCall, cause: &str) -> String {
    event(
        "ConnectionClearedEvent",
        &format!(
            "<droppedConnection><callID>{}</callID></droppedConnection><cause>{cause}</cause>",
            call.csta
        ),
    )
}

/// `FailedEvent` with `cause` (busy, callRejected, callNotAnswered, destNotObtainable).
pub(crate) fn failed_event(call: &SimCall, cause: &str) -> String {
    event(
        "FailedEvent",
        &format!(
            "<failedConnection><callID>{}</callID></failedConnection><cause>{cause}</cause>",
            call.csta
        ),
    )
}

/// `DivertedEvent`: a ringing call deflected away from the phone.
pub(crate) fn diverted_event(call: &SimCall) -> String {
    event(
        "DivertedEvent",
        &format!(
            "<connection><callID>{}</callID></connection><cause>redirected</cause>",
            call.csta
        ),
    )
}

/// `TransferredEvent`: the held call and the consultation call joined.
pub(crate) fn transferred_event(held: &SimCall, active: &SimCall) -> String {
    event(
        "TransferredEvent",
        &format!(
            "<primaryOldCall><callID>{}</callID></primaryOldCall><secondaryOldCall><callID>{}</callID></secondaryOldCall><cause>transfer</cause>",
            held.csta, active.csta
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_names_and_texts_are_found() {
        let xml = "<?xml version=\"1.0\"?>\n<HoldCall xmlns=\"x\"><callToBeHeld><callID>7</callID><deviceID>100@h</deviceID></callToBeHeld></HoldCall>";
        assert_eq!(root_name(xml), Some("HoldCall"));
        assert_eq!(texts(xml, "callID"), ["7"]);
        assert_eq!(texts(xml, "deviceID"), ["100@h"]);
        assert_eq!(root_name("no xml"), None);
    }
}
