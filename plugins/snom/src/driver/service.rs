//! Whether a phone's line serves (reachable, not put aside, login accepted, identity
//! registered), and which routes its calls have now (announced with the line's capabilities).

use super::Shared;
use crate::command::{CstaRoute, CstaVia};
use crate::phone::{Phone, PhoneState};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tapir_core::{AddressStatus, Configuration, Connection, DriverEvent};

impl Shared {
    /// The CSTA route the phone has now: its uaCSTA session while it is up, else CSTA over
    /// HTTP when `csta_path` is set and the phone has not shown that it lacks it.
    pub(super) fn csta_route(&self, st: &PhoneState) -> Option<CstaRoute> {
        let device = st.identity.clone()?;
        if st.uacsta.up().is_some() {
            return Some(CstaRoute {
                device,
                via: CstaVia::Sip,
            });
        }
        (self.config.csta_path.is_some() && !st.csta_control_unsupported).then_some(CstaRoute {
            device,
            via: CstaVia::Http,
        })
    }

    /// Recomputes the routes of a phone and announces its line again when its capabilities
    /// changed (a uaCSTA session came or went, the model became known). A line appears only
    /// once the phone's first check is over (see [`Shared::announce`]).
    pub(super) fn update_routes(&self, phone: &Phone) {
        self.announce(phone, false);
    }

    /// The phone's first check is over (the uaCSTA attempt it started included): its line
    /// may appear, with what the check learnt.
    pub(super) fn settle(&self, phone: &Phone) {
        phone.lock().settled = true;
        self.update_routes(phone);
    }

    /// Announces the phone's line when what it offers changed. A line that has not appeared
    /// yet appears only when its phone is `settled` (and the driver is not starting: the
    /// configured phones appear together, in configuration order), or when `force`d. When it
    /// first appears, what the phone reported meanwhile follows it: the address state and the
    /// calls (the front end dropped their events, having no line for them). Sent under the
    /// phone's lock, so a call event the tracker makes afterwards cannot overtake the line.
    pub(super) fn announce(&self, phone: &Phone, force: bool) {
        let mut st = phone.lock();
        if st.removed {
            return;
        }
        st.facts.csta = self.csta_route(&st);
        let waiting = !st.settled || self.starting.load(Ordering::Acquire);
        if st.announced.is_none() && waiting && !force {
            return;
        }
        let info = phone.line_info(&st);
        if st.announced.as_ref() == Some(&info) {
            return;
        }
        let first = st.announced.is_none();
        st.announced = Some(info.clone());
        self.sink.event(DriverEvent::LineCreated { info });
        if !first {
            return;
        }
        if *st.tracker.address() != AddressStatus::default() {
            self.sink.event(st.tracker.address_event(&phone.key));
        }
        for c in st.tracker.calls() {
            self.sink.event(DriverEvent::NewCall {
                line: phone.key.clone(),
                call: c.id,
                state: c.state,
                info: c.info.clone(),
            });
        }
    }

    /// Marks the phone reachable or not (reachable: it answered something), and its line in
    /// or out of service.
    pub(super) fn set_reachable(&self, phone: &Phone, ok: bool, detail: Option<String>) {
        {
            let mut st = phone.lock();
            if ok {
                st.probe_failures = 0;
                // It just answered: the next reachability check can wait an interval.
                let idle = self.config.liveness_interval_secs;
                if idle > 0 && st.tracker.calls().is_empty() {
                    st.next_probe = Some(std::time::Instant::now() + Duration::from_secs(idle));
                }
                if st.connection == Connection::Unreachable
                    && st.configuration == Configuration::Unknown
                    && st.was_correct
                {
                    // Reachable again: the next check says what the configuration is.
                    st.detail = Some("reachable again; checking the configuration".into());
                }
                if st.blocked.is_none() {
                    st.connection = if st.login_refused.is_some() || st.unregistered {
                        Connection::NeedsRegistration
                    } else {
                        Connection::Connected
                    };
                }
            } else {
                if st.connection != Connection::Unreachable {
                    st.was_correct = st.configuration == Configuration::Correct;
                }
                st.connection = Connection::Unreachable;
                // Whatever it was, nobody can tell while the phone does not answer.
                st.configuration = Configuration::Unknown;
                st.detail = Some(match (&detail, st.was_correct) {
                    (Some(d), true) => format!("{d}; its configuration was correct when last seen"),
                    (Some(d), false) => d.clone(),
                    (None, _) => "the phone cannot be reached".into(),
                });
            }
        }
        self.settle_service(phone);
    }

    /// Puts the line in or out of service as the phone's state says (reachable, not put
    /// aside, login accepted, identity registered); an event when that changed.
    pub(super) fn settle_service(&self, phone: &Phone) {
        let event = {
            let mut st = phone.lock();
            let why = st.not_serving();
            let serving = why.is_none();
            if st.announced.is_none() {
                // The line appears with it.
                st.in_service = serving;
                return;
            }
            (st.in_service != serving).then(|| {
                st.in_service = serving;
                match why {
                    None => DriverEvent::LineInService {
                        line: phone.key.clone(),
                    },
                    Some(reason) => DriverEvent::LineOutOfService {
                        line: phone.key.clone(),
                        reason,
                    },
                }
            })
        };
        if let Some(e) = event {
            self.sink.event(e);
        }
    }
}
