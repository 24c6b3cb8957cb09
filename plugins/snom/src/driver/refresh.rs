//! Contacting a phone: the configuration check (read the settings, learn model, firmware,
//! MAC and identities, check and write the Action URLs, open the uaCSTA session), and the
//! cheap reachability probe between checks.

use super::fetch::FetchError;
use super::Shared;
use crate::action;
use crate::command;
use crate::config::UaCstaMode;
use crate::phone::{Job, Phone};
use crate::settings::{self, Check, Settings};
use std::sync::{Arc, PoisonError};
use tapir_core::{Configuration, Connection};

/// Settings written per request (snom's web server dislikes very long URLs).
const SETTINGS_PER_WRITE: usize = 4;

impl Shared {
    fn wanted(&self, phone: &Phone) -> Option<(settings::Wanted, settings::Wanted)> {
        let base = self.base.as_deref()?;
        let mut wanted = settings::required(base, phone.key.as_str(), &phone.secret);
        if self.config.uacsta == UaCstaMode::Configure {
            wanted.push(("csta_control", "on".to_owned()));
        }
        let also = match (&self.config.mass_config_secret, phone.mass) {
            (Some(s), _) => settings::required_mass(base, s.expose()),
            _ => Vec::new(),
        };
        Some((wanted, also))
    }

    /// The configuration check; at its end (or at the end of the uaCSTA attempt it started)
    /// the phone is settled: its line may appear.
    pub(super) async fn run_refresh(self: &Arc<Self>, phone: &Arc<Phone>, write: bool) {
        self.check(phone, write).await;
        if !phone.lock().uacsta.working {
            self.settle(phone);
        }
    }

    async fn check(self: &Arc<Self>, phone: &Arc<Phone>, write: bool) {
        {
            let mut st = phone.lock();
            if st.connection == Connection::NotContacted {
                st.connection = Connection::Connecting;
            }
            if st.ip.is_none() {
                st.ip = phone.target.ip();
            }
        }
        let path = self.config.settings_path.clone();
        let response = match self.fetch(phone, "GET", &path, None).await {
            Err(FetchError::Unreachable(m)) => {
                self.set_reachable(phone, false, Some(format!("cannot reach the phone: {m}")));
                return;
            }
            Err(FetchError::Blocked(_)) => return,
            Err(FetchError::Login(m)) => {
                {
                    let mut st = phone.lock();
                    st.connection = Connection::NeedsRegistration;
                    st.configuration = Configuration::Problem;
                    st.detail = Some(m.clone());
                    st.login_refused = Some(m);
                }
                self.settle_service(phone);
                return;
            }
            Ok(r) => {
                phone.lock().login_refused = None;
                r
            }
        };
        let came_back = !phone.lock().in_service;
        self.set_reachable(phone, true, None);
        if response.status == 404 {
            self.blind(phone, &path, write).await;
            return;
        }
        if response.status != 200 {
            let mut st = phone.lock();
            st.configuration = Configuration::Problem;
            st.detail = Some(format!(
                "the settings page {path} answered {}; nothing is written",
                response.status
            ));
            return;
        }
        let mut current = Settings::parse(&response.body);
        self.learn(phone, &current);
        if let Some(configured) = &phone.mac {
            let mut st = phone.lock();
            if let Some(real) = st.mac.clone().filter(|real| real != configured) {
                st.configuration = Configuration::Problem;
                st.detail = Some(format!(
                    "the phone at this address has MAC {real}, not {configured}"
                ));
                return;
            }
        }
        let Some((wanted, also)) = self.wanted(phone) else {
            {
                let mut st = phone.lock();
                st.configuration = Configuration::Problem;
                st.detail = Some("no callback URL: enable the host's [phones] endpoint".into());
            }
            // Calls can still be followed and driven over a uaCSTA session.
            self.ensure_session(phone);
            self.update_routes(phone);
            return;
        };
        let mut verdict = settings::check(&current, &wanted, &also);
        if verdict != Check::Correct && (write || self.config.auto_reconfigure) && !phone.mass {
            let to_write: Vec<(&'static str, String)> = match &verdict {
                Check::Wrong(names) => wanted
                    .iter()
                    .filter(|(n, _)| names.contains(n))
                    .cloned()
                    .collect(),
                Check::Correct => Vec::new(),
            };
            if self.write_settings(phone, &to_write).await {
                if let Ok(r) = self.fetch(phone, "GET", &path, None).await {
                    if r.status == 200 {
                        current = Settings::parse(&r.body);
                        self.learn(phone, &current);
                        verdict = settings::check(&current, &wanted, &also);
                    }
                }
            }
        }
        let address = command::address_from_settings(&current);
        let events = {
            let mut st = phone.lock();
            match verdict {
                Check::Correct => {
                    st.configuration = Configuration::Correct;
                    st.detail = None;
                }
                Check::Wrong(names) => {
                    st.configuration = Configuration::CallbacksMissing;
                    st.detail = Some(format!("missing or wrong: {}", names.join(", ")));
                }
            }
            st.tracker.set_address(&phone.key, address)
        };
        self.emit(events);
        self.ensure_session(phone);
        self.update_routes(phone);
        if came_back && !phone.lock().tracker.calls().is_empty() {
            self.enqueue(phone, Job::Snapshot);
        }
    }

