//! tapir → Kamailio (proxy with digest authentication, record-routing) → SIPp phone, on
//! 127.0.0.1. Kamailio challenges tapir's INVITE with 407 (MD5 or SHA-256, qop=auth) and
//! checks the answer against the plain-text password in its configuration.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tapir_core::*;

const T: Duration = Duration::from_secs(20);

fn config(port: u16, phone_port: u16, algorithm: &str) -> String {
    let next_hop = if phone_port == 0 {
        // Registrar mode: find the phone in the location table.
        "if (!lookup(\"location\")) {\n        sl_send_reply(\"404\", \"Not Found\");\n        exit;\n    }".to_owned()
    } else {
        format!("$du = \"sip:127.0.0.1:{phone_port}\";")
    };
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
memdbg=5
memlog=5
children=1
auto_aliases=no
listen=udp:127.0.0.1:{port}
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
modparam("auth", "algorithm", "{algorithm}")
modparam("auth", "nonce_expire", 60)

onreply_route {{
    xlog("L_INFO", "reply $rs $rm cseq=$cs from $si:$sp\n");
}}

request_route {{
    xlog("L_INFO", "request $rm cseq=$cs from $si:$sp\n");
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        # In-dialog: follow the Route set, or the Request-URI (the phone's NOTIFYs carry none).
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
    if (is_method("INVITE|REFER") && $fU == "alice") {{
        $var(rc) = pv_proxy_authenticate("tapir.test", "secret", "0");
        xlog("L_INFO", "auth rc=$var(rc) pa=[$hdr(Proxy-Authorization)]\n");
        if ($var(rc) < 0) {{
            proxy_challenge("tapir.test", "1");
            exit;
        }}
        consume_credentials();
    }}
    record_route();
    {next_hop}
    t_relay();
}}
"#
    )
}

fn start_kamailio(bin: &Path, phone_port: u16, algorithm: &str) -> Kamailio {
    Kamailio::builder(bin, |port| config(port, phone_port, algorithm))
        .args(["-n", "1"])
        .name(format!("kamailio {algorithm}"))
        .start()
}

fn line_via_proxy(kamailio_port: u16, password: &str) -> serde_json::Value {
    json!({ "lines": [{
        "key": "alice",
        "domain": "tapir.test",
        "outbound_proxy": format!("sip:127.0.0.1:{kamailio_port}"),
        "user": "alice",
        "password": password,
        "bind": "127.0.0.1:0",
    }]})
}

fn run_through_kamailio(algorithm: &str, driver_name: &str, scenario: &str) {
    let (Some(sipp_bin), Some(kam_bin)) = (sipp(), kamailio()) else {
        return;
    };
    let mut phone = start_sipp(&sipp_bin, scenario, false, 1, &[]);
    let kam = start_kamailio(&kam_bin, phone.port(), algorithm);
    let rec = Recorder::new();
    let driver = build(
        driver_name,
        &line_via_proxy(kam.port(), "secret"),
        rec.clone(),
    );
    let id = make_call(driver.as_ref(), "alice", 1, "0301234");
    let outcome = rec.wait_complete(id, T);
    assert!(outcome.is_ok(), "{:?}", outcome);
    rec.wait_state(CallId(1), CallState::Connected, T);
    rec.wait_state(CallId(1), CallState::Idle, T);
    phone.assert_passed(T);
    driver.shutdown();
    // Kamailio logged our answer and its verdict: accepted (rc 1) with the wanted algorithm.
    let log = kam.log();
    let accepted = log.lines().any(|l| {
        l.contains("auth rc=1 ")
            && l.contains(&format!("algorithm={algorithm},"))
            && l.contains("qop=auth")
    });
    assert!(
        accepted,
        "Kamailio did not accept a {algorithm} answer:\n{log}"
    );
    // Loose routing: our in-dialog requests followed the Record-Route through Kamailio.
    for method in ["ACK", "REFER", "BYE"] {
        assert!(
            log.contains(&format!("request {method} ")),
            "{method} bypassed Kamailio:\n{log}"
        );
    }
}

/// The Kamailio tests run one at a time: each starts a proxy, SIPp and a driver, and on two
/// cores several such setups at once starve each other into retransmission timeouts.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn refer_through_kamailio_with_md5_digest() {
    let _one_at_a_time = serial();
    run_through_kamailio("MD5", "sip-refer", "phone_ok_any");
}

#[test]
fn refer_through_kamailio_with_sha256_digest() {
    let _one_at_a_time = serial();
    run_through_kamailio("SHA-256", "sip-refer", "phone_ok_any");
}

#[test]
fn reverse_through_kamailio_with_sha256_digest() {
    let _one_at_a_time = serial();
    run_through_kamailio("SHA-256", "sip-reverse", "callee_ok");
}

#[test]
fn kamailio_refusing_our_credentials_is_a_clear_auth_failure() {
    let _one_at_a_time = serial();
    let (Some(sipp_bin), Some(kam_bin)) = (sipp(), kamailio()) else {
        return;
    };
    let phone = start_sipp(&sipp_bin, "phone_ok_any", false, 1, &[]);
    let kam = start_kamailio(&kam_bin, phone.port(), "MD5");
    let rec = Recorder::new();
    let driver = build(
        "sip-refer",
        &line_via_proxy(kam.port(), "wrong"),
        rec.clone(),
    );
    let id = make_call(driver.as_ref(), "alice", 2, "0301234");
    // Placed (the INVITE went out), then refused: the cause says why.
    assert_eq!(rec.wait_complete(id, T), Ok(Completion::Done));
    rec.wait_state(
        CallId(2),
        CallState::Disconnected(DisconnectMode::Blocked),
        T,
    );
    let text = rec
        .info(CallId(2))
        .and_then(|i| i.cause)
        .unwrap_or_default();
    assert!(
        text.contains("refused our credentials for user \"alice\""),
        "{text}"
    );
    driver.shutdown();
}

#[test]
fn refer_to_a_phone_registered_at_kamailio() {
    let _one_at_a_time = serial();
    let (Some(sipp_bin), Some(kam_bin)) = (sipp(), kamailio()) else {
        return;
    };
    let mut phone = start_sipp(&sipp_bin, "phone_ok_any", false, 1, &[]);
    let kam = start_kamailio(&kam_bin, 0, "MD5");
    // The phone registers its address as sip:201@tapir.test, authenticating with digest.
    let mut registrar_client = Sipp::builder(&sipp_bin, scenario("register"))
        .remote(format!("127.0.0.1:{}", kam.port()))
        .key("phone_port", phone.port().to_string())
        .timeout(Duration::from_secs(20))
        .name("sipp register")
        .start();
    registrar_client.assert_passed(T);
    let rec = Recorder::new();
    let mut cfg = line_via_proxy(kam.port(), "secret");
    cfg["lines"][0]["phone_user"] = json!("201");
    let driver = build("sip-refer", &cfg, rec.clone());
    let id = make_call(driver.as_ref(), "alice", 3, "0301234");
    let outcome = rec.wait_complete(id, T);
    assert!(outcome.is_ok(), "{:?}", outcome);
    rec.wait_state(CallId(3), CallState::Idle, T);
    phone.assert_passed(T);
    driver.shutdown();
}
