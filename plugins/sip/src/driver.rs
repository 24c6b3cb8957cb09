//! The [`PhoneDriver`] of both SIP drivers: lines from the configuration, one tokio runtime
//! owned by the driver, one task per call.

use crate::call::{self, Ctl, LineCtx, Mode};
use crate::calls::Calls;
use crate::config;
use crate::outcome::{destination_uri, ClickToDialError};
use crate::report::{CallShared, Gate, OnEnd, Reporter};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tapir_core::{
    AddressId, AddressInfo, CallId, DriverError, DriverEvent, ErrorKind, LineCaps, LineInfo,
    LineKey, Operation, OperationSet, PhoneDriver, Request, RequestEnvelope, SharedSink,
};
use tapir_sip_ua::leg::net::start_error;
use tapir_sip_ua::report::CallReporter;
use tapir_sip_ua::runtime::DriverRuntime;
use tapir_sip_ua::Endpoint;
use tokio::sync::mpsc;

struct CallEntry {
    ctl: mpsc::Sender<Ctl>,
    shared: Arc<CallShared>,
}

struct Inner {
    gate: Arc<Gate>,
    lines: HashMap<LineKey, Arc<LineCtx>>,
    calls: Mutex<Calls<CallId, LineKey, CallEntry>>,
    incoming: Option<Arc<crate::incoming::IncomingCalls>>,
    shut: AtomicBool,
}

/// A running `sip-refer` or `sip-reverse` driver.
pub struct SipDriver {
    inner: Arc<Inner>,
    runtime: DriverRuntime,
}

/// Builds a driver of the given mode from its JSON section.
///
/// # Errors
/// `InvalidParameter` for a bad configuration, `ResourceUnavailable` when a socket cannot be
/// bound.
pub fn build(
    mode: Mode,
    config_json: &str,
    sink: SharedSink,
) -> Result<Box<dyn PhoneDriver>, DriverError> {
    let (cfg, lines) =
        config::parse(config_json).map_err(|e| DriverError::new(ErrorKind::InvalidParameter, e))?;
    let runtime = DriverRuntime::new("tapir-sip").map_err(|e| {
        DriverError::new(
            ErrorKind::ResourceUnavailable,
            format!("cannot start the SIP runtime: {e}"),
        )
    })?;
    let binds: Vec<SocketAddr> = lines.iter().map(|l| l.bind).collect();
    let tls = cfg.needs_tls(&lines);
    let resolver = Arc::new(
        cfg.net
            .resolver(tls)
            .map_err(|p| DriverError::new(ErrorKind::InvalidParameter, p.to_string()))?,
    );
    let started = runtime.block_on(async {
        let mut eps = HashMap::new();
        for bind in binds {
            if eps.contains_key(&bind) {
                continue;
            }
            let user_agent = format!("tapir/{}", env!("CARGO_PKG_VERSION"));
            let ep = Endpoint::start(cfg.net.endpoint(bind, user_agent, tls))
                .await
                .map_err(|e| start_error(&e))?;
            eps.insert(bind, ep);
        }
        Ok(eps)
    });
    let started: Result<HashMap<SocketAddr, Endpoint>, DriverError> =
        started.unwrap_or_else(|| Err(DriverError::failed("SIP endpoint start-up thread failed")));
    let endpoints = started?;
    let gate = Arc::new(Gate::new(sink));
    let mut ctxs = HashMap::new();
    for line in lines {
        let Some(endpoint) = endpoints.get(&line.bind).cloned() else {
            continue;
        };
        let key = LineKey::new(line.cfg.key.clone());
        let info = LineInfo {
            key: key.clone(),
            name: line
                .cfg
                .name
                .clone()
                .unwrap_or_else(|| line.cfg.key.clone()),
            caps: LineCaps {
                operations: if line.account.config.register {
                    OperationSet::empty()
                        .with(Operation::MakeCall)
                        .with(Operation::Drop)
                        .with(Operation::Redirect)
                } else {
                    OperationSet::empty()
                        .with(Operation::MakeCall)
                        .with(Operation::Drop)
                },
                forward_modes: Vec::new(),
                max_calls: line.account.config.max_calls,
                addresses: vec![AddressInfo {
                    id: AddressId(0),
                    number: line
                        .cfg
                        .phone_user
                        .clone()
                        .unwrap_or_else(|| line.user().to_owned()),
                    name: line.account.config.display_name.clone().unwrap_or_default(),
                }],
            },
            // A registering line is in service once registered.
            in_service: !line.account.config.register,
        };
        ctxs.insert(
            key,
            (
                Arc::new(LineCtx {
                    line,
                    endpoint,
                    resolver: resolver.clone(),
                    mode,
                }),
                info,
            ),
        );
    }
    let mut lines = HashMap::new();
    let mut ordered: Vec<(LineKey, Arc<LineCtx>)> = Vec::new();
    for (key, (ctx, info)) in ctxs {
        gate.event(DriverEvent::LineCreated { info });
        ordered.push((key.clone(), ctx.clone()));
        lines.insert(key, ctx);
    }
    let incoming = crate::incoming::IncomingCalls::start(&runtime, gate.clone(), &ordered)?;
    Ok(Box::new(SipDriver {
        inner: Arc::new(Inner {
            gate,
            lines,
            calls: Mutex::new(Calls::default()),
            incoming,
            shut: AtomicBool::new(false),
        }),
        runtime,
    }))
}

