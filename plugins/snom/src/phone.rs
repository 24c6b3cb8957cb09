//! One phone as the driver keeps it: where it is, how to log in, its calls, its status for the
//! phone table, and its job queue (requests to one phone go out one at a time).
//!
//! No task or thread exists per phone: a phone's queue is drained by a task that exists only
//! while the queue has work, so an idle phone costs its state (about a kilobyte) and nothing
//! else.

use crate::calls::CallTracker;
use crate::command::PhoneFacts;
use crate::config::AuthScheme;
use crate::http::Target;
use crate::secret::Secret;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use tapir_core::{
    AddressInfo, Configuration, Connection, DeviceStatus, LineCaps, LineInfo, LineKey, Operation,
    OperationSet, RequestEnvelope,
};

/// Work for a phone.
#[derive(Debug)]
pub enum Job {
    /// An application request.
    Request(RequestEnvelope),
    /// Contact the phone, read identity and settings, check (and with `write`, or the
    /// auto-reconfigure option, fix) its configuration.
    Refresh {
        /// Write the configuration even if the option is off.
        write: bool,
    },
    /// Check the calls shown against the phone.
    Snapshot,
    /// Check that the phone is reachable (one request without credentials).
    Probe,
}

impl Job {
    fn is_periodic(&self) -> bool {
        matches!(
            self,
            Job::Refresh { write: false } | Job::Snapshot | Job::Probe
        )
    }
}

/// The phone refuses access for a while: locked out after wrong passwords (403), or
/// restarting (503). No request with credentials is sent before `until`.
#[derive(Debug, Clone)]
pub struct Blocked {
    /// When to ask again (without credentials first).
    pub until: std::time::Instant,
    /// Why, for the phone table.
    pub why: String,
    /// 403 (locked out) rather than 503 (restarting).
    pub locked: bool,
}

/// The phone's uaCSTA session, and why there is none.
#[derive(Debug, Default)]
pub struct UaState {
    /// The session, while it is up.
    pub session: Option<crate::uacsta::Session>,
    /// The phone takes uaCSTA (`csta_control` on, or the driver switches it on).
    pub wanted: bool,
    /// Its SIP port (`network_id_port` from the settings).
    pub sip_port: Option<u16>,
    /// Why there is no session (refused, unreachable), for the phone table.
    pub problem: Option<String>,
    /// Not before this time is a new session tried.
    pub retry_at: Option<std::time::Instant>,
    /// The last sign of life of the session (an answer, an event).
    pub last_heard: Option<std::time::Instant>,
    /// A task is opening or checking the session.
    pub working: bool,
}

impl UaState {
    /// The session, if it is up.
    pub fn up(&self) -> Option<&crate::uacsta::Session> {
        self.session.as_ref().filter(|s| s.is_up())
    }
}

/// A login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User.
    pub login: String,
    /// Password.
    pub password: Secret,
}

/// The fixed part of a phone.
#[derive(Debug)]
pub struct Phone {
    /// The line key (also the phone's id in callback paths).
    pub key: LineKey,
    /// The per-phone callback secret.
    pub secret: String,
    /// The web server.
    pub target: Target,
    /// The login configured for this phone.
    pub configured: Option<Credentials>,
    /// The authentication scheme configured.
    pub auth: Option<AuthScheme>,
    /// The MAC configured.
    pub mac: Option<String>,
    /// The line name.
    pub name: String,
    /// Added through a mass-configuration callback: its URLs come from the provisioning
    /// server and are accepted as they are.
    pub mass: bool,
    /// The configured SIP port for uaCSTA.
    pub sip_port: Option<u16>,
    /// The configured user answering the phone's CSTA challenge.
    pub sip_user: Option<String>,
    /// The configured password answering the phone's CSTA challenge.
    pub sip_password: Option<Secret>,
    /// The changing part.
    pub state: Mutex<PhoneState>,
}

