//! RFC 3261 §17 transactions, sans-I/O: the four state machines and the layer that owns them.
//!
//! Time is an input ([`Instant`] passed to every call), so tests drive the timers with a
//! virtual clock. The layer never does I/O: it queues [`LayerEvent`]s (bytes to transmit,
//! messages for the transaction user) that the transport shell drains with
//! [`TransactionLayer::pop_event`].
//!
//! Timers: A/B/D (INVITE client), E/F/K (non-INVITE client), G/H/I (INVITE server), J
//! (non-INVITE server), and RFC 6026's Timer M for the INVITE client's Accepted state. Two
//! guards keep a transaction from living forever when the other side or our own user goes
//! silent: an INVITE client in Proceeding gives up after [`Timers::proceeding_limit`] (what
//! Timer C does in a proxy), and a server transaction whose user never answers sends `500`
//! itself after 64·T1 (non-INVITE) or `proceeding_limit` (INVITE). Terminated transactions are
//! removed at once, so the layer's size is bounded by the traffic of the last ~64·T1.

use crate::header::Via;
use crate::message::{Message, Method, StartLine};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The RFC 3261 timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate, 500 ms by default.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses, 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network, 5 s.
    pub t4: Duration,
    /// Longest wait in INVITE Proceeding without a final response (our guard, 180 s).
    pub proceeding_limit: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            proceeding_limit: Duration::from_secs(180),
        }
    }
}

/// Identifies a transaction (RFC 3261 §17.1.3 / §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxKey {
    /// The branch of the top Via (or a substitute built from Call-ID/CSeq/From-tag for
    /// pre-RFC 3261 peers).
    pub branch: String,
    /// The method (ACK is folded into INVITE on the server side).
    pub method: Method,
    /// True for our client transactions.
    pub client: bool,
}

impl TxKey {
    fn of(msg: &Message, client: bool) -> Option<TxKey> {
        let via = msg.top_via_ref()?;
        let cseq = msg.cseq()?;
        let mut method = match &msg.start {
            StartLine::Request { method, .. } => method.clone(),
            StartLine::Response { .. } => cseq.method.clone(),
        };
        if !client && method == Method::Ack {
            method = Method::Invite;
        }
        let branch = match via.branch() {
            // A bare magic cookie identifies nothing (RFC 4475 §3.2.1): RFC 2543 key instead.
            Some(b) if b.starts_with("z9hG4bK") && b.len() > 7 => {
                if client {
                    b.to_owned()
                } else {
                    format!("{b}|{}:{}", via.host, via.port.unwrap_or(0))
                }
            }
            _ => format!(
                "legacy|{}|{}|{}|{}",
                msg.call_id().unwrap_or(""),
                cseq.seq,
                msg.from()
                    .and_then(|f| f.tag().map(str::to_owned))
                    .unwrap_or_default(),
                msg.top_via()?
            ),
        };
        Some(TxKey {
            branch,
            method,
            client,
        })
    }
}

/// Why the layer refused to start a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TxError {
    /// The request has no Via with a branch or no CSeq.
    #[error("request lacks Via branch or CSeq")]
    Malformed,
    /// A transaction with this key exists already.
    #[error("duplicate transaction")]
    Duplicate,
    /// The layer holds its maximum number of transactions.
    #[error("too many transactions")]
    Overloaded,
    /// No server transaction with this key (it ended, or never existed).
    #[error("no such transaction")]
    Unknown,
}

/// A transaction's state (RFC 3261 figures 5–8, plus RFC 6026 Accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// INVITE client before any response.
    Calling,
    /// Non-INVITE client or server before any response.
    Trying,
    /// A provisional response was received / sent.
    Proceeding,
    /// A final response was received / sent; absorbing retransmissions.
    Completed,
    /// INVITE client after a 2xx (RFC 6026): 2xx retransmissions go to the user.
    Accepted,
    /// INVITE server after the ACK.
    Confirmed,
    /// Gone.
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    InviteClient,
    NonInviteClient,
    InviteServer,
    NonInviteServer,
}

