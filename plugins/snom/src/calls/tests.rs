//! Tests of the call tracker: states, keys, reboots, missed calls, transfers, addresses.

use super::*;
use crate::action::Event;

fn line() -> LineKey {
    LineKey::new("L")
}

struct Counter(u64);
impl Ids for Counter {
    fn new_call(&mut self) -> CallId {
        self.0 += 1;
        CallId(100 + self.0)
    }
}

fn states(events: &[DriverEvent]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            DriverEvent::CallState { call, state, .. }
            | DriverEvent::NewCall { call, state, .. } => Some((call.0, describe(state))),
            _ => None,
        })
        .collect()
}

fn describe(state: &CallState) -> String {
    match state {
        CallState::Disconnected(mode) => format!("disconnected:{mode:?}"),
        other => other.name().to_owned(),
    }
}

fn s(pairs: &[(u64, &str)]) -> Vec<(u64, String)> {
    pairs.iter().map(|(c, n)| (*c, (*n).to_owned())).collect()
}

fn v(pairs: &[(&str, &str)]) -> Vars {
    Vars::from_pairs(pairs.iter().copied())
}

/// A call the host placed that the phone reported as outgoing under CSTA id `csta`.
fn placed(t: &mut CallTracker, ids: &mut Counter, call: CallId, csta: &str) {
    t.start_make(&line(), call, AddressId(0), false);
    t.apply(&line(), ids, Event::Outgoing, &v(&[("csta", csta)]));
}

#[test]
fn outgoing_call_from_the_host() {
    let mut t = CallTracker::default();
    let mut ids = Counter(0);
    let ev = t.start_make(&line(), CallId(5), AddressId(0), false);
    assert_eq!(states(&ev), s(&[(5, "dialing")]));
    let (ev, _) = t.apply(
        &line(),
        &mut ids,
        Event::Outgoing,
        &v(&[("csta", "1"), ("remote", "sip:200@x")]),
    );
    assert_eq!(states(&ev), s(&[(5, "ringback")]));
    let (ev, _) = t.apply(&line(), &mut ids, Event::Connected, &v(&[("csta", "1")]));
    assert_eq!(states(&ev), s(&[(5, "connected")]));
    let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "1")]));
    assert_eq!(states(&ev), s(&[(5, "disconnected:Normal")]));
    assert!(t.calls().is_empty(), "a Disconnected call holds nothing");
    // The quirks: a second disconnected, then onhook without data.
    let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "1")]));
    assert!(ev.is_empty());
    let (ev, _) = t.apply(&line(), &mut ids, Event::Onhook, &v(&[]));
    assert!(ev.is_empty());
}

#[test]
fn an_outgoing_call_that_never_connects_ends_unavailable() {
    let mut t = CallTracker::default();
    let mut ids = Counter(0);
    placed(&mut t, &mut ids, CallId(5), "1");
    let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "1")]));
    assert_eq!(states(&ev), s(&[(5, "disconnected:Unavailable")]));
}

#[test]
fn incoming_missed_and_two_calls_kept_apart() {
    let mut t = CallTracker::default();
    let mut ids = Counter(0);
    let (ev, _) = t.apply(
        &line(),
        &mut ids,
        Event::Incoming,
        &v(&[("csta", "a"), ("remote", "sip:300@x")]),
    );
    assert_eq!(states(&ev), s(&[(101, "offering")]));
    let (ev, _) = t.apply(
        &line(),
        &mut ids,
        Event::Incoming,
        &v(&[("csta", "b"), ("remote", "400")]),
    );
    assert_eq!(states(&ev), s(&[(102, "offering")]));
    let (ev, _) = t.apply(&line(), &mut ids, Event::Connected, &v(&[("csta", "b")]));
    assert_eq!(states(&ev), s(&[(102, "connected")]));
    // No key and two calls: ignored, never guessed.
    let (ev, _) = t.apply(&line(), &mut ids, Event::Hold, &v(&[]));
    assert!(ev.is_empty());
    // snom reports a call nobody answered as incoming → disconnected → missed: it is missed.
    let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "a")]));
    assert_eq!(states(&ev), s(&[(101, "disconnected:NoAnswer")]));
    let (ev, _) = t.apply(&line(), &mut ids, Event::Missed, &v(&[("csta", "a")]));
    assert!(ev.is_empty(), "missed after disconnected is swallowed");
    // Only one call left: an event without key applies to it.
    let (ev, _) = t.apply(&line(), &mut ids, Event::Hold, &v(&[]));
    assert_eq!(states(&ev), s(&[(102, "on_hold")]));
    let (ev, _) = t.apply(&line(), &mut ids, Event::Unhold, &v(&[("csta", "b")]));
    assert_eq!(states(&ev), s(&[(102, "connected")]));
    let info = t
        .get(CallId(102))
        .map(|c| c.info.calling.raw_number.clone());
    assert_eq!(info, Some(Some("400".into())));
    // An answered call that ends is a normal end.
    let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "b")]));
    assert_eq!(states(&ev), s(&[(102, "disconnected:Normal")]));
}

