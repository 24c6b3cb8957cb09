//! Conformance of the snom driver against the snom simulator, on both routes the simulator
//! offers: Action URLs with HTTP control (the phone says that a call ended, never why), and
//! uaCSTA over SIP (CSTA events carry the cause; the Action URLs still come too). The far end
//! of each call is scripted by the number dialled: answer, busy, decline, no answer,
//! unreachable. Runs of six failures in a row exceed the line's 4 places, so a call the driver
//! kept would refuse the next MakeCall; halfway through, the phone restarts (its CSTA ids start
//! at 1 again, the uaCSTA session is opened anew) and the line takes the next calls.

use std::cell::OnceCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapir_conformance::{run, Expect, Report, Step, Subject};
use tapir_core::{DisconnectMode, DriverError, PhoneDriver, SharedSink};
use tapir_snom_sim::{Outcome, Sim, SimConfig, SimPhone, SimSip};
use tapir_test_support::callbacks::Shared;
use tapir_test_support::PhoneCallbacks;

const MAC: &str = "000413000201";

/// The scripted numbers, each with the outcome the far end gives.
const FAR_ENDS: [(&str, Outcome); 5] = [
    ("2000", Outcome::Answer(Duration::from_millis(20))),
    ("2001", Outcome::Busy(Duration::from_millis(20))),
    ("2002", Outcome::Decline(Duration::from_millis(20))),
    ("2003", Outcome::NoAnswer(Duration::from_millis(150))),
    ("2004", Outcome::Unreachable(Duration::from_millis(20))),
];

/// One block of the script: an answered call, six failures in a row, an answered call, the
/// failures again in another order.
const BLOCK: [&str; 14] = [
    "2000", "2001", "2002", "2003", "2004", "2001", "2002", "2000", "2004", "2003", "2002", "2001",
    "2004", "2000",
];

/// The driver as the front end holds it, kept for the steps between calls.
type Kept = Rc<OnceCell<Arc<dyn PhoneDriver>>>;

/// The phone, the phone-facing listener and the driver's configuration.
struct Office {
    _sim: Sim,
    phone: Arc<SimPhone>,
    callbacks: Arc<PhoneCallbacks>,
    config: String,
}

fn office(uacsta: bool) -> Office {
    let sim = match Sim::new(2) {
        Ok(s) => s,
        Err(e) => panic!("simulator runtime: {e}"),
    };
    let phone = match sim.phone(SimConfig {
        mac: MAC.into(),
        sip: uacsta.then(SimSip::default),
        ..SimConfig::default()
    }) {
        Ok(p) => p,
        Err(e) => panic!("simulated phone: {e}"),
    };
    for (number, outcome) in FAR_ENDS {
        phone.script(number, outcome);
    }
    let callbacks = Arc::new(PhoneCallbacks::start("office"));
    // No reachability probes: nothing but the script talks to the phone, so its restart is
    // noticed through its own `setup` report, as with a phone nobody is using.
    let config = format!(
        r#"{{"phones": [{{"address": "{}", "mac": "{MAC}"}}], "public_url": "{}",
            "callback_key": "conformance", "status_interval_secs": 0, "snapshot_interval_secs": 0,
            "liveness_interval_secs": 0, "liveness_busy_secs": 0, "sip_listen": "127.0.0.1:0"}}"#,
        phone.addr(),
        callbacks.base()
    );
    Office {
        _sim: sim,
        phone,
        callbacks,
        config,
    }
}

