//! The addresses an endpoint advertises in Via and Contact: one home for the choice, used by
//! [`super::Endpoint::local_addr_for`] (drivers' Contact and SDP) and by the task's Via.

use crate::resolve::{Target, Transport};
use std::net::{IpAddr, SocketAddr};
use tokio::sync::watch;

/// The endpoint's bound addresses and the public address STUN reported.
#[derive(Debug, Clone)]
pub(super) struct Local {
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    /// The TLS listener (only with a certificate).
    pub tls: Option<SocketAddr>,
    /// Set by the endpoint task from STUN answers.
    pub public: watch::Receiver<Option<SocketAddr>>,
}

impl Local {
    /// The bound address that a transport's Via and Contact name: without a TLS listener, TLS
    /// names the TCP port (see the module documentation of `endpoint`).
    pub fn bound(&self, transport: Transport) -> SocketAddr {
        match transport {
            Transport::Udp => self.udp,
            Transport::Tcp => self.tcp,
            Transport::Tls => self.tls.unwrap_or(self.tcp),
        }
    }

    /// Where a peer at `target` reaches us: the STUN-mapped address (UDP: address and port;
    /// TCP/TLS: the address with our listening port, since a NAT maps no listener), else the
    /// bound address, or for a wildcard bind the address the OS routes from towards `target`.
    pub fn advertised(&self, target: &Target) -> SocketAddr {
        let bound = self.bound(target.transport);
        if let Some(public) = *self.public.borrow() {
            return match target.transport {
                Transport::Udp => public,
                Transport::Tcp | Transport::Tls => SocketAddr::new(public.ip(), bound.port()),
            };
        }
        if !bound.ip().is_unspecified() {
            return bound;
        }
        SocketAddr::new(route_source(target.addr), bound.port())
    }
}

/// The local address the OS would send from towards `dest` (loopback when it cannot tell).
fn route_source(dest: SocketAddr) -> IpAddr {
    let probe_bind: SocketAddr = if dest.is_ipv6() {
        SocketAddr::from(([0u16; 8], 0))
    } else {
        SocketAddr::from(([0, 0, 0, 0], 0))
    };
    std::net::UdpSocket::bind(probe_bind)
        .and_then(|s| s.connect(dest).and_then(|()| s.local_addr()))
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(transport: Transport) -> Target {
        Target {
            transport,
            addr: "127.0.0.1:5060".parse().expect("addr"),
        }
    }

    #[test]
    fn public_address_wins_and_keeps_listening_ports_for_streams() {
        let (tx, rx) = watch::channel(None);
        let local = Local {
            udp: "0.0.0.0:5070".parse().expect("addr"),
            tcp: "0.0.0.0:5070".parse().expect("addr"),
            tls: None,
            public: rx,
        };
        assert_eq!(
            local.advertised(&target(Transport::Udp)),
            "127.0.0.1:5070".parse().expect("addr")
        );
        tx.send_replace(Some("198.51.100.7:40000".parse().expect("addr")));
        assert_eq!(
            local.advertised(&target(Transport::Udp)),
            "198.51.100.7:40000".parse().expect("addr")
        );
        assert_eq!(
            local.advertised(&target(Transport::Tls)),
            "198.51.100.7:5070".parse().expect("addr"),
            "no TLS listener: the TCP port"
        );
    }

    #[test]
    fn tls_names_its_listener() {
        let (_tx, rx) = watch::channel(None);
        let local = Local {
            udp: "127.0.0.1:5060".parse().expect("addr"),
            tcp: "127.0.0.1:5060".parse().expect("addr"),
            tls: Some("127.0.0.1:5061".parse().expect("addr")),
            public: rx,
        };
        assert_eq!(local.advertised(&target(Transport::Tls)).port(), 5061);
        assert_eq!(local.advertised(&target(Transport::Tcp)).port(), 5060);
    }
}
