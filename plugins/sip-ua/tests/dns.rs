//! RFC 3263 resolution, ENUM and failover against a real DNS server (unbound, started by the
//! test on a free loopback port and stopped when it ends) with the resolver pointed at it by
//! configuration, and against real SIP peers: SIPp answering 200 or 503, a port with nothing
//! behind it (ICMP unreachable), and a socket that never answers.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tapir_sip_ua::dialog::{new_call_id, new_tag};
use tapir_sip_ua::resolve::failover::{send_non_invite, Answered, Sent};
use tapir_sip_ua::resolve::ResolveError;
use tapir_sip_ua::{
    DnsConfig, Endpoint, EndpointConfig, Message, Method, Resolver, Target, Transport, Uri,
};
use tapir_test_support::{free_udp_port, sipp, unbound, Dns, Sipp};

fn udp(addr: &str) -> Target {
    Target {
        transport: Transport::Udp,
        addr: addr.parse().expect("addr"),
    }
}

fn tcp(addr: &str) -> Target {
    Target {
        transport: Transport::Tcp,
        addr: addr.parse().expect("addr"),
    }
}

fn tls(addr: &str) -> Target {
    Target {
        transport: Transport::Tls,
        addr: addr.parse().expect("addr"),
    }
}

/// A resolver asking only `servers`, built the way drivers build it: from a `dns` table.
fn resolver(servers: &[String]) -> Resolver {
    let cfg = DnsConfig {
        servers: servers.to_vec(),
        failover_timeout_ms: 500,
        ..DnsConfig::default()
    };
    Resolver::with_settings(&cfg.settings().expect("valid dns table"))
}

/// The zones of the resolution tests (unbound's zone-file syntax).
fn start_dns(bin: &Path) -> Dns {
    Dns::builder(bin)
        .zone(
            "pbx.test",
            r#"
@ IN NAPTR 5 10 "s" "SIPS+D2T" "" _sips._tcp.pbx.test.
@ IN NAPTR 10 10 "s" "SIP+D2T" "" _sip._tcp.pool.pbx.test.
@ IN NAPTR 10 20 "S" "SIP+D2U" "" _sip._udp.pool.pbx.test.
@ IN NAPTR 20 10 "s" "SIP+D2U" "" _sip._udp.late.pbx.test.
@ IN NAPTR 1 1 "u" "E2U+sip" "!^.*$!sip:x@y!" .
@ IN NAPTR 2 1 "s" "SIP+D2S" "" _sip._sctp.pbx.test.
_sips._tcp IN SRV 10 0 5061 a
_sip._tcp.pool IN SRV 20 0 5071 b
_sip._tcp.pool IN SRV 10 0 5070 a
_sip._udp.pool IN SRV 10 0 5072 c
_sip._udp.late IN SRV 10 0 5073 c
_sip._udp IN SRV 10 0 5099 c
a IN A 127.0.0.1
b IN A 127.0.0.2
b IN AAAA ::1
c IN A 127.0.0.3
"#,
        )
        .zone(
            "srv.test",
            "_sip._tcp IN SRV 10 0 5080 host\nhost IN A 127.0.0.4",
        )
        .zone("plain.test", "@ IN A 127.0.0.5")
        .zone(
            "broken.test",
            r#"
@ IN NAPTR 10 10 "s" "SIP+D2U" "" _sip._udp.gone.broken.test.
@ IN NAPTR 20 10 "s" "SIP+D2T" "" _sip._tcp.broken.test.
_sip._tcp IN SRV 10 0 5081 h
h IN A 127.0.0.6
"#,
        )
        .zone(
            "aflag.test",
            "@ IN NAPTR 10 10 \"a\" \"SIP+D2U\" \"\" h.aflag.test.\nh IN A 127.0.0.7",
        )
        .zone(
            "e164.arpa",
            r#"
7.6.5.4.3.2.1.9.8.9.4 IN NAPTR 10 100 "u" "E2U+sip" "!^\\+49(.*)$!sip:\\1@pbx.test!" .
7.6.5.4.3.2.1.9.8.9.4 IN NAPTR 5 100 "u" "E2U+email:mailto" "!^.*$!mailto:info@pbx.test!" .
1.1.1.1.1.1.1.1.4.4 IN NAPTR 10 10 "" "" "" 1.1.1.1.1.1.1.1.4.4.e164.example.net.
"#,
        )
        .zone(
            "e164.example.net",
            r#"
1.1.1.1.1.1.1.1.4.4 IN NAPTR 10 10 "u" "E2U+voice:sip" "!^.*$!sip:uk@pbx.test!" .
2.2.2.4.4 IN NAPTR 10 10 "U" "E2U+SIP" "!^.*$!sip:custom@pbx.test!" .
"#,
        )
        .start()
}

