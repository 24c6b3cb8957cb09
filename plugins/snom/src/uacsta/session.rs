//! One uaCSTA session: the INVITE that opens it (answering the phone's digest challenge),
//! CSTA requests in INFO with their answers, CSTA events the phone sends in INFO, and the BYE
//! that ends it. A small task owns the dialog; the driver talks to it through [`Session`].

use super::Inbound;
use crate::secret::Secret;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tapir_sip_ua::digest::{self, Challenge, Credentials, RequestParts};
use tapir_sip_ua::header::{NameAddr, Params};
use tapir_sip_ua::{
    ClientEvent, ClientTx, Dialog, Endpoint, Incoming, Message, Method, Target, Transport,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// The content type of CSTA XML (RFC-registered for ECMA-323).
pub const CONTENT_TYPE: &str = "application/csta+xml";

/// How to reach one phone.
#[derive(Debug, Clone)]
pub struct Open {
    /// The phone's SIP address (UDP).
    pub target: SocketAddr,
    /// The identity user in the Request-URI and To (`100` of `sip:100@pbx`).
    pub user: String,
    /// The login answering the phone's challenge (`csta_challenge`), if any.
    pub auth: Option<(String, Secret)>,
    /// Longest wait for any answer.
    pub timeout: Duration,
}

/// Why a session could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The phone answered the INVITE with a final error (CSTA off, not allowed, …).
    #[error("the phone refused the CSTA session: {code} {reason}")]
    Refused {
        /// SIP status.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// No answer, or the transport failed.
    #[error("the phone's SIP side cannot be reached: {0}")]
    Unreachable(String),
    /// The challenge could not be answered, or the answer was refused.
    #[error("the phone's CSTA challenge was not met: {0}")]
    Auth(String),
    /// The driver's SIP endpoint stopped.
    #[error("the SIP endpoint stopped")]
    Stopped,
}

/// Why a request inside a session failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The session is gone (BYE, 481, a failed request before); open a new one.
    #[error("the CSTA session is down: {0}")]
    Down(String),
    /// No answer in time; the session is taken down.
    #[error("the phone did not answer the CSTA request in time")]
    Timeout,
    /// The INFO was refused with this status; the session is taken down.
    #[error("the phone refused the INFO: {0} {1}")]
    Refused(u16, String),
}

enum Cmd {
    Request {
        xml: String,
        timeout: Duration,
        reply: oneshot::Sender<Result<String, SessionError>>,
    },
    Close,
}

/// The driver's handle on one session. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Session {
    cmd: mpsc::Sender<Cmd>,
    up: Arc<AtomicBool>,
    /// The session's SIP Call-ID (for logs).
    pub call_id: String,
}

impl Session {
    /// Whether the session is still up.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire) && !self.cmd.is_closed()
    }

    /// Sends one CSTA request in an INFO and returns the phone's answer (the body of the 200,
    /// or of an INFO the phone sends back with the response).
    ///
    /// # Errors
    /// [`SessionError`]; every error but a CSTA error answer takes the session down.
    pub async fn request(&self, xml: String, timeout: Duration) -> Result<String, SessionError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Request {
                xml,
                timeout,
                reply,
            })
            .await
            .map_err(|_| SessionError::Down("the session ended".into()))?;
        rx.await
            .map_err(|_| SessionError::Down("the session ended".into()))?
    }

    /// Ends the session (BYE); returns at once.
    pub fn close(&self) {
        self.up.store(false, Ordering::Release);
        let _ = self.cmd.try_send(Cmd::Close);
    }
}

