//! The network settings of one SIP driver instance, shared by every SIP driver: the `tls`,
//! `nat` and `dns` tables (flattened into each driver's section as [`NetConfig`]), checked
//! once, and the [`EndpointConfig`] and [`Resolver`] they give. Drivers keep only their own
//! keys; how TLS, STUN, keep-alives and DNS work lives in [`crate::tls`], [`crate::nat`],
//! [`crate::resolve`] and the endpoint.

use super::config::{problem, Account, ConfigProblem};
use crate::endpoint::{EndpointConfig, EndpointError};
use crate::nat::NatConfig;
use crate::resolve::{DnsConfig, DnsConfigError, LineDns, Resolver, Transport};
use crate::tls::TlsConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use tapir_core::{DriverError, ErrorKind};

/// The `tls` and `nat` tables of a driver section (for every endpoint of the instance).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NetConfig {
    /// TLS: trusted CAs, our certificate, the lab opt-out.
    #[serde(default)]
    pub tls: TlsConfig,
    /// NAT: STUN server, keep-alives.
    #[serde(default)]
    pub nat: NatConfig,
    /// DNS: the servers to ask, the failover timeout, ENUM for every line.
    #[serde(default)]
    pub dns: DnsConfig,
}

impl NetConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// [`ConfigProblem`] naming the key.
    pub fn check(&self) -> Result<(), ConfigProblem> {
        self.nat.check().map_err(|e| problem("nat", e))?;
        self.dns.settings().map_err(|e| dns_problem(&e))?;
        Ok(())
    }

    /// The ENUM suffix of a line with its own `dns` table (`line`), `None` when ENUM is off
    /// for it.
    ///
    /// # Errors
    /// [`ConfigProblem`] for a suffix that is not a domain name.
    pub fn enum_suffix_for(&self, line: Option<&LineDns>) -> Result<Option<String>, ConfigProblem> {
        self.dns.enum_suffix_for(line).map_err(|e| dns_problem(&e))
    }

    /// The resolver for these settings: the configured DNS servers and failover timeout, and
    /// TLS targets only when the endpoints have TLS.
    ///
    /// # Errors
    /// [`ConfigProblem`] for a `dns` table [`Self::check`] would refuse.
    pub fn resolver(&self, tls: bool) -> Result<Resolver, ConfigProblem> {
        let settings = self.dns.settings().map_err(|e| dns_problem(&e))?;
        let resolver = Resolver::with_settings(&settings);
        Ok(if tls {
            resolver.with_transports(&[Transport::Udp, Transport::Tcp, Transport::Tls])
        } else {
            resolver
        })
    }

    /// True when the endpoints need TLS: an account uses it, or the `tls` table is set.
    pub fn needs_tls<'a>(&self, accounts: impl IntoIterator<Item = &'a Account>) -> bool {
        self.tls != TlsConfig::default()
            || accounts.into_iter().any(|a| a.transport == Transport::Tls)
    }

    /// The endpoint configuration for `bind` with these settings (TLS only when `tls`).
    pub fn endpoint(&self, bind: SocketAddr, user_agent: String, tls: bool) -> EndpointConfig {
        EndpointConfig {
            bind,
            user_agent,
            tls: tls.then(|| self.tls.clone()),
            nat: self.nat.clone(),
            ..EndpointConfig::default()
        }
    }
}

/// A `dns` problem with the key it names (`dns.servers: ...` → key `dns.servers`).
fn dns_problem(e: &DnsConfigError) -> ConfigProblem {
    let text = e.to_string();
    match text.split_once(": ") {
        Some((field, what)) => problem(field, what),
        None => problem("dns", text),
    }
}

/// A driver's error for an endpoint that did not start: `InvalidParameter` when the
/// configuration is at fault (a TLS file that cannot be used), else `ResourceUnavailable` (a
/// port in use).
pub fn start_error(e: &EndpointError) -> DriverError {
    let kind = match e {
        EndpointError::Tls(_) => ErrorKind::InvalidParameter,
        _ => ErrorKind::ResourceUnavailable,
    };
    DriverError::new(kind, e.to_string())
}
