//! Fuzz target: snom Action URL callbacks (path and query as the phones send them). The input
//! is split at its first `?` into path and query.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (path, query) = text.split_once('?').unwrap_or((text, ""));
        let _ = tapir_plugin_snom::action::parse(path, query);
        let _ = tapir_plugin_snom::action::parse_query(query);
    }
});
