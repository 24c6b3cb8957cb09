//! The `acd` [`PhoneDriver`]: the lines of the configuration on one SIP endpoint, one tokio
//! runtime owned by the driver, one task per outgoing call, one registration task per line with
//! incoming indication, and one offers task for incoming calls.

use crate::call::{self, Ctl, LineAccount};
use crate::config::{self, Parsed};
use crate::outcome::{destination_uri, offer_end_mode};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tapir_core::{
    AddressId, AddressInfo, CallId, CallState, Completion, DriverError, DriverEvent, ErrorKind,
    LineCaps, LineInfo, LineKey, Operation, OperationSet, PhoneDriver, Request, RequestEnvelope,
    SharedSink,
};
use tapir_sip_ua::header::Uri;
use tapir_sip_ua::leg::net::start_error;
use tapir_sip_ua::offer::{OfferError, OfferEvent, Offers};
use tapir_sip_ua::report::{offered_info, CallReporter, Gate, Registrations};
use tapir_sip_ua::runtime::DriverRuntime;
use tapir_sip_ua::{Endpoint, Message, Resolver};
use tokio::sync::mpsc;

/// What every call of the driver shares.
pub struct Shared {
    /// The checked configuration.
    pub parsed: Parsed,
    /// The driver's one SIP endpoint.
    pub endpoint: Endpoint,
    /// DNS.
    pub resolver: Arc<Resolver>,
}

/// One line.
struct Line {
    key: LineKey,
    enabled: bool,
    register: bool,
    account: Arc<LineAccount>,
    active: AtomicU32,
    registered: Arc<AtomicBool>,
    /// ENUM suffix when ENUM is on for the line.
    enum_suffix: Option<Arc<str>>,
}

enum CallKind {
    Out(mpsc::Sender<Ctl>),
    Offered(u64),
}

struct CallEntry {
    line: Arc<Line>,
    kind: CallKind,
}

struct Inner {
    gate: Arc<Gate>,
    shared: Arc<Shared>,
    lines: Arc<HashMap<LineKey, Arc<Line>>>,
    calls: Mutex<HashMap<CallId, CallEntry>>,
    offers_by_id: Mutex<HashMap<u64, CallId>>,
    offers: Mutex<Option<Offers>>,
    registrations: Registrations,
    shut: AtomicBool,
}

