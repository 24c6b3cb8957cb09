//! Digest lock-out for real: at most two wrong logins until a success, across restarts of the
//! host (the state file) and new logins; a locked-out (403) or restarting (503) phone is shown
//! as such, its line out of service, nothing written into it, and it is asked again later.

mod common;

use common::*;
use std::time::Duration;
use tapir_core::{Configuration, Connection, DeviceAction};
use tapir_snom_sim::{Sim, SimConfig};
use tapir_tsp::TspEvent;

fn digest_phone(
    sim: &Sim,
    mac: &str,
    lockout: Option<Duration>,
) -> std::sync::Arc<tapir_snom_sim::SimPhone> {
    sim.phone(SimConfig {
        login: Some(("admin".into(), "right-pw".into())),
        digest: true,
        lockout,
        ..sim_config(mac)
    })
    .expect("phone")
}

fn config(addr: std::net::SocketAddr, mac: &str, password: &str, extra: &str) -> String {
    format!(
        r#"{{"phones": [{{"address": "{addr}", "mac": "{mac}", "login": "admin", "password": "{password}", "auth": "digest"}}], "snapshot_interval_secs": 0{extra}}}"#
    )
}

#[test]
fn wrong_digest_logins_are_remembered_across_restarts_and_new_logins() {
    const MAC: &str = "000413000101";
    let state = tempfile::tempdir().expect("temp dir");
    // The phone outlives the host: it lives on a simulator of its own.
    let phones = Sim::new(1).expect("sim");
    let phone = digest_phone(&phones, MAC, None);
    let addr = phone.addr();
    // Checked every second, and probed every second: the line must stay out of service.
    let every_second = r#", "status_interval_secs": 1, "liveness_interval_secs": 1"#;
    let h = Harness::start_full(
        &config(addr, MAC, "wrong-1", every_second),
        Sim::new(1).expect("sim"),
        Some(state.path().to_path_buf()),
    );
    // Its own login is refused; the phone table names that login.
    let d = h.wait_device(MAC, "login refused", |d| {
        d.connection == Connection::NeedsRegistration
            && d.detail
                .as_deref()
                .is_some_and(|t| t.contains("two wrong Digest logins"))
    });
    let detail = d.detail.unwrap_or_default();
    assert!(detail.contains("\"admin\""), "{detail}");
    assert!(!detail.contains("password list"), "{detail}");
    // A new (still wrong) login is not tried: the phone counts until a success.
    h.driver
        .device_action(
            MAC,
            DeviceAction::SetLogin {
                login: "admin".into(),
                password: "wrong-2".into(),
            },
        )
        .expect("set_login");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(phone.auth_state(), (2, false));
    assert!(
        !h.line_now(h.line(MAC)).in_service,
        "reachable, but not serving"
    );
    let file = state.path().join("office").join("digest-logins.json");
    let text = std::fs::read_to_string(&file).expect("the state file");
    assert!(
        text.contains(MAC) && text.contains("\"wrong\": 2"),
        "{text}"
    );
    assert!(
        !text.contains("wrong-"),
        "no password in the state file: {text}"
    );
    drop(h);

    // The host restarts, with yet another wrong password: still no third attempt.
    let h = Harness::start_full(
        &config(addr, MAC, "wrong-3", every_second),
        Sim::new(1).expect("sim"),
        Some(state.path().to_path_buf()),
    );
    h.wait_device(MAC, "login refused", |d| {
        d.connection == Connection::NeedsRegistration
    });
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(phone.auth_state(), (2, false), "never locked by tapir");

    // The operator's way: remove the phone (its record goes) and add it with the right login.
    h.driver
        .device_action(MAC, DeviceAction::Remove)
        .expect("removed");
    h.driver
        .device_action(
            &addr.to_string(),
            DeviceAction::Add {
                mac: Some(MAC.into()),
                login: Some("admin".into()),
                password: Some("right-pw".into()),
            },
        )
        .expect("added");
    h.configured(MAC);
    assert_eq!(phone.auth_state(), (0, false));
    let text = std::fs::read_to_string(&file).expect("the state file");
    assert!(!text.contains(MAC), "a success clears the record: {text}");
}

#[test]
fn a_locked_out_phone_is_shown_out_of_service_left_alone_and_asked_again_later() {
    const MAC: &str = "000413000102";
    let sim = Sim::new(2).expect("sim");
    let phone = digest_phone(&sim, MAC, Some(Duration::from_secs(2)));
    let mut h = Harness::start_with(
        &config(
            phone.addr(),
            MAC,
            "right-pw",
            r#", "status_interval_secs": 0, "lockout_retry_secs": 1"#,
        ),
        sim,
    );
    h.configured(MAC);
    let line = h.open(MAC);
    // Someone else locks the phone out; its Action URLs get wiped meanwhile.
    let before = phone.requests().len();
    phone.lock_out();
    phone.set_setting("action_incoming_url", "");
    h.driver
        .device_action(MAC, DeviceAction::Refresh)
        .expect("refresh");
    h.expect(
        "out of service",
        |e| matches!(e, TspEvent::LineService { line: l, in_service: false, .. } if *l == line),
    );
    let d = h.wait_device(MAC, "locked out", |d| {
        d.connection == Connection::NeedsRegistration && d.configuration == Configuration::Problem
    });
    assert!(
        d.detail
            .as_deref()
            .is_some_and(|t| t.contains("locked out")),
        "{d:?}"
    );
    let seen = phone.requests().len();
    // Back in service once the lock-out ends, configured again, and the phone never saw a
    // password or a write while it was locked.
    h.expect(
        "back in service",
        |e| matches!(e, TspEvent::LineService { line: l, in_service: true, .. } if *l == line),
    );
    h.configured(MAC);
    let during: Vec<String> = phone.requests()[before..seen].to_vec();
    assert!(
        !during.iter().any(|r| r.starts_with("/dummy.htm")),
        "nothing written blind: {during:?}"
    );
    assert!(phone
        .setting("action_incoming_url")
        .is_some_and(|u| !u.is_empty()));
    assert_eq!(phone.auth_state(), (0, false));
}

#[test]
fn a_restarting_phone_is_shown_restarting_and_comes_back() {
    const MAC: &str = "000413000103";
    let sim = Sim::new(2).expect("sim");
    let phone = sim.phone(sim_config(MAC)).expect("phone");
    let mut h = Harness::start_with(&one_phone(phone.addr(), MAC, ""), sim);
    h.configured(MAC);
    let line = h.open(MAC);
    phone.reboot(Duration::from_secs(2));
    h.driver
        .device_action(MAC, DeviceAction::Refresh)
        .expect("refresh");
    let d = h.wait_device(MAC, "restarting", |d| {
        d.connection == Connection::Connecting
    });
    assert!(
        d.detail.as_deref().is_some_and(|t| t.contains("503")),
        "{d:?}"
    );
    assert!(!h.line_now(line).in_service);
    // The phone reports its start: checked again, back in service.
    h.expect(
        "back in service",
        |e| matches!(e, TspEvent::LineService { line: l, in_service: true, .. } if *l == line),
    );
    h.wait_device(MAC, "connected", |d| {
        d.connection == Connection::Connected && d.configuration == Configuration::Correct
    });
}