/// The changing part of a phone.
#[derive(Debug, Default)]
pub struct PhoneState {
    /// Calls and address state.
    pub tracker: CallTracker,
    /// Jobs waiting.
    pub queue: VecDeque<Job>,
    /// A task is draining the queue.
    pub running: bool,
    /// Phone-table connection status.
    pub connection: Connection,
    /// Phone-table configuration status.
    pub configuration: Configuration,
    /// Phone-table detail.
    pub detail: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Firmware.
    pub firmware: Option<String>,
    /// Identity (user@host of identity 1).
    pub identity: Option<String>,
    /// The line number.
    pub number: Option<String>,
    /// MAC learnt from the phone.
    pub mac: Option<String>,
    /// IP learnt (resolved address).
    pub ip: Option<IpAddr>,
    /// What routes depend on.
    pub facts: PhoneFacts,
    /// The login that worked.
    pub login: Option<Credentials>,
    /// The scheme the phone asked for.
    pub scheme: Option<AuthScheme>,
    /// Wrong Digest attempts since the last success (kept in the driver's state file);
    /// never more than two are made.
    pub digest_failures: u8,
    /// The login of the last wrong Digest attempt.
    pub wrong_login: Option<String>,
    /// The phone refuses access for a while.
    pub blocked: Option<Blocked>,
    /// When to check reachability next, and how many checks failed in a row.
    pub next_probe: Option<std::time::Instant>,
    /// Failed reachability checks in a row.
    pub probe_failures: u32,
    /// uaCSTA.
    pub uacsta: UaState,
    /// The configuration status was `correct` before the phone became unreachable.
    pub was_correct: bool,
    /// The phone refuses the driver's login (why), until a login succeeds.
    pub login_refused: Option<String>,
    /// The phone reported its identity unregistered (`log_off`, `reg_failed`).
    pub unregistered: bool,
    /// The line is in service.
    pub in_service: bool,
    /// The last line info announced (`None`: the line has not appeared yet).
    pub announced: Option<LineInfo>,
    /// The first configuration check (and the first uaCSTA attempt it starts) is over: what
    /// the line offers is known, so it may appear.
    pub settled: bool,
    /// CSTA snapshot over HTTP known not to work on this phone.
    pub snapshot_unsupported: bool,
    /// The phone answered a CSTA call-control request over HTTP with something that is not
    /// CSTA: per-call operations no longer use CSTA over HTTP on it (until the driver
    /// restarts).
    pub csta_control_unsupported: bool,
    /// Removed: no more jobs.
    pub removed: bool,
    /// The Action URLs were written to a phone whose settings cannot be read back; not
    /// repeated at every status refresh (only on demand or after a reboot).
    pub written_blind: bool,
}

impl PhoneState {
    /// Why the line cannot carry calls now, if it cannot.
    pub fn not_serving(&self) -> Option<String> {
        if self.connection == Connection::Unreachable {
            return Some(
                self.detail
                    .clone()
                    .unwrap_or_else(|| "the phone cannot be reached".into()),
            );
        }
        if let Some(b) = &self.blocked {
            return Some(b.why.clone());
        }
        if let Some(why) = &self.login_refused {
            return Some(format!("the phone refuses the login: {why}"));
        }
        self.unregistered
            .then(|| "the phone's identity is not registered".to_owned())
    }
}

impl Phone {
    /// Locks the changing part (a poisoned lock is taken over: the state stays usable).
    pub fn lock(&self) -> MutexGuard<'_, PhoneState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a job; false when the queue is full. Periodic jobs already queued are not
    /// queued twice. Returns whether a drain task must be started.
    pub fn enqueue(&self, job: Job, limit: usize) -> Result<bool, Job> {
        let mut st = self.lock();
        if st.removed {
            return Err(job);
        }
        if job.is_periodic()
            && st
                .queue
                .iter()
                .any(|j| std::mem::discriminant(j) == std::mem::discriminant(&job))
        {
            return Ok(false);
        }
        if st.queue.len() >= limit {
            return Err(job);
        }
        st.queue.push_back(job);
        let start = !st.running;
        st.running = true;
        Ok(start)
    }

    /// The next job, or None (and the drain task ends).
    pub fn next_job(&self) -> Option<Job> {
        let mut st = self.lock();
        let job = st.queue.pop_front();
        if job.is_none() {
            st.running = false;
        }
        job
    }

