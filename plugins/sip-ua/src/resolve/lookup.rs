//! [`Resolver`]: the DNS look-ups RFC 3263 and ENUM need (NAPTR, SRV, A/AAAA), against the
//! system's resolver or the servers a driver names, and the order of the targets they give.
//!
//! Decisions (written down in the crate README):
//! - Without configured servers, NAPTR and SRV go through hickory with the system's
//!   configuration and A/AAAA through the system's name service (`/etc/hosts`, `localhost`).
//!   With configured servers, every look-up goes to them and to nothing else.
//! - A failed or timed-out look-up counts as "no records": resolution goes on with the next
//!   step (NAPTR → SRV → A/AAAA), and ENUM falls back to the normal destination.
//! - NAPTR: the records of the lowest order that yields any address are used, all of that
//!   order's records in preference order (RFC 3403 §4.1: a higher order is never consulted
//!   once one matched). Without usable NAPTR records, SRV is asked for the default transport
//!   first, then the other usable ones; the first that has records is used.
//! - At most 8 SRV records per name and 16 targets per request; IPv4 addresses of one name
//!   before IPv6.

use super::e164::{self, Step};
use super::failover::Failover;
use super::naptr::{self, NaptrRecord, Next};
use super::srv::{order_srv, SrvRecord};
use super::{plan, DnsSettings, Plan, ResolveError, Target, Transport};
use crate::header::Uri;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts, ServerOrderingStrategy,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One look-up (all of hickory's attempts) may take this long.
const LOOKUP_LIMIT: Duration = Duration::from_secs(5);
/// A whole ENUM resolution may take this long.
const ENUM_LIMIT: Duration = Duration::from_secs(8);
/// SRV records followed per name.
const MAX_SRV: usize = 8;
/// Targets handed out per request.
const MAX_TARGETS: usize = 16;
/// Non-terminal ENUM rules followed.
const MAX_ENUM_STEPS: usize = 5;

enum Backend {
    /// The system's configuration: NAPTR/SRV via hickory (when `/etc/resolv.conf` could be
    /// read), A/AAAA via the system's name service.
    System(Option<TokioResolver>),
    /// Configured servers for every look-up.
    Servers(TokioResolver),
}

/// Resolves URIs to ordered targets, and dialled E.164 numbers to URIs (ENUM).
pub struct Resolver {
    backend: Backend,
    usable: Vec<Transport>,
    failover_timeout: Option<Duration>,
}

impl Default for Resolver {
    fn default() -> Self {
        Self::new()
    }
}

impl Resolver {
    /// A resolver using the system's DNS configuration (no NAPTR/SRV at all if it cannot be
    /// read; IP literals and host names still resolve), with the default failover timeout.
    pub fn new() -> Resolver {
        let dns = hickory_resolver::TokioResolver::builder_tokio()
            .ok()
            .map(|b| b.build())
            .and_then(Result::ok);
        Resolver {
            backend: Backend::System(dns),
            usable: vec![Transport::Udp, Transport::Tcp],
            failover_timeout: DnsSettings::default_failover(),
        }
    }

    /// A resolver for checked settings: the configured servers for every look-up (the
    /// system's configuration when there are none), and the failover timeout.
    pub fn with_settings(settings: &DnsSettings) -> Resolver {
        let mut resolver = if settings.servers.is_empty() {
            Resolver::new()
        } else {
            Resolver {
                backend: servers_backend(&settings.servers),
                usable: vec![Transport::Udp, Transport::Tcp],
                failover_timeout: None,
            }
        };
        resolver.failover_timeout = settings.failover_timeout;
        resolver
    }

    /// The transports the endpoint can send on (default UDP and TCP; an endpoint with TLS
    /// adds [`Transport::Tls`]). Resolution never hands out a target of another transport.
    pub fn with_transports(mut self, usable: &[Transport]) -> Resolver {
        self.usable = usable.to_vec();
        self
    }

    /// The transports targets may use.
    pub fn transports(&self) -> &[Transport] {
        &self.usable
    }

    /// True when DNS (NAPTR/SRV) look-ups are available.
    pub fn has_dns(&self) -> bool {
        match &self.backend {
            Backend::System(dns) => dns.is_some(),
            Backend::Servers(_) => true,
        }
    }

    /// How long a silent target is waited for before the next (`None`: only the transaction's
    /// own timeout).
    pub fn failover_timeout(&self) -> Option<Duration> {
        self.failover_timeout
    }

    /// The failover over `targets` (RFC 3263 §4.3) with this resolver's silence limit; `None`
    /// when `targets` is empty.
    pub fn failover(&self, targets: Vec<Target>) -> Option<Failover> {
        Failover::new(targets, self.failover_timeout)
    }

    /// Resolves a URI into targets, best first (RFC 3263 §4). `default_transport` is used when
    /// neither the URI nor the domain's NAPTR records choose one.
    ///
    /// # Errors
    /// [`ResolveError`] when the URI is unroutable or nothing was found.
    pub async fn resolve(
        &self,
        uri: &Uri,
        default_transport: Transport,
    ) -> Result<Vec<Target>, ResolveError> {
        let found = match plan(uri, default_transport, &self.usable)? {
            Plan::Literal(t) => return Ok(vec![t]),
            Plan::HostPort {
                host,
                port,
                transport,
            } => self.addresses(&host, port, transport).await,
            Plan::Srv {
                name,
                host,
                transport,
            } => {
                let out = self.srv_targets(&name, transport).await;
                if out.is_empty() {
                    self.addresses(&host, transport.default_port(), transport)
                        .await
                } else {
                    out
                }
            }
            Plan::Naptr {
                host,
                sips,
                default,
            } => self.naptr_targets(&host, sips, default).await,
        };
        let mut out = Vec::with_capacity(found.len());
        for t in found {
            if !out.contains(&t) && out.len() < MAX_TARGETS {
                out.push(t);
            }
        }
        tracing::debug!(%uri, targets = ?out, "resolved");
        if out.is_empty() {
            return Err(ResolveError::NotFound(uri.host.clone()));
        }
        Ok(out)
    }

    /// RFC 3263 §4.1 without a transport in the URI: NAPTR, else SRV per transport (the
    /// default first), else A/AAAA with the default transport.
    async fn naptr_targets(&self, host: &str, sips: bool, default: Transport) -> Vec<Target> {
        let usable: Vec<Transport> = if sips {
            vec![Transport::Tls]
        } else {
            self.usable.clone()
        };
        let records = self.naptr(&fqdn(host)).await;
        let choices = naptr::sip_choices(&records, &usable, sips);
        let mut i = 0;
        while i < choices.len() {
            let order = choices[i].order;
            let mut out = Vec::new();
            while let Some(c) = choices.get(i).filter(|c| c.order == order) {
                match &c.next {
                    Next::Srv(name) => out.extend(self.srv_targets(name, c.transport).await),
                    Next::Host(h) => out.extend(
                        self.addresses(h, c.transport.default_port(), c.transport)
                            .await,
                    ),
                }
                i += 1;
            }
            if !out.is_empty() {
                return out;
            }
        }
        let others = usable.iter().copied().filter(|t| *t != default);
        for transport in std::iter::once(default).chain(others) {
            let out = self.srv_targets(&transport.srv_name(host), transport).await;
            if !out.is_empty() {
                return out;
            }
        }
        self.addresses(host, default.default_port(), default).await
    }

    /// The targets of an SRV owner name, in RFC 2782 order.
    async fn srv_targets(&self, name: &str, transport: Transport) -> Vec<Target> {
        let records = self.srv(name).await;
        let mut out = Vec::new();
        for r in order_srv(records, |n| fastrand::u32(0..=n))
            .into_iter()
            .take(MAX_SRV)
        {
            out.extend(self.addresses(&r.target, r.port, transport).await);
        }
        out
    }

    /// Where a call to `dialled` goes: with ENUM on for the line (`suffix`), the SIP URI DNS
    /// gives for a `+E.164` number; otherwise, or when DNS has none, `uri` (the number dialled
    /// as usual). Every SIP driver asks this, here, before its call starts.
    pub async fn enum_or(&self, dialled: &str, suffix: Option<&str>, uri: String) -> String {
        match suffix {
            Some(suffix) => self.enum_uri(dialled, suffix).await.unwrap_or(uri),
            None => uri,
        }
    }

    /// ENUM (RFC 6116): the SIP URI the dialled number maps to under `suffix`, or `None` when
    /// the number is not `+E.164`, has no usable record, or DNS does not answer in time.
    pub async fn enum_uri(&self, dialled: &str, suffix: &str) -> Option<String> {
        let aus = e164::aus(dialled)?;
        let sips = self.usable.contains(&Transport::Tls);
        let walk = async {
            let mut domain = e164::owner_name(&aus, suffix);
            for _ in 0..MAX_ENUM_STEPS {
                let records = self.naptr(&domain).await;
                match e164::step(&records, &aus, sips) {
                    Step::Uri(uri) => return Some(uri),
                    Step::Next(next) => domain = next,
                    Step::Nothing => return None,
                }
            }
            None
        };
        let found = tokio::time::timeout(ENUM_LIMIT, walk).await.ok().flatten();
        match &found {
            Some(uri) => tracing::info!(number = %aus, %uri, "ENUM: calling the number's SIP URI"),
            None => tracing::info!(number = %aus, "ENUM: no SIP URI, dialling as usual"),
        }
        found
    }

    fn dns(&self) -> Option<&TokioResolver> {
        match &self.backend {
            Backend::System(dns) => dns.as_ref(),
            Backend::Servers(dns) => Some(dns),
        }
    }

    async fn naptr(&self, name: &str) -> Vec<NaptrRecord> {
        let Some(dns) = self.dns() else {
            return Vec::new();
        };
        let found = tokio::time::timeout(LOOKUP_LIMIT, dns.lookup(name, RecordType::NAPTR)).await;
        let mut out = Vec::new();
        match found {
            Ok(Ok(lookup)) => {
                for record in lookup.answers() {
                    if let RData::NAPTR(n) = &record.data {
                        out.push(NaptrRecord {
                            order: n.order,
                            preference: n.preference,
                            flags: String::from_utf8_lossy(&n.flags).into_owned(),
                            services: String::from_utf8_lossy(&n.services).into_owned(),
                            regexp: String::from_utf8_lossy(&n.regexp).into_owned(),
                            replacement: n.replacement.to_utf8(),
                        });
                    }
                }
            }
            Ok(Err(e)) if e.is_no_records_found() => {}
            Ok(Err(e)) => tracing::debug!(name, error = %e, "NAPTR look-up failed"),
            Err(_) => tracing::debug!(name, "NAPTR look-up timed out"),
        }
        out
    }

    async fn srv(&self, name: &str) -> Vec<SrvRecord> {
        let Some(dns) = self.dns() else {
            return Vec::new();
        };
        let found = tokio::time::timeout(LOOKUP_LIMIT, dns.srv_lookup(name)).await;
        let mut out = Vec::new();
        match found {
            Ok(Ok(lookup)) => {
                for record in lookup.answers() {
                    if let RData::SRV(srv) = &record.data {
                        out.push(SrvRecord {
                            priority: srv.priority,
                            weight: srv.weight,
                            port: srv.port,
                            target: srv.target.to_utf8(),
                        });
                    }
                }
            }
            Ok(Err(e)) if e.is_no_records_found() => {}
            Ok(Err(e)) => tracing::debug!(name, error = %e, "SRV look-up failed"),
            Err(_) => tracing::debug!(name, "SRV look-up timed out"),
        }
        out
    }

    /// The addresses of `host` as targets on `port` (IPv4 first); empty when there are none.
    async fn addresses(&self, host: &str, port: u16, transport: Transport) -> Vec<Target> {
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.');
        let mut ips: Vec<IpAddr> = if let Ok(ip) = bare.parse::<IpAddr>() {
            vec![ip]
        } else {
            match &self.backend {
                Backend::System(_) => system_addresses(bare).await,
                Backend::Servers(dns) => {
                    let found = tokio::time::timeout(LOOKUP_LIMIT, dns.lookup_ip(fqdn(bare))).await;
                    match found {
                        Ok(Ok(lookup)) => lookup.iter().collect(),
                        Ok(Err(e)) if e.is_no_records_found() => Vec::new(),
                        Ok(Err(e)) => {
                            tracing::debug!(host = bare, error = %e, "address look-up failed");
                            Vec::new()
                        }
                        Err(_) => Vec::new(),
                    }
                }
            }
        };
        // IPv4 first: most SIP deployments still listen there only.
        ips.sort_by_key(IpAddr::is_ipv6);
        ips.dedup();
        ips.into_iter()
            .map(|ip| Target {
                transport,
                addr: SocketAddr::new(ip, port),
            })
            .collect()
    }
}

/// A name with its final dot, so no search domain is tried.
fn fqdn(host: &str) -> String {
    format!("{}.", host.trim_end_matches('.'))
}

async fn system_addresses(host: &str) -> Vec<IpAddr> {
    let found = tokio::time::timeout(LOOKUP_LIMIT, tokio::net::lookup_host((host, 0))).await;
    match found {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
        _ => Vec::new(),
    }
}

/// hickory asking only `servers` (all at once), over UDP (TCP for truncated answers), with no
/// hosts file and no search domains.
fn servers_backend(servers: &[SocketAddr]) -> Backend {
    let name_servers = servers
        .iter()
        .map(|s| {
            let mut udp = ConnectionConfig::udp();
            udp.port = s.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = s.port();
            NameServerConfig::new(s.ip(), true, vec![udp, tcp])
        })
        .collect();
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.server_ordering_strategy = ServerOrderingStrategy::UserProvidedOrder;
    // Every server is asked at once and the first answer counts: hickory gives one query its
    // timeout in total, so servers asked one after another would never reach the third when
    // two before it are silent.
    opts.num_concurrent_reqs = servers.len().max(1);
    let built = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(name_servers),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build();
    match built {
        Ok(dns) => Backend::Servers(dns),
        Err(e) => {
            // Building from explicit servers does not read the system; this is not expected.
            tracing::warn!(error = %e, "cannot build the DNS client for the configured servers");
            Backend::System(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_client_builds_outside_a_runtime() {
        // Drivers build their resolver before their runtime exists.
        if std::path::Path::new("/etc/resolv.conf").exists() {
            assert!(Resolver::new().has_dns());
        }
        let configured = Resolver::with_settings(&DnsSettings {
            servers: vec!["127.0.0.1:5353".parse().expect("addr")],
            failover_timeout: None,
        });
        assert!(configured.has_dns());
        assert_eq!(configured.failover_timeout, None);
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

    #[tokio::test]
    async fn enum_ignores_what_is_not_e164() {
        let r = Resolver::new();
        assert_eq!(r.enum_uri("0891234", "e164.arpa").await, None);
        assert_eq!(r.enum_uri("sip:+4989@h", "e164.arpa").await, None);
    }
}
