//! Unit tests of the transaction layer, on a virtual clock.
use super::*;

fn req(method: &str, branch: &str) -> Message {
    let text = format!(
        "{method} sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
         From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c1\r\n\
         CSeq: 1 {method}\r\nMax-Forwards: 70\r\n\r\n"
    );
    Message::parse(text.as_bytes()).expect("test request parses")
}

fn drain(layer: &mut TransactionLayer<u8>) -> Vec<LayerEvent<u8>> {
    std::iter::from_fn(|| layer.pop_event()).collect()
}

fn transmits(events: &[LayerEvent<u8>]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, LayerEvent::Transmit { .. }))
        .count()
}

#[test]
fn invite_client_timer_a_doubles_and_b_times_out() {
    let t = Timers::default();
    let mut layer = TransactionLayer::new(t, 10);
    let t0 = Instant::now();
    layer
        .send_request(&req("INVITE", "z9hG4bKa"), 1, false, t0)
        .expect("starts");
    assert_eq!(transmits(&drain(&mut layer)), 1);
    // Retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; Timer B at 32 s.
    let mut sends = 0;
    let mut timeout = false;
    for ms in (0..=33_000).step_by(100) {
        layer.on_timer(t0 + Duration::from_millis(ms));
        for e in drain(&mut layer) {
            match e {
                LayerEvent::Transmit { .. } => sends += 1,
                LayerEvent::Timeout { .. } => timeout = true,
                _ => {}
            }
        }
    }
    assert_eq!(sends, 6);
    assert!(timeout);
    assert!(layer.is_empty());
}

#[test]
fn invite_client_acks_error_and_absorbs_retransmission() {
    let mut layer = TransactionLayer::new(Timers::default(), 10);
    let t0 = Instant::now();
    let invite = req("INVITE", "z9hG4bKb");
    layer.send_request(&invite, 1, false, t0).expect("starts");
    drain(&mut layer);
    let busy = Message::response_to(&invite, 486, "Busy Here", Some("tt"));
    layer.on_message(busy.clone(), 1, false, t0);
    let ev = drain(&mut layer);
    assert!(ev
        .iter()
        .any(|e| matches!(e, LayerEvent::Response { msg, .. } if msg.code() == Some(486))));
    let ack = ev.iter().find_map(|e| match e {
        LayerEvent::Transmit { bytes, .. } => Message::parse(bytes).ok(),
        _ => None,
    });
    let ack = ack.expect("ACK sent");
    assert_eq!(ack.method(), Some(Method::Ack));
    assert_eq!(
        ack.to().and_then(|t| t.tag().map(str::to_owned)),
        Some("tt".into())
    );
    layer.on_message(busy, 1, false, t0 + Duration::from_secs(1));
    let ev = drain(&mut layer);
    assert_eq!(
        transmits(&ev),
        1,
        "ACK resent, response not delivered twice"
    );
    assert!(!ev.iter().any(|e| matches!(e, LayerEvent::Response { .. })));
    layer.on_timer(t0 + Duration::from_secs(33)); // Timer D
    assert!(layer.is_empty());
}

#[test]
fn non_invite_client_e_caps_at_t2_and_k_ends() {
    let t = Timers::default();
    let mut layer = TransactionLayer::new(t, 10);
    let t0 = Instant::now();
    let bye = req("BYE", "z9hG4bKc");
    layer.send_request(&bye, 1, false, t0).expect("starts");
    drain(&mut layer);
    let mut sends = 0;
    for ms in (0..=10_000).step_by(50) {
        layer.on_timer(t0 + Duration::from_millis(ms));
        sends += transmits(&drain(&mut layer));
    }
    // 0.5, 1.5, 3.5, 7.5 (then every 4 s): 4 retransmissions in 10 s.
    assert_eq!(sends, 4);
    layer.on_message(
        Message::response_to(&bye, 200, "OK", Some("x")),
        1,
        false,
        t0 + Duration::from_secs(10),
    );
    assert!(drain(&mut layer)
        .iter()
        .any(|e| matches!(e, LayerEvent::Response { .. })));
    assert_eq!(layer.len(), 1);
    layer.on_timer(t0 + Duration::from_secs(16)); // Timer K = T4
    assert!(layer.is_empty());
}

#[test]
fn non_invite_client_timer_f() {
    let mut layer = TransactionLayer::new(Timers::default(), 10);
    let t0 = Instant::now();
    layer
        .send_request(&req("REFER", "z9hG4bKd"), 1, true, t0)
        .expect("starts");
    drain(&mut layer);
    layer.on_timer(t0 + Duration::from_secs(31));
    assert!(drain(&mut layer).is_empty(), "no retransmission over TCP");
    layer.on_timer(t0 + Duration::from_secs(32));
    assert!(drain(&mut layer)
        .iter()
        .any(|e| matches!(e, LayerEvent::Timeout { .. })));
    assert!(layer.is_empty());
}

