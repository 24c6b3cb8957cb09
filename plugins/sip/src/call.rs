//! One click-to-dial call, as an async task: INVITE the first leg, REFER it once it answers,
//! follow the NOTIFY sipfrags, release our leg. Every wait is bounded by a timer or by the
//! transaction layer's own timeouts; every exit path releases the leg and the Call-ID route.
//!
//! The failed-call rule (ARCHITECTURE.md): MakeCall completes Ok as soon as the first INVITE
//! is out, with an error only when it could not be sent at all (no address for the first
//! hop). Every later failure is a state: the cause (the SIP status and reason phrase) in the
//! call's info, then `Disconnected` with its mode (after `Busy` for a busy party), reported
//! once any BYE is sent; the driver forgets the call right then.

use crate::config::Line;
use crate::outcome::{progress_state, ClickToDialError};
use crate::report::Reporter;
use std::sync::Arc;
use std::time::Duration;
use tapir_core::CallState;
use tapir_sip_ua::dialog::{new_call_id, new_tag};
use tapir_sip_ua::digest::{self, Challenge, Credentials, RequestParts};
use tapir_sip_ua::header::{NameAddr, Uri};
use tapir_sip_ua::refer::{no_subscription, ReferNotify};
use tapir_sip_ua::resolve::failover::sleep_until_opt;
use tapir_sip_ua::{
    ClientEvent, ClientTx, Dialog, Endpoint, Incoming, Message, Method, Resolver, Target,
};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

/// Which driver a call belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// INVITE the user's phone, REFER it to the destination.
    Refer,
    /// INVITE the destination, REFER it to the user's phone.
    Reverse,
}

/// What the driver tells a running call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctl {
    /// The application dropped the call.
    Drop,
    /// The driver is shutting down.
    Shutdown,
}

/// Everything a line's calls share.
pub struct LineCtx {
    /// The line's configuration.
    pub line: Line,
    /// The endpoint it sends from.
    pub endpoint: Endpoint,
    /// DNS.
    pub resolver: Arc<Resolver>,
    /// Which driver.
    pub mode: Mode,
}

/// How long to wait for a BYE's answer before reporting the call Idle anyway.
const BYE_WAIT: Duration = Duration::from_secs(4);
/// How long to wait for a 1xx before sending CANCEL / for the 487 after it.
const CANCEL_WAIT: Duration = Duration::from_secs(32);

/// How the active part of a call ended.
enum End {
    Success { note: Option<&'static str> },
    Failed(ClickToDialError),
}

struct Call {
    ctx: Arc<LineCtx>,
    rep: Reporter,
    ctl: mpsc::Receiver<Ctl>,
    inbox: mpsc::Receiver<Incoming>,
    call_id: String,
    from: String,
    contact: String,
    first_uri: String,
    refer_to: String,
    first_who: String,
    target: Option<Target>,
    invite_seq: u32,
    dialog: Option<Dialog>,
    remote_gone: bool,
    stop: Option<Ctl>,
    /// The first INVITE is out and MakeCall completed.
    placed: bool,
}

/// Runs one click-to-dial to its end. `destination_uri` is already checked.
pub async fn run(
    ctx: Arc<LineCtx>,
    rep: Reporter,
    ctl: mpsc::Receiver<Ctl>,
    destination_uri: String,
) {
    let line = &ctx.line;
    let domain = line.domain();
    let user = &line.cfg.user;
    let phone = line.cfg.phone_user.clone().unwrap_or_else(|| user.clone());
    let phone_uri = if phone.starts_with("sip:") {
        phone.clone()
    } else {
        match &line.phone_addr {
            // Alternative mode: the phone itself, by address.
            Some(addr) if ctx.mode == Mode::Refer => {
                Uri::sip(Some(&phone), &addr.host, addr.port).to_string()
            }
            _ => format!("sip:{phone}@{domain}"),
        }
    };
    let (first_uri, refer_to, first_who) = match ctx.mode {
        Mode::Refer => (
            phone_uri.clone(),
            destination_uri.clone(),
            format!("the user's phone ({phone_uri})"),
        ),
        // The phone's URI as resolved above: a `phone_user` that is a full `sip:` URI is taken
        // as it is (never `sip:sip:...@domain`).
        Mode::Reverse => (
            destination_uri.clone(),
            phone_uri.clone(),
            format!("the callee ({destination_uri})"),
        ),
    };
    let host_for_id = line.domain_host().to_owned();
    let call_id = new_call_id(&host_for_id);
    let tag = new_tag();
    let from_addr = NameAddr {
        display: line.cfg.display_name.clone(),
        uri: format!("sip:{user}@{domain}"),
        params: tapir_sip_ua::header::Params(vec![("tag".into(), Some(tag))]),
    };
    let (in_tx, inbox) = mpsc::channel(32);
    let routed = ctx.endpoint.route_call(&call_id, in_tx).await.is_ok();
    let mut call = Call {
        ctx: ctx.clone(),
        rep,
        ctl,
        inbox,
        call_id,
        from: from_addr.to_string(),
        contact: String::new(),
        first_uri,
        refer_to,
        first_who,
        target: None,
        invite_seq: 1,
        dialog: None,
        remote_gone: false,
        stop: None,
        placed: false,
    };
    let end = if routed {
        match call.invite().await {
            Ok(()) => call.refer().await,
            Err(e) => End::Failed(e),
        }
    } else {
        End::Failed(ClickToDialError::Shutdown)
    };
    call.finish(end).await;
    let _ = call.ctx.endpoint.unroute_call(&call.call_id).await;
}

impl Call {
    /// The first INVITE is out: the call exists, MakeCall completes Ok (once).
    fn placed(&mut self) {
        if self.placed {
            return;
        }
        self.placed = true;
        self.rep.info_driver_key(&self.call_id);
        self.rep.state(CallState::Dialing);
        self.rep.complete_make_call(Ok(()));
    }

