//! TCP and TLS connections: one task per connection reads and frames messages and writes what
//! the endpoint task hands it. TLS is a stream wrapper ([`super::tls`]); everything here is the
//! same for both. Hostile peers are bounded:
//!
//! - a message head must arrive within [`TcpLimits::header_timeout`] of its first byte (for an
//!   accepted connection, of the accept), its body within [`TcpLimits::body_timeout`] of the
//!   head; a connection with no traffic for [`TcpLimits::idle_timeout`] is closed;
//! - a framed message that does not parse is reported (the endpoint answers it 400) and the
//!   connection goes on; a stream that cannot be framed any more (no or a bad Content-Length,
//!   an oversized head) is read no further, but answers to earlier requests still go out on it
//!   for [`DRAIN`] before it closes;
//! - the endpoint caps accepted connections, TCP and TLS together (see `Task::on_accept`); a
//!   TLS handshake must end within the header timeout.
//!
//! A connection we opened that had carried the peer's messages and then ends (the peer
//! restarted, or closed it while we were writing) hands back what it had not written yet; the
//! endpoint sends that on a new connection (RFC 3261 §18.1.1), so a request never vanishes into
//! a connection that was closing.
//!
//! Keep-alives (RFC 5626 §4.4.1) between messages: a CRLFCRLF "ping" is answered with a CRLF
//! "pong" at once; a lone CRLF is a pong and is reported to the endpoint task (which watches
//! the flows it pings).

use super::task::{Conn, Task};
use super::{Inbound, Peer, TransportError};
use crate::message::{Message, ParseError, MAX_MESSAGE};
use crate::resolve::Transport;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

/// How long opening a connection (TCP connect, then the TLS handshake) may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// Ids that tell a connection from a later one to the same peer.
static CONN_IDS: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    CONN_IDS.fetch_add(1, Ordering::Relaxed)
}

/// Longest pause of the accept loop when descriptors run out.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_millis(500);
/// Accepted connections closed at once when descriptors run out.
const EVICT_ON_EXHAUSTION: usize = 8;

/// How long a connection whose stream could not be framed still carries our answers.
pub(super) const DRAIN: Duration = Duration::from_secs(5);

/// Limits on TCP connections (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Most accepted (incoming) connections at once; at the cap the least useful one (never
    /// sent a complete message, then the longest idle) is closed for the new one.
    pub max_connections: usize,
    /// Longest time from a message's first byte (or an accept) to the end of its head.
    pub header_timeout: Duration,
    /// Longest time from the end of a head to the end of its body.
    pub body_timeout: Duration,
    /// Longest time without any traffic before a connection is closed.
    pub idle_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_connections: 512,
            header_timeout: Duration::from_secs(16),
            body_timeout: Duration::from_secs(16),
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// Where a connection stands in reading the next message.
#[derive(Debug, Clone, Copy)]
enum Reading {
    /// Nothing of the next message yet (keep-alive CRLFs aside).
    Between,
    /// Part of a head; it must end by this time.
    Head(Instant),
    /// A complete head; the body must end by this time.
    Body(Instant),
    /// The stream cannot be framed: reading stopped, answers still go out until this time.
    Draining(Instant),
}

/// One connection as the connection task knows it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link {
    pub peer: Peer,
    pub id: u64,
    /// Accepted from a peer (must deliver its first head within the header timeout).
    pub accepted: bool,
}

