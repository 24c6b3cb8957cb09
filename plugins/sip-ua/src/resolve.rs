//! Locating a SIP server (RFC 3263 §4, without NAPTR): which transport, which port, which
//! addresses, in which order. A `sips:` URI (or `transport=tls`) means TLS over TCP: port 5061
//! by default and `_sips._tcp` SRV records (RFC 3263 §4.1, §4.2).
//!
//! The decisions are sans-I/O ([`plan`], [`order_srv`]); [`Resolver`] performs the look-ups:
//! SRV through hickory-resolver, A/AAAA through the system resolver (so `/etc/hosts` and
//! `localhost` work as users expect). IP literals never touch DNS.

use crate::header::Uri;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use thiserror::Error;

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// UDP, unreliable: the transaction layer retransmits.
    #[default]
    Udp,
    /// TCP, reliable.
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2), reliable.
    Tls,
}

impl Transport {
    /// The Via token.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// True if the transport is reliable.
    pub fn reliable(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }

    /// Parses `udp` / `tcp` / `tls` (any case).
    pub fn parse(text: &str) -> Option<Transport> {
        match text.to_ascii_lowercase().as_str() {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            "tls" => Some(Transport::Tls),
            _ => None,
        }
    }

    /// The port a URI without one means: 5061 for TLS, else 5060 (RFC 3261 §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            Transport::Udp | Transport::Tcp => 5060,
        }
    }

    /// The `transport` URI parameter a Contact names for this transport (none for UDP, the
    /// default). Decision: TLS is written `sip:...;transport=tls` rather than as a `sips:`
    /// Contact, because a `sips:` Contact would oblige every hop behind the PBX to TLS
    /// (RFC 5630 §3.1.3) while phones behind it commonly speak UDP.
    pub fn uri_param(self) -> Option<&'static str> {
        match self {
            Transport::Udp => None,
            Transport::Tcp => Some("tcp"),
            Transport::Tls => Some("tls"),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_token())
    }
}

/// Where to send: a transport and a socket address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Transport.
    pub transport: Transport,
    /// Address.
    pub addr: SocketAddr,
}

/// What look-ups a URI needs (RFC 3263 §4.1, §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The host is an IP literal: no DNS at all.
    Literal(Target),
    /// An explicit port: A/AAAA look-up of `host`.
    HostPort {
        /// Host name.
        host: String,
        /// Port.
        port: u16,
        /// Transport.
        transport: Transport,
    },
    /// No port: SRV `_sip._udp.host` / `_sip._tcp.host` / `_sips._tcp.host`, falling back to
    /// A/AAAA on the transport's default port.
    Srv {
        /// The SRV owner name.
        name: String,
        /// The host, for the fallback.
        host: String,
        /// Transport.
        transport: Transport,
    },
}

/// Why a URI could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResolveError {
    /// Not a SIP URI, an unknown transport, or `sips:` over UDP.
    #[error("cannot route to {0}")]
    Unroutable(String),
    /// No address found.
    #[error("no address for {0}")]
    NotFound(String),
}

/// Decides the look-ups for `uri`; `default_transport` applies when the URI has no
/// `transport` parameter. A `sips:` URI always means TLS (`transport=tcp` on it too, RFC 3261
/// §26.2.2); `sips:` with `transport=udp` cannot be served.
///
/// # Errors
/// [`ResolveError::Unroutable`] for unknown transports and `sips:` over UDP.
pub fn plan(uri: &Uri, default_transport: Transport) -> Result<Plan, ResolveError> {
    let named = match uri.transport() {
        Some(t) => {
            Some(Transport::parse(&t).ok_or_else(|| ResolveError::Unroutable(uri.to_string()))?)
        }
        None => None,
    };
    let transport = if uri.scheme == "sips" {
        if named == Some(Transport::Udp) {
            return Err(ResolveError::Unroutable(uri.to_string()));
        }
        Transport::Tls
    } else {
        named.unwrap_or(default_transport)
    };
    let bare = uri.host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(Plan::Literal(Target {
            transport,
            addr: SocketAddr::new(ip, uri.port.unwrap_or(transport.default_port())),
        }));
    }
    if let Some(port) = uri.port {
        return Ok(Plan::HostPort {
            host: uri.host.clone(),
            port,
            transport,
        });
    }
    let service = match transport {
        Transport::Udp => "_sip._udp",
        Transport::Tcp => "_sip._tcp",
        Transport::Tls => "_sips._tcp",
    };
    Ok(Plan::Srv {
        name: format!("{service}.{}.", uri.host.trim_end_matches('.')),
        host: uri.host.clone(),
        transport,
    })
}

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share within a priority.
    pub weight: u16,
    /// Port.
    pub port: u16,
    /// Target host.
    pub target: String,
}

