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

use crate::{
    CallId, DeviceAction, DeviceActionOutcome, DriverError, DriverEvent, LineKey, Outcome,
    RequestEnvelope, RequestId,
};
use serde::{Deserialize, Serialize};
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

    /// The URL under which this driver instance's HTTP callbacks reach the host
    /// (`http://pbx.example.com:8781/phones/office`), for drivers that tell phones where to
    /// report (snom Action URLs). `None` when the host has no phone-facing endpoint.
    fn callback_url(&self) -> Option<String> {
        None
    }

    /// A directory for this driver instance's small state files, the ones that must survive
    /// a restart (snom: wrong Digest logins per phone, which the phone counts until a
    /// success). It belongs to this instance alone (`{state_dir}/{instance}` of the host's
    /// `state_dir`); the driver creates it when it first writes. `None` when the host keeps no
    /// state: the driver then keeps such state in memory and says so in its log.
    fn state_dir(&self) -> Option<std::path::PathBuf> {
        None
    }
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

    /// Answers an HTTP request a phone sent to the host for this driver instance (snom Action
    /// URLs, provisioning downloads). The host serves them under `/phones/{instance}/...` on
    /// its phone-facing listener and passes the rest of the path. Must not block for long: it
    /// runs on a blocking-task thread of the host. The default answers 404.
    fn http_callback(&self, request: HttpCallback) -> HttpReply {
        let _ = request;
        HttpReply::text(404, "this driver takes no callbacks\n")
    }

    /// The devices behind this driver's lines, for the phone table. Drivers without devices
    /// of their own (a SIP account) return none.
    fn devices(&self) -> Vec<crate::DeviceStatus> {
        Vec::new()
    }

    /// Carries out a phone-table operation on one of the driver's devices (refresh, write the
    /// configuration, remove, set the login, read the configuration for support, add one).
    ///
    /// Synchronous, and it may block briefly (reading a configuration asks the device): the
    /// host calls it on a blocking thread. Long work (contacting the device, writing its
    /// configuration) is queued and answered with [`DeviceActionOutcome::Queued`]; the result
    /// shows in [`devices`](Self::devices) later. A password inside the action must never be
    /// logged or echoed. The default refuses every action with `OperationUnavailable`.
    ///
    /// # Errors
    /// `BadDeviceId` for an unknown device, `OperationUnavailable` for an action the driver does
    /// not offer, `InvalidParameter` for bad arguments, or what the device answered.
    fn device_action(
        &self,
        device: &str,
        action: DeviceAction,
    ) -> Result<DeviceActionOutcome, DriverError> {
        let _ = device;
        Err(DriverError::unavailable(format!(
            "this driver offers no {} on its devices",
            action.name()
        )))
    }

    /// Tells the driver that an application opened `line` and nobody had it open before (the
    /// open count went from 0 to 1). A driver may check the device then (snom: check and
    /// repair the configuration). It must not block: queue the work. The default does
    /// nothing.
    fn line_opened(&self, line: &LineKey) {
        let _ = line;
    }

    /// Stops the driver: pending requests are completed (with an error if need be), timers and
    /// connections are released. No event may follow once it returns.
    fn shutdown(&self);
}

/// An HTTP request from a phone, as the host received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpCallback {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path below `/phones/{instance}`, starting with `/`.
    pub path: String,
    /// The raw query string, without `?` (still percent-encoded).
    pub query: String,
    /// Request headers (names in lower case).
    pub headers: Vec<(String, String)>,
    /// The peer's socket address as text (`192.0.2.7:41234`).
    pub peer: String,
    /// The body, as text (phones send form data or XML).
    pub body: String,
}

/// The answer to an [`HttpCallback`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpReply {
    /// HTTP status code.
    pub status: u16,
    /// Content type of the body.
    pub content_type: String,
    /// The body.
    pub body: String,
}

impl HttpReply {
    /// A plain-text reply.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8".to_owned(),
            body: body.into(),
        }
    }
}

/// How a driver is built from its configuration section.
///
/// `config` is the driver's section of the host configuration as JSON text, so built-in and
/// dynamically loaded drivers receive it the same way; each driver deserializes it into its own
/// typed config struct.
pub type BuildFn = fn(config: &str, sink: SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError>;

/// Checks a configuration section without building anything.
pub type ValidateFn = fn(config: &str) -> Result<(), String>;
