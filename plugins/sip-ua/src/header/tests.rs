//! Unit tests of the header parsers, including the shapes the RFC 4475 torture messages use.

use super::*;

#[test]
fn parses_uris() {
    let u = Uri::parse("sip:+49*30#1@[::1]:5070;transport=tcp;lr?Replaces=x").expect("uri");
    assert_eq!(u.user.as_deref(), Some("+49*30#1"));
    assert_eq!(u.host, "[::1]");
    assert_eq!(u.port, Some(5070));
    assert_eq!(u.transport().as_deref(), Some("tcp"));
    assert!(u.params.has("lr"));
    assert_eq!(
        u.to_string(),
        "sip:+49*30#1@[::1]:5070;transport=tcp;lr?Replaces=x"
    );
    assert!(Uri::parse("tel:+123").is_none());
    assert!(Uri::parse("sip:@").is_none());
    assert!(Uri::parse("sip:host:99999").is_none());
    assert!(Uri::parse("sip:host:+5060").is_none());
    assert!(
        Uri::parse("sip:user@2001:db8::10").is_none(),
        "RFC 5118 §4.2"
    );
    assert!(Uri::parse("sip:user@example.com; lr").is_none());
}

#[test]
fn question_mark_in_the_user_part_is_not_the_start_of_headers() {
    // RFC 4475 §3.1.1.2 (intmeth).
    let u = Uri::parse(
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
    )
    .expect("uri");
    assert_eq!(
        u.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(u.host, "example.com");
    assert_eq!(u.headers, None);
    let semi = Uri::parse("sip:user;par=u%40example.net@example.com").expect("semiuri");
    assert_eq!(semi.user.as_deref(), Some("user;par=u%40example.net"));
    assert!(semi.params.0.is_empty());
    let esc = Uri::parse("sip:user@example.com?Route=%3Csip:example.com%3E").expect("headers");
    assert_eq!(esc.headers.as_deref(), Some("Route=%3Csip:example.com%3E"));
}

#[test]
fn parses_name_addr_and_via() {
    let n = NameAddr::parse("\"A; b\" <sip:a@b;lr>;tag=99").expect("na");
    assert_eq!(n.display.as_deref(), Some("A; b"));
    assert_eq!(n.uri, "sip:a@b;lr");
    assert_eq!(n.tag(), Some("99"));
    let spec = NameAddr::parse("sip:a@b;tag=1").expect("spec");
    assert_eq!((spec.uri.as_str(), spec.tag()), ("sip:a@b", Some("1")));
    let v = Via::parse("SIP/2.0/udp 1.2.3.4:5060;branch=z9hG4bKx;rport").expect("via");
    assert_eq!(v.transport, "UDP");
    assert_eq!(v.branch(), Some("z9hG4bKx"));
    assert_eq!(v.params.get("rport"), Some(""));
    assert!(Via::parse("SIP/3.0/UDP h").is_none());
    assert_eq!(CSeq::parse("7 REFER").map(|c| c.seq), Some(7));
    assert!(CSeq::parse("x REFER").is_none());
    assert!(CSeq::parse("+7 REFER").is_none());
    assert!(CSeq::parse("36893488147419103232 REGISTER").is_none());
}

#[test]
fn tortuous_shapes_of_wsinv_are_read() {
    // Folding already undone, as the message parser hands values over.
    let to = NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
        .expect("addr-spec with LWS before ;");
    assert_eq!(to.uri, "sip:vivekg@chair-dnrc.example.com");
    assert_eq!(to.tag(), Some("1918181833n"));
    let from =
        NameAddr::parse(r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#)
            .expect("escaped quotes in the display name");
    assert_eq!(from.display.as_deref(), Some(r#"J Rosenberg \""#));
    assert_eq!(from.tag(), Some("98asjd8"));
    let m = NameAddr::parse(
        r#""Quoted string \"\"" <sip:jdrosen@example.com> ; newparam = newvalue ; secondparam ; q = 0.33"#,
    )
    .expect("contact");
    assert_eq!(m.param("q"), Some("0.33"));
    assert!(m.params.has("secondparam"));
    let via = Via::parse("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw").expect("LWS around /");
    assert_eq!(
        (via.host.as_str(), via.branch()),
        ("192.0.2.2", Some("390skdjuw"))
    );
    let v2 = Via::parse("SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8")
        .expect("LWS around ; and =");
    assert_eq!(v2.transport, "TCP");
    assert_eq!(v2.branch(), Some("z9hG4bK9ikj8"));
    let lws = NameAddr::parse("caller<sip:caller@example.com>;tag=323").expect("lwsdisp");
    assert_eq!(lws.display.as_deref(), Some("caller"));
    // A display name with quoted control characters (intmeth).
    let ctl = NameAddr::parse("\"BEL:\\\u{7} NUL:\\\u{0} DEL:\\\u{7f}\" <sip:x@example.com>")
        .expect("quoted-pairs of control characters");
    assert_eq!(
        ctl.display.as_deref(),
        Some("BEL:\u{7} NUL:\u{0} DEL:\u{7f}")
    );
    // Display formatting escapes what unquoting removed.
    assert_eq!(
        NameAddr::parse(&from.to_string()).and_then(|n| n.display),
        from.display
    );
}

#[test]
fn malformed_name_addrs_are_refused() {
    assert!(
        NameAddr::parse("\"Mr. J. User <sip:j.user@example.com>").is_none(),
        "quotbal"
    );
    assert!(NameAddr::parse("\"Watson, Thomas\" < sip:t.watson@example.org >").is_none());
    assert!(NameAddr::parse("Watson, Thomas <sip:t.watson@example.org>").is_none());
    assert!(
        NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_none(),
        "regbadct"
    );
    assert!(
        NameAddr::parse("\"Joe\" <sip:joe@example.org>;;;;").is_none(),
        "badinv01"
    );
    assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_none());
    assert!(NameAddr::parse("sip:user@example.com <sip:user@example.com>").is_none());
}

/// Values the readers must agree on: well formed, tortuous and malformed ones.
const SAMPLES: &[&str] = &[
    "\"A; b\" <sip:a@b;lr>;tag=99",
    "sip:a@b;tag=1",
    "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
    r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
    "caller<sip:caller@example.com>;tag=323",
    "\"Mr. J. User <sip:j.user@example.com>",
    "\"Watson, Thomas\" < sip:t.watson@example.org >",
    "Watson, Thomas <sip:t.watson@example.org>",
    "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
    "\"Joe\" <sip:joe@example.org>;;;;",
    "sip:user@example.com <sip:user@example.com>",
    "<sip:x@y>;a=\"open",
    "<sip:x@y>;a=b c",
    "SIP/2.0/udp 1.2.3.4:5060;branch=z9hG4bKx;rport",
    "SIP/3.0/UDP h",
    "SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw",
    "SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8",
    "SIP/2.0/UDP 192.0.2.15;;",
    "SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bKv6;received=\"x\"",
    "SIP/2.0/UDP host:99999;branch=z9hG4bKp",
    "SIP/2.0/UDP host;branch",
    "",
    ";",
];

#[test]
fn the_borrowed_readers_agree_with_the_parsers() {
    for s in SAMPLES {
        assert_eq!(
            NameAddr::valid(s),
            NameAddr::parse(s).is_some(),
            "name-addr {s:?}"
        );
        let (owned, borrowed) = (Via::parse(s), ViaRef::parse(s));
        assert_eq!(owned.is_some(), borrowed.is_some(), "via {s:?}");
        if let (Some(o), Some(b)) = (owned, borrowed) {
            assert_eq!(o.transport, b.transport.to_ascii_uppercase(), "{s:?}");
            assert_eq!((o.host.as_str(), o.port), (b.host, b.port), "{s:?}");
            assert_eq!(o.branch(), b.branch(), "{s:?}");
            for name in ["branch", "BRANCH", "rport", "received", "ttl"] {
                assert_eq!(o.params.get(name), b.param(name), "{s:?} {name}");
            }
        }
        let params = s.find(';').map_or("", |i| &s[i..]);
        assert_eq!(
            Params::valid_header(params),
            Params::parse_header(params).is_some(),
            "params {params:?}"
        );
    }
}
