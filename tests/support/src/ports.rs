//! Ports picked at run time on 127.0.0.1 (bound, then released for the server), and waiting
//! until a server has bound its port.

use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

/// A port free for both UDP and TCP (SIP servers listen on both).
///
/// # Panics
/// When no such port is found in 200 tries (the machine is out of ports).
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let Ok(u) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = u.local_addr() else { continue };
        if TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no port free for UDP and TCP on 127.0.0.1");
}

/// A free UDP port.
///
/// # Panics
/// When none can be bound.
pub fn free_udp_port() -> u16 {
    match UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("no free UDP port on 127.0.0.1: {e}"),
    }
}

/// A free TCP port.
///
/// # Panics
/// When none can be bound.
pub fn free_tcp_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("no free TCP port on 127.0.0.1: {e}"),
    }
}

/// True while someone has bound UDP `port` on 127.0.0.1.
pub fn udp_taken(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_err()
}

/// True while someone listens on TCP `port` on 127.0.0.1 (checked by binding, so the server
/// never sees a stray connection).
pub fn tcp_taken(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_err()
}

/// Waits until UDP (or, with `tcp`, TCP) `port` is taken, at most `limit`; true if it was.
pub fn wait_taken(port: u16, tcp: bool, limit: Duration) -> bool {
    crate::wait::until(limit, || {
        let taken = if tcp {
            tcp_taken(port)
        } else {
            udp_taken(port)
        };
        taken.then_some(())
    })
    .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ports_are_free_and_taken_ones_are_seen() {
        let p = free_port();
        assert!(!udp_taken(p));
        let held = UdpSocket::bind(("127.0.0.1", p)).expect("bind");
        assert!(udp_taken(p));
        drop(held);
        let t = free_tcp_port();
        assert!(!tcp_taken(t));
        let l = TcpListener::bind(("127.0.0.1", t)).expect("listen");
        assert!(tcp_taken(t));
        assert!(wait_taken(t, true, Duration::from_secs(1)));
        drop(l);
        assert_ne!(free_udp_port(), 0);
    }
}
