//! Conformance of `acd` against SIPp as the called party: calls in a row on one line
//! (`max_calls = 1`) with answered (then dropped by the application), busy, declined,
//! not-found, unanswered and unreachable outcomes mixed.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use tapir_conformance::{run, Subject};
use tapir_core::builtin_driver;

#[test]
fn acd_many_calls_on_one_line_with_failures() {
    let Some(bin) = sipp() else { return };
    let n = 40;
    let mut target = peer(&bin, "acd_target", n, false, None);
    let dead = free_tcp_port();
    let mut steps = mixed_calls(n);
    steps.insert(10, unreachable_call(dead));
    steps.insert(30, unreachable_call(dead));
    let config = json!({ "bind": "127.0.0.1:0", "domain": format!("127.0.0.1:{}", target.port()),
        "user": "acd", "lines": 1, "max_calls": 1, "ring_timeout_secs": 20 })
    .to_string();
    // Names an item of the plugin crate so it is linked and its driver is registered.
    let _ = tapir_plugin_acd::config::EXAMPLE;
    let report = run(
        Subject {
            name: "dialer".into(),
            build: move |sink| match builtin_driver("acd") {
                Some(d) => (d.build)(&config, sink),
                None => panic!("acd is not registered"),
            },
            line: "1".into(),
            answered_calls_end_by_themselves: false,
            per_call: PER_CALL,
        },
        steps,
    );
    println!("acd: {report}");
    target.assert_passed(Duration::from_secs(30));
    assert_eq!(report.calls, n + 2);
}
