//! The uaCSTA sessions of the driver's phones: opened after a configuration check when the
//! phone takes uaCSTA, watched (`MonitorStart`, a `RequestSystemStatus` at each check), used
//! for CSTA requests, and taken down (falling back to HTTP) when they fail; events from them
//! go into the phone's call tracker like Action URLs.

use super::Shared;
use crate::phone::Phone;
use crate::uacsta::{self, xml, Client, Inbound, Open};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapir_core::{CallId, DriverError};

/// How long to wait before opening a session again after one failed or was refused.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// A session heard from more recently than this needs no keep-alive at a check.
const QUIET_BEFORE_KEEPALIVE: Duration = Duration::from_secs(60);

impl Shared {
    /// The SIP endpoint, started on first use; `None` when it cannot be bound (logged).
    async fn sip_client(&self) -> Option<&Client> {
        self.sip
            .get_or_init(|| async {
                let bind: SocketAddr = match self.config.sip_listen.parse() {
                    Ok(a) => a,
                    Err(_) => return None,
                };
                match Client::start(bind).await {
                    Ok(c) => {
                        tracing::info!(addr = %c.local_addr(), "snom: SIP endpoint for uaCSTA started.");
                        Some(c)
                    }
                    Err(e) => {
                        tracing::error!(%bind, error = %e, "snom: the SIP endpoint for uaCSTA cannot start; CSTA over SIP is not used.");
                        None
                    }
                }
            })
            .await
            .as_ref()
    }

    /// After a configuration check: keeps the phone's session up when it takes uaCSTA, opens
    /// one when it is due, closes it when the phone no longer takes uaCSTA. The SIP exchange
    /// runs on its own task, so a phone whose SIP side does not answer never holds up its
    /// HTTP requests; at most one such task per phone.
    pub(super) fn ensure_session(self: &Arc<Self>, phone: &Arc<Phone>) {
        {
            let mut st = phone.lock();
            if st.uacsta.working {
                return;
            }
            st.uacsta.working = true;
        }
        let shared = Arc::clone(self);
        let phone = Arc::clone(phone);
        self.handle.spawn(async move {
            shared.maintain_session(&phone).await;
            phone.lock().uacsta.working = false;
            shared.settle(&phone);
        });
    }

    /// Keeps up (one `RequestSystemStatus` for a session quiet for a while), opens or closes
    /// the phone's session.
    async fn maintain_session(self: &Arc<Self>, phone: &Arc<Phone>) {
        let (wanted, session, retry_at) = {
            let st = phone.lock();
            (
                st.uacsta.wanted,
                st.uacsta.session.clone(),
                st.uacsta.retry_at,
            )
        };
        if !wanted {
            if let Some(s) = phone.lock().uacsta.session.take() {
                s.close();
            }
            phone.lock().uacsta.problem = None;
            return;
        }
        let timeout = self.config.request_timeout();
        if let Some(s) = session.filter(|s| s.is_up()) {
            let heard = phone.lock().uacsta.last_heard;
            if heard.is_some_and(|t| t.elapsed() < QUIET_BEFORE_KEEPALIVE) {
                return;
            }
            match s.request(xml::request_system_status(), timeout).await {
                Ok(_) => {
                    phone.lock().uacsta.last_heard = Some(Instant::now());
                    return;
                }
                Err(e) => self.session_down(phone, &e.to_string()),
            }
        }
        if retry_at.is_some_and(|t| t > Instant::now()) {
            return;
        }
        let Some(open) = self.session_target(phone).await else {
            return;
        };
        let Some(client) = self.sip_client().await else {
            phone.lock().uacsta.problem = Some("the driver's SIP endpoint is not running".into());
            return;
        };
        let shared = Arc::downgrade(self);
        let weak = Arc::downgrade(phone);
        let on_event = Arc::new(move |inbound: Inbound| {
            if let (Some(shared), Some(phone)) = (shared.upgrade(), weak.upgrade()) {
                shared.on_session(&phone, inbound);
            }
        });
        match client.open(open, on_event).await {
            Ok((session, _status)) => {
                let device = phone
                    .lock()
                    .facts
                    .identities
                    .first()
                    .cloned()
                    .unwrap_or_default();
                match session.request(xml::monitor_start(&device), timeout).await {
                    Ok(answer) if answer.contains("MonitorStartResponse") => {}
                    Ok(answer) => {
                        tracing::info!(phone = %phone.key, answer = %answer.chars().take(120).collect::<String>(), "The phone did not start a CSTA monitor; call states come from Action URLs only.");
                    }
                    Err(e) => {
                        self.session_down(phone, &e.to_string());
                        return;
                    }
                }
                tracing::info!(phone = %phone.key, call_id = %session.call_id, "uaCSTA session open.");
                let mut st = phone.lock();
                st.uacsta.session = Some(session);
                st.uacsta.problem = None;
                st.uacsta.retry_at = None;
                st.uacsta.last_heard = Some(Instant::now());
            }
            Err(e) => {
                let refused = matches!(e, uacsta::OpenError::Refused { .. });
                tracing::info!(phone = %phone.key, error = %e, "No uaCSTA session; the phone is driven over HTTP.");
                let retry = if refused {
                    Duration::from_secs(self.config.status_interval_secs.max(60))
                } else {
                    RETRY_AFTER_FAILURE
                };
                let mut st = phone.lock();
                st.uacsta.problem = Some(e.to_string());
                st.uacsta.retry_at = Some(Instant::now() + retry);
            }
        }
    }