/// Builds the driver, attaches it to the listener and keeps it for the steps.
fn build(
    office: &Office,
    kept: &Kept,
) -> impl FnOnce(SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError> {
    let config = office.config.clone();
    let callbacks = Arc::clone(&office.callbacks);
    let kept = Rc::clone(kept);
    move |sink| {
        let driver: Arc<dyn PhoneDriver> = Arc::from(tapir_plugin_snom::build(&config, sink)?);
        callbacks.attach(Arc::clone(&driver));
        let _ = kept.set(Arc::clone(&driver));
        Ok(Box::new(Shared(driver)))
    }
}

/// Waits until `f` holds, at most 30 s (the machine is shared).
fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < end, "not within 30 s: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The driver's phone-table detail of the phone.
fn detail(kept: &Kept) -> String {
    kept.get()
        .and_then(|d| d.devices().into_iter().find(|d| d.key == MAC))
        .and_then(|d| d.detail)
        .unwrap_or_default()
}

/// Waits until the driver has a uaCSTA session to the phone, with its monitor.
fn session_up(phone: &SimPhone, kept: &Kept) {
    wait("a uaCSTA session", || {
        phone.sip_session().0 && detail(kept).contains("uaCSTA session up")
    });
}

/// The phone restarts; the step ends once the driver has heard it is back (its `log_on`
/// went through) and, on the uaCSTA route, has a new session to it.
fn restart(phone: Arc<SimPhone>, kept: Kept, uacsta: bool) -> Step {
    Step::act("the phone restarts", move || {
        let logged_on = |p: &SimPhone| p.fired().iter().filter(|u| u.contains("/log_on?")).count();
        let before = logged_on(&phone);
        phone.reboot(Duration::from_millis(300));
        wait("the phone reports it is back", || {
            logged_on(&phone) > before
        });
        if uacsta {
            session_up(&phone, &kept);
        }
    })
}

/// Runs three blocks of calls with `expect` for each number on the route chosen, the phone
/// restarting after the first block, and checks what the phone was left with.
fn conform(uacsta: bool, expect: impl Fn(&str) -> Expect) -> (Report, Office) {
    let office = office(uacsta);
    let kept: Kept = Rc::new(OnceCell::new());
    let mut steps = Vec::new();
    if uacsta {
        let (phone, kept) = (office.phone.clone(), kept.clone());
        steps.push(Step::act("the uaCSTA session is up", move || {
            session_up(&phone, &kept)
        }));
    }
    let mut restart_step = Some(restart(office.phone.clone(), kept.clone(), uacsta));
    for block in 0..3 {
        steps.extend(BLOCK.iter().map(|n| Step::call(*n, expect(n))));
        if block == 0 {
            steps.extend(restart_step.take());
        }
    }
    let report = run(
        Subject {
            name: "office".into(),
            build: build(&office, &kept),
            line: MAC.into(),
            answered_calls_end_by_themselves: false,
            per_call: Duration::from_secs(30),
        },
        steps,
    );
    assert_eq!(report.calls, 3 * BLOCK.len());
    assert_eq!(office.phone.parallel_violations(), 0);
    let left = office.phone.calls();
    assert!(left.is_empty(), "{left:?}");
    (report, office)
}

#[test]
fn snom_over_action_urls_many_calls_on_one_line_with_failures_and_a_restart() {
    // Action URLs report that a call ended, not why: every failure ends Unavailable, and its
    // cause says so.
    let (report, _) = conform(false, |n| match n {
        "2000" => Expect::Answered,
        _ => Expect::failed(DisconnectMode::Unavailable, "Action URLs do not say why"),
    });
    println!("snom (Action URLs): {report}");
}

#[test]
fn snom_over_uacsta_many_calls_on_one_line_with_failures_and_a_restart() {
    // The CSTA cause decides the mode, in the event's own words.
    let (report, office) = conform(true, |n| match n {
        "2001" => Expect::failed(DisconnectMode::Busy, "FailedEvent: busy"),
        "2002" => Expect::failed(DisconnectMode::Reject, "FailedEvent: callRejected"),
        "2003" => Expect::failed(DisconnectMode::NoAnswer, "FailedEvent: callNotAnswered"),
        "2004" => Expect::failed(
            DisconnectMode::Unreachable,
            "FailedEvent: destNotObtainable",
        ),
        _ => Expect::Answered,
    });
    println!("snom (uaCSTA): {report}");
    assert!(
        office.phone.sip_session().1 > 0,
        "CSTA requests went over the session"
    );
}
