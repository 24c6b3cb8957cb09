//! One outgoing ACD call, as an async task: INVITE the target (Dialing → Ringback →
//! Connected), then wait for the application — `BlindTransfer` REFERs the target to the agent and
//! follows the sipfrag NOTIFYs; `Drop` CANCELs or BYEs. Every wait is bounded by a timer, the
//! transaction layer, or the application's own request; every exit releases the leg and the
//! Call-ID route, and completes every request it received exactly once.
//!
//! The failed-call rule (ARCHITECTURE.md): MakeCall completes Ok once the first INVITE is out,
//! with an error only when none could be sent (no address for the first hop). Every later end
//! but the application's Drop is a state: the cause (SIP status and reason phrase, or what
//! happened) in the call's info, `Busy` first for a busy target, then `Disconnected` with its
//! mode, reported once any BYE is sent; the driver frees the call right then.

use crate::driver::Shared;
use crate::outcome::{destination_uri, disconnect_mode, progress_state, TransferError};
use crate::report::CallReporter;
use std::sync::Arc;
use std::time::Duration;
use tapir_core::{CallState, Completion, DisconnectMode, DriverError, ErrorKind, RequestId};
use tapir_sip_ua::dialog::{new_call_id, new_tag};
use tapir_sip_ua::digest::Credentials;
use tapir_sip_ua::header::{NameAddr, Params, Uri};
use tapir_sip_ua::refer::{no_subscription, ReferNotify};
use tapir_sip_ua::register::answer as answer_challenge;
use tapir_sip_ua::resolve::failover::sleep_until_opt;
use tapir_sip_ua::{ClientEvent, ClientTx, Dialog, Incoming, Message, Method, Target};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

/// What the driver tells a running call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ctl {
    /// The application dropped the call (request to complete).
    Drop(RequestId),
    /// Blind transfer to `to` (a `sip:` URI).
    Transfer {
        /// The request to complete.
        id: RequestId,
        /// The agent's URI.
        to: String,
    },
    /// The driver shuts down.
    Shutdown,
}

/// The account a call is placed from.
#[derive(Debug, Clone)]
pub struct Account {
    /// SIP user (From).
    pub user: String,
    /// Digest credentials.
    pub credentials: Credentials,
}

/// How long to wait for a BYE's answer before reporting Idle anyway.
const BYE_WAIT: Duration = Duration::from_secs(4);
/// How long to wait after CANCEL (or for a 1xx to CANCEL against) for the INVITE's end.
const CANCEL_WAIT: Duration = Duration::from_secs(32);

/// How the INVITE phase ended.
enum Dialed {
    /// No INVITE could be sent: the call never existed.
    NotPlaced(String),
    Answered,
    Failed(u16, String),
    Unreachable(String),
    Stopped(Stop),
}

