//! The driver object: owns a small tokio runtime, the phones, the connection limit and the
//! periodic work; turns requests into phone jobs and Action URL callbacks into events.

use crate::action::{self, Callback, Sender};
use crate::calls::LineNews;
use crate::command::{self, Effect};
use crate::config::{address_key, phone_key, AuthScheme, Scheme, SnomConfig};
use crate::http::{self, HttpError, Response, Target};
use crate::phone::{Credentials, Job, Phone, PhoneState};
use crate::secret::{constant_time_eq, Secret};
use crate::settings::{self, Check, Settings};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tapir_core::{
    CallId, Completion, Configuration, Connection, DeviceAction, DeviceActionOutcome, DeviceStatus,
    DriverError, DriverEvent, ErrorKind, HttpCallback, HttpReply, LineKey, PhoneDriver,
    RequestEnvelope, SharedSink,
};
use tokio::sync::Semaphore;

/// Settings written per request (snom's web server dislikes very long URLs).
const SETTINGS_PER_WRITE: usize = 4;
/// Sources remembered for "log once per source".
const LOG_SOURCES: usize = 4096;

/// A running snom driver instance.
pub struct SnomDriver {
    shared: Arc<Shared>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

struct Shared {
    config: SnomConfig,
    sink: SharedSink,
    base: Option<String>,
    key: Vec<u8>,
    phones: RwLock<HashMap<String, Arc<Phone>>>,
    by_mac: RwLock<HashMap<String, String>>,
    permits: Semaphore,
    handle: tokio::runtime::Handle,
    stopped: AtomicBool,
    stop: tokio::sync::watch::Sender<bool>,
    logged: Mutex<LogOnce>,
}

/// Logs a refused callback once per source and reason; counts the rest.
#[derive(Default)]
struct LogOnce {
    seen: HashSet<(IpAddr, &'static str)>,
    suppressed: u64,
}

/// What to log for one refusal.
#[derive(Debug, PartialEq, Eq)]
enum LogVerdict {
    /// First time for this source and reason.
    Log,
    /// Seen before: only counted.
    Quiet,
    /// Too many sources to remember: a summary now and then.
    Summary(u64),
}

impl LogOnce {
    fn note(&mut self, ip: IpAddr, reason: &'static str) -> LogVerdict {
        if self.seen.contains(&(ip, reason)) {
            self.suppressed += 1;
            LogVerdict::Quiet
        } else if self.seen.len() < LOG_SOURCES {
            self.seen.insert((ip, reason));
            LogVerdict::Log
        } else {
            self.suppressed += 1;
            if self.suppressed % 10_000 == 1 {
                LogVerdict::Summary(self.suppressed)
            } else {
                LogVerdict::Quiet
            }
        }
    }
}

/// Why a fetch failed.
#[derive(Debug)]
enum FetchError {
    Unreachable(String),
    Login(String),
}

impl SnomDriver {
    /// Starts the driver: its runtime, the configured phones (announced as lines before this
    /// returns, then contacted in the background), discovery and the periodic checks.
    ///
    /// # Errors
    /// `Uninitialized` if the runtime cannot start.
    pub fn start(config: SnomConfig, sink: SharedSink) -> Result<Self, DriverError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tapir-snom")
            .enable_all()
            .build()
            .map_err(|e| {
                DriverError::new(
                    ErrorKind::Uninitialized,
                    format!("cannot start the runtime: {e}"),
                )
            })?;
        let key = match &config.callback_key {
            Some(k) => k.expose().as_bytes().to_vec(),
            None => random_key(),
        };
        let base = config
            .public_url
            .clone()
            .or_else(|| sink.callback_url())
            .map(|b| b.trim_end_matches('/').to_owned());
        let (stop, _) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            permits: Semaphore::new(config.max_connections),
            config,
            sink,
            base,
            key,
            phones: RwLock::new(HashMap::new()),
            by_mac: RwLock::new(HashMap::new()),
            handle: runtime.handle().clone(),
            stopped: AtomicBool::new(false),
            stop,
            logged: Mutex::new(LogOnce::default()),
        });
        for phone in shared.config.phones.clone() {
            let scheme = phone.scheme.unwrap_or(shared.config.default_scheme);
            let target = Target::parse(&phone.address, scheme)
                .map_err(|e| DriverError::new(ErrorKind::InvalidParameter, e.to_string()))?;
            let key = phone_key(&phone);
            let configured = phone.login.clone().map(|login| Credentials {
                login,
                password: phone.password.clone().unwrap_or_default(),
            });
            let mac = phone.mac.as_deref().and_then(action::normalize_mac);
            shared.add_phone(
                key,
                target,
                configured,
                phone.auth,
                mac,
                phone.name.clone(),
                false,
            );
        }
        if shared.base.is_none() {
            tracing::warn!("No callback URL: enable [phones] in the host (or set public_url); phones cannot report call states.");
        }
        runtime.spawn(periodic(Arc::clone(&shared)));
        if !shared.config.discovery.is_empty() {
            runtime.spawn(discover(Arc::clone(&shared)));
        }
        tracing::info!(phones = shared.config.phones.len(), "snom driver started.");
        Ok(Self {
            shared,
            runtime: Mutex::new(Some(runtime)),
        })
    }

    /// Asks every phone for a status refresh (`write`: also write the configuration).
    pub fn refresh_all(&self, write: bool) {
        let phones: Vec<_> = self.shared.read_phones().values().cloned().collect();
        for phone in phones {
            self.shared.enqueue(&phone, Job::Refresh { write });
        }
    }

    /// Refreshes one phone (the phone table's "status update"/"write configuration").
    ///
    /// # Errors
    /// `BadDeviceId` for an unknown phone.
    pub fn refresh(&self, key: &str, write: bool) -> Result<(), DriverError> {
        let phone = self.shared.phone(key)?;
        self.shared.enqueue(&phone, Job::Refresh { write });
        Ok(())
    }

    /// Removes a phone and its line.
    ///
    /// # Errors
    /// `BadDeviceId` for an unknown phone.
    pub fn remove(&self, key: &str) -> Result<(), DriverError> {
        let phone = self
            .shared
            .phones
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key)
            .ok_or_else(|| DriverError::new(ErrorKind::BadDeviceId, format!("no phone {key}")))?;
        let leftover: Vec<Job> = {
            let mut st = phone.lock();
            st.removed = true;
            st.queue.drain(..).collect()
        };
        for job in leftover {
            if let Job::Request(env) = job {
                self.shared.sink.complete(
                    env.id,
                    Err(DriverError::new(
                        ErrorKind::BadDeviceId,
                        "the phone was removed",
                    )),
                );
            }
        }
        if let Some(mac) = phone.expected_mac() {
            self.shared
                .by_mac
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&mac);
        }
        self.shared.sink.event(DriverEvent::LineRemoved {
            line: phone.key.clone(),
        });
        Ok(())
    }

    /// Sets the login of a phone (the phone table's "allocate password").
    ///
    /// # Errors
    /// `BadDeviceId` for an unknown phone.
    pub fn set_login(&self, key: &str, login: &str, password: Secret) -> Result<(), DriverError> {
        let phone = self.shared.phone(key)?;
        {
            let mut st = phone.lock();
            st.login = Some(Credentials {
                login: login.to_owned(),
                password,
            });
            st.digest_failures = 0;
        }
        self.shared.enqueue(&phone, Job::Refresh { write: false });
        Ok(())
    }

    /// Reads a phone's full settings dump for support ("save configuration locally").
    /// Passwords are not in snom's dump.
    ///
    /// # Errors
    /// `BadDeviceId`, `Disconnected` or `OperationFailed`.
    pub fn settings_dump(&self, key: &str) -> Result<String, DriverError> {
        let phone = self.shared.phone(key)?;
        let shared = Arc::clone(&self.shared);
        let path = shared.config.settings_path.clone();
        let result = self
            .shared
            .handle
            .block_on(async move { shared.fetch(&phone, "GET", &path, None).await });
        match result {
            Ok(r) if r.status == 200 => Ok(r.body),
            Ok(r) => Err(DriverError::failed(format!(
                "the phone answered {}",
                r.status
            ))),
            Err(FetchError::Unreachable(e)) => Err(DriverError::new(ErrorKind::Disconnected, e)),
            Err(FetchError::Login(e)) => Err(DriverError::failed(e)),
        }
    }

    /// Adds a phone at run time (the phone table's "add telephone"); returns its line key.
    ///
    /// # Errors
    /// `InvalidParameter` for a bad address or MAC, `ResourceUnavailable` when the phone is
    /// already served.
    pub fn add(
        &self,
        address: &str,
        mac: Option<&str>,
        login: Option<(String, Secret)>,
    ) -> Result<String, DriverError> {
        let bad = |m: String| DriverError::new(ErrorKind::InvalidParameter, m);
        let target = Target::parse(address, self.shared.config.default_scheme)
            .map_err(|e| bad(e.to_string()))?;
        let mac = match mac {
            Some(m) => Some(
                action::normalize_mac(m)
                    .ok_or_else(|| bad(format!("{m:?} is not a MAC address")))?,
            ),
            None => None,
        };
        let key = mac.clone().unwrap_or_else(|| address_key(address));
        let configured = login.map(|(login, password)| Credentials { login, password });
        self.shared
            .add_phone(key.clone(), target, configured, None, mac, None, false)
            .map(|_| key)
            .ok_or_else(|| {
                DriverError::new(
                    ErrorKind::ResourceUnavailable,
                    "the phone is already served",
                )
            })
    }

    /// The number of phones.
    pub fn phone_count(&self) -> usize {
        self.shared.read_phones().len()
    }
}

