//! The endpoint task's side of NAT traversal: STUN transactions on the SIP socket (the public
//! address, UDP keep-alives), keep-alive pings on watched flows ([`crate::nat::Flows`] decides
//! when), and the news registrations get when their flow needs a new REGISTER.

use super::task::Task;
use super::{FlowNews, FlowWatch, Peer};
use crate::nat::{FlowAction, Flows, NatConfig, UdpKeepalive};
use crate::resolve::Transport;
use crate::stun::{self, BindingResponse, TransactionId};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How soon a failed STUN look-up is tried again (sooner than the refresh interval).
const STUN_RETRY: Duration = Duration::from_secs(30);

/// What a STUN transaction is for.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    /// Learning the public address from the configured STUN server.
    Discovery,
    /// A UDP keep-alive on a watched flow.
    Keepalive(Peer),
}

#[derive(Debug)]
struct StunTx {
    purpose: Purpose,
    dest: SocketAddr,
    started: Instant,
    sent: usize,
    bytes: Vec<u8>,
}

/// NAT state of an endpoint task.
pub(super) struct NatState {
    config: NatConfig,
    flows: Flows<Peer>,
    watchers: HashMap<Peer, watch::Sender<FlowNews>>,
    public_tx: watch::Sender<Option<SocketAddr>>,
    stun_server: Option<(String, u16)>,
    next_discovery: Option<Instant>,
    pending: HashMap<TransactionId, StunTx>,
    pub pings: u64,
    pub pongs: u64,
    pub failures: u64,
    pub stun_answers: u64,
}

impl NatState {
    pub fn new(config: NatConfig, public_tx: watch::Sender<Option<SocketAddr>>) -> NatState {
        let stun_server = config
            .stun_server
            .as_deref()
            .and_then(crate::nat::stun_host_port);
        NatState {
            flows: Flows::new(Duration::from_secs(config.pong_timeout_secs)),
            config,
            watchers: HashMap::new(),
            public_tx,
            stun_server,
            next_discovery: None,
            pending: HashMap::new(),
            pings: 0,
            pongs: 0,
            failures: 0,
            stun_answers: 0,
        }
    }

    fn pong_timeout(&self) -> Duration {
        Duration::from_secs(self.config.pong_timeout_secs)
    }
}

impl Task {
    /// Starts the first STUN look-up, if a server is configured.
    pub(super) fn start_nat(&mut self) {
        if self.nat.stun_server.is_some() {
            self.nat.next_discovery = Some(Instant::now());
        }
    }

    /// The earliest time [`Self::on_nat_timer`] has something to do.
    pub(super) fn nat_deadline(&self) -> Option<Instant> {
        let pong_timeout = self.nat.pong_timeout();
        let stun = self.nat.pending.values().map(|t| match t.purpose {
            Purpose::Discovery => match stun::RETRANSMIT_AT.get(t.sent) {
                Some(at) => t.started + *at,
                None => t.started + stun::GIVE_UP_AT,
            },
            Purpose::Keepalive(_) => t.started + pong_timeout,
        });
        stun.chain(self.nat.next_discovery)
            .chain(self.nat.flows.next_deadline())
            .min()
    }

    /// Look-ups, retransmissions and keep-alives that are due.
    pub(super) fn on_nat_timer(&mut self, now: Instant) {
        if self.nat.next_discovery.is_some_and(|d| d <= now) {
            self.nat.next_discovery = None;
            self.discover();
        }
        let pong_timeout = self.nat.pong_timeout();
        let mut resend = Vec::new();
        let mut given_up = false;
        self.nat.pending.retain(|_, t| match t.purpose {
            Purpose::Keepalive(_) => now < t.started + pong_timeout,
            Purpose::Discovery => {
                if now >= t.started + stun::GIVE_UP_AT {
                    given_up = true;
                    return false;
                }
                if let Some(at) = stun::RETRANSMIT_AT.get(t.sent) {
                    if now >= t.started + *at {
                        t.sent += 1;
                        resend.push((t.dest, t.bytes.clone()));
                    }
                }
                true
            }
        });
        for (dest, bytes) in resend {
            self.queue_udp(dest, bytes);
        }
        if given_up {
            tracing::warn!(
                stun_server = self.nat.config.stun_server.as_deref().unwrap_or_default(),
                "the STUN server did not answer; trying again in {} s",
                STUN_RETRY.as_secs()
            );
            self.nat.next_discovery = Some(now + STUN_RETRY);
        }
        for action in self.nat.flows.on_timer(now) {
            match action {
                FlowAction::Ping(peer) => self.ping(peer, now),
                FlowAction::Failed(peer, why) => self.flow_failed(peer, why),
            }
        }
    }

