//! Incoming-call indication for `sip-refer` / `sip-reverse` lines with `register = true`
//! (the commercial SIPTAPI's REGISTER option): each such line keeps a registration
//! ([`tapir_sip_ua::register`]), is out of service while unregistered, and an INVITE for it
//! becomes an Offering call ([`tapir_sip_ua::offer`]) that the application may redirect (302)
//! or drop (603), or that ends when the caller cancels.

use crate::call::LineCtx;
use crate::report::Gate;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tapir_core::{
    CallId, CallState, Completion, DriverError, DriverEvent, ErrorKind, LineKey, RequestId,
};
use tapir_sip_ua::header::Uri;
use tapir_sip_ua::leg::outcome::offer_end_mode;
use tapir_sip_ua::offer::{OfferError, OfferEvent, Offers};
use tapir_sip_ua::report::{offered_info, Registrations};
use tapir_sip_ua::runtime::DriverRuntime;
use tapir_sip_ua::Message;

/// REGISTERs per second over all lines of one driver.
const REGISTER_RATE: f64 = 20.0;
/// Seconds an offer may ring before we answer 480.
const OFFER_LIMIT: Duration = Duration::from_secs(120);

/// The registering lines that share one endpoint.
type LineGroup = Vec<(LineKey, Arc<LineCtx>)>;

struct Offer {
    line: LineKey,
    endpoint: usize,
    id: u64,
}

/// The incoming side of one driver.
pub struct IncomingCalls {
    gate: Arc<Gate>,
    offers: Mutex<Vec<Option<Offers>>>,
    calls: Mutex<HashMap<CallId, Offer>>,
    by_offer: Mutex<HashMap<(usize, u64), CallId>>,
    registrations: Registrations,
}

fn pick(
    lines: &[(LineKey, Arc<LineCtx>)],
    invite: &Message,
) -> Result<String, (u16, &'static str)> {
    let ruri = invite.request_uri().and_then(Uri::parse);
    if let Some(key) = ruri.as_ref().and_then(|u| u.params.get("line")) {
        return lines
            .iter()
            .find(|(k, _)| k.0 == key)
            .map(|(k, _)| k.0.clone())
            .ok_or((404, "Not Found"));
    }
    let user = ruri.and_then(|u| u.user).unwrap_or_default();
    lines
        .iter()
        .find(|(_, c)| c.line.user() == user)
        .map(|(k, _)| k.0.clone())
        .ok_or((404, "Not Found"))
}

impl IncomingCalls {
    /// Starts registrations and offers for the lines with `register = true`; `None` when there
    /// are none.
    ///
    /// # Errors
    /// A driver error when an offers task cannot start.
    pub fn start(
        rt: &DriverRuntime,
        gate: Arc<Gate>,
        lines: &[(LineKey, Arc<LineCtx>)],
    ) -> Result<Option<Arc<IncomingCalls>>, DriverError> {
        let registering: Vec<(LineKey, Arc<LineCtx>)> = lines
            .iter()
            .filter(|(_, c)| c.line.account.config.register)
            .cloned()
            .collect();
        if registering.is_empty() {
            return Ok(None);
        }
        // One offers task per endpoint (lines on one bind share it).
        let mut endpoints: Vec<(std::net::SocketAddr, LineGroup)> = Vec::new();
        for (k, c) in &registering {
            match endpoints.iter_mut().find(|(a, _)| *a == c.line.bind) {
                Some((_, v)) => v.push((k.clone(), c.clone())),
                None => endpoints.push((c.line.bind, vec![(k.clone(), c.clone())])),
            }
        }
        let this = Arc::new(IncomingCalls {
            gate: gate.clone(),
            offers: Mutex::new(Vec::new()),
            calls: Mutex::new(HashMap::new()),
            by_offer: Mutex::new(HashMap::new()),
            registrations: Registrations::new(gate.clone(), REGISTER_RATE, 10),
        });
        for (index, (_, group)) in endpoints.iter().enumerate() {
            let Some((_, first)) = group.first() else {
                continue;
            };
            let endpoint = first.endpoint.clone();
            let group2 = group.clone();
            let weak = Arc::downgrade(&this);
            let started = rt.block_on(Offers::start(
                endpoint,
                Box::new(move |m: &Message| pick(&group2, m)),
                OFFER_LIMIT,
                move |ev| {
                    if let Some(me) = weak.upgrade() {
                        me.on_event(index, ev);
                    }
                },
            ));
            match started {
                Some(Ok(o)) => {
                    if let Ok(mut v) = this.offers.lock() {
                        v.push(Some(o));
                    }
                }
                _ => {
                    return Err(DriverError::new(
                        ErrorKind::ResourceUnavailable,
                        "cannot start the incoming-call task",
                    ))
                }
            }
        }
        for (key, ctx) in registering {
            let account = &ctx.line.account;
            this.registrations.start(
                rt.spawner(),
                ctx.endpoint.clone(),
                ctx.resolver.clone(),
                account.registration(&key.0, ctx.line.user(), account.credentials()),
                key,
                Arc::new(AtomicBool::new(false)),
            );
        }
        Ok(Some(this))
    }

