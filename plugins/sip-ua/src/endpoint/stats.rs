//! The endpoint's counters: per endpoint ([`EndpointStats`], asked with
//! [`super::Endpoint::stats`]) and over the whole process ([`global_stats`]).

use crate::transaction::LayerStats;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of an endpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct EndpointStats {
    /// The transaction layer's counters.
    pub layer: LayerStats,
    /// Live transactions.
    pub transactions: usize,
    /// Routed Call-IDs.
    pub routes: usize,
    /// Messages dropped as unparseable.
    pub malformed: u64,
    /// Open TCP connections (accepted and our own).
    pub connections: usize,
    /// Accepted TCP connections closed to make room for new ones.
    pub evicted: u64,
    /// Times the accept loop paused because descriptors ran out.
    pub accept_pauses: u64,
    /// ICMP unreachable errors read from the UDP socket.
    pub icmp_errors: u64,
    /// Connections we opened (TCP and TLS; each reconnect counts).
    pub opened: u64,
    /// Keep-alive pings sent on watched flows.
    pub pings: u64,
    /// Keep-alive pongs received (CRLF on TCP/TLS, STUN answers on UDP).
    pub pongs: u64,
    /// Watched flows that failed.
    pub flow_failures: u64,
    /// STUN Binding answers received (address discovery and keep-alives).
    pub stun_answers: u64,
    /// The public address learned with STUN, if any.
    pub public: Option<SocketAddr>,
}

/// Process-wide counters over every endpoint (for metrics and the benchmark).
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalStats {
    /// Retransmissions sent by all transaction layers.
    pub retransmissions: u64,
    /// Transactions created.
    pub transactions: u64,
    /// Transaction timeouts.
    pub timeouts: u64,
    /// Datagrams and stream messages dropped as unparseable.
    pub malformed: u64,
}

pub(super) static RETRANSMISSIONS: AtomicU64 = AtomicU64::new(0);
pub(super) static TRANSACTIONS: AtomicU64 = AtomicU64::new(0);
pub(super) static TIMEOUTS: AtomicU64 = AtomicU64::new(0);
pub(super) static MALFORMED: AtomicU64 = AtomicU64::new(0);

/// Reads the process-wide counters.
pub fn global_stats() -> GlobalStats {
    GlobalStats {
        retransmissions: RETRANSMISSIONS.load(Ordering::Relaxed),
        transactions: TRANSACTIONS.load(Ordering::Relaxed),
        timeouts: TIMEOUTS.load(Ordering::Relaxed),
        malformed: MALFORMED.load(Ordering::Relaxed),
    }
}