async fn resolve(r: &Resolver, uri: &str, default: Transport) -> Result<Vec<Target>, ResolveError> {
    r.resolve(&Uri::parse(uri).expect("uri"), default).await
}

#[tokio::test]
async fn naptr_srv_and_addresses_in_rfc3263_order() {
    let Some(bin) = unbound() else { return };
    let dns = start_dns(&bin);
    let r = resolver(&[dns.addr()]);
    // NAPTR: order 5 is TLS (not usable here), order 10 gives TCP before UDP by preference,
    // each SRV in priority order, IPv4 before IPv6; order 20 and `_sip._udp` are never used.
    assert_eq!(
        resolve(&r, "sip:100@pbx.test", Transport::Udp).await,
        Ok(vec![
            tcp("127.0.0.1:5070"),
            tcp("127.0.0.2:5071"),
            tcp("[::1]:5071"),
            udp("127.0.0.3:5072"),
        ]),
        "{}",
        dns.log()
    );
    // With TLS usable, the SIPS record of order 5 wins alone.
    let with_tls =
        resolver(&[dns.addr()]).with_transports(&[Transport::Udp, Transport::Tcp, Transport::Tls]);
    assert_eq!(
        resolve(&with_tls, "sip:100@pbx.test", Transport::Udp).await,
        Ok(vec![tls("127.0.0.1:5061")])
    );
    assert_eq!(
        resolve(&with_tls, "sips:100@pbx.test", Transport::Udp).await,
        Ok(vec![tls("127.0.0.1:5061")])
    );
    assert!(matches!(
        resolve(&r, "sips:100@pbx.test", Transport::Udp).await,
        Err(ResolveError::Unroutable(_))
    ));
    // A transport in the URI skips NAPTR: SRV of that transport.
    assert_eq!(
        resolve(&r, "sip:100@pbx.test;transport=udp", Transport::Tcp).await,
        Ok(vec![udp("127.0.0.3:5099")])
    );
    // No NAPTR: SRV of the default transport, then of the others.
    assert_eq!(
        resolve(&r, "sip:1@srv.test", Transport::Udp).await,
        Ok(vec![tcp("127.0.0.4:5080")])
    );
    // No NAPTR, no SRV: A on 5060 with the default transport; an explicit port is kept.
    assert_eq!(
        resolve(&r, "sip:1@plain.test", Transport::Udp).await,
        Ok(vec![udp("127.0.0.5:5060")])
    );
    assert_eq!(
        resolve(&r, "sip:1@plain.test:5090", Transport::Tcp).await,
        Ok(vec![tcp("127.0.0.5:5090")])
    );
    assert_eq!(
        resolve(&r, "sip:1@plain.test;transport=tcp", Transport::Udp).await,
        Ok(vec![tcp("127.0.0.5:5060")])
    );
    // An order whose records lead nowhere gives way to the next order.
    assert_eq!(
        resolve(&r, "sip:1@broken.test", Transport::Udp).await,
        Ok(vec![tcp("127.0.0.6:5081")])
    );
    // The `A` flag: addresses of the replacement on the default port.
    assert_eq!(
        resolve(&r, "sip:1@aflag.test", Transport::Tcp).await,
        Ok(vec![udp("127.0.0.7:5060")])
    );
    assert!(matches!(
        resolve(&r, "sip:1@none.pbx.test", Transport::Udp).await,
        Err(ResolveError::NotFound(_))
    ));
}

