//! The mirror of a driver instance another node runs: a [`PhoneDriver`] in this node's front
//! end whose lines and calls follow the owner's (a snapshot at start, then the owner's events
//! from the stream) and whose requests, phone table and phone callbacks go to the owner.
//!
//! A forwarded request keeps the request and call ids this node gave it, so the owner's
//! completion (on the stream) completes it here. When the owner fails, the lease manager
//! removes the mirror with [`Removal::failed`](tapir_tsp::Removal::failed); requests still
//! outstanding then complete with an error here, once the feed has read everything the owner
//! could have written (its completion wins if it is there).

use super::node::{unreachable, Node, Unanswered};
use super::wire::{
    DeviceReply, DeviceRequest, DevicesReply, Forward, ForwardReply, Holder, SnapshotReply,
};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tapir_core::{
    CallId, CallInfo, DeviceAction, DeviceActionOutcome, DeviceStatus, DriverError, DriverEvent,
    ErrorKind, HttpCallback, HttpReply, LineId, LineInfo, LineKey, PhoneDriver, RequestEnvelope,
    RequestId, SharedSink,
};
use tapir_tsp::{LineSnapshot, RequestResult, TspEvent};

/// How long a snapshot or a phone-table request may take.
const ASK_WITHIN: Duration = Duration::from_secs(3);

/// What a stream message says besides its event.
#[derive(Debug, Default)]
pub struct Extra {
    /// The line of a `line_created`.
    pub line: Option<LineSnapshot>,
    /// The info of a call seen for the first time without `new_call`.
    pub call: Option<CallInfo>,
}

/// The mirror's state, shared with the feed that hands it the owner's events.
pub struct ProxyShared {
    instance: String,
    holder: Holder,
    node: Arc<Node>,
    sink: SharedSink,
    owner_failed: AtomicBool,
    state: Mutex<State>,
}

struct State {
    /// `None` until the snapshot is applied; events meanwhile wait in `early`.
    since: Option<u64>,
    early: Vec<(u64, TspEvent, Extra)>,
    keys: HashMap<LineId, LineKey>,
    calls: HashSet<CallId>,
    /// `new_call` seen, waiting for the call's first state.
    fresh: HashMap<CallId, (LineKey, CallInfo)>,
    outstanding: HashMap<RequestId, LineId>,
    closed: bool,
}

/// The driver the front end holds.
pub struct Proxy {
    shared: Arc<ProxyShared>,
}

