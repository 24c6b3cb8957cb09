//! A DNS server on 127.0.0.1 serving zones the test writes: unbound (Debian package
//! `unbound`) answering from zone files as an authority (`auth-zone`), on a port picked at run
//! time, over UDP and TCP. It never recurses and never sends a query anywhere
//! (`do-not-query-address` covers every address), so names outside the test's zones get
//! SERVFAIL at once and no traffic leaves loopback.
//!
//! ```no_run
//! # let bin = std::path::Path::new("/usr/sbin/unbound");
//! let dns = tapir_test_support::Dns::builder(bin)
//!     .zone("pbx.test.", "@ IN NAPTR 10 10 \"s\" \"SIP+D2U\" \"\" _sip._udp.pbx.test.\n\
//!                         _sip._udp IN SRV 10 0 5060 host.pbx.test.\n\
//!                         host IN A 127.0.0.1")
//!     .start();
//! let server = dns.addr(); // "127.0.0.1:<port>", for the driver's `dns.servers`
//! ```

use crate::ports::free_port;
use crate::server::{Ready, Server};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to start the DNS server; made by [`Dns::builder`].
#[derive(Debug, Clone)]
pub struct DnsBuilder {
    bin: PathBuf,
    zones: Vec<(String, String)>,
    name: String,
}

impl DnsBuilder {
    /// Serves the zone `origin` (e.g. `"pbx.test."`) with `records` in zone-file syntax,
    /// names relative to the origin; the SOA and NS records are added. Records get a TTL of 1 s.
    pub fn zone(mut self, origin: &str, records: &str) -> Self {
        let origin = format!("{}.", origin.trim_end_matches('.'));
        self.zones.push((origin, records.to_owned()));
        self
    }

    /// The name used in messages (default `unbound`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Starts the server; it is started once its UDP port is bound.
    ///
    /// # Panics
    /// When it exits at start (a zone that does not parse is fatal) or does not bind in time;
    /// the message carries its log.
    pub fn start(self) -> Dns {
        let port = free_port();
        let mut conf = String::new();
        let _ = writeln!(conf, "server:");
        for line in [
            format!("interface: 127.0.0.1@{port}"),
            format!("port: {port}"),
            "do-ip6: no".into(),
            "do-daemonize: no".into(),
            "chroot: \"\"".into(),
            "username: \"\"".into(),
            // The server runs in its own folder: zone files are read from there.
            "directory: \".\"".into(),
            "pidfile: \"\"".into(),
            "use-syslog: no".into(),
            "logfile: \"\"".into(),
            "verbosity: 1".into(),
            "num-threads: 1".into(),
            "outgoing-range: 32".into(),
            "module-config: \"iterator\"".into(),
            // Never ask anyone: only the zones below are answered.
            "do-not-query-address: 0.0.0.0/0".into(),
            "do-not-query-address: ::/0".into(),
            "access-control: 127.0.0.0/8 allow".into(),
        ] {
            let _ = writeln!(conf, "  {line}");
        }
        let mut files = Vec::new();
        for (i, (origin, records)) in self.zones.iter().enumerate() {
            // Special-use names (`test.`, `invalid.`, ...) are local zones of unbound's own
            // unless switched off.
            if let Some(tld) = origin.trim_end_matches('.').rsplit('.').next() {
                let _ = writeln!(conf, "  local-zone: \"{tld}.\" nodefault");
            }
            let file = format!("zone{i}.db");
            files.push((file, zone_file(origin, records)));
        }
        for (i, (origin, _)) in self.zones.iter().enumerate() {
            let _ = writeln!(conf, "auth-zone:");
            let _ = writeln!(conf, "  name: \"{origin}\"");
            let _ = writeln!(conf, "  zonefile: \"zone{i}.db\"");
            let _ = writeln!(conf, "  for-downstream: yes");
            let _ = writeln!(conf, "  for-upstream: no");
            let _ = writeln!(conf, "  fallback-enabled: no");
        }
        let mut builder = Server::builder(self.name, &self.bin)
            .file("unbound.conf", conf)
            .args(["-d", "-c", "{dir}/unbound.conf"])
            .ready(Ready::Udp(port))
            .within(Duration::from_secs(15));
        for (file, text) in files {
            builder = builder.file(file, text);
        }
        let mut server = builder.start();
        let first = self
            .zones
            .first()
            .map_or(".", |(origin, _)| origin.as_str());
        wait_answering(&mut server, port, first, Duration::from_secs(15));
        Dns { server, port }
    }
}