/// How the call ends.
enum End {
    /// Never placed: MakeCall failed, nothing is reported.
    NeverPlaced,
    /// Over (dropped by the application, or handed to an agent): Idle.
    Idle,
    /// The driver shuts down: nothing more is reported.
    Shutdown,
    /// Failed or hung up by the far end: the cause, then `Disconnected` with `mode`.
    Failed { mode: DisconnectMode, cause: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Drop,
    Shutdown,
    RingTimeout,
}

struct Call {
    shared: Arc<Shared>,
    account: Arc<Account>,
    rep: CallReporter,
    ctl: mpsc::Receiver<Ctl>,
    inbox: mpsc::Receiver<Incoming>,
    call_id: String,
    from: String,
    contact: String,
    target_uri: String,
    target: Option<Target>,
    invite_seq: u32,
    dialog: Option<Dialog>,
    remote_gone: bool,
    drops: Vec<RequestId>,
    /// The MakeCall request until the first INVITE is out.
    make_call: Option<RequestId>,
}

/// Runs one ACD call to its end. `target_uri` is already checked; `make_call` is completed Ok
/// as soon as the INVITE is on its way, with an error when none could be sent.
pub async fn run(
    shared: Arc<Shared>,
    account: Arc<Account>,
    rep: CallReporter,
    ctl: mpsc::Receiver<Ctl>,
    target_uri: String,
    make_call: RequestId,
) {
    let domain = shared.parsed.domain();
    let call_id = new_call_id(&shared.parsed.domain_uri.host);
    let from = NameAddr {
        display: shared.parsed.cfg.display_name.clone(),
        uri: format!("sip:{}@{domain}", account.user),
        params: Params(vec![("tag".into(), Some(new_tag()))]),
    };
    let (in_tx, inbox) = mpsc::channel(32);
    let routed = shared.endpoint.route_call(&call_id, in_tx).await.is_ok();
    let mut call = Call {
        shared: shared.clone(),
        account,
        rep,
        ctl,
        inbox,
        call_id,
        from: from.to_string(),
        contact: String::new(),
        target_uri,
        target: None,
        invite_seq: 1,
        dialog: None,
        remote_gone: false,
        drops: Vec::new(),
        make_call: Some(make_call),
    };
    let dialed = if routed {
        call.invite().await
    } else {
        Dialed::Stopped(Stop::Shutdown)
    };
    let end = match dialed {
        Dialed::NotPlaced(detail) => {
            // Nothing was sent: the call never existed. The driver forgets it before the
            // front end does, so the line is free for the next MakeCall at once.
            tracing::info!(call_id = %call.call_id, %detail, "ACD call could not start.");
            call.rep.forget();
            if let Some(id) = call.make_call.take() {
                call.rep.complete(
                    id,
                    Err(DriverError::new(
                        ErrorKind::OperationFailed,
                        format!("the call to {} could not start: {detail}", call.target_uri),
                    )),
                );
            }
            End::NeverPlaced
        }
        Dialed::Answered => {
            call.rep.state(CallState::Connected);
            call.connected().await
        }
        Dialed::Failed(code, reason) => {
            tracing::info!(call_id = %call.call_id, code, %reason, "ACD call failed.");
            End::Failed {
                mode: disconnect_mode(code),
                cause: format!("{code} {reason}"),
            }
        }
        Dialed::Unreachable(detail) => {
            tracing::info!(call_id = %call.call_id, %detail, "ACD target unreachable.");
            End::Failed {
                mode: DisconnectMode::Unreachable,
                cause: format!("{} cannot be reached: {detail}", call.target_uri),
            }
        }
        Dialed::Stopped(Stop::RingTimeout) => End::Failed {
            mode: DisconnectMode::NoAnswer,
            cause: format!(
                "{} did not answer within {} s",
                call.target_uri, call.shared.parsed.cfg.ring_timeout_secs
            ),
        },
        Dialed::Stopped(Stop::Drop) => End::Idle,
        Dialed::Stopped(Stop::Shutdown) => End::Shutdown,
    };
    call.end(end).await;
    if let Some(id) = call.make_call.take() {
        // Shut down before anything was sent.
        call.rep.complete(
            id,
            Err(DriverError::new(
                ErrorKind::Uninitialized,
                "the acd driver has shut down",
            )),
        );
    }
    let _ = call.shared.endpoint.unroute_call(&call.call_id).await;
}

impl Call {
    /// The first INVITE is out: the call exists, MakeCall completes Ok (once).
    fn on_placed(&mut self) {
        if let Some(id) = self.make_call.take() {
            self.rep.info(&self.call_id);
            self.rep.state(CallState::Dialing);
            self.rep.complete(id, Ok(Completion::Done));
        }
    }

    /// Releases what is left and reports the end; completes every request.
    async fn end(&mut self, end: End) {
        match end {
            End::NeverPlaced => {}
            End::Idle => {
                self.release().await;
                self.rep.state(CallState::Idle);
            }
            End::Shutdown => self.release().await,
            End::Failed { mode, cause } => {
                // BYE first, then the report: a Disconnected call holds nothing.
                let bye = self.send_bye().await;
                self.rep.failed(mode, cause);
                self.finish_requests(true);
                self.await_bye(bye).await;
            }
        }
        self.finish_requests(false);
    }

    /// Completes the Drops taken so far and every request still queued for the call (it has
    /// ended). After a failure (`failed`), a Drop that reached the call before it was freed
    /// moves it to Idle first.
    fn finish_requests(&mut self, failed: bool) {
        self.ctl.close();
        while let Ok(c) = self.ctl.try_recv() {
            match c {
                Ctl::Drop(id) => self.drops.push(id),
                Ctl::Transfer { id, .. } => self.rep.complete(
                    id,
                    Err(DriverError::new(
                        ErrorKind::InvalidCallState,
                        "the call has ended",
                    )),
                ),
                Ctl::Shutdown => {}
            }
        }
        if failed && !self.drops.is_empty() {
            self.rep.state(CallState::Idle);
        }
        for id in std::mem::take(&mut self.drops) {
            self.rep.complete(id, Ok(Completion::Done));
        }
    }

