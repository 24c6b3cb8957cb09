//! Keeping idle, slow and hostile connections from starving a listener.
//!
//! Every connection is in a [`Phase`] since some instant. A reaper closes the connections that
//! stayed in a waiting phase longer than its limit (no head within the header timeout, no next
//! request within the keep-alive timeout). A listener holds at most `max` connections: a
//! newcomer to a full listener takes the place of the connection that has waited longest
//! without a request in progress, or is closed itself when every connection is busy. When the
//! process runs out of descriptors (`EMFILE`), the waiting connections of every listener are
//! shed oldest first, so `/healthz` and the phones' callbacks still get through.
//!
//! Timeouts inside a request live where the bytes move: the body timeout in
//! [`super::service`], the send timeout in [`super::io`].

use crate::config::ConnectionLimits;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Accepted, no request yet (a TLS handshake happens here). Limit: the header timeout.
    Fresh,
    /// Kept alive between requests. Limit: the keep-alive timeout.
    Idle,
    /// The next request's first bytes arrived, its head is incomplete. Limit: the header
    /// timeout.
    Head,
    /// A request is handled or its response sent.
    Busy,
    /// Switched protocols (a WebSocket): no HTTP limits apply any more.
    Upgraded,
    /// The host decided to close it while it was waiting; no request may start any more.
    Closing,
}

impl Phase {
    /// When the connection is only waiting for its client (it may be shed): which waiting
    /// connections go first. A connection that never completed a head goes before one kept
    /// alive after a request: a client that got answers once is most likely a real one.
    fn shed_rank(self) -> Option<u8> {
        match self {
            Phase::Fresh | Phase::Head => Some(0),
            Phase::Idle => Some(1),
            Phase::Busy | Phase::Upgraded | Phase::Closing => None,
        }
    }
}

/// Why the host closed a connection (the `reason` label of
/// `tapir_http_connections_closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// No complete request head in time.
    HeaderTimeout,
    /// No next request in time.
    KeepaliveTimeout,
    /// The body did not arrive in time.
    BodyTimeout,
    /// The client did not read the response in time.
    SendTimeout,
    /// Shed for a newcomer or for descriptors.
    Shed,
    /// Refused: the listener was full of busy connections.
    Refused,
    /// The host is stopping.
    Shutdown,
}

impl Reason {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Reason::HeaderTimeout => "header_timeout",
            Reason::KeepaliveTimeout => "keepalive_timeout",
            Reason::BodyTimeout => "body_timeout",
            Reason::SendTimeout => "send_timeout",
            Reason::Shed => "shed",
            Reason::Refused => "refused",
            Reason::Shutdown => "shutdown",
        }
    }
}

struct Timing {
    phase: Phase,
    since: Instant,
    in_flight: usize,
}

/// One connection's state, shared by its I/O, its requests, its task and the reaper.
pub(crate) struct Conn {
    timing: Mutex<Timing>,
    close: Notify,
    reason: Mutex<Option<Reason>>,
}

impl Conn {
    pub(crate) fn new() -> Self {
        Self {
            timing: Mutex::new(Timing {
                phase: Phase::Fresh,
                since: Instant::now(),
                in_flight: 0,
            }),
            close: Notify::new(),
            reason: Mutex::new(None),
        }
    }

    fn timing(&self) -> MutexGuard<'_, Timing> {
        // Every update is a few plain assignments: a poisoned lock still holds valid data.
        self.timing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes arrived: on a kept-alive connection that is the start of the next head.
    pub(crate) fn read_some(&self) {
        let mut t = self.timing();
        if t.phase == Phase::Idle {
            t.phase = Phase::Head;
            t.since = Instant::now();
        }
    }

    /// A request's head is complete and its handling begins; `false` when the host closed
    /// the connection (it was waiting) just before: the request must not be served.
    pub(crate) fn request_started(&self) -> bool {
        let mut t = self.timing();
        t.in_flight += 1;
        match t.phase {
            Phase::Closing => false,
            Phase::Upgraded => true,
            _ => {
                t.phase = Phase::Busy;
                true
            }
        }
    }

    /// A request's response was sent (or abandoned).
    pub(crate) fn request_finished(&self) {
        let mut t = self.timing();
        t.in_flight = t.in_flight.saturating_sub(1);
        if t.in_flight == 0 && t.phase == Phase::Busy {
            t.phase = Phase::Idle;
            t.since = Instant::now();
        }
    }

    /// The connection switched protocols.
    pub(crate) fn upgraded(&self) {
        self.timing().phase = Phase::Upgraded;
    }

    /// Its place in the shedding order (lower goes first), if it is only waiting.
    fn shed_order(&self) -> Option<(u8, Instant)> {
        let t = self.timing();
        Some((t.phase.shed_rank()?, t.since))
    }

    /// Why it must close now, if it overstayed its phase.
    #[cfg(test)]
    fn expired(&self, limits: &ConnectionLimits, now: Instant) -> Option<Reason> {
        expiry(&self.timing(), limits, now)
    }

