//! The driver object: owns a small tokio runtime, the phones, the connection limit, the
//! uaCSTA endpoint and the periodic work; turns requests into phone jobs and phone reports
//! (Action URLs, uaCSTA events) into events.
//!
//! Map: this file holds the driver, its shared state and the [`PhoneDriver`] face;
//! `fetch` the authorised HTTP request (logins, Digest counting, lock-outs); `refresh` the
//! configuration check and the reachability probe; `requests` the application's requests; `service` whether the line serves and which routes
//! it has;
//! `callback` the Action URL endpoint; `sessions` the uaCSTA sessions; `periodic` the timers
//! and discovery.

mod callback;
mod fetch;
mod periodic;
mod refresh;
mod requests;
mod service;
mod sessions;

use crate::action;

use crate::config::{address_key, phone_key, AuthScheme, SnomConfig};
use crate::http::Target;
use crate::phone::{Credentials, Job, Phone, PhoneState};
use crate::secret::Secret;
use crate::store::Store;
use callback::LogOnce;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tapir_core::{
    DeviceAction, DeviceActionOutcome, DeviceStatus, DriverError, DriverEvent, ErrorKind,
    HttpCallback, HttpReply, LineKey, PhoneDriver, RequestEnvelope, SharedSink,
};
use tokio::sync::Semaphore;

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
    /// Wrong Digest logins per phone, kept across restarts.
    store: Mutex<Store>,
    /// The SIP endpoint for uaCSTA, started when the first session is opened.
    sip: tokio::sync::OnceCell<Option<crate::uacsta::Client>>,
    /// The driver is starting: the configured phones' lines appear together at the end.
    starting: AtomicBool,
}

/// How long starting waits for the configured phones' first checks, so that their lines
/// appear with what the phones offer (identities as addresses, the model's operations, a
/// uaCSTA session). A phone still being checked then appears with what its configuration
/// says, and is announced again once its check is over.
const FIRST_CHECK_WAIT: Duration = Duration::from_secs(3);