/// Orders SRV records as RFC 2782 says: by priority, and within a priority by a weighted
/// random draw. `rand(n)` returns a number in `0..=n`; tests pass a fixed sequence.
pub fn order_srv(mut records: Vec<SrvRecord>, mut rand: impl FnMut(u32) -> u32) -> Vec<SrvRecord> {
    // A single "." target means "no service here" (RFC 2782).
    records.retain(|r| r.target != "." && !r.target.is_empty());
    records.sort_by_key(|r| (r.priority, r.weight));
    let mut out = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let prio = records[0].priority;
        let mut group: Vec<SrvRecord> = Vec::new();
        let mut rest = Vec::new();
        for r in records.drain(..) {
            if r.priority == prio {
                group.push(r);
            } else {
                rest.push(r);
            }
        }
        records = rest;
        // Zero weights first, as the RFC suggests, so they have a small chance.
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = rand(total).min(total);
            let mut running = 0u32;
            let mut chosen = group.len() - 1;
            for (i, r) in group.iter().enumerate() {
                running += u32::from(r.weight);
                if running >= pick {
                    chosen = i;
                    break;
                }
            }
            out.push(group.remove(chosen));
        }
    }
    out
}

/// Resolves URIs to ordered targets.
pub struct Resolver {
    dns: Option<hickory_resolver::TokioResolver>,
}

impl Default for Resolver {
    fn default() -> Self {
        Self::new()
    }
}

impl Resolver {
    /// A resolver using the system's DNS configuration (no DNS at all if it cannot be read;
    /// IP literals and explicit ports still resolve).
    pub fn new() -> Resolver {
        let dns = hickory_resolver::TokioResolver::builder_tokio()
            .ok()
            .map(|b| b.build())
            .and_then(Result::ok);
        Resolver { dns }
    }

    /// True when DNS (SRV) look-ups are available.
    pub fn has_dns(&self) -> bool {
        self.dns.is_some()
    }

    /// Resolves a URI into targets, best first.
    ///
    /// # Errors
    /// [`ResolveError`] when the URI is unroutable or nothing was found.
    pub async fn resolve(
        &self,
        uri: &Uri,
        default_transport: Transport,
    ) -> Result<Vec<Target>, ResolveError> {
        match plan(uri, default_transport)? {
            Plan::Literal(t) => Ok(vec![t]),
            Plan::HostPort {
                host,
                port,
                transport,
            } => lookup_host(&host, port, transport).await,
            Plan::Srv {
                name,
                host,
                transport,
            } => {
                let mut records = Vec::new();
                if let Some(dns) = &self.dns {
                    let lookup = tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        dns.srv_lookup(name.as_str()),
                    )
                    .await;
                    if let Ok(Ok(found)) = lookup {
                        for record in found.answers() {
                            let hickory_resolver::proto::rr::RData::SRV(srv) = &record.data else {
                                continue;
                            };
                            records.push(SrvRecord {
                                priority: srv.priority,
                                weight: srv.weight,
                                port: srv.port,
                                target: srv.target.to_utf8(),
                            });
                        }
                    }
                }
                if records.is_empty() {
                    return lookup_host(&host, transport.default_port(), transport).await;
                }
                let mut out = Vec::new();
                for r in order_srv(records, |n| fastrand::u32(0..=n))
                    .into_iter()
                    .take(8)
                {
                    if let Ok(t) =
                        lookup_host(r.target.trim_end_matches('.'), r.port, transport).await
                    {
                        out.extend(t);
                    }
                }
                if out.is_empty() {
                    return Err(ResolveError::NotFound(host));
                }
                Ok(out)
            }
        }
    }
}