impl SipDriver {
    fn make_call(
        &self,
        env: &RequestEnvelope,
        call: CallId,
        address: AddressId,
        destination: Option<&str>,
    ) -> Result<(), DriverError> {
        let ctx = self.inner.lines.get(&env.line).cloned().ok_or_else(|| {
            DriverError::new(ErrorKind::BadDeviceId, format!("no SIP line {}", env.line))
        })?;
        if address != AddressId(0) {
            return Err(DriverError::new(
                ErrorKind::InvalidAddressId,
                "SIP lines have one address (0)",
            ));
        }
        let destination = destination.ok_or_else(|| {
            DriverError::unavailable("SIP click-to-dial needs a destination (no dial tone)")
        })?;
        let uri = destination_uri(destination, &ctx.line.domain())
            .map_err(|e| DriverError::new(ErrorKind::InvalidAddress, e.0))?;
        let mut calls = self
            .inner
            .calls
            .lock()
            .map_err(|_| DriverError::failed("call table poisoned"))?;
        if calls.contains(&call) {
            return Err(DriverError::new(
                ErrorKind::InvalidCallHandle,
                format!("call {call} exists already"),
            ));
        }
        let on_line = calls.on_line(&env.line);
        if on_line >= ctx.line.account.config.max_calls as usize {
            return Err(DriverError::new(
                ErrorKind::ResourceUnavailable,
                format!(
                    "line {} already carries {on_line} call(s), its maximum",
                    env.line
                ),
            ));
        }
        let shared = Arc::new(CallShared::default());
        if let Ok(mut m) = shared.make_call.lock() {
            *m = Some(env.id);
        }
        let (ctl_tx, ctl_rx) = mpsc::channel(8);
        calls.insert(
            call,
            env.line.clone(),
            CallEntry {
                ctl: ctl_tx,
                shared: shared.clone(),
            },
        );
        drop(calls);
        let weak = Arc::downgrade(&self.inner);
        let on_end: OnEnd = Box::new(move |report: &mut dyn FnMut()| match weak.upgrade() {
            Some(inner) => match inner.calls.lock() {
                Ok(mut calls) => {
                    report();
                    calls.remove(&call);
                }
                Err(_) => report(),
            },
            None => report(),
        });
        let rep = Reporter::new(
            CallReporter::new(
                self.inner.gate.clone(),
                env.line.clone(),
                call,
                destination.to_owned(),
                on_end,
            ),
            shared,
        );
        let inner = self.inner.clone();
        let dialled = destination.to_owned();
        self.runtime.spawner().spawn(async move {
            // ENUM (RFC 6116): a +E.164 number with a SIP URI in DNS is called there (the REFER
            // target in sip-refer, the first INVITE in sip-reverse); without one it is dialled
            // as usual.
            let suffix = ctx.line.enum_suffix.as_deref();
            let uri = ctx.resolver.enum_or(&dialled, suffix, uri).await;
            call::run(ctx, rep, ctl_rx, uri).await;
            if let Ok(mut calls) = inner.calls.lock() {
                calls.remove(&call);
            }
        });
        Ok(())
    }