    /// A phone without a settings page: the Action URLs are written once, blind (again only
    /// on demand or after the phone restarted).
    async fn blind(self: &Arc<Self>, phone: &Arc<Phone>, path: &str, write: bool) {
        {
            let mut st = phone.lock();
            st.configuration = Configuration::Unknown;
            st.detail = Some(format!("the settings page {path} answered 404"));
        }
        let again = write || !phone.lock().written_blind;
        if (again && self.config.auto_reconfigure) || write {
            if let Some((wanted, _)) = self.wanted(phone) {
                let ok = self.write_settings(phone, &wanted).await;
                let mut st = phone.lock();
                st.written_blind = ok;
                st.detail = Some(if ok {
                    "Action URLs written; they cannot be read back (no settings page)".into()
                } else {
                    "writing the Action URLs failed".into()
                });
            }
        }
        self.update_routes(phone);
    }

    fn learn(&self, phone: &Phone, s: &Settings) {
        let mut st = phone.lock();
        if let Some(t) = s.get("phone_type").filter(|v| !v.is_empty()) {
            st.model = Some(t.to_owned());
            st.facts.model = Some(t.to_owned());
        }
        if let Some(f) = s.get("firmware_version").filter(|v| !v.is_empty()) {
            st.facts.firmware_major = settings::firmware_major(f);
            st.firmware = Some(f.to_owned());
        }
        if let Some(mac) = s.get("mac").and_then(action::normalize_mac) {
            if st.mac.as_deref() != Some(&mac) && phone.mac.is_none() {
                self.by_mac
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(mac.clone(), phone.key.to_string());
            }
            st.mac = Some(mac);
        }
        let mut identities = Vec::new();
        for i in 1..=12 {
            let user = s.get(&format!("user_name{i}")).unwrap_or("");
            let host = s.get(&format!("user_host{i}")).unwrap_or("");
            if user.is_empty() || s.get(&format!("user_active{i}")) == Some("off") {
                if i == 1 {
                    continue;
                }
                break;
            }
            identities.push(if host.is_empty() {
                format!("sip:{user}")
            } else {
                format!("sip:{user}@{host}")
            });
        }
        if let Some(first) = identities.first() {
            st.identity = Some(first.trim_start_matches("sip:").to_owned());
        }
        st.tracker.set_identities(&identities);
        st.facts.identities = identities;
        let field = format!("{}1", self.config.number_field.setting());
        st.number = s.get(&field).filter(|v| !v.is_empty()).map(str::to_owned);
        // A programmable key deflects only if it is programmed to.
        if let Some(key) = &self.config.redirect_key {
            if let Ok(Some(index)) = crate::config::deflect_key(key) {
                let function = s.get(&format!("fkey{index}")).unwrap_or("");
                st.facts.redirect_key =
                    (function.trim() == "keyevent F_DEFLECT").then(|| key.clone());
            }
        }
        st.uacsta.wanted = match self.config.uacsta {
            UaCstaMode::Off => false,
            UaCstaMode::Auto => s.get("csta_control") == Some("on"),
            UaCstaMode::Configure => true,
        };
        st.uacsta.sip_port = s
            .get("network_id_port")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .filter(|p| *p > 0);
    }