/// What one transaction asks of the layer.
#[derive(Debug)]
enum Step {
    Send(Vec<u8>),
    Deliver(Message),
    Timeout,
}

#[derive(Debug)]
struct Transaction {
    kind: Kind,
    state: TxState,
    reliable: bool,
    /// Bytes of our request (client) or last response (server).
    wire: Vec<u8>,
    /// Client INVITE: the request, for building the ACK to a non-2xx response.
    request: Option<Message>,
    /// Client INVITE: the ACK we sent for a non-2xx response.
    ack: Option<Vec<u8>>,
    interval: Duration,
    retransmit_at: Option<Instant>,
    timeout_at: Option<Instant>,
    end_at: Option<Instant>,
}

impl Transaction {
    fn deadline(&self) -> Option<Instant> {
        [self.retransmit_at, self.timeout_at, self.end_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Something for the transport shell or the transaction user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerEvent<P> {
    /// Send these bytes to this peer.
    Transmit {
        /// Where to.
        peer: P,
        /// What.
        bytes: Vec<u8>,
        /// True for a retransmission (counted by the shell).
        retransmission: bool,
    },
    /// A response for one of our client transactions.
    Response {
        /// The client transaction.
        key: TxKey,
        /// The response.
        msg: Message,
    },
    /// A client transaction timed out (Timer B or F, or the Proceeding guard) or a server
    /// transaction never got its ACK (Timer H).
    Timeout {
        /// The transaction.
        key: TxKey,
    },
    /// A new request; answer it with [`TransactionLayer::respond`] (except ACK, see `Ack`).
    Request {
        /// The server transaction.
        key: TxKey,
        /// The request.
        msg: Message,
        /// Who sent it.
        peer: P,
    },
    /// An ACK matching no transaction: the ACK to a 2xx, for the dialog layer.
    Ack {
        /// The ACK.
        msg: Message,
        /// Who sent it.
        peer: P,
    },
    /// A response matching no transaction (a late 2xx retransmission), for the dialog layer.
    StrayResponse {
        /// The response.
        msg: Message,
    },
}

/// Counters for the benchmark and for logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Transactions created.
    pub created: u64,
    /// Retransmissions sent.
    pub retransmissions: u64,
    /// Client and server timeouts.
    pub timeouts: u64,
    /// Requests refused because the layer was full.
    pub overload_rejections: u64,
    /// Completed transactions forgotten before their timer because the linger store was full.
    pub early_forgotten: u64,
    /// Client transactions ended by a transport error (ICMP unreachable).
    pub transport_failures: u64,
}

struct Entry<P> {
    key: TxKey,
    peer: P,
    tx: Transaction,
}

/// A completed non-INVITE transaction that only absorbs retransmissions until Timer J (server)
/// or K (client) ends it. Kept apart from live transactions in a compact form: at UDP rates of
/// thousands of calls per second these windows hold most of the state.
struct Linger<P> {
    peer: P,
    /// Server: the final response to replay on a request retransmission.
    replay: Option<Box<[u8]>>,
    until: Instant,
}

/// Bounds on what a layer holds, so a flood of distinct requests costs bounded memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most live transactions (client and server, not counting completed ones that only
    /// absorb retransmissions); our own requests beyond it fail with [`TxError::Overloaded`].
    pub max_transactions: usize,
    /// Most live server transactions; a new request beyond it is answered `503` with
    /// `Retry-After` statelessly (RFC 3261 §21.5.4), creating nothing.
    pub max_server: usize,
    /// Most completed transactions kept to absorb retransmissions (Timers J, K, M); beyond
    /// it the oldest is forgotten early (a late retransmission then counts as a new request).
    pub max_lingering: usize,
    /// The `Retry-After` seconds of the overload answer.
    pub retry_after_secs: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_transactions: 1_000_000,
            max_server: 10_000,
            max_lingering: 32_768,
            retry_after_secs: 5,
        }
    }
}

