//! Auto-configuration, the password list, Digest lock-out safety, the phone table, a phone that
//! disappears and comes back, snapshot clean-up, discovery and mass configuration.

mod common;

use common::*;
use std::time::Duration;
use tapir_core::{CallState, Configuration, Connection};
use tapir_snom_sim::{Sim, SimConfig};
use tapir_tsp::TspEvent;

#[test]
fn auto_configuration_writes_and_reads_back_the_action_urls() {
    let sim = Sim::new(2).expect("sim");
    let phone = sim.phone(sim_config("000413000021")).expect("phone");
    let h = Harness::start_with(&one_phone(phone.addr(), "000413000021", ""), sim);
    let d = h.wait_device("000413000021", "configured", |d| {
        d.configuration == Configuration::Correct
    });
    assert_eq!(d.connection, Connection::Connected);
    assert_eq!(d.model.as_deref(), Some("snomD785"));
    assert_eq!(d.firmware.as_deref(), Some("10.1.33.33"));
    assert_eq!(d.number.as_deref(), Some("100"));
    assert_eq!(d.identity.as_deref(), Some("100@pbx.local"));
    assert_eq!(d.mac.as_deref(), Some("000413000021"));
    let url = phone.setting("action_incoming_url").expect("written");
    assert!(
        url.starts_with(&format!("{}/a/000413000021/", h.base)),
        "{url}"
    );
    assert!(url.contains("csta=$csta_id") && url.contains("cid=$call-id"));
    assert!(phone.setting("action_hold").is_some() && phone.setting("action_reg_failed").is_some());
    let line = h
        .tsp
        .lines()
        .into_iter()
        .find(|l| l.key.as_str() == "000413000021")
        .expect("line");
    assert_eq!(line.caps.addresses[0].number, "100");
    assert_eq!(phone.parallel_violations(), 0);
}

#[test]
fn lines_appear_with_what_their_phones_offer_in_configuration_order() {
    let sim = Sim::new(2).expect("sim");
    let two = sim
        .phone(SimConfig {
            more_identities: vec!["101".into()],
            settings: vec![("dnd_mode".into(), "on".into())],
            ..sim_config("000413000027")
        })
        .expect("phone");
    let d8xx = sim
        .phone(SimConfig {
            model: "snomD865".into(),
            ..sim_config("000413000028")
        })
        .expect("phone");
    let away = std::net::SocketAddr::from(([127, 0, 0, 1], tapir_test_support::free_tcp_port()));
    let config = format!(
        r#"{{"phones": [{{"address": "{}", "mac": "000413000027"}}, {{"address": "{away}", "mac": "000413000029"}}, {{"address": "{}", "mac": "000413000028"}}], "status_interval_secs": 0, "snapshot_interval_secs": 0}}"#,
        two.addr(),
        d8xx.addr()
    );
    // Nothing waits here for the phones: what the lines show when they appear is complete
    // (TAPI's line device capabilities do not change under an application that read them).
    let h = Harness::start_with(&config, sim);
    let lines = h.tsp.lines();
    let keys: Vec<&str> = lines.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, ["000413000027", "000413000029", "000413000028"]);
    assert!(lines.windows(2).all(|w| w[0].id < w[1].id), "{lines:?}");
    let numbers: Vec<&str> = lines[0]
        .caps
        .addresses
        .iter()
        .map(|a| a.number.as_str())
        .collect();
    assert_eq!(numbers, ["100", "101"], "both identities, as addresses");
    assert!(lines[0].in_service);
    // What the first check read comes with the line: the address state.
    let dnd = lines[0].addresses.get(&tapir_core::AddressId(0));
    assert!(
        dnd.is_some_and(|a| a.do_not_disturb),
        "{:?}",
        lines[0].addresses
    );
    assert!(lines[0]
        .caps
        .operations
        .contains(tapir_core::Operation::MakeCall));
    // A phone that cannot be reached appears out of service.
    assert!(!lines[1].in_service, "{:?}", lines[1]);
    // A D8xx without CSTA appears without the call control it lacks.
    assert!(!lines[2]
        .caps
        .operations
        .contains(tapir_core::Operation::MakeCall));
    assert!(lines[2].in_service);
}

