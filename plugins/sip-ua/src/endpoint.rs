//! The thin tokio shell around the sans-I/O layers: one UDP socket, one TCP listener and its
//! connections, and one task that owns the [`TransactionLayer`] and its timers.
//!
//! Users talk to the task through an [`Endpoint`] handle:
//! - [`Endpoint::request`] starts a client transaction and returns a [`ClientTx`] receiving its
//!   responses; the endpoint adds the Via (with `rport`, RFC 3581) itself;
//! - [`Endpoint::send_ack`] sends an ACK for a 2xx (no transaction, RFC 3261 §13.2.2.4);
//! - [`Endpoint::route_call`] sends incoming requests of one Call-ID to a channel, to be
//!   answered with [`Endpoint::respond`]. Requests nobody routed are answered by the endpoint:
//!   OPTIONS 200, in-dialog 481, INVITE 480, others 405 — except new INVITEs and CANCELs once
//!   [`Endpoint::route_new_calls`] named a receiver for them (incoming-call indication).
//!
//! Every channel is bounded and written with `try_send`, so a slow user can never stall the
//! task; a request it cannot deliver is answered 503.

use crate::header::Via;
use crate::message::{Message, Method, ParseError, MAX_MESSAGE};
use crate::resolve::{Target, Transport};
use crate::transaction::{new_branch, LayerEvent, LayerStats, Timers, TransactionLayer, TxKey};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

/// Most datagrams waiting for the socket.
const MAX_UDP_QUEUE: usize = 65_536;

/// Endpoint settings.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Local address for UDP and TCP (port 0 picks a free one, shared by both when possible).
    pub bind: SocketAddr,
    /// Transaction timers.
    pub timers: Timers,
    /// Most live transactions.
    pub max_transactions: usize,
    /// `User-Agent` / `Server` header value.
    pub user_agent: String,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            timers: Timers::default(),
            max_transactions: 1_000_000,
            user_agent: "tapir".into(),
        }
    }
}

/// Endpoint failures.
#[derive(Debug, Error)]
pub enum EndpointError {
    /// Binding a socket failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The endpoint task has stopped.
    #[error("SIP endpoint stopped")]
    Stopped,
    /// The transaction layer refused the request.
    #[error("transaction refused: {0}")]
    Transaction(#[from] crate::transaction::TxError),
}

/// What a client transaction reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A response (provisional, final, or a 2xx retransmission).
    Response(Message),
    /// Timer B/F: no final response in time.
    Timeout,
    /// The transport failed (TCP connect refused, send error).
    TransportError(String),
}

/// Receives the events of one client transaction.
#[derive(Debug)]
pub struct ClientTx {
    /// The transaction key (for logs).
    pub key: TxKey,
    /// The request as sent (with our Via).
    pub request: Message,
    /// Events.
    pub events: mpsc::Receiver<ClientEvent>,
}

/// An incoming request (or ACK, or stray response) routed by Call-ID.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A request to answer with [`Endpoint::respond`].
    Request {
        /// Its server transaction.
        key: TxKey,
        /// The request (top Via completed with `received`/`rport`).
        msg: Message,
    },
    /// An ACK to a 2xx.
    Ack(Message),
    /// A response no transaction wanted (a late 2xx retransmission: ACK it again).
    StrayResponse(Message),
}

enum Cmd {
    Request {
        msg: Message,
        target: Target,
        reply: oneshot::Sender<Result<ClientTx, EndpointError>>,
    },
    Stateless {
        msg: Message,
        target: Target,
    },
    Respond {
        key: TxKey,
        msg: Message,
    },
    Route {
        call_id: String,
        sink: mpsc::Sender<Incoming>,
    },
    Unroute {
        call_id: String,
    },
    RouteNew {
        sink: Option<mpsc::Sender<Incoming>>,
    },
    Stats(oneshot::Sender<EndpointStats>),
}

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

static RETRANSMISSIONS: AtomicU64 = AtomicU64::new(0);
static TRANSACTIONS: AtomicU64 = AtomicU64::new(0);
static TIMEOUTS: AtomicU64 = AtomicU64::new(0);
static MALFORMED: AtomicU64 = AtomicU64::new(0);

