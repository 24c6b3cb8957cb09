//! What the endpoint tests against Kamailio share: the Kamailio configuration (OPTIONS answered,
//! REGISTER saved, INVITE routed to the registered contact, everything logged with its
//! transport and source), requests, and waiting for answers.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;
use tapir_sip_ua::dialog::{new_call_id, new_tag};
use tapir_sip_ua::{ClientEvent, ClientTx, Message, Method};

/// How Kamailio is set up.
#[derive(Debug, Clone, Default)]
pub struct Setup<'a> {
    /// TLS port and the `tls.cfg` to load.
    pub tls: Option<(u16, &'a Path)>,
    /// Answer STUN on the UDP port (the `stun` module).
    pub stun: bool,
    /// REGISTERs over TCP/TLS record the connection they came on (`fix_nated_register`), so
    /// requests to the contact go over the client's own flow.
    pub flows: bool,
    /// `tcp_connection_lifetime` in seconds (Kamailio closes connections idle that long).
    pub lifetime: Option<u32>,
}

/// A Kamailio registrar and proxy on `port` (UDP and TCP).
pub fn kamailio_config(port: u16, setup: &Setup<'_>) -> String {
    let tls = setup
        .tls
        .map(|(p, cfg)| tapir_test_support::kamailio::tls_module(p, cfg))
        .unwrap_or_default();
    let stun = if setup.stun {
        "loadmodule \"stun.so\"\n"
    } else {
        ""
    };
    let lifetime = setup
        .lifetime
        .map(|l| format!("tcp_connection_lifetime={l}\n"))
        .unwrap_or_default();
    let fix = if setup.flows {
        "if (proto == TCP || proto == TLS) { fix_nated_register(); }"
    } else {
        ""
    };
    let client_cert = if setup.tls.is_some() {
        "cert=[$tls_peer_subject_cn]"
    } else {
        ""
    };
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=2
auto_aliases=no
{lifetime}listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
{tls}loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "nathelper.so"
{stun}modparam("usrloc", "db_mode", 0)
modparam("nathelper", "received_avp", "$avp(RECEIVED)")
modparam("registrar", "received_avp", "$avp(RECEIVED)")

onreply_route {{
    xlog("L_INFO", "reply $rs $rm proto=$pr src=$si:$sp\n");
}}

request_route {{
    xlog("L_INFO", "request $rm proto=$pr src=$si:$sp {client_cert} via=[$hdr(Via)] contact=[$hdr(Contact)]\n");
    if (is_method("OPTIONS") && $rU == $null) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (is_method("REGISTER")) {{
        {fix}
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    if (is_method("INVITE|OPTIONS") && !has_totag()) {{
        if (!lookup("location")) {{
            sl_send_reply("404", "Not Found");
            exit;
        }}
        xlog("L_INFO", "relay $rm to $ru via [$du]\n");
    }}
    t_relay();
}}
"#
    )
}

/// An OPTIONS to `uri` (the host of `uri` is also what a TLS certificate must name).
pub fn options(uri: &str) -> Message {
    let mut m = Message::request(Method::Options, uri.to_owned());
    m.push("Max-Forwards", "70");
    m.push("From", format!("<sip:tapir@tapir.test>;tag={}", new_tag()));
    m.push("To", format!("<{uri}>"));
    m.push("Call-ID", new_call_id("tapir.test"));
    m.push("CSeq", "1 OPTIONS");
    m
}

/// The transaction's final answer (or what ended it), waiting at most `limit`.
pub async fn outcome(tx: &mut ClientTx, limit: Duration) -> ClientEvent {
    let end = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(end, tx.events.recv()).await {
            Ok(Some(ClientEvent::Response(r))) if r.code().unwrap_or(0) < 200 => continue,
            Ok(Some(ev)) => return ev,
            Ok(None) => panic!("the transaction ended without an event"),
            Err(_) => panic!("no outcome within {limit:?}"),
        }
    }
}

/// The status code of a final answer, or a panic saying what came instead.
pub fn code(ev: &ClientEvent) -> u16 {
    match ev {
        ClientEvent::Response(r) => r.code().unwrap_or(0),
        other => panic!("expected a response, got {other:?}"),
    }
}

/// Lines of `log` that contain every one of `parts`.
pub fn lines_with(log: &str, parts: &[&str]) -> Vec<String> {
    log.lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .map(str::to_owned)
        .collect()
}
