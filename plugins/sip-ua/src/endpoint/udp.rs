//! The UDP socket: large buffers, and on Linux the ICMP errors the kernel reports for
//! datagrams we sent (RFC 3261 §18.4: an ICMP port unreachable is a transport error).
//!
//! An unconnected UDP socket learns of ICMP errors only with `IP_RECVERR` / `IPV6_RECVERR`:
//! the kernel then queues each error, with the destination of the datagram that caused it, on
//! the socket's error queue (read with `MSG_ERRQUEUE`). The queue is drained whenever a
//! receive or send reports an error, and once a second; a full queue would otherwise hold
//! receive-buffer space.

use super::task::Task;
use super::{Peer, TransportError};
use crate::message::Message;
use crate::resolve::Transport;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

/// Most datagrams waiting for the socket.
pub(super) const MAX_UDP_QUEUE: usize = 65_536;

/// Requested UDP socket buffer size (the kernel caps it at `net.core.rmem_max`).
const UDP_BUFFER: usize = 4 * 1024 * 1024;

/// Binds the UDP socket with large buffers (bursts of hundreds of calls must not overflow
/// the kernel's default ~200 KiB and cost retransmissions) and asks for ICMP errors.
pub(super) fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    #[cfg(target_os = "linux")]
    icmp::enable(&socket, addr.is_ipv6());
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// One ICMP error about a datagram we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unreachable {
    /// Where the datagram was going.
    pub dest: SocketAddr,
    /// What the ICMP message said ("port unreachable", ...).
    pub reason: &'static str,
}

/// Reads every queued ICMP error (at most `limit`). Always empty off Linux.
pub(super) fn take_errors(socket: &UdpSocket, limit: usize) -> Vec<Unreachable> {
    #[cfg(target_os = "linux")]
    {
        icmp::take(socket, limit)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (socket, limit);
        Vec::new()
    }
}

impl Task {
    pub(super) fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        // STUN answers (address discovery, keep-alives) share the SIP socket (RFC 5626 §8).
        if crate::stun::is_stun(bytes) {
            self.on_stun(bytes, from);
            return;
        }
        // Keep-alive CRLFs (RFC 5626 §3.5.1) and other binary bytes are not SIP.
        if bytes.iter().all(|b| *b == b'\r' || *b == b'\n') || bytes.first().is_some_and(|b| *b < 4)
        {
            return;
        }
        let peer = Peer {
            transport: Transport::Udp,
            addr: from,
        };
        match Message::parse(bytes) {
            Ok(msg) => self.on_message(msg, peer),
            Err(e) => self.on_malformed(bytes, &e, peer),
        }
    }

    /// Reads the ICMP errors the kernel queued and ends the client transactions towards each
    /// unreachable destination with [`TransportError::Unreachable`].
    pub(super) fn take_icmp_errors(&mut self) {
        for u in take_errors(&self.udp, 256) {
            self.icmp_errors += 1;
            let peer = Peer {
                transport: Transport::Udp,
                addr: u.dest,
            };
            tracing::debug!(dest = %u.dest, reason = u.reason, "ICMP: destination unreachable");
            let error = TransportError::Unreachable {
                peer: u.dest,
                reason: u.reason.to_owned(),
            };
            self.fail_peer(peer, &error);
        }
    }

    /// Sends the queued datagrams in order, each waiting at most a second for buffer space.
    /// A send that fails with an error an earlier ICMP message left on the socket is tried
    /// once more after the error queue is read (that error concerned another destination).
    pub(super) async fn send_queued(&mut self) {
        while let Some((addr, bytes)) = self.udp_out.pop_front() {
            let mut sent = self.send_one(&bytes, addr).await;
            if let Err(e) = &sent {
                if is_icmp_residue(e) {
                    self.take_icmp_errors();
                    sent = self.send_one(&bytes, addr).await;
                }
            }
            if let Err(e) = sent {
                tracing::debug!(to = %addr, error = %e, "UDP send failed");
            }
        }
    }

    async fn send_one(&self, bytes: &[u8], addr: SocketAddr) -> std::io::Result<()> {
        match self.udp.try_send_to(bytes, addr) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                match tokio::time::timeout(Duration::from_secs(1), self.udp.send_to(bytes, addr))
                    .await
                {
                    Ok(r) => r.map(|_| ()),
                    Err(_) => Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "socket not writable",
                    )),
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// Errors a pending ICMP report makes the next socket call return.
fn is_icmp_residue(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::HostUnreachable
            | std::io::ErrorKind::NetworkUnreachable
    ) || matches!(e.raw_os_error(), Some(111 | 113 | 101))
}