#[test]
fn wrongly_configured_phones_are_reconfigured_only_with_the_option() {
    let sim = Sim::new(2).expect("sim");
    let fixed = sim.phone(sim_config("000413000022")).expect("phone");
    let config = format!(
        r#"{{"phones": [{{"address": "{}", "mac": "000413000022"}}], "status_interval_secs": 1, "snapshot_interval_secs": 0}}"#,
        fixed.addr()
    );
    let h = Harness::start_with(&config, sim);
    h.configured("000413000022");
    fixed.set_setting("action_connected_url", "http://elsewhere/");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !fixed
        .setting("action_connected_url")
        .is_some_and(|u| u.starts_with(&h.base))
    {
        assert!(std::time::Instant::now() < deadline, "not rewritten");
        std::thread::sleep(Duration::from_millis(20));
    }
    h.configured("000413000022");
    drop(h);

    let sim = Sim::new(1).expect("sim");
    let left = sim.phone(sim_config("000413000023")).expect("phone");
    let config = format!(
        r#"{{"phones": [{{"address": "{}", "mac": "000413000023"}}], "auto_reconfigure": false, "status_interval_secs": 0}}"#,
        left.addr()
    );
    let h = Harness::start_with(&config, sim);
    let d = h.wait_device("000413000023", "reported", |d| {
        d.configuration == Configuration::CallbacksMissing
    });
    assert!(d.detail.is_some_and(|t| t.contains("action_incoming_url")));
    assert_eq!(
        left.setting("action_incoming_url"),
        None,
        "nothing was written"
    );
    // "Write configuration" from the phone table does it on demand.
    let snom = h.driver.devices();
    assert_eq!(snom.len(), 1);
}

#[test]
fn password_list_with_basic_finds_the_login_and_never_shows_it() {
    let sim = Sim::new(2).expect("sim");
    let phone = sim
        .phone(SimConfig {
            login: Some(("admin".into(), "right-pw".into())),
            ..sim_config("000413000024")
        })
        .expect("phone");
    let config = format!(
        r#"{{"phones": [{{"address": "{}"}}], "status_interval_secs": 0,
            "passwords": [{{"login": "admin", "password": "wrong-1"}}, {{"login": "admin", "password": "wrong-2"}}, {{"login": "admin", "password": "right-pw"}}]}}"#,
        phone.addr()
    );
    let h = Harness::start_with(&config, sim);
    let key = tapir_plugin_snom::config::address_key(&phone.addr().to_string());
    h.configured(&key);
    let shown = format!("{:?}", h.driver.devices());
    assert!(
        !shown.contains("right-pw") && !shown.contains("wrong-1"),
        "{shown}"
    );
    // Later requests go straight in with the remembered login.
    let before = phone.requests().len();
    h.driver.devices();
    let line = h.open(&key);
    let mut h = h;
    let (_, r) = h
        .run(tapir_tsp::Action::SetDoNotDisturb {
            line,
            address: tapir_core::AddressId(0),
            enabled: true,
        })
        .expect("accepted");
    assert!(ok(&r), "{r:?}");
    // Opening the line checks the configuration (one settings read, queued before the DND
    // write); then the DND write: one request each, no retries.
    assert_eq!(
        phone.requests().len(),
        before + 2,
        "one request each, no retries"
    );
}

#[test]
fn digest_never_risks_the_lock_out() {
    let sim = Sim::new(2).expect("sim");
    let phone = sim
        .phone(SimConfig {
            login: Some(("admin".into(), "right-pw".into())),
            digest: true,
            ..sim_config("000413000025")
        })
        .expect("phone");
    let config = format!(
        r#"{{"phones": [{{"address": "{}"}}], "status_interval_secs": 1,
            "passwords": [{{"login": "admin", "password": "a"}}, {{"login": "admin", "password": "b"}}, {{"login": "admin", "password": "c"}}, {{"login": "admin", "password": "right-pw"}}]}}"#,
        phone.addr()
    );
    let h = Harness::start_with(&config, sim);
    let key = tapir_plugin_snom::config::address_key(&phone.addr().to_string());
    let d = h.wait_device(&key, "login refused", |d| {
        d.connection == Connection::NeedsRegistration
    });
    assert!(d.detail.is_some_and(|t| t.contains("Digest")));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        phone.auth_state(),
        (2, false),
        "two wrong attempts, never locked"
    );
    // With the right login set, it works (Digest answered properly).
    let snom = h.driver.clone();
    drop(snom);
    drop(h);

    let sim = Sim::new(1).expect("sim");
    let ok_phone = sim
        .phone(SimConfig {
            login: Some(("admin".into(), "right-pw".into())),
            digest: true,
            ..sim_config("000413000026")
        })
        .expect("phone");
    let config = format!(
        r#"{{"phones": [{{"address": "{}", "mac": "000413000026", "login": "admin", "password": "right-pw", "auth": "digest"}}], "status_interval_secs": 0}}"#,
        ok_phone.addr()
    );
    let h = Harness::start_with(&config, sim);
    h.configured("000413000026");
    assert_eq!(ok_phone.auth_state(), (0, false));
}

