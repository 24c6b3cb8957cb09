//! The host library in process: a driver loaded from the plugin folder behind the front end.

mod support;

use std::time::{Duration, Instant};
use tapir_core::{AddressId, CallState, ErrorKind, LineId};
use tapir_host::catalog::Catalog;
use tapir_host::config::{Config, DriverSection};
use tapir_host::host::Host;
use tapir_tsp::{Action, TspEvent};

fn host_with(settings: serde_json::Value) -> (Host, tempfile::TempDir) {
    let plugins = support::plugin_dir();
    let catalog = Catalog::load(Some(plugins.path()));
    let mut config = Config::empty();
    let serde_json::Value::Object(settings) = settings else {
        panic!("object")
    };
    config.drivers.insert(
        "office".into(),
        DriverSection {
            driver: "virtual-phone".into(),
            enabled: true,
            settings,
        },
    );
    (Host::start(&config, &catalog), plugins)
}

#[test]
fn a_panicking_driver_call_fails_that_request_only() {
    let (host, _plugins) =
        host_with(serde_json::json!({ "panic_on_number": "666", "dial_ms": 20, "ring_ms": 20 }));
    let tsp = &host.tsp;
    let line = tsp.lines().first().map(|l| l.id).expect("a line");
    tsp.open_line(line).expect("open");
    let mut events = tsp.subscribe();
    let refused = tsp
        .submit(Action::MakeCall {
            line,
            address: AddressId(0),
            destination: Some("666".into()),
        })
        .expect_err("the panic fails the request");
    assert_eq!(refused.kind, ErrorKind::OperationFailed);
    assert!(refused.detail.contains("panic"), "{}", refused.detail);
    // The same driver goes on serving.
    let accepted = tsp
        .submit(Action::MakeCall {
            line,
            address: AddressId(0),
            destination: Some("200".into()),
        })
        .expect("next request accepted");
    let call = accepted.call.expect("call");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut connected = false;
    while Instant::now() < deadline && !connected {
        match events.try_recv() {
            Ok(e) => {
                if let TspEvent::CallState {
                    call: c,
                    state: CallState::Connected,
                    ..
                } = e.event
                {
                    connected = c == call;
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    assert!(connected, "the call after the panic connected");
    host.shutdown();
}

#[test]
fn configured_lines_keep_their_pinned_id() {
    let plugins = support::plugin_dir();
    let catalog = Catalog::load(Some(plugins.path()));
    let mut config = Config::empty();
    let serde_json::Value::Object(settings) = serde_json::json!({
        "lines": [ { "key": "100", "name": "A" }, { "key": "101", "name": "B" } ]
    }) else {
        panic!("object")
    };
    config.drivers.insert(
        "office".into(),
        DriverSection {
            driver: "virtual-phone".into(),
            enabled: true,
            settings,
        },
    );
    config.lines.push(tapir_host::config::PinnedLine {
        driver: "office".into(),
        key: "101".into(),
        id: Some(7),
        numbers: None,
    });
    let host = Host::start(&config, &catalog);
    let ids: Vec<_> = host
        .tsp
        .lines()
        .iter()
        .map(|l| (l.key.0.clone(), l.id))
        .collect();
    assert!(ids.contains(&("101".to_owned(), LineId(7))), "{ids:?}");
    assert!(ids.contains(&("100".to_owned(), LineId(0))), "{ids:?}");
    host.shutdown();
}
