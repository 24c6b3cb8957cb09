//! The async shell of a call leg: it routes the leg's Call-ID on the [`Endpoint`], resolves
//! the first hop, and moves the [`LegCore`]'s actions to the endpoint and what arrives (client
//! transaction events, routed requests, timers) back into it. No protocol decision is made here.

use super::core::{Action, Dest, LegCore, LegEvent, ReqId};
use super::outcome::LegFailure;
use super::LegSetup;
use crate::endpoint::{Endpoint, Incoming};
use crate::header::Uri;
use crate::resolve::{Resolver, Target};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// What [`Leg::next`] saw first: an event of the leg, or a message on the driver's control
/// channel (`None` once that channel is closed).
#[derive(Debug)]
pub enum Next<C> {
    /// The leg's event.
    Leg(LegEvent),
    /// The driver's control message.
    Ctl(Option<C>),
}

enum Input {
    Incoming(Option<Incoming>),
    Timer,
}

/// A running call leg. Its INVITE is out once [`Leg::start`] returned.
pub struct Leg {
    core: LegCore,
    endpoint: Endpoint,
    resolver: Arc<Resolver>,
    inbox: mpsc::Receiver<Incoming>,
    /// The inbox's own sender, weak so that the inbox still closes when the endpoint stops:
    /// the leg's client transactions report into it ([`Endpoint::request_routed`]).
    route: mpsc::WeakSender<Incoming>,
    inbox_open: bool,
    /// The leg's client transactions that have not ended yet.
    txs: Vec<ReqId>,
    hops: Vec<(String, Target)>,
    closed: bool,
}

impl std::fmt::Debug for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leg")
            .field("call_id", &self.core.call_id())
            .finish()
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

impl Leg {
    /// Routes the Call-ID, resolves the first hop and sends the INVITE.
    ///
    /// # Errors
    /// The [`LegFailure`] when no INVITE could be sent (no address for the first hop, the
    /// endpoint refused it or has stopped): the call never existed and nothing is held.
    pub async fn start(
        mut setup: LegSetup,
        endpoint: Endpoint,
        resolver: Arc<Resolver>,
    ) -> Result<Leg, LegFailure> {
        let hop = match setup.first_hop.clone() {
            Some(h) => h,
            None => Uri::parse(&setup.request_uri).ok_or_else(|| {
                LegFailure::Unreachable(format!("{} is not a SIP URI", setup.request_uri))
            })?,
        };
        setup.failover_silence = resolver.failover_timeout();
        let (route, inbox) = mpsc::channel(32);
        let weak = route.downgrade();
        endpoint
            .route_call(&setup.call_id, route)
            .await
            .map_err(|_| LegFailure::Stopped)?;
        let resolved = match resolver.resolve(&hop, setup.transport).await {
            Ok(t) if !t.is_empty() => Ok(t),
            Ok(_) => Err(LegFailure::Unreachable(format!("no address for {hop}"))),
            Err(e) => Err(LegFailure::Unreachable(e.to_string())),
        };
        let targets = match resolved {
            Ok(t) => t,
            Err(e) => {
                let _ = endpoint.unroute_call(&setup.call_id).await;
                return Err(e);
            }
        };
        let targets = targets
            .into_iter()
            .map(|t| (t, endpoint.local_addr_for(&t)))
            .collect();
        let mut leg = Leg {
            core: LegCore::new(setup, targets, Instant::now()),
            endpoint,
            resolver,
            inbox,
            route: weak,
            inbox_open: true,
            txs: Vec::new(),
            hops: Vec::new(),
            closed: false,
        };
        leg.run_actions().await;
        if !leg.core.placed() {
            let failure = match leg.core.pop_event() {
                Some(LegEvent::Failed(f)) => f,
                _ => LegFailure::Stopped,
            };
            leg.close().await;
            return Err(failure);
        }
        Ok(leg)
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        self.core.call_id()
    }

    /// True once the peer hung up.
    pub fn remote_gone(&self) -> bool {
        self.core.remote_gone()
    }

    /// True once the current REFER was accepted.
    pub fn refer_accepted(&self) -> bool {
        self.core.refer_accepted()
    }

    /// The state machine, for inspection.
    pub fn core(&self) -> &LegCore {
        &self.core
    }

    /// Waits for the leg's next event or a message on `ctl`, whichever comes first. While the
    /// INVITE is being cancelled `ctl` is left alone (what comes meanwhile waits there for the
    /// driver). Once `ctl` answered `None` (closed), wait with [`Self::event`] instead.
    pub async fn next<C>(&mut self, ctl: &mut mpsc::Receiver<C>) -> Next<C> {
        self.step(Some(ctl)).await
    }

    /// Waits for the leg's next event.
    pub async fn event(&mut self) -> LegEvent {
        match self.step::<()>(None).await {
            Next::Leg(ev) => ev,
            Next::Ctl(_) => LegEvent::Stopped,
        }
    }