#[test]
fn phone_that_disappears_and_comes_back() {
    let sim = Sim::new(2).expect("sim");
    let phone = sim.phone(sim_config("000413000027")).expect("phone");
    let config = format!(
        r#"{{"phones": [{{"address": "{}", "mac": "000413000027"}}], "status_interval_secs": 1, "request_timeout_ms": 500}}"#,
        phone.addr()
    );
    let mut h = Harness::start_with(&config, sim);
    h.configured("000413000027");
    let line = h.open("000413000027");
    phone.go_offline();
    h.expect(
        "out of service",
        |e| matches!(e, TspEvent::LineService { line: l, in_service: false, .. } if *l == line),
    );
    h.wait_device("000413000027", "unreachable", |d| {
        d.connection == Connection::Unreachable
    });
    let refused = h.tsp.submit(tapir_tsp::Action::MakeCall {
        line,
        address: tapir_core::AddressId(0),
        destination: Some("1".into()),
    });
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.kind),
        Err(tapir_core::ErrorKind::Disconnected)
    );
    phone.come_back().expect("listens again");
    h.expect(
        "back in service",
        |e| matches!(e, TspEvent::LineService { line: l, in_service: true, .. } if *l == line),
    );
    h.wait_device("000413000027", "connected", |d| {
        d.connection == Connection::Connected && d.configuration == Configuration::Correct
    });
}

#[test]
fn snapshot_clears_calls_the_phone_no_longer_has() {
    let sim = Sim::new(2).expect("sim");
    let phone = sim.phone(sim_config("000413000028")).expect("phone");
    let config = format!(
        r#"{{"phones": [{{"address": "{}", "mac": "000413000028"}}], "status_interval_secs": 0, "snapshot_interval_secs": 1, "csta_path": "/csta"}}"#,
        phone.addr()
    );
    let mut h = Harness::start_with(&config, sim);
    h.configured("000413000028");
    h.open("000413000028");
    let kept = h.incoming(&phone, "700");
    let lost = h.incoming(&phone, "701");
    // The phone loses the second call without telling anyone.
    let keep_id = phone.calls()[0].csta;
    phone.forget_calls();
    phone.incoming("dummy");
    let _ = h.expect("third call", |e| matches!(e, TspEvent::NewCall { .. }));
    let _ = keep_id;
    let mut gone = std::collections::HashSet::new();
    while gone.len() < 2 {
        if let TspEvent::CallState { call, .. } = h.expect("disconnected", |e| {
            matches!(e, TspEvent::CallState { state: CallState::Disconnected(tapir_core::DisconnectMode::Unknown), call, .. } if *call == kept || *call == lost)
        }) {
            gone.insert(call);
        }
    }
    for call in gone {
        let (_, result) = h.run(tapir_tsp::Action::Drop { call }).expect("accepted");
        assert!(ok(&result), "{result:?}");
        h.expect_state(call, CallState::Idle);
    }
    let snaps = phone
        .requests()
        .iter()
        .filter(|r| r.starts_with("/csta"))
        .count();
    assert!(snaps >= 1);
    // The call the phone still has survives the next snapshot.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        h.tsp.calls().iter().filter(|c| !c.state.is_idle()).count(),
        1
    );
}

