//! A simulated phone's state: settings, identities, calls, Action URLs (and uaCSTA events)
//! fired, and the controls tests use to act as the far end, the user at the phone, or the
//! power switch.

use crate::fire::{self, Fire};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub use crate::config::{Outcome, SimConfig, SimSip};

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
    /// The identity (0 = identity 1) the call belongs to.
    pub identity: usize,
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
    pub locked_until: Option<Instant>,
    pub rebooting_until: Option<Instant>,
    pub nonces: Vec<String>,
    pub scripts: HashMap<String, Outcome>,
    /// `command.htm` answers this status and does nothing (a phone refusing remote control).
    pub refuse_commands: Option<u16>,
    pub next_id: u64,
    pub boots: u64,
}

/// One simulated phone.
pub struct SimPhone {
    pub(crate) config: SimConfig,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) addr: Mutex<SocketAddr>,
    pub(crate) busy: AtomicBool,
    pub(crate) serial: tokio::sync::Mutex<()>,
    violations: AtomicU64,
    events: mpsc::UnboundedSender<Fire>,
    pub(crate) server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(crate) handle: tokio::runtime::Handle,
    fired_ok: AtomicU64,
    /// The SIP side, when configured.
    pub(crate) sip: Mutex<Option<Arc<crate::sip::SipSide>>>,
    /// A CSTA monitor is running in the SIP session: call events go there too.
    pub(crate) monitoring: AtomicBool,
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
        for (i, user) in config.more_identities.iter().enumerate() {
            settings.insert(format!("user_name{}", i + 2), user.clone());
            settings.insert(format!("user_host{}", i + 2), config.host.clone());
            settings.insert(format!("user_active{}", i + 2), "on".into());
        }
        if let Some(sip) = &config.sip {
            let on = if sip.csta_control { "on" } else { "off" };
            settings.insert("csta_control".into(), on.into());
            let challenge = if sip.password.is_some() { "1" } else { "0" };
            settings.insert("csta_challenge".into(), challenge.into());
        }
        for (k, v) in &config.settings {
            settings.insert(k.clone(), v.clone());
        }
        let phone = Arc::new(SimPhone {
            inner: Mutex::new(Inner {
                settings,
                next_id: 1,
                ..Inner::default()
            }),
            addr: Mutex::new(config.bind),
            config,
            busy: AtomicBool::new(false),
            serial: tokio::sync::Mutex::new(()),
            violations: AtomicU64::new(0),
            events: tx,
            server: Mutex::new(None),
            handle: handle.clone(),
            fired_ok: AtomicU64::new(0),
            sip: Mutex::new(None),
            monitoring: AtomicBool::new(false),
        });
        handle.spawn(fire::fire_loop(Arc::downgrade(&phone), rx, firing));
        crate::server::listen(&phone).await?;
        if phone.config.sip.is_some() {
            let side = crate::sip::SipSide::start(&phone).await?;
            phone.set_setting("network_id_port", &side.addr.port().to_string());
            *phone.sip.lock().unwrap_or_else(PoisonError::into_inner) = Some(side);
        }
        Ok(phone)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The web server's address.
    pub fn addr(&self) -> SocketAddr {
        *self.addr.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The SIP side's address, when the phone has one.
    pub fn sip_addr(&self) -> Option<SocketAddr> {
        self.sip
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|s| s.addr)
    }

    /// Whether a uaCSTA session is open (and how many CSTA requests came over SIP).
    pub fn sip_session(&self) -> (bool, u64) {
        match self
            .sip
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            Some(s) => (s.has_session(), s.requests()),
            None => (false, 0),
        }
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

    /// CSTA call-control requests served (`HoldCall 2`, ids in request order), over HTTP and
    /// SIP.
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

    /// Where ringing calls were deflected to (`F_DEFLECT`, digits, `ENTER`; CSTA
    /// `DeflectCall`).
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

    /// Someone else typed three wrong passwords: the phone is locked out (until
    /// [`SimConfig::lockout`] has passed, or [`SimPhone::unlock`]).
    pub fn lock_out(&self) {
        let mut st = self.lock();
        st.wrong_passwords = 3;
        st.locked = true;
        st.locked_until = self.config.lockout.map(|d| Instant::now() + d);
    }

    /// Unlocks after a Digest lock-out (power cycle).
    pub fn unlock(&self) {
        let mut st = self.lock();
        st.locked = false;
        st.locked_until = None;
        st.wrong_passwords = 0;
    }

    /// Scripts what the far end does when `number` is dialled from this phone.
    pub fn script(&self, number: &str, outcome: Outcome) {
        self.lock().scripts.insert(number.to_owned(), outcome);
    }

    /// Makes `command.htm` answer `status` and do nothing (`None`: obey again), as a phone
    /// whose remote control is switched off or that cannot take the command.
    pub fn refuse_commands(&self, status: Option<u16>) {
        self.lock().refuse_commands = status;
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

    /// Restarts: every call is lost without a word, the CSTA numbering starts at 1 again, the
    /// uaCSTA session is forgotten, the web server answers 503 for `downtime`; then the phone
    /// reports `setup` and `log_on`.
    pub fn reboot(self: &Arc<Self>, downtime: Duration) {
        {
            let mut st = self.lock();
            st.calls.clear();
            st.next_id = 1;
            st.dialtone = false;
            st.transfer_digits = None;
            st.redirect_digits = None;
            st.boots += 1;
            st.rebooting_until = Some(Instant::now() + downtime);
        }
        self.monitoring.store(false, Ordering::Release);
        if let Some(sip) = self
            .sip
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            sip.forget_session();
        }
        let me = Arc::clone(self);
        self.handle.spawn(async move {
            tokio::time::sleep(downtime).await;
            let mut st = me.lock();
            st.rebooting_until = None;
            me.fire(&st, "action_setup_url", None);
            me.fire(&st, "action_log_on_url", None);
            drop(st);
        });
    }

    /// Loses every call without telling anyone (what a snapshot must notice).
    pub fn forget_calls(&self) {
        self.lock().calls.clear();
    }

    pub(crate) fn new_call(
        &self,
        st: &mut Inner,
        remote: &str,
        state: SimCallState,
        identity: usize,
    ) -> SimCall {
        let n = st.next_id;
        st.next_id += 1;
        SimCall {
            csta: n,
            call_id: format!("{n}-{}-{}@sim", st.boots, self.config.mac),
            remote: remote.to_owned(),
            state,
            identity,
        }
    }

    /// The user name of identity `i` (0 = identity 1).
    pub(crate) fn identity_user(&self, i: usize) -> &str {
        match i {
            0 => &self.config.user,
            n => self
                .config
                .more_identities
                .get(n - 1)
                .map_or(self.config.user.as_str(), String::as_str),
        }
    }

    /// A call comes in from `remote` to identity 1; returns its CSTA id.
    pub fn incoming(&self, remote: &str) -> u64 {
        self.incoming_to(remote, 0)
    }

    /// A call comes in from `remote` to identity `identity` (0 = identity 1).
    pub fn incoming_to(&self, remote: &str, identity: usize) -> u64 {
        let mut st = self.lock();
        let call = self.new_call(&mut st, remote, SimCallState::Ringing, identity);
        let id = call.csta;
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
            self.fire_cleared(&st, &c, "normalClearing");
            if c.state == SimCallState::Ringing {
                self.fire(&st, "action_missed_url", Some(&c));
            }
        }
    }

    /// An outgoing call fails at the far end (`cause` as uaCSTA reports it): the phone
    /// reports the failure and clears the call.
    pub(crate) fn remote_fail(&self, csta: u64, cause: &str) {
        let mut st = self.lock();
        if let Some(i) = st
            .calls
            .iter()
            .position(|c| c.csta == csta && c.state == SimCallState::Outgoing)
        {
            let c = st.calls.remove(i);
            self.fire_csta(crate::csta::failed_event(&c, cause));
            self.fire_cleared(&st, &c, cause);
        }
    }

    /// Reports a call's end: the uaCSTA `ConnectionClearedEvent` (with `cause`), then the
    /// `disconnected` Action URL.
    pub(crate) fn fire_cleared(&self, st: &Inner, call: &SimCall, cause: &str) {
        self.fire_csta(crate::csta::cleared_event(call, cause));
        self.fire_url(st, "action_disconnected_url", Some(call));
    }

    /// Queues a CSTA event for the SIP session, when a monitor runs.
    pub(crate) fn fire_csta(&self, xml: String) {
        if self.monitoring.load(Ordering::Acquire) {
            let _ = self.events.send(Fire::Csta(xml));
        }
    }

    /// Reports `setting`'s event for `call`: the uaCSTA event it stands for (when a monitor
    /// runs), then the Action URL.
    pub(crate) fn fire(&self, st: &Inner, setting: &str, call: Option<&SimCall>) {
        if let Some(c) = call {
            if let Some(xml) = crate::csta::event_for(self, setting, c) {
                self.fire_csta(xml);
            }
        }
        self.fire_url(st, setting, call);
    }

    /// Queues the Action URL `setting` for `call` (with the state as it is in `st`).
    pub(crate) fn fire_url(&self, st: &Inner, setting: &str, call: Option<&SimCall>) {
        let Some(template) = st.settings.get(setting).filter(|t| !t.is_empty()) else {
            return;
        };
        let mut vars: HashMap<String, String> = st.settings.clone();
        vars.retain(|k, _| !k.contains("pass"));
        vars.insert("phone_ip".into(), self.addr().ip().to_string());
        vars.insert("nr_ongoing_calls".into(), st.calls.len().to_string());
        vars.insert("active_user".into(), self.config.user.clone());
        if let Some(c) = call {
            let user = self.identity_user(c.identity).to_owned();
            vars.insert("local".into(), format!("{user}@{}", self.config.host));
            vars.insert("active_user".into(), user);
            vars.insert(
                "remote".into(),
                format!("sip:{}@{}", c.remote, self.config.host),
            );
            vars.insert("display_remote".into(), format!("Caller {}", c.remote));
            vars.insert("csta_id".into(), c.csta.to_string());
            vars.insert("call-id".into(), c.call_id.clone());
        }
        let _ = self
            .events
            .send(Fire::Url(fire::substitute(template, &vars)));
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
}