    fn drop_call(&self, env: &RequestEnvelope, call: CallId) -> Result<(), DriverError> {
        let calls = self
            .inner
            .calls
            .lock()
            .map_err(|_| DriverError::failed("call table poisoned"))?;
        let entry = calls
            .get(&call)
            .filter(|(line, _)| **line == env.line)
            .map(|(_, e)| e)
            .ok_or_else(|| {
                DriverError::new(
                    ErrorKind::InvalidCallHandle,
                    format!("no call {call} on line {}", env.line),
                )
            })?;
        if let Ok(mut d) = entry.shared.drops.lock() {
            d.push(env.id);
        }
        match entry.ctl.try_send(Ctl::Drop) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // The task is ending on its own right now; the call is gone.
                for id in entry.shared.take_drops() {
                    self.inner
                        .gate
                        .complete(id, Ok(tapir_core::Completion::Done));
                }
            }
        }
        Ok(())
    }
}

impl PhoneDriver for SipDriver {
    fn submit(&self, env: RequestEnvelope) -> Result<(), DriverError> {
        if self.inner.shut.load(Ordering::SeqCst) {
            return Err(DriverError::new(
                ErrorKind::Uninitialized,
                "the SIP driver has shut down",
            ));
        }
        if let (Some(inc), Request::Drop { call } | Request::Redirect { call, .. }) =
            (&self.inner.incoming, &env.request)
        {
            if inc.owns(&env.line, *call) {
                let to = match &env.request {
                    Request::Redirect { destination, .. } => {
                        let domain = self
                            .inner
                            .lines
                            .get(&env.line)
                            .map(|c| c.line.domain())
                            .unwrap_or_default();
                        Some(
                            destination_uri(destination, &domain)
                                .map_err(|e| DriverError::new(ErrorKind::InvalidAddress, e.0))?,
                        )
                    }
                    _ => None,
                };
                return inc.finish(self.runtime.spawner(), *call, env.id, to);
            }
        }
        match &env.request {
            Request::MakeCall {
                call,
                address,
                destination,
            } => self.make_call(&env, *call, *address, destination.as_deref()),
            Request::Drop { call } => self.drop_call(&env, *call),
            other => Err(DriverError::unavailable(format!(
                "{} is not supported by the SIP click-to-dial drivers",
                other.operation().name()
            ))),
        }
    }

    fn shutdown(&self) {
        if self.inner.shut.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(inc) = &self.inner.incoming {
            inc.shutdown(Duration::from_secs(6));
        }
        let ctls: Vec<mpsc::Sender<Ctl>> = self
            .inner
            .calls
            .lock()
            .map(|c| c.values().map(|e| e.ctl.clone()).collect())
            .unwrap_or_default();
        for c in &ctls {
            let _ = c.try_send(Ctl::Shutdown);
        }
        // Give calls a moment to CANCEL/BYE their legs.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if self
                .inner
                .calls
                .lock()
                .map(|c| c.is_empty())
                .unwrap_or(true)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(calls) = self.inner.calls.lock() {
            for e in calls.values() {
                if let Some(id) = e.shared.take_make_call() {
                    self.inner
                        .gate
                        .complete(id, Err(ClickToDialError::Shutdown.to_driver_error()));
                }
                for id in e.shared.take_drops() {
                    self.inner
                        .gate
                        .complete(id, Ok(tapir_core::Completion::Done));
                }
            }
        }
        self.inner.gate.close();
        self.runtime.shutdown();
    }
}

impl Drop for SipDriver {
    fn drop(&mut self) {
        self.shutdown();
    }
}
