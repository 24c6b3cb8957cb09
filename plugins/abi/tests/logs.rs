//! A plugin's `tracing` output reaches the host's subscriber, tagged with the plugin's name.
//!
//! This file is its own test binary because it installs a global subscriber: plugin threads
//! log too, and a thread-local default would not see them.

mod common;

use common::{library, Recorder, EXAMPLE};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tapir_core::{AddressId, CallId, LineKey, Request, RequestEnvelope, RequestId};
use tapir_plugin_abi::{load_plugin, PLUGIN_LOG_TARGET};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One captured event: level, target and fields (the message under "message").
#[derive(Debug, Clone)]
struct Line {
    level: tracing::Level,
    target: String,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Line>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Line {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            fields,
        });
    }
}

impl Capture {
    fn wait_for(&self, what: &str, found: impl Fn(&Line) -> bool) -> Line {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(line) = self.0.lock().unwrap().iter().find(|l| found(l)) {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line {what}: {:#?}",
                self.0.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn plugin_log_lines_reach_the_host_subscriber() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(capture.clone()))
        .unwrap();

    let plugin = load_plugin(&library(EXAMPLE)).unwrap();
    let sink = Recorder::new();
    let driver = plugin
        .build(r#"{ "dial_ms": 10, "ring_ms": 10 }"#, sink.clone())
        .unwrap();

    // Logged by the plugin's build, on this thread.
    let started = capture.wait_for("about the start", |l| {
        l.fields.get("message").map(String::as_str) == Some("Virtual phone started. lines=1")
    });
    assert_eq!(started.level, tracing::Level::INFO);
    assert_eq!(started.target, PLUGIN_LOG_TARGET);
    assert_eq!(started.fields["plugin"], "virtual-phone");
    assert_eq!(
        started.fields["source"],
        "tapir_example_virtual_phone::driver"
    );

    // Logged by the plugin's worker thread.
    driver
        .submit(RequestEnvelope {
            id: RequestId(1),
            line: LineKey::new("100"),
            request: Request::MakeCall {
                call: CallId(5),
                address: AddressId(0),
                destination: Some("200".into()),
            },
        })
        .unwrap();
    let changed = capture.wait_for("from the worker thread", |l| {
        l.fields
            .get("message")
            .is_some_and(|m| m.starts_with("Call state changed.") && m.contains("state=connected"))
    });
    assert_eq!(changed.level, tracing::Level::DEBUG);
    assert_eq!(
        changed.fields["source"],
        "tapir_example_virtual_phone::phone"
    );
    driver.shutdown();
}