/// Reads the process-wide counters.
pub fn global_stats() -> GlobalStats {
    GlobalStats {
        retransmissions: RETRANSMISSIONS.load(Ordering::Relaxed),
        transactions: TRANSACTIONS.load(Ordering::Relaxed),
        timeouts: TIMEOUTS.load(Ordering::Relaxed),
        malformed: MALFORMED.load(Ordering::Relaxed),
    }
}

/// Handle to a running endpoint. Cheap to clone; the task stops when the last handle is
/// dropped.
#[derive(Clone)]
pub struct Endpoint {
    cmd: mpsc::Sender<Cmd>,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    user_agent: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("udp", &self.udp_addr)
            .field("tcp", &self.tcp_addr)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Peer {
    transport: Transport,
    addr: SocketAddr,
}

enum Inbound {
    Stream {
        msg: Message,
        peer: SocketAddr,
    },
    Connected {
        peer: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
    },
    ConnectFailed {
        peer: SocketAddr,
        reason: String,
    },
    Closed {
        peer: SocketAddr,
    },
}

impl Endpoint {
    /// Binds the sockets and starts the endpoint task on the current tokio runtime.
    ///
    /// # Errors
    /// [`EndpointError::Bind`] when a socket cannot be bound.
    pub async fn start(config: EndpointConfig) -> Result<Endpoint, EndpointError> {
        let udp = bind_udp(config.bind).map_err(|source| EndpointError::Bind {
            addr: config.bind,
            source,
        })?;
        let udp_addr = udp.local_addr().map_err(|source| EndpointError::Bind {
            addr: config.bind,
            source,
        })?;
        // TCP on the same port as UDP when free, else any port.
        let tcp = match TcpListener::bind(udp_addr).await {
            Ok(l) => l,
            Err(_) => TcpListener::bind(SocketAddr::new(udp_addr.ip(), 0))
                .await
                .map_err(|source| EndpointError::Bind {
                    addr: config.bind,
                    source,
                })?,
        };
        let tcp_addr = tcp.local_addr().map_err(|source| EndpointError::Bind {
            addr: config.bind,
            source,
        })?;
        let (cmd_tx, cmd_rx) = mpsc::channel(4096);
        let (in_tx, in_rx) = mpsc::channel(4096);
        let task = Task {
            layer: TransactionLayer::new(config.timers, config.max_transactions),
            udp,
            udp_addr,
            tcp_addr,
            user_agent: config.user_agent.clone(),
            conns: HashMap::new(),
            clients: HashMap::new(),
            routes: HashMap::new(),
            new_calls: None,
            inbound_tx: in_tx,
            malformed: 0,
            udp_out: std::collections::VecDeque::new(),
            next_sweep: Instant::now(),
            published: LayerStats::default(),
            published_malformed: 0,
        };
        tokio::spawn(task.run(cmd_rx, in_rx, tcp));
        Ok(Endpoint {
            cmd: cmd_tx,
            udp_addr,
            tcp_addr,
            user_agent: config.user_agent,
        })
    }

    /// The local UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The local TCP address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The User-Agent string.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// The address a peer at `target` can reach us on (for Via and Contact): the bound address,
    /// or, when bound to the wildcard, the local address the OS picks towards the target.
    pub fn local_addr_for(&self, target: &Target) -> SocketAddr {
        let bound = match target.transport {
            Transport::Udp => self.udp_addr,
            Transport::Tcp => self.tcp_addr,
        };
        if !bound.ip().is_unspecified() {
            return bound;
        }
        let probe_bind: SocketAddr = if target.addr.is_ipv6() {
            SocketAddr::from(([0u16; 8], 0))
        } else {
            SocketAddr::from(([0, 0, 0, 0], 0))
        };
        let ip = std::net::UdpSocket::bind(probe_bind)
            .and_then(|s| s.connect(target.addr).and_then(|()| s.local_addr()))
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        SocketAddr::new(ip, bound.port())
    }