    fn note_stop(&mut self, ctl: Option<Ctl>) -> Option<Stop> {
        match ctl {
            Some(Ctl::Drop(id)) => {
                self.drops.push(id);
                Some(Stop::Drop)
            }
            Some(Ctl::Transfer { id, .. }) => {
                self.rep.complete(
                    id,
                    Err(DriverError::new(
                        ErrorKind::InvalidCallState,
                        "the call is not connected",
                    )),
                );
                None
            }
            Some(Ctl::Shutdown) | None => Some(Stop::Shutdown),
        }
    }

    fn set_target(&mut self, target: Target) {
        self.target = Some(target);
        let local = self.shared.endpoint.local_addr_for(&target);
        let tp = if target.transport == tapir_sip_ua::Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        let host = match local.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            std::net::IpAddr::V4(v4) => v4.to_string(),
        };
        self.contact = format!("<sip:{}@{host}:{}{tp}>", self.account.user, local.port());
    }

    async fn first_targets(&self) -> Result<(Vec<Target>, Option<String>), String> {
        let p = &self.shared.parsed;
        let (hop, route) = if let Some(proxy) = &p.proxy_uri {
            let mut r = proxy.clone();
            r.params.set("lr", None);
            (proxy.clone(), Some(format!("<{r}>")))
        } else {
            let uri = Uri::parse(&self.target_uri)
                .ok_or_else(|| format!("{} is not a SIP URI", self.target_uri))?;
            (uri, None)
        };
        let targets = self
            .shared
            .resolver
            .resolve(&hop, p.transport)
            .await
            .map_err(|e| e.to_string())?;
        if targets.is_empty() {
            return Err(format!("no address for {hop}"));
        }
        Ok((targets, route))
    }