    /// Where and as whom to open the session.
    async fn session_target(&self, phone: &Phone) -> Option<Open> {
        let (ip, port, user) = {
            let st = phone.lock();
            let user = phone.sip_user.clone().or_else(|| {
                st.facts
                    .identities
                    .first()
                    .map(|i| crate::action::user_part(i))
            });
            (
                phone.target.ip().or(st.ip),
                phone
                    .sip_port
                    .or(st.uacsta.sip_port)
                    .unwrap_or(self.config.sip_port),
                user,
            )
        };
        let user = user?;
        let ip = match ip {
            Some(ip) => ip,
            None => tokio::net::lookup_host((phone.target.host.as_str(), port))
                .await
                .ok()?
                .next()?
                .ip(),
        };
        Some(Open {
            target: SocketAddr::new(ip, port),
            auth: phone
                .sip_password
                .clone()
                .map(|p| (phone.sip_user.clone().unwrap_or_else(|| user.clone()), p)),
            user,
            timeout: self.config.request_timeout(),
        })
    }

    /// The session is gone (failed, ended by the phone, the phone restarted): per-call
    /// operations use HTTP until a new one is open.
    pub(super) fn session_down(&self, phone: &Phone, why: &str) {
        let session = {
            let mut st = phone.lock();
            st.uacsta.problem = Some(format!("session ended: {why}"));
            st.uacsta.retry_at = Some(Instant::now() + RETRY_AFTER_FAILURE);
            st.uacsta.session.take()
        };
        if let Some(s) = session {
            tracing::info!(phone = %phone.key, why, "uaCSTA session down; HTTP is used until it is open again.");
            s.close();
        }
        self.update_routes(phone);
    }

    /// One CSTA request in the phone's session; the answer's text.
    pub(super) async fn session_request(
        &self,
        phone: &Phone,
        xml: String,
    ) -> Result<String, DriverError> {
        let Some(session) = phone.lock().uacsta.up().cloned() else {
            return Err(DriverError::failed("the phone's CSTA session is down"));
        };
        match session.request(xml, self.config.request_timeout()).await {
            Ok(answer) => {
                phone.lock().uacsta.last_heard = Some(Instant::now());
                Ok(answer)
            }
            Err(e) => {
                self.session_down(phone, &e.to_string());
                Err(DriverError::failed(format!(
                    "the CSTA session failed ({e}); per-call operations use HTTP until it is open again"
                )))
            }
        }
    }

    /// What a session reports: CSTA events into the call tracker, its end.
    fn on_session(&self, phone: &Phone, inbound: Inbound) {
        match inbound {
            Inbound::Closed(why) => self.session_down(phone, &why),
            Inbound::Csta(text) => {
                let identities = {
                    let mut st = phone.lock();
                    st.uacsta.last_heard = Some(Instant::now());
                    st.facts.identities.clone()
                };
                let Some(happened) = xml::event(&text, &|d| xml::is_ours(d, &identities)) else {
                    return;
                };
                for h in happened {
                    match h {
                        xml::Happened::Like(event, vars) => {
                            let sink = Arc::clone(&self.sink);
                            let mut ids = move || -> CallId { sink.new_call_id() };
                            let (events, _) = phone
                                .lock()
                                .tracker
                                .apply(&phone.key, &mut ids, event, &vars);
                            self.emit(events);
                        }
                        xml::Happened::Failed(vars) => {
                            let events = phone.lock().tracker.failed(&phone.key, &vars);
                            self.emit(events);
                        }
                    }
                }
            }
        }
    }
}