    fn creds(&self) -> Credentials {
        let cfg = &self.ctx.line.cfg;
        Credentials {
            username: cfg.auth_user.clone().unwrap_or_else(|| cfg.user.clone()),
            password: cfg.password.expose().to_owned(),
            realm: if cfg.ignore_realm {
                None
            } else {
                Some(
                    cfg.realm
                        .clone()
                        .unwrap_or_else(|| self.ctx.line.domain_host().to_owned()),
                )
            },
        }
    }

    fn auth_user(&self) -> String {
        self.creds().username
    }

    /// Answers a 401/407 for `req`: returns the header (name, value) to add.
    fn answer_challenge(
        &self,
        req: &Message,
        resp: &Message,
    ) -> Result<(&'static str, String), ClickToDialError> {
        let (challenge_name, auth_name) = if resp.code() == Some(407) {
            ("Proxy-Authenticate", "Proxy-Authorization")
        } else {
            ("WWW-Authenticate", "Authorization")
        };
        let challenge = Challenge::choose(resp.header_values_raw(challenge_name)).map_err(|e| {
            ClickToDialError::AuthRejected {
                user: self.auth_user(),
                detail: format!("cannot answer the challenge: {e}"),
            }
        })?;
        let uri = req.request_uri().unwrap_or_default();
        let method = req.method().map(|m| m.to_string()).unwrap_or_default();
        let value = digest::authorization(
            &challenge,
            &self.creds(),
            RequestParts {
                method: &method,
                uri,
                body: &req.body,
            },
            &digest::new_cnonce(),
            1,
        )
        .map_err(|e| ClickToDialError::AuthRejected {
            user: self.auth_user(),
            detail: e.to_string(),
        })?;
        Ok((auth_name, value))
    }

    /// The first hop's targets (RFC 3263 order) and the preloaded Route, if any.
    async fn first_targets(&mut self) -> Result<(Vec<Target>, Option<String>), ClickToDialError> {
        let line = &self.ctx.line;
        let (hop, route) = if let (Some(addr), Mode::Refer) = (&line.phone_addr, self.ctx.mode) {
            (addr.clone(), None)
        } else if let Some(proxy) = &line.proxy_uri {
            let mut r = proxy.clone();
            r.params.set("lr", None);
            (proxy.clone(), Some(format!("<{r}>")))
        } else {
            let uri = Uri::parse(&self.first_uri).ok_or_else(|| ClickToDialError::Unreachable {
                who: self.first_who.clone(),
                detail: format!("{} is not a SIP URI", self.first_uri),
            })?;
            (uri, None)
        };
        let targets = self
            .ctx
            .resolver
            .resolve(&hop, line.transport)
            .await
            .map_err(|e| ClickToDialError::Unreachable {
                who: self.first_who.clone(),
                detail: e.to_string(),
            })?;
        if targets.is_empty() {
            return Err(ClickToDialError::Unreachable {
                who: self.first_who.clone(),
                detail: format!("no address for {hop}"),
            });
        }
        Ok((targets, route))
    }

