//! The leg's state machine driven with made-up messages and a virtual clock: what it sends,
//! in which order, with which CSeq, and what it tells the driver.

use super::core::{Action, Dest, LegCore, LegEvent, ReqId, BYE_WAIT, CANCEL_WAIT};
use super::outcome::{LegFailure, ReferFailure};
use super::{LegSetup, ReferDone};
use crate::digest::Credentials;
use crate::endpoint::{ClientEvent, Incoming, TransportError};
use crate::message::{Message, Method};
use crate::resolve::{Target, Transport};
use crate::transaction::TxKey;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod failover;

fn setup() -> LegSetup {
    LegSetup {
        call_id: "c1@pbx".into(),
        from: "<sip:alice@pbx>;tag=t1".into(),
        request_uri: "sip:200@pbx".into(),
        contact_user: "alice".into(),
        first_hop: None,
        route: None,
        transport: Transport::Udp,
        credentials: Credentials {
            username: "alice".into(),
            password: "secret".into(),
            realm: None,
        },
        headers: vec![("Subject".into(), "test".into())],
        ring_timeout: Duration::from_secs(60),
        notify_timeout: Duration::from_secs(25),
        prack: true,
        user_agent: None,
        failover_silence: None,
    }
}

fn target(port: u16) -> (Target, SocketAddr) {
    (
        Target {
            transport: Transport::Udp,
            addr: SocketAddr::from(([127, 0, 0, 2], port)),
        },
        SocketAddr::from(([127, 0, 0, 1], 5060)),
    )
}

/// A leg, a clock, and what the transport saw.
struct Bench {
    core: LegCore,
    t0: Instant,
    branch: u32,
}

impl Bench {
    fn new() -> Bench {
        Bench::with(setup(), vec![target(5070), target(5071)])
    }