    /// Sends a request in a new client transaction.
    ///
    /// # Errors
    /// [`EndpointError`] when the endpoint stopped or the layer refused the request.
    pub async fn request(&self, msg: Message, target: Target) -> Result<ClientTx, EndpointError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Request { msg, target, reply })
            .await
            .map_err(|_| EndpointError::Stopped)?;
        rx.await.map_err(|_| EndpointError::Stopped)?
    }

    /// Sends an ACK to a 2xx (or any message) without a transaction.
    ///
    /// # Errors
    /// [`EndpointError::Stopped`].
    pub async fn send_ack(&self, msg: Message, target: Target) -> Result<(), EndpointError> {
        self.cmd
            .send(Cmd::Stateless { msg, target })
            .await
            .map_err(|_| EndpointError::Stopped)
    }

    /// Answers a routed request.
    ///
    /// # Errors
    /// [`EndpointError::Stopped`].
    pub async fn respond(&self, key: TxKey, msg: Message) -> Result<(), EndpointError> {
        self.cmd
            .send(Cmd::Respond { key, msg })
            .await
            .map_err(|_| EndpointError::Stopped)
    }

    /// Routes incoming requests with this Call-ID to `sink` until [`Self::unroute_call`].
    ///
    /// # Errors
    /// [`EndpointError::Stopped`].
    pub async fn route_call(
        &self,
        call_id: &str,
        sink: mpsc::Sender<Incoming>,
    ) -> Result<(), EndpointError> {
        self.cmd
            .send(Cmd::Route {
                call_id: call_id.to_owned(),
                sink,
            })
            .await
            .map_err(|_| EndpointError::Stopped)
    }

    /// Stops routing a Call-ID.
    ///
    /// # Errors
    /// [`EndpointError::Stopped`].
    pub async fn unroute_call(&self, call_id: &str) -> Result<(), EndpointError> {
        self.cmd
            .send(Cmd::Unroute {
                call_id: call_id.to_owned(),
            })
            .await
            .map_err(|_| EndpointError::Stopped)
    }

    /// Sends new incoming calls to `sink`: out-of-dialog INVITEs and CANCELs whose Call-ID no
    /// one routed (instead of the endpoint's own 480 / 481). `None` restores those answers.
    /// The receiver answers them with [`Self::respond`]; the INVITE's server transaction sent
    /// 100 Trying already and absorbs retransmissions and the ACK of a non-2xx final answer.
    ///
    /// # Errors
    /// [`EndpointError::Stopped`].
    pub async fn route_new_calls(
        &self,
        sink: Option<mpsc::Sender<Incoming>>,
    ) -> Result<(), EndpointError> {
        self.cmd
            .send(Cmd::RouteNew { sink })
            .await
            .map_err(|_| EndpointError::Stopped)
    }

    /// Counters.
    ///
    /// # Errors
    /// [`EndpointError::Stopped`].
    pub async fn stats(&self) -> Result<EndpointStats, EndpointError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Stats(tx))
            .await
            .map_err(|_| EndpointError::Stopped)?;
        rx.await.map_err(|_| EndpointError::Stopped)
    }
}

struct Task {
    layer: TransactionLayer<Peer>,
    udp: UdpSocket,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    user_agent: String,
    conns: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    clients: HashMap<TxKey, (mpsc::Sender<ClientEvent>, Peer)>,
    routes: HashMap<String, mpsc::Sender<Incoming>>,
    new_calls: Option<mpsc::Sender<Incoming>>,
    inbound_tx: mpsc::Sender<Inbound>,
    malformed: u64,
    udp_out: std::collections::VecDeque<(SocketAddr, Vec<u8>)>,
    next_sweep: Instant,
    published: LayerStats,
    published_malformed: u64,
}