    /// Closes the connection if `check` says why, deciding under the same lock that requests
    /// start under: a connection that just started a request is never closed as waiting.
    fn close_if(&self, check: impl FnOnce(&Timing) -> Option<Reason>) -> bool {
        let mut t = self.timing();
        let Some(reason) = check(&t) else {
            return false;
        };
        t.phase = Phase::Closing;
        drop(t);
        self.close(reason);
        true
    }

    /// Sheds the connection if it is only waiting.
    fn shed(&self) -> bool {
        self.close_if(|t| t.phase.shed_rank().map(|_| Reason::Shed))
    }

    /// Asks the connection's task to close it; the first reason given is kept.
    pub(crate) fn close(&self, reason: Reason) {
        let mut kept = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if kept.is_none() {
            *kept = Some(reason);
        }
        drop(kept);
        self.close.notify_one();
    }

    /// Records why the connection ended from within (a body or send timeout), without asking
    /// the task to stop: the error ends it already.
    pub(crate) fn note(&self, reason: Reason) {
        let mut kept = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if kept.is_none() {
            *kept = Some(reason);
        }
    }

    /// Resolves when [`Conn::close`] was called, with the reason.
    pub(crate) async fn closed(&self) -> Reason {
        self.close.notified().await;
        self.reason().unwrap_or(Reason::Shutdown)
    }

    /// The reason recorded, if any.
    pub(crate) fn reason(&self) -> Option<Reason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a connection in the state `t` must close at `now`, if it overstayed its phase.
fn expiry(t: &Timing, limits: &ConnectionLimits, now: Instant) -> Option<Reason> {
    let (limit, reason) = match t.phase {
        Phase::Fresh | Phase::Head => (limits.header_timeout(), Reason::HeaderTimeout),
        Phase::Idle => (limits.keepalive_timeout(), Reason::KeepaliveTimeout),
        Phase::Busy | Phase::Upgraded | Phase::Closing => return None,
    };
    (now.saturating_duration_since(t.since) >= limit).then_some(reason)
}

/// The connections of one listener.
pub(crate) struct Pool {
    label: &'static str,
    limits: ConnectionLimits,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
}

/// Every live pool, for shedding when the process runs out of descriptors.
static POOLS: Mutex<Vec<Weak<Pool>>> = Mutex::new(Vec::new());

/// A connection's place in its pool; leaving the pool when dropped.
pub(crate) struct Ticket {
    pool: Arc<Pool>,
    id: u64,
    /// The connection's state.
    pub(crate) conn: Arc<Conn>,
}

impl Ticket {
    /// The limits of the connection's listener.
    pub(crate) fn limits(&self) -> &ConnectionLimits {
        &self.pool.limits
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let left = {
            let mut conns = self.pool.conns();
            conns.remove(&self.id);
            conns.len()
        };
        metrics::gauge!("tapir_http_connections", "listener" => self.pool.label).set(left as f64);
        metrics::counter!(
            "tapir_http_connections_closed_total",
            "listener" => self.pool.label,
            "reason" => self.conn.reason().map_or("client", Reason::label)
        )
        .increment(1);
    }
}

impl Pool {
    /// A pool for the listener labelled `label` (`http`, `phones`), with its reaper.
    pub(crate) fn start(label: &'static str, limits: ConnectionLimits) -> Arc<Self> {
        let pool = Arc::new(Self {
            label,
            limits,
            conns: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        });
        {
            let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
            pools.retain(|p| p.strong_count() > 0);
            pools.push(Arc::downgrade(&pool));
        }
        let weak = Arc::downgrade(&pool);
        let tick = reaper_tick(&limits);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                match weak.upgrade() {
                    Some(pool) => pool.reap(),
                    None => return,
                }
            }
        });
        pool
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a new connection: `None` when the pool is full of busy connections. When it is
    /// full and some connection is only waiting, the one waiting longest is closed for it.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Ticket> {
        let mut conns = self.conns();
        if conns.len() >= self.limits.max.get() {
            let mut waiting: Vec<((u8, Instant), u64)> = conns
                .iter()
                .filter_map(|(id, c)| Some((c.shed_order()?, *id)))
                .collect();
            waiting.sort_unstable();
            // The first that is still only waiting when it is closed gives way.
            let shed = waiting
                .into_iter()
                .find(|(_, id)| conns.get(id).is_some_and(|c| c.shed()))
                .map(|(_, id)| id);
            conns.remove(&shed?);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new());
        conns.insert(id, Arc::clone(&conn));
        let held = conns.len();
        drop(conns);
        metrics::gauge!("tapir_http_connections", "listener" => self.label).set(held as f64);
        Some(Ticket {
            pool: Arc::clone(self),
            id,
            conn,
        })
    }

    /// Closes every connection past its phase's limit.
    fn reap(&self) {
        let now = Instant::now();
        let mut conns = self.conns();
        conns.retain(|_, conn| !conn.close_if(|t| expiry(t, &self.limits, now)));
    }

    /// Closes every connection (the host is stopping and the grace time is over).
    pub(crate) fn close_all(&self) {
        for (_, conn) in self.conns().drain() {
            conn.close(Reason::Shutdown);
        }
    }

    /// How many connections are held.
    pub(crate) fn len(&self) -> usize {
        self.conns().len()
    }
}

