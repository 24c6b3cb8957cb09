//! NAT traversal settings and the keep-alive schedule of registered flows (RFC 5626 §4.4),
//! sans-I/O.
//!
//! - [`NatConfig`] is the `nat` table of a driver's configuration: a STUN server to learn the
//!   public address from (used in Via and Contact), and keep-alives.
//! - [`Flows`] decides when each flow (a registrar's transport and address) gets a keep-alive
//!   and when a flow counts as failed. The endpoint sends the pings and reports pongs; the
//!   registration loop re-registers when its flow fails.
//!
//! Keep-alives (RFC 5626 §4.4.1, §4.4.2): on TCP and TLS a "ping" is CRLFCRLF and the "pong"
//! a CRLF; on UDP either a CRLFCRLF datagram (no answer) or a STUN Binding request (answered).
//! Each is sent at a random 80 to 100 % of the interval after the previous one, so lines that
//! registered together do not ping together. A flow fails when its pong does not arrive within
//! `pong_timeout_secs` (10 s, RFC 5626 §4.4.1), when a STUN answer names another mapped address
//! than the one before (the NAT rebound it, §4.4.2), or when its connection closes.
//!
//! Decision: a missing pong fails a flow only once that flow's peer has answered a ping before.
//! Servers that do not implement RFC 5626 keep-alives (many PBXs ignore CRLF and STUN) would
//! otherwise look dead every interval and be re-registered for nothing; for them the pings
//! still keep NAT bindings open, and a dead connection is still found by a transaction that
//! times out (the endpoint then closes it) or by the connection closing.

use serde::Deserialize;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What a UDP keep-alive is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UdpKeepalive {
    /// A CRLFCRLF datagram (RFC 5626 §3.5.1): keeps the NAT binding, learns nothing.
    #[default]
    Crlf,
    /// A STUN Binding request to the registrar's SIP port (RFC 5626 §4.4.2): answered by
    /// servers that support it, which proves the flow alive and shows a rebinding NAT.
    Stun,
}

fn default_stun_refresh() -> u64 {
    300
}
fn default_keepalive() -> u64 {
    120
}
fn default_pong_timeout() -> u64 {
    10
}

/// The `nat` table of a SIP driver's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatConfig {
    /// STUN server (`host[:port]`, port 3478 by default) asked for the address our UDP socket
    /// appears from; that address then goes into Via and Contact (UDP: the mapped address and
    /// port; TCP/TLS: the mapped address with our listening port). Unset: the local address.
    pub stun_server: Option<String>,
    /// Seconds between STUN look-ups (default 300).
    pub stun_refresh_secs: u64,
    /// Seconds between CRLF keep-alives on registered TCP/TLS flows (default 120; 0 = none).
    pub keepalive_secs: u64,
    /// Seconds between keep-alives on registered UDP flows (default 0 = none).
    pub udp_keepalive_secs: u64,
    /// What the UDP keep-alive is: `crlf` (default) or `stun`.
    pub udp_keepalive: UdpKeepalive,
    /// Seconds to wait for a pong before a flow counts as failed (default 10).
    pub pong_timeout_secs: u64,
}

impl Default for NatConfig {
    fn default() -> Self {
        NatConfig {
            stun_server: None,
            stun_refresh_secs: default_stun_refresh(),
            keepalive_secs: default_keepalive(),
            udp_keepalive_secs: 0,
            udp_keepalive: UdpKeepalive::Crlf,
            pong_timeout_secs: default_pong_timeout(),
        }
    }
}

impl NatConfig {
    /// Checks the values; the sentence names the key.
    ///
    /// # Errors
    /// A sentence for the operator.
    pub fn check(&self) -> Result<(), String> {
        if let Some(s) = &self.stun_server {
            if stun_host_port(s).is_none() {
                return Err(format!("nat.stun_server {s:?} is not host[:port]"));
            }
        }
        if !(5..=86_400).contains(&self.stun_refresh_secs) {
            return Err("nat.stun_refresh_secs must be 5..=86400".into());
        }
        if self.keepalive_secs > 3600 || self.udp_keepalive_secs > 3600 {
            return Err("nat.keepalive_secs and nat.udp_keepalive_secs must be 0..=3600".into());
        }
        if !(1..=120).contains(&self.pong_timeout_secs) {
            return Err("nat.pong_timeout_secs must be 1..=120".into());
        }
        Ok(())
    }

    /// The keep-alive interval for a flow over a reliable (TCP/TLS) or UDP transport; `None`
    /// when those keep-alives are off.
    pub fn interval(&self, reliable: bool) -> Option<Duration> {
        let secs = if reliable {
            self.keepalive_secs
        } else {
            self.udp_keepalive_secs
        };
        (secs > 0).then(|| Duration::from_secs(secs))
    }
}

/// `host[:port]` of a STUN server, the port defaulting to 3478 (RFC 5389 §9).
pub fn stun_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = crate::header::split_host_port(text.trim())?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Some((host, port.unwrap_or(3478)))
}

