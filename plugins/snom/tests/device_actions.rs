//! The phone table's operations reached through `PhoneDriver::device_action` (as the host's API
//! and `tapir phone` call them), and the configuration check when a line opens
//! (`PhoneDriver::line_opened`), against the phone simulator.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tapir_core::{Configuration, Connection, DeviceAction, DeviceActionOutcome, ErrorKind};
use tapir_snom_sim::{Sim, SimConfig};

fn settle(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn device_actions_do_what_they_say_on_the_phone() {
    let sim = Sim::new(2).expect("sim");
    let phone = sim
        .phone(SimConfig {
            login: Some(("admin".into(), "right-pw".into())),
            ..sim_config("000413000061")
        })
        .expect("phone");
    let config = format!(
        r#"{{"phones": [{{"address": "{}", "mac": "000413000061", "login": "admin", "password": "wrong-pw"}}], "callback_key": "k", "public_url": "{{base}}", "status_interval_secs": 0, "snapshot_interval_secs": 0, "auto_reconfigure": false}}"#,
        phone.addr()
    );
    let h = Harness::start_with(&config, sim);
    let key = "000413000061";
    h.wait_device(key, "login refused", |d| {
        d.connection == Connection::NeedsRegistration
    });
    let act = |action: DeviceAction| h.driver.device_action(key, action);

    // set_login: the right password; the refresh it queues reaches the phone, which is not
    // configured (auto_reconfigure is off, so nothing is written yet).
    let outcome = act(DeviceAction::SetLogin {
        login: "admin".into(),
        password: "right-pw".into(),
    })
    .expect("set_login");
    assert_eq!(outcome, DeviceActionOutcome::Queued);
    h.wait_device(key, "logged in, Action URLs missing", |d| {
        d.connection == Connection::Connected && d.configuration == Configuration::CallbacksMissing
    });
    assert!(phone.setting("action_incoming_url").is_none());

    // write_configuration writes the Action URLs and reads them back.
    assert_eq!(
        act(DeviceAction::WriteConfiguration).expect("write"),
        DeviceActionOutcome::Queued
    );
    h.configured(key);
    let url = phone.setting("action_incoming_url").expect("written");
    assert!(url.contains("/a/000413000061/"), "{url}");

    // refresh notices a change made on the phone (no rewrite: auto_reconfigure is off).
    phone.set_setting("action_incoming_url", "");
    assert_eq!(
        act(DeviceAction::Refresh).expect("refresh"),
        DeviceActionOutcome::Queued
    );
    h.wait_device(key, "wiped URL noticed", |d| {
        d.configuration == Configuration::CallbacksMissing
    });
    assert_eq!(phone.setting("action_incoming_url").as_deref(), Some(""));

    // save_configuration returns the phone's settings dump, without the password.
    let DeviceActionOutcome::Configuration { text } =
        act(DeviceAction::SaveConfiguration).expect("dump")
    else {
        panic!("save_configuration returns the configuration");
    };
    assert!(text.contains("action_outgoing_url"), "{text}");
    assert!(!text.contains("right-pw"));

    // add, then remove: the phone table follows.
    let second = h.phone(sim_config("000413000062"));
    let added = h
        .driver
        .device_action(
            &second.addr().to_string(),
            DeviceAction::Add {
                mac: Some("00:04:13:00:00:62".into()),
                login: None,
                password: None,
            },
        )
        .expect("added");
    assert_eq!(
        added,
        DeviceActionOutcome::Added {
            key: "000413000062".into()
        }
    );
    h.wait_device("000413000062", "second phone contacted", |d| {
        d.connection == Connection::Connected
    });
    assert_eq!(
        act(DeviceAction::Remove).expect("removed"),
        DeviceActionOutcome::Done
    );
    let keys: Vec<String> = h.driver.devices().into_iter().map(|d| d.key).collect();
    assert_eq!(keys, ["000413000062"]);
    let gone = act(DeviceAction::Refresh).expect_err("removed phone");
    assert_eq!(gone.kind, ErrorKind::BadDeviceId);
    let empty = h
        .driver
        .device_action(
            "000413000062",
            DeviceAction::SetLogin {
                login: String::new(),
                password: "x".into(),
            },
        )
        .expect_err("empty login");
    assert_eq!(empty.kind, ErrorKind::InvalidParameter);
}

#[test]
fn opening_the_line_of_a_phone_with_wiped_action_urls_rewrites_them() {
    let sim = Sim::new(2).expect("sim");
    let phone = sim.phone(sim_config("000413000063")).expect("phone");
    let config = one_phone(
        phone.addr(),
        "000413000063",
        r#", "callback_key": "k", "public_url": "{base}""#,
    );
    let h = Harness::start_with(&config, sim);
    let key = "000413000063";
    h.configured(key);
    let written = phone.setting("action_incoming_url").expect("written");
    // Someone wipes the Action URLs on the phone; nothing checks it by itself
    // (status_interval_secs = 0).
    for name in ["action_incoming_url", "action_connected_url"] {
        phone.set_setting(name, "");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(phone.setting("action_incoming_url").as_deref(), Some(""));
    // Opening the line (0 -> 1) checks the phone and, with auto_reconfigure, rewrites them.
    let line = h.open(key);
    settle("Action URLs rewritten", || {
        phone.setting("action_incoming_url").as_deref() == Some(written.as_str())
            && phone
                .setting("action_connected_url")
                .is_some_and(|u| !u.is_empty())
    });
    h.configured(key);
    // A second opener does not trigger another check.
    phone.set_setting("action_incoming_url", "");
    h.tsp.open_line(line).expect("second open");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(phone.setting("action_incoming_url").as_deref(), Some(""));
}