    fn on_event(&self, endpoint: usize, ev: OfferEvent) {
        match ev {
            OfferEvent::Offered {
                id,
                line,
                caller,
                called,
                call_id,
            } => {
                let call = self.gate.new_call_id();
                let line = LineKey::new(line);
                if let Ok(mut c) = self.calls.lock() {
                    c.insert(
                        call,
                        Offer {
                            line: line.clone(),
                            endpoint,
                            id,
                        },
                    );
                }
                if let Ok(mut b) = self.by_offer.lock() {
                    b.insert((endpoint, id), call);
                }
                self.gate.event(DriverEvent::NewCall {
                    line,
                    call,
                    state: CallState::Offering,
                    info: offered_info(caller, called, call_id),
                });
            }
            OfferEvent::Ended { id, end } => {
                let Some(call) = self
                    .by_offer
                    .lock()
                    .ok()
                    .and_then(|mut b| b.remove(&(endpoint, id)))
                else {
                    return;
                };
                let Some(offer) = self.calls.lock().ok().and_then(|mut c| c.remove(&call)) else {
                    return;
                };
                let mode = offer_end_mode(&end);
                for state in [CallState::Disconnected(mode), CallState::Idle] {
                    self.gate.event(DriverEvent::CallState {
                        line: offer.line.clone(),
                        call,
                        state,
                    });
                }
            }
        }
    }

    /// Whether `call` is an offered incoming call of `line`.
    pub fn owns(&self, line: &LineKey, call: CallId) -> bool {
        self.calls
            .lock()
            .map(|c| c.get(&call).is_some_and(|o| &o.line == line))
            .unwrap_or(false)
    }

    /// Drops (603) or redirects (302 to `to`) an offered call; completes `id`.
    pub fn finish(
        &self,
        handle: &tapir_sip_ua::runtime::Spawner,
        call: CallId,
        id: RequestId,
        to: Option<String>,
    ) -> Result<(), DriverError> {
        let (endpoint, offer) = self
            .calls
            .lock()
            .ok()
            .and_then(|c| c.get(&call).map(|o| (o.endpoint, o.id)))
            .ok_or_else(|| {
                DriverError::new(ErrorKind::InvalidCallHandle, format!("no call {call}"))
            })?;
        let offers = self
            .offers
            .lock()
            .ok()
            .and_then(|v| v.get(endpoint).cloned().flatten())
            .ok_or_else(|| DriverError::failed("no incoming-call task"))?;
        let gate = self.gate.clone();
        handle.spawn(async move {
            let outcome = match to {
                Some(to) => offers
                    .redirect(offer, to)
                    .await
                    .map(|()| Completion::Done)
                    .map_err(|e| DriverError::new(ErrorKind::InvalidCallState, e.to_string())),
                None => match offers.reject(offer, 603).await {
                    Ok(()) | Err(OfferError::Gone) => Ok(Completion::Done),
                    Err(e) => Err(DriverError::failed(e.to_string())),
                },
            };
            gate.complete(id, outcome);
        });
        Ok(())
    }

    /// Stops: un-REGISTERs (each at most 5 s, waited for at most `limit`) and answers ringing
    /// offers 480.
    pub fn shutdown(&self, limit: Duration) {
        self.registrations.stop();
        if let Ok(mut v) = self.offers.lock() {
            v.iter_mut().for_each(|o| *o = None);
        }
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.registrations.finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
