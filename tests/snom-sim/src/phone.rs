//! A simulated phone's state: settings, calls, the key state machine, Action URLs fired, and
//! the controls tests use to act as the far end.

use crate::fire;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;

/// How a simulated phone is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen (loopback only).
    pub bind: SocketAddr,
    /// MAC (12 hex digits).
    pub mac: String,
    /// `phone_type`.
    pub model: String,
    /// `firmware_version`.
    pub firmware: String,
    /// Identity 1 user.
    pub user: String,
    /// Identity 1 host.
    pub host: String,
    /// Web login; `None` = no authentication.
    pub login: Option<(String, String)>,
    /// Digest instead of Basic.
    pub digest: bool,
    /// The far end answers outgoing calls after this long; `None` = never by itself.
    pub answer_after: Option<Duration>,
    /// Serve the CSTA snapshot page.
    pub csta: bool,
    /// Settings preset (e.g. Action URLs of a mass configuration).
    pub settings: Vec<(String, String)>,
    /// Serve HTTPS (a fresh self-signed certificate) instead of HTTP.
    pub tls: bool,
    /// Serve the settings dump at `/settings.xml` (its URL is not documented by snom; a phone
    /// without it answers 404).
    pub settings_page: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            mac: "000413000001".into(),
            model: "snomD785".into(),
            firmware: "10.1.33.33".into(),
            user: "100".into(),
            host: "pbx.local".into(),
            login: None,
            digest: false,
            answer_after: None,
            csta: true,
            settings: Vec::new(),
            tls: false,
            settings_page: true,
        }
    }
}

/// A call's state on the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimCallState {
    /// Ringing here.
    Ringing,
    /// Placed here, far end alerted.
    Outgoing,
    /// Talking.
    Connected,
    /// On hold.
    Held,
}

/// A call on the simulated phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCall {
    /// CSTA id.
    pub csta: u64,
    /// SIP Call-ID.
    pub call_id: String,
    /// The far end.
    pub remote: String,
    /// State.
    pub state: SimCallState,
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub settings: HashMap<String, String>,
    pub calls: Vec<SimCall>,
    pub transfer_digits: Option<String>,
    pub redirect_digits: Option<String>,
    pub redirected_to: Vec<String>,
    pub transferred_to: Vec<String>,
    pub csta_requests: Vec<String>,
    pub dialtone: bool,
    pub dtmf: Vec<String>,
    pub requests: Vec<String>,
    pub fired: Vec<String>,
    pub wrong_passwords: u32,
    pub locked: bool,
    pub nonces: Vec<String>,
}

/// One simulated phone.
pub struct SimPhone {
    pub(crate) config: SimConfig,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) addr: Mutex<SocketAddr>,
    pub(crate) busy: AtomicBool,
    pub(crate) serial: tokio::sync::Mutex<()>,
    violations: AtomicU64,
    next_id: AtomicU64,
    events: mpsc::UnboundedSender<String>,
    pub(crate) server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(crate) handle: tokio::runtime::Handle,
    fired_ok: AtomicU64,
}

