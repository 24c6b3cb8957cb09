//! Fuzz target: message/sipfrag bodies of REFER's NOTIFYs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapir_sip_ua::refer::Sipfrag;

fuzz_target!(|data: &[u8]| {
    let _ = Sipfrag::parse(data);
});
