//! Test helpers of the SIP drivers, on the shared `tapir-test-support` crate: SIPp running this
//! crate's scenarios (`tests/scenarios/NAME.xml`), and the drivers built with a JSON config.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
pub use tapir_test_support::recorder::{drop_call, make_call, rid, submit};
pub use tapir_test_support::{free_port, kamailio, sipp, Kamailio, Recorder, Sipp};

/// This crate's scenario `name`.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(format!("{name}.xml"))
}

/// SIPp as a UAS running `scenario` for `calls` calls (over TCP with `tcp`), messages traced.
pub fn start_sipp(bin: &Path, scenario: &str, tcp: bool, calls: u32, extra: &[&str]) -> Sipp {
    start_sipp_with(bin, scenario, tcp, calls, extra, true)
}

/// Like [`start_sipp`]; `trace` adds `-trace_msg` (off for benchmarks).
pub fn start_sipp_with(
    bin: &Path,
    name: &str,
    tcp: bool,
    calls: u32,
    extra: &[&str],
    trace: bool,
) -> Sipp {
    Sipp::builder(bin, scenario(name))
        .tcp(tcp)
        .calls(calls)
        .args(extra.iter().copied())
        .trace_msg(trace)
        .timeout(std::time::Duration::from_secs(300))
        .start()
}

/// Builds a built-in SIP driver by name with a JSON config.
pub fn build(
    name: &str,
    config: &serde_json::Value,
    sink: Arc<Recorder>,
) -> Box<dyn tapir_core::PhoneDriver> {
    // Names an item of the plugin crate so it is linked and its drivers are registered.
    let _ = tapir_plugin_sip::config::EXAMPLE;
    tapir_test_support::recorder::build_builtin(name, config, sink)
}
