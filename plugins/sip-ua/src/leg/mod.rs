//! # One outgoing call leg for every SIP driver
//!
//! `sip-refer`, `sip-reverse` and `acd` all place a call the same way: INVITE someone (digest
//! answers, provisional responses, PRACK for reliable ones, CANCEL, ACK of the 2xx and of its
//! retransmissions), keep the dialog (answer the peer's re-INVITE, UPDATE, OPTIONS, NOTIFY,
//! BYE), REFER it somewhere and follow the NOTIFY sipfrags, and hang up with a bounded wait.
//! This module is that leg, written once; each driver keeps only which legs it places, in
//! which order, and what it reports.
//!
//! - [`config`]: the shared configuration keys ([`LegConfig`], flattened into each driver's
//!   section) and their checked form ([`Account`]); [`net`]: the instance's `tls` and `nat`
//!   tables ([`NetConfig`]) and the endpoint they give.
//! - [`core`]: the sans-I/O state machine ([`LegCore`]): inputs with the time, out come
//!   [`Action`]s for the transport and [`LegEvent`]s for the driver.
//! - [`Leg`]: the thin async shell that runs a [`LegCore`] on an [`Endpoint`] and a
//!   [`Resolver`], and lets the driver wait for the leg and its own control channel at once.
//! - [`outcome`]: SIP outcomes in tapir's words (disconnect modes, call states, failures).
//! - [`prack`], [`subscription`], [`sdp`]: RFC 3262, RFC 3515's subscription, our media-less
//!   SDP.
//!
//! [`Endpoint`]: crate::Endpoint
//! [`Resolver`]: crate::Resolver

pub mod config;
pub mod core;
mod inbound;
pub mod net;
pub mod outcome;
pub mod prack;
pub mod sdp;
mod shell;
pub mod subscription;

pub use self::config::{Account, ConfigProblem, LegConfig, Secret};
pub use self::core::{Action, Dest, LegCore, LegEvent, ReqId, BYE_WAIT, CANCEL_WAIT};
pub use self::net::NetConfig;
pub use outcome::{
    destination_uri, disconnect_mode, progress_state, BadDestination, LegFailure, ReferFailure,
};
pub use shell::{Leg, Next};
pub use subscription::ReferDone;

use crate::dialog::{new_call_id, new_tag};
use crate::digest::Credentials;
use crate::header::{NameAddr, Params, Uri};
use crate::resolve::Transport;
use std::time::Duration;

/// Everything a leg needs to place its INVITE.
#[derive(Debug, Clone)]
pub struct LegSetup {
    /// Call-ID.
    pub call_id: String,
    /// Our From header value (with its tag).
    pub from: String,
    /// Whom we call: Request-URI and To.
    pub request_uri: String,
    /// The user part of our Contact.
    pub contact_user: String,
    /// Where the INVITE goes first; `None`: the Request-URI's host (RFC 3263).
    pub first_hop: Option<Uri>,
    /// A preloaded Route (the outbound proxy with `lr`).
    pub route: Option<String>,
    /// Transport for hops that do not name one.
    pub transport: Transport,
    /// Credentials for digest challenges.
    pub credentials: Credentials,
    /// Further INVITE headers (the driver's own: `Subject`, auto-answer, ...).
    pub headers: Vec<(String, String)>,
    /// How long the INVITE may ring before we CANCEL it.
    pub ring_timeout: Duration,
    /// How long to wait for the final NOTIFY of a REFER.
    pub notify_timeout: Duration,
    /// Offer `100rel` (RFC 3262).
    pub prack: bool,
    /// `User-Agent` of our requests (`Server` of our answers); `None`: the endpoint's.
    pub user_agent: Option<String>,
    /// How long a target may stay completely silent (not even `100 Trying`) before the INVITE
    /// goes to the next one (RFC 3263 §4.3 failover; `None`: only the transaction's timeout).
    /// [`Leg::start`] sets the resolver's (`dns.failover_timeout_ms`).
    pub failover_silence: Option<Duration>,
}

impl LegSetup {
    /// A leg from `user` of `account` (answering challenges with `credentials`) to
    /// `request_uri`, through the account's outbound proxy when it has one, with a new Call-ID
    /// and From tag.
    pub fn new(
        account: &Account,
        user: &str,
        credentials: Credentials,
        request_uri: impl Into<String>,
    ) -> LegSetup {
        let from = NameAddr {
            display: account.config.display_name.clone(),
            uri: account.aor(user),
            params: Params(vec![("tag".into(), Some(new_tag()))]),
        };
        let (first_hop, route) = match account.proxy_route() {
            Some((proxy, route)) => (Some(proxy), Some(route)),
            None => (None, None),
        };
        LegSetup {
            call_id: new_call_id(account.domain_host()),
            from: from.to_string(),
            request_uri: request_uri.into(),
            contact_user: user.to_owned(),
            first_hop,
            route,
            transport: account.transport,
            credentials,
            headers: Vec::new(),
            ring_timeout: account.ring_timeout(),
            notify_timeout: account.notify_timeout(),
            prack: account.config.prack,
            user_agent: account.config.user_agent.clone(),
            failover_silence: crate::resolve::DnsSettings::default_failover(),
        }
    }

    /// Sends the INVITE straight to `hop` (no proxy, no Route): SIPTAPI's "alternative mode",
    /// a phone called by its own address.
    pub fn direct(mut self, hop: Uri) -> LegSetup {
        self.first_hop = Some(hop);
        self.route = None;
        self
    }

    /// Adds a header to the INVITE.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> LegSetup {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[cfg(test)]
mod tests;
