//! The endpoint task: owns the transaction layer, the sockets and the routes, and moves
//! messages between them, the connection tasks and the users.

use super::client::{ClientSink, Ended};
use super::local::Local;
use super::nat::NatState;
use super::tcp::TcpLimits;
use super::{
    ClientEvent, Cmd, EndpointError, EndpointStats, Inbound, Incoming, Peer, Started,
    TransportError, MALFORMED, RETRANSMISSIONS, TIMEOUTS, TRANSACTIONS,
};
use crate::header::Via;
use crate::message::{Message, Method, MAX_MESSAGE};
use crate::resolve::{Target, Transport};
use crate::tls::TlsContext;
use crate::transaction::{new_branch, LayerEvent, LayerStats, TransactionLayer, TxKey};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

/// One TCP or TLS connection as the endpoint task sees it.
pub(super) struct Conn {
    /// Where to put bytes for it (dropping this closes the connection).
    pub writer: mpsc::Sender<Vec<u8>>,
    /// Tells it from a later connection to the same peer.
    pub id: u64,
    /// Accepted from a peer (counted against the cap), not opened by us.
    pub accepted: bool,
    /// A complete message has arrived on it.
    pub proven: bool,
    /// Accept time, then the time of its latest message.
    pub last: Instant,
    /// Its task: dropping the `Conn` ends it even in the middle of a TLS handshake (when the
    /// writer is not read yet), so an evicted or closed connection goes at once.
    pub task: Option<tokio::task::AbortHandle>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub(super) struct Task {
    pub(super) layer: TransactionLayer<Peer>,
    pub(super) udp: UdpSocket,
    pub(super) local: Local,
    pub(super) user_agent: String,
    pub(super) tcp_limits: TcpLimits,
    pub(super) tls: Option<TlsContext>,
    pub(super) nat: NatState,
    pub(super) conns: HashMap<Peer, Conn>,
    pub(super) clients: HashMap<TxKey, (ClientSink, Peer)>,
    /// Ends of routed transactions whose route was full, offered again on each flush.
    pub(super) ends: Vec<Ended>,
    pub(super) routes: HashMap<String, mpsc::Sender<Incoming>>,
    pub(super) new_calls: Option<mpsc::Sender<Incoming>>,
    pub(super) inbound_tx: mpsc::Sender<Inbound>,
    pub(super) malformed: u64,
    pub(super) udp_out: VecDeque<(SocketAddr, Vec<u8>)>,
    pub(super) next_sweep: Instant,
    pub(super) published: LayerStats,
    pub(super) published_malformed: u64,
    /// Accepting paused until then (descriptors ran out).
    pub(super) accept_pause: Option<Instant>,
    pub(super) accept_backoff: Duration,
    pub(super) evicted: u64,
    pub(super) accept_pauses: u64,
    pub(super) icmp_errors: u64,
    pub(super) opened: u64,
}

impl Task {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        layer: TransactionLayer<Peer>,
        udp: UdpSocket,
        local: Local,
        user_agent: String,
        tcp_limits: TcpLimits,
        inbound_tx: mpsc::Sender<Inbound>,
        tls: Option<TlsContext>,
        nat: NatState,
    ) -> Task {
        Task {
            layer,
            udp,
            local,
            user_agent,
            tcp_limits,
            tls,
            nat,
            conns: HashMap::new(),
            clients: HashMap::new(),
            ends: Vec::new(),
            routes: HashMap::new(),
            new_calls: None,
            inbound_tx,
            malformed: 0,
            udp_out: VecDeque::new(),
            next_sweep: Instant::now(),
            published: LayerStats::default(),
            published_malformed: 0,
            accept_pause: None,
            accept_backoff: Duration::ZERO,
            evicted: 0,
            accept_pauses: 0,
            icmp_errors: 0,
            opened: 0,
        }
    }

