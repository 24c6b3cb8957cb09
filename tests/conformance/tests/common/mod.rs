//! What the SIP instantiations share: the scenarios of this crate, the mix of outcomes by
//! dialled number the scenarios understand, and SIPp started on them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;
use tapir_conformance::{Expect, Step};
use tapir_core::DisconnectMode;
pub use tapir_test_support::{free_tcp_port, sipp, Sipp};

/// This crate's SIPp scenario `name` (`scenarios/NAME.xml`).
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.xml"))
}

/// The numbers the scenarios answer with an outcome, in the order calls cycle through them.
pub const MIX: [&str; 8] = ["200", "486", "603", "200", "480", "404", "486", "603"];

/// The outcome the scenarios give `number` (the SIP status, with its reason phrase, is the
/// cause the driver must report).
pub fn expect(number: &str) -> Expect {
    match number {
        "486" => Expect::failed(DisconnectMode::Busy, "486 Busy Here"),
        "603" => Expect::failed(DisconnectMode::Reject, "603 Decline"),
        "404" => Expect::failed(DisconnectMode::BadAddress, "404 Not Found"),
        "480" => Expect::failed(DisconnectMode::NoAnswer, "480 Temporarily Unavailable"),
        _ => Expect::Answered,
    }
}

/// `n` calls cycling through [`MIX`].
pub fn mixed_calls(n: usize) -> Vec<Step> {
    (0..n)
        .map(|i| {
            let number = MIX[i % MIX.len()];
            Step::call(number, expect(number))
        })
        .collect()
}

/// A call to a TCP port where nothing listens: the connection is refused at once.
pub fn unreachable_call(dead_port: u16) -> Step {
    Step::call(
        format!("sip:999@127.0.0.1:{dead_port};transport=tcp"),
        Expect::failed(DisconnectMode::Unreachable, "cannot be reached"),
    )
}

/// SIPp running `name` as the peer for `calls` calls.
pub fn peer(bin: &Path, name: &str, calls: usize, tcp: bool, port: Option<u16>) -> Sipp {
    let mut b = Sipp::builder(bin, scenario(name))
        .calls(calls as u32)
        .tcp(tcp)
        .timeout(Duration::from_secs(300))
        .name(format!("sipp {name}"));
    if let Some(p) = port {
        b = b.port(p);
    }
    b.start()
}

/// Per call: generous, the machine is shared.
pub const PER_CALL: Duration = Duration::from_secs(30);
