//! Network middleboxes between tapir and a real server, in the test process, on loopback:
//!
//! - [`UdpNat`]: a NAT for UDP. tapir sends to an inside port per destination; the NAT sends
//!   on from one outside socket (so every destination sees the same mapped address, as with
//!   an endpoint-independent mapping) and passes the answers back. Loopback has no NAT, so
//!   this is how a test shows that the address a STUN server reports (the outside socket)
//!   ends up in Via and Contact. It records every datagram it carries out (the "wire").
//!
//! It runs on threads of its own and stops when dropped. The TCP middlebox (a relay that can
//! be cut or turned into a black hole) is [`crate::relay::Relay`].

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(50);
/// Most datagrams [`UdpNat`] keeps a copy of.
const WIRE_LOG: usize = 10_000;

fn bind_udp() -> UdpSocket {
    match UdpSocket::bind("127.0.0.1:0") {
        Ok(s) => {
            let _ = s.set_read_timeout(Some(POLL));
            s
        }
        Err(e) => panic!("middlebox: cannot bind UDP: {e}"),
    }
}

fn addr_of(s: &UdpSocket) -> SocketAddr {
    match s.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("middlebox: no local address: {e}"),
    }
}

/// One datagram the NAT carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Which destination (index given at start).
    pub to: usize,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A UDP NAT in front of fixed destinations.
#[derive(Debug)]
pub struct UdpNat {
    inside: Vec<SocketAddr>,
    outside: SocketAddr,
    wire: Arc<Mutex<Vec<Datagram>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl UdpNat {
    /// A NAT towards `destinations`; send to [`Self::inside`]`(i)` to reach destination `i`.
    ///
    /// # Panics
    /// When sockets cannot be bound.
    pub fn start(destinations: &[SocketAddr]) -> UdpNat {
        let outside = Arc::new(bind_udp());
        let outside_addr = addr_of(&outside);
        let stop = Arc::new(AtomicBool::new(false));
        let wire = Arc::new(Mutex::new(Vec::new()));
        let mut insides = Vec::new();
        let mut clients = Vec::new();
        let mut threads = Vec::new();
        for (i, dest) in destinations.iter().copied().enumerate() {
            let inside = Arc::new(bind_udp());
            let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
            insides.push(inside.clone());
            clients.push(client.clone());
            let (out, stop, wire) = (outside.clone(), stop.clone(), wire.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = inside.recv_from(&mut buf) else {
                        continue;
                    };
                    let bytes = buf[..n].to_vec();
                    if let Ok(mut c) = client.lock() {
                        *c = Some(from);
                    }
                    if let Ok(mut w) = wire.lock() {
                        if w.len() < WIRE_LOG {
                            w.push(Datagram {
                                to: i,
                                bytes: bytes.clone(),
                            });
                        }
                    }
                    let _ = out.send_to(&bytes, dest);
                }
            }));
        }
        let dests: Vec<SocketAddr> = destinations.to_vec();
        let (out, stop2) = (outside.clone(), stop.clone());
        let (ins, cls) = (insides.clone(), clients);
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = out.recv_from(&mut buf) else {
                    continue;
                };
                // Only answers from a destination pass (no unsolicited traffic in).
                let Some(i) = dests.iter().position(|d| *d == from) else {
                    continue;
                };
                let client = cls.get(i).and_then(|c| c.lock().ok().and_then(|c| *c));
                if let (Some(client), Some(inside)) = (client, ins.get(i)) {
                    let _ = inside.send_to(&buf[..n], client);
                }
            }
        }));
        UdpNat {
            inside: insides.iter().map(|s| addr_of(s)).collect(),
            outside: outside_addr,
            wire,
            stop,
            threads,
        }
    }

    /// Where to send to reach destination `i`.
    ///
    /// # Panics
    /// For an index that was not given at start.
    pub fn inside(&self, i: usize) -> SocketAddr {
        match self.inside.get(i) {
            Some(a) => *a,
            None => panic!("UdpNat has no destination {i}"),
        }
    }

    /// The address destinations see the traffic come from (the "public" address).
    pub fn outside(&self) -> SocketAddr {
        self.outside
    }

    /// The datagrams carried out so far.
    pub fn wire(&self) -> Vec<Datagram> {
        self.wire.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// How many datagrams to destination `i` satisfied `pred`.
    pub fn count(&self, i: usize, pred: impl Fn(&[u8]) -> bool) -> usize {
        self.wire()
            .iter()
            .filter(|d| d.to == i && pred(&d.bytes))
            .count()
    }
}

impl Drop for UdpNat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nat_maps_to_one_outside_address_and_passes_answers_back() {
        let server = bind_udp();
        let nat = UdpNat::start(&[addr_of(&server)]);
        let client = bind_udp();
        client.send_to(b"hello", nat.inside(0)).expect("send");
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).expect("arrives");
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(
            from,
            nat.outside(),
            "the server sees the NAT's outside socket"
        );
        server.send_to(b"back", from).expect("answer");
        let (n, from) = client.recv_from(&mut buf).expect("answer arrives");
        assert_eq!(&buf[..n], b"back");
        assert_eq!(from, nat.inside(0));
        assert_eq!(nat.count(0, |b| b == b"hello"), 1);
    }
}
