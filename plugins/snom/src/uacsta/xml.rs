//! uaCSTA messages, sans I/O: the requests that open and watch a session
//! (`RequestSystemStatus`, `MonitorStart`) and the CSTA events a monitored phone sends,
//! turned into the terms of the call tracker (the Action URL event it stands for, with the
//! call's `$csta_id`, the far end, the cause and the event that gave it).

use crate::action::{user_part, Event, Vars};
use crate::csta::{text_of, NS};

/// `RequestSystemStatus`: the body of the INVITE that opens the session (snom answers
/// `systemStatus normal`), and the keep-alive inside it.
pub fn request_system_status() -> String {
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<RequestSystemStatus xmlns=\"{NS}\"/>")
}

/// `MonitorStart` for the phone's device (`sip:user@host`).
pub fn monitor_start(device: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<MonitorStart xmlns=\"{NS}\"><monitorObject><deviceObject>{}</deviceObject></monitorObject></MonitorStart>",
        device.replace('&', "&amp;").replace('<', "&lt;")
    )
}

/// The root element's name (without a namespace prefix).
pub fn root(xml: &str) -> Option<&str> {
    let mut rest = xml;
    loop {
        let start = rest.find('<')?;
        rest = &rest[start + 1..];
        if rest.starts_with('?') || rest.starts_with('!') {
            continue;
        }
        let end = rest.find(|c: char| c.is_whitespace() || c == '>' || c == '/')?;
        let name = &rest[..end];
        return Some(name.rsplit(':').next().unwrap_or(name));
    }
}

/// What a CSTA event means for the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happened {
    /// The same as this Action URL event, with these variables.
    Like(Event, Vars),
    /// The far end failed (`FailedEvent`): busy, unreachable, … (`cause` in the variables).
    Failed(Vars),
}

/// Reads one CSTA event. `ours` tells whether a device identifier (`sip:100@pbx`, `100`) is
/// one of the phone's own identities. `None` for events the driver does not use and for
/// text that is not an event.
pub fn event(xml: &str, ours: &dyn Fn(&str) -> bool) -> Option<Vec<Happened>> {
    let name = root(xml)?;
    let call = text_of(xml, "callID").map(str::to_owned);
    let device = |tag: &str| -> Option<String> {
        let start = xml.find(&format!("<{tag}>"))?;
        text_of(&xml[start..], "deviceIdentifier").map(str::to_owned)
    };
    let mut vars: Vec<(String, String)> = Vec::new();
    if let Some(c) = &call {
        vars.push(("csta".into(), c.clone()));
    }
    if let Some(cause) = text_of(xml, "cause") {
        vars.push(("cause".into(), cause.to_owned()));
        // The event names the cause in the call's info (`FailedEvent: busy`).
        vars.push(("csta_event".into(), name.to_owned()));
    }
    let with_remote = |mut vars: Vec<(String, String)>, remote: Option<String>| {
        if let Some(r) = remote.filter(|r| !r.is_empty()) {
            vars.push(("remote".into(), r));
        }
        Vars::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    };
    let other = |a: Option<String>, b: Option<String>| match (a, b) {
        (Some(a), b) if ours(&a) => b,
        (a, _) => a,
    };
    let like = |event, vars| Some(vec![Happened::Like(event, vars)]);
    match name {
        "DeliveredEvent" => {
            let alerting = device("alertingDevice");
            let calling = device("callingDevice");
            let called = device("calledDevice");
            if alerting.as_deref().is_some_and(ours) {
                like(Event::Incoming, with_remote(vars, calling))
            } else {
                like(Event::Outgoing, with_remote(vars, alerting.or(called)))
            }
        }
        "OriginatedEvent" => like(Event::Outgoing, with_remote(vars, device("calledDevice"))),
        "EstablishedEvent" => {
            let remote = other(device("answeringDevice"), device("callingDevice"));
            like(Event::Connected, with_remote(vars, remote))
        }
        "HeldEvent" => like(Event::Hold, with_remote(vars, None)),
        "RetrievedEvent" => like(Event::Unhold, with_remote(vars, None)),
        "ConnectionClearedEvent" => like(Event::Disconnected, with_remote(vars, None)),
        "FailedEvent" => Some(vec![Happened::Failed(with_remote(vars, None))]),
        "DivertedEvent" => like(Event::BlindTransfer, with_remote(vars, None)),
        "TransferredEvent" => {
            // Both old calls leave the phone; each is named by its own call id.
            let mut out = Vec::new();
            for tag in ["primaryOldCall", "secondaryOldCall"] {
                let Some(start) = xml.find(&format!("<{tag}>")) else {
                    continue;
                };
                if let Some(id) = text_of(&xml[start..], "callID") {
                    out.push(Happened::Like(
                        Event::BlindTransfer,
                        Vars::from_pairs([("csta", id)]),
                    ));
                }
            }
            Some(out)
        }
        "DoNotDisturbEvent" => {
            let on = text_of(xml, "doNotDisturbOn") == Some("true");
            like(
                if on { Event::DndOn } else { Event::DndOff },
                Vars::default(),
            )
        }
        "ForwardingEvent" => {
            let on = text_of(xml, "forwardStatus") == Some("true");
            let mut v = Vec::new();
            if let Some(to) = text_of(xml, "forwardTo") {
                v.push(("fwd", to));
            }
            like(
                if on {
                    Event::RedirectionOn
                } else {
                    Event::RedirectionOff
                },
                Vars::from_pairs(v),
            )
        }
        _ => None,
    }
}