/// Opens a session: INVITE with `RequestSystemStatus`, the challenge answered once, ACK.
/// Events and the session's end are reported through `on_event`.
pub(super) async fn open(
    endpoint: &Endpoint,
    open: Open,
    on_event: Arc<dyn Fn(Inbound) + Send + Sync>,
) -> Result<(Session, String), OpenError> {
    let target = Target {
        transport: Transport::Udp,
        addr: open.target,
    };
    let local = endpoint.local_addr_for(&target);
    let call_id = tapir_sip_ua::dialog::new_call_id(&local.ip().to_string());
    let (in_tx, inbox) = mpsc::channel(64);
    endpoint
        .route_call(&call_id, in_tx)
        .await
        .map_err(|_| OpenError::Stopped)?;
    let host = match open.target.ip() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    let uri = format!("sip:{}@{host}:{}", open.user, open.target.port());
    let local_host = match local.ip() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    let from = NameAddr {
        display: None,
        uri: format!("sip:tapir@{local_host}:{}", local.port()),
        params: Params(vec![("tag".into(), Some(tapir_sip_ua::dialog::new_tag()))]),
    };
    let contact = format!("<sip:tapir@{local_host}:{}>", local.port());
    let mut task = Task {
        endpoint: endpoint.clone(),
        target,
        call_id: call_id.clone(),
        contact,
        auth: open.auth,
        dialog: None,
        inbox,
        on_event,
        up: Arc::new(AtomicBool::new(false)),
    };
    let result = task.invite(&uri, &from.to_string(), open.timeout).await;
    let answer = match result {
        Ok(answer) => answer,
        Err(e) => {
            let _ = task.endpoint.unroute_call(&task.call_id).await;
            return Err(e);
        }
    };
    let (cmd, cmds) = mpsc::channel(16);
    task.up.store(true, Ordering::Release);
    let session = Session {
        cmd,
        up: Arc::clone(&task.up),
        call_id,
    };
    tokio::spawn(task.run(cmds));
    Ok((session, answer))
}

struct Task {
    endpoint: Endpoint,
    target: Target,
    call_id: String,
    contact: String,
    auth: Option<(String, Secret)>,
    dialog: Option<Dialog>,
    inbox: mpsc::Receiver<Incoming>,
    on_event: Arc<dyn Fn(Inbound) + Send + Sync>,
    up: Arc<AtomicBool>,
}

/// A request waiting for its answer.
struct Pending {
    tx: ClientTx,
    xml: String,
    reply: oneshot::Sender<Result<String, SessionError>>,
    deadline: Instant,
    challenged: bool,
    /// The 200 came without a body: the answer comes in an INFO from the phone.
    awaiting_info: bool,
}

fn reason(msg: &Message) -> String {
    match &msg.start {
        tapir_sip_ua::StartLine::Response { reason, .. } => reason.clone(),
        tapir_sip_ua::StartLine::Request { .. } => String::new(),
    }
}

fn body(msg: &Message) -> String {
    String::from_utf8_lossy(&msg.body).into_owned()
}

impl Task {
    /// Answers a 401/407 for `req`; the header to add.
    fn answer(&self, req: &Message, resp: &Message) -> Result<(&'static str, String), String> {
        let Some((user, password)) = &self.auth else {
            return Err("the phone asks for a login (csta_challenge); set sip_password".into());
        };
        let (challenge_name, auth_name) = if resp.code() == Some(407) {
            ("Proxy-Authenticate", "Proxy-Authorization")
        } else {
            ("WWW-Authenticate", "Authorization")
        };
        let challenge = Challenge::choose(resp.header_values_raw(challenge_name))
            .map_err(|e| format!("unreadable challenge: {e}"))?;
        let method = req.method().map(|m| m.to_string()).unwrap_or_default();
        let value = digest::authorization(
            &challenge,
            &Credentials {
                username: user.clone(),
                password: password.expose().to_owned(),
                realm: None,
            },
            RequestParts {
                method: &method,
                uri: req.request_uri().unwrap_or_default(),
                body: &req.body,
            },
            &digest::new_cnonce(),
            1,
        )
        .map_err(|e| format!("cannot answer the challenge: {e}"))?;
        Ok((auth_name, value))
    }