    /// The IP callbacks must come from, when known.
    pub fn expected_ip(&self) -> Option<IpAddr> {
        self.target.ip().or(self.lock().ip)
    }

    /// The MAC callbacks must carry, when known.
    pub fn expected_mac(&self) -> Option<String> {
        self.mac.clone().or_else(|| self.lock().mac.clone())
    }

    /// The line as announced now.
    pub fn line_info(&self, st: &PhoneState) -> LineInfo {
        let mut addresses: Vec<AddressInfo> = st
            .facts
            .identities
            .iter()
            .enumerate()
            .map(|(i, uri)| AddressInfo {
                id: tapir_core::AddressId(i as u32),
                number: if i == 0 {
                    st.number
                        .clone()
                        .unwrap_or_else(|| crate::action::user_part(uri))
                } else {
                    crate::action::user_part(uri)
                },
                name: uri.clone(),
            })
            .collect();
        if addresses.is_empty() {
            addresses.push(AddressInfo {
                id: tapir_core::AddressId(0),
                number: st.number.clone().unwrap_or_default(),
                name: self.name.clone(),
            });
        }
        LineInfo {
            key: self.key.clone(),
            name: self.name.clone(),
            caps: LineCaps {
                operations: operations(&st.facts),
                forward_modes: vec![
                    tapir_core::ForwardMode::Unconditional,
                    tapir_core::ForwardMode::Busy,
                    tapir_core::ForwardMode::NoAnswer,
                ],
                max_calls: 4,
                addresses,
            },
            in_service: st.in_service,
        }
    }

    /// The phone-table row. Never holds a secret.
    pub fn device(&self) -> DeviceStatus {
        let st = self.lock();
        let mut detail: Vec<String> = st.detail.iter().cloned().collect();
        if let Some(b) = &st.blocked {
            if !detail.contains(&b.why) {
                detail.push(b.why.clone());
            }
        }
        if st.uacsta.up().is_some() {
            detail.push("uaCSTA session up".into());
        } else if let Some(p) = &st.uacsta.problem {
            detail.push(format!("uaCSTA: {p}"));
        }
        DeviceStatus {
            key: self.key.to_string(),
            model: st.model.clone(),
            firmware: st.firmware.clone(),
            identity: st.identity.clone(),
            number: st.number.clone(),
            ip: st
                .ip
                .map(|ip| ip.to_string())
                .or_else(|| Some(self.target.host.clone())),
            mac: self.mac.clone().or_else(|| st.mac.clone()),
            connection: st.connection,
            configuration: st.configuration,
            lines: vec![self.key.clone()],
            detail: (!detail.is_empty()).then(|| detail.join("; ")),
        }
    }
}

/// The operations a snom line offers now, over keys, settings and CSTA: only what a route
/// exists for. Call control needs key control (not D8xx) or CSTA (a uaCSTA session, or
/// `csta_path`); swap hold needs CSTA; redirect needs CSTA (`DeflectCall`) or a key that
/// deflects. Drop is always offered: dropping a call the phone already ended needs no route.
/// What is left out the front end answers with `OperationUnavailable`.
pub fn operations(facts: &PhoneFacts) -> OperationSet {
    let mut set: OperationSet = [
        Operation::Drop,
        Operation::Forward,
        Operation::DoNotDisturb,
        Operation::AddressStatus,
    ]
    .into_iter()
    .collect();
    if facts.can_control_calls() {
        for op in [
            Operation::MakeCall,
            Operation::Answer,
            Operation::Hold,
            Operation::Unhold,
            Operation::BlindTransfer,
            Operation::SetupTransfer,
            Operation::CompleteTransfer,
            Operation::Dial,
        ] {
            set.insert(op);
        }
    }
    if facts.csta.is_some() {
        set.insert(Operation::SwapHold);
        set.insert(Operation::Redirect);
    }
    if facts.redirect_key.is_some() && facts.has_key_control() {
        set.insert(Operation::Redirect);
    }
    set
}