/// All live transactions of one endpoint, generic over the peer address type.
pub struct TransactionLayer<P> {
    timers: Timers,
    limits: Limits,
    /// Live server transactions in `entries`.
    servers: usize,
    next_id: u64,
    index: HashMap<TxKey, u64>,
    entries: HashMap<u64, Entry<P>>,
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    lingering: HashMap<TxKey, Linger<P>>,
    /// Expiry order of `lingering`, one FIFO per window length (so each stays sorted).
    linger_j: VecDeque<(Instant, TxKey)>,
    linger_k: VecDeque<(Instant, TxKey)>,
    events: VecDeque<LayerEvent<P>>,
    stats: LayerStats,
}

impl<P: Clone> TransactionLayer<P> {
    /// An empty layer holding at most `max` live transactions (other limits at their
    /// defaults).
    pub fn new(timers: Timers, max: usize) -> Self {
        Self::with_limits(
            timers,
            Limits {
                max_transactions: max,
                ..Limits::default()
            },
        )
    }

    /// An empty layer with these limits.
    pub fn with_limits(timers: Timers, limits: Limits) -> Self {
        TransactionLayer {
            timers,
            limits,
            servers: 0,
            next_id: 0,
            index: HashMap::new(),
            entries: HashMap::new(),
            heap: BinaryHeap::new(),
            lingering: HashMap::new(),
            linger_j: VecDeque::new(),
            linger_k: VecDeque::new(),
            events: VecDeque::new(),
            stats: LayerStats::default(),
        }
    }

    /// Live transactions (including completed ones still absorbing retransmissions).
    pub fn len(&self) -> usize {
        self.entries.len() + self.lingering.len()
    }