    /// Cancels the ringing INVITE (see [`LegCore::cancel`]).
    pub async fn cancel(&mut self) {
        self.core.cancel(Instant::now());
        self.run_actions().await;
    }

    /// Sends REFER to `to` in the dialog (see [`LegCore::refer`]); false without a dialog.
    pub async fn refer(&mut self, to: &str) -> bool {
        let sent = self.core.refer(to);
        self.run_actions().await;
        sent
    }

    /// Sends BYE if the dialog is up (see [`LegCore::hangup`]); [`Self::released`] waits for
    /// its end.
    pub async fn hangup(&mut self) {
        self.core.hangup(Instant::now());
        self.run_actions().await;
    }

    /// Waits until the leg is released (answering what arrives meanwhile); other events are
    /// dropped.
    pub async fn released(&mut self) {
        loop {
            if let LegEvent::Released | LegEvent::Stopped = self.event().await {
                return;
            }
        }
    }

    /// [`Self::hangup`], then [`Self::released`].
    pub async fn release(&mut self) {
        self.hangup().await;
        self.released().await;
    }

    /// Stops routing the Call-ID to the leg.
    pub async fn close(mut self) {
        self.closed = true;
        let _ = self.endpoint.unroute_call(self.core.call_id()).await;
    }

    async fn step<C>(&mut self, mut ctl: Option<&mut mpsc::Receiver<C>>) -> Next<C> {
        loop {
            if let Some(ev) = self.core.pop_event() {
                return Next::Leg(ev);
            }
            let deadline = self.core.next_deadline();
            if !self.inbox_open && self.txs.is_empty() && deadline.is_none() && ctl.is_none() {
                // Nothing can happen any more.
                return Next::Leg(LegEvent::Stopped);
            }
            let watch_ctl = ctl.is_some() && !self.core.cancelling();
            let input = tokio::select! {
                biased;
                c = async {
                    match ctl.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                }, if watch_ctl => return Next::Ctl(c),
                inc = self.inbox.recv(), if self.inbox_open => Input::Incoming(inc),
                () = until(deadline) => Input::Timer,
            };
            let now = Instant::now();
            match input {
                Input::Incoming(Some(Incoming::Client {
                    id,
                    event: Some(ev),
                })) => self.core.on_client(ReqId(id), ev, now),
                Input::Incoming(Some(Incoming::Client { id, event: None })) => {
                    self.txs.retain(|i| i.0 != id);
                    self.core.on_tx_closed(ReqId(id), now);
                }
                Input::Incoming(Some(inc)) => self.core.on_incoming(inc, now),
                Input::Incoming(None) => {
                    self.inbox_open = false;
                    // The endpoint stopped: no transaction of the leg reports any more.
                    for id in std::mem::take(&mut self.txs) {
                        self.core.on_tx_closed(id, now);
                    }
                    self.core.on_endpoint_gone();
                }
                Input::Timer => self.core.on_timer(now),
            }
            self.run_actions().await;
        }
    }

    async fn run_actions(&mut self) {
        while let Some(action) = self.core.pop_action() {
            match action {
                Action::Send { id, msg, dest } => {
                    let target = self.target(&dest).await;
                    let sent = match self.route.upgrade() {
                        Some(route) => self.endpoint.request_routed(msg, target, route, id.0).await,
                        None => Err(crate::endpoint::EndpointError::Stopped),
                    };
                    match sent {
                        Ok(request) => {
                            self.core.on_sent(id, request);
                            self.txs.push(id);
                        }
                        Err(e) => self.core.on_send_failed(id, e.to_string(), Instant::now()),
                    }
                }
                Action::Resend { msg, dest } => {
                    let target = self.target(&dest).await;
                    let _ = self.endpoint.send_ack(msg, target).await;
                }
                Action::Respond { key, msg } => {
                    let _ = self.endpoint.respond(key, msg).await;
                }
            }
        }
    }

    /// Where `dest` is: a dialog's hop resolved once (RFC 3263), else the leg's own target.
    async fn target(&mut self, dest: &Dest) -> Target {
        match dest {
            Dest::Target(t) => *t,
            Dest::Hop { uri, fallback } => {
                let key = uri.to_string();
                if let Some((_, t)) = self.hops.iter().find(|(k, _)| *k == key) {
                    return *t;
                }
                let t = self
                    .resolver
                    .resolve(uri, self.core.transport())
                    .await
                    .ok()
                    .and_then(|v| v.first().copied())
                    .unwrap_or(*fallback);
                self.hops.push((key, t));
                t
            }
        }
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // A leg dropped without `close` (a task cancelled): stop routing its Call-ID anyway.
        if tokio::runtime::Handle::try_current().is_ok() {
            let endpoint = self.endpoint.clone();
            let call_id = self.core.call_id().to_owned();
            crate::runtime::spawn(async move {
                let _ = endpoint.unroute_call(&call_id).await;
            });
        }
    }
}