/// Reads and writes one TCP or TLS connection until it closes, times out, or the endpoint drops
/// its writer.
pub(super) async fn connection<S>(
    stream: S,
    link: Link,
    mut rx: mpsc::Receiver<Vec<u8>>,
    inbound: mpsc::Sender<Inbound>,
    limits: TcpLimits,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let Link { peer, id, accepted } = link;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16384];
    let mut last_traffic = Instant::now();
    let mut proven = false;
    let mut state = if accepted {
        Reading::Head(last_traffic + limits.header_timeout)
    } else {
        Reading::Between
    };
    let mut unsent: Vec<Vec<u8>> = Vec::new();
    loop {
        let deadline = match state {
            Reading::Between => last_traffic + limits.idle_timeout,
            Reading::Head(d) | Reading::Body(d) | Reading::Draining(d) => d,
        };
        tokio::select! {
            out = rx.recv() => match out {
                Some(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        unsent.push(bytes);
                        break;
                    }
                    last_traffic = Instant::now();
                }
                None => break,
            },
            read = reader.read(&mut chunk) => {
                let n = match read {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        // A TLS alert from a server we connected to (TLS 1.3 servers refuse a
                        // missing client certificate only after the handshake): the requests
                        // waiting on it fail with the reason instead of timing out.
                        let tls = e
                            .get_ref()
                            .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some());
                        if tls && !accepted {
                            let error = TransportError::Tls {
                                peer: peer.addr,
                                reason: crate::tls::describe_handshake_error(&e),
                            };
                            tracing::info!(%peer, %error, "TLS connection ended by an error");
                            let _ = inbound.send(Inbound::ConnectFailed { peer, id, error }).await;
                        }
                        break;
                    }
                };
                last_traffic = Instant::now();
                if matches!(state, Reading::Draining(_)) {
                    continue; // discarded: only EOF matters now
                }
                buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                let (pings, pongs) = take_keepalives(&mut buf);
                for _ in 0..pings {
                    if writer.write_all(b"\r\n").await.is_err() {
                        break;
                    }
                }
                if pongs > 0 && inbound.send(Inbound::Pong { peer }).await.is_err() {
                    return;
                }
                match take_messages(&mut buf, peer, id, &inbound).await {
                    Ok(Some(0)) => {}
                    Ok(Some(_)) => {
                        proven = true;
                        state = Reading::Between;
                    }
                    Ok(None) => return,
                    Err(()) => {
                        buf = Vec::new();
                        state = Reading::Draining(Instant::now() + DRAIN);
                        continue;
                    }
                }
                state = next_state(&buf, state, limits, accepted && !proven);
            }
            () = sleep_until(deadline) => {
                if !matches!(state, Reading::Draining(_)) {
                    tracing::debug!(%peer, ?state, "TCP connection timed out");
                }
                break;
            }
        }
    }
    let _ = writer.shutdown().await;
    if accepted || !proven {
        unsent.clear();
    } else {
        while let Ok(bytes) = rx.try_recv() {
            unsent.push(bytes);
        }
    }
    let _ = inbound.send(Inbound::Closed { peer, id, unsent }).await;
}

/// Takes the keep-alives at the front of `buf` (between messages): CRLFCRLF pings to answer,
/// lone CRLF pongs. A CRLF followed by a message's first byte is a pong too; an incomplete
/// CRLFCRLF waits for more bytes.
fn take_keepalives(buf: &mut Vec<u8>) -> (usize, usize) {
    let (mut pings, mut pongs, mut at) = (0, 0, 0);
    loop {
        let rest = &buf[at..];
        if rest.starts_with(b"\r\n\r\n") {
            pings += 1;
            at += 4;
        } else if rest.starts_with(b"\r\n") && !matches!(rest.get(2), Some(b'\r' | b'\n')) {
            pongs += 1;
            at += 2;
        } else {
            break;
        }
    }
    buf.drain(..at);
    (pings, pongs)
}

/// Frames and hands on every complete message in `buf`: how many, `Ok(None)` when the
/// endpoint is gone, `Err(())` when the stream cannot be framed any more.
async fn take_messages(
    buf: &mut Vec<u8>,
    peer: Peer,
    id: u64,
    inbound: &mpsc::Sender<Inbound>,
) -> Result<Option<usize>, ()> {
    let mut taken = 0;
    loop {
        let used = match Message::frame(buf) {
            Ok(used) => used.min(buf.len()),
            Err(ParseError::Incomplete) => return Ok(Some(taken)),
            Err(e) => {
                tracing::debug!(%peer, error = %e, "TCP stream cannot be framed; no more reading");
                let bytes = std::mem::take(buf);
                let _ = inbound
                    .send(Inbound::Malformed {
                        bytes,
                        error: e,
                        peer,
                    })
                    .await;
                return Err(());
            }
        };
        let framed: Vec<u8> = buf.drain(..used).collect();
        let report = match Message::parse_stream(&framed) {
            Ok((msg, _)) => Inbound::Stream { msg, peer, id },
            Err(error) => Inbound::Malformed {
                bytes: framed,
                error,
                peer,
            },
        };
        if inbound.send(report).await.is_err() {
            return Ok(None);
        }
        taken += 1;
        if buf.capacity() > 4 * MAX_MESSAGE && buf.len() < MAX_MESSAGE {
            buf.shrink_to(MAX_MESSAGE);
        }
    }
}

