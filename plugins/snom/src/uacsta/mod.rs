//! uaCSTA over SIP (ECMA TR/87): CSTA XML carried inside a SIP session with the phone.
//!
//! The driver is the CSTA client ("computing function"), the phone the switching function:
//! 1. the driver sends the phone an INVITE whose body (`application/csta+xml`) is
//!    `RequestSystemStatus`; a phone with `csta_control` on answers 200 (with
//!    `RequestSystemStatusResponse`), any final error refuses the session; a 401/407
//!    (`csta_challenge`) is answered once with the identity's SIP login;
//! 2. CSTA requests go in INFO requests inside that dialog; the answer
//!    (`{Request}Response` or `CSTAErrorCode`) is the body of the INFO's 200, or, when the
//!    200 has no body, of an INFO the phone sends back (both readings of TR/87 are taken);
//! 3. after `MonitorStart`, the phone sends CSTA events in INFO requests; each is answered
//!    200 and handed to the driver;
//! 4. a BYE from either side, a 481 or an unanswered request ends the session; the driver
//!    falls back to HTTP and opens a new one later.
//!
//! tapir's own SIP user agent ([`tapir_sip_ua`]) carries it: one endpoint per driver
//! instance, one small task per open session.

mod session;
pub mod xml;

pub use session::{Open, OpenError, Session, SessionError, CONTENT_TYPE};

use std::net::SocketAddr;
use std::sync::Arc;
use tapir_sip_ua::{Endpoint, EndpointConfig};

/// What a session reports to the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A CSTA message the phone sent (an event, as XML).
    Csta(String),
    /// The session ended, with the reason.
    Closed(String),
}

/// The driver's SIP side for uaCSTA: one endpoint, any number of sessions.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
}

impl Client {
    /// Starts the SIP endpoint on `bind` (UDP and TCP) on the current tokio runtime.
    ///
    /// # Errors
    /// When the sockets cannot be bound.
    pub async fn start(bind: SocketAddr) -> Result<Client, tapir_sip_ua::EndpointError> {
        let endpoint = Endpoint::start(EndpointConfig {
            bind,
            user_agent: concat!("tapir-snom/", env!("CARGO_PKG_VERSION")).to_owned(),
            ..EndpointConfig::default()
        })
        .await?;
        Ok(Client { endpoint })
    }

    /// The UDP address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint.udp_addr()
    }

    /// Opens a CSTA session to a phone; returns the session and the body of the phone's 200
    /// (its `RequestSystemStatusResponse`, or empty).
    ///
    /// # Errors
    /// [`OpenError`]: refused (a final error from the phone), unreachable, or the challenge
    /// could not be met.
    pub async fn open(
        &self,
        open: Open,
        on_event: Arc<dyn Fn(Inbound) + Send + Sync>,
    ) -> Result<(Session, String), OpenError> {
        session::open(&self.endpoint, open, on_event).await
    }
}
