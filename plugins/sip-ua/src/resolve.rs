//! Locating a SIP server (RFC 3263 §4): which transport, which port, which addresses, in which
//! order, and what to do when one does not answer.
//!
//! The decisions are sans-I/O: [`plan`] (what a URI needs), [`naptr`] (RFC 3263 §4.1 NAPTR
//! selection), [`srv`] (RFC 2782 ordering), [`e164`] (ENUM, RFC 6116), [`failover`] (RFC 3263
//! §4.3: when to move to the next target). [`Resolver`] performs the look-ups, against the
//! system's DNS or against the servers a driver's [`DnsConfig`] names. IP literals never touch
//! DNS.

pub mod config;
pub mod e164;
pub mod failover;
mod lookup;
pub mod naptr;
pub mod srv;

pub use config::{DnsConfig, DnsConfigError, DnsSettings, LineDns};
pub use failover::Failover;
pub use lookup::Resolver;
pub use srv::{order_srv, SrvRecord};

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
    /// TLS over TCP (RFC 3261 §26.2; `sips:` URIs, `SIPS+D2T` NAPTR services, `_sips._tcp`
    /// SRV, port 5061), reliable. Handed out only by a resolver told the endpoint has TLS.
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

    /// The port used when neither the URI nor DNS names one (RFC 3261 §19.1.2).
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

    /// The SRV owner name of this transport's SIP service at `host` (RFC 3263 §4.2):
    /// `_sip._udp.host.`, `_sip._tcp.host.`, `_sips._tcp.host.`.
    pub fn srv_name(self, host: &str) -> String {
        let host = host.trim_end_matches('.');
        match self {
            Transport::Udp => format!("_sip._udp.{host}."),
            Transport::Tcp => format!("_sip._tcp.{host}."),
            Transport::Tls => format!("_sips._tcp.{host}."),
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

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.transport, self.addr)
    }
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
    /// The URI names its transport but no port: SRV for that transport, then A/AAAA on the
    /// transport's default port.
    Srv {
        /// The SRV owner name.
        name: String,
        /// The host, for the fallback.
        host: String,
        /// Transport.
        transport: Transport,
    },
    /// Neither transport nor port: NAPTR first, then SRV for each usable transport (the
    /// default one first), then A/AAAA with the default transport (RFC 3263 §4.1).
    Naptr {
        /// The host whose NAPTR records are read.
        host: String,
        /// A `sips:` URI: only TLS may be used.
        sips: bool,
        /// The transport when DNS says nothing (the line's configured one).
        default: Transport,
    },
}

/// Why a URI could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResolveError {
    /// Not a SIP URI, or a transport the endpoint does not offer.
    #[error("cannot route to {0}")]
    Unroutable(String),
    /// No address found.
    #[error("no address for {0}")]
    NotFound(String),
}