/// What [`Flows`] asks the endpoint to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowAction<K> {
    /// Send a keep-alive on the flow.
    Ping(K),
    /// The flow failed; tell its registrations.
    Failed(K, &'static str),
}

#[derive(Debug, Clone)]
struct Flow {
    interval: Duration,
    next: Instant,
    /// A ping is out; its pong is due by then.
    due: Option<Instant>,
    /// The peer has answered a ping on this flow.
    answers: bool,
    /// The mapped address the last STUN answer named.
    mapped: Option<SocketAddr>,
}

/// The keep-alive schedule of every flow of an endpoint, keyed by `K` (transport and address).
#[derive(Debug)]
pub struct Flows<K> {
    flows: HashMap<K, Flow>,
    pong_timeout: Duration,
    rng: fastrand::Rng,
}

impl<K: Copy + Eq + Hash> Flows<K> {
    /// No flows; pongs are due within `pong_timeout`.
    pub fn new(pong_timeout: Duration) -> Flows<K> {
        Flows {
            flows: HashMap::new(),
            pong_timeout,
            rng: fastrand::Rng::new(),
        }
    }

    /// The same with a fixed random seed (tests).
    pub fn with_seed(pong_timeout: Duration, seed: u64) -> Flows<K> {
        Flows {
            flows: HashMap::new(),
            pong_timeout,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    fn jittered(&mut self, interval: Duration) -> Duration {
        interval.mul_f64(0.8 + 0.2 * self.rng.f64())
    }

    /// Starts keeping `key` alive every `interval` (no change when it is kept already).
    pub fn add(&mut self, key: K, interval: Duration, now: Instant) {
        if self.flows.contains_key(&key) {
            return;
        }
        let next = now + self.jittered(interval);
        self.flows.insert(
            key,
            Flow {
                interval,
                next,
                due: None,
                answers: false,
                mapped: None,
            },
        );
    }

    /// Stops keeping `key` alive.
    pub fn remove(&mut self, key: &K) {
        self.flows.remove(key);
    }

    /// True while `key` is kept alive.
    pub fn contains(&self, key: &K) -> bool {
        self.flows.contains_key(key)
    }

    /// How many flows are kept alive.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// True when no flow is kept alive.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The flows' keys.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.flows.keys()
    }

    /// The earliest time [`Self::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.flows
            .values()
            .map(|f| match f.due {
                Some(d) => d.min(f.next),
                None => f.next,
            })
            .min()
    }

    /// Pings that are due, and flows whose pong is overdue (failed, when the peer answered
    /// pings before; the schedule goes on for the next connection).
    pub fn on_timer(&mut self, now: Instant) -> Vec<FlowAction<K>> {
        let mut out = Vec::new();
        let keys: Vec<K> = self.flows.keys().copied().collect();
        for key in keys {
            let pong_timeout = self.pong_timeout;
            let Some(flow) = self.flows.get(&key) else {
                continue;
            };
            let (interval, overdue, ping) = (
                flow.interval,
                flow.due.is_some_and(|d| now >= d),
                now >= flow.next,
            );
            let answers = flow.answers;
            if overdue {
                if let Some(flow) = self.flows.get_mut(&key) {
                    flow.due = None;
                    if answers {
                        // Once failed, the next connection must prove itself again.
                        flow.answers = false;
                        flow.mapped = None;
                        out.push(FlowAction::Failed(key, "no keep-alive pong in time"));
                    }
                }
                continue;
            }
            if ping {
                let next = now + self.jittered(interval);
                if let Some(flow) = self.flows.get_mut(&key) {
                    flow.next = next;
                    if flow.due.is_none() {
                        flow.due = Some(now + pong_timeout);
                    }
                }
                out.push(FlowAction::Ping(key));
            }
        }
        out
    }

    /// A pong (CRLF, or a STUN answer with the `mapped` address it names) arrived on `key`.
    /// Returns a failure when the mapped address changed (the NAT rebound the flow).
    pub fn on_pong(&mut self, key: &K, mapped: Option<SocketAddr>) -> Option<FlowAction<K>> {
        let flow = self.flows.get_mut(key)?;
        flow.due = None;
        flow.answers = true;
        let before = match mapped {
            Some(m) => flow.mapped.replace(m),
            None => None,
        };
        match (before, mapped) {
            (Some(b), Some(m)) if b != m => Some(FlowAction::Failed(
                *key,
                "the NAT mapping of the flow changed",
            )),
            _ => None,
        }
    }