    pub(super) async fn run(
        mut self,
        mut cmd_rx: mpsc::Receiver<Cmd>,
        mut in_rx: mpsc::Receiver<Inbound>,
        tcp: TcpListener,
        tls: Option<TcpListener>,
    ) {
        let mut buf = vec![0u8; MAX_MESSAGE + 1];
        self.start_nat();
        loop {
            let deadline = self.layer.next_deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let nat_deadline = self.nat_deadline();
            let nat_sleep = async {
                match nat_deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let tls_accept = async {
                match &tls {
                    Some(l) => l.accept().await,
                    None => std::future::pending().await,
                }
            };
            let pause = self.accept_pause;
            tokio::select! {
                cmd = cmd_rx.recv() => match cmd {
                    Some(cmd) => self.on_cmd(cmd),
                    None => break,
                },
                got = self.udp.recv_from(&mut buf) => match got {
                    Ok((n, from)) => {
                        let bytes = buf.get(..n).unwrap_or(&[]);
                        self.on_datagram(bytes, from);
                    }
                    // With IP_RECVERR an ICMP error surfaces here first.
                    Err(_) => self.take_icmp_errors(),
                },
                inbound = in_rx.recv() => {
                    if let Some(i) = inbound {
                        self.on_inbound(i);
                    }
                }
                accepted = tcp.accept(), if pause.is_none() => self.on_accept(accepted, Transport::Tcp),
                accepted = tls_accept, if pause.is_none() => self.on_accept(accepted, Transport::Tls),
                () = async {
                    match pause {
                        Some(p) => tokio::time::sleep_until(p.into()).await,
                        None => std::future::pending().await,
                    }
                } => self.accept_pause = None,
                () = sleep => self.layer.on_timer(Instant::now()),
                () = nat_sleep => self.on_nat_timer(Instant::now()),
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
                route,
                reply,
            } => {
                self.add_via(&mut msg, &target);
                let peer = Peer {
                    transport: target.transport,
                    addr: target.addr,
                };
                let result = self
                    .layer
                    .send_request(&msg, peer, target.transport.reliable(), now)
                    .map(|key| {
                        let (sink, events) = match route {
                            Some((sink, id)) => (ClientSink::Routed { sink, id }, None),
                            None => {
                                let (tx, rx) = mpsc::channel(8);
                                (ClientSink::Own(tx), Some(rx))
                            }
                        };
                        self.clients.insert(key.clone(), (sink, peer));
                        Started {
                            key,
                            request: msg,
                            events,
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
            Cmd::WatchFlow { target, reply } => {
                let peer = Peer {
                    transport: target.transport,
                    addr: target.addr,
                };
                let _ = reply.send(self.watch_flow(peer, now));
            }
            Cmd::Stats(reply) => {
                let _ = reply.send(EndpointStats {
                    layer: self.layer.stats(),
                    transactions: self.layer.len(),
                    routes: self.routes.len(),
                    malformed: self.malformed,
                    connections: self.conns.len(),
                    evicted: self.evicted,
                    accept_pauses: self.accept_pauses,
                    icmp_errors: self.icmp_errors,
                    opened: self.opened,
                    pings: self.nat.pings,
                    pongs: self.nat.pongs,
                    flow_failures: self.nat.failures,
                    stun_answers: self.nat.stun_answers,
                    public: *self.local.public.borrow(),
                });
            }
        }
    }

    /// Adds our Via unless the message has one already (a CANCEL reuses its INVITE's Via).
    fn add_via(&self, msg: &mut Message, target: &Target) {
        if msg.header("Via").is_some() {
            return;
        }
        let local = self.local.advertised(target);
        let host = match local.ip() {
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

    fn on_inbound(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Stream { msg, peer, id } => {
                if let Some(c) = self.conns.get_mut(&peer).filter(|c| c.id == id) {
                    c.proven = true;
                    c.last = Instant::now();
                }
                self.on_message(msg, peer);
            }
            Inbound::Malformed { bytes, error, peer } => {
                self.on_malformed(&bytes, &error, peer);
            }
            Inbound::Connected { peer, id } => {
                if let Some(c) = self.conns.get_mut(&peer).filter(|c| c.id == id) {
                    c.last = Instant::now();
                }
            }
            Inbound::ConnectFailed { peer, id, error } => {
                if self.conns.get(&peer).is_some_and(|c| c.id == id) {
                    self.conns.remove(&peer);
                    self.on_flow_closed(peer, "its connection failed");
                }
                self.fail_peer(peer, &error);
            }
            Inbound::Closed { peer, id, unsent } => {
                if self.conns.get(&peer).is_some_and(|c| c.id == id) {
                    self.conns.remove(&peer);
                    self.on_flow_closed(peer, "its connection closed");
                }
                if !unsent.is_empty() {
                    tracing::debug!(%peer, messages = unsent.len(), "connection ended: sending again on a new one");
                }
                for bytes in unsent {
                    self.transmit(peer, bytes);
                }
            }
            Inbound::Pong { peer } => self.on_pong(peer, None),
            Inbound::StunServer(found) => self.on_stun_server(found),
        }
    }

    /// Ends every client transaction towards `peer` that has no final response yet with
    /// `error` (ICMP unreachable, a connection or TLS handshake that failed).
    pub(super) fn fail_peer(&mut self, peer: Peer, error: &TransportError) {
        for key in self.layer.transport_failed(&peer) {
            if let Some((sink, _)) = self.clients.remove(&key) {
                sink.send(ClientEvent::TransportError(error.clone()));
                self.ended(sink);
            }
        }
    }

    /// Closes the connection to `peer` (its task ends when the writer drops).
    pub(super) fn close(&mut self, peer: Peer) {
        if self.conns.remove(&peer).is_some() {
            self.on_flow_closed(peer, "its connection closed");
        }
    }

    pub(super) fn on_message(&mut self, mut msg: Message, peer: Peer) {
        if msg.is_request() {
            fix_received(&mut msg, peer.addr);
        }
        self.layer
            .on_message(msg, peer, peer.transport.reliable(), Instant::now());
    }

    /// Counts bytes that did not parse and answers them when they are an answerable request
    /// (400, 505, 501; see [`crate::uas::answer_malformed`]), statelessly, to where they came
    /// from.
    pub(super) fn on_malformed(
        &mut self,
        bytes: &[u8],
        error: &crate::message::ParseError,
        peer: Peer,
    ) {
        self.malformed += 1;
        tracing::debug!(from = %peer.addr, %error, "malformed SIP message");
        if let Some(mut answer) =
            crate::uas::answer_malformed(bytes, error, &crate::dialog::new_tag())
        {
            answer.push("Server", self.user_agent.clone());
            self.transmit(peer, answer.to_bytes());
        }
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
                    if let Some((sink, _)) = self.clients.get(&key) {
                        sink.send(ClientEvent::Response(msg));
                    }
                    // Non-INVITE and failed INVITE: nothing more for the user.
                    if final_ && !invite {
                        if let Some((sink, _)) = self.clients.remove(&key) {
                            self.ended(sink);
                        }
                    }
                }
                LayerEvent::Timeout { key } => {
                    if let Some((sink, peer)) = self.clients.remove(&key) {
                        sink.send(ClientEvent::Timeout);
                        self.ended(sink);
                        // No answer over a reliable transport: the connection is likely dead;
                        // the next request opens a new one instead of writing into it.
                        if peer.transport.reliable() && self.conns.contains_key(&peer) {
                            tracing::debug!(peer = %peer.addr, "transaction timed out: closing its connection");
                            self.close(peer);
                        }
                    }
                }
                LayerEvent::Request { key, msg, peer } => {
                    self.dispatch_request(key, msg, peer.transport == Transport::Tls, now)
                }
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
            self.take_icmp_errors();
            self.sweep_flows();
            let layer = &self.layer;
            let gone: Vec<TxKey> = self
                .clients
                .iter()
                .filter(|(k, (sink, _))| sink.is_closed() || layer.state(k).is_none())
                .map(|(k, _)| k.clone())
                .collect();
            for key in gone {
                if let Some((sink, _)) = self.clients.remove(&key) {
                    self.ended(sink);
                }
            }
        }
        if !self.ends.is_empty() {
            self.ends = std::mem::take(&mut self.ends)
                .into_iter()
                .filter_map(Ended::retry)
                .collect();
        }
        // Respond-ins from dispatch may have queued more transmissions.
        while let Some(LayerEvent::Transmit { peer, bytes, .. }) = self.layer.pop_event() {
            self.transmit(peer, bytes);
        }
        self.send_queued().await;
    }

    /// A client transaction's receiver learns that it ended.
    fn ended(&mut self, sink: ClientSink) {
        if let Some(later) = sink.end() {
            self.ends.push(later);
        }
    }

    fn publish_stats(&mut self) {
        let now = self.layer.stats();
        let last = self.published;
        // Looked up by name only when there is something to add (a lookup allocates its key).
        let retransmitted = now.retransmissions.saturating_sub(last.retransmissions);
        if retransmitted > 0 {
            metrics::counter!("tapir_sip_retransmissions_total").increment(retransmitted);
        }
        let timed_out = now.timeouts.saturating_sub(last.timeouts);
        if timed_out > 0 {
            metrics::counter!("tapir_sip_transaction_timeouts_total").increment(timed_out);
        }
        RETRANSMISSIONS.fetch_add(retransmitted, Ordering::Relaxed);
        TRANSACTIONS.fetch_add(now.created.saturating_sub(last.created), Ordering::Relaxed);
        TIMEOUTS.fetch_add(timed_out, Ordering::Relaxed);
        MALFORMED.fetch_add(
            self.malformed.saturating_sub(self.published_malformed),
            Ordering::Relaxed,
        );
        self.published = now;
        self.published_malformed = self.malformed;
    }

    fn dispatch_request(&mut self, key: TxKey, msg: Message, secure: bool, now: Instant) {
        if let Some(mut refusal) = crate::uas::refuse_on(&msg, &crate::dialog::new_tag(), secure) {
            refusal.push("Server", self.user_agent.clone());
            let _ = self.layer.respond(&key, refusal, now);
            return;
        }
        let routed = msg.call_id().and_then(|c| self.routes.get(c)).cloned();
        if let Some(sink) = routed {
            // A full or closed route hands the request back, to be answered 503 here.
            if let Err(refused) = sink.try_send(Incoming::Request {
                key: key.clone(),
                msg,
            }) {
                if let Incoming::Request { msg, .. } = refused.into_inner() {
                    let busy = Message::response_to(&msg, 503, "Service Unavailable", None);
                    let _ = self.layer.respond(&key, busy, now);
                }
            }
            return;
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

    pub(super) fn transmit(&mut self, peer: Peer, bytes: Vec<u8>) {
        match peer.transport {
            Transport::Udp => {
                // Sent in order by `send_queued`, waiting for the socket when its buffer is full
                // (a dropped ACK would overtake nothing but still cost a retransmission).
                if self.udp_out.len() < super::udp::MAX_UDP_QUEUE {
                    self.udp_out.push_back((peer.addr, bytes));
                } else {
                    tracing::warn!(to = %peer.addr, "UDP send queue full, datagram dropped");
                }
            }
            Transport::Tcp | Transport::Tls => match self.conns.get(&peer) {
                Some(c) => match c.writer.try_send(bytes) {
                    Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                    Err(mpsc::error::TrySendError::Closed(b)) => {
                        // The connection ended: reconnect.
                        self.conns.remove(&peer);
                        self.open(peer, b);
                    }
                },
                None => self.open(peer, bytes),
            },
        }
    }
}

/// Adds `received` and fills `rport` in the top Via of a request (RFC 3261 §18.2.1, RFC 3581).
pub(super) fn fix_received(msg: &mut Message, source: SocketAddr) {
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
