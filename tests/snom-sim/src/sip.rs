//! The simulated phone's SIP side for uaCSTA (ECMA TR/87), over UDP on loopback:
//! - an INVITE with a CSTA body opens the session (200 with `RequestSystemStatusResponse`),
//!   or is refused (488 with `csta_control` off, or the configured status), or is challenged
//!   (401, `csta_challenge` 1 with the identity password);
//! - CSTA requests in INFO are carried out on the phone and answered in the 200's body
//!   (a retransmitted INFO gets the same answer, nothing is done twice);
//! - after `MonitorStart`, the phone's call events go to the host in INFO requests;
//! - BYE ends the session; a reboot forgets it (later INFOs get 481).
//!
//! Messages are read and written with tapir's SIP codec (`tapir-sip-ua`); the exchange
//! itself (who answers what) is this module's.

use crate::phone::SimPhone;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;
use tapir_sip_ua::{Message, Method, StartLine};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

const REALM: &str = "snom";
const CONTENT_TYPE: &str = "application/csta+xml";

/// The open session, as the phone keeps it.
#[derive(Debug)]
struct Session {
    call_id: String,
    /// The host's From (its tag included): our To on requests we send.
    their_from: String,
    /// Our To (our tag included): our From on requests we send.
    our_to: String,
    peer: SocketAddr,
    remote_target: String,
    our_seq: u32,
    /// The last INFO answered: (CSeq, answer) for retransmissions.
    last: Option<(u32, Vec<u8>)>,
}

/// The SIP side of one simulated phone.
pub struct SipSide {
    /// Where it listens.
    pub addr: SocketAddr,
    socket: Arc<UdpSocket>,
    phone: Weak<SimPhone>,
    session: Mutex<Option<Session>>,
    waiting: Mutex<Vec<(String, oneshot::Sender<()>)>>,
    nonces: Mutex<Vec<String>>,
    requests: AtomicU64,
}

fn text(msg: &Message) -> String {
    String::from_utf8_lossy(&msg.body).into_owned()
}

impl SipSide {
    pub(crate) async fn start(phone: &Arc<SimPhone>) -> std::io::Result<Arc<SipSide>> {
        let socket = UdpSocket::bind(SocketAddr::new(phone.addr().ip(), 0)).await?;
        let side = Arc::new(SipSide {
            addr: socket.local_addr()?,
            socket: Arc::new(socket),
            phone: Arc::downgrade(phone),
            session: Mutex::new(None),
            waiting: Mutex::new(Vec::new()),
            nonces: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
        });
        phone.handle.spawn(Arc::clone(&side).run());
        Ok(side)
    }

    fn session(&self) -> MutexGuard<'_, Option<Session>> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a session is open.
    pub fn has_session(&self) -> bool {
        self.session().is_some()
    }

    /// CSTA requests received in INFO (retransmissions not counted).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The phone restarted: the session is gone without a BYE.
    pub(crate) fn forget_session(&self) {
        *self.session() = None;
    }

