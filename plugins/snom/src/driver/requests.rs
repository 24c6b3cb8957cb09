//! The application's requests on a phone: planned against the route table, carried out over
//! keys, CSTA over HTTP or the uaCSTA session, completed exactly once; and the snapshot of
//! active calls.

use super::fetch::FetchError;
use super::Shared;
use crate::calls::CallTracker;
use crate::command::{self, CstaCall, CstaVia, Effect, Plan};
use crate::phone::Phone;
use crate::settings::Settings;
use std::sync::Arc;
use tapir_core::{Completion, DriverError, ErrorKind, RequestEnvelope};

impl Shared {
    /// Plans a request; a plan for a uaCSTA session that is gone is made again without it.
    fn plan(&self, phone: &Phone, env: &RequestEnvelope) -> Result<Plan, DriverError> {
        for _ in 0..2 {
            let plan = {
                let st = phone.lock();
                command::plan(&env.request, &st.tracker, &st.facts)?
            };
            let stale = plan.csta.as_ref().is_some_and(|c| c.via == CstaVia::Sip)
                && phone.lock().uacsta.up().is_none();
            if !stale {
                return Ok(plan);
            }
            self.session_down(phone, "the session ended");
        }
        Err(DriverError::failed("the CSTA session keeps going away"))
    }

    pub(super) async fn run_request(self: &Arc<Self>, phone: &Arc<Phone>, env: RequestEnvelope) {
        let line = phone.key.clone();
        let plan = match self.plan(phone, &env) {
            Ok(p) => p,
            Err(e) => {
                self.sink.complete(env.id, Err(e));
                return;
            }
        };
        let events = {
            let mut st = phone.lock();
            match plan.effect {
                Effect::MakeCall {
                    call,
                    address,
                    dialtone,
                } => st.tracker.start_make(&line, call, address, dialtone),
                Effect::Dialing { call } => st.tracker.dialing(&line, call),
                Effect::Drop { call } => {
                    st.tracker.mark_dropping(call);
                    Vec::new()
                }
                Effect::SetupTransfer { held, .. } => {
                    st.tracker.start_transfer(held);
                    Vec::new()
                }
                _ => Vec::new(),
            }
        };
        self.emit(events);
        let mut outcome = Ok(None);
        for step in &plan.steps {
            outcome = match self.fetch(phone, "GET", step, None).await {
                Ok(r) if (200..300).contains(&r.status) => Ok(None),
                Ok(r) => Err(DriverError::failed(format!(
                    "the phone answered {} to the command",
                    r.status
                ))),
                Err(FetchError::Unreachable(m)) => Err(self.unreachable_now(phone, &m)),
                Err(e) => Err(e.into_driver_error()),
            };
            if outcome.is_err() {
                break;
            }
        }
        if let (Ok(_), Some(csta)) = (&outcome, &plan.csta) {
            outcome = self.send_csta(phone, csta).await;
        }
        let made = match outcome {
            Ok(made) => made,
            Err(e) => {
                let events = {
                    let mut st = phone.lock();
                    match plan.effect {
                        // Could not be started at all: the call never existed (its info says
                        // why, for applications that saw it Dialing).
                        Effect::MakeCall { call, .. } => {
                            st.tracker.abort_make(&line, call, &e.detail)
                        }
                        // The digits did not go out: the call is at dial tone again.
                        Effect::Dialing { call } => st.tracker.dial_failed(&line, call),
                        // A failed drop leaves the call as it is.
                        Effect::Drop { call } => {
                            st.tracker.unmark_dropping(call);
                            Vec::new()
                        }
                        Effect::SetupTransfer { held, .. } => {
                            st.tracker.cancel_transfer(held);
                            Vec::new()
                        }
                        _ => Vec::new(),
                    }
                };
                self.emit(events);
                self.sink.complete(env.id, Err(e));
                return;
            }
        };
        let completion = match plan.effect {
            Effect::MakeCall { call, .. } | Effect::Dialing { call } => {
                if let Some(id) = made {
                    phone.lock().tracker.bind_csta(call, &id);
                }
                Ok(Completion::Done)
            }
            Effect::DropLocal { call } => {
                let mut ev = phone.lock().tracker.end(&line, call, None);
                if ev.is_empty() {
                    ev = CallTracker::idle(&line, call);
                }
                self.emit(ev);
                Ok(Completion::Done)
            }
            Effect::SetupTransfer { held, consult } => {
                let ev = {
                    let mut st = phone.lock();
                    let address = st
                        .tracker
                        .get(held)
                        .map(|c| c.info.address)
                        .unwrap_or_default();
                    st.tracker.link_transfer(held, consult);
                    st.tracker.start_make(&line, consult, address, true)
                };
                self.emit(ev);
                Ok(Completion::Done)
            }
            Effect::Address(status) => {
                let ev = phone.lock().tracker.set_address(&line, status);
                self.emit(ev);
                Ok(Completion::Done)
            }
            Effect::Query => {
                let path = self.config.settings_path.clone();
                match self.fetch(phone, "GET", &path, None).await {
                    Ok(r) if r.status == 200 => {
                        let status = command::address_from_settings(&Settings::parse(&r.body));
                        let ev = phone.lock().tracker.set_address(&line, status.clone());
                        self.emit(ev);
                        Ok(Completion::AddressStatus(status))
                    }
                    Ok(r) => Err(DriverError::failed(format!(
                        "the phone answered {} to the settings read",
                        r.status
                    ))),
                    Err(e) => Err(e.into_driver_error()),
                }
            }
            Effect::None | Effect::Drop { .. } => Ok(Completion::Done),
        };
        if plan.csta.as_ref().is_none_or(|c| c.via == CstaVia::Http) {
            self.set_reachable(phone, true, None);
        }
        self.sink.complete(env.id, completion);
    }