impl Inner {
    /// Forgets a call and frees its place on the line.
    fn remove_call(&self, call: CallId) {
        if let Ok(mut calls) = self.calls.lock() {
            if let Some(e) = calls.remove(&call) {
                e.line.active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Sends the report that ends a call and frees its place, under the call table's lock.
    fn end_call(&self, call: CallId, report: &mut dyn FnMut()) {
        match self.calls.lock() {
            Ok(mut calls) => {
                report();
                if let Some(e) = calls.remove(&call) {
                    e.line.active.fetch_sub(1, Ordering::SeqCst);
                }
            }
            Err(_) => report(),
        }
    }

    fn on_offer_event(&self, ev: OfferEvent) {
        match ev {
            OfferEvent::Offered {
                id,
                line,
                caller,
                called,
                call_id,
            } => {
                let key = LineKey::new(line);
                let Some(line) = self.lines.get(&key).cloned() else {
                    return;
                };
                let call = self.gate.new_call_id();
                line.active.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut calls) = self.calls.lock() {
                    calls.insert(
                        call,
                        CallEntry {
                            line,
                            kind: CallKind::Offered(id),
                        },
                    );
                }
                if let Ok(mut o) = self.offers_by_id.lock() {
                    o.insert(id, call);
                }
                let info = offered_info(caller, called, call_id);
                self.gate.event(DriverEvent::NewCall {
                    line: key,
                    call,
                    state: CallState::Offering,
                    info,
                });
            }
            OfferEvent::Ended { id, end } => {
                let call = self
                    .offers_by_id
                    .lock()
                    .ok()
                    .and_then(|mut o| o.remove(&id));
                let Some(call) = call else { return };
                let line = self
                    .calls
                    .lock()
                    .ok()
                    .and_then(|c| c.get(&call).map(|e| e.line.key.clone()));
                let Some(line) = line else { return };
                let mode = offer_end_mode(&end);
                self.gate.event(DriverEvent::CallState {
                    line: line.clone(),
                    call,
                    state: CallState::Disconnected(mode),
                });
                self.remove_call(call);
                self.gate.event(DriverEvent::CallState {
                    line,
                    call,
                    state: CallState::Idle,
                });
            }
        }
    }
}

/// A running `acd` driver.
pub struct AcdDriver {
    inner: Arc<Inner>,
    runtime: DriverRuntime,
}

/// Picks the line for an incoming INVITE: the Contact's `line=` parameter we registered (what a
/// registrar puts in the Request-URI), else a line whose own account is the Request-URI's user,
/// else the first registered line of the account with room.
fn pick_line(
    lines: &HashMap<LineKey, Arc<Line>>,
    order: &[LineKey],
    max_calls: u32,
    invite: &Message,
) -> Result<String, (u16, &'static str)> {
    let ruri = invite.request_uri().and_then(Uri::parse);
    let usable = |l: &Line| l.enabled && l.register;
    let free = |l: &Line| l.active.load(Ordering::SeqCst) < max_calls;
    if let Some(key) = ruri.as_ref().and_then(|u| u.params.get("line")) {
        let line = lines.get(&LineKey::new(key)).ok_or((404, "Not Found"))?;
        if !usable(line) {
            return Err((480, "Temporarily Unavailable"));
        }
        if !free(line) {
            return Err((486, "Busy Here"));
        }
        return Ok(line.key.0.clone());
    }
    let user = ruri.and_then(|u| u.user).unwrap_or_default();
    let mut any = false;
    for key in order {
        let Some(l) = lines.get(key) else { continue };
        if !usable(l) || l.account.user != user {
            continue;
        }
        any = true;
        if free(l) && l.registered.load(Ordering::SeqCst) {
            return Ok(l.key.0.clone());
        }
    }
    if any {
        Err((486, "Busy Here"))
    } else {
        Err((404, "Not Found"))
    }
}

/// Builds the driver from its JSON section.
///
/// # Errors
/// `InvalidParameter` for a bad configuration, `ResourceUnavailable` when the socket cannot be
/// bound or the runtime cannot start.
pub fn build(config_json: &str, sink: SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError> {
    let parsed = config::parse(config_json)
        .map_err(|e| DriverError::new(ErrorKind::InvalidParameter, e.to_string()))?;
    let runtime = DriverRuntime::new("tapir-acd").map_err(|e| {
        DriverError::new(
            ErrorKind::ResourceUnavailable,
            format!("cannot start the acd runtime: {e}"),
        )
    })?;
    let bind = parsed.bind;
    let user_agent = parsed
        .cfg
        .sip
        .user_agent
        .clone()
        .unwrap_or_else(|| format!("tapir-acd/{}", env!("CARGO_PKG_VERSION")));
    let endpoint_config = parsed
        .cfg
        .net
        .endpoint(bind, user_agent, parsed.needs_tls());
    let endpoint = runtime
        .block_on(Endpoint::start(endpoint_config))
        .unwrap_or_else(|| Err(tapir_sip_ua::EndpointError::Stopped))
        .map_err(|e| start_error(&e))?;
    let gate = Arc::new(Gate::new(sink));
    let main_account = Arc::new(LineAccount {
        user: parsed.cfg.sip.user.clone(),
        credentials: parsed.account.credentials(),
    });
    let mut lines = HashMap::with_capacity(parsed.lines.len());
    let mut order = Vec::with_capacity(parsed.lines.len());
    let mut infos = Vec::with_capacity(parsed.lines.len());
    let ops = OperationSet::empty()
        .with(Operation::MakeCall)
        .with(Operation::Drop)
        .with(Operation::BlindTransfer)
        .with(Operation::Redirect);
    for spec in &parsed.lines {
        let account = match &spec.account {
            Some((user, auth_user, password)) => Arc::new(LineAccount {
                user: user.clone(),
                credentials: parsed
                    .account
                    .credentials_of(user, auth_user.as_deref(), password),
            }),
            None => main_account.clone(),
        };
        let key = LineKey::new(spec.key.clone());
        let number = account.user.clone();
        lines.insert(
            key.clone(),
            Arc::new(Line {
                key: key.clone(),
                enabled: spec.enabled,
                register: spec.register && spec.enabled,
                account,
                active: AtomicU32::new(0),
                registered: Arc::new(AtomicBool::new(false)),
                enum_suffix: spec.enum_suffix.clone(),
            }),
        );
        order.push(key.clone());
        infos.push(LineInfo {
            key,
            name: spec.name.clone(),
            caps: LineCaps {
                // A disabled line offers nothing: the front end refuses every request on it
                // as unavailable (LINEERR_OPERATIONUNAVAIL) before it reaches us.
                operations: if spec.enabled {
                    ops
                } else {
                    OperationSet::empty()
                },
                forward_modes: Vec::new(),
                max_calls: parsed.cfg.sip.max_calls,
                addresses: vec![AddressInfo {
                    id: AddressId(0),
                    number,
                    name: parsed.cfg.sip.display_name.clone().unwrap_or_default(),
                }],
            },
            in_service: spec.enabled && !spec.register,
        });
    }
    let lines = Arc::new(lines);
    let resolver = parsed
        .cfg
        .net
        .resolver(parsed.needs_tls())
        .map_err(|p| DriverError::new(ErrorKind::InvalidParameter, p.to_string()))?;
    let shared = Arc::new(Shared {
        parsed,
        endpoint,
        resolver: Arc::new(resolver),
    });
    let registrations = Registrations::new(
        gate.clone(),
        shared.parsed.cfg.register_rate,
        shared.parsed.cfg.register_burst,
    );
    let inner = Arc::new(Inner {
        gate: gate.clone(),
        shared: shared.clone(),
        lines: lines.clone(),
        calls: Mutex::new(HashMap::new()),
        offers_by_id: Mutex::new(HashMap::new()),
        offers: Mutex::new(None),
        registrations,
        shut: AtomicBool::new(false),
    });
    for info in infos {
        gate.event(DriverEvent::LineCreated { info });
    }
    // Incoming indication: the offers task, then one paced registration per line.
    if lines.values().any(|l| l.register) {
        let weak: Arc<OnceLock<Weak<Inner>>> = Arc::new(OnceLock::new());
        let _ = weak.set(Arc::downgrade(&inner));
        let pick_lines = lines.clone();
        let max_calls = shared.parsed.cfg.sip.max_calls;
        let pick_order = order.clone();
        let report_weak = weak.clone();
        let ep = shared.endpoint.clone();
        let ring = Duration::from_secs(shared.parsed.cfg.offer_timeout_secs);
        let offers = runtime.block_on(Offers::start(
            ep,
            Box::new(move |m: &Message| pick_line(&pick_lines, &pick_order, max_calls, m)),
            ring,
            move |ev| {
                if let Some(inner) = report_weak.get().and_then(Weak::upgrade) {
                    inner.on_offer_event(ev);
                }
            },
        ));
        match offers {
            Some(Ok(o)) => {
                if let Ok(mut slot) = inner.offers.lock() {
                    *slot = Some(o);
                }
            }
            _ => {
                return Err(DriverError::new(
                    ErrorKind::ResourceUnavailable,
                    "cannot start the incoming-call task",
                ))
            }
        }
        let p = &shared.parsed;
        for key in &order {
            let Some(line) = lines.get(key).cloned() else {
                continue;
            };
            if !line.register {
                continue;
            }
            let reg = p.account.registration(
                &line.key.0,
                &line.account.user,
                line.account.credentials.clone(),
            );
            inner.registrations.start(
                runtime.spawner(),
                shared.endpoint.clone(),
                shared.resolver.clone(),
                reg,
                line.key.clone(),
                line.registered.clone(),
            );
        }
    }
    Ok(Box::new(AcdDriver { inner, runtime }))
}

fn no_call(call: CallId, line: &LineKey) -> DriverError {
    DriverError::new(
        ErrorKind::InvalidCallHandle,
        format!("no call {call} on line {line}"),
    )
}

impl AcdDriver {
    fn make_call(
        &self,
        env: &RequestEnvelope,
        line: Arc<Line>,
        call: CallId,
        address: AddressId,
        destination: Option<&str>,
    ) -> Result<(), DriverError> {
        if address != AddressId(0) {
            return Err(DriverError::new(
                ErrorKind::InvalidAddressId,
                "acd lines have one address (0)",
            ));
        }
        let destination = destination
            .ok_or_else(|| DriverError::unavailable("acd lines dial at once (no dial tone)"))?;
        let uri = destination_uri(destination, &self.inner.shared.parsed.domain())
            .map_err(|e| DriverError::new(ErrorKind::InvalidAddress, e.0))?;
        let max = self.inner.shared.parsed.cfg.sip.max_calls;
        let (tx, rx) = mpsc::channel(8);
        {
            let mut calls = self
                .inner
                .calls
                .lock()
                .map_err(|_| DriverError::failed("call table poisoned"))?;
            if calls.contains_key(&call) {
                return Err(DriverError::new(
                    ErrorKind::InvalidCallHandle,
                    format!("call {call} exists already"),
                ));
            }
            if line.active.load(Ordering::SeqCst) >= max {
                return Err(DriverError::new(
                    ErrorKind::ResourceUnavailable,
                    format!("line {} already carries {max} call(s)", line.key),
                ));
            }
            line.active.fetch_add(1, Ordering::SeqCst);
            calls.insert(
                call,
                CallEntry {
                    line: line.clone(),
                    kind: CallKind::Out(tx),
                },
            );
        }
        let weak = Arc::downgrade(&self.inner);
        let rep = CallReporter::new(
            self.inner.gate.clone(),
            env.line.clone(),
            call,
            destination.to_owned(),
            Box::new(move |report: &mut dyn FnMut()| match weak.upgrade() {
                Some(inner) => inner.end_call(call, report),
                None => report(),
            }),
        );
        let inner = self.inner.clone();
        let account = line.account.clone();
        let id = env.id;
        let dialled = destination.to_owned();
        let suffix = line.enum_suffix.clone();
        self.runtime.spawner().spawn(async move {
            // ENUM (RFC 6116): a +E.164 number with a SIP URI in DNS is called there; without
            // one it is dialled as usual.
            let resolver = &inner.shared.resolver;
            let uri = resolver.enum_or(&dialled, suffix.as_deref(), uri).await;
            call::run(inner.shared.clone(), account, rep, rx, uri, id).await;
            inner.remove_call(call);
        });
        Ok(())
    }

    fn to_call(&self, env: &RequestEnvelope, call: CallId, ctl: Ctl) -> Result<(), DriverError> {
        let calls = self
            .inner
            .calls
            .lock()
            .map_err(|_| DriverError::failed("call table poisoned"))?;
        let entry = calls
            .get(&call)
            .filter(|e| e.line.key == env.line)
            .ok_or_else(|| no_call(call, &env.line))?;
        match &entry.kind {
            CallKind::Out(tx) => match tx.try_send(ctl) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => Err(DriverError::new(
                    ErrorKind::ResourceUnavailable,
                    "the call is busy with earlier requests",
                )),
                Err(mpsc::error::TrySendError::Closed(ctl)) => {
                    // The call task is ending on its own right now.
                    match ctl {
                        Ctl::Drop(id) => self.inner.gate.complete(id, Ok(Completion::Done)),
                        _ => return Err(no_call(call, &env.line)),
                    }
                    Ok(())
                }
            },
            CallKind::Offered(offer) => {
                let offer = *offer;
                let offers = self
                    .inner
                    .offers
                    .lock()
                    .ok()
                    .and_then(|o| o.clone())
                    .ok_or_else(|| DriverError::failed("no incoming-call task"))?;
                let gate = self.inner.gate.clone();
                match ctl {
                    Ctl::Drop(id) => {
                        self.runtime.spawner().spawn(async move {
                            // 603 Decline: the application rejected the offered call.
                            let r = offers.reject(offer, 603).await;
                            let outcome = match r {
                                Ok(()) | Err(OfferError::Gone) => Ok(Completion::Done),
                                Err(e) => Err(DriverError::failed(e.to_string())),
                            };
                            gate.complete(id, outcome);
                        });
                        Ok(())
                    }
                    Ctl::Transfer { id, to } => {
                        self.runtime.spawner().spawn(async move {
                            let outcome = match offers.redirect(offer, to).await {
                                Ok(()) => Ok(Completion::Done),
                                Err(e) => Err(DriverError::new(
                                    ErrorKind::InvalidCallState,
                                    e.to_string(),
                                )),
                            };
                            gate.complete(id, outcome);
                        });
                        Ok(())
                    }
                    Ctl::Shutdown => Ok(()),
                }
            }
        }
    }

    fn call_kind_is_offered(&self, call: CallId) -> Option<bool> {
        self.inner
            .calls
            .lock()
            .ok()?
            .get(&call)
            .map(|e| matches!(e.kind, CallKind::Offered(_)))
    }
}

impl PhoneDriver for AcdDriver {
    fn submit(&self, env: RequestEnvelope) -> Result<(), DriverError> {
        if self.inner.shut.load(Ordering::SeqCst) {
            return Err(DriverError::new(
                ErrorKind::Uninitialized,
                "the acd driver has shut down",
            ));
        }
        let line = self.inner.lines.get(&env.line).cloned().ok_or_else(|| {
            DriverError::new(ErrorKind::BadDeviceId, format!("no acd line {}", env.line))
        })?;
        if !line.enabled {
            return Err(DriverError::unavailable(format!(
                "acd line {} is disabled",
                env.line
            )));
        }
        let domain = self.inner.shared.parsed.domain();
        match &env.request {
            Request::MakeCall {
                call,
                address,
                destination,
            } => self.make_call(&env, line, *call, *address, destination.as_deref()),
            Request::Drop { call } => self.to_call(&env, *call, Ctl::Drop(env.id)),
            Request::BlindTransfer { call, destination } => {
                if self.call_kind_is_offered(*call) == Some(true) {
                    return Err(DriverError::new(
                        ErrorKind::InvalidCallState,
                        "an offered call is redirected, not transferred",
                    ));
                }
                let to = call::agent_uri(destination, &domain)?;
                self.to_call(&env, *call, Ctl::Transfer { id: env.id, to })
            }
            Request::Redirect { call, destination } => {
                if self.call_kind_is_offered(*call) == Some(false) {
                    return Err(DriverError::new(
                        ErrorKind::InvalidCallState,
                        "only an offered call can be redirected; use BlindTransfer",
                    ));
                }
                let to = call::agent_uri(destination, &domain)?;
                self.to_call(&env, *call, Ctl::Transfer { id: env.id, to })
            }
            other => Err(DriverError::unavailable(format!(
                "{} is not available on acd lines (no media: the dialer only places, transfers, redirects and drops calls)",
                other.operation().name()
            ))),
        }
    }

    fn shutdown(&self) {
        if self.inner.shut.swap(true, Ordering::SeqCst) {
            return;
        }
        self.inner.registrations.stop();
        let ctls: Vec<mpsc::Sender<Ctl>> = self
            .inner
            .calls
            .lock()
            .map(|c| {
                c.values()
                    .filter_map(|e| match &e.kind {
                        CallKind::Out(tx) => Some(tx.clone()),
                        CallKind::Offered(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        for c in &ctls {
            let _ = c.try_send(Ctl::Shutdown);
        }
        if let Ok(mut o) = self.inner.offers.lock() {
            // The offers task answers what still rings with 480 and stops.
            o.take();
        }
        // Calls CANCEL/BYE their legs (BYE waits at most 4 s); registrations remove their
        // bindings (at most 5 s). Both run in parallel; wait for them, at most 6 s.
        let deadline = Instant::now() + Duration::from_secs(6);
        while Instant::now() < deadline {
            let calls_done = self
                .inner
                .calls
                .lock()
                .map(|c| c.values().all(|e| matches!(e.kind, CallKind::Offered(_))))
                .unwrap_or(true);
            if calls_done && self.inner.registrations.finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the endpoint send what the tasks queued last (final answers, BYE, un-REGISTER).
        std::thread::sleep(Duration::from_millis(100));
        self.inner.gate.close();
        self.runtime.shutdown();
    }
}

impl Drop for AcdDriver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(key: &str, user: &str, register: bool) -> Arc<Line> {
        Arc::new(Line {
            key: LineKey::new(key),
            enabled: true,
            register,
            account: Arc::new(LineAccount {
                user: user.into(),
                credentials: tapir_sip_ua::digest::Credentials {
                    username: user.into(),
                    password: String::new(),
                    realm: None,
                },
            }),
            active: AtomicU32::new(0),
            registered: Arc::new(AtomicBool::new(true)),
            enum_suffix: None,
        })
    }

    fn invite(ruri: &str) -> Message {
        Message::parse(
            format!("INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:1@x>;tag=1\r\nTo: <sip:acd@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n").as_bytes(),
        )
        .expect("invite")
    }

    #[test]
    fn incoming_calls_find_their_line() {
        let mut map = HashMap::new();
        let order: Vec<LineKey> = ["1", "2", "3"].iter().map(|k| LineKey::new(*k)).collect();
        map.insert(order[0].clone(), line("1", "acd", true));
        map.insert(order[1].clone(), line("2", "acd", true));
        map.insert(order[2].clone(), line("3", "own", false));
        assert_eq!(
            pick_line(&map, &order, 1, &invite("sip:acd@127.0.0.1:5060;line=2")),
            Ok("2".into())
        );
        assert_eq!(
            pick_line(&map, &order, 1, &invite("sip:acd@127.0.0.1:5060;line=9")),
            Err((404, "Not Found"))
        );
        assert_eq!(
            pick_line(&map, &order, 1, &invite("sip:acd@127.0.0.1:5060;line=3")),
            Err((480, "Temporarily Unavailable"))
        );
        assert_eq!(
            pick_line(&map, &order, 1, &invite("sip:acd@127.0.0.1")),
            Ok("1".into())
        );
        map[&order[0]].active.store(1, Ordering::SeqCst);
        assert_eq!(
            pick_line(&map, &order, 1, &invite("sip:acd@127.0.0.1")),
            Ok("2".into())
        );
        map[&order[1]].active.store(1, Ordering::SeqCst);
        assert_eq!(
            pick_line(&map, &order, 1, &invite("sip:acd@127.0.0.1;line=2")),
            Err((486, "Busy Here"))
        );
        assert_eq!(
            pick_line(&map, &order, 1, &invite("sip:acd@127.0.0.1")),
            Err((486, "Busy Here"))
        );
    }
}