    fn build_invite(
        &self,
        route: Option<&str>,
        auth: Option<&(&'static str, String)>,
        target: &Target,
    ) -> Message {
        let local = self.shared.endpoint.local_addr_for(target);
        let mut m = Message::request(Method::Invite, self.target_uri.clone());
        m.push("Max-Forwards", "70");
        if let Some(r) = route {
            m.push("Route", r);
        }
        m.push("From", self.from.clone());
        m.push("To", format!("<{}>", self.target_uri));
        m.push("Call-ID", self.call_id.clone());
        m.push("CSeq", format!("{} INVITE", self.invite_seq));
        m.push("Contact", self.contact.clone());
        m.push("Allow", tapir_sip_ua::ALLOW);
        m.push("Supported", "replaces");
        if let Some((n, v)) = auth {
            m.push(n, v.clone());
        }
        m.set_body("application/sdp", sdp(local.ip(), None).into_bytes());
        m
    }

    /// The INVITE phase.
    async fn invite(&mut self) -> Dialed {
        let (targets, route) = match self.first_targets().await {
            Ok(t) => t,
            Err(e) => return Dialed::NotPlaced(e),
        };
        // RFC 3263 §4.3: a target that is down, silent or answers 503 gives way to the next
        // (a new INVITE transaction, CSeq one up).
        let Some(mut failover) = self.shared.resolver.failover(targets) else {
            return Dialed::NotPlaced("no address".into());
        };
        let mut target = failover.current();
        self.set_target(target);
        let ring_deadline =
            Instant::now() + Duration::from_secs(self.shared.parsed.cfg.ring_timeout_secs);
        let mut auth: Option<(&'static str, String)> = None;
        let mut ringing = false;
        let mut cancelling: Option<(Stop, Instant)> = None;
        // Every target of a resolution (at most 16) and one challenge.
        'attempts: for _attempt in 0..18 {
            let invite = self.build_invite(route.as_deref(), auth.as_ref(), &target);
            let mut tx = match self.shared.endpoint.request(invite, target).await {
                Ok(tx) => tx,
                Err(e) if self.make_call.is_some() => return Dialed::NotPlaced(e.to_string()),
                Err(e) => return Dialed::Unreachable(e.to_string()),
            };
            self.on_placed();
            failover.sent(std::time::Instant::now());
            let mut provisional = false;
            let mut cancel_sent = false;
            loop {
                if cancelling.is_some() && provisional && !cancel_sent {
                    self.send_cancel(&tx, target).await;
                    cancel_sent = true;
                }
                let cancel_deadline = cancelling.map(|(_, d)| d);
                let silent = failover.deadline().map(Instant::from_std);
                tokio::select! {
                    ev = tx.events.recv() => {
                        let Some(ev) = ev else {
                            return match cancelling {
                                Some((s, _)) => Dialed::Stopped(s),
                                None => Dialed::Unreachable("the INVITE transaction ended".into()),
                            };
                        };
                        if cancelling.is_none() {
                            if let Some(next) = failover.on_event(&ev) {
                                target = next;
                                self.set_target(target);
                                self.invite_seq += 1;
                                continue 'attempts;
                            }
                        }
                        match ev {
                            ClientEvent::Timeout | ClientEvent::TransportError(_) if !provisional && cancelling.is_none() => {
                                return Dialed::Unreachable(match ev {
                                    ClientEvent::TransportError(d) => d.to_string(),
                                    _ => "no response to our INVITE".into(),
                                });
                            }
                            ClientEvent::Timeout | ClientEvent::TransportError(_) => {
                                return match cancelling {
                                    Some((s, _)) => Dialed::Stopped(s),
                                    None => Dialed::Unreachable("the INVITE transaction failed".into()),
                                };
                            }
                            ClientEvent::Response(resp) => {
                                let code = resp.code().unwrap_or(0);
                                match code {
                                    100..=199 => {
                                        provisional = true;
                                        if let (Some(s), false, None) = (progress_state(code), ringing, cancelling) {
                                            ringing = s == CallState::Ringback;
                                            self.rep.state(s);
                                        }
                                    }
                                    200..=299 => {
                                        let dialog = match Dialog::from_uac(&tx.request, &resp) {
                                            Ok(d) => d,
                                            Err(e) => return Dialed::Unreachable(e.to_string()),
                                        };
                                        self.send_ack(&dialog).await;
                                        self.dialog = Some(dialog);
                                        if let Some((s, _)) = cancelling {
                                            // Answered while we cancelled: hang up at once.
                                            return Dialed::Stopped(s);
                                        }
                                        return Dialed::Answered;
                                    }
                                    401 | 407 if cancelling.is_none() && auth.is_none() => {
                                        match answer_challenge(&tx.request, &resp, &self.account.credentials) {
                                            Ok(h) => auth = Some(h),
                                            Err(e) => return Dialed::Unreachable(e.to_string()),
                                        }
                                        self.invite_seq += 1;
                                        continue 'attempts;
                                    }
                                    _ => {
                                        if let Some((s, _)) = cancelling {
                                            return Dialed::Stopped(s);
                                        }
                                        return Dialed::Failed(code, reason(&resp));
                                    }
                                }
                            }
                        }
                    }
                    () = sleep_until_opt(silent), if cancelling.is_none() => {
                        if let Some(next) = failover.on_deadline(std::time::Instant::now()) {
                            target = next;
                            self.set_target(target);
                            self.invite_seq += 1;
                            continue 'attempts;
                        }
                    }
                    ctl = self.ctl.recv(), if cancelling.is_none() => {
                        if let Some(s) = self.note_stop(ctl) {
                            cancelling = Some((s, Instant::now() + CANCEL_WAIT));
                        }
                    }
                    () = sleep_until(ring_deadline), if cancelling.is_none() => {
                        cancelling = Some((Stop::RingTimeout, Instant::now() + CANCEL_WAIT));
                    }
                    () = async { match cancel_deadline { Some(d) => sleep_until(d).await, None => std::future::pending().await } } => {
                        return Dialed::Stopped(cancelling.map(|(s, _)| s).unwrap_or(Stop::Shutdown));
                    }
                    inc = self.inbox.recv() => {
                        if let Some(inc) = inc {
                            self.on_stray(inc).await;
                        }
                    }
                }
            }
        }
        Dialed::Unreachable("too many INVITE attempts".into())
    }

    async fn send_cancel(&self, tx: &ClientTx, target: Target) {
        let inv = &tx.request;
        let mut c = Message::request(Method::Cancel, inv.request_uri().unwrap_or_default());
        if let Some(v) = inv.header_values("Via").next() {
            c.push("Via", v);
        }
        c.push("Max-Forwards", "70");
        for (n, v) in &inv.headers {
            if n == "Route" {
                c.push("Route", v.clone());
            }
        }
        for n in ["From", "To", "Call-ID"] {
            if let Some(v) = inv.header(n) {
                c.push(n, v);
            }
        }
        let seq = inv.cseq().map(|c| c.seq).unwrap_or(1);
        c.push("CSeq", format!("{seq} CANCEL"));
        let _ = self.shared.endpoint.request(c, target).await;
    }

    async fn dialog_target(&self, dialog: &Dialog) -> Option<Target> {
        let hop = dialog.next_hop()?;
        self.shared
            .resolver
            .resolve(&hop, self.shared.parsed.transport)
            .await
            .ok()?
            .first()
            .copied()
    }

    async fn send_ack(&self, dialog: &Dialog) {
        let ack = dialog.ack(self.invite_seq);
        if let Some(t) = self.dialog_target(dialog).await.or(self.target) {
            let _ = self.shared.endpoint.send_ack(ack, t).await;
        }
    }

    async fn in_dialog(
        &mut self,
        method: Method,
        extra: &[(&str, String)],
        auth: Option<(&'static str, String)>,
    ) -> Option<ClientTx> {
        let contact = self.contact.clone();
        let dialog = self.dialog.as_mut()?;
        let mut m = dialog.request(method.clone());
        if matches!(method, Method::Refer) {
            m.push("Contact", contact);
        }
        for (n, v) in extra {
            m.push(n, v.clone());
        }
        if let Some((n, v)) = auth {
            m.push(n, v);
        }
        let dialog = dialog.clone();
        let target = self.dialog_target(&dialog).await.or(self.target)?;
        self.shared.endpoint.request(m, target).await.ok()
    }

    /// Connected: wait for Drop, a transfer, or the far end's BYE.
    async fn connected(&mut self) -> End {
        let hung_up = || End::Failed {
            mode: DisconnectMode::Normal,
            cause: "the called party hung up (BYE)".into(),
        };
        loop {
            tokio::select! {
                ctl = self.ctl.recv() => match ctl {
                    Some(Ctl::Transfer { id, to }) => {
                        match self.transfer(&to).await {
                            Ok(()) => {
                                self.rep.complete(id, Ok(Completion::Done));
                                return End::Idle;
                            }
                            Err(TransferError::Dropped) => {
                                self.rep.complete(id, Err(TransferError::Dropped.to_driver_error()));
                                return End::Idle;
                            }
                            Err(e) => {
                                tracing::info!(call_id = %self.call_id, error = %e, "Transfer failed.");
                                self.rep.complete(id, Err(e.to_driver_error()));
                                if self.remote_gone {
                                    return hung_up();
                                }
                            }
                        }
                    }
                    other => match self.note_stop(other) {
                        Some(Stop::Drop) => return End::Idle,
                        Some(_) => return End::Shutdown,
                        None => {}
                    },
                },
                inc = self.inbox.recv() => {
                    let Some(inc) = inc else { return End::Shutdown };
                    self.on_stray(inc).await;
                    if self.remote_gone {
                        return hung_up();
                    }
                }
            }
        }
    }

    /// REFERs the connected target to `to` and follows the NOTIFYs.
    async fn transfer(&mut self, to: &str) -> Result<(), TransferError> {
        let ours = NameAddr::parse(&self.from)
            .map(|n| n.uri)
            .unwrap_or_default();
        let extra = vec![
            ("Refer-To", format!("<{to}>")),
            ("Referred-By", format!("<{ours}>")),
        ];
        let mut tx = self
            .in_dialog(Method::Refer, &extra, None)
            .await
            .ok_or_else(|| TransferError::Unreachable("cannot send the REFER".into()))?;
        let secs = self.shared.parsed.cfg.notify_timeout_secs;
        let mut accepted = false;
        let mut pending = true;
        let mut authed = false;
        let mut deadline = Instant::now() + Duration::from_secs(40);
        let mut last = "none".to_owned();
        loop {
            tokio::select! {
                ev = tx.events.recv(), if pending => match ev {
                    Some(ClientEvent::Response(resp)) => {
                        let code = resp.code().unwrap_or(0);
                        match code {
                            100..=199 => {}
                            200..=299 => {
                                pending = false;
                                if !accepted {
                                    accepted = true;
                                    deadline = Instant::now() + Duration::from_secs(secs);
                                }
                                if no_subscription(&resp) {
                                    return Ok(());
                                }
                            }
                            401 | 407 if !authed => {
                                authed = true;
                                let h = answer_challenge(&tx.request, &resp, &self.account.credentials)
                                    .map_err(|e| TransferError::Refused { code, reason: e.to_string() })?;
                                tx = self.in_dialog(Method::Refer, &extra, Some(h)).await
                                    .ok_or_else(|| TransferError::Unreachable("cannot resend the REFER".into()))?;
                            }
                            _ => return Err(TransferError::Refused { code, reason: reason(&resp) }),
                        }
                    }
                    Some(ClientEvent::TransportError(d)) => return Err(TransferError::Unreachable(d.to_string())),
                    Some(ClientEvent::Timeout) | None => {
                        if !accepted {
                            return Err(TransferError::Unreachable("no response to our REFER".into()));
                        }
                        pending = false;
                    }
                },
                inc = self.inbox.recv() => {
                    let Some(inc) = inc else { return Err(TransferError::Dropped) };
                    let Incoming::Request { key, msg } = inc else {
                        self.on_stray(inc).await;
                        continue;
                    };
                    let in_dialog = self.dialog.as_mut().is_some_and(|d| d.matches(&msg) && d.accept_remote_seq(&msg));
                    if !in_dialog || msg.method() != Some(Method::Notify) {
                        self.on_stray(Incoming::Request { key, msg }).await;
                        if self.remote_gone {
                            // A BYE right after a NOTIFY 200 is how many peers end a good transfer;
                            // before any final sipfrag it is a hang-up.
                            return Err(TransferError::HungUp);
                        }
                        continue;
                    }
                    let Some(n) = ReferNotify::read(&msg) else {
                        let r = Message::response_to(&msg, 489, "Bad Event", None);
                        let _ = self.shared.endpoint.respond(key, r).await;
                        continue;
                    };
                    let _ = self.shared.endpoint.respond(key, Message::response_to(&msg, 200, "OK", None)).await;
                    if !accepted {
                        accepted = true;
                        deadline = Instant::now() + Duration::from_secs(secs);
                    }
                    match n.frag {
                        Some(f) if f.code < 200 => {
                            last = format!("{} {}", f.code, f.reason);
                            if n.terminated {
                                return Err(TransferError::NoFinalStatus);
                            }
                        }
                        Some(f) if f.code < 300 => return Ok(()),
                        Some(f) => return Err(TransferError::AgentFailed { code: f.code, reason: f.reason }),
                        None if n.terminated => return Err(TransferError::NoFinalStatus),
                        None => {}
                    }
                }
                ctl = self.ctl.recv() => match ctl {
                    Some(Ctl::Drop(id)) => {
                        self.drops.push(id);
                        return Err(TransferError::Dropped);
                    }
                    Some(Ctl::Transfer { id, .. }) => {
                        self.rep.complete(id, Err(DriverError::new(ErrorKind::InvalidCallState, "a transfer is already running")));
                    }
                    Some(Ctl::Shutdown) | None => return Err(TransferError::Dropped),
                },
                () = sleep_until(deadline) => {
                    return Err(TransferError::Timeout { secs, last });
                }
            }
        }
    }

    /// Requests outside a transfer: BYE ends the call, re-INVITE gets our SDP, NOTIFY 200;
    /// 2xx retransmissions are ACKed again.
    async fn on_stray(&mut self, inc: Incoming) {
        match inc {
            Incoming::Request { key, msg } => {
                let in_dialog = self.dialog.as_ref().is_some_and(|d| d.matches(&msg));
                let r = match msg.method() {
                    Some(Method::Bye) if in_dialog => {
                        self.remote_gone = true;
                        Message::response_to(&msg, 200, "OK", None)
                    }
                    Some(Method::Invite) if in_dialog => {
                        let mut r = Message::response_to(&msg, 200, "OK", None);
                        r.push("Contact", self.contact.clone());
                        if let Some(t) = self.target {
                            let ip = self.shared.endpoint.local_addr_for(&t).ip();
                            r.set_body("application/sdp", sdp(ip, Some(&msg.body)).into_bytes());
                        }
                        r
                    }
                    Some(Method::Notify | Method::Options | Method::Info | Method::Update)
                        if in_dialog =>
                    {
                        Message::response_to(&msg, 200, "OK", None)
                    }
                    _ if in_dialog => {
                        let mut r = Message::response_to(&msg, 405, "Method Not Allowed", None);
                        r.push("Allow", tapir_sip_ua::ALLOW);
                        r
                    }
                    _ => Message::response_to(&msg, 481, "Call/Transaction Does Not Exist", None),
                };
                let _ = self.shared.endpoint.respond(key, r).await;
            }
            Incoming::StrayResponse(resp) => {
                let invite_2xx = resp.cseq().is_some_and(|c| c.method == Method::Invite)
                    && resp.code().is_some_and(|c| (200..300).contains(&c));
                if invite_2xx {
                    if let Some(d) = self.dialog.clone() {
                        self.send_ack(&d).await;
                    }
                }
            }
            Incoming::Ack(_) => {}
        }
    }

    /// Sends BYE on our leg (if it is up) and waits a little for its answer.
    async fn release(&mut self) {
        let bye = self.send_bye().await;
        self.await_bye(bye).await;
    }

    /// Sends BYE on our leg if it is up; its transaction.
    async fn send_bye(&mut self) -> Option<ClientTx> {
        if self.dialog.is_none() || self.remote_gone {
            return None;
        }
        self.in_dialog(Method::Bye, &[], None).await
    }

    /// Waits a little for the BYE's answer, answering what else arrives on the leg.
    async fn await_bye(&mut self, bye: Option<ClientTx>) {
        let Some(mut tx) = bye else {
            self.dialog = None;
            return;
        };
        let deadline = Instant::now() + BYE_WAIT;
        loop {
            tokio::select! {
                ev = tx.events.recv() => match ev {
                    Some(ClientEvent::Response(r)) if r.code().is_some_and(|c| c >= 200) => break,
                    Some(ClientEvent::Response(_)) => {}
                    _ => break,
                },
                inc = self.inbox.recv() => match inc {
                    Some(Incoming::Request { key, msg }) => {
                        let r = Message::response_to(&msg, 200, "OK", None);
                        let _ = self.shared.endpoint.respond(key, r).await;
                    }
                    Some(_) => {}
                    None => break,
                },
                () = sleep_until(deadline) => break,
            }
        }
        self.dialog = None;
    }
}

/// A destination for a transfer: the agent's extension or queue, as a URI in our domain.
///
/// # Errors
/// [`DriverError`] `InvalidAddress`.
pub fn agent_uri(dest: &str, domain: &str) -> Result<String, DriverError> {
    destination_uri(dest, domain).map_err(|e| DriverError::new(ErrorKind::InvalidAddress, e.0))
}

fn reason(resp: &Message) -> String {
    match &resp.start {
        tapir_sip_ua::StartLine::Response { reason, .. } => reason.clone(),
        tapir_sip_ua::StartLine::Request { .. } => String::new(),
    }
}

/// Our SDP: an audio offer on the discard port (the dialer carries no media; the agent's phone
/// does once the transfer is done), or an answer mirroring a re-INVITE's direction.
pub fn sdp(ip: std::net::IpAddr, offer: Option<&[u8]>) -> String {
    let (family, addr) = match ip {
        std::net::IpAddr::V4(v4) => ("IP4", v4.to_string()),
        std::net::IpAddr::V6(v6) => ("IP6", v6.to_string()),
    };
    let offered = offer
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("");
    let direction = if offered.contains("a=sendonly") {
        "recvonly"
    } else if offered.contains("a=recvonly") {
        "sendonly"
    } else if offered.contains("a=inactive") {
        "inactive"
    } else {
        "sendrecv"
    };
    format!(
        "v=0\r\no=tapir 1 1 IN {family} {addr}\r\ns=tapir\r\nc=IN {family} {addr}\r\nt=0 0\r\n\
         m=audio 9 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
}
