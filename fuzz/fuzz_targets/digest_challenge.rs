//! Fuzz target: digest challenges (`WWW-Authenticate` / `Proxy-Authenticate` values).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapir_sip_ua::digest::Challenge;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Challenge::parse(text);
    }
});