#[test]
fn address_state_and_reboot() {
    let mut t = CallTracker::default();
    let mut ids = Counter(0);
    let (ev, _) = t.apply(&line(), &mut ids, Event::DndOn, &v(&[]));
    assert_eq!(ev.len(), 1);
    let (ev, _) = t.apply(&line(), &mut ids, Event::DndOn, &v(&[]));
    assert!(ev.is_empty());
    let (ev, _) = t.apply(
        &line(),
        &mut ids,
        Event::RedirectionOn,
        &v(&[("fwd", "500")]),
    );
    assert_eq!(ev.len(), 1);
    assert_eq!(t.address().forwarding[0].destination, "500");
    t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "z")]));
    let (ev, news) = t.apply(&line(), &mut ids, Event::Setup, &v(&[]));
    assert_eq!(news, LineNews::Rebooted);
    assert_eq!(states(&ev), s(&[(101, "disconnected:Unknown")]));
    assert!(t.calls().is_empty());
}

#[test]
fn call_keys_reused_after_a_reboot_are_new_calls() {
    let mut t = CallTracker::default();
    let mut ids = Counter(0);
    let first = v(&[("csta", "1"), ("cid", "a@phone")]);
    t.apply(&line(), &mut ids, Event::Incoming, &first);
    t.apply(&line(), &mut ids, Event::Disconnected, &first);
    // The phone restarts: setup, log_on; its CSTA ids start at 1 again.
    t.apply(&line(), &mut ids, Event::Setup, &v(&[]));
    let (ev, _) = t.apply(
        &line(),
        &mut ids,
        Event::Incoming,
        &v(&[("csta", "1"), ("cid", "b@phone")]),
    );
    assert_eq!(states(&ev), s(&[(102, "offering")]));
    let (ev, _) = t.apply(
        &line(),
        &mut ids,
        Event::Disconnected,
        &v(&[("csta", "1"), ("cid", "b@phone")]),
    );
    assert_eq!(states(&ev), s(&[(102, "disconnected:NoAnswer")]));
    // The host places a call: the phone's next outgoing call binds to it, CSTA id 2 or 1.
    t.start_make(&line(), CallId(7), AddressId(0), false);
    let (ev, _) = t.apply(
        &line(),
        &mut ids,
        Event::Outgoing,
        &v(&[("csta", "1"), ("cid", "c@phone")]),
    );
    assert_eq!(states(&ev), s(&[(7, "ringback")]));
}

#[test]
fn a_new_call_id_under_a_known_csta_id_is_another_call() {
    let mut t = CallTracker::default();
    let mut ids = Counter(0);
    // No setup was heard (its Action URL was lost), but the Call-ID tells.
    let first = v(&[("csta", "1"), ("cid", "a@phone")]);
    t.apply(&line(), &mut ids, Event::Incoming, &first);
    t.apply(&line(), &mut ids, Event::Connected, &first);
    t.apply(&line(), &mut ids, Event::Disconnected, &first);
    t.start_make(&line(), CallId(9), AddressId(0), false);
    let (ev, _) = t.apply(
        &line(),
        &mut ids,
        Event::Outgoing,
        &v(&[("csta", "1"), ("cid", "z@phone")]),
    );
    assert_eq!(states(&ev), s(&[(9, "ringback")]));
    // A call still shown under that CSTA id with another Call-ID is stale: it ends.
    let (ev, _) = t.apply(
        &line(),
        &mut ids,
        Event::Incoming,
        &v(&[("csta", "1"), ("cid", "y@phone")]),
    );
    assert_eq!(
        states(&ev),
        s(&[(9, "disconnected:Unknown"), (102, "offering")])
    );
}

