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
//!
//! Before anyone sees a request, the endpoint gives the answers RFC 3261 §8.2 asks of every
//! UAS ([`crate::uas`]: 501, 416, 420, 415), and answers requests that do not parse (400, 505)
//! on the transport they came on. Hostile traffic is bounded: TCP connections by number and by
//! header, body and idle timeouts ([`TcpLimits`]), the accept loop backs off when descriptors
//! run out, and live server transactions by [`Limits`] (503 with `Retry-After` beyond).
//! On Linux an ICMP unreachable for a UDP request ends its transaction at once with
//! [`TransportError::Unreachable`] (RFC 3261 §18.4).

mod task;
mod tcp;
mod udp;

pub use tcp::TcpLimits;

use crate::message::{Message, ParseError};
use crate::resolve::{Target, Transport};
use crate::transaction::{LayerStats, Limits, Timers, TransactionLayer, TxKey};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// Endpoint settings.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Local address for UDP and TCP (port 0 picks a free one, shared by both when possible).
    pub bind: SocketAddr,
    /// Transaction timers.
    pub timers: Timers,
    /// Bounds on live and completed transactions.
    pub limits: Limits,
    /// Bounds on TCP connections.
    pub tcp: TcpLimits,
    /// `User-Agent` / `Server` header value.
    pub user_agent: String,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            timers: Timers::default(),
            limits: Limits::default(),
            tcp: TcpLimits::default(),
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
    /// The target's transport is one this endpoint does not offer (TLS).
    #[error("cannot send to {0}: this endpoint has no {1} transport")]
    Unsupported(SocketAddr, Transport),
}

/// This endpoint has no TLS: a TLS target is refused before anything is sent.
fn refuse_tls(target: Target) -> Result<(), EndpointError> {
    match target.transport {
        Transport::Tls => Err(EndpointError::Unsupported(target.addr, target.transport)),
        Transport::Udp | Transport::Tcp => Ok(()),
    }
}

/// What a client transaction reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A response (provisional, final, or a 2xx retransmission).
    Response(Message),
    /// Timer B/F: no final response in time.
    Timeout,
    /// The transport failed: ICMP unreachable, TCP connect refused or timed out.
    TransportError(TransportError),
}

/// Why the transport could not carry a request (RFC 3261 §18.4).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransportError {
    /// An ICMP error said nothing receives at the destination (port, host or network
    /// unreachable): the peer is down or not there.
    #[error("{peer} is unreachable ({reason})")]
    Unreachable {
        /// The destination of the request.
        peer: SocketAddr,
        /// What the ICMP error said.
        reason: String,
    },
    /// A TCP connection could not be opened.
    #[error("cannot connect to {peer}: {reason}")]
    Connect {
        /// The destination.
        peer: SocketAddr,
        /// Why.
        reason: String,
    },
}

impl TransportError {
    /// True when the peer is known not to be there (ICMP unreachable, connection refused).
    pub fn is_unreachable(&self) -> bool {
        match self {
            TransportError::Unreachable { .. } => true,
            TransportError::Connect { reason, .. } => reason.contains("refused"),
        }
    }
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
    /// Open TCP connections (accepted and our own).
    pub connections: usize,
    /// Accepted TCP connections closed to make room for new ones.
    pub evicted: u64,
    /// Times the accept loop paused because descriptors ran out.
    pub accept_pauses: u64,
    /// ICMP unreachable errors read from the UDP socket.
    pub icmp_errors: u64,
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

/// What connection tasks report to the endpoint task.
enum Inbound {
    Stream {
        msg: Message,
        peer: SocketAddr,
    },
    /// A framed message that did not parse (or the bytes of an unframeable stream).
    Malformed {
        bytes: Vec<u8>,
        error: ParseError,
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
        let udp = udp::bind_udp(config.bind).map_err(|source| EndpointError::Bind {
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
        let task = task::Task::new(
            TransactionLayer::with_limits(config.timers, config.limits),
            udp,
            udp_addr,
            tcp_addr,
            config.user_agent.clone(),
            config.tcp,
            in_tx,
        );
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
            Transport::Tcp | Transport::Tls => self.tcp_addr,
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
        refuse_tls(target)?;
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
        refuse_tls(target)?;
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
