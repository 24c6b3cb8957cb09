//! Ports picked at run time on 127.0.0.1 (checked free, for a server to bind), and waiting
//! until a server has bound its port.

use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

// Why not `bind(":0")` and release: the kernel hands out the same ephemeral ports to the
// sockets the code under test binds to port 0 (and to a concurrent test's probe), so a port
// picked that way can be taken again before the server binds it; with many tests in parallel
// a SIPp then missed its call. Ports here come from just below the kernel's ephemeral range,
// which it never picks on its own, and one process never hands out a port twice.

/// The range ports are picked from: `(first, count)`.
fn range() -> (u32, u32) {
    static RANGE: OnceLock<(u32, u32)> = OnceLock::new();
    *RANGE.get_or_init(|| {
        let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse::<u32>().ok())
            .unwrap_or(32768);
        if low >= 12_000 {
            (low - 10_000, 10_000)
        } else {
            // An unusual kernel setting: the registered ports above it instead.
            (40_000, 10_000)
        }
    })
}

/// The next candidate port of this process (each handed out once).
fn next_candidate() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static START: OnceLock<u32> = OnceLock::new();
    let (first, count) = range();
    // Processes run one after another but may overlap (a test binary's leftovers): each starts
    // at its own place in the range.
    let start = *START.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        (std::process::id().wrapping_mul(7919) ^ nanos) % count
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    u16::try_from(first + (start + n) % count).unwrap_or(u16::MAX)
}

/// The first candidate `free` accepts, from at most 500 tries.
fn pick(what: &str, free: impl Fn(u16) -> bool) -> u16 {
    for _ in 0..500 {
        let port = next_candidate();
        if free(port) {
            return port;
        }
    }
    panic!("no port free for {what} on 127.0.0.1");
}

/// A port free for both UDP and TCP (SIP servers listen on both).
///
/// # Panics
/// When no such port is found in 500 tries (the machine is out of ports).
pub fn free_port() -> u16 {
    pick("UDP and TCP", |p| !udp_taken(p) && !tcp_taken(p))
}

/// A free UDP port.
///
/// # Panics
/// When none can be found.
pub fn free_udp_port() -> u16 {
    pick("UDP", |p| !udp_taken(p))
}

/// A free TCP port.
///
/// # Panics
/// When none can be found.
pub fn free_tcp_port() -> u16 {
    pick("TCP", |p| !tcp_taken(p))
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
    fn a_port_is_handed_out_once_and_never_from_the_kernels_own_range() {
        let (first, count) = range();
        let picked: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut unique = picked.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), picked.len(), "{picked:?}");
        for p in picked {
            assert!((first..first + count).contains(&u32::from(p)), "{p}");
            // What the code under test gets for port 0 is never one of ours.
            let kernel = UdpSocket::bind("127.0.0.1:0").expect("bind");
            assert_ne!(kernel.local_addr().expect("addr").port(), p);
        }
    }

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
