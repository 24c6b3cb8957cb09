//! The leg's RFC 3263 §4.3 failover with a virtual clock: a 503 or a silent target sends the
//! INVITE to the next target as a new transaction (new branch, CSeq + 1), a target that sent
//! anything is not left for silence, and a 2xx from a target we left is ACKed and hung up.

use super::*;

fn branch(m: &Message) -> String {
    m.header("Via")
        .and_then(|v| v.split("branch=").nth(1).map(str::to_owned))
        .unwrap_or_default()
}

/// The next action must be an INVITE to `port`: its id and the INVITE.
fn invite_to(b: &mut Bench, port: u16) -> (ReqId, Message) {
    match b.action() {
        Some(Action::Send {
            id,
            msg,
            dest: Dest::Target(t),
        }) if msg.method() == Some(Method::Invite) => {
            assert_eq!(t.addr.port(), port, "INVITE to the wrong target");
            (id, msg)
        }
        other => panic!("expected an INVITE to port {port}, got {other:?}"),
    }
}

fn silent_after(secs: u64) -> LegSetup {
    LegSetup {
        failover_silence: Some(Duration::from_secs(secs)),
        ..setup()
    }
}

#[test]
fn a_503_sends_the_invite_to_the_next_target_as_a_new_transaction() {
    let mut b = Bench::new();
    let (id, invite) = invite_to(&mut b, 5070);
    b.reply(id, answer(&invite, 503, "Service Unavailable", &[]), 1);
    let (id2, invite2) = invite_to(&mut b, 5071);
    assert_eq!(seq(&invite2), seq(&invite) + 1);
    assert_ne!(branch(&invite2), branch(&invite));
    assert!(b.events().is_empty(), "the 503 is not the call's outcome");
    b.reply(id2, answer(&invite2, 200, "OK", &[]), 2);
    assert_eq!(b.resent().0.method(), Some(Method::Ack));
    assert_eq!(b.events(), vec![LegEvent::Answered]);
}

#[test]
fn a_503_of_the_last_target_is_the_outcome() {
    let mut b = Bench::with(setup(), vec![target(5070)]);
    let (id, invite) = invite_to(&mut b, 5070);
    b.reply(id, answer(&invite, 503, "Service Unavailable", &[]), 1);
    b.nothing_sent();
    let events = b.events();
    assert!(
        matches!(
            &events[..],
            [LegEvent::Failed(LegFailure::Status { code: 503, .. })]
        ),
        "{events:?}"
    );
}

#[test]
fn a_silent_target_is_left_after_the_silence_limit_and_its_late_2xx_is_ended() {
    let mut b = Bench::with(silent_after(4), vec![target(5070), target(5071)]);
    let (id, invite) = invite_to(&mut b, 5070);
    assert_eq!(b.core.next_deadline(), Some(b.at(4)));
    b.core.on_timer(b.at(3));
    b.nothing_sent();
    b.core.on_timer(b.at(4));
    let (id2, invite2) = invite_to(&mut b, 5071);
    assert_eq!(seq(&invite2), seq(&invite) + 1);
    // The last target is never left early: only the ring timeout is ahead.
    assert_eq!(b.core.next_deadline(), Some(b.at(60)));
    // The first target wakes up and answers: ACK and BYE, nothing reported.
    b.reply(id, answer(&invite, 200, "OK", &[]), 5);
    assert_eq!(b.resent().0.method(), Some(Method::Ack));
    assert_eq!(b.sent().1.method(), Some(Method::Bye));
    assert!(b.events().is_empty());
    b.reply(id2, answer(&invite2, 180, "Ringing", &[]), 6);
    b.reply(id2, answer(&invite2, 200, "OK", &[]), 7);
    assert_eq!(b.resent().0.method(), Some(Method::Ack));
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
}

#[test]
fn a_target_that_sent_100_trying_is_not_left_for_silence() {
    let mut b = Bench::with(silent_after(4), vec![target(5070), target(5071)]);
    let (id, invite) = invite_to(&mut b, 5070);
    b.reply(id, answer(&invite, 100, "Trying", &[]), 1);
    assert_eq!(b.core.next_deadline(), Some(b.at(60)));
    b.core.on_timer(b.at(10));
    b.nothing_sent();
    assert!(b.events().is_empty());
}
