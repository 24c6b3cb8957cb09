//! What serves the provider's lines: the host inside the library, or the link to a central
//! host (remote mode). Either way the provider sees one front end ([`Tsp`]); only how it is
//! started and stopped differs.

use crate::remote::Remote;
use std::sync::Arc;
use tapir_host::embedded::Embedded;
use tapir_tsp::Tsp;

/// The provider's source of lines.
pub enum Backend {
    /// The host runs inside the library (drivers, number rules, phone endpoint).
    Embedded(Embedded),
    /// A thin client of a central `tapir run` host.
    Remote(Remote),
}

impl Backend {
    /// The front end the provider drives.
    pub fn tsp(&self) -> &Arc<Tsp> {
        match self {
            Backend::Embedded(host) => &host.tsp,
            Backend::Remote(remote) => remote.tsp(),
        }
    }

    /// Stops the drivers (or the link); pending requests complete with an error.
    pub fn shutdown(&self) {
        match self {
            Backend::Embedded(host) => host.shutdown(),
            Backend::Remote(remote) => remote.shutdown(),
        }
    }
}

impl From<Embedded> for Backend {
    fn from(host: Embedded) -> Self {
        Backend::Embedded(host)
    }
}