#[cfg(target_os = "linux")]
mod icmp {
    use super::Unreachable;
    use nix::libc;
    use nix::sys::socket::{
        recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
    };
    use std::io::IoSliceMut;
    use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;

    /// Origins and types of `sock_extended_err` (linux/errqueue.h, linux/icmp.h, icmpv6.h).
    const SO_EE_ORIGIN_ICMP: u8 = 2;
    const SO_EE_ORIGIN_ICMP6: u8 = 3;
    const ICMP_DEST_UNREACH: u8 = 3;
    const ICMPV6_DEST_UNREACH: u8 = 1;

    pub(super) fn enable(socket: &socket2::Socket, v6: bool) {
        if v6 {
            let _ = setsockopt(socket, sockopt::Ipv6RecvErr, &true);
        }
        // Also on IPv6 sockets: errors about IPv4-mapped destinations arrive at the IP level.
        let _ = setsockopt(socket, sockopt::Ipv4RecvErr, &true);
    }

    fn reason(origin: u8, kind: u8, code: u8) -> Option<&'static str> {
        match (origin, kind, code) {
            (SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH, 0) => Some("network unreachable"),
            (SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH, 1) => Some("host unreachable"),
            (SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH, 3) => Some("port unreachable"),
            (SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH, 9 | 10 | 13) => {
                Some("communication administratively prohibited")
            }
            (SO_EE_ORIGIN_ICMP, ICMP_DEST_UNREACH, _) => Some("destination unreachable"),
            (SO_EE_ORIGIN_ICMP6, ICMPV6_DEST_UNREACH, 0) => Some("no route to destination"),
            (SO_EE_ORIGIN_ICMP6, ICMPV6_DEST_UNREACH, 1) => {
                Some("communication administratively prohibited")
            }
            (SO_EE_ORIGIN_ICMP6, ICMPV6_DEST_UNREACH, 3) => Some("address unreachable"),
            (SO_EE_ORIGIN_ICMP6, ICMPV6_DEST_UNREACH, 4) => Some("port unreachable"),
            (SO_EE_ORIGIN_ICMP6, ICMPV6_DEST_UNREACH, _) => Some("destination unreachable"),
            _ => None,
        }
    }

    fn dest_of(addr: Option<SockaddrStorage>) -> Option<SocketAddr> {
        let addr = addr?;
        if let Some(v4) = addr.as_sockaddr_in() {
            return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
        }
        addr.as_sockaddr_in6()
            .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
    }

    pub(super) fn take(socket: &tokio::net::UdpSocket, limit: usize) -> Vec<Unreachable> {
        let fd = socket.as_raw_fd();
        let mut out = Vec::new();
        let mut data = [0u8; 256];
        for _ in 0..limit {
            let mut cmsg = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6);
            let mut iov = [IoSliceMut::new(&mut data)];
            let Ok(msg) = recvmsg::<SockaddrStorage>(
                fd,
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
            ) else {
                break; // EAGAIN: the queue is empty
            };
            let dest = dest_of(msg.address);
            let Ok(cmsgs) = msg.cmsgs() else {
                continue;
            };
            for c in cmsgs {
                let err = match c {
                    ControlMessageOwned::Ipv4RecvErr(e, _)
                    | ControlMessageOwned::Ipv6RecvErr(e, _) => e,
                    _ => continue,
                };
                if let (Some(dest), Some(reason)) =
                    (dest, reason(err.ee_origin, err.ee_type, err.ee_code))
                {
                    out.push(Unreachable { dest, reason });
                }
            }
        }
        out
    }
}