async fn lookup_host(
    host: &str,
    port: u16,
    transport: Transport,
) -> Result<Vec<Target>, ResolveError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let found = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::lookup_host((bare, port)),
    )
    .await
    .map_err(|_| ResolveError::NotFound(host.to_owned()))?
    .map_err(|_| ResolveError::NotFound(host.to_owned()))?;
    let mut out: Vec<Target> = found.map(|addr| Target { transport, addr }).collect();
    // IPv4 first: most SIP deployments still listen there only.
    out.sort_by_key(|t| t.addr.is_ipv6());
    out.dedup();
    if out.is_empty() {
        return Err(ResolveError::NotFound(host.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    #[test]
    fn plans_follow_rfc3263() {
        let lit = Uri::parse("sip:100@[::1]:5070;transport=tcp").expect("uri");
        assert_eq!(
            plan(&lit, Transport::Udp),
            Ok(Plan::Literal(Target {
                transport: Transport::Tcp,
                addr: "[::1]:5070".parse().expect("addr")
            }))
        );
        let hp = Uri::parse("sip:100@pbx.example:5080").expect("uri");
        assert!(matches!(
            plan(&hp, Transport::Udp),
            Ok(Plan::HostPort { port: 5080, .. })
        ));
        let s = Uri::parse("sip:100@pbx.example").expect("uri");
        assert_eq!(
            plan(&s, Transport::Tcp),
            Ok(Plan::Srv {
                name: "_sip._tcp.pbx.example.".into(),
                host: "pbx.example".into(),
                transport: Transport::Tcp
            })
        );
        let bad = Uri::parse("sip:x@h;transport=sctp").expect("uri");
        assert!(plan(&bad, Transport::Udp).is_err());
    }

    #[test]
    fn sips_means_tls_on_5061_and_sips_srv() {
        let lit = Uri::parse("sips:100@127.0.0.1").expect("uri");
        assert_eq!(
            plan(&lit, Transport::Udp),
            Ok(Plan::Literal(Target {
                transport: Transport::Tls,
                addr: "127.0.0.1:5061".parse().expect("addr")
            }))
        );
        let named = Uri::parse("sip:100@[::1];transport=TLS").expect("uri");
        assert!(matches!(
            plan(&named, Transport::Udp),
            Ok(Plan::Literal(Target { transport: Transport::Tls, addr })) if addr.port() == 5061
        ));
        let srv = Uri::parse("sips:pbx.example").expect("uri");
        assert_eq!(
            plan(&srv, Transport::Tcp),
            Ok(Plan::Srv {
                name: "_sips._tcp.pbx.example.".into(),
                host: "pbx.example".into(),
                transport: Transport::Tls
            })
        );
        let over_tcp = Uri::parse("sips:pbx.example:5081;transport=tcp").expect("uri");
        assert!(matches!(
            plan(&over_tcp, Transport::Udp),
            Ok(Plan::HostPort {
                port: 5081,
                transport: Transport::Tls,
                ..
            })
        ));
        let udp = Uri::parse("sips:pbx.example;transport=udp").expect("uri");
        assert!(plan(&udp, Transport::Udp).is_err());
        assert_eq!(Transport::Tls.to_string(), "TLS");
        assert!(Transport::Tls.reliable());
        assert_eq!(Transport::parse("tls"), Some(Transport::Tls));
        assert_eq!(Transport::Udp.uri_param(), None);
        assert_eq!(Transport::Tls.uri_param(), Some("tls"));
    }

    #[test]
    fn srv_orders_by_priority_then_weight() {
        let recs = vec![
            srv(20, 0, "c"),
            srv(10, 60, "a"),
            srv(10, 40, "b"),
            srv(5, 0, "."),
        ];
        // Draw 0 picks the first of the weight-sorted group each time: b (40) then a.
        let order: Vec<_> = order_srv(recs.clone(), |_| 0)
            .into_iter()
            .map(|r| r.target)
            .collect();
        assert_eq!(order, ["b", "a", "c"]);
        // Draw the maximum: the last (a), then b.
        let order: Vec<_> = order_srv(recs, |n| n)
            .into_iter()
            .map(|r| r.target)
            .collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn dns_client_builds_outside_a_runtime() {
        // Drivers build their resolver before their runtime exists.
        if std::path::Path::new("/etc/resolv.conf").exists() {
            assert!(Resolver::new().has_dns());
        }
    }

    #[tokio::test]
    async fn resolves_literals_and_localhost() {
        let r = Resolver::new();
        let t = r
            .resolve(
                &Uri::parse("sip:1@127.0.0.1:5099").expect("uri"),
                Transport::Udp,
            )
            .await;
        assert_eq!(t.map(|v| v[0].addr.port()), Ok(5099));
        let t = r
            .resolve(
                &Uri::parse("sip:1@localhost:5098").expect("uri"),
                Transport::Udp,
            )
            .await;
        assert!(t.is_ok_and(|v| v
            .iter()
            .all(|t| t.addr.ip().is_loopback() && t.addr.port() == 5098)));
    }
}