impl Task {
    async fn run(
        mut self,
        mut cmd_rx: mpsc::Receiver<Cmd>,
        mut in_rx: mpsc::Receiver<Inbound>,
        tcp: TcpListener,
    ) {
        let mut buf = vec![0u8; MAX_MESSAGE + 1];
        loop {
            let deadline = self.layer.next_deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = cmd_rx.recv() => match cmd {
                    Some(cmd) => self.on_cmd(cmd),
                    None => break,
                },
                got = self.udp.recv_from(&mut buf) => {
                    if let Ok((n, from)) = got {
                        let bytes = buf.get(..n).unwrap_or(&[]);
                        self.on_datagram(bytes, from);
                    }
                }
                inbound = in_rx.recv() => {
                    if let Some(i) = inbound {
                        self.on_inbound(i);
                    }
                }
                accepted = tcp.accept() => {
                    if let Ok((stream, peer)) = accepted {
                        let (tx, rx) = mpsc::channel(256);
                        self.conns.insert(peer, tx);
                        tokio::spawn(connection(stream, peer, rx, self.inbound_tx.clone()));
                    }
                }
                () = sleep => self.layer.on_timer(Instant::now()),
            }
            self.flush().await;
        }
    }

    fn on_cmd(&mut self, cmd: Cmd) {
        let now = Instant::now();
        match cmd {
            Cmd::Request {
                mut msg,
                target,
                reply,
            } => {
                self.add_via(&mut msg, &target);
                let request = msg.clone();
                let peer = Peer {
                    transport: target.transport,
                    addr: target.addr,
                };
                let result = self
                    .layer
                    .send_request(msg, peer, target.transport.reliable(), now)
                    .map(|key| {
                        let (tx, rx) = mpsc::channel(8);
                        self.clients.insert(key.clone(), (tx, peer));
                        ClientTx {
                            key,
                            request,
                            events: rx,
                        }
                    })
                    .map_err(EndpointError::from);
                let _ = reply.send(result);
            }
            Cmd::Stateless { mut msg, target } => {
                self.add_via(&mut msg, &target);
                let peer = Peer {
                    transport: target.transport,
                    addr: target.addr,
                };
                self.transmit(peer, msg.to_bytes());
            }
            Cmd::Respond { key, mut msg } => {
                if msg.header("Server").is_none() {
                    msg.push("Server", self.user_agent.clone());
                }
                let _ = self.layer.respond(&key, msg, now);
            }
            Cmd::Route { call_id, sink } => {
                self.routes.insert(call_id, sink);
            }
            Cmd::Unroute { call_id } => {
                self.routes.remove(&call_id);
            }
            Cmd::RouteNew { sink } => {
                self.new_calls = sink;
            }
            Cmd::Stats(reply) => {
                let _ = reply.send(EndpointStats {
                    layer: self.layer.stats(),
                    transactions: self.layer.len(),
                    routes: self.routes.len(),
                    malformed: self.malformed,
                });
            }
        }
    }

    /// Adds our Via unless the message has one already (a CANCEL reuses its INVITE's Via).
    fn add_via(&self, msg: &mut Message, target: &Target) {
        if msg.header("Via").is_some() {
            return;
        }
        let local = match target.transport {
            Transport::Udp => self.udp_addr,
            Transport::Tcp => self.tcp_addr,
        };
        let ip = if local.ip().is_unspecified() {
            let probe: SocketAddr = if target.addr.is_ipv6() {
                SocketAddr::from(([0u16; 8], 0))
            } else {
                SocketAddr::from(([0, 0, 0, 0], 0))
            };
            std::net::UdpSocket::bind(probe)
                .and_then(|s| s.connect(target.addr).and_then(|()| s.local_addr()))
                .map(|a| a.ip())
                .unwrap_or(local.ip())
        } else {
            local.ip()
        };
        let host = match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        msg.push_front(
            "Via",
            format!(
                "SIP/2.0/{} {host}:{};branch={};rport",
                target.transport,
                local.port(),
                new_branch()
            ),
        );
        if msg.header("User-Agent").is_none() && msg.is_request() {
            msg.push("User-Agent", self.user_agent.clone());
        }
    }

    fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        // Keep-alive CRLFs (RFC 5626) and STUN are not SIP.
        if bytes.iter().all(|b| *b == b'\r' || *b == b'\n') || bytes.first().is_some_and(|b| *b < 4)
        {
            return;
        }
        match Message::parse(bytes) {
            Ok(msg) => self.on_message(
                msg,
                Peer {
                    transport: Transport::Udp,
                    addr: from,
                },
            ),
            Err(e) => {
                self.malformed += 1;
                tracing::debug!(%from, error = %e, "dropped malformed SIP datagram");
            }
        }
    }

    fn on_inbound(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Stream { msg, peer } => {
                self.on_message(
                    msg,
                    Peer {
                        transport: Transport::Tcp,
                        addr: peer,
                    },
                );
            }
            Inbound::Connected { peer, writer } => {
                self.conns.insert(peer, writer);
            }
            Inbound::ConnectFailed { peer, reason } => {
                self.conns.remove(&peer);
                for (tx, p) in self.clients.values() {
                    if p.addr == peer && p.transport == Transport::Tcp {
                        let _ = tx.try_send(ClientEvent::TransportError(reason.clone()));
                    }
                }
            }
            Inbound::Closed { peer } => {
                self.conns.remove(&peer);
            }
        }
    }

    fn on_message(&mut self, mut msg: Message, peer: Peer) {
        if msg.is_request() {
            fix_received(&mut msg, peer.addr);
        }
        self.layer
            .on_message(msg, peer, peer.transport.reliable(), Instant::now());
    }

    /// Moves layer events out to sockets and users.
    async fn flush(&mut self) {
        let now = Instant::now();
        let mut budget = 100_000;
        while let Some(ev) = self.layer.pop_event() {
            budget -= 1;
            if budget == 0 {
                break;
            }
            match ev {
                LayerEvent::Transmit { peer, bytes, .. } => self.transmit(peer, bytes),
                LayerEvent::Response { key, msg } => {
                    let final_ = msg.code().is_some_and(|c| c >= 200);
                    let invite = key.method == Method::Invite;
                    if let Some((tx, _)) = self.clients.get(&key) {
                        let _ = tx.try_send(ClientEvent::Response(msg));
                    }
                    // Non-INVITE and failed INVITE: nothing more for the user.
                    if final_ && !invite {
                        self.clients.remove(&key);
                    }
                }
                LayerEvent::Timeout { key } => {
                    if let Some((tx, _)) = self.clients.remove(&key) {
                        let _ = tx.try_send(ClientEvent::Timeout);
                    }
                }
                LayerEvent::Request { key, msg, peer: _ } => self.dispatch_request(key, msg, now),
                LayerEvent::Ack { msg, .. } => {
                    if let Some(sink) = msg.call_id().and_then(|c| self.routes.get(c)) {
                        let _ = sink.try_send(Incoming::Ack(msg));
                    }
                }
                LayerEvent::StrayResponse { msg } => {
                    if let Some(sink) = msg.call_id().and_then(|c| self.routes.get(c)) {
                        let _ = sink.try_send(Incoming::StrayResponse(msg));
                    }
                }
            }
        }
        self.publish_stats();
        // Once a second: forget client entries whose user stopped listening or whose
        // transaction the layer already dropped (their channel buffers are the bulk of it).
        if now >= self.next_sweep {
            self.next_sweep = now + Duration::from_secs(1);
            let layer = &self.layer;
            self.clients
                .retain(|k, (tx, _)| !tx.is_closed() && layer.state(k).is_some());
        }
        // Respond-ins from dispatch may have queued more transmissions.
        while let Some(LayerEvent::Transmit { peer, bytes, .. }) = self.layer.pop_event() {
            self.transmit(peer, bytes);
        }
        self.send_queued().await;
    }

    /// Sends the queued datagrams in order, each waiting at most a second for buffer space.
    async fn send_queued(&mut self) {
        while let Some((addr, bytes)) = self.udp_out.pop_front() {
            let sent = match self.udp.try_send_to(&bytes, addr) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => match tokio::time::timeout(
                    Duration::from_secs(1),
                    self.udp.send_to(&bytes, addr),
                )
                .await
                {
                    Ok(r) => r.map(|_| ()),
                    Err(_) => Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "socket not writable",
                    )),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                tracing::debug!(to = %addr, error = %e, "UDP send failed");
            }
        }
    }

    fn publish_stats(&mut self) {
        let now = self.layer.stats();
        let last = self.published;
        metrics::counter!("tapir_sip_retransmissions_total")
            .increment(now.retransmissions.saturating_sub(last.retransmissions));
        metrics::counter!("tapir_sip_transaction_timeouts_total")
            .increment(now.timeouts.saturating_sub(last.timeouts));
        RETRANSMISSIONS.fetch_add(
            now.retransmissions.saturating_sub(last.retransmissions),
            Ordering::Relaxed,
        );
        TRANSACTIONS.fetch_add(now.created.saturating_sub(last.created), Ordering::Relaxed);
        TIMEOUTS.fetch_add(
            now.timeouts.saturating_sub(last.timeouts),
            Ordering::Relaxed,
        );
        MALFORMED.fetch_add(
            self.malformed.saturating_sub(self.published_malformed),
            Ordering::Relaxed,
        );
        self.published = now;
        self.published_malformed = self.malformed;
    }

    fn dispatch_request(&mut self, key: TxKey, msg: Message, now: Instant) {
        let routed = msg.call_id().and_then(|c| self.routes.get(c)).cloned();
        if let Some(sink) = routed {
            match sink.try_send(Incoming::Request {
                key: key.clone(),
                msg: msg.clone(),
            }) {
                Ok(()) => return,
                Err(_) => {
                    let busy = Message::response_to(&msg, 503, "Service Unavailable", None);
                    let _ = self.layer.respond(&key, busy, now);
                    return;
                }
            }
        }
        let has_to_tag = msg.to().is_some_and(|t| t.tag().is_some());
        let method = msg.method().unwrap_or(Method::Other(String::new()));
        if !has_to_tag && matches!(method, Method::Invite | Method::Cancel) {
            if let Some(sink) = &self.new_calls {
                let sent = sink.try_send(Incoming::Request {
                    key: key.clone(),
                    msg: msg.clone(),
                });
                if sent.is_ok() {
                    return;
                }
                let busy = Message::response_to(&msg, 503, "Service Unavailable", None);
                let _ = self.layer.respond(&key, busy, now);
                return;
            }
        }
        let tag = crate::dialog::new_tag();
        let mut resp = match method {
            Method::Options => {
                let mut r = Message::response_to(&msg, 200, "OK", Some(&tag));
                r.push("Allow", crate::ALLOW);
                r
            }
            _ if has_to_tag => {
                Message::response_to(&msg, 481, "Call/Transaction Does Not Exist", Some(&tag))
            }
            Method::Cancel => {
                Message::response_to(&msg, 481, "Call/Transaction Does Not Exist", Some(&tag))
            }
            Method::Invite => {
                Message::response_to(&msg, 480, "Temporarily Unavailable", Some(&tag))
            }
            _ => {
                let mut r = Message::response_to(&msg, 405, "Method Not Allowed", Some(&tag));
                r.push("Allow", crate::ALLOW);
                r
            }
        };
        resp.push("Server", self.user_agent.clone());
        let _ = self.layer.respond(&key, resp, now);
    }

    fn transmit(&mut self, peer: Peer, bytes: Vec<u8>) {
        match peer.transport {
            Transport::Udp => {
                // Sent in order by `send_queued`, waiting for the socket when its buffer is full
                // (a dropped ACK would overtake nothing but still cost a retransmission).
                if self.udp_out.len() < MAX_UDP_QUEUE {
                    self.udp_out.push_back((peer.addr, bytes));
                } else {
                    tracing::warn!(to = %peer.addr, "UDP send queue full, datagram dropped");
                }
            }
            Transport::Tcp => {
                let stale = match self.conns.get(&peer.addr) {
                    Some(w) => match w.try_send(bytes) {
                        Ok(()) => false,
                        Err(mpsc::error::TrySendError::Full(_)) => false,
                        Err(mpsc::error::TrySendError::Closed(b)) => {
                            self.conns.remove(&peer.addr);
                            self.open(peer.addr, b);
                            return;
                        }
                    },
                    None => {
                        self.open(peer.addr, bytes);
                        return;
                    }
                };
                let _ = stale;
            }
        }
    }

    fn open(&mut self, addr: SocketAddr, first: Vec<u8>) {
        let (tx, rx) = mpsc::channel(256);
        let _ = tx.try_send(first);
        self.conns.insert(addr, tx.clone());
        let inbound = self.inbound_tx.clone();
        let local_ip = self.tcp_addr.ip();
        tokio::spawn(async move {
            let socket = match if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()
            } else {
                tokio::net::TcpSocket::new_v6()
            } {
                Ok(s) => s,
                Err(e) => {
                    let _ = inbound
                        .send(Inbound::ConnectFailed {
                            peer: addr,
                            reason: e.to_string(),
                        })
                        .await;
                    return;
                }
            };
            if !local_ip.is_unspecified() && local_ip.is_ipv4() == addr.is_ipv4() {
                let _ = socket.bind(SocketAddr::new(local_ip, 0));
            }
            match tokio::time::timeout(Duration::from_secs(10), socket.connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = inbound
                        .send(Inbound::Connected {
                            peer: addr,
                            writer: tx,
                        })
                        .await;
                    connection(stream, addr, rx, inbound).await;
                }
                Ok(Err(e)) => {
                    let _ = inbound
                        .send(Inbound::ConnectFailed {
                            peer: addr,
                            reason: e.to_string(),
                        })
                        .await;
                }
                Err(_) => {
                    let _ = inbound
                        .send(Inbound::ConnectFailed {
                            peer: addr,
                            reason: "TCP connect timed out".into(),
                        })
                        .await;
                }
            }
        });
    }
}

