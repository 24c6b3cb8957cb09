//! The Action URL endpoint: who may call back (per-phone secret, source address, MAC),
//! refusals logged once per source, and phone events applied to the call tracker (also for
//! uaCSTA events, which share the tracker).

use super::Shared;
use crate::action::{self, Callback, Event, Sender, Vars};
use crate::calls::LineNews;
use crate::http::Target;
use crate::phone::{Job, Phone};
use crate::secret::constant_time_eq;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError};
use tapir_core::{CallId, HttpCallback, HttpReply};

/// Sources remembered for "log once per source".
const LOG_SOURCES: usize = 4096;

/// Logs a refused callback once per source and reason; counts the rest.
#[derive(Default)]
pub(super) struct LogOnce {
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

impl Shared {
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

    pub(super) fn callback(self: &Arc<Self>, request: &HttpCallback) -> HttpReply {
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
                            match self.add_phone(super::NewPhone {
                                key: mac.clone(),
                                target,
                                configured: None,
                                auth: None,
                                mac: Some(mac.clone()),
                                name: None,
                                mass: true,
                                sip: super::SipLogin::default(),
                            }) {
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
        if let Some(expected) = phone.expected_mac() {
            // A phone whose MAC is known must name it ($mac is in every URL the driver
            // writes); a callback without it is not the phone's.
            match cb.vars.mac() {
                Some(claimed) if claimed == expected => {}
                Some(_) => return self.refuse(source, 403, "MAC is not the phone's"),
                None => return self.refuse(source, 403, "callback without the phone's MAC"),
            }
        }
        if let Some(mac) = cb.vars.mac() {
            phone.lock().mac.get_or_insert(mac);
        }
        self.apply_phone_event(&phone, cb.event, &cb.vars);
        HttpReply::text(200, "OK\n")
    }

    /// Applies one phone event (Action URL, or uaCSTA event in the same terms) to the
    /// phone's calls, and acts on line news (restart, registration).
    pub(super) fn apply_phone_event(
        self: &Arc<Self>,
        phone: &Arc<Phone>,
        event: Event,
        vars: &Vars,
    ) {
        let sink = Arc::clone(&self.sink);
        let mut ids = move || -> CallId { sink.new_call_id() };
        let (events, news) = phone
            .lock()
            .tracker
            .apply(&phone.key, &mut ids, event, vars);
        self.emit(events);
        match news {
            LineNews::None => {}
            LineNews::Rebooted => {
                self.restarted(phone);
                self.enqueue(phone, Job::Refresh { write: false });
            }
            LineNews::Registered => {
                phone.lock().unregistered = false;
                self.set_reachable(phone, true, None);
            }
            LineNews::Unregistered => {
                phone.lock().unregistered = true;
                self.set_reachable(phone, true, None);
            }
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
