//! coturn's `turnserver` as a plain STUN server on 127.0.0.1 (`stun-only`: no relay, no TURN,
//! no TLS, no CLI), from a configuration file the test writes, stopped with its process group.

use crate::ports::free_udp_port;
use crate::server::{Ready, Server};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// A running STUN server.
#[derive(Debug)]
pub struct Coturn {
    server: Server,
    port: u16,
}

impl Coturn {
    /// Starts `turnserver` (`bin`) as a STUN-only server on a free UDP port of 127.0.0.1.
    ///
    /// # Panics
    /// When it exits at start or does not bind in time (with its log).
    pub fn start(bin: &Path) -> Coturn {
        let port = free_udp_port();
        let config = format!(
            "listening-ip=127.0.0.1\nlistening-port={port}\nstun-only\nno-tls\nno-dtls\nno-tcp\n\
             no-cli\nno-rfc5780\nno-software-attribute\nlog-file=stdout\nsimple-log\n\
             pidfile={{dir}}/turnserver.pid\nuserdb={{dir}}/turndb\n"
        );
        let server = Server::builder("turnserver", bin)
            .file("turnserver.conf", config)
            .args(["-c", "{dir}/turnserver.conf"])
            .ready(Ready::Udp(port))
            .within(Duration::from_secs(15))
            .start();
        Coturn { server, port }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// What it logged.
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Stops it now.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn answers_a_binding_request_with_our_address() {
        let Some(bin) = crate::programs::turnserver() else {
            return;
        };
        let stun = Coturn::start(&bin);
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        // A Binding request: type 1, length 0, the magic cookie, a transaction ID.
        let mut req = vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        req.extend_from_slice(&[7u8; 12]);
        sock.send_to(&req, stun.addr()).expect("send");
        let mut buf = [0u8; 1500];
        let (n, _) = sock.recv_from(&mut buf).expect("an answer");
        assert!(n >= 20, "{n} bytes");
        assert_eq!(&buf[..2], &[0x01, 0x01], "a Binding success response");
        assert_eq!(&buf[8..20], &[7u8; 12]);
    }
}
