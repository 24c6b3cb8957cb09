//! The thin tokio shell around the sans-I/O layers: one UDP socket, one TCP listener, a TLS
//! listener when the endpoint has a certificate, their connections, and one task that owns the
//! [`TransactionLayer`], the keep-alive schedule and their timers.
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
//!
//! **Connections (TCP and TLS).** One connection layer (`tcp`) carries both: TLS is a stream
//! wrapper around the TCP stream, so the limits, timeouts and framing are the same. There is
//! one connection per transport and peer address, shared by every transaction and dialog to
//! it; a request to a peer whose connection closed opens a new one (reconnect). A client
//! transaction that times out over TCP or TLS closes its connection, so the next request
//! reconnects instead of writing into a dead one. A TLS connection verifies the server's
//! certificate against the name of the URI the request is routed by (the top `Route` with
//! `lr`, else the Request-URI; the `Via` host for a response), see [`crate::tls`].
//!
//! **Incoming TLS (decision, RFC 3261 §18, RFC 5626 §3).** Requests a PBX sends on a
//! connection we opened (in-dialog requests, incoming calls to a registered line) are taken
//! and answered on it, as RFC 5626 flows work. A TLS listener exists only when the endpoint has
//! a certificate (`tls.cert_file`/`key_file`): on the UDP port + 1 when the endpoint was given a
//! port (5061 for 5060), else on any free port; Via and Contact then name it, so a PBX can
//! connect back. Without a certificate no TLS server is possible; Via and Contact then name the
//! TCP port, and the PBX must send over the flow (Kamailio: `fix_nated_register` /
//! `add_contact_alias`, Asterisk: `rewrite_contact`), which every TLS phone deployment does.
//!
//! **NAT.** With a STUN server configured the endpoint asks it, from the SIP socket, for the
//! address it appears from ([`crate::stun`]), at start and every `stun_refresh_secs`; Via and
//! Contact then carry that address ([`Endpoint::local_addr_for`]). Registered flows get
//! keep-alives ([`Endpoint::watch_flow`], [`crate::nat`]).

mod client;
mod local;
mod nat;
mod stats;
mod task;
mod tcp;
mod tls;
mod udp;

pub use stats::{global_stats, EndpointStats, GlobalStats};
use stats::{MALFORMED, RETRANSMISSIONS, TIMEOUTS, TRANSACTIONS};
pub use tcp::TcpLimits;

use crate::message::{Message, ParseError};
use crate::nat::NatConfig;
use crate::resolve::{Target, Transport};
use crate::tls::{TlsConfig, TlsContext, TlsError};
use crate::transaction::{Limits, Timers, TransactionLayer, TxKey};
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

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
    /// TLS: `None` for an endpoint without TLS (requests to TLS targets then fail with a
    /// transport error).
    pub tls: Option<TlsConfig>,
    /// STUN and keep-alives.
    pub nat: NatConfig,
    /// How long [`Endpoint::start`] waits for the first STUN answer (default 2 s; after that
    /// the local address is used until the answer comes).
    pub stun_wait: Duration,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            timers: Timers::default(),
            limits: Limits::default(),
            tcp: TcpLimits::default(),
            user_agent: "tapir".into(),
            tls: None,
            nat: NatConfig::default(),
            stun_wait: Duration::from_secs(2),
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
    /// The TLS configuration cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The NAT configuration is invalid.
    #[error("{0}")]
    Nat(String),
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
    /// The TLS handshake failed: the server's certificate was refused, the server refused
    /// ours, or the endpoint has no TLS.
    #[error("TLS with {peer} failed: {reason}")]
    Tls {
        /// The destination.
        peer: SocketAddr,
        /// What went wrong, as a sentence (see [`crate::tls::describe_handshake_error`]).
        reason: String,
    },
}