fn random_key() -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    let mut out = Vec::with_capacity(32);
    for i in 0..4u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        out.extend_from_slice(&h.finish().to_le_bytes());
    }
    out
}

impl Shared {
    fn read_phones(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Phone>>> {
        self.phones.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn phone(&self, key: &str) -> Result<Arc<Phone>, DriverError> {
        self.read_phones()
            .get(key)
            .cloned()
            .ok_or_else(|| DriverError::new(ErrorKind::BadDeviceId, format!("no snom phone {key}")))
    }

    fn secret_for(&self, key: &str) -> String {
        action::derive_secret(&self.key, key)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_phone(
        self: &Arc<Self>,
        key: String,
        target: Target,
        configured: Option<Credentials>,
        auth: Option<AuthScheme>,
        mac: Option<String>,
        name: Option<String>,
        mass: bool,
    ) -> Option<Arc<Phone>> {
        let phone = Arc::new(Phone {
            key: LineKey::new(key.clone()),
            secret: self.secret_for(&key),
            name: name.unwrap_or_else(|| format!("snom {key}")),
            target,
            configured,
            auth,
            mac: mac.clone(),
            mass,
            state: Mutex::new(PhoneState {
                in_service: true,
                facts: crate::command::PhoneFacts {
                    redirect_key: self.config.redirect_key.clone(),
                    ..Default::default()
                },
                ..PhoneState::default()
            }),
        });
        {
            let mut phones = self.phones.write().unwrap_or_else(PoisonError::into_inner);
            if phones.contains_key(&key) {
                return None;
            }
            phones.insert(key.clone(), Arc::clone(&phone));
        }
        if let Some(mac) = mac {
            self.by_mac
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(mac, key);
        }
        let info = {
            let mut st = phone.lock();
            let info = phone.line_info(&st);
            st.announced = Some(info.clone());
            info
        };
        self.sink.event(DriverEvent::LineCreated { info });
        self.enqueue(&phone, Job::Refresh { write: false });
        Some(phone)
    }

    fn enqueue(self: &Arc<Self>, phone: &Arc<Phone>, job: Job) -> bool {
        if self.stopped.load(Ordering::Acquire) {
            return false;
        }
        match phone.enqueue(job, self.config.queue_per_phone) {
            Ok(true) => {
                let shared = Arc::clone(self);
                let phone = Arc::clone(phone);
                self.handle.spawn(async move { shared.drain(phone).await });
                true
            }
            Ok(false) => true,
            Err(_) => false,
        }
    }

    async fn drain(self: Arc<Self>, phone: Arc<Phone>) {
        while let Some(job) = phone.next_job() {
            if self.stopped.load(Ordering::Acquire) {
                if let Job::Request(env) = job {
                    self.sink.complete(
                        env.id,
                        Err(DriverError::new(
                            ErrorKind::Uninitialized,
                            "the driver stopped",
                        )),
                    );
                }
                continue;
            }
            match job {
                Job::Request(env) => self.run_request(&phone, env).await,
                Job::Refresh { write } => self.run_refresh(&phone, write).await,
                Job::Snapshot => self.run_snapshot(&phone).await,
            }
        }
    }

    fn emit(&self, events: Vec<DriverEvent>) {
        for e in events {
            self.sink.event(e);
        }
    }

    fn candidates(&self, phone: &Phone, st: &PhoneState) -> Vec<Credentials> {
        if let Some(admin) = &self.config.admin_password {
            return vec![Credentials {
                login: "admin".into(),
                password: admin.clone(),
            }];
        }
        let mut out: Vec<Credentials> = st.login.iter().cloned().collect();
        match &phone.configured {
            Some(c) => out.push(c.clone()),
            None => out.extend(self.config.passwords.iter().map(|l| Credentials {
                login: l.login.clone(),
                password: l.password.clone(),
            })),
        }
        out.dedup();
        out
    }

    /// One authorised request: Basic is sent up front once known; Digest answers a fresh
    /// challenge each time (a stale nonce must never count as a wrong password). The password
    /// list is walked only with Basic; with Digest at most two wrong attempts are ever made.
    async fn fetch(
        &self,
        phone: &Phone,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<Response, FetchError> {
        let timeout = self.config.request_timeout();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| FetchError::Unreachable("the driver stopped".into()))?;
        let (known, scheme, candidates) = {
            let st = phone.lock();
            (
                st.login.clone(),
                st.scheme.or(phone.auth),
                self.candidates(phone, &st),
            )
        };
        let first_auth = match (scheme, &known) {
            (Some(AuthScheme::Basic), Some(c)) => Some(http_auth::basic::encode_credentials(
                &c.login,
                c.password.expose(),
            )),
            _ => None,
        };
        let send = |auth: Option<String>| async move {
            http::send(&phone.target, method, path, auth.as_deref(), body, timeout)
                .await
                .map_err(|e| match e {
                    HttpError::Connect(m) | HttpError::Exchange(m) | HttpError::Address(m) => {
                        FetchError::Unreachable(m)
                    }
                })
        };
        let mut response = send(first_auth.clone()).await?;
        if response.status != 401 {
            return Ok(response);
        }
        let mut tried_known_basic = first_auth.is_some();
        for cred in candidates {
            let Some(challenge) = response.header("www-authenticate").map(str::to_owned) else {
                return Err(FetchError::Login(
                    "the phone refused the login without a challenge".into(),
                ));
            };
            let digest = challenge
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("digest");
            if digest {
                let failures = phone.lock().digest_failures;
                if failures >= 2 {
                    return Err(FetchError::Login("two Digest logins failed; no more are tried so the phone does not lock (set the login)".into()));
                }
            }
            if !digest && tried_known_basic && known.as_ref() == Some(&cred) {
                tried_known_basic = false;
                continue;
            }
            let auth = if digest {
                let mut client = http_auth::PasswordClient::try_from(challenge.as_str())
                    .map_err(|e| FetchError::Login(format!("bad challenge: {e}")))?;
                client
                    .respond(&http_auth::PasswordParams {
                        username: &cred.login,
                        password: cred.password.expose(),
                        uri: path,
                        method,
                        body: None,
                    })
                    .map_err(|e| FetchError::Login(format!("cannot answer the challenge: {e}")))?
            } else {
                http_auth::basic::encode_credentials(&cred.login, cred.password.expose())
            };
            response = send(Some(auth)).await?;
            let mut st = phone.lock();
            if response.status == 401 {
                if digest {
                    st.digest_failures = st.digest_failures.saturating_add(1);
                }
                if st.login.as_ref() == Some(&cred) {
                    st.login = None;
                }
                continue;
            }
            st.scheme = Some(if digest {
                AuthScheme::Digest
            } else {
                AuthScheme::Basic
            });
            if digest {
                st.digest_failures = 0;
            }
            st.login = Some(cred);
            return Ok(response);
        }
        Err(FetchError::Login(
            "no login of the password list was accepted".into(),
        ))
    }

    fn set_reachable(&self, phone: &Phone, ok: bool, detail: Option<String>) {
        let event = {
            let mut st = phone.lock();
            if ok {
                if st.connection != Connection::Connected {
                    st.connection = Connection::Connected;
                }
            } else {
                st.connection = Connection::Unreachable;
                st.detail = detail.clone();
            }
            if st.in_service == ok {
                None
            } else {
                st.in_service = ok;
                Some(if ok {
                    DriverEvent::LineInService {
                        line: phone.key.clone(),
                    }
                } else {
                    DriverEvent::LineOutOfService {
                        line: phone.key.clone(),
                        reason: detail.unwrap_or_else(|| "the phone cannot be reached".into()),
                    }
                })
            }
        };
        if let Some(e) = event {
            self.sink.event(e);
        }
    }

    async fn run_request(self: &Arc<Self>, phone: &Arc<Phone>, env: RequestEnvelope) {
        let line = phone.key.clone();
        let planned = {
            let mut st = phone.lock();
            let plan = command::plan(&env.request, &st.tracker, &st.facts);
            match plan {
                Ok(plan) => {
                    let events = match plan.effect {
                        Effect::MakeCall { call, dialtone } => {
                            st.tracker.start_make(&line, call, dialtone)
                        }
                        Effect::Dialing { call } => st.tracker.dialing(&line, call),
                        Effect::Drop { call } => {
                            st.tracker.mark_dropping(call);
                            Vec::new()
                        }
                        Effect::SetupTransfer { held, .. } => {
                            st.tracker.start_transfer(held);
                            Vec::new()
                        }
                        _ => Vec::new(),
                    };
                    Ok((plan, events))
                }
                Err(e) => Err(e),
            }
        };
        let (plan, events) = match planned {
            Ok(p) => p,
            Err(e) => {
                self.sink.complete(env.id, Err(e));
                return;
            }
        };
        self.emit(events);
        for step in &plan.steps {
            let outcome = match self.fetch(phone, "GET", step, None).await {
                Ok(r) if (200..300).contains(&r.status) => Ok(()),
                Ok(r) => Err(DriverError::failed(format!(
                    "the phone answered {} to the command",
                    r.status
                ))),
                Err(FetchError::Unreachable(m)) => {
                    self.set_reachable(phone, false, Some(m.clone()));
                    Err(DriverError::new(ErrorKind::Disconnected, m))
                }
                Err(FetchError::Login(m)) => Err(DriverError::failed(m)),
            };
            if let Err(e) = outcome {
                if let Effect::MakeCall { call, .. } | Effect::Dialing { call } = plan.effect {
                    phone.lock().tracker.abort_make(call);
                }
                self.sink.complete(env.id, Err(e));
                return;
            }
        }
        if let Some((name, body)) = &plan.csta {
            if let Err(e) = self.send_csta(phone, name, body).await {
                self.sink.complete(env.id, Err(e));
                return;
            }
        }
        let completion = match plan.effect {
            Effect::DropLocal { call } => {
                let ev = phone.lock().tracker.end(&line, call, None);
                self.emit(ev);
                Ok(Completion::Done)
            }
            Effect::SetupTransfer { held, consult } => {
                let ev = {
                    let mut st = phone.lock();
                    st.tracker.link_transfer(held, consult);
                    st.tracker.start_make(&line, consult, true)
                };
                self.emit(ev);
                Ok(Completion::Done)
            }
            Effect::Address(status) => {
                let ev = phone.lock().tracker.set_address(&line, status);
                self.emit(ev);
                Ok(Completion::Done)
            }
            Effect::Query => {
                let path = self.config.settings_path.clone();
                match self.fetch(phone, "GET", &path, None).await {
                    Ok(r) if r.status == 200 => {
                        let status = command::address_from_settings(&Settings::parse(&r.body));
                        let ev = phone.lock().tracker.set_address(&line, status.clone());
                        self.emit(ev);
                        Ok(Completion::AddressStatus(status))
                    }
                    Ok(r) => Err(DriverError::failed(format!(
                        "the phone answered {} to the settings read",
                        r.status
                    ))),
                    Err(FetchError::Unreachable(m)) => {
                        Err(DriverError::new(ErrorKind::Disconnected, m))
                    }
                    Err(FetchError::Login(m)) => Err(DriverError::failed(m)),
                }
            }
            _ => Ok(Completion::Done),
        };
        self.set_reachable(phone, true, None);
        self.sink.complete(env.id, completion);
    }

    fn wanted(&self, phone: &Phone) -> Option<(settings::Wanted, settings::Wanted)> {
        let base = self.base.as_deref()?;
        let wanted = settings::required(base, phone.key.as_str(), &phone.secret);
        let also = match (&self.config.mass_config_secret, phone.mass) {
            (Some(s), _) => settings::required_mass(base, s.expose()),
            _ => Vec::new(),
        };
        Some((wanted, also))
    }

    async fn run_refresh(self: &Arc<Self>, phone: &Arc<Phone>, write: bool) {
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
        let read = self.fetch(phone, "GET", &path, None).await;
        let response = match read {
            Err(FetchError::Unreachable(m)) => {
                self.set_reachable(phone, false, Some(format!("cannot reach the phone: {m}")));
                return;
            }
            Err(FetchError::Login(m)) => {
                let event = {
                    let mut st = phone.lock();
                    st.connection = Connection::NeedsRegistration;
                    st.configuration = Configuration::Problem;
                    st.detail = Some(m.clone());
                    st.in_service.then(|| {
                        st.in_service = false;
                        DriverEvent::LineOutOfService {
                            line: phone.key.clone(),
                            reason: format!("the phone refuses the login: {m}"),
                        }
                    })
                };
                if let Some(e) = event {
                    self.sink.event(e);
                }
                return;
            }
            Ok(r) => r,
        };
        let came_back = !phone.lock().in_service;
        self.set_reachable(phone, true, None);
        if response.status != 200 {
            {
                let mut st = phone.lock();
                st.configuration = Configuration::Unknown;
                st.detail = Some(format!(
                    "the settings page {path} answered {}",
                    response.status
                ));
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
            return;
        }
        let mut current = Settings::parse(&response.body);
        self.learn(phone, &current);
        if let Some(configured) = &phone.mac {
            if let Some(real) = phone.lock().mac.clone() {
                if &real != configured {
                    let mut st = phone.lock();
                    st.configuration = Configuration::Problem;
                    st.detail = Some(format!(
                        "the phone at this address has MAC {real}, not {configured}"
                    ));
                    return;
                }
            }
        }
        let Some((wanted, also)) = self.wanted(phone) else {
            let mut st = phone.lock();
            st.configuration = Configuration::Problem;
            st.detail = Some("no callback URL: enable the host's [phones] endpoint".into());
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
            let mut ev = st.tracker.set_address(&phone.key, address);
            let info = phone.line_info(&st);
            if st.announced.as_ref() != Some(&info) {
                st.announced = Some(info.clone());
                ev.insert(0, DriverEvent::LineCreated { info });
            }
            ev
        };
        self.emit(events);
        if came_back && !phone.lock().tracker.calls().is_empty() {
            self.enqueue(phone, Job::Snapshot);
        }
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
        st.facts.csta_device = st
            .identity
            .clone()
            .filter(|_| self.config.csta_path.is_some() && !st.csta_control_unsupported);
        st.facts.identities = identities;
        let field = format!("{}1", self.config.number_field.setting());
        st.number = s.get(&field).filter(|v| !v.is_empty()).map(str::to_owned);
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

    async fn run_snapshot(self: &Arc<Self>, phone: &Arc<Phone>) {
        let Some(path) = self.config.csta_path.clone() else {
            return;
        };
        let (device, unsupported, empty) = {
            let st = phone.lock();
            (
                st.identity.clone().unwrap_or_default(),
                st.snapshot_unsupported,
                st.tracker.calls().is_empty(),
            )
        };
        if unsupported || empty {
            return;
        }
        let body = crate::csta::snapshot_device(&device);
        let present = match self.fetch(phone, "POST", &path, Some(&body)).await {
            Ok(r) if r.status == 200 => match crate::csta::parse_snapshot(&r.body) {
                Some(ids) => ids,
                None => {
                    self.mark_snapshot_unsupported(
                        phone,
                        "the CSTA answer is not a SnapshotDeviceResponse",
                    );
                    return;
                }
            },
            Ok(r) => {
                self.mark_snapshot_unsupported(
                    phone,
                    &format!("the CSTA page answered {}", r.status),
                );
                return;
            }
            Err(_) => return,
        };
        let ev = phone.lock().tracker.retain_snapshot(&phone.key, &present);
        if !ev.is_empty() {
            tracing::info!(phone = %phone.key, "Snapshot cleared calls the phone no longer has.");
        }
        self.emit(ev);
    }

    /// POSTs one CSTA call-control service to `csta_path` and reads its acknowledgement. An
    /// answer that is not CSTA stops the use of CSTA call control on this phone.
    async fn send_csta(
        self: &Arc<Self>,
        phone: &Arc<Phone>,
        name: &'static str,
        body: &str,
    ) -> Result<(), DriverError> {
        let Some(path) = self.config.csta_path.clone() else {
            return Err(DriverError::unavailable("no csta_path configured"));
        };
        let answer = match self.fetch(phone, "POST", &path, Some(body)).await {
            Ok(r) => r,
            Err(FetchError::Unreachable(m)) => {
                self.set_reachable(phone, false, Some(m.clone()));
                return Err(DriverError::new(ErrorKind::Disconnected, m));
            }
            Err(FetchError::Login(m)) => return Err(DriverError::failed(m)),
        };
        let ack = if answer.status == 200 {
            crate::csta::parse_ack(name, &answer.body)
        } else {
            crate::csta::Ack::Unreadable
        };
        match ack {
            crate::csta::Ack::Positive => Ok(()),
            crate::csta::Ack::Negative(error) => Err(DriverError::failed(format!(
                "the phone refused CSTA {name}: {error}"
            ))),
            crate::csta::Ack::Unreadable => {
                tracing::info!(phone = %phone.key, service = name, status = answer.status, "The phone has no CSTA call control at csta_path; per-call operations fall back to keys.");
                let mut st = phone.lock();
                st.csta_control_unsupported = true;
                st.facts.csta_device = None;
                Err(DriverError::failed(format!(
                    "the phone gave no CSTA answer to {name} (HTTP {}); CSTA call control is off for it now",
                    answer.status
                )))
            }
        }
    }

    fn mark_snapshot_unsupported(&self, phone: &Phone, why: &str) {
        tracing::info!(phone = %phone.key, why, "CSTA snapshot not available on this phone; calls are not checked.");
        phone.lock().snapshot_unsupported = true;
    }

    fn refuse(&self, source: Option<IpAddr>, status: u16, reason: &'static str) -> HttpReply {
        let ip = source.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let verdict = self
            .logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(ip, reason);
        match verdict {
            LogVerdict::Log => {
                tracing::warn!(source = %ip, status, reason, "Refused a phone callback (logged once per source).");
            }
            LogVerdict::Summary(n) => {
                tracing::warn!(
                    suppressed = n,
                    "Many refused phone callbacks from many sources."
                );
            }
            LogVerdict::Quiet => {}
        }
        HttpReply::text(
            status,
            if status == 403 {
                "forbidden\n"
            } else {
                "bad request\n"
            },
        )
    }

    fn callback(self: &Arc<Self>, request: &HttpCallback) -> HttpReply {
        let source = request.peer.parse::<SocketAddr>().ok().map(|a| a.ip());
        if request.method != "GET" && request.method != "POST" {
            return self.refuse(source, 400, "method");
        }
        let cb: Callback = match action::parse(&request.path, &request.query) {
            Ok(cb) => cb,
            Err(_) => return self.refuse(source, 400, "malformed"),
        };
        let phone = match &cb.sender {
            Sender::Phone { phone, secret } => {
                let Some(p) = self.read_phones().get(phone).cloned() else {
                    return self.refuse(source, 403, "unknown phone");
                };
                if !constant_time_eq(p.secret.as_bytes(), secret.as_bytes()) {
                    return self.refuse(source, 403, "wrong secret");
                }
                p
            }
            Sender::Mass { secret } => {
                let ok = self
                    .config
                    .mass_config_secret
                    .as_ref()
                    .is_some_and(|s| s.matches(secret));
                if !ok {
                    return self.refuse(source, 403, "wrong mass-configuration secret");
                }
                let Some(mac) = cb.vars.mac() else {
                    return self.refuse(source, 403, "mass-configuration callback without MAC");
                };
                let known = self
                    .by_mac
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&mac)
                    .cloned();
                match known.and_then(|k| self.read_phones().get(&k).cloned()) {
                    Some(p) => p,
                    None if self.config.accept_unknown_phones => match source {
                        Some(ip) => {
                            let host = match ip {
                                IpAddr::V6(v6) => format!("[{v6}]"),
                                IpAddr::V4(v4) => v4.to_string(),
                            };
                            // `$http_port` tells where the phone's web server listens.
                            let address =
                                match cb.vars.get("port").and_then(|p| p.parse::<u16>().ok()) {
                                    Some(port) => format!("{host}:{port}"),
                                    None => host,
                                };
                            let Ok(target) = Target::parse(&address, self.config.default_scheme)
                            else {
                                return self.refuse(source, 400, "bad source");
                            };
                            tracing::info!(mac = %mac, ip = %ip, "Unknown phone put into operation (mass configuration).");
                            match self.add_phone(
                                mac.clone(),
                                target,
                                None,
                                None,
                                Some(mac.clone()),
                                None,
                                true,
                            ) {
                                Some(p) => p,
                                None => match self.read_phones().get(&mac).cloned() {
                                    Some(p) => p,
                                    None => return self.refuse(source, 403, "phone vanished"),
                                },
                            }
                        }
                        None => return self.refuse(source, 400, "bad source"),
                    },
                    None => {
                        return self.refuse(
                            source,
                            403,
                            "unknown phone (accept_unknown_phones is off)",
                        )
                    }
                }
            }
        };
        if !self.config.allow_external_phones {
            if let (Some(expected), Some(actual)) = (phone.expected_ip(), source) {
                // A phone on a loopback address is on this host: any loopback source will do
                // (the kernel picks 127.0.0.1 for loopback clients); the secret still counts.
                let same_host = expected.is_loopback() && actual.is_loopback();
                if expected != actual && !expected.is_unspecified() && !same_host {
                    return self.refuse(source, 403, "source IP is not the phone's");
                }
            }
        }
        if let (Some(expected), Some(claimed)) = (phone.expected_mac(), cb.vars.mac()) {
            if expected != claimed {
                return self.refuse(source, 403, "MAC is not the phone's");
            }
        }
        let sink = Arc::clone(&self.sink);
        let mut ids = move || -> CallId { sink.new_call_id() };
        let (events, news) = {
            let mut st = phone.lock();
            if let (None, Some(mac)) = (st.mac.as_ref(), cb.vars.mac()) {
                st.mac = Some(mac);
            }
            st.tracker.apply(&phone.key, &mut ids, cb.event, &cb.vars)
        };
        self.emit(events);
        match news {
            LineNews::None => {}
            LineNews::Rebooted => {
                phone.lock().written_blind = false;
                self.enqueue(&phone, Job::Refresh { write: false });
            }
            LineNews::Registered => {
                phone.lock().connection = Connection::Connected;
                self.set_reachable(&phone, true, None);
            }
            LineNews::Unregistered => {
                phone.lock().connection = Connection::NeedsRegistration;
                let event = {
                    let mut st = phone.lock();
                    st.in_service.then(|| {
                        st.in_service = false;
                        DriverEvent::LineOutOfService {
                            line: phone.key.clone(),
                            reason: "the phone's identity is not registered".into(),
                        }
                    })
                };
                if let Some(e) = event {
                    self.sink.event(e);
                }
            }
        }
        HttpReply::text(200, "OK\n")
    }
}

async fn periodic(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let mut last_status = Instant::now();
    let mut last_snapshot = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
        let status = shared.config.status_interval_secs;
        let snapshot = shared.config.snapshot_interval_secs;
        let phones: Vec<Arc<Phone>> = if (status > 0
            && last_status.elapsed() >= Duration::from_secs(status))
            || (snapshot > 0 && last_snapshot.elapsed() >= Duration::from_secs(snapshot))
        {
            shared.read_phones().values().cloned().collect()
        } else {
            continue;
        };
        if status > 0 && last_status.elapsed() >= Duration::from_secs(status) {
            last_status = Instant::now();
            for p in &phones {
                shared.enqueue(p, Job::Refresh { write: false });
            }
        }
        if snapshot > 0 && last_snapshot.elapsed() >= Duration::from_secs(snapshot) {
            last_snapshot = Instant::now();
            if shared.config.csta_path.is_some() {
                for p in phones
                    .iter()
                    .filter(|p| !p.lock().tracker.calls().is_empty())
                {
                    shared.enqueue(p, Job::Snapshot);
                }
            }
        }
    }
}

async fn discover(shared: Arc<Shared>) {
    let timeout = Duration::from_millis(shared.config.request_timeout_ms.min(2000));
    for text in shared.config.discovery.clone() {
        let Ok(range) = crate::discovery::Range::parse(&text) else {
            continue;
        };
        let mut found = 0usize;
        let mut tasks = tokio::task::JoinSet::new();
        for address in range.addresses() {
            while tasks.len() >= shared.config.max_connections {
                if let Some(Ok(Some(f))) = tasks.join_next().await {
                    found += usize::from(add_found(&shared, f));
                }
            }
            let Ok(target) = Target::parse(&address, Scheme::Http) else {
                continue;
            };
            tasks.spawn(async move {
                let r = http::send(&target, "GET", "/", None, None, timeout)
                    .await
                    .ok()?;
                let model = crate::discovery::recognise(r.header("server"), &r.body)?;
                Some(crate::discovery::Found { address, model })
            });
        }
        while let Some(r) = tasks.join_next().await {
            if let Ok(Some(f)) = r {
                found += usize::from(add_found(&shared, f));
            }
        }
        tracing::info!(range = %text, found, "Discovery finished.");
    }
}

fn add_found(shared: &Arc<Shared>, found: crate::discovery::Found) -> bool {
    let key = address_key(&found.address);
    let known = shared
        .read_phones()
        .values()
        .any(|p| format!("{}:{}", p.target.host, p.target.port) == found.address);
    if known {
        return false;
    }
    let Ok(target) = Target::parse(&found.address, Scheme::Http) else {
        return false;
    };
    let added = shared.add_phone(key, target, None, None, None, None, false);
    if let (Some(p), Some(model)) = (&added, found.model) {
        p.lock().model = Some(model);
    }
    added.is_some()
}

impl PhoneDriver for SnomDriver {
    fn submit(&self, envelope: RequestEnvelope) -> Result<(), DriverError> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(DriverError::new(
                ErrorKind::Uninitialized,
                "the snom driver is shut down",
            ));
        }
        let phone = self.shared.phone(envelope.line.as_str())?;
        match phone.enqueue(Job::Request(envelope), self.shared.config.queue_per_phone) {
            Ok(start) => {
                if start {
                    let shared = Arc::clone(&self.shared);
                    let p = Arc::clone(&phone);
                    self.shared
                        .handle
                        .spawn(async move { shared.drain(p).await });
                }
                Ok(())
            }
            Err(_) => Err(DriverError::new(
                ErrorKind::ResourceUnavailable,
                "too many requests are waiting for this phone",
            )),
        }
    }

    fn http_callback(&self, request: HttpCallback) -> HttpReply {
        self.shared.callback(&request)
    }

    fn devices(&self) -> Vec<DeviceStatus> {
        let mut out: Vec<DeviceStatus> = self
            .shared
            .read_phones()
            .values()
            .map(|p| p.device())
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    fn device_action(
        &self,
        device: &str,
        action: DeviceAction,
    ) -> Result<DeviceActionOutcome, DriverError> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(DriverError::new(
                ErrorKind::Uninitialized,
                "the snom driver is shut down",
            ));
        }
        let name = action.name();
        let outcome = match action {
            DeviceAction::Refresh => self
                .refresh(device, false)
                .map(|()| DeviceActionOutcome::Queued),
            DeviceAction::WriteConfiguration => self
                .refresh(device, true)
                .map(|()| DeviceActionOutcome::Queued),
            DeviceAction::Remove => self.remove(device).map(|()| DeviceActionOutcome::Done),
            DeviceAction::SetLogin { login, password } => {
                if login.is_empty() {
                    return Err(DriverError::new(
                        ErrorKind::InvalidParameter,
                        "the login must not be empty",
                    ));
                }
                self.set_login(device, &login, Secret::new(password))
                    .map(|()| DeviceActionOutcome::Queued)
            }
            DeviceAction::SaveConfiguration => self
                .settings_dump(device)
                .map(|text| DeviceActionOutcome::Configuration { text }),
            DeviceAction::Add {
                mac,
                login,
                password,
            } => {
                let login = login.map(|l| (l, Secret::new(password.unwrap_or_default())));
                self.add(device, mac.as_deref(), login)
                    .map(|key| DeviceActionOutcome::Added { key })
            }
        };
        // The action is not logged as a whole: it may carry a password.
        match &outcome {
            Ok(_) => tracing::info!(phone = %device, action = name, "Phone-table action taken."),
            Err(e) => {
                tracing::info!(phone = %device, action = name, error = %e, "Phone-table action refused.")
            }
        }
        outcome
    }