/// The reading state after new bytes: between messages, inside a head, or inside a body.
/// `first`: an accepted connection before its first message, held to its accept deadline.
fn next_state(buf: &[u8], state: Reading, limits: TcpLimits, first: bool) -> Reading {
    let now = Instant::now();
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    let rest = &buf[start..];
    if rest.is_empty() {
        return match state {
            // Keep-alive CRLFs do not buy a fresh accepted connection more time.
            Reading::Head(d) if first => Reading::Head(d),
            _ => Reading::Between,
        };
    }
    match crate::message::head_end(rest) {
        None => match state {
            Reading::Head(d) => Reading::Head(d),
            _ => Reading::Head(now + limits.header_timeout),
        },
        Some(_) => match state {
            Reading::Body(d) => Reading::Body(d),
            _ => Reading::Body(now + limits.body_timeout),
        },
    }
}

impl Task {
    /// A connection came in on the TCP or the TLS listener (or accepting failed). At the cap,
    /// the least useful accepted connection makes room. When descriptors run out (`EMFILE`,
    /// `ENFILE`, `ENOBUFS`, `ENOMEM`), up to eight such connections are closed and accepting
    /// pauses (10 ms, doubling up to 500 ms while it keeps failing) instead of retrying at full
    /// speed.
    pub(super) fn on_accept(
        &mut self,
        accepted: std::io::Result<(TcpStream, SocketAddr)>,
        transport: Transport,
    ) {
        match accepted {
            Ok((stream, addr)) => {
                self.accept_backoff = Duration::ZERO;
                let inbound = self.conns.values().filter(|c| c.accepted).count();
                if inbound >= self.tcp_limits.max_connections && !self.evict_one() {
                    return; // cap 0: refuse by dropping the stream
                }
                let acceptor = match transport {
                    Transport::Tls => match self.tls.as_ref().and_then(|t| t.acceptor()) {
                        Some(a) => Some(a),
                        None => return,
                    },
                    _ => None,
                };
                let peer = Peer { transport, addr };
                let id = next_id();
                let (tx, rx) = mpsc::channel(256);
                self.conns.insert(
                    peer,
                    Conn {
                        writer: tx,
                        id,
                        accepted: true,
                        proven: false,
                        last: std::time::Instant::now(),
                        task: None,
                    },
                );
                let limits = self.tcp_limits;
                let inbound = self.inbound_tx.clone();
                let link = Link {
                    peer,
                    id,
                    accepted: true,
                };
                let task = match acceptor {
                    None => crate::runtime::spawn(connection(stream, link, rx, inbound, limits)),
                    Some(acceptor) => crate::runtime::spawn(async move {
                        let limit = limits.header_timeout;
                        match super::tls::accept(acceptor, stream, addr, limit).await {
                            Some(tls) => connection(tls, link, rx, inbound, limits).await,
                            None => {
                                let closed = Inbound::Closed {
                                    peer,
                                    id,
                                    unsent: Vec::new(),
                                };
                                let _ = inbound.send(closed).await;
                            }
                        }
                    }),
                };
                if let Some(c) = self.conns.get_mut(&peer) {
                    c.task = Some(task.abort_handle());
                }
            }
            Err(e) => {
                let exhausted = matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12));
                if !exhausted {
                    tracing::debug!(error = %e, "TCP accept failed");
                    return;
                }
                for _ in 0..EVICT_ON_EXHAUSTION {
                    if !self.evict_one() {
                        break;
                    }
                }
                self.accept_backoff = (self.accept_backoff * 2)
                    .max(Duration::from_millis(10))
                    .min(MAX_ACCEPT_BACKOFF);
                self.accept_pause = Some(std::time::Instant::now() + self.accept_backoff);
                self.accept_pauses += 1;
                tracing::warn!(error = %e, pause_ms = self.accept_backoff.as_millis() as u64, "out of descriptors: TCP accept paused");
            }
        }
    }

    /// Closes the accepted connection that is worth least: one that never sent a complete
    /// message before one that did, then the longest idle. False when there is none.
    fn evict_one(&mut self) -> bool {
        let victim = self
            .conns
            .iter()
            .filter(|(_, c)| c.accepted)
            .min_by_key(|(_, c)| (c.proven, c.last))
            .map(|(a, _)| *a);
        match victim {
            Some(addr) => {
                // Dropping the writer ends the connection task.
                self.conns.remove(&addr);
                self.evicted += 1;
                true
            }
            None => false,
        }
    }

    /// Opens a connection to `peer` (TCP, or TLS over TCP) that first carries `first`; more
    /// bytes for it queue in its channel meanwhile.
    pub(super) fn open(&mut self, peer: Peer, first: Vec<u8>) {
        let (tx, rx) = mpsc::channel(256);
        let id = next_id();
        let tls = match peer.transport {
            Transport::Tls => match &self.tls {
                Some(ctx) => Some(ctx.clone()),
                None => {
                    let error = TransportError::Tls {
                        peer: peer.addr,
                        reason: "this endpoint has no TLS configured".into(),
                    };
                    self.fail_peer(peer, &error);
                    return;
                }
            },
            _ => None,
        };
        let hop_bytes = if tls.is_some() {
            first.clone()
        } else {
            Vec::new()
        };
        let _ = tx.try_send(first);
        self.conns.insert(
            peer,
            Conn {
                writer: tx,
                id,
                accepted: false,
                proven: true,
                last: std::time::Instant::now(),
                task: None,
            },
        );
        self.opened += 1;
        let limits = self.tcp_limits;
        let inbound = self.inbound_tx.clone();
        let local_ip = self.local.tcp.ip();
        let link = Link {
            peer,
            id,
            accepted: false,
        };
        let task = crate::runtime::spawn(async move {
            let failed = |error: TransportError| Inbound::ConnectFailed { peer, id, error };
            let stream = match connect_tcp(peer.addr, local_ip).await {
                Ok(s) => s,
                Err(error) => {
                    let _ = inbound.send(failed(error)).await;
                    return;
                }
            };
            match tls {
                None => {
                    let _ = inbound.send(Inbound::Connected { peer, id }).await;
                    connection(stream, link, rx, inbound, limits).await;
                }
                Some(ctx) => {
                    match super::tls::connect(&ctx, stream, peer.addr, &hop_bytes, CONNECT_LIMIT)
                        .await
                    {
                        Ok(tls) => {
                            let _ = inbound.send(Inbound::Connected { peer, id }).await;
                            connection(tls, link, rx, inbound, limits).await;
                        }
                        Err(error) => {
                            tracing::info!(peer = %peer.addr, %error, "TLS connection refused");
                            let _ = inbound.send(failed(error)).await;
                        }
                    }
                }
            }
        });
        if let Some(c) = self.conns.get_mut(&peer) {
            c.task = Some(task.abort_handle());
        }
    }
}

