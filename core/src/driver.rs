//! The driver contract: how the host hands requests to a driver and how the driver reports back.
//!
//! The contract is shaped like TSPI. [`PhoneDriver::submit`] either rejects a request at once
//! (`Err`, and then nothing more happens for that id) or accepts it (`Ok`), in which case the
//! driver completes it exactly once, later or even before `submit` returns, through
//! [`EventSink::complete`]. Everything the driver learns about lines and calls goes back through
//! [`EventSink::event`].
//!
//! The trait is synchronous on purpose: it must cross a dynamic-library boundary, and no future
//! or async runtime handle can do that soundly. A driver that wants async I/O owns its runtime
//! and only enqueues work in `submit`.

use crate::{CallId, DriverError, DriverEvent, Outcome, RequestEnvelope, RequestId};
use std::sync::Arc;

/// Where a driver sends its events and completions. The host provides it; it is cheap to clone
/// as an [`SharedSink`] and safe to call from any thread. None of its methods block.
pub trait EventSink: Send + Sync {
    /// Reports something that happened on a line.
    fn event(&self, event: DriverEvent);

    /// Completes an accepted request. Calling it twice for the same id is a driver bug: the
    /// host keeps the first outcome and logs the second.
    fn complete(&self, request: RequestId, outcome: Outcome);

    /// Allocates the id for a call the driver discovered on its own (an incoming call, a call
    /// dialled on the phone's keypad).
    fn new_call_id(&self) -> CallId;
}

/// The sink as drivers hold it.
pub type SharedSink = Arc<dyn EventSink>;

/// A phone driver: one method of reaching phones (snom HTTP, SIP REFER, ...), serving any number
/// of lines.
///
/// Lines are announced with [`DriverEvent::LineCreated`] once the driver is built, and may come
/// and go at run time.
pub trait PhoneDriver: Send + Sync {
    /// Takes a request.
    ///
    /// # Errors
    /// Returns an error when the request is refused at once (unknown line, unsupported
    /// operation); then the request is finished and must not be completed through the sink.
    fn submit(&self, request: RequestEnvelope) -> Result<(), DriverError>;

    /// Stops the driver: pending requests are completed (with an error if need be), timers and
    /// connections are released. No event may follow once it returns.
    fn shutdown(&self);
}

/// How a driver is built from its configuration section.
///
/// `config` is the driver's section of the host configuration as JSON text, so built-in and
/// dynamically loaded drivers receive it the same way; each driver deserializes it into its own
/// typed config struct.
pub type BuildFn = fn(config: &str, sink: SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError>;

/// Checks a configuration section without building anything.
pub type ValidateFn = fn(config: &str) -> Result<(), String>;