    /// The flow's connection closed: no pong is awaited; it must prove itself again.
    pub fn on_closed(&mut self, key: &K) {
        if let Some(flow) = self.flows.get_mut(key) {
            flow.due = None;
            flow.answers = false;
            flow.mapped = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn config_defaults_and_checks() {
        let c: NatConfig = serde_json::from_str("{}").expect("defaults");
        assert_eq!(c, NatConfig::default());
        assert_eq!(c.interval(true), Some(120 * S));
        assert_eq!(c.interval(false), None);
        assert!(c.check().is_ok());
        let c: NatConfig = serde_json::from_str(
            r#"{"stun_server": "stun.example.com", "udp_keepalive_secs": 25, "udp_keepalive": "stun"}"#,
        )
        .expect("fields");
        assert_eq!(c.udp_keepalive, UdpKeepalive::Stun);
        assert_eq!(c.interval(false), Some(25 * S));
        assert!(c.check().is_ok());
        assert!(serde_json::from_str::<NatConfig>(r#"{"udp_keepalive": "ping"}"#).is_err());
        assert!(serde_json::from_str::<NatConfig>(r#"{"stun": "x"}"#).is_err());
        let bad = NatConfig {
            stun_server: Some("no port:x".into()),
            ..NatConfig::default()
        };
        assert!(bad.check().unwrap_err().contains("stun_server"));
        let bad = NatConfig {
            pong_timeout_secs: 0,
            ..NatConfig::default()
        };
        assert!(bad.check().unwrap_err().contains("pong_timeout_secs"));
        assert_eq!(
            stun_host_port("stun.example.com"),
            Some(("stun.example.com".into(), 3478))
        );
        assert_eq!(stun_host_port("[::1]:3479"), Some(("::1".into(), 3479)));
    }

    #[test]
    fn pings_come_at_80_to_100_percent_of_the_interval() {
        let t0 = Instant::now();
        let mut f: Flows<u8> = Flows::with_seed(10 * S, 7);
        f.add(1, 100 * S, t0);
        let first = f.next_deadline().expect("scheduled");
        assert!(first >= t0 + 80 * S && first <= t0 + 100 * S);
        assert!(f.on_timer(first - S).is_empty());
        assert_eq!(f.on_timer(first), vec![FlowAction::Ping(1)]);
        // The pong is due 10 s later.
        assert_eq!(f.next_deadline(), Some(first + 10 * S));
        assert_eq!(f.on_pong(&1, None), None);
        let second = f.next_deadline().expect("next ping");
        assert!(second >= first + 80 * S && second <= first + 100 * S);
        // Adding a kept flow again changes nothing.
        f.add(1, S, first);
        assert_eq!(f.next_deadline(), Some(second));
    }

    #[test]
    fn a_flow_that_answered_fails_when_a_pong_is_missing() {
        let t0 = Instant::now();
        let mut f: Flows<u8> = Flows::with_seed(10 * S, 1);
        f.add(1, 20 * S, t0);
        let ping = f.next_deadline().expect("ping");
        assert_eq!(f.on_timer(ping), vec![FlowAction::Ping(1)]);
        f.on_pong(&1, None);
        let ping = f.next_deadline().expect("ping");
        assert_eq!(f.on_timer(ping), vec![FlowAction::Ping(1)]);
        // No pong: at the deadline the flow fails, once.
        assert!(f.on_timer(ping + 9 * S).is_empty());
        assert_eq!(
            f.on_timer(ping + 10 * S),
            vec![FlowAction::Failed(1, "no keep-alive pong in time")]
        );
        assert!(f.contains(&1), "the flow stays for the next connection");
        // The next ping goes out on schedule; without an answer it does not fail again until
        // the peer has answered once more.
        let next = f.next_deadline().expect("next");
        assert_eq!(f.on_timer(next), vec![FlowAction::Ping(1)]);
        assert!(f.on_timer(next + 10 * S).is_empty());
    }

    #[test]
    fn a_peer_that_never_answers_is_not_declared_dead() {
        let t0 = Instant::now();
        let mut f: Flows<u8> = Flows::with_seed(10 * S, 3);
        f.add(9, 30 * S, t0);
        let mut now = t0;
        let mut pings = 0;
        for _ in 0..20 {
            now = f.next_deadline().expect("deadline");
            for a in f.on_timer(now) {
                match a {
                    FlowAction::Ping(_) => pings += 1,
                    FlowAction::Failed(..) => panic!("declared dead without ever answering"),
                }
            }
        }
        assert!(pings >= 8, "{pings} pings by {:?}", now - t0);
    }

    #[test]
    fn a_changed_stun_mapping_fails_the_flow() {
        let t0 = Instant::now();
        let mut f: Flows<u8> = Flows::with_seed(10 * S, 5);
        f.add(2, 25 * S, t0);
        let a: SocketAddr = "198.51.100.1:4000".parse().expect("addr");
        let b: SocketAddr = "198.51.100.1:4001".parse().expect("addr");
        assert_eq!(f.on_pong(&2, Some(a)), None);
        assert_eq!(f.on_pong(&2, Some(a)), None);
        assert_eq!(
            f.on_pong(&2, Some(b)),
            Some(FlowAction::Failed(2, "the NAT mapping of the flow changed"))
        );
        // A closed connection forgets what the flow proved.
        f.on_closed(&2);
        assert_eq!(f.on_pong(&2, Some(a)), None);
        f.remove(&2);
        assert!(f.is_empty());
        assert_eq!(f.on_pong(&2, None), None);
    }
}