    async fn invite(
        &mut self,
        uri: &str,
        from: &str,
        timeout: Duration,
    ) -> Result<String, OpenError> {
        let deadline = Instant::now() + timeout;
        let mut seq = 1u32;
        let mut auth: Option<(&'static str, String)> = None;
        loop {
            let mut m = Message::request(Method::Invite, uri);
            m.push("Max-Forwards", "70");
            m.push("From", from);
            m.push("To", format!("<{uri}>"));
            m.push("Call-ID", self.call_id.clone());
            m.push("CSeq", format!("{seq} INVITE"));
            m.push("Contact", self.contact.clone());
            m.push("Allow", "INVITE, ACK, BYE, INFO, OPTIONS");
            m.push("User-Agent", self.endpoint.user_agent().to_owned());
            if let Some((n, v)) = &auth {
                m.push(n, v.clone());
            }
            m.set_body(
                CONTENT_TYPE,
                super::xml::request_system_status().into_bytes(),
            );
            let mut tx = self
                .endpoint
                .request(m, self.target)
                .await
                .map_err(|_| OpenError::Stopped)?;
            let resp = loop {
                let ev = tokio::time::timeout_at(deadline, tx.events.recv())
                    .await
                    .map_err(|_| OpenError::Unreachable("no answer to the INVITE".into()))?;
                match ev {
                    Some(ClientEvent::Response(r)) if r.code().is_some_and(|c| c >= 200) => {
                        break r
                    }
                    Some(ClientEvent::Response(_)) => {}
                    Some(ClientEvent::Timeout) | None => {
                        return Err(OpenError::Unreachable("no answer to the INVITE".into()))
                    }
                    Some(ClientEvent::TransportError(e)) => {
                        return Err(OpenError::Unreachable(e.to_string()))
                    }
                }
            };
            let code = resp.code().unwrap_or(0);
            match code {
                200..=299 => {
                    let dialog = Dialog::from_uac(&tx.request, &resp)
                        .map_err(|e| OpenError::Unreachable(format!("unusable 2xx: {e}")))?;
                    let _ = self.endpoint.send_ack(dialog.ack(seq), self.target).await;
                    self.dialog = Some(dialog);
                    return Ok(body(&resp));
                }
                401 | 407 if auth.is_none() => {
                    auth = Some(self.answer(&tx.request, &resp).map_err(OpenError::Auth)?);
                    seq += 1;
                }
                401 | 407 => {
                    return Err(OpenError::Auth(format!(
                        "the phone refused the login ({code} {})",
                        reason(&resp)
                    )))
                }
                _ => {
                    return Err(OpenError::Refused {
                        code,
                        reason: reason(&resp),
                    })
                }
            }
        }
    }

    async fn send_info(
        &mut self,
        xml: &str,
        auth: Option<(&'static str, String)>,
    ) -> Option<ClientTx> {
        let dialog = self.dialog.as_mut()?;
        let mut m = dialog.request(Method::Info);
        m.push("Contact", self.contact.clone());
        if let Some((n, v)) = auth {
            m.push(n, v);
        }
        m.set_body(CONTENT_TYPE, xml.as_bytes().to_vec());
        self.endpoint.request(m, self.target).await.ok()
    }

    fn down(&self, why: &str) {
        if self.up.swap(false, Ordering::AcqRel) {
            (self.on_event)(Inbound::Closed(why.to_owned()));
        }
    }

    async fn run(mut self, mut cmds: mpsc::Receiver<Cmd>) {
        let mut pending: Option<Pending> = None;
        let end: String = loop {
            let deadline = pending.as_ref().map(|p| p.deadline);
            tokio::select! {
                cmd = cmds.recv(), if pending.is_none() => match cmd {
                    Some(Cmd::Request { xml, timeout, reply }) => {
                        match self.send_info(&xml, None).await {
                            Some(tx) => {
                                pending = Some(Pending {
                                    tx,
                                    xml,
                                    reply,
                                    deadline: Instant::now() + timeout,
                                    challenged: false,
                                    awaiting_info: false,
                                });
                            }
                            None => {
                                let _ = reply.send(Err(SessionError::Down("cannot send the INFO".into())));
                                break "cannot send an INFO".into();
                            }
                        }
                    }
                    Some(Cmd::Close) | None => break "closed by the driver".into(),
                },
                ev = async {
                    match pending.as_mut() {
                        Some(p) if !p.awaiting_info => p.tx.events.recv().await,
                        _ => std::future::pending().await,
                    }
                } => {
                    if let Some(why) = self.on_info_answer(&mut pending, ev).await {
                        break why;
                    }
                }
                inc = self.inbox.recv() => match inc {
                    Some(inc) => {
                        if let Some(why) = self.on_incoming(inc, &mut pending).await {
                            break why;
                        }
                    }
                    None => break "the SIP endpoint stopped".into(),
                },
                () = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some(p) = pending.take() {
                        let _ = p.reply.send(Err(SessionError::Timeout));
                    }
                    break "a CSTA request went unanswered".into();
                }
            }
        };
        if let Some(p) = pending.take() {
            let _ = p.reply.send(Err(SessionError::Down(end.clone())));
        }
        self.down(&end);
        self.bye().await;
        let _ = self.endpoint.unroute_call(&self.call_id).await;
    }

    /// Handles a response to the pending INFO; `Some(why)` ends the session.
    async fn on_info_answer(
        &mut self,
        pending: &mut Option<Pending>,
        ev: Option<ClientEvent>,
    ) -> Option<String> {
        let p = pending.as_mut()?;
        let resp = match ev {
            Some(ClientEvent::Response(r)) => r,
            Some(ClientEvent::Timeout) | None => {
                let p = pending.take()?;
                let _ = p.reply.send(Err(SessionError::Timeout));
                return Some("a CSTA request went unanswered".into());
            }
            Some(ClientEvent::TransportError(e)) => {
                let p = pending.take()?;
                let _ = p.reply.send(Err(SessionError::Down(e.to_string())));
                return Some(e.to_string());
            }
        };
        let code = resp.code().unwrap_or(0);
        match code {
            100..=199 => None,
            200..=299 => {
                let text = body(&resp);
                if text.trim().is_empty() {
                    // TR/87 allows the answer in a separate INFO from the phone.
                    p.awaiting_info = true;
                    return None;
                }
                let p = pending.take()?;
                let _ = p.reply.send(Ok(text));
                None
            }
            401 | 407 if !p.challenged => {
                let header = match self.answer(&p.tx.request, &resp) {
                    Ok(h) => h,
                    Err(e) => {
                        let p = pending.take()?;
                        let _ = p.reply.send(Err(SessionError::Refused(code, e.clone())));
                        return Some(e);
                    }
                };
                let xml = p.xml.clone();
                match self.send_info(&xml, Some(header)).await {
                    Some(tx) => {
                        if let Some(p) = pending.as_mut() {
                            p.tx = tx;
                            p.challenged = true;
                        }
                        None
                    }
                    None => {
                        let p = pending.take()?;
                        let _ = p
                            .reply
                            .send(Err(SessionError::Down("cannot resend".into())));
                        Some("cannot resend an INFO".into())
                    }
                }
            }
            _ => {
                let p = pending.take()?;
                let why = reason(&resp);
                let _ = p.reply.send(Err(SessionError::Refused(code, why.clone())));
                Some(format!("the phone answered {code} {why} to an INFO"))
            }
        }
    }

    /// Handles a request the phone sent in the session; `Some(why)` ends it.
    async fn on_incoming(
        &mut self,
        inc: Incoming,
        pending: &mut Option<Pending>,
    ) -> Option<String> {
        let (key, msg) = match inc {
            Incoming::Request { key, msg } => (key, msg),
            Incoming::StrayResponse(resp) => {
                // A retransmitted 2xx to our INVITE: acknowledge it again.
                if resp.method() == Some(Method::Invite) {
                    if let (Some(d), Some(seq)) = (&self.dialog, resp.cseq().map(|c| c.seq)) {
                        let _ = self.endpoint.send_ack(d.ack(seq), self.target).await;
                    }
                }
                return None;
            }
            Incoming::Ack(_) | Incoming::Client { .. } => return None,
        };
        let in_dialog = self.dialog.as_ref().is_some_and(|d| d.matches(&msg));
        if !in_dialog {
            let r = Message::response_to(&msg, 481, "Call/Transaction Does Not Exist", None);
            let _ = self.endpoint.respond(key, r).await;
            return None;
        }
        if let Some(d) = self.dialog.as_mut() {
            if !d.accept_remote_seq(&msg) {
                let r = Message::response_to(&msg, 500, "Server Internal Error", None);
                let _ = self.endpoint.respond(key, r).await;
                return None;
            }
        }
        // The request is taken in before its 200 goes out: a phone that waits for the 200
        // before its next report (the Action URL of the same change) cannot have that report
        // overtake the CSTA event, which carries the cause.
        let ends = match msg.method() {
            Some(Method::Info) => {
                let text = body(&msg);
                let answers_pending = pending.as_ref().is_some_and(|p| p.awaiting_info)
                    && super::xml::root(&text)
                        .is_some_and(|r| r.ends_with("Response") || r == "CSTAErrorCode");
                if answers_pending {
                    if let Some(p) = pending.take() {
                        let _ = p.reply.send(Ok(text));
                    }
                } else {
                    (self.on_event)(Inbound::Csta(text));
                }
                None
            }
            Some(Method::Bye) => {
                self.dialog = None;
                Some("the phone ended the CSTA session (BYE)".into())
            }
            _ => None,
        };
        let ok = Message::response_to(&msg, 200, "OK", None);
        let _ = self.endpoint.respond(key, ok).await;
        ends
    }

    async fn bye(&mut self) {
        let Some(dialog) = self.dialog.as_mut() else {
            return;
        };
        let m = dialog.request(Method::Bye);
        if let Ok(mut tx) = self.endpoint.request(m, self.target).await {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(ev) = tx.events.recv().await {
                    if matches!(ev, ClientEvent::Response(ref r) if r.code().is_some_and(|c| c >= 200))
                    {
                        break;
                    }
                }
            })
            .await;
        }
        self.dialog = None;
    }
}
