//! # tapir-sip-ua: tapir's SIP user agent
//!
//! Shared by every SIP driver (click-to-dial, and later the ACD dialer and incoming calls).
//! The protocol logic is sans-I/O and tested with a virtual clock; one small tokio task does
//! the I/O:
//! - [`message`]: parser and serializer (RFC 3261 §7), hostile-input safe;
//! - [`header`]: URIs, name-addr, Via, CSeq;
//! - [`transaction`]: client/server, INVITE/non-INVITE transactions with timers A–K;
//! - [`dialog`]: UAC dialogs, loose and strict routing;
//! - [`leg`]: the one outgoing call leg every SIP driver uses (INVITE, PRACK, CANCEL, ACK,
//!   REFER and its NOTIFYs, in-dialog answers, BYE), its shared configuration and outcomes;
//! - [`digest`]: digest authentication, MD5/SHA-256/SHA-512-256, qop lists, realm binding;
//! - [`report`]: what every SIP driver reports to the host (gate, per-call reporter, line
//!   service from registrations, offered calls);
//! - [`register`]: REGISTER client: refresh, backoff with jitter, token-bucket pacing;
//! - [`offer`]: incoming calls indicated (180), redirected (302) or cancelled;
//! - [`refer`]: sipfrag and `Subscription-State` of REFER's implicit subscription;
//! - [`runtime`]: the tokio runtime a SIP driver owns;
//! - [`resolve`]: RFC 3263 target selection (NAPTR, SRV, A/AAAA, IP literals), failover to the
//!   next target (RFC 3263 §4.3), ENUM (RFC 6116), and the `dns` configuration tables;
//! - [`uas`]: the answers RFC 3261 §8.2 asks of every UAS (501, 416, 420, 415, 400, 505);
//! - [`tls`]: TLS settings, certificate verification, handshake errors in words;
//! - [`stun`]: the STUN Binding client codec (RFC 5389);
//! - [`nat`]: NAT settings and the keep-alive schedule of registered flows (RFC 5626);
//! - [`endpoint`]: the tokio UDP/TCP/TLS shell, bounded against hostile peers.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod header;
pub mod leg;
pub mod message;
pub mod nat;
pub mod offer;
pub mod refer;
pub mod register;
pub mod report;
pub mod resolve;
pub mod runtime;
pub mod stun;
pub mod tls;
pub mod transaction;
pub mod uas;

pub use dialog::Dialog;
pub use endpoint::{
    global_stats, ClientEvent, ClientTx, Endpoint, EndpointConfig, EndpointError, EndpointStats,
    FlowWatch, GlobalStats, Incoming, TcpLimits, TransportError,
};
pub use header::{NameAddr, Uri, Via};
pub use message::{Message, Method, ParseError, StartLine};
pub use nat::{NatConfig, UdpKeepalive};
pub use resolve::{DnsConfig, Failover, LineDns, Resolver, Target, Transport};
pub use tls::TlsConfig;
pub use transaction::{Limits, Timers, TxKey};

/// The methods tapir's user agent understands, for `Allow` headers.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, REFER, NOTIFY, OPTIONS";