    async fn run(self: Arc<Self>) {
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok((n, from)) = self.socket.recv_from(&mut buf).await else {
                return;
            };
            let Some(phone) = self.phone.upgrade() else {
                return;
            };
            let Ok(msg) = Message::parse(&buf[..n]) else {
                continue;
            };
            match &msg.start {
                StartLine::Response { .. } => self.on_response(&msg),
                StartLine::Request { .. } => {
                    if let Some(answer) = self.on_request(&phone, &msg, from) {
                        let _ = self.socket.send_to(&answer, from).await;
                    }
                }
            }
        }
    }

    fn on_response(&self, msg: &Message) {
        let Some(branch) = msg.top_via().and_then(|v| v.branch().map(str::to_owned)) else {
            return;
        };
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = waiting.iter().position(|(b, _)| *b == branch) {
            let (_, tx) = waiting.remove(i);
            let _ = tx.send(());
        }
    }

    fn respond(
        &self,
        req: &Message,
        code: u16,
        reason: &str,
        tag: Option<&str>,
        extra: &[(&str, String)],
        body: Option<String>,
    ) -> Vec<u8> {
        let mut r = Message::response_to(req, code, reason, tag);
        for (n, v) in extra {
            r.push(n, v.clone());
        }
        if let Some(b) = body {
            r.set_body(CONTENT_TYPE, b.into_bytes());
        }
        r.to_bytes()
    }

    fn on_request(
        &self,
        phone: &Arc<SimPhone>,
        msg: &Message,
        from: SocketAddr,
    ) -> Option<Vec<u8>> {
        let method = msg.method()?;
        let sip = phone.config.sip.clone().unwrap_or_default();
        let contact = format!("<sip:{}@{}>", phone.config.user, self.addr);
        match method {
            Method::Invite => {
                if let Some(code) = sip.refuse {
                    return Some(self.respond(msg, code, "Refused", Some("sim"), &[], None));
                }
                let control = phone.setting("csta_control").as_deref() == Some("on");
                if !control {
                    return Some(self.respond(
                        msg,
                        488,
                        "Not Acceptable Here",
                        Some("sim"),
                        &[],
                        None,
                    ));
                }
                if let Some(password) = &sip.password {
                    let given = msg.header("Authorization");
                    let nonces = self
                        .nonces
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    let ok = given.is_some_and(|h| {
                        crate::auth::digest_ok(
                            h,
                            "INVITE",
                            REALM,
                            &phone.config.user,
                            password,
                            &nonces,
                        )
                    });
                    if !ok {
                        let nonce = crate::auth::md5_hex(&format!(
                            "{}{}",
                            msg.call_id().unwrap_or(""),
                            msg.cseq().map_or(0, |c| c.seq)
                        ));
                        let mut nonces = self.nonces.lock().unwrap_or_else(PoisonError::into_inner);
                        nonces.push(nonce.clone());
                        if nonces.len() > 8 {
                            nonces.remove(0);
                        }
                        let challenge = format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5");
                        return Some(self.respond(
                            msg,
                            401,
                            "Unauthorized",
                            Some("sim"),
                            &[("WWW-Authenticate", challenge)],
                            None,
                        ));
                    }
                }
                let tag = format!("sim{}", msg.cseq().map_or(0, |c| c.seq));
                let answer = {
                    let mut st = phone.lock();
                    crate::csta::serve_any(phone, &mut st, &text(msg))
                };
                let reply = Message::response_to(msg, 200, "OK", Some(&tag));
                let remote_target = msg
                    .header("Contact")
                    .and_then(tapir_sip_ua::NameAddr::parse)
                    .map(|n| n.uri)
                    .unwrap_or_default();
                *self.session() = Some(Session {
                    call_id: msg.call_id().unwrap_or_default().to_owned(),
                    their_from: msg.header("From").unwrap_or_default().to_owned(),
                    our_to: reply.header("To").unwrap_or_default().to_owned(),
                    peer: from,
                    remote_target,
                    our_seq: 1,
                    last: None,
                });
                Some(self.respond(
                    msg,
                    200,
                    "OK",
                    Some(&tag),
                    &[("Contact", contact)],
                    Some(answer),
                ))
            }
            Method::Ack => None,
            Method::Info => {
                let seq = msg.cseq().map_or(0, |c| c.seq);
                {
                    let session = self.session();
                    let Some(s) = session
                        .as_ref()
                        .filter(|s| Some(s.call_id.as_str()) == msg.call_id())
                    else {
                        return Some(self.respond(
                            msg,
                            481,
                            "Call/Transaction Does Not Exist",
                            None,
                            &[],
                            None,
                        ));
                    };
                    if let Some((last, answer)) = &s.last {
                        if *last == seq {
                            return Some(answer.clone());
                        }
                    }
                }
                self.requests.fetch_add(1, Ordering::Relaxed);
                let body = text(msg);
                let answer = match crate::csta::root_name(&body) {
                    Some("MonitorStart") => {
                        phone.monitoring.store(true, Ordering::Release);
                        format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<MonitorStartResponse xmlns=\"{}\"><monitorCrossRefID>1</monitorCrossRefID><monitorExistingCalls>true</monitorExistingCalls></MonitorStartResponse>", crate::csta::NS)
                    }
                    Some("MonitorStop") => {
                        phone.monitoring.store(false, Ordering::Release);
                        format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<MonitorStopResponse xmlns=\"{}\"/>", crate::csta::NS)
                    }
                    _ => {
                        let mut st = phone.lock();
                        crate::csta::serve_any(phone, &mut st, &body)
                    }
                };
                let bytes = self.respond(msg, 200, "OK", None, &[], Some(answer));
                if let Some(s) = self.session().as_mut() {
                    s.last = Some((seq, bytes.clone()));
                }
                Some(bytes)
            }
            Method::Bye => {
                let ours = self
                    .session()
                    .as_ref()
                    .is_some_and(|s| Some(s.call_id.as_str()) == msg.call_id());
                if ours {
                    *self.session() = None;
                    phone.monitoring.store(false, Ordering::Release);
                    Some(self.respond(msg, 200, "OK", None, &[], None))
                } else {
                    Some(self.respond(msg, 481, "Call/Transaction Does Not Exist", None, &[], None))
                }
            }
            Method::Options => Some(self.respond(msg, 200, "OK", None, &[], None)),
            _ => Some(self.respond(msg, 405, "Method Not Allowed", None, &[], None)),
        }
    }

    /// Sends a CSTA event in an INFO inside the session and waits (briefly) for its 200, so
    /// the host has taken it before the next report goes out.
    pub(crate) async fn send_event(&self, xml: String) {
        let (bytes, peer, branch) = {
            let mut session = self.session();
            let Some(s) = session.as_mut() else {
                return;
            };
            s.our_seq += 1;
            let branch = format!("z9hG4bKsim{}{}", s.our_seq, fastrand_u32());
            let mut m = Message::request(Method::Info, s.remote_target.clone());
            m.push(
                "Via",
                format!("SIP/2.0/UDP {};branch={branch};rport", self.addr),
            );
            m.push("Max-Forwards", "70");
            m.push("From", s.our_to.clone());
            m.push("To", s.their_from.clone());
            m.push("Call-ID", s.call_id.clone());
            m.push("CSeq", format!("{} INFO", s.our_seq));
            m.set_body(CONTENT_TYPE, xml.into_bytes());
            (m.to_bytes(), s.peer, branch)
        };
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((branch.clone(), tx));
        // UDP on loopback: resent twice at most, like a short Timer E.
        let mut rx = rx;
        for _ in 0..3 {
            let _ = self.socket.send_to(&bytes, peer).await;
            match tokio::time::timeout(Duration::from_millis(500), &mut rx).await {
                Ok(_) => return,
                Err(_) => continue,
            }
        }
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(b, _)| *b != branch);
    }
}

fn fastrand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish() as u32
}
