//! # tapir-tsp: the TSPI-shaped front end
//!
//! Applications (the network API, the CLI, the Windows `.tsp` face) talk to drivers only
//! through this crate:
//! - [`front`]: the [`Tsp`] itself: numbered lines from a base, open/close, requests with ids
//!   and exactly-once completions, checks against capabilities and call state before a driver
//!   sees a request, and driver reports applied one at a time, in order, publishing [`Sequenced`]
//!   events to every subscriber;
//! - [`action`]: what applications ask ([`Action`]) and what they get back ([`Accepted`]);
//! - [`delivery`]: what must not be lost: a request's own completion ([`RequestWatch`]) and a
//!   follower that sees every event ([`Follower`]);
//! - [`event`]: what applications are told ([`TspEvent`]);
//! - [`numbers`]: the hook applying number rules to every dialled and reported number;
//! - [`tapi`]: TAPI's numeric codes, known nowhere else in tapir.
//!
//! The front end does not know where drivers come from (built-in or plugin file): it is handed
//! a build function per driver instance.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod action;
mod calls;
pub mod delivery;
pub mod event;
pub mod front;
pub mod numbers;
pub mod tapi;

pub use action::{Accepted, Action};
pub use delivery::{Follower, RequestWatch};
pub use event::{RequestResult, Sequenced, TspEvent};
pub use front::{
    call_features, CallSnapshot, HistoryGap, LineIds, LineSnapshot, Removal, Snapshot, Tsp,
    TspConfig,
};
pub use numbers::{LineRef, NumberRules, Verbatim};