    async fn write_settings(&self, phone: &Phone, pairs: &[(&'static str, String)]) -> bool {
        for chunk in pairs.chunks(SETTINGS_PER_WRITE) {
            let refs: Vec<(&str, &str)> = chunk.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let path = command::write_settings(&refs);
            match self.fetch(phone, "GET", &path, None).await {
                Ok(r) if (200..300).contains(&r.status) => {}
                Ok(r) => {
                    tracing::warn!(phone = %phone.key, status = r.status, "The phone refused a settings write.");
                    return false;
                }
                Err(e) => {
                    tracing::warn!(phone = %phone.key, error = ?e, "A settings write failed.");
                    return false;
                }
            }
        }
        true
    }

    /// The reachability check: one request without credentials (no login is ever counted
    /// against the phone); any HTTP answer means reachable. A phone that comes back, or whose
    /// lock-out ended (it challenges again), is checked in full.
    pub(super) async fn run_probe(self: &Arc<Self>, phone: &Arc<Phone>) {
        let timeout = self.config.request_timeout();
        let answer = crate::http::send(&phone.target, "GET", "/", None, None, timeout).await;
        let (was_unreachable, blocked) = {
            let st = phone.lock();
            (st.connection == Connection::Unreachable, st.blocked.clone())
        };
        match answer {
            Err(e) => {
                phone.lock().probe_failures += 1;
                self.set_reachable(phone, false, Some(format!("cannot reach the phone: {e}")));
            }
            Ok(r) => {
                let still = match (&blocked, r.status) {
                    (Some(b), 403) if b.locked => true,
                    (Some(b), 503) if !b.locked => true,
                    _ => false,
                };
                if still {
                    if let Some(b) = phone.lock().blocked.as_mut() {
                        let secs = if b.locked {
                            self.config.lockout_retry_secs.max(1)
                        } else {
                            super::fetch::RESTART_WAIT.as_secs()
                        };
                        b.until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
                    }
                    return;
                }
                if let Some(b) = blocked {
                    if b.locked {
                        // The lock-out ended: the phone counts from zero again.
                        tracing::info!(phone = %phone.key, "The phone accepts logins again; its lock-out ended.");
                        self.store_lock().reset(phone.key.as_str());
                        let mut st = phone.lock();
                        st.digest_failures = 0;
                        st.wrong_login = None;
                    }
                    phone.lock().blocked = None;
                    self.enqueue(phone, Job::Refresh { write: false });
                    return;
                }
                if r.status == 503 || r.status == 403 {
                    // Restarting, or locked by someone else: the full check finds out.
                    self.enqueue(phone, Job::Refresh { write: false });
                    return;
                }
                self.set_reachable(phone, true, None);
                if was_unreachable {
                    self.enqueue(phone, Job::Refresh { write: false });
                }
            }
        }
    }

    /// A phone's `setup` report: it restarted. Its uaCSTA dialog is gone with it.
    pub(super) fn restarted(&self, phone: &Phone) {
        let session = {
            let mut st = phone.lock();
            st.written_blind = false;
            // It said it is up: a 503 wait is over (a lock-out is not: the probe decides).
            if st.blocked.as_ref().is_some_and(|b| !b.locked) {
                st.blocked = None;
            }
            st.uacsta.retry_at = None;
            st.uacsta.session.take()
        };
        if let Some(s) = session {
            s.close();
        }
        self.update_routes(phone);
    }
}