#[tokio::test]
async fn enum_turns_e164_numbers_into_sip_uris() {
    let Some(bin) = unbound() else { return };
    let dns = start_dns(&bin);
    let r = resolver(&[dns.addr()]);
    // The E2U+sip record (the mailto one of a lower order is not SIP), its expression
    // applied to the AUS.
    assert_eq!(
        r.enum_uri("+49 89 1234567", "e164.arpa").await.as_deref(),
        Some("sip:891234567@pbx.test"),
        "{}",
        dns.log()
    );
    // A non-terminal rule leads to another tree.
    assert_eq!(
        r.enum_uri("+44 1111 1111", "e164.arpa").await.as_deref(),
        Some("sip:uk@pbx.test")
    );
    // Another suffix.
    assert_eq!(
        r.enum_uri("+44222", "e164.example.net").await.as_deref(),
        Some("sip:custom@pbx.test")
    );
    // No record, or not an E.164 number: nothing (dialling goes on as usual).
    assert_eq!(r.enum_uri("+4930123", "e164.arpa").await, None);
    assert_eq!(r.enum_uri("0891234567", "e164.arpa").await, None);
}

#[tokio::test]
async fn the_next_configured_server_answers_when_the_first_ones_are_down() {
    let Some(bin) = unbound() else { return };
    let dns = start_dns(&bin);
    let down = || format!("127.0.0.1:{}", free_udp_port());
    let r = resolver(&[down(), down(), dns.addr()]);
    assert_eq!(
        resolve(&r, "sip:1@srv.test", Transport::Udp).await,
        Ok(vec![tcp("127.0.0.4:5080")])
    );
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

fn options(to: &str, target: &Target) -> Message {
    let mut req = Message::request(Method::Options, to.to_owned());
    req.push("Max-Forwards", "70");
    req.push(
        "From",
        format!("<sip:tapir@{}>;tag={}", target.addr.ip(), new_tag()),
    );
    req.push("To", format!("<{to}>"));
    req.push("Call-ID", new_call_id("127.0.0.1"));
    req.push("CSeq", "1 OPTIONS");
    req
}

#[tokio::test]
async fn a_request_fails_over_through_srv_targets_that_are_down_silent_and_overloaded() {
    let (Some(dns_bin), Some(sipp_bin)) = (unbound(), sipp()) else {
        return;
    };
    let mut busy = Sipp::builder(&sipp_bin, scenario("uas_options_503.xml"))
        .timeout(Duration::from_secs(30))
        .start();
    let mut good = Sipp::builder(&sipp_bin, scenario("uas_options.xml"))
        .timeout(Duration::from_secs(30))
        .start();
    let down = free_udp_port();
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let dns = Dns::builder(&dns_bin)
        .zone(
            "fo.test",
            &format!(
                "_sip._udp IN SRV 10 0 {down} h\n_sip._udp IN SRV 20 0 {silent_port} h\n\
                 _sip._udp IN SRV 30 0 {} h\n_sip._udp IN SRV 40 0 {} h\nh IN A 127.0.0.1",
                busy.port(),
                good.port()
            ),
        )
        .start();
    let r = resolver(&[dns.addr()]);
    let targets = resolve(&r, "sip:svc@fo.test", Transport::Udp)
        .await
        .expect("four targets");
    assert_eq!(
        targets.iter().map(|t| t.addr.port()).collect::<Vec<_>>(),
        vec![down, silent_port, busy.port(), good.port()]
    );
    let ep = Endpoint::start(EndpointConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        ..EndpointConfig::default()
    })
    .await
    .expect("endpoint");
    let mut failover = r.failover(targets).expect("targets");
    let started = Instant::now();
    let sent = send_non_invite(
        &ep,
        &mut failover,
        |t| options("sip:svc@fo.test", t),
        Duration::from_secs(40),
    )
    .await;
    let Sent::Final(answered) = sent else {
        panic!("no final response: {sent:?}");
    };
    let Answered {
        request,
        response,
        target,
    } = *answered;
    assert_eq!(response.code(), Some(200));
    assert_eq!(target.addr.port(), good.port());
    assert_eq!(failover.tried(), 4);
    // Down (ICMP, well under a second), silent (the 500 ms limit), 503 (at once): far below
    // one transaction timeout (32 s).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The silent target did get the request, in a transaction of its own (another branch).
    silent
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let n = silent
        .recv(&mut buf)
        .expect("the silent target got the OPTIONS");
    let heard = Message::parse(&buf[..n]).expect("a SIP request");
    let branch = |m: &Message| m.top_via().and_then(|v| v.branch().map(str::to_owned));
    assert!(branch(&heard).is_some());
    assert_ne!(branch(&heard), branch(&request));
    busy.assert_passed(Duration::from_secs(10));
    good.assert_passed(Duration::from_secs(10));
}