#[test]
fn log_on_forgets_ended_keys() {
    let mut t = CallTracker::default();
    let mut ids = Counter(0);
    // An event without Call-ID (uaCSTA events carry none): the CSTA id decides.
    t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "1")]));
    t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "1")]));
    let (ev, _) = t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "1")]));
    assert!(ev.is_empty(), "the same call's late event");
    let (_, news) = t.apply(&line(), &mut ids, Event::LogOn, &v(&[]));
    assert_eq!(news, LineNews::Registered);
    let (ev, _) = t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "1")]));
    assert_eq!(states(&ev), s(&[(102, "offering")]));
}

#[test]
fn snapshot_clears_only_missing_calls() {
    let mut t = CallTracker::default();
    let mut ids = Counter(0);
    t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "a")]));
    t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "b")]));
    let ev = t.retain_snapshot(&line(), &["b".to_owned()]);
    assert_eq!(states(&ev), s(&[(101, "disconnected:Unknown")]));
    assert_eq!(t.calls().len(), 1);
    let ev = t.retain_snapshot(&line(), &[]);
    assert_eq!(states(&ev), s(&[(102, "disconnected:Unknown")]));
}

#[test]
fn dropped_call_ends_idle_without_disconnected_and_a_failed_drop_does_not() {
    let mut t = CallTracker::default();
    let mut ids = Counter(0);
    t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "a")]));
    t.mark_dropping(CallId(101));
    let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "a")]));
    assert_eq!(states(&ev), s(&[(101, "idle")]));
    t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "b")]));
    t.apply(&line(), &mut ids, Event::Connected, &v(&[("csta", "b")]));
    t.mark_dropping(CallId(102));
    t.unmark_dropping(CallId(102));
    let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "b")]));
    assert_eq!(states(&ev), s(&[(102, "disconnected:Normal")]));
}

#[test]
fn a_transfer_on_the_phones_keys_ends_both_calls_like_an_api_transfer() {
    let mut t = CallTracker::default();
    let mut ids = Counter(0);
    t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "a")]));
    t.apply(&line(), &mut ids, Event::Connected, &v(&[("csta", "a")]));
    t.apply(&line(), &mut ids, Event::Hold, &v(&[("csta", "a")]));
    t.apply(&line(), &mut ids, Event::Outgoing, &v(&[("csta", "b")]));
    t.apply(&line(), &mut ids, Event::Connected, &v(&[("csta", "b")]));
    let (ev, _) = t.apply(
        &line(),
        &mut ids,
        Event::AttendedTransfer,
        &v(&[("csta", "a")]),
    );
    assert_eq!(states(&ev), s(&[(101, "idle"), (102, "idle")]));
    for csta in ["a", "b"] {
        let (ev, _) = t.apply(
            &line(),
            &mut ids,
            Event::Disconnected,
            &v(&[("csta", csta)]),
        );
        assert!(ev.is_empty());
    }
}

#[test]
fn calls_on_a_second_identity_carry_its_address() {
    let mut t = CallTracker::default();
    t.set_identities(&["sip:100@pbx".to_owned(), "sip:101@pbx".to_owned()]);
    let mut ids = Counter(0);
    let (ev, _) = t.apply(
        &line(),
        &mut ids,
        Event::Incoming,
        &v(&[("csta", "a"), ("local", "101@pbx"), ("user", "101")]),
    );
    let DriverEvent::NewCall { info, .. } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(info.address, AddressId(1));
    let (ev, _) = t.apply(
        &line(),
        &mut ids,
        Event::Outgoing,
        &v(&[("csta", "b"), ("user", "101")]),
    );
    let DriverEvent::NewCall { info, .. } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(info.address, AddressId(1));
    let (ev, _) = t.apply(
        &line(),
        &mut ids,
        Event::Incoming,
        &v(&[("csta", "c"), ("local", "100@pbx")]),
    );
    let DriverEvent::NewCall { info, .. } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(info.address, AddressId(0));
}