/// Closes up to `count` connections that are only waiting, in shedding order, across
/// every listener of the process; returns how many. For when descriptors run out.
pub(crate) fn shed_waiting(count: usize) -> usize {
    let pools: Vec<Arc<Pool>> = POOLS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    let mut waiting: Vec<((u8, Instant), usize, u64)> = Vec::new();
    for (index, pool) in pools.iter().enumerate() {
        for (id, conn) in pool.conns().iter() {
            if let Some(order) = conn.shed_order() {
                waiting.push((order, index, *id));
            }
        }
    }
    waiting.sort_unstable();
    let mut shed = 0;
    for (_, index, id) in waiting {
        if shed == count {
            break;
        }
        let Some(pool) = pools.get(index) else {
            continue;
        };
        let mut conns = pool.conns();
        // Only if it is still waiting now: it may have started a request since.
        if conns.get(&id).is_some_and(|c| c.shed()) {
            conns.remove(&id);
            shed += 1;
        }
    }
    shed
}

/// How often the reaper looks: a quarter of the shortest waiting limit, between 100 ms and 1 s.
fn reaper_tick(limits: &ConnectionLimits) -> Duration {
    (limits.header_timeout().min(limits.keepalive_timeout()) / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::{NonZeroU64, NonZeroUsize};

    fn limits(max: usize) -> ConnectionLimits {
        ConnectionLimits {
            max: NonZeroUsize::new(max).expect("max"),
            header_timeout_s: NonZeroU64::new(10).expect("s"),
            keepalive_timeout_s: NonZeroU64::new(30).expect("s"),
            ..ConnectionLimits::default()
        }
    }

    #[tokio::test]
    async fn a_full_pool_sheds_the_longest_waiting_and_refuses_when_all_are_busy() {
        let pool = Pool::start("test", limits(2));
        let first = pool.admit().expect("room");
        let second = pool.admit().expect("room");
        assert!(second.conn.request_started());
        // Full: the first (waiting) makes room; the busy second stays.
        let third = pool.admit().expect("shed one");
        assert_eq!(first.conn.reason(), Some(Reason::Shed));
        assert_eq!(second.conn.reason(), None);
        assert!(
            !first.conn.request_started(),
            "a shed connection serves nothing"
        );
        assert!(third.conn.request_started());
        assert!(pool.admit().is_none(), "every connection is busy");
        drop(first);
        assert_eq!(pool.len(), 2);
        // A finished request makes its connection idle, and so sheddable again.
        second.conn.request_finished();
        assert!(pool.admit().is_some());
        assert_eq!(second.conn.reason(), Some(Reason::Shed));
    }

    #[tokio::test]
    async fn connections_that_never_sent_a_head_are_shed_before_kept_alive_ones() {
        let pool = Pool::start("test", limits(2));
        let kept = pool.admit().expect("room");
        assert!(kept.conn.request_started());
        kept.conn.request_finished();
        let fresh = pool.admit().expect("room");
        let _newcomer = pool.admit().expect("shed one");
        assert_eq!(fresh.conn.reason(), Some(Reason::Shed));
        assert_eq!(kept.conn.reason(), None);
    }

    #[tokio::test]
    async fn phases_expire_on_their_own_limits() {
        let pool = Pool::start("test", limits(8));
        let fresh = pool.admit().expect("room");
        let limits = pool.limits;
        let now = Instant::now();
        assert_eq!(fresh.conn.expired(&limits, now), None);
        let later = now + Duration::from_secs(11);
        assert_eq!(
            fresh.conn.expired(&limits, later),
            Some(Reason::HeaderTimeout)
        );
        assert!(fresh.conn.request_started());
        assert_eq!(fresh.conn.expired(&limits, later), None, "busy");
        fresh.conn.request_finished();
        let idle_since = Instant::now();
        assert_eq!(
            fresh
                .conn
                .expired(&limits, idle_since + Duration::from_secs(11)),
            None,
            "idle gets the keep-alive timeout"
        );
        assert_eq!(
            fresh
                .conn
                .expired(&limits, idle_since + Duration::from_secs(31)),
            Some(Reason::KeepaliveTimeout)
        );
        fresh.conn.read_some();
        assert_eq!(
            fresh
                .conn
                .expired(&limits, Instant::now() + Duration::from_secs(11)),
            Some(Reason::HeaderTimeout),
            "a started head gets the header timeout"
        );
        fresh.conn.upgraded();
        assert_eq!(
            fresh
                .conn
                .expired(&limits, Instant::now() + Duration::from_secs(3600)),
            None
        );
    }
}
