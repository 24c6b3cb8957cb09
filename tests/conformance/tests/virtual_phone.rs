//! Conformance of the virtual phone (no peer needed): 60 calls in a row on one line, answered,
//! busy and unreachable numbers mixed. The line has 4 places; runs of 5 failures in a row
//! would fill it if the phone kept a failed call.

use std::time::Duration;
use tapir_conformance::{run, Expect, Step, Subject};
use tapir_core::DisconnectMode;

#[test]
fn many_calls_on_one_line_with_failures() {
    let config = r#"{ "dial_ms": 5, "ring_ms": 5, "hangup_after_ms": null,
        "busy_numbers": ["486"], "unreachable_numbers": ["404"],
        "lines": [ { "key": "100" } ] }"#;
    let mut steps = Vec::new();
    for i in 0..60 {
        steps.push(match i % 12 {
            0 | 6 => Step::call("200", Expect::Answered),
            1..=5 => Step::call("486", Expect::failed(DisconnectMode::Busy, "busy")),
            _ => Step::call(
                "404",
                Expect::failed(DisconnectMode::Unreachable, "unreachable"),
            ),
        });
    }
    let report = run(
        Subject {
            name: "office".into(),
            build: |sink| tapir_example_virtual_phone::build(config, sink),
            line: "100".into(),
            answered_calls_end_by_themselves: false,
            per_call: Duration::from_secs(10),
        },
        steps,
    );
    println!("virtual-phone: {report}");
    assert_eq!(report.calls, 60);
}
