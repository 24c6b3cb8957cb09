//! CSTA over HTTP for per-call operations the keys cannot address: with several calls on the
//! phone, answer, drop, hold, retrieve, swap hold and redirect go to `csta_path` naming the call
//! by its `$csta_id`, and act on that call on the phone; keys stay where they are unambiguous;
//! a phone without CSTA call control is found out once and then refused, not guessed at.

mod common;

use common::*;
use tapir_core::{CallState, ErrorKind};
use tapir_snom_sim::{SimCallState, SimConfig, SimPhone};
use tapir_tsp::{Action, RequestResult};

const MAC: &str = "000413000071";

fn setup(sim: SimConfig) -> (Harness, std::sync::Arc<SimPhone>) {
    let sim_rt = tapir_snom_sim::Sim::new(2).expect("sim");
    let phone = sim_rt.phone(sim).expect("phone");
    let config = one_phone(phone.addr(), MAC, r#", "csta_path": "/csta""#);
    let h = Harness::start_with(&config, sim_rt);
    h.configured(MAC);
    h.open(MAC);
    (h, phone)
}

/// The phone's CSTA id of the call from `remote`.
fn csta_of(phone: &SimPhone, remote: &str) -> u64 {
    phone
        .calls()
        .iter()
        .find(|c| c.remote == remote)
        .map(|c| c.csta)
        .expect("the phone has that call")
}

/// The state of the phone's call from `remote` (`None`: gone).
fn on_phone(phone: &SimPhone, remote: &str) -> Option<SimCallState> {
    phone
        .calls()
        .iter()
        .find(|c| c.remote == remote)
        .map(|c| c.state)
}

fn done(h: &mut Harness, action: Action) {
    let (_, r) = h.run(action).expect("accepted");
    assert!(ok(&r), "{r:?}");
}

#[test]
fn with_several_calls_per_call_operations_go_over_csta_to_the_right_call() {
    let (mut h, phone) = setup(sim_config(MAC));
    // Two calls ringing at once: the keys could not pick one.
    let a = h.incoming(&phone, "401");
    let b = h.incoming(&phone, "402");
    let (ca, cb) = (csta_of(&phone, "401"), csta_of(&phone, "402"));

    // Answer the second one: AnswerCall names it; the first keeps ringing.
    done(&mut h, Action::Answer { call: b });
    h.expect_state(b, CallState::Connected);
    assert_eq!(phone.csta_requests(), [format!("AnswerCall {cb}")]);
    assert_eq!(on_phone(&phone, "401"), Some(SimCallState::Ringing));
    assert_eq!(on_phone(&phone, "402"), Some(SimCallState::Connected));

    // Drop (reject) the ringing one while the other is connected: ClearConnection names it.
    done(&mut h, Action::Drop { call: a });
    h.expect_state(a, CallState::Idle);
    assert_eq!(phone.csta_requests()[1], format!("ClearConnection {ca}"));
    assert_eq!(on_phone(&phone, "401"), None);
    assert_eq!(on_phone(&phone, "402"), Some(SimCallState::Connected));

    // A new call rings and is the only ringing one: answered with a key (unambiguous), which
    // holds the connected call.
    let c = h.incoming(&phone, "403");
    let cc = csta_of(&phone, "403");
    done(&mut h, Action::Answer { call: c });
    h.expect_state(b, CallState::OnHold);
    h.expect_state(c, CallState::Connected);
    assert_eq!(phone.csta_requests().len(), 2, "keys were enough");

    // A fourth call rings: holding the connected call is now ambiguous for keys.
    let d = h.incoming(&phone, "404");
    done(&mut h, Action::Hold { call: c });
    h.expect_state(c, CallState::OnHold);
    assert_eq!(phone.csta_requests()[2], format!("HoldCall {cc}"));
    assert_eq!(on_phone(&phone, "404"), Some(SimCallState::Ringing));

    // Two held calls: retrieve the first one by name.
    done(&mut h, Action::Unhold { call: b });
    h.expect_state(b, CallState::Connected);
    assert_eq!(phone.csta_requests()[3], format!("RetrieveCall {cb}"));
    assert_eq!(on_phone(&phone, "402"), Some(SimCallState::Connected));
    assert_eq!(on_phone(&phone, "403"), Some(SimCallState::Held));

    // Swap hold: AlternateCall (held first, then active).
    done(&mut h, Action::SwapHold { active: b, held: c });
    h.expect_state(b, CallState::OnHold);
    h.expect_state(c, CallState::Connected);
    assert_eq!(phone.csta_requests()[4], format!("AlternateCall {cc} {cb}"));

    // Drop the held call, not the connected one.
    done(&mut h, Action::Drop { call: b });
    h.expect_state(b, CallState::Idle);
    assert_eq!(phone.csta_requests()[5], format!("ClearConnection {cb}"));
    assert_eq!(on_phone(&phone, "402"), None);
    assert_eq!(on_phone(&phone, "403"), Some(SimCallState::Connected));

    // Redirect the ringing call (no redirect_key configured): DeflectCall.
    done(
        &mut h,
        Action::Redirect {
            call: d,
            destination: "900".into(),
        },
    );
    h.expect_state(d, CallState::Idle);
    assert_eq!(phone.redirected(), ["900"]);
    assert_eq!(on_phone(&phone, "403"), Some(SimCallState::Connected));
    let sent = phone.csta_requests();
    assert!(sent[6].starts_with("DeflectCall "), "{sent:?}");
    assert_eq!(phone.parallel_violations(), 0);
}

#[test]
fn a_phone_without_csta_call_control_is_found_out_once_then_refused() {
    let (mut h, phone) = setup(SimConfig {
        csta: false,
        ..sim_config(MAC)
    });
    let a = h.incoming(&phone, "501");
    let _b = h.incoming(&phone, "502");
    // The first try goes to csta_path and finds nothing there: it fails, nothing else is sent.
    let (_, r) = h.run(Action::Answer { call: a }).expect("accepted");
    assert!(
        matches!(r, RequestResult::Err(ref e) if e.kind == ErrorKind::OperationFailed),
        "{r:?}"
    );
    assert_eq!(on_phone(&phone, "501"), Some(SimCallState::Ringing));
    assert_eq!(on_phone(&phone, "502"), Some(SimCallState::Ringing));
    // From then on the ambiguous operation is refused without a request.
    let before = phone.requests().len();
    let (_, r) = h.run(Action::Answer { call: a }).expect("accepted");
    assert!(
        matches!(r, RequestResult::Err(ref e) if e.kind == ErrorKind::OperationUnavailable),
        "{r:?}"
    );
    assert_eq!(phone.requests().len(), before, "nothing was sent");
}

#[test]
fn transfers_with_a_ringing_call_about_go_over_csta() {
    let (mut h, phone) = setup(sim_config(MAC));
    // a connected, b ringing: a blind transfer of a is ambiguous for keys.
    let a = h.incoming(&phone, "601");
    done(&mut h, Action::Answer { call: a });
    h.expect_state(a, CallState::Connected);
    let b = h.incoming(&phone, "602");
    let ca = csta_of(&phone, "601");
    done(
        &mut h,
        Action::BlindTransfer {
            call: a,
            destination: "700".into(),
        },
    );
    h.expect_state(a, CallState::Idle);
    assert_eq!(
        phone.csta_requests(),
        [format!("SingleStepTransferCall {ca}")]
    );
    assert_eq!(phone.transferred(), ["700"]);
    assert_eq!(on_phone(&phone, "602"), Some(SimCallState::Ringing));

    // b answered (keys: the only ringing call), held by key, c arrives and is answered:
    // then, with d ringing, complete transfer joins the held b and the connected c by name.
    done(&mut h, Action::Answer { call: b });
    h.expect_state(b, CallState::Connected);
    let c = h.incoming(&phone, "603");
    done(&mut h, Action::Answer { call: c });
    h.expect_state(b, CallState::OnHold);
    h.expect_state(c, CallState::Connected);
    let _d = h.incoming(&phone, "604");
    let (cb, cc) = (csta_of(&phone, "602"), csta_of(&phone, "603"));
    done(
        &mut h,
        Action::CompleteTransfer {
            call: b,
            consult: c,
        },
    );
    h.expect_state(b, CallState::Idle);
    h.expect_state(c, CallState::Idle);
    assert_eq!(phone.csta_requests()[1], format!("TransferCall {cb} {cc}"));
    assert_eq!(on_phone(&phone, "604"), Some(SimCallState::Ringing));
}