/// Decides the look-ups for `uri`. `default_transport` applies when the URI has no `transport`
/// parameter (and DNS does not choose one); `usable` are the transports the endpoint can send
/// on.
///
/// # Errors
/// [`ResolveError::Unroutable`] for other schemes, unknown transports, and transports not in
/// `usable` (a `sips:` URI without TLS).
pub fn plan(
    uri: &Uri,
    default_transport: Transport,
    usable: &[Transport],
) -> Result<Plan, ResolveError> {
    let unroutable = |why: &str| ResolveError::Unroutable(format!("{uri} ({why})"));
    let sips = match uri.scheme.as_str() {
        "sip" => false,
        "sips" => true,
        _ => return Err(unroutable("not a SIP URI")),
    };
    let named = match uri.transport() {
        Some(t) => Some(Transport::parse(&t).ok_or_else(|| unroutable("unknown transport"))?),
        None => None,
    };
    // A sips: URI is reached over TLS only (RFC 3261 §26.2.2); `transport=tcp` on it means
    // TLS over TCP.
    let transport = match (sips, named) {
        (true, Some(Transport::Udp)) => return Err(unroutable("sips: over UDP")),
        (true, _) => Transport::Tls,
        (false, Some(t)) => t,
        (false, None) => default_transport,
    };
    if !usable.contains(&transport) {
        return Err(unroutable(&format!("{transport} is not available")));
    }
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
    if named.is_some() {
        return Ok(Plan::Srv {
            name: transport.srv_name(&uri.host),
            host: uri.host.clone(),
            transport,
        });
    }
    Ok(Plan::Naptr {
        host: uri.host.clone(),
        sips,
        default: transport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [Transport; 2] = [Transport::Udp, Transport::Tcp];

    fn uri(text: &str) -> Uri {
        Uri::parse(text).expect("uri")
    }

    #[test]
    fn plans_follow_rfc3263() {
        assert_eq!(
            plan(
                &uri("sip:100@[::1]:5070;transport=tcp"),
                Transport::Udp,
                &BOTH
            ),
            Ok(Plan::Literal(Target {
                transport: Transport::Tcp,
                addr: "[::1]:5070".parse().expect("addr")
            }))
        );
        assert!(matches!(
            plan(&uri("sip:100@pbx.example:5080"), Transport::Udp, &BOTH),
            Ok(Plan::HostPort { port: 5080, .. })
        ));
        assert_eq!(
            plan(&uri("sip:100@pbx.example"), Transport::Tcp, &BOTH),
            Ok(Plan::Naptr {
                host: "pbx.example".into(),
                sips: false,
                default: Transport::Tcp
            })
        );
        assert_eq!(
            plan(
                &uri("sip:100@pbx.example;transport=TCP"),
                Transport::Udp,
                &BOTH
            ),
            Ok(Plan::Srv {
                name: "_sip._tcp.pbx.example.".into(),
                host: "pbx.example".into(),
                transport: Transport::Tcp
            })
        );
        assert!(plan(&uri("sip:x@h;transport=sctp"), Transport::Udp, &BOTH).is_err());
    }

    #[test]
    fn sips_needs_tls_and_uses_5061() {
        let err = plan(&uri("sips:100@pbx.example"), Transport::Udp, &BOTH);
        assert!(
            matches!(&err, Err(ResolveError::Unroutable(t)) if t.contains("TLS is not available")),
            "{err:?}"
        );
        let all = [Transport::Udp, Transport::Tcp, Transport::Tls];
        assert_eq!(
            plan(&uri("sips:100@192.0.2.1"), Transport::Udp, &all),
            Ok(Plan::Literal(Target {
                transport: Transport::Tls,
                addr: "192.0.2.1:5061".parse().expect("addr")
            }))
        );
        assert_eq!(
            plan(&uri("sips:100@pbx.example"), Transport::Udp, &all),
            Ok(Plan::Naptr {
                host: "pbx.example".into(),
                sips: true,
                default: Transport::Tls
            })
        );
        assert!(plan(&uri("sips:1@h;transport=udp"), Transport::Udp, &all).is_err());
        assert_eq!(
            Transport::Tls.srv_name("pbx.example."),
            "_sips._tcp.pbx.example."
        );
    }

    #[test]
    fn sips_means_tls_on_5061_and_sips_srv() {
        const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];
        let lit = Uri::parse("sips:100@127.0.0.1").expect("uri");
        assert_eq!(
            plan(&lit, Transport::Udp, &ALL),
            Ok(Plan::Literal(Target {
                transport: Transport::Tls,
                addr: "127.0.0.1:5061".parse().expect("addr")
            }))
        );
        let named = Uri::parse("sip:100@[::1];transport=TLS").expect("uri");
        assert!(matches!(
            plan(&named, Transport::Udp, &ALL),
            Ok(Plan::Literal(Target { transport: Transport::Tls, addr })) if addr.port() == 5061
        ));
        // Without a transport or port, a sips: domain is looked up as NAPTR (SIPS+D2T only),
        // then SRV `_sips._tcp`.
        let srv = Uri::parse("sips:pbx.example").expect("uri");
        assert_eq!(
            plan(&srv, Transport::Tcp, &ALL),
            Ok(Plan::Naptr {
                host: "pbx.example".into(),
                sips: true,
                default: Transport::Tls
            })
        );
        assert_eq!(
            Transport::Tls.srv_name("pbx.example"),
            "_sips._tcp.pbx.example."
        );
        let over_tcp = Uri::parse("sips:pbx.example:5081;transport=tcp").expect("uri");
        assert!(matches!(
            plan(&over_tcp, Transport::Udp, &ALL),
            Ok(Plan::HostPort {
                port: 5081,
                transport: Transport::Tls,
                ..
            })
        ));
        let udp = Uri::parse("sips:pbx.example;transport=udp").expect("uri");
        assert!(plan(&udp, Transport::Udp, &ALL).is_err());
        assert_eq!(Transport::Tls.to_string(), "TLS");
        assert!(Transport::Tls.reliable());
        assert_eq!(Transport::parse("tls"), Some(Transport::Tls));
        assert_eq!(Transport::Udp.uri_param(), None);
        assert_eq!(Transport::Tls.uri_param(), Some("tls"));
    }
}
