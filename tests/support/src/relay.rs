//! A TCP relay on 127.0.0.1 that a test can cut: clients connect to the relay, which connects
//! them to the target. [`Relay::cut`] closes every connection and refuses new ones until
//! [`Relay::mend`]: a client cut off from its server while the server and everyone else go on
//! (a node isolated from NATS). [`Relay::blackhole_current`] instead turns the connections it
//! carries into black holes (bytes swallowed, connections left open), as a NAT does when it
//! forgets a binding: the way to show that keep-alives find a dead flow; later connections
//! pass, like new bindings.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running relay; it stops when dropped.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    cut: AtomicBool,
    stop: AtomicBool,
    streams: Mutex<Vec<TcpStream>>,
    /// Connections relayed so far (each is numbered in this order).
    accepted: AtomicUsize,
    /// Connections numbered below this swallow every byte.
    blackhole_below: AtomicUsize,
}

impl State {
    fn close_all(&self) {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        for s in streams.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Relay {
    /// Relays a free port on 127.0.0.1 to `target`.
    ///
    /// # Panics
    /// When no port can be bound.
    pub fn start(target: SocketAddr) -> Relay {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("relay: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("relay: {e}"),
        };
        let _ = listener.set_nonblocking(true);
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        std::thread::spawn(move || accept(&listener, target, &shared));
        Relay { addr, state }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        self.state.close_all();
    }

    /// Relays again.
    pub fn mend(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// From now on, the connections relayed so far swallow every byte in both directions
    /// (they stay open); later connections pass.
    pub fn blackhole_current(&self) {
        let relayed = self.state.accepted.load(Ordering::SeqCst);
        self.state.blackhole_below.store(relayed, Ordering::SeqCst);
    }

    /// Connections relayed so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.state.close_all();
    }
}

fn accept(listener: &TcpListener, target: SocketAddr, state: &Arc<State>) {
    while !state.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                if state.cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
                    continue;
                };
                let number = state.accepted.fetch_add(1, Ordering::SeqCst);
                let pairs = [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ];
                {
                    let mut streams = state.streams.lock().unwrap_or_else(|p| p.into_inner());
                    streams.push(client);
                    streams.push(server);
                }
                for pair in pairs {
                    if let (Ok(from), Ok(to)) = pair {
                        let state = Arc::clone(state);
                        std::thread::spawn(move || pipe(from, to, number, &state));
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, number: usize, state: &State) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let swallowed = number < state.blackhole_below.load(Ordering::SeqCst);
                if !swallowed && to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_carries_bytes_until_it_is_cut() {
        let server = TcpListener::bind("127.0.0.1:0").expect("bind");
        let target = server.local_addr().expect("addr");
        std::thread::spawn(move || {
            while let Ok((mut s, _)) = server.accept() {
                std::thread::spawn(move || {
                    let mut b = [0u8; 64];
                    while let Ok(n) = s.read(&mut b) {
                        if n == 0 || s.write_all(&b[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let relay = Relay::start(target);
        let mut c = TcpStream::connect(relay.addr()).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c.write_all(b"ping").expect("write");
        let mut b = [0u8; 4];
        c.read_exact(&mut b).expect("echo");
        assert_eq!(&b, b"ping");
        relay.cut();
        let mut rest = [0u8; 4];
        assert!(
            matches!(c.read(&mut rest), Ok(0) | Err(_)),
            "cut closes the connection"
        );
        relay.mend();
        let mut d = TcpStream::connect(relay.addr()).expect("connect again");
        d.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        d.write_all(b"pong").expect("write");
        d.read_exact(&mut b).expect("echo");
        assert_eq!(&b, b"pong");
    }

    #[test]
    fn the_relay_relays_until_it_becomes_a_black_hole() {
        let server = TcpListener::bind("127.0.0.1:0").expect("listen");
        let relay = Relay::start(server.local_addr().expect("addr"));
        let mut client = TcpStream::connect(relay.addr()).expect("connect");
        let (mut upstream, _) = server.accept().expect("relayed");
        client.write_all(b"ping").expect("write");
        let mut buf = [0u8; 4];
        upstream.read_exact(&mut buf).expect("relayed bytes");
        assert_eq!(&buf, b"ping");
        relay.blackhole_current();
        client.write_all(b"lost").expect("write");
        upstream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        assert!(
            upstream.read(&mut buf).is_err(),
            "nothing passes a black hole"
        );
        // A new connection passes again.
        let mut again = TcpStream::connect(relay.addr()).expect("connect");
        let (mut upstream2, _) = server.accept().expect("relayed");
        again.write_all(b"next").expect("write");
        upstream2.read_exact(&mut buf).expect("relayed bytes");
        assert_eq!(&buf, b"next");
        assert_eq!(relay.accepted(), 2);
    }
}