#[test]
fn discovery_finds_phones_in_a_loopback_range() {
    let sim = Sim::new(2).expect("sim");
    let phone = sim.phone(sim_config("000413000029")).expect("phone");
    let port = phone.addr().port();
    let config = format!(r#"{{"discovery": ["127.0.0.1:{port}"], "status_interval_secs": 0}}"#);
    let h = Harness::start_with(&config, sim);
    let key = tapir_plugin_snom::config::address_key(&phone.addr().to_string());
    h.line(&key);
    let d = h.wait_device(&key, "configured", |d| {
        d.configuration == Configuration::Correct
    });
    assert_eq!(d.model.as_deref(), Some("snomD785"));
    assert_eq!(d.mac.as_deref(), Some("000413000029"));
}

#[test]
fn unknown_phone_with_the_mass_configuration_secret_goes_into_operation() {
    let sim = Sim::new(2).expect("sim");
    let config = r#"{"accept_unknown_phones": true, "mass_config_secret": "m4ss", "status_interval_secs": 0}"#;
    let mut h = Harness::start_with(config, sim);
    // A phone provisioned from the mass-configuration files (its Action URLs point at /m/).
    let files = tapir_plugin_snom::mass_config::files(
        &tapir_plugin_snom::SnomConfig::parse(config).expect("parses"),
        Some(&h.base),
    )
    .expect("files");
    let settings = tapir_plugin_snom::settings::Settings::parse(&files[0].1);
    let preset: Vec<(String, String)> = tapir_plugin_snom::action::Event::ALL
        .iter()
        .filter_map(|e| {
            Some((
                e.setting().to_owned(),
                settings.get(e.setting())?.to_owned(),
            ))
        })
        .collect();
    assert_eq!(preset.len(), tapir_plugin_snom::action::Event::ALL.len());
    let phone = h.phone(SimConfig {
        settings: preset,
        ..sim_config("00041300002A")
    });
    phone.incoming("800");
    h.line("00041300002A");
    // The first call arrived before the line was open; the next one is reported.
    h.open("00041300002A");
    phone.incoming("801");
    let ev = h.expect("new call", |e| matches!(e, TspEvent::NewCall { .. }));
    let TspEvent::NewCall { info, .. } = ev else {
        unreachable!()
    };
    assert_eq!(info.calling.raw_number.as_deref(), Some("801"));
    let d = h.wait_device("00041300002A", "accepted", |d| {
        d.configuration == Configuration::Correct
    });
    assert_eq!(d.mac.as_deref(), Some("00041300002A"));
}

#[test]
fn unknown_phone_is_refused_without_the_option() {
    let h = Harness::start(r#"{"mass_config_secret": "m4ss", "status_interval_secs": 0}"#);
    let reply = h.driver.http_callback(tapir_core::HttpCallback {
        method: "GET".into(),
        path: "/m/m4ss/incoming".into(),
        query: "mac=000413000099&csta=1".into(),
        headers: vec![],
        peer: "127.0.0.1:5000".into(),
        body: String::new(),
    });
    assert_eq!(reply.status, 403);
    assert!(h.driver.devices().is_empty());
}

#[test]
fn https_with_digest_and_a_self_signed_certificate() {
    let sim = Sim::new(2).expect("sim");
    let phone = sim
        .phone(SimConfig {
            tls: true,
            digest: true,
            login: Some(("admin".into(), "pw".into())),
            answer_after: Some(Duration::from_millis(50)),
            ..sim_config("00041300002B")
        })
        .expect("phone");
    let config = format!(
        r#"{{"phones": [{{"address": "{}", "mac": "00041300002B", "scheme": "https", "login": "admin", "password": "pw"}}], "status_interval_secs": 0}}"#,
        phone.addr()
    );
    let mut h = Harness::start_with(&config, sim);
    h.configured("00041300002B");
    let line = h.open("00041300002B");
    let (call, r) = h
        .run(tapir_tsp::Action::MakeCall {
            line,
            address: tapir_core::AddressId(0),
            destination: Some("42".into()),
        })
        .expect("accepted");
    assert!(ok(&r), "{r:?}");
    h.expect_state(call.expect("call"), CallState::Connected);
    assert_eq!(phone.auth_state(), (0, false));
}

#[test]
fn phone_without_a_settings_page_is_configured_once_blind() {
    let sim = Sim::new(2).expect("sim");
    let phone = sim
        .phone(SimConfig {
            settings_page: false,
            ..sim_config("00041300002C")
        })
        .expect("phone");
    let config = format!(
        r#"{{"phones": [{{"address": "{}", "mac": "00041300002C"}}], "status_interval_secs": 1}}"#,
        phone.addr()
    );
    let mut h = Harness::start_with(&config, sim);
    let d = h.wait_device("00041300002C", "written", |d| {
        d.detail
            .as_deref()
            .is_some_and(|t| t.contains("cannot be read back"))
    });
    assert_eq!(d.configuration, Configuration::Unknown);
    let writes = || {
        phone
            .requests()
            .iter()
            .filter(|r| r.starts_with("/dummy.htm"))
            .count()
    };
    let first = writes();
    assert!(first > 0);
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(writes(), first, "not rewritten at every refresh");
    h.open("00041300002C");
    h.incoming(&phone, "900");
}