#[test]
fn non_invite_server_absorbs_and_replays_then_j_ends() {
    let mut layer = TransactionLayer::new(Timers::default(), 10);
    let t0 = Instant::now();
    let notify = req("NOTIFY", "z9hG4bKe");
    layer.on_message(notify.clone(), 7, false, t0);
    let ev = drain(&mut layer);
    let key = ev
        .iter()
        .find_map(|e| match e {
            LayerEvent::Request { key, .. } => Some(key.clone()),
            _ => None,
        })
        .expect("delivered");
    layer.on_message(notify.clone(), 7, false, t0);
    assert!(
        drain(&mut layer).is_empty(),
        "retransmission in Trying absorbed"
    );
    layer
        .respond(
            &key,
            Message::response_to(&notify, 200, "OK", Some("z")),
            t0,
        )
        .expect("responds");
    assert_eq!(transmits(&drain(&mut layer)), 1);
    layer.on_message(notify, 7, false, t0 + Duration::from_secs(1));
    assert_eq!(transmits(&drain(&mut layer)), 1, "200 replayed");
    layer.on_timer(t0 + Duration::from_secs(32)); // Timer J = 64*T1
    assert!(layer.is_empty());
}

#[test]
fn invite_server_g_h_and_ack() {
    let mut layer = TransactionLayer::new(Timers::default(), 10);
    let t0 = Instant::now();
    let invite = req("INVITE", "z9hG4bKf");
    layer.on_message(invite.clone(), 3, false, t0);
    let ev = drain(&mut layer);
    assert_eq!(transmits(&ev), 1, "100 Trying at once");
    let key = TxKey::of(&invite, false).expect("key");
    layer
        .respond(
            &key,
            Message::response_to(&invite, 480, "Temporarily Unavailable", Some("q")),
            t0,
        )
        .expect("ok");
    drain(&mut layer);
    layer.on_timer(t0 + Duration::from_millis(500)); // Timer G
    assert_eq!(transmits(&drain(&mut layer)), 1);
    let mut ack = req("ACK", "z9hG4bKf");
    ack.set("CSeq", "1 ACK");
    layer.on_message(ack, 3, false, t0 + Duration::from_millis(600));
    assert_eq!(layer.state(&key), Some(TxState::Confirmed));
    layer.on_timer(t0 + Duration::from_secs(6)); // Timer I
    assert!(layer.is_empty());

    // Without the ACK, Timer H ends it with a timeout.
    let invite2 = req("INVITE", "z9hG4bKg");
    layer.on_message(invite2.clone(), 3, false, t0);
    let key2 = TxKey::of(&invite2, false).expect("key");
    layer
        .respond(
            &key2,
            Message::response_to(&invite2, 486, "Busy Here", Some("q")),
            t0,
        )
        .expect("ok");
    drain(&mut layer);
    layer.on_timer(t0 + Duration::from_secs(40));
    assert!(drain(&mut layer)
        .iter()
        .any(|e| matches!(e, LayerEvent::Timeout { .. })));
    assert!(layer.is_empty());
}

#[test]
fn unanswered_server_transaction_answers_500_and_ends() {
    let mut layer = TransactionLayer::new(Timers::default(), 10);
    let t0 = Instant::now();
    layer.on_message(req("OPTIONS", "z9hG4bKh"), 3, false, t0);
    drain(&mut layer);
    layer.on_timer(t0 + Duration::from_secs(33));
    let ev = drain(&mut layer);
    let sent = ev.iter().find_map(|e| match e {
        LayerEvent::Transmit { bytes, .. } => Message::parse(bytes).ok(),
        _ => None,
    });
    assert_eq!(sent.and_then(|m| m.code()), Some(500));
    layer.on_timer(t0 + Duration::from_secs(70));
    assert!(layer.is_empty());
}

#[test]
fn accepted_invite_passes_2xx_retransmissions_on_and_ends_with_timer_m() {
    let mut layer = TransactionLayer::new(Timers::default(), 10);
    let t0 = Instant::now();
    let invite = req("INVITE", "z9hG4bKm");
    layer.send_request(&invite, 1, false, t0).expect("starts");
    drain(&mut layer);
    let ok = Message::response_to(&invite, 200, "OK", Some("tt"));
    layer.on_message(ok.clone(), 1, false, t0);
    assert!(drain(&mut layer)
        .iter()
        .any(|e| matches!(e, LayerEvent::Response { .. })));
    layer.on_message(ok, 1, false, t0 + Duration::from_secs(1));
    let ev = drain(&mut layer);
    assert!(
        ev.iter()
            .any(|e| matches!(e, LayerEvent::StrayResponse { .. })),
        "2xx retransmission reaches the user"
    );
    assert_eq!(transmits(&ev), 0, "the layer does not ACK a 2xx itself");
    assert_eq!(layer.len(), 1);
    layer.on_timer(t0 + Duration::from_secs(33)); // Timer M = 64*T1
    assert!(layer.is_empty());
}

