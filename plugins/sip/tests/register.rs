//! Incoming-call indication on a `sip-refer` line with `register = true`, against SIPp as the
//! PBX/registrar: the line REGISTERs (in service), an INVITE becomes an Offering call with the
//! caller's number and name, CANCEL with `Reason: SIP;cause=200` ends it as picked up
//! elsewhere, a redirect answers 302, and shutdown removes the binding.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use tapir_core::*;

const T: Duration = Duration::from_secs(20);

fn start(scenario: &str) -> Option<(Sipp, std::sync::Arc<Recorder>, Box<dyn PhoneDriver>)> {
    let bin = sipp()?;
    let peer = start_sipp(&bin, scenario, false, 1, &[]);
    let rec = Recorder::new();
    let d = build(
        "sip-refer",
        &json!({
            "bind": "127.0.0.1:0",
            "lines": [ { "key": "5", "domain": format!("127.0.0.1:{}", peer.port()), "user": "acd", "register": true } ]
        }),
        rec.clone(),
    );
    let created = rec.lines();
    assert!(
        !created[0].in_service,
        "a registering line starts out of service"
    );
    assert!(created[0].caps.operations.contains(Operation::Redirect));
    let end = std::time::Instant::now() + T;
    loop {
        let ev = rec.events.lock().map(|e| e.clone()).unwrap_or_default();
        let in_service = ev
            .iter()
            .any(|e| matches!(e, DriverEvent::LineInService { .. }));
        let offered = ev.iter().any(|e| matches!(e, DriverEvent::NewCall { .. }));
        if in_service && offered {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "no registration/offer: {ev:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((peer, rec, d))
}

fn offered(rec: &Recorder) -> (CallId, CallInfo) {
    rec.events
        .lock()
        .map(|e| {
            e.iter()
                .find_map(|e| match e {
                    DriverEvent::NewCall {
                        call, info, state, ..
                    } => {
                        assert_eq!(*state, CallState::Offering);
                        Some((*call, info.clone()))
                    }
                    _ => None,
                })
                .expect("offered")
        })
        .expect("events")
}

#[test]
fn sip_refer_line_indicates_incoming_call_and_cancel() {
    let Some((mut peer, rec, d)) = start("pbx_register_cancel") else {
        return;
    };
    let (call, info) = offered(&rec);
    assert_eq!(info.calling.number.as_deref(), Some("+4930555"));
    assert_eq!(info.calling.name.as_deref(), Some("Jane Caller"));
    rec.wait_state(call, CallState::Disconnected(DisconnectMode::Pickup), T);
    rec.wait_state(call, CallState::Idle, T);
    d.shutdown();
    peer.assert_passed(T);
}

#[test]
fn sip_refer_line_redirects_incoming_call() {
    let Some((mut peer, rec, d)) = start("pbx_register_redirect") else {
        return;
    };
    let (call, _) = offered(&rec);
    let id = rid();
    d.submit(RequestEnvelope {
        id,
        line: LineKey::new("5"),
        request: Request::Redirect {
            call,
            destination: "300".into(),
        },
    })
    .expect("redirect accepted");
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done));
    rec.wait_state(call, CallState::Idle, T);
    d.shutdown();
    peer.assert_passed(T);
}
