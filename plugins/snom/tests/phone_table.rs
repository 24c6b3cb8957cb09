//! The phone table's operations (status refresh, write configuration, set login, save the
//! configuration locally, remove), the admin-mode password and the number field.

mod common;

use common::*;
use std::sync::Arc;
use tapir_core::{Configuration, Connection, PhoneDriver};
use tapir_plugin_snom::{Secret, SnomConfig, SnomDriver};
use tapir_snom_sim::{Sim, SimConfig};
use tapir_test_support::callbacks::Shared;
use tapir_tsp::{Tsp, TspConfig, TspEvent};

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn phone_table_operations() {
    let sim = Sim::new(2).expect("sim");
    let phone = sim
        .phone(SimConfig {
            login: Some(("admin".into(), "new-pw".into())),
            ..sim_config("000413000051")
        })
        .expect("phone");
    let tsp = Tsp::new(TspConfig {
        callback_base: Some("http://127.0.0.1:9/phones".into()),
        ..TspConfig::default()
    });
    let mut events = tsp.subscribe();
    let config = SnomConfig::parse(&format!(
        r#"{{"phones": [{{"address": "{}", "mac": "000413000051", "login": "admin", "password": "old-pw"}}], "status_interval_secs": 0, "auto_reconfigure": false}}"#,
        phone.addr()
    ))
    .expect("config");
    let mut driver = None;
    tsp.add_driver("office", |sink| {
        let d = Arc::new(SnomDriver::start(config, sink)?);
        driver = Some(Arc::clone(&d));
        Ok(Box::new(Shared(d)))
    })
    .expect("starts");
    let driver = driver.expect("driver");
    let status = |d: &SnomDriver| d.devices().into_iter().next().expect("one phone");
    wait("login refused", || {
        status(&driver).connection == Connection::NeedsRegistration
    });
    // Set login: the right password, then the status refresh finds the phone unconfigured.
    driver
        .set_login("000413000051", "admin", Secret::new("new-pw"))
        .expect("known phone");
    wait("contacted", || {
        status(&driver).configuration == Configuration::CallbacksMissing
    });
    // Write configuration.
    driver.refresh("000413000051", true).expect("known phone");
    wait("written", || {
        status(&driver).configuration == Configuration::Correct
    });
    assert!(phone.setting("action_incoming_url").is_some());
    // Save the configuration locally (the settings dump; snom leaves passwords out).
    let dump = driver.settings_dump("000413000051").expect("dump");
    assert!(dump.contains("action_incoming_url") && !dump.contains("new-pw"));
    assert!(!format!("{:?}", driver.devices()).contains("pw"));
    // Remove.
    driver.remove("000413000051").expect("removed");
    assert!(driver.devices().is_empty());
    assert!(driver.remove("000413000051").is_err());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match events.try_recv() {
            Ok(e) if matches!(e.event, TspEvent::LineRemoved { .. }) => break,
            _ => {
                assert!(std::time::Instant::now() < deadline, "no LineRemoved");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
    // Manual add.
    let second = sim.phone(sim_config("000413000053")).expect("phone");
    let key = driver
        .add(&second.addr().to_string(), Some("00:04:13:00:00:53"), None)
        .expect("added");
    assert_eq!(key, "000413000053");
    assert!(driver
        .add(&second.addr().to_string(), Some("000413000053"), None)
        .is_err());
    assert!(driver.add("no/such", None, None).is_err());
    wait("manually added phone configured", || {
        driver
            .devices()
            .iter()
            .any(|d| d.key == "000413000053" && d.connection == Connection::Connected)
    });
    tsp.shutdown();
}

#[test]
fn admin_password_replaces_the_phone_logins_and_number_field_picks_the_number() {
    let sim = Sim::new(2).expect("sim");
    let phone = sim
        .phone(SimConfig {
            login: Some(("admin".into(), "adm1n".into())),
            ..sim_config("000413000052")
        })
        .expect("phone");
    let config = format!(
        r#"{{"phones": [{{"address": "{}", "mac": "000413000052", "login": "user", "password": "ignored"}}], "admin_password": "adm1n", "number_field": "user_realname", "status_interval_secs": 0}}"#,
        phone.addr()
    );
    let h = Harness::start_with(&config, sim);
    let d = h.wait_device("000413000052", "configured", |d| {
        d.configuration == Configuration::Correct
    });
    assert_eq!(d.number.as_deref(), Some("Sim Phone"));
}