#[test]
fn a_failure_cause_decides_the_mode() {
    let mut t = CallTracker::default();
    let mut ids = Counter(0);
    placed(&mut t, &mut ids, CallId(5), "1");
    let ev = t.failed(&line(), &v(&[("csta", "1"), ("cause", "busy")]));
    assert_eq!(states(&ev), s(&[(5, "busy")]));
    let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "1")]));
    assert_eq!(states(&ev), s(&[(5, "disconnected:Busy")]));
    placed(&mut t, &mut ids, CallId(6), "2");
    let (ev, _) = t.apply(
        &line(),
        &mut ids,
        Event::Disconnected,
        &v(&[("csta", "2"), ("cause", "callRejected")]),
    );
    assert_eq!(states(&ev), s(&[(6, "disconnected:Reject")]));
}

#[test]
fn a_late_no_calls_left_report_spares_a_call_the_phone_has_not_reported_yet() {
    let mut t = CallTracker::default();
    let mut ids = Counter(0);
    t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "a")]));
    t.start_make(&line(), CallId(7), AddressId(0), false);
    // The phone's onhook (no call left) was fired before it took the dial command.
    let (ev, _) = t.apply(&line(), &mut ids, Event::Onhook, &v(&[("n", "0")]));
    assert_eq!(states(&ev), s(&[(101, "disconnected:Unknown")]));
    assert!(t.get(CallId(7)).is_some());
}

/// The cause each event carried in the call's info, with the state that followed it.
fn causes(events: &[DriverEvent]) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if let DriverEvent::CallInfo { call, info, .. } = e {
            // The cause goes out just before the state it explains.
            let next = events.get(i + 1).map(|n| states(std::slice::from_ref(n)));
            assert!(
                matches!(&next, Some(s) if s.len() == 1 && s[0].0 == call.0),
                "a cause without its state: {events:?}"
            );
            out.push((call.0, info.cause.clone().unwrap_or_default()));
        }
    }
    out
}

#[test]
fn causes_come_in_the_csta_events_words_before_the_ending_state() {
    let mut t = CallTracker::default();
    let mut ids = Counter(0);
    // Busy: the cause, then Busy; the end repeats neither.
    placed(&mut t, &mut ids, CallId(5), "1");
    let busy = v(&[
        ("csta", "1"),
        ("cause", "busy"),
        ("csta_event", "FailedEvent"),
    ]);
    let ev = t.failed(&line(), &busy);
    assert_eq!(causes(&ev), s(&[(5, "FailedEvent: busy")]));
    assert_eq!(states(&ev), s(&[(5, "busy")]));
    let cleared = v(&[
        ("csta", "1"),
        ("cause", "busy"),
        ("csta_event", "ConnectionClearedEvent"),
    ]);
    let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &cleared);
    assert_eq!(causes(&ev), s(&[]), "the first cause stays");
    assert_eq!(states(&ev), s(&[(5, "disconnected:Busy")]));
    // Declined, no answer, unreachable: the cause comes with the end.
    for (n, cause, mode) in [
        ("2", "callRejected", "Reject"),
        ("3", "callNotAnswered", "NoAnswer"),
        ("4", "destNotObtainable", "Unreachable"),
    ] {
        let id = CallId(10 + n.parse::<u64>().unwrap_or_default());
        placed(&mut t, &mut ids, id, n);
        let failed = v(&[("csta", n), ("cause", cause), ("csta_event", "FailedEvent")]);
        assert!(t.failed(&line(), &failed).is_empty());
        let cleared = v(&[
            ("csta", n),
            ("cause", "normalClearing"),
            ("csta_event", "ConnectionClearedEvent"),
        ]);
        let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &cleared);
        assert_eq!(causes(&ev), s(&[(id.0, &format!("FailedEvent: {cause}"))]));
        assert_eq!(states(&ev), s(&[(id.0, &format!("disconnected:{mode}"))]));
    }
    // An answered call cleared normally says so in the event's words.
    let (ev, _) = t.apply(&line(), &mut ids, Event::Connected, &v(&[("csta", "9")]));
    let call = states(&ev)[0].0;
    let cleared = v(&[
        ("csta", "9"),
        ("cause", "normalClearing"),
        ("csta_event", "ConnectionClearedEvent"),
    ]);
    let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &cleared);
    assert_eq!(
        causes(&ev),
        s(&[(call, "ConnectionClearedEvent: normalClearing")])
    );
    assert_eq!(states(&ev), s(&[(call, "disconnected:Normal")]));
}