/// A TCP connection to `addr`, from `local_ip` when the endpoint is bound to one address.
async fn connect_tcp(
    addr: SocketAddr,
    local_ip: std::net::IpAddr,
) -> Result<TcpStream, TransportError> {
    let error = |reason: String| TransportError::Connect { peer: addr, reason };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| error(e.to_string()))?;
    if !local_ip.is_unspecified() && local_ip.is_ipv4() == addr.is_ipv4() {
        let _ = socket.bind(SocketAddr::new(local_ip, 0));
    }
    match tokio::time::timeout(CONNECT_LIMIT, socket.connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(error(e.to_string())),
        Err(_) => Err(error("TCP connect timed out".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::take_keepalives;

    #[test]
    fn keepalives_between_messages() {
        let mut b = b"\r\n\r\n".to_vec();
        assert_eq!(take_keepalives(&mut b), (1, 0));
        assert!(b.is_empty());
        let mut b = b"\r\n".to_vec();
        assert_eq!(take_keepalives(&mut b), (0, 1));
        let mut b = b"\r\nSIP/2.0 200 OK\r\n".to_vec();
        assert_eq!(take_keepalives(&mut b), (0, 1));
        assert!(b.starts_with(b"SIP/2.0"));
        // Half a ping waits for the rest.
        let mut b = b"\r\n\r".to_vec();
        assert_eq!(take_keepalives(&mut b), (0, 0));
        assert_eq!(b.len(), 3);
        let mut b = b"\r\n\r\n\r\n\r\nOPTIONS".to_vec();
        assert_eq!(take_keepalives(&mut b), (2, 0));
        let mut b = b"OPTIONS sip:x SIP/2.0\r\n\r\n".to_vec();
        assert_eq!(take_keepalives(&mut b), (0, 0));
    }
}