/// Binds the UDP socket with large buffers (bursts of hundreds of calls must not overflow
/// the kernel's default ~200 KiB and cost retransmissions).
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Requested UDP socket buffer size (the kernel caps it at `net.core.rmem_max`).
const UDP_BUFFER: usize = 4 * 1024 * 1024;

/// Adds `received` and fills `rport` in the top Via of a request (RFC 3261 §18.2.1, RFC 3581).
fn fix_received(msg: &mut Message, source: SocketAddr) {
    let Some(idx) = msg.headers.iter().position(|(n, _)| n == "Via") else {
        return;
    };
    let value = msg.headers[idx].1.clone();
    let parts = crate::message::split_commas(&value);
    let Some(first) = parts.first() else {
        return;
    };
    let Some(mut via) = Via::parse(first) else {
        return;
    };
    let src_ip = source.ip().to_string();
    let bare_host = via
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let rport = via.params.has("rport");
    if bare_host != src_ip || rport {
        via.params.set("received", Some(&src_ip));
    }
    if rport {
        via.params.set("rport", Some(&source.port().to_string()));
    }
    let mut rebuilt = via.to_string();
    for p in parts.iter().skip(1) {
        rebuilt.push_str(", ");
        rebuilt.push_str(p);
    }
    msg.headers[idx].1 = rebuilt;
}

/// Reads and writes one TCP connection until it closes or idles for 10 minutes.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    mut rx: mpsc::Receiver<Vec<u8>>,
    inbound: mpsc::Sender<Inbound>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16384];
    let idle = Duration::from_secs(600);
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            read = tokio::time::timeout(idle, reader.read(&mut chunk)) => {
                let n = match read {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                    Ok(Ok(n)) => n,
                };
                buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                // Frame as many messages as the buffer holds (bounded by its size).
                loop {
                    match Message::parse_stream(&buf) {
                        Ok((msg, used)) => {
                            buf.drain(..used.min(buf.len()));
                            if inbound.send(Inbound::Stream { msg, peer }).await.is_err() {
                                return;
                            }
                        }
                        Err(ParseError::Incomplete) => break,
                        Err(_) => {
                            // Unframeable stream: nothing after this point can be trusted.
                            let _ = inbound.send(Inbound::Closed { peer }).await;
                            return;
                        }
                    }
                }
                if buf.len() > MAX_MESSAGE * 2 {
                    break;
                }
            }
        }
    }
    let _ = inbound.send(Inbound::Closed { peer }).await;
}
