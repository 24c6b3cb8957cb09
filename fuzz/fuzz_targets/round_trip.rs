//! Fuzz target: whatever parses must serialize and parse back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapir_sip_ua::message::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::parse(data) {
        let again = Message::parse(&msg.to_bytes());
        assert_eq!(again.as_ref(), Ok(&msg), "round trip changed the message");
    }
});