    /// Looks the STUN server up (in a task of its own unless it is an IP address) and sends it
    /// a Binding request.
    fn discover(&mut self) {
        let Some((host, port)) = self.nat.stun_server.clone() else {
            return;
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            self.send_discovery(SocketAddr::new(ip, port));
            return;
        }
        let v4 = self.local.udp.is_ipv4();
        let inbound = self.inbound_tx.clone();
        crate::runtime::spawn(async move {
            let found = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::net::lookup_host((host.as_str(), port)),
            )
            .await;
            let result = match found {
                Ok(Ok(mut addrs)) => addrs
                    .find(|a| a.is_ipv4() == v4 || !v4)
                    .ok_or_else(|| format!("{host} has no address of our socket's family")),
                Ok(Err(e)) => Err(format!("cannot look up {host}: {e}")),
                Err(_) => Err(format!("looking up {host} timed out")),
            };
            let _ = inbound.send(super::Inbound::StunServer(result)).await;
        });
    }

    pub(super) fn on_stun_server(&mut self, found: Result<SocketAddr, String>) {
        match found {
            Ok(addr) => self.send_discovery(addr),
            Err(why) => {
                tracing::warn!(%why, "STUN server unknown; trying again in {} s", STUN_RETRY.as_secs());
                self.nat.next_discovery = Some(Instant::now() + STUN_RETRY);
            }
        }
    }

    fn send_discovery(&mut self, dest: SocketAddr) {
        let id = stun::new_transaction_id();
        let bytes = stun::binding_request(&id);
        self.nat.pending.insert(
            id,
            StunTx {
                purpose: Purpose::Discovery,
                dest,
                started: Instant::now(),
                sent: 1,
                bytes: bytes.clone(),
            },
        );
        self.queue_udp(dest, bytes);
    }

    fn queue_udp(&mut self, dest: SocketAddr, bytes: Vec<u8>) {
        if self.udp_out.len() < super::udp::MAX_UDP_QUEUE {
            self.udp_out.push_back((dest, bytes));
        }
    }

    /// A STUN message arrived on the SIP socket.
    pub(super) fn on_stun(&mut self, bytes: &[u8], from: SocketAddr) {
        let Ok(response) = stun::parse_response(bytes) else {
            return; // requests and indications to us are not served
        };
        let Some(tx) = self.nat.pending.get(response.id()) else {
            return;
        };
        if tx.dest != from {
            return;
        }
        let purpose = tx.purpose;
        self.nat.pending.remove(response.id());
        self.nat.stun_answers += 1;
        match (purpose, response) {
            (Purpose::Discovery, BindingResponse::Success { mapped, .. }) => {
                self.set_public(mapped);
                self.nat.next_discovery =
                    Some(Instant::now() + Duration::from_secs(self.nat.config.stun_refresh_secs));
            }
            (Purpose::Discovery, BindingResponse::Error { code, reason, .. }) => {
                tracing::warn!(%from, code, %reason, "the STUN server refused our Binding request");
                self.nat.next_discovery = Some(Instant::now() + STUN_RETRY);
            }
            (Purpose::Keepalive(peer), BindingResponse::Success { mapped, .. }) => {
                self.on_pong(peer, Some(mapped));
            }
            (Purpose::Keepalive(peer), BindingResponse::Error { .. }) => {
                // An answer all the same: the flow is alive.
                self.on_pong(peer, None);
            }
        }
    }

    /// The STUN server reported `mapped`; registrations re-register when it changed.
    fn set_public(&mut self, mapped: SocketAddr) {
        let before = *self.local.public.borrow();
        if before == Some(mapped) {
            return;
        }
        tracing::info!(public = %mapped, "STUN: Via and Contact now carry the public address");
        self.nat.public_tx.send_replace(Some(mapped));
        let why = "the public address changed";
        for tx in self.nat.watchers.values() {
            tx.send_modify(|n| {
                n.seq += 1;
                n.reason = why.into();
            });
        }
    }

    /// Sends a keep-alive on `peer`'s flow.
    fn ping(&mut self, peer: Peer, now: Instant) {
        match peer.transport {
            Transport::Udp => match self.nat.config.udp_keepalive {
                UdpKeepalive::Crlf => self.queue_udp(peer.addr, b"\r\n\r\n".to_vec()),
                UdpKeepalive::Stun => {
                    let id = stun::new_transaction_id();
                    let bytes = stun::binding_request(&id);
                    self.nat.pending.insert(
                        id,
                        StunTx {
                            purpose: Purpose::Keepalive(peer),
                            dest: peer.addr,
                            started: now,
                            sent: 1,
                            bytes: Vec::new(),
                        },
                    );
                    self.queue_udp(peer.addr, bytes);
                }
            },
            Transport::Tcp | Transport::Tls => {
                let Some(conn) = self.conns.get(&peer) else {
                    return; // no connection: the next REGISTER opens one
                };
                let _ = conn.writer.try_send(b"\r\n\r\n".to_vec());
            }
        }
        self.nat.pings += 1;
    }

    /// A pong arrived on `peer` (with the mapped address, for STUN).
    pub(super) fn on_pong(&mut self, peer: Peer, mapped: Option<SocketAddr>) {
        self.nat.pongs += 1;
        if let Some(FlowAction::Failed(peer, why)) = self.nat.flows.on_pong(&peer, mapped) {
            self.flow_failed(peer, why);
        }
    }

    /// A watched flow failed: close its connection and tell its registrations.
    fn flow_failed(&mut self, peer: Peer, why: &'static str) {
        tracing::info!(peer = %peer.addr, transport = %peer.transport, %why, "flow to the registrar failed");
        if peer.transport.reliable() {
            self.conns.remove(&peer);
        }
        self.nat.flows.on_closed(&peer);
        self.notify(peer, why);
    }

    /// The connection to `peer` closed; when a registration watches it, it re-registers.
    pub(super) fn on_flow_closed(&mut self, peer: Peer, why: &'static str) {
        if self.nat.watchers.contains_key(&peer) {
            tracing::info!(peer = %peer.addr, transport = %peer.transport, %why, "flow to the registrar ended");
            self.nat.flows.on_closed(&peer);
            self.notify(peer, why);
        }
    }

    fn notify(&mut self, peer: Peer, why: &str) {
        if let Some(tx) = self.nat.watchers.get(&peer) {
            self.nat.failures += 1;
            tx.send_modify(|n| {
                n.seq += 1;
                n.reason = why.to_owned();
            });
        }
    }

    /// A registration watches the flow to `peer` from now on.
    pub(super) fn watch_flow(&mut self, peer: Peer, now: Instant) -> FlowWatch {
        let tx = self
            .nat
            .watchers
            .entry(peer)
            .or_insert_with(|| watch::channel(FlowNews::default()).0);
        let rx = tx.subscribe();
        if let Some(interval) = self.nat.config.interval(peer.transport.reliable()) {
            self.nat.flows.add(peer, interval, now);
        }
        FlowWatch { rx }
    }

    /// Forgets flows no registration watches any more.
    pub(super) fn sweep_flows(&mut self) {
        let gone: Vec<Peer> = self
            .nat
            .watchers
            .iter()
            .filter(|(_, tx)| tx.receiver_count() == 0)
            .map(|(p, _)| *p)
            .collect();
        for peer in gone {
            self.nat.watchers.remove(&peer);
            self.nat.flows.remove(&peer);
        }
    }
}