impl TransportError {
    /// True when the peer is known not to be there (ICMP unreachable, connection refused).
    pub fn is_unreachable(&self) -> bool {
        match self {
            TransportError::Unreachable { .. } => true,
            TransportError::Connect { reason, .. } => reason.contains("refused"),
            TransportError::Tls { .. } => false,
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

/// Tells a registration that its flow needs a new REGISTER: the flow failed (no keep-alive
/// pong, a changed STUN mapping, its connection closed) or the endpoint's public address
/// changed. Made by [`Endpoint::watch_flow`]; dropping it stops the flow's keep-alives (once no
/// other registration watches the same flow).
#[derive(Debug)]
pub struct FlowWatch {
    rx: watch::Receiver<FlowNews>,
}

/// Why a watched flow asks for a new REGISTER.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowNews {
    /// Counts the events (0 = none yet).
    pub seq: u64,
    /// The latest reason.
    pub reason: String,
}

impl FlowWatch {
    /// Waits for the next event and returns its reason; `None` when the endpoint stopped.
    pub async fn changed(&mut self) -> Option<String> {
        self.rx.changed().await.ok()?;
        Some(self.rx.borrow_and_update().reason.clone())
    }
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
    /// An event of a client transaction started with [`Endpoint::request_routed`], under the
    /// caller's `id`; `None` once the transaction ended (nothing more comes for it).
    Client {
        /// The caller's id for the transaction.
        id: u64,
        /// The event, or `None` for the end.
        event: Option<ClientEvent>,
    },
}

/// A client transaction the endpoint task started: its key, the request as sent, and its
/// own channel unless its events go to a route.
struct Started {
    key: TxKey,
    request: Message,
    events: Option<mpsc::Receiver<ClientEvent>>,
}

enum Cmd {
    Request {
        msg: Message,
        target: Target,
        /// Deliver the events to this route under this id instead of a channel of their own.
        route: Option<(mpsc::Sender<Incoming>, u64)>,
        reply: oneshot::Sender<Result<Started, EndpointError>>,
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
    WatchFlow {
        target: Target,
        reply: oneshot::Sender<FlowWatch>,
    },
    Stats(oneshot::Sender<EndpointStats>),
}

/// Handle to a running endpoint. Cheap to clone; the task stops when the last handle is
/// dropped.
#[derive(Clone)]
pub struct Endpoint {
    cmd: mpsc::Sender<Cmd>,
    local: local::Local,
    user_agent: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("udp", &self.local.udp)
            .field("tcp", &self.local.tcp)
            .field("tls", &self.local.tls)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Peer {
    transport: Transport,
    addr: SocketAddr,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.transport, self.addr)
    }
}

/// What connection tasks (and look-ups) report to the endpoint task. `id` tells a connection
/// from a later one to the same peer.
enum Inbound {
    Stream {
        msg: Message,
        peer: Peer,
        id: u64,
    },
    /// A framed message that did not parse (or the bytes of an unframeable stream).
    Malformed {
        bytes: Vec<u8>,
        error: ParseError,
        peer: Peer,
    },
    /// A connection we opened is up (TLS: the handshake passed).
    Connected {
        peer: Peer,
        id: u64,
    },
    ConnectFailed {
        peer: Peer,
        id: u64,
        error: TransportError,
    },
    /// A connection ended; `unsent` is what it had not written (only for a connection we
    /// opened that had carried the peer's messages), to be sent on a new one.
    Closed {
        peer: Peer,
        id: u64,
        unsent: Vec<Vec<u8>>,
    },
    /// A keep-alive pong (CRLF) arrived.
    Pong {
        peer: Peer,
    },
    /// The STUN server's name was looked up.
    StunServer(Result<SocketAddr, String>),
}

impl Endpoint {
    /// Binds the sockets and starts the endpoint task on the current tokio runtime.
    ///
    /// # Errors
    /// [`EndpointError::Bind`] when a socket cannot be bound.
    pub async fn start(config: EndpointConfig) -> Result<Endpoint, EndpointError> {
        config.nat.check().map_err(EndpointError::Nat)?;
        let tls = config.tls.as_ref().map(TlsContext::new).transpose()?;
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
        let tls_listener = match tls.as_ref().and_then(TlsContext::acceptor) {
            Some(_) => Some(
                tls::bind_listener(udp_addr, config.bind.port())
                    .await
                    .map_err(|source| EndpointError::Bind {
                        addr: config.bind,
                        source,
                    })?,
            ),
            None => None,
        };
        let tls_addr = tls_listener.as_ref().and_then(|l| l.local_addr().ok());
        let (public_tx, public_rx) = watch::channel(None);
        let local = local::Local {
            udp: udp_addr,
            tcp: tcp_addr,
            tls: tls_addr,
            public: public_rx,
        };
        let (cmd_tx, cmd_rx) = mpsc::channel(4096);
        let (in_tx, in_rx) = mpsc::channel(4096);
        let task = task::Task::new(
            TransactionLayer::with_limits(config.timers, config.limits),
            udp,
            local.clone(),
            config.user_agent.clone(),
            config.tcp,
            in_tx,
            tls,
            nat::NatState::new(config.nat.clone(), public_tx),
        );
        crate::runtime::spawn(task.run(cmd_rx, in_rx, tcp, tls_listener));
        let endpoint = Endpoint {
            cmd: cmd_tx,
            local,
            user_agent: config.user_agent,
        };
        if config.nat.stun_server.is_some() {
            let mut public = endpoint.local.public.clone();
            let learned =
                tokio::time::timeout(config.stun_wait, public.wait_for(Option::is_some)).await;
            if learned.is_err() {
                tracing::warn!(
                    stun_server = config.nat.stun_server.as_deref().unwrap_or_default(),
                    "no STUN answer yet: Via and Contact carry the local address until it comes"
                );
            }
        }
        Ok(endpoint)
    }

    /// The local UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.local.udp
    }

    /// The local TCP address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.local.tcp
    }

