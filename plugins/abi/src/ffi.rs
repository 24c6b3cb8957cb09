//! The types that cross the library boundary: the root module every plugin exports, the FFI
//! driver and sink trait objects, and the log level.
//!
//! Everything here is layout-checked by abi_stable when a plugin is loaded, so it is kept
//! deliberately small: domain payloads travel as JSON text (see the crate doc for why).
//!
//! Evolution rules (abi_stable prefix types): new root-module fields and new trait methods are
//! only ever added *after* the field or method marked `#[sabi(last_prefix_field)]`; the host
//! then sees them as optional when it loads an older plugin. Removing or changing anything
//! that is already here is a breaking change and needs a new minor version (0.y) of this crate.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, RResult, RStr, RString},
    StableAbi,
};

/// A driver instance as it crosses the boundary (owned by the host, implemented in the plugin).
pub type FfiDriverBox = FfiDriver_TO<'static, RBox<()>>;

/// The host's sink as it crosses the boundary (owned by the plugin, implemented in the host).
pub type FfiSinkBox = FfiSink_TO<'static, RBox<()>>;

/// The driver half of the contract, in its FFI shape: the mirror of
/// [`tapir_core::PhoneDriver`].
///
/// The plugin side implements it (in [`crate::plugin`]) around the author's `PhoneDriver`; the
/// host side wraps it back into a `PhoneDriver` (in the crate's `adapter` module).
#[sabi_trait]
pub trait FfiDriver: Send + Sync {
    /// Takes a request: `envelope` is the JSON of a [`tapir_core::RequestEnvelope`].
    ///
    /// `RErr` carries the JSON of a [`tapir_core::DriverError`]: the request was refused at once
    /// (or the driver panicked on it) and will never be completed.
    fn submit(&self, envelope: RStr<'_>) -> RResult<(), RString>;

    /// Answers a phone's HTTP callback: `request` is the JSON of a
    /// [`tapir_core::HttpCallback`], the result the JSON of a [`tapir_core::HttpReply`].
    fn http_callback(&self, request: RStr<'_>) -> RString;

    /// The phone table: the JSON of a `Vec<`[`tapir_core::DeviceStatus`]`>`.
    fn devices(&self) -> RString;

    /// A phone-table operation: `action` is the JSON of a [`tapir_core::DeviceAction`] (it may
    /// carry a password: neither side logs it). `ROk` carries the JSON of a
    /// [`tapir_core::DeviceActionOutcome`], `RErr` the JSON of a [`tapir_core::DriverError`].
    fn device_action(&self, device: RStr<'_>, action: RStr<'_>) -> RResult<RString, RString>;

    /// An application opened `line` (a line key) and nobody had it open before; see
    /// [`tapir_core::PhoneDriver::line_opened`].
    fn line_opened(&self, line: RStr<'_>);

    /// Stops the driver; see [`tapir_core::PhoneDriver::shutdown`].
    #[sabi(last_prefix_field)]
    fn shutdown(&self);
}

/// The sink half of the contract, in its FFI shape: the mirror of [`tapir_core::EventSink`]
/// plus a log channel. The host implements it; plugins call it from any thread, and no method
/// blocks.
#[sabi_trait]
pub trait FfiSink: Send + Sync {
    /// Reports an event: `event` is the JSON of a [`tapir_core::DriverEvent`].
    fn event(&self, event: RStr<'_>);

    /// Completes request `request`: `outcome` is the JSON of a [`tapir_core::Outcome`].
    fn complete(&self, request: u64, outcome: RStr<'_>);

    /// Allocates a call id for a call the driver discovered itself.
    fn new_call_id(&self) -> u64;

    /// The URL of this instance's phone callbacks; empty when the host has none.
    fn callback_url(&self) -> RString;

    /// Emits a log line of the plugin through the host's `tracing` output. `target` is the
    /// plugin-side target (module path); `message` is the message with its fields formatted.
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>);

    /// The instance's state directory; empty when the host keeps none. Added after the
    /// prefix: a host built before it answers with this default (no state directory).
    fn state_dir(&self) -> RString {
        RString::new()
    }
}

/// The severity of a forwarded log line, as `tracing` orders them.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, StableAbi)]
pub enum LogLevel {
    /// `tracing::Level::ERROR`.
    Error = 0,
    /// `tracing::Level::WARN`.
    Warn = 1,
    /// `tracing::Level::INFO`.
    Info = 2,
    /// `tracing::Level::DEBUG`.
    Debug = 3,
    /// `tracing::Level::TRACE`.
    Trace = 4,
}

impl From<tracing::Level> for LogLevel {
    fn from(level: tracing::Level) -> Self {
        match level {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            _ => LogLevel::Trace,
        }
    }
}

/// The root module every plugin library exports (through [`export_driver!`](crate::export_driver)).
///
/// Its functions describe the driver and build instances of it. All strings returned by
/// reference point into the plugin library, which is never unloaded, so they are `'static`.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = DriverModRef)))]
pub struct DriverMod {
    /// The driver's name, as used in configuration (`driver = "virtual-phone"`).
    pub name: extern "C" fn() -> RStr<'static>,
    /// One sentence saying what the driver reaches.
    pub summary: extern "C" fn() -> RStr<'static>,
    /// The driver's own version (its crate version).
    pub version: extern "C" fn() -> RStr<'static>,
    /// A working configuration section, as JSON.
    pub example_config: extern "C" fn() -> RStr<'static>,
    /// Checks a configuration section (JSON); `RErr` is a message for people.
    pub validate: extern "C" fn(config: RStr<'_>) -> RResult<(), RString>,
    /// Builds a driver instance from its configuration section (JSON), reporting through
    /// `sink`. `RErr` carries the JSON of a [`tapir_core::DriverError`].
    #[sabi(last_prefix_field)]
    pub new_driver:
        extern "C" fn(config: RStr<'_>, sink: FfiSinkBox) -> RResult<FfiDriverBox, RString>,
}

impl RootModule for DriverModRef {
    declare_root_module_statics! {DriverModRef}
    const BASE_NAME: &'static str = "tapir_plugin";
    const NAME: &'static str = "tapir_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
