//! CSTA call control on the simulated phone (ECMA-323 XML POSTed to `/csta`): `AnswerCall`,
//! `ClearConnection`, `HoldCall`, `RetrieveCall`, `AlternateCall`, `SingleStepTransferCall`,
//! `TransferCall` and `DeflectCall`, each acting on the call its `callID` names (the phone's
//! `$csta_id`) and firing the same Action URLs a key press would. Answers are
//! `{Request}Response`, or `CSTAErrorCode` for an unknown call or device or a call in the
//! wrong state.

use crate::phone::{Inner, SimCallState, SimPhone};
use std::sync::Arc;

const NS: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed5";

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
    if texts(xml, "deviceID").iter().any(|d| *d != me) {
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
            phone.fire(st, "action_attended_transfer", Some(&h));
            st.calls.retain(|c| c.csta != h.csta && c.csta != a.csta);
            phone.fire(st, "action_disconnected_url", Some(&h));
            phone.fire(st, "action_disconnected_url", Some(&a));
        }
        ("DeflectCall", [i]) if state(st, 0) == Some(SimCallState::Ringing) => {
            let to = texts(xml, "newDestination").first().copied().unwrap_or("");
            st.redirected_to.push(to.to_owned());
            let c = st.calls.remove(*i);
            phone.fire(st, "action_disconnected_url", Some(&c));
        }
        _ => return wrong(),
    }
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<{name}Response xmlns=\"{NS}\"/>")
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
