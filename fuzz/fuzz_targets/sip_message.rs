//! Fuzz target: any bytes through the SIP message parser (datagram and stream framing), the
//! salvage of malformed requests and the UAS checks. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapir_sip_ua::message::Message;

fuzz_target!(|data: &[u8]| {
    match Message::parse(data) {
        Ok(msg) => {
            let _ = tapir_sip_ua::uas::refuse(&msg, "t");
            let _ = msg.top_via();
            let _ = msg.from();
            let _ = msg.to();
            let _ = msg.header_values("Contact").count();
        }
        Err(e) => {
            let _ = tapir_sip_ua::uas::answer_malformed(data, &e, "t");
        }
    }
    let _ = Message::frame(data);
    let _ = Message::parse_stream(data);
});