    fn line_opened(&self, line: &LineKey) {
        // Issue 5 point 3: the configuration is checked (and repaired, per `auto_reconfigure`)
        // when a line opens. Queued, never blocking the front end.
        if let Ok(phone) = self.shared.phone(line.as_str()) {
            tracing::debug!(phone = %line, "Line opened; checking the phone's configuration.");
            self.shared.enqueue(&phone, Job::Refresh { write: false });
        }
    }

    fn shutdown(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        let _ = self.shared.stop.send(true);
        let phones: Vec<_> = self.shared.read_phones().values().cloned().collect();
        for phone in phones {
            let jobs: Vec<Job> = phone.lock().queue.drain(..).collect();
            for job in jobs {
                if let Job::Request(env) = job {
                    self.shared.sink.complete(
                        env.id,
                        Err(DriverError::new(
                            ErrorKind::Uninitialized,
                            "the driver stopped",
                        )),
                    );
                }
            }
        }
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(rt) = runtime {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for SnomDriver {
    fn drop(&mut self) {
        if self
            .runtime
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            self.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_once_per_source_and_reason() {
        let mut log = LogOnce::default();
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        assert_eq!(log.note(a, "wrong secret"), LogVerdict::Log);
        for _ in 0..1000 {
            assert_eq!(log.note(a, "wrong secret"), LogVerdict::Quiet);
        }
        assert_eq!(log.note(a, "malformed"), LogVerdict::Log);
        assert_eq!(log.note(b, "wrong secret"), LogVerdict::Log);
        // Memory stays bounded: past the limit only summaries.
        let mut summaries = 0;
        for i in 0..(LOG_SOURCES as u32 + 20_000) {
            if let LogVerdict::Summary(_) = log.note(IpAddr::from(i.to_be_bytes()), "x") {
                summaries += 1;
            }
        }
        assert!(log.seen.len() <= LOG_SOURCES);
        assert!((1..=3).contains(&summaries), "{summaries}");
    }
}