    fn with(setup: LegSetup, targets: Vec<(Target, SocketAddr)>) -> Bench {
        let t0 = Instant::now();
        Bench {
            core: LegCore::new(setup, targets, t0),
            t0,
            branch: 0,
        }
    }

    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }

    /// The next action; a sent request gets a Via (as the transport adds it) and is reported
    /// sent.
    fn action(&mut self) -> Option<Action> {
        let a = self.core.pop_action()?;
        if let Action::Send { id, msg, dest } = a {
            let mut sent = msg;
            if sent.header("Via").is_none() {
                self.branch += 1;
                sent.push_front(
                    "Via",
                    format!(
                        "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKt{};rport",
                        self.branch
                    ),
                );
            }
            self.core.on_sent(id, sent.clone());
            return Some(Action::Send {
                id,
                msg: sent,
                dest,
            });
        }
        Some(a)
    }

    /// The next action, which must be a new request: its id and the request as sent.
    fn sent(&mut self) -> (ReqId, Message) {
        match self.action() {
            Some(Action::Send { id, msg, .. }) => (id, msg),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    /// The next action, which must be a message without transaction.
    fn resent(&mut self) -> (Message, Dest) {
        match self.action() {
            Some(Action::Resend { msg, dest }) => (msg, dest),
            other => panic!("expected a stateless message, got {other:?}"),
        }
    }

    fn respond(&mut self) -> Message {
        match self.action() {
            Some(Action::Respond { msg, .. }) => msg,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    fn events(&mut self) -> Vec<LegEvent> {
        std::iter::from_fn(|| self.core.pop_event()).collect()
    }

    fn reply(&mut self, id: ReqId, resp: Message, secs: u64) {
        let now = self.at(secs);
        self.core.on_client(id, ClientEvent::Response(resp), now);
    }

    fn incoming(&mut self, msg: Message, secs: u64) {
        let key = TxKey {
            branch: format!("in{}", msg.cseq().map(|c| c.seq).unwrap_or(0)),
            method: msg.method().unwrap_or(Method::Options),
            client: false,
        };
        let now = self.at(secs);
        self.core.on_incoming(Incoming::Request { key, msg }, now);
    }

    fn nothing_sent(&mut self) {
        let a = self.core.pop_action();
        assert!(a.is_none(), "unexpected {a:?}");
    }
}

/// A response of the callee (To tag `bb`, Contact at 10.0.0.9).
fn answer(req: &Message, code: u16, reason: &str, extra: &[(&str, &str)]) -> Message {
    let mut r = Message::response_to(req, code, reason, Some("bb"));
    if code > 100 && code < 300 {
        r.push("Contact", "<sip:200@10.0.0.9:5062>");
    }
    for (n, v) in extra {
        r.push(n, *v);
    }
    r
}

/// A request of the callee in the dialog.
fn from_callee(method: &str, seq: u32, extra: &[(&str, &str)], body: &str) -> Message {
    let mut m = Message::parse(
        format!(
            "{method} sip:alice@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5062;branch=z9hG4bKc{seq}\r\n\
             From: <sip:200@pbx>;tag=bb\r\nTo: <sip:200@pbx>;tag=t1\r\nCall-ID: c1@pbx\r\n\
             CSeq: {seq} {method}\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("request");
    // To is our From (we are the callee's peer).
    m.set("To", "<sip:alice@pbx>;tag=t1");
    for (n, v) in extra {
        m.push(n, *v);
    }
    if !body.is_empty() {
        m.set_body("message/sipfrag", body.as_bytes().to_vec());
    }
    m
}

fn seq(m: &Message) -> u32 {
    m.cseq().map(|c| c.seq).unwrap_or(0)
}

/// INVITE → 180 → 200: ACKed, answered.
fn answered(b: &mut Bench) -> (ReqId, Message) {
    let (id, invite) = b.sent();
    b.reply(id, answer(&invite, 180, "Ringing", &[]), 1);
    b.reply(id, answer(&invite, 200, "OK", &[]), 2);
    let (ack, _) = b.resent();
    assert_eq!(ack.method(), Some(Method::Ack));
    assert_eq!(
        b.events(),
        vec![
            LegEvent::Progress {
                code: 180,
                reason: "Ringing".into()
            },
            LegEvent::Answered
        ]
    );
    (id, invite)
}

#[test]
fn invite_offers_100rel_and_acks_every_2xx() {
    let mut b = Bench::new();
    assert!(
        !b.core.placed(),
        "placed once the transport took the INVITE"
    );
    let (id, invite) = b.sent();
    assert!(b.core.placed());
    assert_eq!(invite.header("Supported"), Some("replaces, 100rel"));
    assert_eq!(invite.header("Subject"), Some("test"));
    assert_eq!(invite.header("Contact"), Some("<sip:alice@127.0.0.1:5060>"));
    assert_eq!(invite.header("Content-Type"), Some("application/sdp"));
    b.reply(id, answer(&invite, 100, "Trying", &[]), 0);
    assert!(b.events().is_empty(), "100 Trying is not reported");
    b.reply(id, answer(&invite, 180, "Ringing", &[]), 1);
    b.reply(id, answer(&invite, 200, "OK", &[]), 2);
    let (ack, dest) = b.resent();
    assert_eq!((ack.method(), seq(&ack)), (Some(Method::Ack), 1));
    assert_eq!(ack.request_uri(), Some("sip:200@10.0.0.9:5062"));
    assert!(matches!(dest, Dest::Hop { uri, .. } if uri.host == "10.0.0.9"));
    assert_eq!(b.events().last(), Some(&LegEvent::Answered));
    // The 2xx again (our ACK was lost): ACKed again, nothing reported.
    b.reply(id, answer(&invite, 200, "OK", &[]), 3);
    let (again, _) = b.resent();
    assert_eq!(again, ack);
    assert!(b.events().is_empty());
    // ... also when it comes as a stray response after the transaction ended.
    b.core.on_incoming(
        Incoming::StrayResponse(answer(&invite, 200, "OK", &[])),
        b.at(40),
    );
    assert_eq!(b.resent().0, ack);
}

#[test]
fn reliable_provisional_responses_get_one_prack_each_in_cseq_order() {
    let mut b = Bench::new();
    let (id, invite) = b.sent();
    let rel = |rseq: &'static str| [("Require", "100rel"), ("RSeq", rseq)];
    b.reply(id, answer(&invite, 183, "Session Progress", &rel("5")), 1);
    let (prack_id, prack) = b.sent();
    assert_eq!(prack.method(), Some(Method::Prack));
    assert_eq!(prack.header("RAck"), Some("5 1 INVITE"));
    assert_eq!(seq(&prack), 2, "PRACK is the early dialog's next request");
    assert_eq!(prack.request_uri(), Some("sip:200@10.0.0.9:5062"));
    assert!(prack.header("To").is_some_and(|t| t.contains("tag=bb")));
    assert_eq!(
        b.events(),
        vec![LegEvent::Progress {
            code: 183,
            reason: "Session Progress".into()
        }]
    );
    // The same reliable 183 again: our PRACK goes out again as it was, no new PRACK, no
    // second report.
    b.reply(id, answer(&invite, 183, "Session Progress", &rel("5")), 2);
    let (again, _) = b.resent();
    assert_eq!(again, prack, "same CSeq, same RAck, same branch");
    assert!(b.events().is_empty());
    // Once: a peer that answers every copy with the 183 again starts no ping-pong (the
    // transaction retransmits over UDP by itself).
    b.reply(id, answer(&invite, 183, "Session Progress", &rel("5")), 2);
    b.nothing_sent();
    // Once the PRACK is answered, a late repeat is ignored.
    b.reply(prack_id, Message::response_to(&prack, 200, "OK", None), 2);
    b.reply(id, answer(&invite, 183, "Session Progress", &rel("5")), 3);
    b.nothing_sent();
    // The next reliable response is acknowledged with the next CSeq; one out of order is not.
    b.reply(id, answer(&invite, 180, "Ringing", &rel("6")), 3);
    let (_, prack2) = b.sent();
    assert_eq!(
        (seq(&prack2), prack2.header("RAck")),
        (3, Some("6 1 INVITE"))
    );
    b.reply(id, answer(&invite, 180, "Ringing", &rel("8")), 3);
    b.nothing_sent();
    assert_eq!(b.events().len(), 1);
    // The dialog's next requests come after the PRACKs' CSeqs.
    b.reply(id, answer(&invite, 200, "OK", &[]), 4);
    let (ack, _) = b.resent();
    assert_eq!(seq(&ack), 1, "the ACK has the INVITE's CSeq");
    assert!(b.core.refer("sip:300@pbx"));
    let (_, refer) = b.sent();
    assert_eq!((refer.method(), seq(&refer)), (Some(Method::Refer), 4));
}

#[test]
fn prack_is_offered_only_when_configured() {
    let mut s = setup();
    s.prack = false;
    let mut b = Bench::with(s, vec![target(5070)]);
    let (_, invite) = b.sent();
    assert_eq!(invite.header("Supported"), Some("replaces"));
}

#[test]
fn a_challenge_is_answered_once_and_a_second_refusal_is_an_auth_failure() {
    let mut b = Bench::new();
    let (id, invite) = b.sent();
    let challenge = [(
        "Proxy-Authenticate",
        "Digest realm=\"pbx\", nonce=\"n1\", algorithm=MD5",
    )];
    b.reply(
        id,
        answer(&invite, 407, "Proxy Authentication Required", &challenge),
        1,
    );
    let (id2, invite2) = b.sent();
    assert_eq!(seq(&invite2), 2);
    assert!(invite2
        .header("Proxy-Authorization")
        .is_some_and(|a| a.contains("username=\"alice\"")));
    b.reply(
        id2,
        answer(&invite2, 407, "Proxy Authentication Required", &challenge),
        1,
    );
    let events = b.events();
    assert!(
        matches!(&events[..], [LegEvent::Failed(LegFailure::Auth { detail, .. })]
            if detail.contains("challenged again after answering (407")),
        "{events:?}"
    );
    b.nothing_sent();
}

#[test]
fn a_silent_target_makes_way_for_the_next_then_the_leg_is_unreachable() {
    let mut b = Bench::new();
    let (id, _) = b.sent();
    b.core.on_client(id, ClientEvent::Timeout, b.at(32));
    let (id2, invite2) = match b.action() {
        Some(Action::Send {
            id,
            msg,
            dest: Dest::Target(t),
        }) => {
            assert_eq!(t.addr.port(), 5071);
            (id, msg)
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(seq(&invite2), 2);
    let refused = TransportError::Unreachable {
        peer: SocketAddr::from(([127, 0, 0, 2], 5071)),
        reason: "port unreachable".into(),
    };
    b.core
        .on_client(id2, ClientEvent::TransportError(refused), b.at(33));
    let events = b.events();
    assert!(
        matches!(&events[..], [LegEvent::Failed(LegFailure::Unreachable(d))] if d.contains("127.0.0.2:5071")),
        "{events:?}"
    );
}

#[test]
fn after_a_challenge_the_new_invite_starts_afresh() {
    let mut b = Bench::new();
    let (id, invite) = b.sent();
    b.reply(id, answer(&invite, 100, "Trying", &[]), 0);
    let challenge = [("WWW-Authenticate", "Digest realm=\"pbx\", nonce=\"n1\"")];
    b.reply(id, answer(&invite, 401, "Unauthorized", &challenge), 0);
    let (id2, _) = b.sent();
    // Nothing answered the new INVITE (the 100 and 401 were the old one's): the next target is
    // tried.
    b.core.on_client(id2, ClientEvent::Timeout, b.at(33));
    match b.action() {
        Some(Action::Send {
            id,
            msg,
            dest: Dest::Target(t),
        }) => assert_eq!(
            (msg.method(), t.addr.port(), id != id2),
            (Some(Method::Invite), 5071, true)
        ),
        other => panic!("{other:?}"),
    }
    // No provisional response to this INVITE yet: no CANCEL before one comes.
    b.core.cancel(b.at(34));
    b.nothing_sent();
}

#[test]
fn the_ring_timeout_cancels_after_the_first_provisional_response() {
    let mut b = Bench::new();
    let (id, invite) = b.sent();
    assert_eq!(b.core.next_deadline(), Some(b.at(60)));
    b.core.on_timer(b.at(60));
    b.nothing_sent();
    b.reply(id, answer(&invite, 180, "Ringing", &[]), 61);
    let (_, cancel) = b.sent();
    assert_eq!(cancel.method(), Some(Method::Cancel));
    assert_eq!(seq(&cancel), 1);
    assert_eq!(
        cancel.header("Via"),
        invite.header("Via"),
        "the INVITE's branch"
    );
    assert!(b.events().is_empty(), "no progress while cancelling");
    b.reply(id, answer(&invite, 487, "Request Terminated", &[]), 62);
    assert_eq!(
        b.events(),
        vec![LegEvent::Failed(LegFailure::NoAnswer { secs: 60 })]
    );
}

#[test]
fn a_ring_timeout_with_nothing_ever_heard_is_unreachable_not_no_answer() {
    let mut short = setup();
    short.ring_timeout = Duration::from_secs(10);
    let mut b = Bench::with(short, vec![target(5070)]);
    let (id, _) = b.sent();
    b.core.on_timer(b.at(10));
    b.nothing_sent();
    assert!(b.events().is_empty(), "still waiting for a first answer");
    // Timer B: nothing ever answered the INVITE.
    b.core.on_client(id, ClientEvent::Timeout, b.at(32));
    let events = b.events();
    assert!(
        matches!(&events[..], [LegEvent::Failed(LegFailure::Unreachable(d))]
            if d.contains("127.0.0.2:5070") && d.contains("10 s")),
        "{events:?}"
    );
    // The same when the CANCEL wait ends first.
    let mut short = setup();
    short.ring_timeout = Duration::from_secs(10);
    let mut b = Bench::with(short, vec![target(5070)]);
    b.sent();
    b.core.on_timer(b.at(10));
    b.core.on_timer(b.at(10 + CANCEL_WAIT.as_secs()));
    let events = b.events();
    assert!(
        matches!(&events[..], [LegEvent::Failed(LegFailure::Unreachable(_))]),
        "{events:?}"
    );
}

#[test]
fn a_2xx_crossing_our_cancel_is_acked_and_hung_up() {
    let mut b = Bench::new();
    let (id, invite) = b.sent();
    b.reply(id, answer(&invite, 180, "Ringing", &[]), 1);
    b.events();
    b.core.cancel(b.at(2));
    let (_, cancel) = b.sent();
    assert_eq!(cancel.method(), Some(Method::Cancel));
    b.reply(id, answer(&invite, 200, "OK", &[]), 2);
    assert_eq!(b.resent().0.method(), Some(Method::Ack));
    assert_eq!(b.events(), vec![LegEvent::Cancelled]);
    b.core.hangup(b.at(3));
    let (bye_id, bye) = b.sent();
    assert_eq!((bye.method(), seq(&bye)), (Some(Method::Bye), 2));
    b.reply(bye_id, Message::response_to(&bye, 200, "OK", None), 3);
    assert_eq!(b.events(), vec![LegEvent::Released]);
}

#[test]
fn a_cancel_nothing_answers_gives_up_after_the_wait_and_a_late_2xx_is_ended() {
    let mut b = Bench::new();
    let (id, invite) = b.sent();
    b.core.cancel(b.at(1));
    b.nothing_sent();
    assert_eq!(b.core.next_deadline(), Some(b.at(1) + CANCEL_WAIT));
    b.core.on_timer(b.at(1) + CANCEL_WAIT);
    assert_eq!(b.events(), vec![LegEvent::Cancelled]);
    // The callee answers after all: ACK and BYE, nothing reported.
    b.reply(id, answer(&invite, 200, "OK", &[]), 40);
    assert_eq!(b.resent().0.method(), Some(Method::Ack));
    assert_eq!(b.sent().1.method(), Some(Method::Bye));
    assert!(b.events().is_empty());
}

#[test]
fn final_errors_fail_the_leg_with_their_status() {
    let mut b = Bench::new();
    let (id, invite) = b.sent();
    b.reply(id, answer(&invite, 486, "Busy Here", &[]), 1);
    assert_eq!(
        b.events(),
        vec![LegEvent::Failed(LegFailure::Status {
            code: 486,
            reason: "Busy Here".into()
        })]
    );
    b.core.hangup(b.at(2));
    b.nothing_sent();
    assert_eq!(b.events(), vec![LegEvent::Released], "nothing to release");
}

#[test]
fn the_peers_bye_ends_the_call_and_leaves_nothing_to_release() {
    let mut b = Bench::new();
    answered(&mut b);
    b.incoming(from_callee("BYE", 1, &[], ""), 5);
    assert_eq!(b.respond().code(), Some(200));
    assert_eq!(b.events(), vec![LegEvent::HungUp]);
    assert!(b.core.remote_gone());
    b.core.hangup(b.at(6));
    b.nothing_sent();
    assert_eq!(b.events(), vec![LegEvent::Released]);
}

#[test]
fn refer_follows_the_sipfrags_of_its_own_subscription() {
    let mut b = Bench::new();
    answered(&mut b);
    assert!(b.core.refer("sip:300@pbx"));
    let (refer_id, refer) = b.sent();
    assert_eq!(refer.header("Refer-To"), Some("<sip:300@pbx>"));
    assert_eq!(refer.header("Referred-By"), Some("<sip:alice@pbx>"));
    assert!(refer.header("Contact").is_some());
    b.reply(
        refer_id,
        Message::response_to(&refer, 202, "Accepted", None),
        3,
    );
    assert!(b.core.refer_accepted());
    assert_eq!(b.core.next_deadline(), Some(b.at(3 + 25)));
    b.incoming(
        from_callee(
            "NOTIFY",
            1,
            &[("Event", "refer"), ("Subscription-State", "active")],
            "SIP/2.0 180 Ringing",
        ),
        4,
    );
    assert_eq!(b.respond().code(), Some(200));
    // A NOTIFY of another REFER (id=1) is answered but does not count.
    b.incoming(
        from_callee(
            "NOTIFY",
            2,
            &[
                ("Event", "refer;id=1"),
                ("Subscription-State", "terminated"),
            ],
            "SIP/2.0 603 Declined",
        ),
        4,
    );
    assert_eq!(b.respond().code(), Some(200));
    b.incoming(
        from_callee(
            "NOTIFY",
            3,
            &[
                ("Event", "refer;id=2"),
                ("Subscription-State", "terminated"),
            ],
            "SIP/2.0 200 OK",
        ),
        5,
    );
    assert_eq!(b.respond().code(), Some(200));
    assert_eq!(
        b.events(),
        vec![
            LegEvent::ReferProgress {
                code: 180,
                reason: "Ringing".into()
            },
            LegEvent::ReferDone(Ok(ReferDone {
                without_reports: false
            }))
        ]
    );
    // An older CSeq is refused 500 (RFC 3261 §12.2.2).
    b.incoming(from_callee("INFO", 2, &[], ""), 6);
    assert_eq!(b.respond().code(), Some(500));
}

#[test]
fn a_challenged_refer_is_sent_again_and_a_silent_subscription_times_out() {
    let mut b = Bench::new();
    answered(&mut b);
    assert!(b.core.refer("sip:300@pbx"));
    let (refer_id, refer) = b.sent();
    let challenge = Message::response_to(&refer, 401, "Unauthorized", None);
    let mut challenge = challenge;
    challenge.push("WWW-Authenticate", "Digest realm=\"pbx\", nonce=\"n2\"");
    b.reply(refer_id, challenge, 3);
    let (again_id, again) = b.sent();
    assert_eq!(seq(&again), seq(&refer) + 1);
    assert!(again.header("Authorization").is_some());
    assert_eq!(again.header("Refer-To"), Some("<sip:300@pbx>"));
    b.reply(
        again_id,
        Message::response_to(&again, 202, "Accepted", None),
        4,
    );
    b.core.on_timer(b.at(4 + 24));
    assert!(b.events().is_empty());
    b.core.on_timer(b.at(4 + 25));
    assert_eq!(
        b.events(),
        vec![LegEvent::ReferDone(Err(ReferFailure::Timeout {
            secs: 25,
            last: "none".into()
        }))]
    );
}

#[test]
fn our_bye_waits_a_bounded_time_for_its_answer() {
    let mut b = Bench::new();
    answered(&mut b);
    b.core.hangup(b.at(10));
    let (_, bye) = b.sent();
    assert_eq!(bye.method(), Some(Method::Bye));
    // Requests meanwhile are still answered.
    b.incoming(from_callee("OPTIONS", 1, &[], ""), 11);
    assert_eq!(b.respond().code(), Some(200));
    b.core
        .on_timer(b.at(10) + BYE_WAIT - Duration::from_millis(1));
    assert!(b.events().is_empty());
    b.core.on_timer(b.at(10) + BYE_WAIT);
    assert_eq!(b.events(), vec![LegEvent::Released]);
    assert!(b.core.dialog().is_none());
}

#[test]
fn a_first_invite_that_cannot_be_sent_means_the_call_never_existed() {
    let t0 = Instant::now();
    let mut core = LegCore::new(setup(), vec![target(5070)], t0);
    let Some(Action::Send { id, .. }) = core.pop_action() else {
        panic!("an INVITE");
    };
    core.on_send_failed(id, "no route".into(), t0);
    assert!(!core.placed());
    assert_eq!(
        core.pop_event(),
        Some(LegEvent::Failed(LegFailure::Unreachable("no route".into())))
    );
}

#[test]
fn a_stopped_endpoint_ends_the_leg() {
    let mut b = Bench::new();
    answered(&mut b);
    b.core.on_endpoint_gone();
    assert_eq!(b.events(), vec![LegEvent::Stopped]);
    assert!(!b.core.refer("sip:300@pbx"));
}