    fn build_invite(
        &self,
        seq: u32,
        route: Option<&str>,
        auth: Option<&(&'static str, String)>,
        target: &Target,
    ) -> Message {
        let cfg = &self.ctx.line.cfg;
        let local = self.ctx.endpoint.local_addr_for(target);
        let mut m = Message::request(Method::Invite, self.first_uri.clone());
        m.push("Max-Forwards", "70");
        if let Some(r) = route {
            m.push("Route", r);
        }
        m.push("From", self.from.clone());
        m.push("To", format!("<{}>", self.first_uri));
        m.push("Call-ID", self.call_id.clone());
        m.push("CSeq", format!("{seq} INVITE"));
        m.push("Contact", self.contact.clone());
        m.push("Allow", tapir_sip_ua::ALLOW);
        m.push("Supported", "replaces");
        m.push("Subject", "click2dial call");
        if cfg.auto_answer && self.ctx.mode == Mode::Refer {
            for (n, v) in cfg.auto_answer_header.headers(&self.ctx.line.domain()) {
                m.push(n, v);
            }
        }
        if let Some((n, v)) = auth {
            m.push(n, v.clone());
        }
        m.set_body("application/sdp", sdp_offer(local.ip(), None).into_bytes());
        m
    }

    /// Records why the call must stop (a closed control channel counts as shutdown).
    fn note_ctl(&mut self, ctl: Option<Ctl>) {
        self.stop = Some(ctl.unwrap_or(Ctl::Shutdown));
    }

    /// Uses `target` for the first leg and computes our Contact towards it.
    fn set_target(&mut self, target: Target) {
        self.target = Some(target);
        let local = self.ctx.endpoint.local_addr_for(&target);
        let tp = if target.transport == tapir_sip_ua::Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        let host = match local.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            std::net::IpAddr::V4(v4) => v4.to_string(),
        };
        self.contact = format!(
            "<sip:{}@{host}:{}{tp}>",
            self.ctx.line.cfg.user,
            local.port()
        );
    }