/// A minimal DNS query for `name` and type `qtype` (RFC 1035 §4.1), id 0x7470.
fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0x74, 0x70, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
    q
}

/// Waits until `server` answers a query for `name` (it binds its port before it reads its
/// zones, and a zone that does not parse makes it exit after that).
///
/// # Panics
/// When it exits first, or does not answer within `limit`; the message carries its log.
fn wait_answering(server: &mut Server, port: u16, name: &str, limit: Duration) {
    let end = Instant::now() + limit;
    let sock = match std::net::UdpSocket::bind("127.0.0.1:0") {
        Ok(s) => s,
        Err(e) => panic!("cannot bind a UDP socket to ask unbound: {e}"),
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 1500];
    loop {
        const SOA: u16 = 6;
        let _ = sock.send_to(&query(name, SOA), ("127.0.0.1", port));
        if let Ok(n) = sock.recv(&mut buf) {
            if n >= 12 && buf[0] == 0x74 && buf[1] == 0x70 {
                return;
            }
        }
        if let Some(status) = server.wait_exit(Duration::from_millis(1)) {
            panic!("unbound exited at start ({status}):\n{}", server.log());
        }
        if Instant::now() >= end {
            panic!("unbound did not answer within {limit:?}:\n{}", server.log());
        }
    }
}

fn zone_file(origin: &str, records: &str) -> String {
    format!(
        "$ORIGIN {origin}\n$TTL 1\n@ IN SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 1\n\
         @ IN NS ns.{origin}\n{records}\n"
    )
}

/// A running DNS server, stopped when dropped.
#[derive(Debug)]
pub struct Dns {
    server: Server,
    port: u16,
}

impl Dns {
    /// A DNS server run from the `unbound` binary `bin`.
    pub fn builder(bin: &Path) -> DnsBuilder {
        DnsBuilder {
            bin: bin.to_path_buf(),
            zones: Vec::new(),
            name: "unbound".into(),
        }
    }

    /// Its port on 127.0.0.1 (UDP and TCP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, as a driver's `dns.servers` entry.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.server.log()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// (rcode, answer count) of the reply to `name`/`qtype`.
    fn ask(dns: &Dns, name: &str, qtype: u16) -> (u8, u16) {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        sock.send_to(&query(name, qtype), dns.addr()).expect("send");
        let mut buf = [0u8; 1500];
        let n = sock.recv(&mut buf).expect("an answer");
        assert!(n >= 12 && buf[0] == 0x74 && buf[1] == 0x70, "not our reply");
        (buf[3] & 0x0f, u16::from_be_bytes([buf[6], buf[7]]))
    }

    #[test]
    fn serves_the_zones_it_was_given_and_nothing_else() {
        let Some(bin) = crate::programs::unbound() else {
            return;
        };
        let dns = Dns::builder(&bin)
            .zone(
                "pbx.test",
                "@ IN NAPTR 10 10 \"s\" \"SIP+D2U\" \"\" _sip._udp.pbx.test.\n\
                 _sip._udp IN SRV 10 0 5060 host\n\
                 host IN A 127.0.0.1",
            )
            .zone(
                "e164.arpa",
                "1.2 IN NAPTR 10 10 \"u\" \"E2U+sip\" \"!^.*$!sip:a@pbx.test!\" .",
            )
            .start();
        const A: u16 = 1;
        const SRV: u16 = 33;
        const NAPTR: u16 = 35;
        assert_eq!(ask(&dns, "pbx.test", NAPTR), (0, 1), "{}", dns.log());
        assert_eq!(ask(&dns, "_sip._udp.pbx.test", SRV), (0, 1));
        assert_eq!(ask(&dns, "host.pbx.test", A), (0, 1));
        assert_eq!(ask(&dns, "1.2.e164.arpa", NAPTR), (0, 1));
        assert_eq!(ask(&dns, "none.pbx.test", A), (3, 0), "NXDOMAIN");
        // Outside its zones it asks nobody: SERVFAIL.
        assert_eq!(ask(&dns, "example.com", A), (2, 0));
    }

    #[test]
    fn a_zone_that_does_not_parse_stops_the_test_with_the_log() {
        let Some(bin) = crate::programs::unbound() else {
            return;
        };
        let failed = std::panic::catch_unwind(|| {
            Dns::builder(&bin)
                .zone("bad.test", "x IN NAPTR 10 \"oops\"")
                .start()
        });
        let Err(panic) = failed else {
            panic!("a zone that does not parse was served");
        };
        let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            text.contains("exited at start") && text.contains("zone0.db"),
            "{text}"
        );
    }
}
