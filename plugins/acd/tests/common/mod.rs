//! Test helpers of the acd driver, on the shared `tapir-test-support` crate: SIPp running this
//! crate's scenarios (`tests/scenarios/NAME.xml`), and the driver built with a JSON config.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
pub use tapir_test_support::recorder::{drop_call, make_call, rid, submit, transfer};
pub use tapir_test_support::{free_port, kamailio, sipp, Kamailio, Recorder, Sipp};

/// This crate's scenario `name`.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(format!("{name}.xml"))
}

/// SIPp as a UAS running `name` for `calls` calls over UDP.
pub fn start_sipp(bin: &Path, name: &str, calls: u32, extra: &[&str]) -> Sipp {
    start_sipp_on(bin, name, false, calls, extra)
}

/// SIPp as a UAS running `name` for `calls` calls, over TCP with `tcp`.
pub fn start_sipp_on(bin: &Path, name: &str, tcp: bool, calls: u32, extra: &[&str]) -> Sipp {
    Sipp::builder(bin, scenario(name))
        .calls(calls)
        .tcp(tcp)
        .trace_msg(false)
        .args(["-max_recv_loops", "100000"])
        .args(extra.iter().copied())
        .timeout(Duration::from_secs(120))
        .start()
}

/// Builds the acd driver with a JSON config.
pub fn build(config: &serde_json::Value, sink: Arc<Recorder>) -> Box<dyn tapir_core::PhoneDriver> {
    // Names an item of the plugin crate so it is linked and its driver is registered.
    let _ = tapir_plugin_acd::config::EXAMPLE;
    tapir_test_support::recorder::build_builtin("acd", config, sink)
}
