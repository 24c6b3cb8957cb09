//! The driver's timers, one task for all phones: the configuration check every
//! `status_interval_secs`, the snapshot of active calls, the reachability probe (often for
//! phones with calls or requests, every `liveness_interval_secs` otherwise, backing off for
//! phones that stay away), the end of a lock-out wait, new uaCSTA attempts; and discovery.

use super::Shared;
use crate::command::CstaVia;
use crate::config::{address_key, Scheme, SnomConfig};
use crate::http::{self, Target};
use crate::phone::{Job, Phone};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapir_core::Connection;

/// How often the timers look at the phones.
const TICK: Duration = Duration::from_millis(500);

pub(super) async fn run(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let mut last_status = Instant::now();
    let mut last_snapshot = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
        let now = Instant::now();
        let phones: Vec<Arc<Phone>> = shared.read_phones().values().cloned().collect();
        let status = shared.config.status_interval_secs;
        if status > 0 && last_status.elapsed() >= Duration::from_secs(status) {
            last_status = now;
            for p in &phones {
                shared.enqueue(p, Job::Refresh { write: false });
            }
        }
        let snapshot = shared.config.snapshot_interval_secs;
        if snapshot > 0 && last_snapshot.elapsed() >= Duration::from_secs(snapshot) {
            last_snapshot = now;
            for p in &phones {
                let due = {
                    let st = p.lock();
                    !st.tracker.calls().is_empty()
                        && match st.facts.csta.as_ref().map(|c| c.via) {
                            Some(CstaVia::Sip) => true,
                            _ => shared.config.csta_path.is_some(),
                        }
                };
                if due {
                    shared.enqueue(p, Job::Snapshot);
                }
            }
        }
        for p in &phones {
            for job in shared.due(p, now) {
                shared.enqueue(p, job);
            }
        }
    }
}

impl Shared {
    /// The timed jobs a phone needs now.
    fn due(&self, phone: &Phone, now: Instant) -> Vec<Job> {
        let mut jobs = Vec::new();
        let mut st = phone.lock();
        if st.removed {
            return jobs;
        }
        if let Some(b) = &st.blocked {
            if b.until <= now && !st.running {
                jobs.push(Job::Probe);
            }
            return jobs;
        }
        let liveness = self.config.liveness_interval_secs;
        if liveness > 0 && st.connection != Connection::NotContacted {
            let busy = !st.tracker.calls().is_empty() || !st.queue.is_empty() || st.running;
            // First sight: the phone was just contacted, the first check comes one interval on.
            let next = *st
                .next_probe
                .get_or_insert(now + Duration::from_secs(liveness));
            if next <= now {
                let unreachable = st.connection == Connection::Unreachable;
                let secs = probe_interval(&self.config, unreachable, st.probe_failures, busy);
                st.next_probe = Some(now + Duration::from_secs(secs));
                jobs.push(Job::Probe);
            } else if busy {
                // A call started since the last check: come sooner.
                let soon = now + Duration::from_secs(self.config.liveness_busy_secs.max(1));
                if next > soon && st.connection != Connection::Unreachable {
                    st.next_probe = Some(soon);
                }
            }
        }
        let retry = st.uacsta.wanted
            && st.uacsta.up().is_none()
            && st.uacsta.retry_at.is_some_and(|t| t <= now)
            && st.connection == Connection::Connected;
        if retry {
            st.uacsta.retry_at = Some(now + Duration::from_secs(30));
            jobs.push(Job::Refresh { write: false });
        }
        jobs
    }
}

/// Seconds until the next reachability check: often while the phone has calls or requests,
/// the idle interval otherwise; for a phone that stays away, from the busy interval doubling
/// up to `liveness_max_secs` (a short absence is noticed soon, a long one costs little).
fn probe_interval(config: &SnomConfig, unreachable: bool, failures: u32, busy: bool) -> u64 {
    let idle = config.liveness_interval_secs.max(1);
    let often = config.liveness_busy_secs.clamp(1, idle);
    if unreachable {
        let doubled = often.saturating_mul(1u64 << failures.saturating_sub(1).min(16));
        doubled.min(config.liveness_max_secs.max(often))
    } else if busy {
        often
    } else {
        idle
    }
}

pub(super) async fn discover(shared: Arc<Shared>) {
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
    let added = shared.add_phone(super::NewPhone {
        key,
        target,
        configured: None,
        auth: None,
        mac: None,
        name: None,
        mass: false,
        sip: super::SipLogin::default(),
    });
    if let (Some(p), Some(model)) = (&added, found.model) {
        p.lock().model = Some(model);
    }
    added.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_come_often_with_calls_and_back_off_for_phones_that_stay_away() {
        let c = SnomConfig::default();
        assert_eq!(probe_interval(&c, false, 0, false), 30);
        assert_eq!(probe_interval(&c, false, 0, true), 5);
        let away: Vec<u64> = (1..=8)
            .map(|n| probe_interval(&c, true, n, false))
            .collect();
        assert_eq!(away, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(probe_interval(&c, true, 40, true), 300, "bounded");
    }
}