    /// A request found the phone unreachable: it is marked so at once, and the request fails
    /// saying why.
    fn unreachable_now(&self, phone: &Phone, why: &str) -> DriverError {
        let why = format!("cannot reach the phone: {why}");
        self.set_reachable(phone, false, Some(why.clone()));
        DriverError::new(ErrorKind::Disconnected, why)
    }

    /// Sends one CSTA service over its transport and reads the acknowledgement; for
    /// `MakeCall` returns the new call's id.
    async fn send_csta(
        self: &Arc<Self>,
        phone: &Arc<Phone>,
        csta: &CstaCall,
    ) -> Result<Option<String>, DriverError> {
        let answer = match csta.via {
            CstaVia::Sip => self.session_request(phone, csta.xml.clone()).await?,
            CstaVia::Http => self.http_csta(phone, csta).await?,
        };
        match crate::csta::parse_ack(csta.name, &answer) {
            crate::csta::Ack::Positive => Ok(crate::csta::made_call_id(&answer).map(str::to_owned)),
            crate::csta::Ack::Negative(error) => Err(DriverError::failed(format!(
                "the phone refused CSTA {}: {error}",
                csta.name
            ))),
            crate::csta::Ack::Unreadable if csta.via == CstaVia::Sip => {
                Err(DriverError::failed(format!(
                    "the phone's answer to CSTA {} over SIP is not CSTA",
                    csta.name
                )))
            }
            crate::csta::Ack::Unreadable => {
                tracing::info!(phone = %phone.key, service = csta.name, "The phone has no CSTA call control at csta_path; per-call operations fall back to keys.");
                phone.lock().csta_control_unsupported = true;
                self.update_routes(phone);
                Err(DriverError::failed(format!(
                    "the phone gave no CSTA answer to {}; CSTA over HTTP is off for it now",
                    csta.name
                )))
            }
        }
    }

    /// POSTs a CSTA service to `csta_path`; the answer's text (empty unless 200).
    async fn http_csta(&self, phone: &Phone, csta: &CstaCall) -> Result<String, DriverError> {
        let Some(path) = self.config.csta_path.clone() else {
            return Err(DriverError::unavailable("no csta_path configured"));
        };
        match self.fetch(phone, "POST", &path, Some(&csta.xml)).await {
            Ok(r) if r.status == 200 => Ok(r.body),
            Ok(_) => Ok(String::new()),
            Err(FetchError::Unreachable(m)) => Err(self.unreachable_now(phone, &m)),
            Err(e) => Err(e.into_driver_error()),
        }
    }

    pub(super) async fn run_snapshot(self: &Arc<Self>, phone: &Arc<Phone>) {
        let (device, via, unsupported, empty) = {
            let st = phone.lock();
            (
                st.identity.clone().unwrap_or_default(),
                st.facts.csta.as_ref().map(|c| c.via),
                st.snapshot_unsupported,
                st.tracker.calls().is_empty(),
            )
        };
        if empty {
            return;
        }
        let body = crate::csta::snapshot_device(&device);
        let answer = match via {
            Some(CstaVia::Sip) => match self.session_request(phone, body).await {
                Ok(text) => text,
                Err(_) => return,
            },
            _ if unsupported || self.config.csta_path.is_none() => return,
            _ => {
                let Some(path) = self.config.csta_path.clone() else {
                    return;
                };
                match self.fetch(phone, "POST", &path, Some(&body)).await {
                    Ok(r) if r.status == 200 => r.body,
                    Ok(r) => {
                        self.snapshot_unsupported(
                            phone,
                            &format!("the CSTA page answered {}", r.status),
                        );
                        return;
                    }
                    Err(_) => return,
                }
            }
        };
        let Some(present) = crate::csta::parse_snapshot(&answer) else {
            if via != Some(CstaVia::Sip) {
                self.snapshot_unsupported(phone, "the CSTA answer is not a SnapshotDeviceResponse");
            }
            return;
        };
        let ev = phone.lock().tracker.retain_snapshot(&phone.key, &present);
        if !ev.is_empty() {
            tracing::info!(phone = %phone.key, "Snapshot cleared calls the phone no longer has.");
        }
        self.emit(ev);
    }

    fn snapshot_unsupported(&self, phone: &Phone, why: &str) {
        tracing::info!(phone = %phone.key, why, "CSTA snapshot over HTTP not available on this phone; calls are not checked that way.");
        phone.lock().snapshot_unsupported = true;
    }
}