#[test]
fn completed_client_absorbs_late_responses() {
    let mut layer = TransactionLayer::new(Timers::default(), 10);
    let t0 = Instant::now();
    let refer = req("REFER", "z9hG4bKn");
    layer.send_request(&refer, 1, false, t0).expect("starts");
    drain(&mut layer);
    let accepted = Message::response_to(&refer, 202, "Accepted", Some("x"));
    layer.on_message(accepted.clone(), 1, false, t0);
    assert_eq!(drain(&mut layer).len(), 1);
    layer.on_message(accepted, 1, false, t0 + Duration::from_secs(1));
    assert!(drain(&mut layer).is_empty(), "retransmitted 202 absorbed");
    layer.on_timer(t0 + Duration::from_secs(6)); // Timer K = T4
    assert!(layer.is_empty());
}

#[test]
fn overload_answers_503() {
    let mut layer = TransactionLayer::new(Timers::default(), 1);
    let t0 = Instant::now();
    layer.on_message(req("OPTIONS", "z9hG4bKi"), 3, false, t0);
    layer.on_message(req("OPTIONS", "z9hG4bKj"), 3, false, t0);
    assert_eq!(layer.len(), 1);
    assert_eq!(layer.stats().overload_rejections, 1);
}

#[test]
fn server_bound_answers_503_with_retry_after_and_creates_nothing() {
    let limits = Limits {
        max_server: 3,
        ..Limits::default()
    };
    let mut layer = TransactionLayer::with_limits(Timers::default(), limits);
    let t0 = Instant::now();
    for i in 0..10 {
        layer.on_message(req("INVITE", &format!("z9hG4bKb{i}")), 3, false, t0);
    }
    assert_eq!(layer.servers(), 3);
    assert_eq!(layer.len(), 3);
    let busy: Vec<Message> = drain(&mut layer)
        .into_iter()
        .filter_map(|e| match e {
            LayerEvent::Transmit { bytes, .. } => Message::parse(&bytes).ok(),
            _ => None,
        })
        .filter(|m| m.code() == Some(503))
        .collect();
    assert_eq!(busy.len(), 7);
    assert!(busy.iter().all(|m| m.header("Retry-After") == Some("5")));
    // Our own requests still go out while the server side is full.
    assert!(layer
        .send_request(&req("OPTIONS", "z9hG4bKown"), 1, false, t0)
        .is_ok());
}

#[test]
fn linger_store_is_capped_and_memory_given_back_after_a_flood() {
    let limits = Limits {
        max_lingering: 100,
        ..Limits::default()
    };
    let mut layer = TransactionLayer::with_limits(Timers::default(), limits);
    let t0 = Instant::now();
    // 5,000 distinct OPTIONS, each answered at once: they linger for Timer J.
    for i in 0..5000 {
        let r = req("OPTIONS", &format!("z9hG4bKf{i}"));
        layer.on_message(r.clone(), 3, false, t0);
        let key = TxKey::of(&r, false).expect("key");
        layer
            .respond(&key, Message::response_to(&r, 200, "OK", Some("t")), t0)
            .expect("answered");
        drain(&mut layer);
    }
    assert!(layer.len() <= 100, "lingering: {}", layer.len());
    assert_eq!(layer.stats().early_forgotten, 4900);
    assert_eq!(layer.servers(), 0);
    layer.on_timer(t0 + Duration::from_secs(40));
    assert!(layer.is_empty());
    assert!(
        layer.capacity() < 2048,
        "capacity kept: {}",
        layer.capacity()
    );
}

#[test]
fn transport_failure_ends_unanswered_client_transactions_to_that_peer_only() {
    let mut layer = TransactionLayer::new(Timers::default(), 10);
    let t0 = Instant::now();
    let a = layer
        .send_request(&req("INVITE", "z9hG4bKu1"), 7, false, t0)
        .expect("starts");
    let _b = layer
        .send_request(&req("OPTIONS", "z9hG4bKu2"), 8, false, t0)
        .expect("starts");
    drain(&mut layer);
    assert_eq!(layer.transport_failed(&7), vec![a]);
    assert_eq!(layer.len(), 1);
    assert_eq!(layer.stats().transport_failures, 1);
    assert!(layer.transport_failed(&7).is_empty());
}

#[test]
fn bare_magic_cookie_falls_back_to_the_rfc_2543_key() {
    let a = TxKey::of(&req("OPTIONS", "z9hG4bK"), false).expect("key");
    assert!(a.branch.starts_with("legacy|"), "{}", a.branch);
}