/// Whether `device` (`sip:100@pbx`, `100@pbx`, `100`, `tel:100`) is one of `identities`
/// (`sip:user@host`).
pub fn is_ours(device: &str, identities: &[String]) -> bool {
    let user = user_part(device);
    !user.is_empty() && identities.iter().any(|i| user_part(i) == user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(d: &str) -> bool {
        is_ours(d, &["sip:100@pbx".to_owned()])
    }

    fn only(xml: &str) -> (Event, Vars) {
        match event(xml, &ours).as_deref() {
            Some([Happened::Like(e, v)]) => (*e, v.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn delivered_tells_incoming_from_outgoing() {
        let incoming = "<DeliveredEvent xmlns=\"x\"><monitorCrossRefID>1</monitorCrossRefID><connection><callID>7</callID><deviceID>sip:100@pbx</deviceID></connection><alertingDevice><deviceIdentifier>sip:100@pbx</deviceIdentifier></alertingDevice><callingDevice><deviceIdentifier>sip:200@pbx</deviceIdentifier></callingDevice><calledDevice><deviceIdentifier>sip:100@pbx</deviceIdentifier></calledDevice><cause>newCall</cause></DeliveredEvent>";
        let (e, v) = only(incoming);
        assert_eq!(e, Event::Incoming);
        assert_eq!(v.csta(), Some("7"));
        assert_eq!(v.get("remote"), Some("sip:200@pbx"));
        let outgoing = incoming
            .replace(
                "<alertingDevice><deviceIdentifier>sip:100@pbx",
                "<alertingDevice><deviceIdentifier>sip:300@pbx",
            )
            .replace(
                "<callingDevice><deviceIdentifier>sip:200@pbx",
                "<callingDevice><deviceIdentifier>sip:100@pbx",
            );
        let (e, v) = only(&outgoing);
        assert_eq!(e, Event::Outgoing);
        assert_eq!(v.get("remote"), Some("sip:300@pbx"));
    }

    #[test]
    fn failures_clears_and_transfers() {
        let failed = "<?xml version=\"1.0\"?><FailedEvent xmlns=\"x\"><failedConnection><callID>3</callID></failedConnection><cause>busy</cause></FailedEvent>";
        match event(failed, &ours).as_deref() {
            Some([Happened::Failed(v)]) => {
                assert_eq!(v.get("cause"), Some("busy"));
                assert_eq!(v.get("csta_event"), Some("FailedEvent"));
                assert_eq!(v.csta(), Some("3"));
            }
            other => panic!("{other:?}"),
        }
        let (e, v) = only("<csta:ConnectionClearedEvent xmlns:csta=\"x\"><droppedConnection><callID>3</callID></droppedConnection><cause>normalClearing</cause></csta:ConnectionClearedEvent>");
        assert_eq!(e, Event::Disconnected);
        assert_eq!(v.get("cause"), Some("normalClearing"));
        let t = event("<TransferredEvent><primaryOldCall><callID>1</callID></primaryOldCall><secondaryOldCall><callID>2</callID></secondaryOldCall></TransferredEvent>", &ours).expect("event");
        assert_eq!(t.len(), 2);
        assert!(event("<MonitorStartResponse/>", &ours).is_none());
        assert!(event("not xml", &ours).is_none());
    }

    #[test]
    fn requests_have_the_namespace() {
        assert!(request_system_status().contains("<RequestSystemStatus xmlns="));
        assert!(monitor_start("sip:100@pbx").contains("<deviceObject>sip:100@pbx</deviceObject>"));
        assert_eq!(
            root("<?xml version=\"1.0\"?>\n<a:HoldCall xmlns:a=\"x\"/>"),
            Some("HoldCall")
        );
    }
}