    /// The local address of the TLS listener (only with a certificate).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.local.tls
    }

    /// The public address the STUN server reported for the SIP socket, if any.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        *self.local.public.borrow()
    }

    /// The User-Agent string.
    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }

    /// The address a peer at `target` can reach us on (for Via and Contact): the public
    /// address learned with STUN when there is one (UDP: its port too; TCP/TLS: our listening
    /// port), else the bound address, or, when bound to the wildcard, the local address the OS
    /// picks towards the target.
    pub fn local_addr_for(&self, target: &Target) -> SocketAddr {
        self.local.advertised(target)
    }

    /// Keeps the flow to `target` alive (the registrar a registration just used) and reports
    /// when it needs a new REGISTER. Keep-alives follow the endpoint's [`NatConfig`]: CRLF
    /// pings every `keepalive_secs` on TCP/TLS, CRLF or STUN every `udp_keepalive_secs` on UDP.
    /// Many registrations may watch one flow; it is pinged once.
    ///
    /// # Errors
    /// [`EndpointError::Stopped`].
    pub async fn watch_flow(&self, target: Target) -> Result<FlowWatch, EndpointError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::WatchFlow { target, reply })
            .await
            .map_err(|_| EndpointError::Stopped)?;
        rx.await.map_err(|_| EndpointError::Stopped)
    }

    /// Sends a request in a new client transaction.
    ///
    /// # Errors
    /// [`EndpointError`] when the endpoint stopped or the layer refused the request.
    pub async fn request(&self, msg: Message, target: Target) -> Result<ClientTx, EndpointError> {
        let started = self.begin(msg, target, None).await?;
        Ok(ClientTx {
            key: started.key,
            request: started.request,
            events: started.events.ok_or(EndpointError::Stopped)?,
        })
    }

    /// Sends a request in a new client transaction whose events go to `route` (the sink of
    /// the call's [`Self::route_call`]) as [`Incoming::Client`] under `id`, ending with an
    /// event of `None`. Returns the request as sent (with its Via).
    ///
    /// # Errors
    /// [`EndpointError`] when the endpoint stopped or the layer refused the request.
    pub async fn request_routed(
        &self,
        msg: Message,
        target: Target,
        route: mpsc::Sender<Incoming>,
        id: u64,
    ) -> Result<Message, EndpointError> {
        Ok(self.begin(msg, target, Some((route, id))).await?.request)
    }

    async fn begin(
        &self,
        msg: Message,
        target: Target,
        route: Option<(mpsc::Sender<Incoming>, u64)>,
    ) -> Result<Started, EndpointError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Request {
                msg,
                target,
                route,
                reply,
            })
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