impl SnomDriver {
    /// Starts the driver: its runtime, the configured phones (checked first: each phone's line
    /// is announced before this returns, after its first check or [`FIRST_CHECK_WAIT`] at
    /// most, in configuration order), discovery and the periodic checks.
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
        let store = Store::open(sink.state_dir());
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
            store: Mutex::new(store),
            sip: tokio::sync::OnceCell::new(),
            starting: AtomicBool::new(true),
        });
        let mut in_order = Vec::new();
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
            in_order.extend(shared.add_phone(NewPhone {
                key,
                target,
                configured,
                auth: phone.auth,
                mac,
                name: phone.name.clone(),
                mass: false,
                sip: SipLogin {
                    port: phone.sip_port,
                    user: phone.sip_user.clone(),
                    password: phone.sip_password.clone(),
                },
            }));
        }
        shared.appear(&in_order);
        if shared.base.is_none() {
            tracing::warn!("No callback URL: enable [phones] in the host (or set public_url); phones cannot report call states.");
        }
        runtime.spawn(periodic::run(Arc::clone(&shared)));
        if !shared.config.discovery.is_empty() {
            runtime.spawn(periodic::discover(Arc::clone(&shared)));
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

    /// Removes a phone and its line. Its record of wrong Digest logins goes with it: adding
    /// it again is the operator's way to let the driver try logins again.
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
        let (leftover, session, announced) = {
            let mut st = phone.lock();
            st.removed = true;
            (
                st.queue.drain(..).collect::<Vec<Job>>(),
                st.uacsta.session.take(),
                st.announced.is_some(),
            )
        };
        if let Some(s) = session {
            s.close();
        }
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
        self.shared.store_lock().reset(key);
        if announced {
            self.shared.sink.event(DriverEvent::LineRemoved {
                line: phone.key.clone(),
            });
        }
        Ok(())
    }

    /// Sets the login of a phone (the phone table's "allocate password"). The count of wrong
    /// Digest logins is not reset: the phone counts until a login succeeds.
    ///
    /// # Errors
    /// `BadDeviceId` for an unknown phone.
    pub fn set_login(&self, key: &str, login: &str, password: Secret) -> Result<(), DriverError> {
        let phone = self.shared.phone(key)?;
        phone.lock().login = Some(Credentials {
            login: login.to_owned(),
            password,
        });
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
            Err(e) => Err(e.into_driver_error()),
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
            .add_phone(NewPhone {
                key: key.clone(),
                target,
                configured,
                auth: None,
                mac,
                name: None,
                mass: false,
                sip: SipLogin::default(),
            })
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

/// The SIP login and port of a phone's uaCSTA side, as configured.
#[derive(Debug, Clone, Default)]
struct SipLogin {
    port: Option<u16>,
    user: Option<String>,
    password: Option<Secret>,
}

/// What a new phone starts from.
struct NewPhone {
    key: String,
    target: Target,
    configured: Option<Credentials>,
    auth: Option<AuthScheme>,
    mac: Option<String>,
    name: Option<String>,
    mass: bool,
    sip: SipLogin,
}

impl Shared {
    fn read_phones(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Phone>>> {
        self.phones.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn store_lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
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

    fn add_phone(self: &Arc<Self>, new: NewPhone) -> Option<Arc<Phone>> {
        let record = self.store_lock().get(&new.key);
        // F_DEFLECT deflects on every phone; a programmable key is checked in its settings.
        let redirect_key = self
            .config
            .redirect_key
            .clone()
            .filter(|k| matches!(crate::config::deflect_key(k), Ok(None)));
        let phone = Arc::new(Phone {
            key: LineKey::new(new.key.clone()),
            secret: self.secret_for(&new.key),
            name: new.name.unwrap_or_else(|| format!("snom {}", new.key)),
            target: new.target,
            configured: new.configured,
            auth: new.auth,
            mac: new.mac.clone(),
            mass: new.mass,
            sip_port: new.sip.port,
            sip_user: new.sip.user,
            sip_password: new.sip.password,
            state: Mutex::new(PhoneState {
                in_service: true,
                digest_failures: record.wrong,
                wrong_login: record.login,
                facts: crate::command::PhoneFacts {
                    redirect_key,
                    ..Default::default()
                },
                ..PhoneState::default()
            }),
        });
        {
            let mut phones = self.phones.write().unwrap_or_else(PoisonError::into_inner);
            if phones.contains_key(&new.key) {
                return None;
            }
            phones.insert(new.key.clone(), Arc::clone(&phone));
        }
        if let Some(mac) = new.mac {
            self.by_mac
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(mac, new.key);
        }
        // Its line appears once the first check is over (`settle`).
        self.enqueue(&phone, Job::Refresh { write: false });
        Some(phone)
    }

    /// The end of starting: waits (at most [`FIRST_CHECK_WAIT`]) for the first checks of the
    /// configured `phones`, then announces their lines in that order.
    fn appear(&self, phones: &[Arc<Phone>]) {
        let deadline = std::time::Instant::now() + FIRST_CHECK_WAIT;
        while std::time::Instant::now() < deadline && !phones.iter().all(|p| p.lock().settled) {
            std::thread::sleep(Duration::from_millis(5));
        }
        for phone in phones {
            self.announce(phone, true);
        }
        self.starting.store(false, Ordering::Release);
        // Phones added meanwhile (a mass-configured phone calling in) whose check is over.
        let others: Vec<Arc<Phone>> = self.read_phones().values().cloned().collect();
        for phone in others {
            self.update_routes(&phone);
        }
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
                Job::Probe => self.run_probe(&phone).await,
            }
        }
    }

    fn emit(&self, events: Vec<DriverEvent>) {
        for e in events {
            self.sink.event(e);
        }
    }
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
        let mut closed = 0usize;
        for phone in phones {
            let (jobs, session) = {
                let mut st = phone.lock();
                (
                    st.queue.drain(..).collect::<Vec<Job>>(),
                    st.uacsta.session.take(),
                )
            };
            if let Some(s) = session {
                s.close();
                closed += 1;
            }
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
            if closed > 0 {
                // Let the sessions send their BYE before the runtime goes.
                std::thread::sleep(Duration::from_millis(100));
            }
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