    /// True when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.lingering.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> LayerStats {
        self.stats
    }

    /// The state of a transaction, if it is live.
    pub fn state(&self, key: &TxKey) -> Option<TxState> {
        if self.lingering.contains_key(key) {
            return Some(TxState::Completed);
        }
        let id = self.index.get(key)?;
        self.entries.get(id).map(|e| e.tx.state)
    }

    /// Live server transactions (not counting completed ones that only absorb
    /// retransmissions).
    pub fn servers(&self) -> usize {
        self.servers
    }

    /// The capacity the tables hold (for tests that memory is given back after a flood).
    pub fn capacity(&self) -> usize {
        self.index.capacity() + self.entries.capacity() + self.lingering.capacity()
    }

    /// The next event for the shell or the user.
    pub fn pop_event(&mut self) -> Option<LayerEvent<P>> {
        self.events.pop_front()
    }

    /// When [`Self::on_timer`] must be called next.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        // Drop heap entries of transactions that are gone.
        while let Some(Reverse((_, id))) = self.heap.peek() {
            if self.entries.contains_key(id) {
                break;
            }
            self.heap.pop();
        }
        [
            self.heap.peek().map(|Reverse((t, _))| *t),
            self.linger_j.front().map(|(t, _)| *t),
            self.linger_k.front().map(|(t, _)| *t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Starts a client transaction for `request` (which carries its Via with a fresh branch)
    /// towards `peer`. The layer keeps the bytes it sends, and a copy of an INVITE (for the
    /// ACK of a non-2xx answer); the caller keeps the request.
    ///
    /// # Errors
    /// [`TxError`] if the request is unusable, a duplicate, or the layer is full.
    pub fn send_request(
        &mut self,
        request: &Message,
        peer: P,
        reliable: bool,
        now: Instant,
    ) -> Result<TxKey, TxError> {
        let key = TxKey::of(request, true).ok_or(TxError::Malformed)?;
        if key.method == Method::Ack {
            return Err(TxError::Malformed);
        }
        if self.index.contains_key(&key) || self.lingering.contains_key(&key) {
            return Err(TxError::Duplicate);
        }
        if self.entries.len() >= self.limits.max_transactions {
            self.stats.overload_rejections += 1;
            return Err(TxError::Overloaded);
        }
        let t = self.timers;
        let invite = key.method == Method::Invite;
        let wire = request.to_bytes();
        let tx = Transaction {
            kind: if invite {
                Kind::InviteClient
            } else {
                Kind::NonInviteClient
            },
            state: if invite {
                TxState::Calling
            } else {
                TxState::Trying
            },
            reliable,
            wire: wire.clone(),
            request: invite.then(|| request.clone()),
            ack: None,
            interval: t.t1,
            retransmit_at: (!reliable).then(|| now + t.t1),
            timeout_at: Some(now + 64 * t.t1),
            end_at: None,
        };
        self.events.push_back(LayerEvent::Transmit {
            peer: peer.clone(),
            bytes: wire,
            retransmission: false,
        });
        self.insert(key.clone(), peer, tx);
        Ok(key)
    }

    /// Answers a server transaction.
    ///
    /// # Errors
    /// [`TxError::Unknown`] when the transaction is gone.
    pub fn respond(&mut self, key: &TxKey, response: Message, now: Instant) -> Result<(), TxError> {
        let id = *self.index.get(key).ok_or(TxError::Unknown)?;
        let entry = self.entries.get_mut(&id).ok_or(TxError::Unknown)?;
        let code = response.code().ok_or(TxError::Malformed)?;
        let t = self.timers;
        let tx = &mut entry.tx;
        if !matches!(tx.state, TxState::Trying | TxState::Proceeding) {
            return Err(TxError::Unknown);
        }
        tx.wire = response.to_bytes();
        if code >= 200 {
            // The user answered: the guard's fallback 500 is not needed any more.
            tx.request = None;
        }
        self.events.push_back(LayerEvent::Transmit {
            peer: entry.peer.clone(),
            bytes: tx.wire.clone(),
            retransmission: false,
        });
        match (tx.kind, code) {
            (_, 100..=199) => tx.state = TxState::Proceeding,
            (Kind::InviteServer, 200..=299) => tx.state = TxState::Terminated,
            (Kind::InviteServer, _) => {
                tx.state = TxState::Completed;
                tx.interval = t.t1;
                tx.retransmit_at = (!tx.reliable).then(|| now + t.t1); // Timer G
                tx.timeout_at = Some(now + 64 * t.t1); // Timer H
            }
            _ => {
                tx.state = TxState::Completed;
                tx.timeout_at = None;
                tx.end_at = Some(
                    now + if tx.reliable {
                        Duration::ZERO
                    } else {
                        64 * t.t1
                    },
                ); // J
            }
        }
        self.reschedule(id);
        Ok(())
    }

    /// Feeds a message that arrived from `peer`.
    pub fn on_message(&mut self, msg: Message, peer: P, reliable: bool, now: Instant) {
        if msg.is_request() {
            self.on_request(msg, peer, reliable, now);
        } else {
            self.on_response(msg, now);
        }
    }

    fn on_response(&mut self, msg: Message, now: Instant) {
        let Some(key) = TxKey::of(&msg, true) else {
            return;
        };
        let Some(&id) = self.index.get(&key) else {
            let lingering = self.lingering.contains_key(&key);
            let invite_2xx =
                key.method == Method::Invite && msg.code().is_some_and(|c| (200..300).contains(&c));
            // Unknown responses and 2xx retransmissions to an accepted INVITE go to the user,
            // which ACKs each 2xx again (RFC 6026 §7.2); other retransmissions are absorbed.
            if !lingering || invite_2xx {
                self.events.push_back(LayerEvent::StrayResponse { msg });
            }
            return;
        };
        let t = self.timers;
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let code = msg.code().unwrap_or(0);
        let tx = &mut entry.tx;
        let mut steps = Vec::new();
        match (tx.kind, tx.state) {
            (Kind::InviteClient, TxState::Calling | TxState::Proceeding) => {
                tx.retransmit_at = None;
                if code < 200 {
                    if tx.state == TxState::Calling {
                        tx.timeout_at = Some(now + t.proceeding_limit);
                    }
                    tx.state = TxState::Proceeding;
                } else if code < 300 {
                    tx.state = TxState::Accepted;
                    // Nothing is retransmitted any more: free the request.
                    tx.request = None;
                    tx.wire = Vec::new();
                    tx.timeout_at = None;
                    tx.end_at = Some(now + 64 * t.t1); // Timer M
                } else {
                    tx.state = TxState::Completed;
                    tx.timeout_at = None;
                    let ack = tx.request.as_ref().map(|r| ack_for(r, &msg).to_bytes());
                    if let Some(a) = &ack {
                        steps.push(Step::Send(a.clone()));
                    }
                    tx.ack = ack;
                    tx.request = None;
                    tx.wire = Vec::new();
                    // Timer D
                    tx.end_at = Some(
                        now + if tx.reliable {
                            Duration::ZERO
                        } else {
                            Duration::from_secs(32)
                        },
                    );
                }
                steps.push(Step::Deliver(msg));
            }
            (Kind::InviteClient, TxState::Accepted) if (200..300).contains(&code) => {
                steps.push(Step::Deliver(msg));
            }
            (Kind::InviteClient, TxState::Completed) if code >= 300 => {
                if let Some(a) = &tx.ack {
                    steps.push(Step::Send(a.clone()));
                }
            }
            (Kind::NonInviteClient, TxState::Trying | TxState::Proceeding) => {
                if code < 200 {
                    tx.state = TxState::Proceeding;
                } else {
                    tx.state = TxState::Completed;
                    tx.retransmit_at = None;
                    tx.timeout_at = None;
                    tx.wire = Vec::new();
                    tx.end_at = Some(now + if tx.reliable { Duration::ZERO } else { t.t4 });
                    // K
                }
                steps.push(Step::Deliver(msg));
            }
            _ => {}
        }
        self.apply(id, steps);
        self.reschedule(id);
    }

    fn on_request(&mut self, msg: Message, peer: P, reliable: bool, now: Instant) {
        let Some(key) = TxKey::of(&msg, false) else {
            return;
        };
        let is_ack = matches!(
            &msg.start,
            StartLine::Request {
                method: Method::Ack,
                ..
            }
        );
        if let Some(linger) = self.lingering.get(&key) {
            // A retransmission of a request we already answered: replay the answer.
            if let (Some(replay), false) = (&linger.replay, is_ack) {
                self.events.push_back(LayerEvent::Transmit {
                    peer: linger.peer.clone(),
                    bytes: replay.to_vec(),
                    retransmission: true,
                });
                self.stats.retransmissions += 1;
            }
            return;
        }
        if let Some(&id) = self.index.get(&key) {
            let t = self.timers;
            let Some(entry) = self.entries.get_mut(&id) else {
                return;
            };
            let tx = &mut entry.tx;
            let mut steps = Vec::new();
            match (tx.kind, tx.state, is_ack) {
                (Kind::InviteServer, TxState::Completed, true) => {
                    tx.state = TxState::Confirmed;
                    tx.retransmit_at = None;
                    tx.timeout_at = None;
                    tx.end_at = Some(now + if tx.reliable { Duration::ZERO } else { t.t4 });
                    // I
                }
                (_, TxState::Proceeding | TxState::Completed, false) => {
                    steps.push(Step::Send(tx.wire.clone()));
                }
                _ => {}
            }
            let retransmit = !steps.is_empty();
            self.apply(id, steps);
            if retransmit {
                self.stats.retransmissions += 1;
            }
            self.reschedule(id);
            return;
        }
        if is_ack {
            self.events.push_back(LayerEvent::Ack { msg, peer });
            return;
        }
        if self.servers >= self.limits.max_server
            || self.entries.len() >= self.limits.max_transactions
        {
            self.stats.overload_rejections += 1;
            let mut busy = Message::response_to(&msg, 503, "Service Unavailable", None);
            busy.push("Retry-After", self.limits.retry_after_secs.to_string());
            self.events.push_back(LayerEvent::Transmit {
                peer,
                bytes: busy.to_bytes(),
                retransmission: false,
            });
            return;
        }
        let t = self.timers;
        let invite = key.method == Method::Invite;
        let mut tx = Transaction {
            kind: if invite {
                Kind::InviteServer
            } else {
                Kind::NonInviteServer
            },
            state: if invite {
                TxState::Proceeding
            } else {
                TxState::Trying
            },
            reliable,
            wire: Vec::new(),
            request: None,
            ack: None,
            interval: t.t1,
            retransmit_at: None,
            // Guard against a user that never answers.
            timeout_at: Some(
                now + if invite {
                    t.proceeding_limit
                } else {
                    64 * t.t1
                },
            ),
            end_at: None,
        };
        if invite {
            // RFC 3261 §17.2.1: a 100 Trying at once, so the client stops retransmitting.
            let trying = Message::response_to(&msg, 100, "Trying", None);
            tx.wire = trying.to_bytes();
            self.events.push_back(LayerEvent::Transmit {
                peer: peer.clone(),
                bytes: tx.wire.clone(),
                retransmission: false,
            });
        }
        // The guard's 500 is built from the request now, so no request copy is kept.
        let fallback = Message::response_to(&msg, 500, "Server Internal Error", None);
        let id = self.insert(key.clone(), peer.clone(), tx);
        if let Some(e) = self.entries.get_mut(&id) {
            e.tx.request = Some(fallback);
        }
        self.events
            .push_back(LayerEvent::Request { key, msg, peer });
    }

    /// Runs every timer due at `now`.
    pub fn on_timer(&mut self, now: Instant) {
        for queue in [&mut self.linger_j, &mut self.linger_k] {
            while queue.front().is_some_and(|(t, _)| *t <= now) {
                if let Some((t, key)) = queue.pop_front() {
                    if self.lingering.get(&key).is_some_and(|l| l.until == t) {
                        self.lingering.remove(&key);
                    }
                }
            }
        }
        self.shrink();
        let mut bounded = self.heap.len() + 1;
        while bounded > 0 {
            bounded -= 1;
            let Some(Reverse((when, id))) = self.heap.peek().copied() else {
                break;
            };
            if when > now {
                break;
            }
            self.heap.pop();
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            match entry.tx.deadline() {
                Some(d) if d <= now => self.fire(id, now),
                _ => {}
            }
        }
    }

    fn fire(&mut self, id: u64, now: Instant) {
        let t = self.timers;
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let tx = &mut entry.tx;
        let mut steps = Vec::new();
        let mut retransmits = 0;
        if tx.end_at.is_some_and(|e| e <= now) {
            tx.state = TxState::Terminated;
        } else if tx.timeout_at.is_some_and(|e| e <= now) {
            match (tx.kind, tx.state) {
                // Server user never answered: send 500 ourselves.
                (
                    Kind::InviteServer | Kind::NonInviteServer,
                    TxState::Trying | TxState::Proceeding,
                ) => {
                    if let Some(fallback) = tx.request.take() {
                        tx.wire = fallback.to_bytes();
                        steps.push(Step::Send(tx.wire.clone()));
                    }
                    tx.state = TxState::Completed;
                    tx.timeout_at = None;
                    if tx.kind == Kind::InviteServer {
                        tx.retransmit_at = (!tx.reliable).then(|| now + t.t1);
                        tx.timeout_at = Some(now + 64 * t.t1);
                    } else {
                        tx.end_at = Some(
                            now + if tx.reliable {
                                Duration::ZERO
                            } else {
                                64 * t.t1
                            },
                        );
                    }
                }
                _ => {
                    steps.push(Step::Timeout);
                    tx.state = TxState::Terminated;
                }
            }
        } else if tx.retransmit_at.is_some_and(|e| e <= now) {
            steps.push(Step::Send(tx.wire.clone()));
            retransmits += 1;
            tx.interval = match (tx.kind, tx.state) {
                (Kind::InviteClient, _) => tx.interval * 2, // Timer A
                (Kind::NonInviteClient, TxState::Proceeding) => t.t2, // Timer E
                _ => (tx.interval * 2).min(t.t2),           // Timers E, G
            };
            tx.retransmit_at = Some(now + tx.interval);
        }
        self.stats.retransmissions += retransmits;
        self.apply(id, steps);
        self.reschedule(id);
    }

    fn insert(&mut self, key: TxKey, peer: P, tx: Transaction) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.stats.created += 1;
        if matches!(tx.kind, Kind::InviteServer | Kind::NonInviteServer) {
            self.servers += 1;
        }
        self.index.insert(key.clone(), id);
        self.entries.insert(id, Entry { key, peer, tx });
        self.reschedule(id);
        id
    }

    /// Takes a transaction out of the live tables, keeping the server count right.
    fn remove_entry(&mut self, id: u64) -> Option<Entry<P>> {
        let entry = self.entries.remove(&id)?;
        self.index.remove(&entry.key);
        if matches!(entry.tx.kind, Kind::InviteServer | Kind::NonInviteServer) {
            self.servers = self.servers.saturating_sub(1);
        }
        Some(entry)
    }

    /// Forgets the oldest lingering transactions until there is room for one more.
    fn make_linger_room(&mut self) {
        while self.lingering.len() >= self.limits.max_lingering.max(1) {
            let j = self.linger_j.front().map(|(t, _)| *t);
            let k = self.linger_k.front().map(|(t, _)| *t);
            let queue = match (j, k) {
                (Some(a), Some(b)) if b < a => &mut self.linger_k,
                (Some(_), _) => &mut self.linger_j,
                (None, Some(_)) => &mut self.linger_k,
                (None, None) => {
                    // Unreachable while the queues track every entry; stay bounded anyway.
                    self.lingering.clear();
                    return;
                }
            };
            if let Some((t, key)) = queue.pop_front() {
                if self.lingering.get(&key).is_some_and(|l| l.until == t) {
                    self.lingering.remove(&key);
                    self.stats.early_forgotten += 1;
                }
            }
        }
    }

    /// Gives memory back after a burst: tables far larger than their contents are shrunk.
    fn shrink(&mut self) {
        fn spare(len: usize, cap: usize) -> bool {
            cap > 1024 && cap > 4 * len
        }
        if spare(self.lingering.len(), self.lingering.capacity()) {
            self.lingering.shrink_to(self.lingering.len() * 2);
        }
        if spare(self.index.len(), self.index.capacity()) {
            self.index.shrink_to(self.index.len() * 2);
            self.entries.shrink_to(self.entries.len() * 2);
        }
        for q in [&mut self.linger_j, &mut self.linger_k] {
            if spare(q.len(), q.capacity()) {
                q.shrink_to(q.len() * 2);
            }
        }
        if spare(self.heap.len(), self.heap.capacity()) {
            self.heap.shrink_to(self.heap.len() * 2);
        }
        if spare(self.events.len(), self.events.capacity()) {
            self.events.shrink_to(self.events.len() * 2);
        }
    }

    fn apply(&mut self, id: u64, steps: Vec<Step>) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        for step in steps {
            let ev = match step {
                Step::Send(bytes) => LayerEvent::Transmit {
                    peer: entry.peer.clone(),
                    bytes,
                    retransmission: true,
                },
                Step::Deliver(msg) => LayerEvent::Response {
                    key: entry.key.clone(),
                    msg,
                },
                Step::Timeout => {
                    self.stats.timeouts += 1;
                    LayerEvent::Timeout {
                        key: entry.key.clone(),
                    }
                }
            };
            // The ACK to a non-2xx final is not a retransmission the first time.
            let ev = match ev {
                LayerEvent::Transmit { peer, bytes, .. }
                    if entry.tx.kind == Kind::InviteClient
                        && entry.tx.ack.as_ref() == Some(&bytes)
                        && entry.tx.state == TxState::Completed =>
                {
                    LayerEvent::Transmit {
                        peer,
                        bytes,
                        retransmission: false,
                    }
                }
                other => other,
            };
            self.events.push_back(ev);
        }
    }

    fn reschedule(&mut self, id: u64) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        if entry.tx.state == TxState::Terminated {
            self.remove_entry(id);
            return;
        }
        // Completed non-INVITE over UDP (Timers J, K) and the INVITE client's Accepted state
        // (Timer M) only absorb or pass on retransmissions.
        let lingers = match (entry.tx.kind, entry.tx.state) {
            (Kind::NonInviteClient | Kind::NonInviteServer, TxState::Completed) => {
                !entry.tx.reliable
            }
            (Kind::InviteClient, TxState::Accepted) => true,
            _ => false,
        };
        if let (true, Some(until)) = (lingers, entry.tx.end_at) {
            let Some(entry) = self.remove_entry(id) else {
                return;
            };
            self.make_linger_room();
            let server = entry.tx.kind == Kind::NonInviteServer;
            let long = entry.tx.kind != Kind::NonInviteClient; // 64*T1 (J, M) or T4 (K)
            let replay = server.then(|| entry.tx.wire.into_boxed_slice());
            let queue = if long {
                &mut self.linger_j
            } else {
                &mut self.linger_k
            };
            queue.push_back((until, entry.key.clone()));
            self.lingering.insert(
                entry.key,
                Linger {
                    peer: entry.peer,
                    replay,
                    until,
                },
            );
            return;
        }
        if let Some(d) = entry.tx.deadline() {
            self.heap.push(Reverse((d, id)));
        }
    }
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same Request-URI, Call-ID,
/// From, CSeq number and top Via as the INVITE, To from the response, Route from the INVITE.
pub fn ack_for(invite: &Message, response: &Message) -> Message {
    let uri = invite.request_uri().unwrap_or("sip:invalid").to_owned();
    let mut ack = Message::request(Method::Ack, uri);
    if let Some(v) = invite.header_values("Via").next() {
        ack.push("Via", v);
    }
    ack.push("Max-Forwards", "70");
    for name in ["From", "Call-ID"] {
        if let Some(v) = invite.header(name) {
            ack.push(name, v);
        }
    }
    if let Some(to) = response.header("To") {
        ack.push("To", to);
    }
    let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
    ack.push("CSeq", format!("{seq} ACK"));
    for (n, v) in &invite.headers {
        if n == "Route" {
            ack.push("Route", v.clone());
        }
    }
    ack
}

/// A fresh RFC 3261 branch.
pub fn new_branch() -> String {
    format!("z9hG4bK{:016x}", fastrand::u64(..))
}

/// Returns the top Via's branch of a message (helper for tests and the shell).
pub fn branch_of(msg: &Message) -> Option<String> {
    msg.top_via()
        .as_ref()
        .and_then(Via::branch)
        .map(str::to_owned)
}

impl<P: Clone + PartialEq> TransactionLayer<P> {
    /// The transport reported `peer` unreachable (RFC 3261 §17.1.4, §18.4): every client
    /// transaction towards it that has no final response yet ends at once. Returns their keys;
    /// the shell tells their users.
    pub fn transport_failed(&mut self, peer: &P) -> Vec<TxKey> {
        let ids: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.peer == *peer
                    && matches!(e.tx.kind, Kind::InviteClient | Kind::NonInviteClient)
                    && matches!(
                        e.tx.state,
                        TxState::Calling | TxState::Trying | TxState::Proceeding
                    )
            })
            .map(|(id, _)| *id)
            .collect();
        let mut keys = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = self.remove_entry(id) {
                self.stats.transport_failures += 1;
                keys.push(e.key);
            }
        }
        keys
    }
}

#[cfg(test)]
mod tests;
