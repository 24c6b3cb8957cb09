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

/// Kamailio as registrar and proxy of `tapir.test`: REGISTERs challenged (401) and saved;
/// INVITEs from `acd*` users challenged (407), record-routed and relayed to SIPp on
/// `target_port`; others to the registered location.
/// One UDP worker (`children=1`): with two, the 200 to the last NOTIFY and our BYE right after
/// it can leave Kamailio in the other order, and SIPp then fails the call.
pub fn kamailio_cfg(port: u16, target_port: u16) -> String {
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
listen=udp:127.0.0.1:{port}
alias="tapir.test"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "auth.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "db_mode", 0)
modparam("auth", "nonce_expire", 60)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (!loose_route()) {{
            if (is_method("ACK") && !t_check_trans()) {{
                exit;
            }}
        }}
        t_relay();
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    t_check_trans();
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("tapir.test", "secret", "0")) {{
            www_challenge("tapir.test", "1");
            exit;
        }}
        consume_credentials();
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    if (is_method("INVITE") && $fU =~ "^acd") {{
        if (pv_proxy_authenticate("tapir.test", "secret", "0") < 0) {{
            proxy_challenge("tapir.test", "1");
            exit;
        }}
        consume_credentials();
        record_route();
        $du = "sip:127.0.0.1:{target_port}";
        t_relay();
        exit;
    }}
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    t_relay();
}}
"#
    )
}