impl SimPhone {
    pub(crate) async fn start(
        config: SimConfig,
        handle: tokio::runtime::Handle,
        firing: Arc<tokio::sync::Semaphore>,
    ) -> std::io::Result<Arc<SimPhone>> {
        if !config.bind.ip().is_loopback() {
            return Err(std::io::Error::other(
                "the simulator listens on loopback only",
            ));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let mut settings: HashMap<String, String> = HashMap::new();
        for (k, v) in [
            ("phone_type", config.model.as_str()),
            ("firmware_version", config.firmware.as_str()),
            ("mac", config.mac.as_str()),
            ("user_name1", config.user.as_str()),
            ("user_host1", config.host.as_str()),
            ("user_realname1", "Sim Phone"),
            ("user_active1", "on"),
            ("dnd_mode", "off"),
            ("redirect_event", "none"),
            ("http_scheme", if config.digest { "on" } else { "off" }),
        ] {
            settings.insert(k.to_owned(), v.to_owned());
        }
        for (k, v) in &config.settings {
            settings.insert(k.clone(), v.clone());
        }
        let phone = Arc::new(SimPhone {
            inner: Mutex::new(Inner {
                settings,
                ..Inner::default()
            }),
            addr: Mutex::new(config.bind),
            config,
            busy: AtomicBool::new(false),
            serial: tokio::sync::Mutex::new(()),
            violations: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            events: tx,
            server: Mutex::new(None),
            handle: handle.clone(),
            fired_ok: AtomicU64::new(0),
        });
        handle.spawn(fire_loop(Arc::downgrade(&phone), rx, firing));
        crate::server::listen(&phone).await?;
        Ok(phone)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The web server's address.
    pub fn addr(&self) -> SocketAddr {
        *self.addr.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Times a request arrived while another was being served.
    pub fn parallel_violations(&self) -> u64 {
        self.violations.load(Ordering::Relaxed)
    }

    pub(crate) fn note_parallel(&self) {
        self.violations.fetch_add(1, Ordering::Relaxed);
    }

    /// The calls now.
    pub fn calls(&self) -> Vec<SimCall> {
        self.lock().calls.clone()
    }

    /// A setting's value.
    pub fn setting(&self, name: &str) -> Option<String> {
        self.lock().settings.get(name).cloned()
    }

    /// Sets a setting directly (as a user on the phone would).
    pub fn set_setting(&self, name: &str, value: &str) {
        self.lock()
            .settings
            .insert(name.to_owned(), value.to_owned());
    }

    /// CSTA call-control requests served (`HoldCall 2`, ids in request order).
    pub fn csta_requests(&self) -> Vec<String> {
        self.lock().csta_requests.clone()
    }

    /// Where calls were transferred to by CSTA `SingleStepTransferCall`.
    pub fn transferred(&self) -> Vec<String> {
        self.lock().transferred_to.clone()
    }

    /// Paths of the requests served (most recent last).
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// Action URLs fired (after substitution).
    pub fn fired(&self) -> Vec<String> {
        self.lock().fired.clone()
    }

    /// How many fired Action URLs were answered 200.
    pub fn fired_ok(&self) -> u64 {
        self.fired_ok.load(Ordering::Relaxed)
    }

    /// Where ringing calls were redirected to (`F_REDIRECT`, digits, `ENTER`).
    pub fn redirected(&self) -> Vec<String> {
        self.lock().redirected_to.clone()
    }

    /// DTMF sent.
    pub fn dtmf(&self) -> Vec<String> {
        self.lock().dtmf.clone()
    }

    /// Wrong passwords so far / locked.
    pub fn auth_state(&self) -> (u32, bool) {
        let st = self.lock();
        (st.wrong_passwords, st.locked)
    }

    /// Unlocks after a Digest lock-out (power cycle).
    pub fn unlock(&self) {
        let mut st = self.lock();
        st.locked = false;
        st.wrong_passwords = 0;
    }

    /// Stops answering: the listener is closed (connections are refused).
    pub fn go_offline(&self) {
        if let Some(task) = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }

    /// Listens again on the same port.
    ///
    /// # Errors
    /// When the port cannot be bound again.
    pub fn come_back(self: &Arc<Self>) -> std::io::Result<()> {
        let handle = self.handle.clone();
        let me = Arc::clone(self);
        handle.block_on(async move {
            let mut last = Ok(());
            for _ in 0..50 {
                last = crate::server::listen(&me).await;
                if last.is_ok() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            last
        })
    }

    /// Loses every call without telling anyone (what a snapshot must notice).
    pub fn forget_calls(&self) {
        self.lock().calls.clear();
    }

    fn new_call(&self, remote: &str, state: SimCallState) -> SimCall {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        SimCall {
            csta: n,
            call_id: format!("{n}-{}@sim", self.config.mac),
            remote: remote.to_owned(),
            state,
        }
    }

    /// A call comes in from `remote`; returns its CSTA id.
    pub fn incoming(&self, remote: &str) -> u64 {
        let call = self.new_call(remote, SimCallState::Ringing);
        let id = call.csta;
        let mut st = self.lock();
        st.calls.push(call.clone());
        self.fire(&st, "action_incoming_url", Some(&call));
        id
    }

    /// The far end answers an outgoing call.
    pub fn remote_answer(&self, csta: u64) {
        let mut st = self.lock();
        if let Some(i) = st
            .calls
            .iter()
            .position(|c| c.csta == csta && c.state == SimCallState::Outgoing)
        {
            st.calls[i].state = SimCallState::Connected;
            let c = st.calls[i].clone();
            self.fire(&st, "action_connected_url", Some(&c));
        }
    }

    /// The far end hangs up (or a caller gives up).
    pub fn remote_hangup(&self, csta: u64) {
        let mut st = self.lock();
        if let Some(i) = st.calls.iter().position(|c| c.csta == csta) {
            let c = st.calls.remove(i);
            self.fire(&st, "action_disconnected_url", Some(&c));
            if c.state == SimCallState::Ringing {
                self.fire(&st, "action_missed_url", Some(&c));
            }
        }
    }

    /// Queues the Action URL `setting` for `call` (with the state as it is in `st`).
    pub(crate) fn fire(&self, st: &Inner, setting: &str, call: Option<&SimCall>) {
        let Some(template) = st.settings.get(setting).filter(|t| !t.is_empty()) else {
            return;
        };
        let mut vars: HashMap<String, String> = st.settings.clone();
        vars.retain(|k, _| !k.contains("pass"));
        vars.insert("phone_ip".into(), self.addr().ip().to_string());
        vars.insert("nr_ongoing_calls".into(), st.calls.len().to_string());
        vars.insert("active_user".into(), self.config.user.clone());
        if let Some(c) = call {
            vars.insert(
                "local".into(),
                format!("{}@{}", self.config.user, self.config.host),
            );
            vars.insert(
                "remote".into(),
                format!("sip:{}@{}", c.remote, self.config.host),
            );
            vars.insert("display_remote".into(), format!("Caller {}", c.remote));
            vars.insert("csta_id".into(), c.csta.to_string());
            vars.insert("call-id".into(), c.call_id.clone());
        }
        let _ = self.events.send(fire::substitute(template, &vars));
    }

    pub(crate) fn record_fired(&self, url: String, status: Option<u16>) {
        if status == Some(200) {
            self.fired_ok.fetch_add(1, Ordering::Relaxed);
        }
        let mut st = self.lock();
        if st.fired.len() >= 1000 {
            st.fired.remove(0);
        }
        st.fired.push(url);
    }

    /// Places a call from the phone (`number=`, or digits after off-hook).
    pub(crate) fn dial(self: &Arc<Self>, st: &mut Inner, number: &str) {
        for i in 0..st.calls.len() {
            if st.calls[i].state == SimCallState::Connected {
                st.calls[i].state = SimCallState::Held;
                let c = st.calls[i].clone();
                self.fire(st, "action_hold", Some(&c));
            }
        }
        st.dialtone = false;
        let call = self.new_call(number, SimCallState::Outgoing);
        st.calls.push(call.clone());
        self.fire(st, "action_outgoing_url", Some(&call));
        if let Some(after) = self.config.answer_after {
            let me = Arc::clone(self);
            let id = call.csta;
            self.handle.spawn(async move {
                tokio::time::sleep(after).await;
                me.remote_answer(id);
            });
        }
    }

    /// Presses one key.
    pub(crate) fn key(self: &Arc<Self>, st: &mut Inner, key: &str) {
        let active = st
            .calls
            .iter()
            .position(|c| c.state != SimCallState::Held && c.state != SimCallState::Ringing);
        let ringing = st
            .calls
            .iter()
            .position(|c| c.state == SimCallState::Ringing);
        let held: Vec<usize> = (0..st.calls.len())
            .filter(|i| st.calls[*i].state == SimCallState::Held)
            .collect();
        if let Some(digits) = st.redirect_digits.as_mut() {
            if key.len() == 1
                && key
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
            {
                digits.push_str(key);
                return;
            }
            if key == "ENTER" {
                let target = st.redirect_digits.take().unwrap_or_default();
                if let Some(r) = ringing {
                    let c = st.calls.remove(r);
                    st.redirected_to.push(target);
                    self.fire(st, "action_disconnected_url", Some(&c));
                }
                return;
            }
        }
        if let Some(digits) = st.transfer_digits.as_mut() {
            if key.len() == 1
                && key
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
            {
                digits.push_str(key);
                return;
            }
        }
        match key {
            "OFFHOOK" | "ENTER" | "SPEAKER" => {
                if let Some(target) = st.transfer_digits.take() {
                    if let Some(i) = active {
                        let c = st.calls.remove(i);
                        self.fire(st, "action_blind_transfer", Some(&c));
                        self.fire(st, "action_disconnected_url", Some(&c));
                        let _ = target;
                    }
                } else if let Some(r) = ringing {
                    if let Some(a) = active {
                        st.calls[a].state = SimCallState::Held;
                        let c = st.calls[a].clone();
                        self.fire(st, "action_hold", Some(&c));
                    }
                    st.calls[r].state = SimCallState::Connected;
                    let c = st.calls[r].clone();
                    self.fire(st, "action_connected_url", Some(&c));
                } else if st.calls.is_empty() && key == "OFFHOOK" {
                    st.dialtone = true;
                    self.fire(st, "action_offhook_url", None);
                }
            }
            "CANCEL" | "ONHOOK" | "DISCONNECT" => {
                st.transfer_digits = None;
                if let Some(i) = active {
                    let c = st.calls.remove(i);
                    self.fire(st, "action_disconnected_url", Some(&c));
                } else if let Some(r) = ringing {
                    let c = st.calls.remove(r);
                    // The quirk: a rejected call reports disconnected twice.
                    self.fire(st, "action_disconnected_url", Some(&c));
                    self.fire(st, "action_disconnected_url", Some(&c));
                } else if st.dialtone {
                    st.dialtone = false;
                }
                if st.calls.is_empty() {
                    self.fire(st, "action_onhook_url", None);
                }
            }
            "F_HOLD" | "F_R" => {
                if let Some(i) = active {
                    st.calls[i].state = SimCallState::Held;
                    let c = st.calls[i].clone();
                    self.fire(st, "action_hold", Some(&c));
                } else if held.len() == 1 {
                    st.calls[held[0]].state = SimCallState::Connected;
                    let c = st.calls[held[0]].clone();
                    self.fire(st, "action_unhold", Some(&c));
                }
            }
            "TRANSFER" => {
                if let (Some(a), [h]) = (active, held.as_slice()) {
                    let held_call = st.calls[*h].clone();
                    let consult = st.calls[a].clone();
                    self.fire(st, "action_attended_transfer", Some(&held_call));
                    st.calls
                        .retain(|c| c.csta != held_call.csta && c.csta != consult.csta);
                    self.fire(st, "action_disconnected_url", Some(&held_call));
                    self.fire(st, "action_disconnected_url", Some(&consult));
                } else if active.is_some() {
                    st.transfer_digits = Some(String::new());
                }
            }
            "F_REDIRECT" if ringing.is_some() => {
                st.redirect_digits = Some(String::new());
            }
            "DND" => {
                let on = st.settings.get("dnd_mode").map(String::as_str) != Some("on");
                st.settings
                    .insert("dnd_mode".into(), if on { "on" } else { "off" }.into());
                self.fire(
                    st,
                    if on {
                        "action_dnd_on_url"
                    } else {
                        "action_dnd_off_url"
                    },
                    None,
                );
            }
            _ => {}
        }
    }
}

async fn fire_loop(
    phone: std::sync::Weak<SimPhone>,
    mut rx: mpsc::UnboundedReceiver<String>,
    firing: Arc<tokio::sync::Semaphore>,
) {
    while let Some(url) = rx.recv().await {
        let Ok(_permit) = firing.acquire().await else {
            return;
        };
        let local = phone.upgrade().map(|p| p.addr().ip());
        let status = fire::get_from(&url, local, Duration::from_secs(5)).await;
        match phone.upgrade() {
            Some(p) => p.record_fired(url, status),
            None => return,
        }
    }
}