impl ProxyShared {
    /// The owner this mirror follows.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Says the owner failed: removing the mirror then fails its outstanding requests.
    pub fn owner_failed(&self) {
        self.owner_failed.store(true, Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An event of the instance from the stream, written by run `run` at its position `seq`.
    pub fn on_event(&self, run: u64, seq: u64, event: TspEvent, extra: Extra) {
        if run != self.holder.run {
            // Another run's (an earlier owner's late events, or a new owner the lease manager
            // has not switched to yet).
            return;
        }
        let mut st = self.lock();
        if st.closed {
            return;
        }
        match st.since {
            None => st.early.push((seq, event, extra)),
            Some(since) if seq <= since => {}
            Some(_) => self.apply(&mut st, event, extra),
        }
    }

    fn apply(&self, st: &mut State, event: TspEvent, extra: Extra) {
        let key_of = |st: &State, line: LineId| st.keys.get(&line).cloned();
        match event {
            TspEvent::LineCreated { line, .. } => {
                if let Some(snapshot) = extra.line {
                    self.add_line(st, &snapshot);
                }
                let _ = line;
            }
            TspEvent::LineRemoved { line } => {
                if let Some(key) = st.keys.remove(&line) {
                    self.sink.event(DriverEvent::LineRemoved { line: key });
                }
            }
            TspEvent::LineService {
                line,
                in_service,
                reason,
            } => {
                let Some(key) = key_of(st, line) else { return };
                self.sink.event(if in_service {
                    DriverEvent::LineInService { line: key }
                } else {
                    DriverEvent::LineOutOfService {
                        line: key,
                        reason: reason.unwrap_or_default(),
                    }
                });
            }
            TspEvent::NewCall { line, call, info } => {
                if let Some(key) = key_of(st, line) {
                    st.fresh.insert(call, (key, info));
                }
            }
            TspEvent::CallState { line, call, state } => {
                let Some(key) = key_of(st, line) else { return };
                if let Some((key, info)) = st.fresh.remove(&call) {
                    st.calls.insert(call);
                    self.sink.event(DriverEvent::NewCall {
                        line: key,
                        call,
                        state,
                        info,
                    });
                } else if st.calls.insert(call) {
                    // A call another node requested: this front end has not seen it yet.
                    self.sink.event(DriverEvent::NewCall {
                        line: key,
                        call,
                        state,
                        info: extra.call.unwrap_or_default(),
                    });
                } else {
                    self.sink.event(DriverEvent::CallState {
                        line: key,
                        call,
                        state,
                    });
                }
                if state.is_idle() {
                    st.calls.remove(&call);
                }
            }
            TspEvent::CallInfo { line, call, info } => {
                let Some(key) = key_of(st, line) else { return };
                self.sink.event(DriverEvent::CallInfo {
                    line: key,
                    call,
                    info,
                });
            }
            TspEvent::AddressState {
                line,
                address,
                status,
            } => {
                let Some(key) = key_of(st, line) else { return };
                self.sink.event(DriverEvent::AddressState {
                    line: key,
                    address,
                    status,
                });
            }
            TspEvent::Completed {
                request, result, ..
            } => {
                if st.outstanding.remove(&request).is_some() {
                    let outcome = match result {
                        RequestResult::Ok(c) => Ok(c),
                        RequestResult::Err(e) => Err(e),
                    };
                    self.sink.complete(request, outcome);
                }
            }
        }
    }

    fn add_line(&self, st: &mut State, line: &LineSnapshot) {
        self.node.ids.remember(&self.instance, &line.key, line.id);
        st.keys.insert(line.id, line.key.clone());
        self.sink.event(DriverEvent::LineCreated {
            info: LineInfo {
                key: line.key.clone(),
                name: line.name.clone(),
                caps: line.caps.clone(),
                in_service: line.in_service,
            },
        });
        for (address, status) in &line.addresses {
            self.sink.event(DriverEvent::AddressState {
                line: line.key.clone(),
                address: *address,
                status: status.clone(),
            });
        }
    }

    /// Applies the owner's snapshot, then the events that arrived while it was asked for.
    fn start(&self, reply: SnapshotReply) {
        let mut st = self.lock();
        for line in &reply.snapshot.lines {
            self.add_line(&mut st, line);
        }
        for call in reply.snapshot.calls {
            if call.state.is_idle() {
                continue;
            }
            let Some(key) = st.keys.get(&call.line).cloned() else {
                continue;
            };
            st.calls.insert(call.id);
            self.sink.event(DriverEvent::NewCall {
                line: key,
                call: call.id,
                state: call.state,
                info: call.info,
            });
        }
        let since = reply.snapshot.seq;
        st.since = Some(since);
        for (seq, event, extra) in std::mem::take(&mut st.early) {
            if seq > since {
                self.apply(&mut st, event, extra);
            }
        }
    }
}

impl Proxy {
    /// Mirrors instance `instance` run by `holder`: registers with the feed, asks the owner for
    /// its snapshot and reports its lines and calls.
    ///
    /// # Errors
    /// When the owner does not answer (the lease manager tries again).
    pub fn build(
        node: &Arc<Node>,
        instance: &str,
        holder: Holder,
        sink: SharedSink,
    ) -> Result<Box<dyn PhoneDriver>, DriverError> {
        let shared = Arc::new(ProxyShared {
            instance: instance.to_owned(),
            holder: holder.clone(),
            node: Arc::clone(node),
            sink,
            owner_failed: AtomicBool::new(false),
            state: Mutex::new(State {
                since: None,
                early: Vec::new(),
                keys: HashMap::new(),
                calls: HashSet::new(),
                fresh: HashMap::new(),
                outstanding: HashMap::new(),
                closed: false,
            }),
        });
        node.proxies
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(instance.to_owned(), Arc::clone(&shared));
        let reply: Result<SnapshotReply, Unanswered> =
            node.ask_blocking(&holder.node, "snapshot", &instance, ASK_WITHIN);
        let failed = |why: String| {
            node.proxies
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(instance);
            DriverError::new(ErrorKind::Disconnected, why)
        };
        let reply = match reply {
            Ok(r) if r.run == holder.run => r,
            Ok(_) => return Err(failed(format!("{} restarted", holder.node))),
            Err(e) => {
                return Err(failed(format!(
                    "no snapshot of {instance} from {}: {e:?}",
                    holder.node
                )))
            }
        };
        shared.start(reply);
        tracing::info!(instance, owner = %holder.node, "Mirroring a driver instance of another node.");
        Ok(Box::new(Proxy { shared }))
    }
}

impl PhoneDriver for Proxy {
    fn submit(&self, envelope: RequestEnvelope) -> Result<(), DriverError> {
        let s = &self.shared;
        if s.node.engine.client.connection_state() != async_nats::connection::State::Connected {
            // Nothing can reach the holder now: refused, so nothing waits for an answer that
            // may never come.
            return Err(unreachable(
                &s.holder.node,
                "cannot be reached (no NATS connection)",
            ));
        }
        let Some(line) = s.node.ids.known(&s.instance, &envelope.line) else {
            return Err(DriverError::new(
                ErrorKind::BadDeviceId,
                format!("no line {}", envelope.line),
            ));
        };
        let created: Vec<CallId> = match &envelope.request {
            tapir_core::Request::MakeCall { call, .. } => vec![*call],
            tapir_core::Request::SetupTransfer { consult, .. } => vec![*consult],
            _ => Vec::new(),
        };
        {
            let mut st = s.lock();
            st.outstanding.insert(envelope.id, line);
            st.calls.extend(created.iter().copied());
        }
        let forward = Forward {
            instance: s.instance.clone(),
            line,
            id: envelope.id,
            request: envelope.request,
        };
        let within = Duration::from_secs_f64(s.node.config.forward_timeout_s);
        let answer: Result<ForwardReply, Unanswered> =
            s.node
                .ask_blocking(&s.holder.node, "submit", &forward, within);
        let refused = |error: DriverError| {
            let mut st = s.lock();
            st.outstanding.remove(&forward.id);
            for call in &created {
                st.calls.remove(call);
            }
            Err(error)
        };
        match answer {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => refused(error),
            Err(Unanswered::NoResponders) => {
                refused(unreachable(&s.holder.node, "is not connected"))
            }
            // The owner may have taken it: the completion comes from the owner, or as an error
            // when the owner fails.
            Err(Unanswered::TimedOut) | Err(Unanswered::Failed(_)) => {
                tracing::warn!(request = %forward.id, owner = %s.holder.node, "A forwarded request got no answer in time; it completes when the owner answers or fails.");
                Ok(())
            }
        }
    }

    fn http_callback(&self, request: HttpCallback) -> HttpReply {
        let s = &self.shared;
        let question = (s.instance.clone(), request);
        match s
            .node
            .ask_blocking::<_, HttpReply>(&s.holder.node, "callback", &question, ASK_WITHIN)
        {
            Ok(reply) => reply,
            Err(_) => HttpReply::text(503, "the node running this instance does not answer\n"),
        }
    }

    fn devices(&self) -> Vec<DeviceStatus> {
        let s = &self.shared;
        match s.node.ask_blocking::<_, DevicesReply>(
            &s.holder.node,
            "devices",
            &s.instance,
            ASK_WITHIN,
        ) {
            Ok(Ok(devices)) => devices,
            _ => Vec::new(),
        }
    }

    fn device_action(
        &self,
        device: &str,
        action: DeviceAction,
    ) -> Result<DeviceActionOutcome, DriverError> {
        let s = &self.shared;
        let question = DeviceRequest {
            instance: s.instance.clone(),
            device: device.to_owned(),
            action,
        };
        match s
            .node
            .ask_blocking::<_, DeviceReply>(&s.holder.node, "action", &question, ASK_WITHIN)
        {
            Ok(reply) => reply,
            Err(_) => Err(unreachable(&s.holder.node, "does not answer")),
        }
    }

    fn shutdown(&self) {
        let s = &self.shared;
        s.node
            .proxies
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, p| !Arc::ptr_eq(p, s));
        if !s.owner_failed.load(Ordering::Acquire) {
            s.lock().closed = true;
            return;
        }
        // Whatever the owner wrote before it failed is in the stream: read it all first, so a
        // completion it sent wins over the error.
        let outstanding = !s.lock().outstanding.is_empty();
        if outstanding {
            let node = Arc::clone(&s.node);
            let caught = s
                .node
                .handle
                .block_on(async move { node.catch_up(Duration::from_secs(2)).await });
            if !caught {
                tracing::warn!(instance = %s.instance, "Could not read the event stream to its end before failing the requests the failed owner held.");
            }
        }
        let mut st = s.lock();
        st.closed = true;
        for (request, line) in std::mem::take(&mut st.outstanding) {
            let error = DriverError::new(
                ErrorKind::Disconnected,
                format!(
                    "the node owning line {line} ({}) failed before the request completed; its outcome is unknown",
                    s.holder.node
                ),
            );
            s.sink.complete(request, Err(error));
        }
    }
}

impl std::fmt::Debug for ProxyShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyShared")
            .field("instance", &self.instance)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}