    /// Phase 1: INVITE the first leg until it answers (dialog formed and ACKed).
    async fn invite(&mut self) -> Result<(), ClickToDialError> {
        let (targets, route) = self.first_targets().await?;
        // RFC 3263 §4.3: a target that is down, silent or answers 503 gives way to the next
        // (a new INVITE transaction, CSeq one up).
        let Some(mut failover) = self.ctx.resolver.failover(targets) else {
            return Err(ClickToDialError::Unreachable {
                who: self.first_who.clone(),
                detail: "no address".into(),
            });
        };
        let mut target = failover.current();
        self.set_target(target);
        let ring_secs = self.ctx.line.cfg.ring_timeout_secs;
        let ring_deadline = Instant::now() + Duration::from_secs(ring_secs);
        let mut auth: Option<(&'static str, String)> = None;
        let mut auth_tries = 0;
        let mut ringing = false;
        'attempts: loop {
            let invite =
                self.build_invite(self.invite_seq, route.as_deref(), auth.as_ref(), &target);
            let mut tx = self
                .ctx
                .endpoint
                .request(invite, target)
                .await
                .map_err(|e| ClickToDialError::Unreachable {
                    who: self.first_who.clone(),
                    detail: e.to_string(),
                })?;
            self.placed();
            failover.sent(std::time::Instant::now());
            let mut provisional = false;
            let mut cancelling: Option<(ClickToDialError, Instant)> = None;
            let mut cancel_sent = false;
            loop {
                if let (Some(_), false, true) = (&cancelling, cancel_sent, provisional) {
                    self.send_cancel(&tx, target).await;
                    cancel_sent = true;
                }
                let cancel_deadline = cancelling.as_ref().map(|(_, d)| *d);
                let silent = failover.deadline().map(Instant::from_std);
                tokio::select! {
                    ev = tx.events.recv() => {
                        let Some(ev) = ev else {
                            return Err(cancelling.map(|(e, _)| e).unwrap_or(ClickToDialError::Unreachable {
                                who: self.first_who.clone(),
                                detail: "the INVITE transaction ended without a final response".into(),
                            }));
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
                            ClientEvent::Response(resp) => {
                                let code = resp.code().unwrap_or(0);
                                match code {
                                    100..=199 => {
                                        provisional = true;
                                        if code != 100 && !ringing && cancelling.is_none() {
                                            ringing = true;
                                            self.rep.state(progress_state(code));
                                        }
                                    }
                                    200..=299 => {
                                        let dialog = Dialog::from_uac(&tx.request, &resp).map_err(|e| ClickToDialError::Unreachable {
                                            who: self.first_who.clone(),
                                            detail: e.to_string(),
                                        })?;
                                        self.send_ack(&dialog, self.invite_seq).await;
                                        self.dialog = Some(dialog);
                                        if let Some((e, _)) = cancelling {
                                            return Err(e);
                                        }
                                        return Ok(());
                                    }
                                    401 | 407 if cancelling.is_none() => {
                                        auth_tries += 1;
                                        let stale = resp
                                            .header_values_raw(if code == 407 { "Proxy-Authenticate" } else { "WWW-Authenticate" })
                                            .any(|v| Challenge::parse(v).is_ok_and(|c| c.stale));
                                        if auth.is_some() && !stale || auth_tries > 2 {
                                            return Err(ClickToDialError::AuthRejected {
                                                user: self.auth_user(),
                                                detail: format!("challenged again after answering ({code} {})", reason(&resp)),
                                            });
                                        }
                                        auth = Some(self.answer_challenge(&tx.request, &resp)?);
                                        self.invite_seq += 1;
                                        break;
                                    }
                                    403 if auth.is_some() => {
                                        return Err(ClickToDialError::AuthRejected {
                                            user: self.auth_user(),
                                            detail: format!("403 {}", reason(&resp)),
                                        });
                                    }
                                    _ => {
                                        if let Some((e, _)) = cancelling {
                                            return Err(e);
                                        }
                                        return Err(ClickToDialError::FirstLegFailed {
                                            who: self.first_who.clone(),
                                            code,
                                            reason: reason(&resp),
                                        });
                                    }
                                }
                            }
                            ClientEvent::Timeout => {
                                return Err(cancelling.map(|(e, _)| e).unwrap_or(ClickToDialError::Unreachable {
                                    who: self.first_who.clone(),
                                    detail: "no response to our INVITE".into(),
                                }));
                            }
                            ClientEvent::TransportError(detail) => {
                                return Err(ClickToDialError::Unreachable { who: self.first_who.clone(), detail: detail.to_string() });
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
                        self.note_ctl(ctl);
                        let err = if self.stop == Some(Ctl::Drop) { ClickToDialError::Dropped } else { ClickToDialError::Shutdown };
                        cancelling = Some((err, Instant::now() + CANCEL_WAIT));
                    }
                    () = sleep_until(ring_deadline), if cancelling.is_none() => {
                        cancelling = Some((
                            ClickToDialError::NoAnswer { who: self.first_who.clone(), secs: ring_secs },
                            Instant::now() + CANCEL_WAIT,
                        ));
                    }
                    () = async { match cancel_deadline { Some(d) => sleep_until(d).await, None => std::future::pending().await } } => {
                        // Neither a 1xx to CANCEL against nor a final answer: give up.
                        return Err(cancelling.map(|(e, _)| e).unwrap_or(ClickToDialError::Dropped));
                    }
                    inc = self.inbox.recv() => {
                        if let Some(inc) = inc {
                            self.on_stray(inc).await;
                        }
                    }
                }
            }
        }
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
        // The CANCEL's own 200 is not needed: the INVITE's 487 ends the wait.
        let _ = self.ctx.endpoint.request(c, target).await;
    }

    async fn dialog_target(&self, dialog: &Dialog) -> Option<Target> {
        let hop = dialog.next_hop()?;
        let transport = self.ctx.line.transport;
        self.ctx
            .resolver
            .resolve(&hop, transport)
            .await
            .ok()?
            .first()
            .copied()
    }

    async fn send_ack(&self, dialog: &Dialog, seq: u32) {
        let ack = dialog.ack(seq);
        if let Some(t) = self.dialog_target(dialog).await.or(self.target) {
            let _ = self.ctx.endpoint.send_ack(ack, t).await;
        }
    }

    /// Sends an in-dialog request (answering one challenge), returns its transaction.
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
        self.ctx.endpoint.request(m, target).await.ok()
    }

    /// Phase 2: REFER the answered leg and follow the NOTIFYs.
    async fn refer(&mut self) -> End {
        self.rep.state(CallState::Proceeding);
        let ours = self.our_uri();
        let extra = vec![
            ("Refer-To", format!("<{}>", self.refer_to)),
            ("Referred-By", format!("<{ours}>")),
        ];
        let Some(mut tx) = self.in_dialog(Method::Refer, &extra, None).await else {
            return End::Failed(ClickToDialError::Unreachable {
                who: self.first_who.clone(),
                detail: "cannot send the REFER".into(),
            });
        };
        let notify_secs = self.ctx.line.cfg.notify_timeout_secs;
        let mut accepted = false;
        let mut refer_pending = true;
        let mut auth_tries = 0;
        let mut notify_deadline: Option<Instant> = None;
        let mut last = "none".to_owned();
        // The REFER's own transaction is bounded by Timer F; the NOTIFY wait by the timeout.
        loop {
            let nd = notify_deadline;
            tokio::select! {
                ev = tx.events.recv(), if refer_pending => match ev {
                    Some(ClientEvent::Response(resp)) => {
                        let code = resp.code().unwrap_or(0);
                        match code {
                            100..=199 => {}
                            200..=299 => {
                                refer_pending = false;
                                accepted = true;
                                if no_subscription(&resp) {
                                    return End::Success { note: Some("the phone accepted the REFER without progress reports (Refer-Sub: false)") };
                                }
                                notify_deadline.get_or_insert(Instant::now() + Duration::from_secs(notify_secs));
                            }
                            401 | 407 if auth_tries < 2 => {
                                auth_tries += 1;
                                let header = match self.answer_challenge(&tx.request, &resp) {
                                    Ok(h) => h,
                                    Err(e) => return End::Failed(e),
                                };
                                match self.in_dialog(Method::Refer, &extra, Some(header)).await {
                                    Some(t) => tx = t,
                                    None => return End::Failed(ClickToDialError::Unreachable { who: self.first_who.clone(), detail: "cannot resend the REFER".into() }),
                                }
                            }
                            401 | 407 => return End::Failed(ClickToDialError::AuthRejected { user: self.auth_user(), detail: format!("REFER challenged again ({code})") }),
                            _ => return End::Failed(ClickToDialError::ReferRejected { who: self.first_who.clone(), code, reason: reason(&resp) }),
                        }
                    }
                    Some(ClientEvent::Timeout) | None => {
                        if !accepted {
                            return End::Failed(ClickToDialError::Unreachable { who: self.first_who.clone(), detail: "no response to our REFER".into() });
                        }
                        refer_pending = false;
                    }
                    Some(ClientEvent::TransportError(detail)) => {
                        return End::Failed(ClickToDialError::Unreachable { who: self.first_who.clone(), detail: detail.to_string() });
                    }
                },
                inc = self.inbox.recv() => {
                    let Some(inc) = inc else { return End::Failed(ClickToDialError::Shutdown) };
                    if let Some(end) = self.on_refer_incoming(inc, &mut accepted, &mut last, &mut notify_deadline, notify_secs).await {
                        return end;
                    }
                }
                ctl = self.ctl.recv() => {
                    self.note_ctl(ctl);
                    return End::Failed(if self.stop == Some(Ctl::Drop) { ClickToDialError::Dropped } else { ClickToDialError::Shutdown });
                }
                () = async { match nd { Some(d) => sleep_until(d).await, None => std::future::pending().await } } => {
                    return End::Failed(ClickToDialError::NotifyTimeout { target: self.refer_to.clone(), secs: notify_secs, last });
                }
            }
        }
    }

    fn our_uri(&self) -> String {
        NameAddr::parse(&self.from)
            .map(|n| n.uri)
            .unwrap_or_default()
    }

    async fn on_refer_incoming(
        &mut self,
        inc: Incoming,
        accepted: &mut bool,
        last: &mut String,
        notify_deadline: &mut Option<Instant>,
        notify_secs: u64,
    ) -> Option<End> {
        let Incoming::Request { key, msg } = inc else {
            self.on_stray(inc).await;
            return None;
        };
        let in_dialog = self
            .dialog
            .as_mut()
            .is_some_and(|d| d.matches(&msg) && d.accept_remote_seq(&msg));
        let method = msg.method();
        if !in_dialog {
            let r = Message::response_to(&msg, 481, "Call/Transaction Does Not Exist", None);
            let _ = self.ctx.endpoint.respond(key, r).await;
            return None;
        }
        match method {
            Some(Method::Notify) => {
                let Some(n) = ReferNotify::read(&msg) else {
                    let r = Message::response_to(&msg, 489, "Bad Event", None);
                    let _ = self.ctx.endpoint.respond(key, r).await;
                    return None;
                };
                let _ = self
                    .ctx
                    .endpoint
                    .respond(key, Message::response_to(&msg, 200, "OK", None))
                    .await;
                // A NOTIFY implies the REFER was accepted, even if its 2xx is still on the way.
                *accepted = true;
                notify_deadline.get_or_insert(Instant::now() + Duration::from_secs(notify_secs));
                match n.frag {
                    Some(f) if f.code < 200 => {
                        *last = format!("{} {}", f.code, f.reason);
                        self.rep.state(progress_state(f.code));
                        if n.terminated {
                            return Some(End::Failed(ClickToDialError::NoFinalStatus {
                                target: self.refer_to.clone(),
                            }));
                        }
                    }
                    Some(f) if f.code < 300 => return Some(End::Success { note: None }),
                    Some(f) => {
                        return Some(End::Failed(ClickToDialError::ReferredFailed {
                            target: self.refer_to.clone(),
                            code: f.code,
                            reason: f.reason,
                        }))
                    }
                    None if n.terminated => {
                        return Some(End::Failed(ClickToDialError::NoFinalStatus {
                            target: self.refer_to.clone(),
                        }));
                    }
                    None => {}
                }
                None
            }
            Some(Method::Bye) => {
                let _ = self
                    .ctx
                    .endpoint
                    .respond(key, Message::response_to(&msg, 200, "OK", None))
                    .await;
                self.remote_gone = true;
                if !*accepted {
                    return Some(End::Failed(ClickToDialError::HungUp {
                        who: self.first_who.clone(),
                    }));
                }
                None
            }
            Some(Method::Invite) => {
                // A re-INVITE (often the phone holding us before it calls the target): accept.
                let mut r = Message::response_to(&msg, 200, "OK", None);
                r.push("Contact", self.contact.clone());
                let ip = self
                    .target
                    .map(|t| self.ctx.endpoint.local_addr_for(&t).ip());
                if let Some(ip) = ip {
                    r.set_body(
                        "application/sdp",
                        sdp_offer(ip, Some(&msg.body)).into_bytes(),
                    );
                }
                let _ = self.ctx.endpoint.respond(key, r).await;
                None
            }
            Some(Method::Options | Method::Info | Method::Update) => {
                let _ = self
                    .ctx
                    .endpoint
                    .respond(key, Message::response_to(&msg, 200, "OK", None))
                    .await;
                None
            }
            _ => {
                let mut r = Message::response_to(&msg, 405, "Method Not Allowed", None);
                r.push("Allow", tapir_sip_ua::ALLOW);
                let _ = self.ctx.endpoint.respond(key, r).await;
                None
            }
        }
    }

    /// Requests outside the REFER phase; 2xx retransmissions are ACKed again.
    async fn on_stray(&mut self, inc: Incoming) {
        match inc {
            Incoming::Request { key, msg } => {
                let (code, text) = if msg.method() == Some(Method::Bye)
                    && self.dialog.as_ref().is_some_and(|d| d.matches(&msg))
                {
                    self.remote_gone = true;
                    (200, "OK")
                } else {
                    (481, "Call/Transaction Does Not Exist")
                };
                let _ = self
                    .ctx
                    .endpoint
                    .respond(key, Message::response_to(&msg, code, text, None))
                    .await;
            }
            Incoming::StrayResponse(resp) => {
                let is_invite_2xx = resp.cseq().is_some_and(|c| c.method == Method::Invite)
                    && resp.code().is_some_and(|c| (200..300).contains(&c));
                if is_invite_2xx {
                    if let Some(d) = self.dialog.clone() {
                        self.send_ack(&d, self.invite_seq).await;
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
                        let _ = self.ctx.endpoint.respond(key, r).await;
                    }
                    Some(_) => {}
                    None => break,
                },
                () = sleep_until(deadline) => break,
            }
        }
        self.dialog = None;
    }

    async fn finish(&mut self, end: End) {
        match end {
            End::Success { note } => {
                if let Some(n) = note {
                    tracing::info!(call_id = %self.call_id, "{n}");
                }
                self.rep.state(CallState::Connected);
                self.release().await;
                self.rep.state(CallState::Idle);
                self.rep.complete_drops();
            }
            End::Failed(ClickToDialError::Shutdown) => {
                self.release().await;
                // The driver closes the gate only after its calls ended or 2 s passed.
                self.rep.complete_make_call(Err(ClickToDialError::Shutdown));
                self.rep.complete_drops();
            }
            End::Failed(e) if !self.placed => {
                // Nothing was sent: the call never existed. The driver forgets it before the
                // front end does, so the line is free for the next MakeCall at once.
                tracing::info!(call_id = %self.call_id, reason = %e, "click-to-dial could not start");
                self.rep.forget();
                self.rep.complete_make_call(Err(e));
                self.rep.complete_drops();
            }
            End::Failed(ClickToDialError::Dropped) => {
                self.release().await;
                self.rep.state(CallState::Idle);
                self.rep.complete_drops();
            }
            End::Failed(e) => {
                tracing::info!(call_id = %self.call_id, reason = %e, "click-to-dial failed");
                // BYE first, then the report: a Disconnected call holds nothing.
                let bye = self.send_bye().await;
                self.rep.failed(e.mode(), e.to_string());
                // A Drop that arrived before the report is answered now: the call is dropped.
                if self.rep.has_drops() {
                    self.rep.state(CallState::Idle);
                    self.rep.complete_drops();
                }
                self.await_bye(bye).await;
            }
        }
    }
}

fn reason(resp: &Message) -> String {
    match &resp.start {
        tapir_sip_ua::StartLine::Response { reason, .. } => reason.clone(),
        tapir_sip_ua::StartLine::Request { .. } => String::new(),
    }
}

/// Our SDP: an audio offer on the discard port (we never carry media), or, when `offer` is
/// given, an answer mirroring its direction and first payload type.
pub fn sdp_offer(ip: std::net::IpAddr, offer: Option<&[u8]>) -> String {
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
    let first_pt = offered
        .lines()
        .find(|l| l.starts_with("m=audio"))
        .and_then(|l| l.split_whitespace().nth(3))
        .filter(|pt| pt.chars().all(|c| c.is_ascii_digit()) && !pt.is_empty())
        .unwrap_or("0");
    let formats = if offer.is_some() {
        first_pt.to_owned()
    } else {
        "0 8 101".to_owned()
    };
    let version = if offer.is_some() { 2 } else { 1 };
    let mut s = format!(
        "v=0\r\no=tapir 1 {version} IN {family} {addr}\r\ns=tapir\r\nc=IN {family} {addr}\r\nt=0 0\r\nm=audio 9 RTP/AVP {formats}\r\n"
    );
    if offer.is_none() {
        s.push_str(
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        );
    }
    s.push_str(&format!("a={direction}\r\n"));
    s
}