#[test]
fn action_urls_give_no_reason_and_the_cause_says_so() {
    let mut t = CallTracker::default();
    let mut ids = Counter(0);
    placed(&mut t, &mut ids, CallId(5), "1");
    let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "1")]));
    assert_eq!(causes(&ev), s(&[(5, said::NOT_ANSWERED_OUT)]));
    assert_eq!(states(&ev), s(&[(5, "disconnected:Unavailable")]));
    // Missed, by `disconnected` while ringing or by `missed`.
    let (ev, _) = t.apply(&line(), &mut ids, Event::Incoming, &v(&[("csta", "2")]));
    let a = states(&ev)[0].0;
    let (ev, _) = t.apply(&line(), &mut ids, Event::Missed, &v(&[("csta", "2")]));
    assert_eq!(causes(&ev), s(&[(a, said::MISSED)]));
    assert_eq!(states(&ev), s(&[(a, "disconnected:NoAnswer")]));
    // Hung up after answering.
    let (ev, _) = t.apply(&line(), &mut ids, Event::Connected, &v(&[("csta", "3")]));
    let b = states(&ev)[0].0;
    let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "3")]));
    assert_eq!(causes(&ev), s(&[(b, said::HUNG_UP)]));
    // A restart ends what is left, saying so.
    let (ev, _) = t.apply(&line(), &mut ids, Event::Connected, &v(&[("csta", "4")]));
    let c = states(&ev)[0].0;
    let (ev, _) = t.apply(&line(), &mut ids, Event::Setup, &v(&[]));
    assert_eq!(causes(&ev), s(&[(c, said::RESTARTED)]));
    assert_eq!(states(&ev), s(&[(c, "disconnected:Unknown")]));
    // A snapshot that no longer lists a call.
    let (ev, _) = t.apply(&line(), &mut ids, Event::Connected, &v(&[("csta", "5")]));
    let d = states(&ev)[0].0;
    let ev = t.retain_snapshot(&line(), &[]);
    assert_eq!(causes(&ev), s(&[(d, said::NOT_IN_SNAPSHOT)]));
    // The host's drop: Idle, no cause.
    let (ev, _) = t.apply(&line(), &mut ids, Event::Connected, &v(&[("csta", "6")]));
    let e = states(&ev)[0].0;
    t.mark_dropping(CallId(e));
    let (ev, _) = t.apply(&line(), &mut ids, Event::Disconnected, &v(&[("csta", "6")]));
    assert_eq!(causes(&ev), s(&[]));
    assert_eq!(states(&ev), s(&[(e, "idle")]));
}

#[test]
fn a_refused_dial_command_explains_the_call_or_returns_it_to_dial_tone() {
    let mut t = CallTracker::default();
    // MakeCall refused: the call was shown Dialing; its info says why, then it is forgotten.
    t.start_make(&line(), CallId(5), AddressId(0), false);
    let ev = t.abort_make(&line(), CallId(5), "the phone answered 403 to the command");
    let DriverEvent::CallInfo { info, .. } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        info.cause.as_deref(),
        Some("the phone answered 403 to the command")
    );
    assert!(t.calls().is_empty());
    // Digits refused on a dial-tone call: back at dial tone, still there.
    t.start_make(&line(), CallId(6), AddressId(0), true);
    assert_eq!(states(&t.dialing(&line(), CallId(6))), s(&[(6, "dialing")]));
    assert_eq!(
        states(&t.dial_failed(&line(), CallId(6))),
        s(&[(6, "dialtone")])
    );
    assert!(t.get(CallId(6)).is_some());
}
