//! The network settings of one SIP driver instance, shared by every SIP driver: the `tls` and
//! `nat` tables (flattened into each driver's section as [`NetConfig`]), checked once, and the
//! [`EndpointConfig`] they give. Drivers keep only their own keys; how TLS, STUN and
//! keep-alives work lives in [`crate::tls`], [`crate::nat`] and the endpoint.

use super::config::{problem, Account, ConfigProblem};
use crate::endpoint::{EndpointConfig, EndpointError};
use crate::nat::NatConfig;
use crate::resolve::Transport;
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
}

impl NetConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// [`ConfigProblem`] naming the key.
    pub fn check(&self) -> Result<(), ConfigProblem> {
        self.nat.check().map_err(|e| problem("nat", e))
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
