//! # tapir-core: the vocabulary and the contract
//!
//! Everything else in tapir speaks these types:
//! - [`ids`]: newtype ids for lines, addresses, calls and requests, and the driver's [`LineKey`];
//! - [`call`]: [`CallState`], mirroring TAPI's LINECALLSTATE with its modes, and [`CallInfo`];
//! - [`request`]: [`Request`], one variant per operation of the TSPI call-control set, and
//!   what completes it;
//! - [`caps`]: [`Operation`], [`LineCaps`] and which call states allow which operation;
//! - [`event`]: [`DriverEvent`], what drivers report;
//! - [`device`]: [`DeviceStatus`], the phones behind the lines for the phone table;
//! - [`error`]: [`DriverError`] with an [`ErrorKind`] that maps one-to-one onto LINEERR codes;
//! - [`driver`]: the [`PhoneDriver`] contract and the [`EventSink`] drivers report through;
//! - [`registry`]: the static registry of built-in drivers.
//!
//! This crate does no I/O, starts no thread and owns no runtime.
//!
//! ## Writing a driver
//!
//! A driver takes requests and reports back through the sink the host gave it. This one serves
//! one line whose calls connect at once:
//!
//! ```
//! use std::sync::Arc;
//! use tapir_core::*;
//!
//! struct Instant {
//!     sink: SharedSink,
//! }
//!
//! impl PhoneDriver for Instant {
//!     fn submit(&self, envelope: RequestEnvelope) -> Result<(), DriverError> {
//!         match envelope.request {
//!             Request::MakeCall { call, .. } => {
//!                 for state in [CallState::Dialing, CallState::Connected] {
//!                     self.sink.event(DriverEvent::CallState {
//!                         line: envelope.line.clone(),
//!                         call,
//!                         state,
//!                     });
//!                 }
//!                 self.sink.complete(envelope.id, Ok(Completion::Done));
//!                 Ok(())
//!             }
//!             Request::Drop { call } => {
//!                 self.sink.event(DriverEvent::CallState { line: envelope.line, call, state: CallState::Idle });
//!                 self.sink.complete(envelope.id, Ok(Completion::Done));
//!                 Ok(())
//!             }
//!             other => Err(DriverError::unavailable(format!("{} is not supported", other.operation().name()))),
//!         }
//!     }
//!
//!     fn shutdown(&self) {}
//! }
//!
//! fn build(_config: &str, sink: SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError> {
//!     sink.event(DriverEvent::LineCreated {
//!         info: LineInfo {
//!             key: LineKey::new("1"),
//!             name: "Instant line".into(),
//!             caps: LineCaps::default(),
//!             in_service: true,
//!         },
//!     });
//!     Ok(Box::new(Instant { sink }))
//! }
//!
//! // A built-in driver registers itself; the host finds it by name.
//! inventory::submit! {
//!     DriverDescriptor {
//!         name: "instant",
//!         summary: "Calls that connect at once.",
//!         version: "0.1.0",
//!         example_config: "{}",
//!         validate: |_| Ok(()),
//!         build,
//!     }
//! }
//!
//! assert!(builtin_driver("instant").is_some());
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod call;
pub mod caps;
pub mod device;
pub mod driver;
pub mod error;
pub mod event;
pub mod ids;
pub mod numbers;
pub mod registry;
pub mod request;

pub use call::{
    BusyMode, CallDirection, CallInfo, CallReason, CallState, DialToneMode, DisconnectMode, Party,
};
pub use caps::{AddressInfo, LineCaps, LineInfo, Operation, OperationSet};
pub use device::{Configuration, Connection, DeviceAction, DeviceActionOutcome, DeviceStatus};
pub use driver::{
    BuildFn, EventSink, HttpCallback, HttpReply, PhoneDriver, SharedSink, ValidateFn,
};
pub use error::{DriverError, ErrorKind};
pub use event::DriverEvent;
pub use ids::{AddressId, CallId, LineId, LineKey, RequestId};
pub use inventory;
pub use registry::{builtin_driver, builtin_drivers, DriverDescriptor};
pub use request::{
    AddressStatus, Completion, ForwardMode, Forwarding, Outcome, Request, RequestEnvelope,
};
