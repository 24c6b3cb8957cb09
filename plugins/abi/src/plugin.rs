//! The plugin side: what [`export_driver!`](crate::export_driver) expands to.
//!
//! A plugin author names an ordinary [`ValidateFn`] and [`BuildFn`]; the macro declares a type
//! implementing [`PluginDef`] and exports [`lib_header`] of it. Everything else is generic code
//! in this module, so it is written (and tested) once: the root module's entry points, the
//! [`FfiDriver`] wrapper around the author's [`PhoneDriver`], and the [`EventSink`] proxy that
//! talks to the host's [`FfiSink`](crate::ffi::FfiSink).
//!
//! Every entry point the host can call catches panics on this side of the boundary: abi_stable
//! would otherwise turn a panic crossing it into `std::process::exit(1)` of the host.

use crate::ffi::{
    DriverMod, DriverModRef, FfiDriver, FfiDriverBox, FfiDriver_TO, FfiSinkBox, LogLevel,
};
use crate::{logging, wire};
use abi_stable::library::{CheckTypeLayout, LibHeader, RootModuleResult};
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, ROk, RResult, RStr, RString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use tapir_core::{
    BuildFn, CallId, DeviceAction, DriverError, DriverEvent, ErrorKind, EventSink, HttpCallback,
    HttpReply, LineKey, Outcome, PhoneDriver, RequestEnvelope, RequestId, SharedSink, ValidateFn,
};

/// What [`export_driver!`](crate::export_driver) declares about a driver. Not meant to be
/// implemented by hand.
#[doc(hidden)]
pub trait PluginDef: 'static {
    /// The driver's name.
    const NAME: &'static str;
    /// One sentence about it.
    const SUMMARY: &'static str;
    /// Its version.
    const VERSION: &'static str;
    /// A working configuration (JSON).
    const EXAMPLE_CONFIG: &'static str;
    /// Checks a configuration.
    const VALIDATE: ValidateFn;
    /// Builds a driver.
    const BUILD: BuildFn;
}

/// The name of the symbol abi_stable looks up in a plugin library. `export_driver!` spells it
/// out because a `macro_rules!` cannot compute an identifier; the test below and the constant
/// assertion keep the two in step if abi_stable ever changes its mangling.
#[doc(hidden)]
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

const _: () = assert!(str_eq(
    ROOT_MODULE_SYMBOL,
    abi_stable::library::ROOT_MODULE_LOADER_NAME
));

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The library header of plugin `P`, for the exported static.
#[doc(hidden)]
pub const fn lib_header<P: PluginDef>() -> LibHeader {
    // SAFETY: the constructor returns the root module of type `DriverModRef` (through
    // `__call_root_module_loader`, which erases exactly that type), as `from_constructor`
    // requires.
    unsafe {
        LibHeader::from_constructor::<DriverModRef>(root_module_loader::<P>, CheckTypeLayout::Yes)
    }
}

extern "C" fn root_module_loader<P: PluginDef>() -> RootModuleResult {
    abi_stable::library::__call_root_module_loader(root_module::<P>)
}

/// The root module of plugin `P`. Exposed so that a plugin crate built as an `rlib` can be
/// driven through its FFI entry points in its own tests, without loading a library.
pub fn root_module<P: PluginDef>() -> DriverModRef {
    DriverMod {
        name: name::<P>,
        summary: summary::<P>,
        version: version::<P>,
        example_config: example_config::<P>,
        validate: validate::<P>,
        new_driver: new_driver::<P>,
    }
    .leak_into_prefix()
}

// The four descriptive entry points only wrap a constant; they cannot panic, so they need no
// `catch_unwind`. `validate`, `new_driver` and the driver's methods can, and catch.

extern "C" fn name<P: PluginDef>() -> RStr<'static> {
    RStr::from_str(P::NAME)
}

extern "C" fn summary<P: PluginDef>() -> RStr<'static> {
    RStr::from_str(P::SUMMARY)
}

extern "C" fn version<P: PluginDef>() -> RStr<'static> {
    RStr::from_str(P::VERSION)
}

extern "C" fn example_config<P: PluginDef>() -> RStr<'static> {
    RStr::from_str(P::EXAMPLE_CONFIG)
}

extern "C" fn validate<P: PluginDef>(config: RStr<'_>) -> RResult<(), RString> {
    match catch_unwind(AssertUnwindSafe(|| (P::VALIDATE)(config.as_str()))) {
        Ok(Ok(())) => ROk(()),
        Ok(Err(message)) => RErr(message.into()),
        Err(payload) => RErr(
            format!(
                "{} panicked while validating: {}",
                P::NAME,
                wire::panic_message(&*payload)
            )
            .into(),
        ),
    }
}

extern "C" fn new_driver<P: PluginDef>(
    config: RStr<'_>,
    sink: FfiSinkBox,
) -> RResult<FfiDriverBox, RString> {
    let built = catch_unwind(AssertUnwindSafe(|| {
        let proxy = Arc::new(SinkProxy { ffi: sink });
        logging::install(&proxy);
        let shared: SharedSink = proxy;
        (P::BUILD)(config.as_str(), shared)
    }));
    match built {
        Ok(Ok(driver)) => ROk(FfiDriver_TO::from_value(
            DriverProxy {
                inner: Some(driver),
            },
            TD_Opaque,
        )),
        Ok(Err(error)) => RErr(wire::encode_error(&error)),
        Err(payload) => RErr(wire::encode_error(&DriverError::failed(format!(
            "driver panicked while building: {}",
            wire::panic_message(&*payload)
        )))),
    }
}

/// The author's driver behind the FFI driver interface.
struct DriverProxy {
    /// Always `Some` until dropped; an `Option` so that `Drop` can drop it inside
    /// `catch_unwind`.
    inner: Option<Box<dyn PhoneDriver>>,
}

impl FfiDriver for DriverProxy {
    fn submit(&self, envelope: RStr<'_>) -> RResult<(), RString> {
        let Some(inner) = &self.inner else {
            return RErr(wire::encode_error(&DriverError::new(
                ErrorKind::Uninitialized,
                "driver is gone",
            )));
        };
        let envelope: RequestEnvelope = match serde_json::from_str(envelope.as_str()) {
            Ok(envelope) => envelope,
            Err(e) => {
                return RErr(wire::encode_error(&DriverError::unavailable(format!(
                    "the plugin cannot read this request (built against another tapir-core?): {e}"
                ))))
            }
        };
        match catch_unwind(AssertUnwindSafe(|| inner.submit(envelope))) {
            Ok(Ok(())) => ROk(()),
            Ok(Err(error)) => RErr(wire::encode_error(&error)),
            Err(payload) => RErr(wire::encode_error(&DriverError::failed(format!(
                "driver panicked: {}",
                wire::panic_message(&*payload)
            )))),
        }
    }

    fn http_callback(&self, request: RStr<'_>) -> RString {
        let reply = match (
            &self.inner,
            serde_json::from_str::<HttpCallback>(request.as_str()),
        ) {
            (None, _) => HttpReply::text(503, "driver is gone\n"),
            (Some(_), Err(e)) => HttpReply::text(400, format!("unreadable callback: {e}\n")),
            (Some(inner), Ok(request)) => {
                catch_unwind(AssertUnwindSafe(|| inner.http_callback(request))).unwrap_or_else(
                    |payload| {
                        tracing::error!(
                            panic = %wire::panic_message(&*payload),
                            "Driver panicked on an HTTP callback."
                        );
                        HttpReply::text(500, "the driver failed\n")
                    },
                )
            }
        };
        wire::encode(&reply).unwrap_or_default()
    }

    fn devices(&self) -> RString {
        let devices = self
            .inner
            .as_ref()
            .and_then(|inner| catch_unwind(AssertUnwindSafe(|| inner.devices())).ok())
            .unwrap_or_default();
        wire::encode(&devices).unwrap_or_default()
    }

    fn device_action(&self, device: RStr<'_>, action: RStr<'_>) -> RResult<RString, RString> {
        let Some(inner) = &self.inner else {
            return RErr(wire::encode_error(&DriverError::new(
                ErrorKind::Uninitialized,
                "driver is gone",
            )));
        };
        // The parse error is not echoed: serde quotes input, and the action may hold a password.
        let Ok(action) = serde_json::from_str::<DeviceAction>(action.as_str()) else {
            return RErr(wire::encode_error(&DriverError::unavailable(
                "the plugin cannot read this device action (built against another tapir-core?)",
            )));
        };
        match catch_unwind(AssertUnwindSafe(|| {
            inner.device_action(device.as_str(), action)
        })) {
            Ok(Ok(outcome)) => match wire::encode(&outcome) {
                Ok(json) => ROk(json),
                Err(e) => RErr(wire::encode_error(&DriverError::failed(format!(
                    "cannot encode the outcome: {e}"
                )))),
            },
            Ok(Err(error)) => RErr(wire::encode_error(&error)),
            Err(payload) => RErr(wire::encode_error(&DriverError::failed(format!(
                "driver panicked on a device action: {}",
                wire::panic_message(&*payload)
            )))),
        }
    }

    fn line_opened(&self, line: RStr<'_>) {
        if let Some(inner) = &self.inner {
            let line = LineKey::new(line.as_str());
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| inner.line_opened(&line))) {
                tracing::error!(
                    panic = %wire::panic_message(&*payload),
                    "Driver panicked on a line being opened."
                );
            }
        }
    }

    fn shutdown(&self) {
        if let Some(inner) = &self.inner {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| inner.shutdown())) {
                tracing::error!(
                    panic = %wire::panic_message(&*payload),
                    "Driver panicked during shutdown."
                );
            }
        }
    }
}

impl Drop for DriverProxy {
    fn drop(&mut self) {
        let inner = self.inner.take();
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(inner))) {
            tracing::error!(
                panic = %wire::panic_message(&*payload),
                "Driver panicked while being dropped."
            );
        }
    }
}

/// The host's sink as the author's driver sees it: an ordinary [`EventSink`].
pub(crate) struct SinkProxy {
    ffi: FfiSinkBox,
}

impl SinkProxy {
    /// Forwards a log line to the host.
    pub(crate) fn log(&self, level: LogLevel, target: &str, message: &str) {
        self.ffi
            .log(level, RStr::from_str(target), RStr::from_str(message));
    }
}

impl EventSink for SinkProxy {
    fn event(&self, event: DriverEvent) {
        match wire::encode(&event) {
            Ok(json) => self.ffi.event(json.as_rstr()),
            Err(e) => tracing::error!(error = %e, "Cannot encode a driver event; dropped."),
        }
    }

    fn complete(&self, request: RequestId, outcome: Outcome) {
        // A completion must arrive even if it cannot be encoded: send an error instead.
        let json = wire::encode(&outcome).unwrap_or_else(|e| {
            let fallback: Outcome = Err(DriverError::failed(format!(
                "cannot encode the outcome: {e}"
            )));
            wire::encode(&fallback).unwrap_or_default()
        });
        self.ffi.complete(request.0, json.as_rstr());
    }

    fn new_call_id(&self) -> CallId {
        CallId(self.ffi.new_call_id())
    }

    fn callback_url(&self) -> Option<String> {
        let url = self.ffi.callback_url();
        (!url.is_empty()).then(|| url.into_string())
    }

    fn state_dir(&self) -> Option<std::path::PathBuf> {
        let dir = self.ffi.state_dir();
        (!dir.is_empty()).then(|| std::path::PathBuf::from(dir.into_string()))
    }
}

/// Exports a [`PhoneDriver`] from a `cdylib` as a tapir plugin.
///
/// `validate` and `build` have exactly the signatures of [`tapir_core::ValidateFn`] and
/// [`tapir_core::BuildFn`], so the same functions can also register a built-in driver. Use the
/// macro once per library. Panics in `validate`, `build` and every method of the built driver
/// are caught in the plugin and reported as errors; the driver's `tracing` output is forwarded
/// to the host.
///
/// The expansion exports a `#[no_mangle]` static, which the `unsafe_code` lint counts as unsafe;
/// it allows that lint on the static itself, so the plugin crate may `deny(unsafe_code)` but
/// not `forbid` it.
///
/// ```
/// use tapir_core::{DriverError, ErrorKind, PhoneDriver, RequestEnvelope, SharedSink};
///
/// /// A driver that refuses everything, to show the shape.
/// struct MyPhone;
///
/// impl PhoneDriver for MyPhone {
///     fn submit(&self, _request: RequestEnvelope) -> Result<(), DriverError> {
///         Err(DriverError::unavailable("not written yet"))
///     }
///     fn shutdown(&self) {}
/// }
///
/// fn validate(config: &str) -> Result<(), String> {
///     serde_json::from_str::<serde_json::Value>(config)
///         .map(|_| ())
///         .map_err(|e| e.to_string())
/// }
///
/// fn build(config: &str, _sink: SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError> {
///     validate(config).map_err(|e| DriverError::new(ErrorKind::InvalidParameter, e))?;
///     Ok(Box::new(MyPhone))
/// }
///
/// tapir_plugin_abi::export_driver! {
///     name: "my-phone",
///     summary: "Reaches My Phones over their HTTP API.",
///     version: env!("CARGO_PKG_VERSION"),
///     example_config: r#"{ "host": "192.0.2.10" }"#,
///     validate: validate,
///     build: build,
/// }
/// # fn main() {
/// #     let module = tapir_plugin_abi::plugin::root_module::<__TapirPluginDef>();
/// #     assert_eq!(module.name()().as_str(), "my-phone");
/// # }
/// ```
#[macro_export]
macro_rules! export_driver {
    (
        name: $name:expr,
        summary: $summary:expr,
        version: $version:expr,
        example_config: $example:expr,
        validate: $validate:path,
        build: $build:path $(,)?
    ) => {
        #[doc(hidden)]
        pub struct __TapirPluginDef;

        impl $crate::__private::PluginDef for __TapirPluginDef {
            const NAME: &'static str = $name;
            const SUMMARY: &'static str = $summary;
            const VERSION: &'static str = $version;
            const EXAMPLE_CONFIG: &'static str = $example;
            const VALIDATE: $crate::__private::ValidateFn = $validate;
            const BUILD: $crate::__private::BuildFn = $build;
        }

        /// The tapir plugin's library header, looked up by the host's loader.
        // `no_mangle` is what makes the symbol findable; the name is abi_stable's
        // (`ROOT_MODULE_SYMBOL`, checked at compile time in tapir-plugin-abi).
        #[allow(unsafe_code, non_upper_case_globals)]
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::__private::LibHeader =
            $crate::__private::lib_header::<__TapirPluginDef>();
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::FfiSink;
    use std::sync::Mutex;
    use tapir_core::{Completion, DeviceActionOutcome, Request};

    #[test]
    fn the_symbol_name_matches_abi_stable() {
        assert_eq!(
            ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }

    /// A host sink that records what arrives.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl FfiSink for Recorder {
        fn event(&self, event: RStr<'_>) {
            self.0.lock().unwrap().push(format!("event {event}"));
        }
        fn complete(&self, request: u64, outcome: RStr<'_>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("complete {request} {outcome}"));
        }
        fn new_call_id(&self) -> u64 {
            41
        }
        fn callback_url(&self) -> RString {
            RString::new()
        }
        fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("log {level:?} {target} {message}"));
        }
    }

    /// A driver that panics on Hold, completes everything else at once.
    struct Touchy {
        sink: SharedSink,
    }

    impl PhoneDriver for Touchy {
        fn submit(&self, envelope: RequestEnvelope) -> Result<(), DriverError> {
            match envelope.request {
                Request::Hold { .. } => panic!("hold is not my thing"),
                Request::Answer { .. } => Err(DriverError::unavailable("no answering")),
                _ => {
                    let call = self.sink.new_call_id();
                    self.sink.complete(envelope.id, Ok(Completion::Done));
                    assert_eq!(call, CallId(41));
                    Ok(())
                }
            }
        }
        fn device_action(
            &self,
            device: &str,
            action: DeviceAction,
        ) -> Result<DeviceActionOutcome, DriverError> {
            match action {
                DeviceAction::Remove => panic!("remove is not my thing"),
                DeviceAction::SetLogin { login, .. } => Ok(DeviceActionOutcome::Added {
                    key: format!("{device}/{login}"),
                }),
                _ => Err(DriverError::new(ErrorKind::BadDeviceId, device.to_owned())),
            }
        }
        fn line_opened(&self, line: &LineKey) {
            panic!("cannot open {line}");
        }
        fn shutdown(&self) {
            panic!("shutdown panics too");
        }
    }

    fn check(config: &str) -> Result<(), String> {
        match config {
            "panic" => panic!("validator exploded"),
            "{}" => Ok(()),
            other => Err(format!("bad config {other}")),
        }
    }

    fn build(config: &str, sink: SharedSink) -> Result<Box<dyn PhoneDriver>, DriverError> {
        match config {
            "panic" => panic!("builder exploded"),
            "refuse" => Err(DriverError::new(ErrorKind::InvalidParameter, "refused")),
            _ => Ok(Box::new(Touchy { sink })),
        }
    }

    struct TestPlugin;

    impl PluginDef for TestPlugin {
        const NAME: &'static str = "touchy";
        const SUMMARY: &'static str = "Panics on hold.";
        const VERSION: &'static str = "9.9.9";
        const EXAMPLE_CONFIG: &'static str = "{}";
        const VALIDATE: ValidateFn = check;
        const BUILD: BuildFn = build;
    }

    fn sink(recorder: &Recorder) -> FfiSinkBox {
        crate::ffi::FfiSink_TO::from_value(recorder.clone(), TD_Opaque)
    }

    fn envelope(id: u64, request: Request) -> String {
        serde_json::to_string(&RequestEnvelope {
            id: RequestId(id),
            line: LineKey::new("1"),
            request,
        })
        .unwrap()
    }

    #[test]
    fn the_root_module_describes_the_plugin() {
        let module = root_module::<TestPlugin>();
        assert_eq!(module.name()().as_str(), "touchy");
        assert_eq!(module.summary()().as_str(), "Panics on hold.");
        assert_eq!(module.version()().as_str(), "9.9.9");
        assert_eq!(module.example_config()().as_str(), "{}");
    }

    #[test]
    fn validation_errors_and_panics_come_back_as_messages() {
        let module = root_module::<TestPlugin>();
        assert_eq!(module.validate()(RStr::from_str("{}")), ROk(()));
        assert_eq!(
            module.validate()(RStr::from_str("[]")),
            RErr(RString::from("bad config []"))
        );
        let RErr(message) = module.validate()(RStr::from_str("panic")) else {
            panic!("a panicking validator must report an error");
        };
        assert_eq!(
            message.as_str(),
            "touchy panicked while validating: validator exploded"
        );
    }

    #[test]
    fn build_errors_and_panics_come_back_as_driver_errors() {
        let module = root_module::<TestPlugin>();
        let recorder = Recorder::default();
        let RErr(refused) = module.new_driver()(RStr::from_str("refuse"), sink(&recorder)) else {
            panic!("expected a refusal");
        };
        assert_eq!(
            wire::decode_error(refused.as_str()),
            DriverError::new(ErrorKind::InvalidParameter, "refused")
        );
        let RErr(panicked) = module.new_driver()(RStr::from_str("panic"), sink(&recorder)) else {
            panic!("expected an error from a panicking build");
        };
        let error = wire::decode_error(panicked.as_str());
        assert_eq!(error.kind, ErrorKind::OperationFailed);
        assert_eq!(
            error.detail,
            "driver panicked while building: builder exploded"
        );
    }

    #[test]
    fn a_panicking_submit_fails_that_request_only() {
        let module = root_module::<TestPlugin>();
        let recorder = Recorder::default();
        let ROk(driver) = module.new_driver()(RStr::from_str("{}"), sink(&recorder)) else {
            panic!("build failed");
        };
        let hold = envelope(1, Request::Hold { call: CallId(1) });
        let RErr(error) = driver.submit(RStr::from_str(&hold)) else {
            panic!("a panicking submit must fail the request");
        };
        assert_eq!(
            wire::decode_error(error.as_str()),
            DriverError::failed("driver panicked: hold is not my thing")
        );
        let answer = envelope(2, Request::Answer { call: CallId(1) });
        let RErr(refused) = driver.submit(RStr::from_str(&answer)) else {
            panic!("answer must be refused");
        };
        assert_eq!(
            wire::decode_error(refused.as_str()).kind,
            ErrorKind::OperationUnavailable
        );
        let hang_up = envelope(3, Request::Drop { call: CallId(1) });
        assert_eq!(driver.submit(RStr::from_str(&hang_up)), ROk(()));
        let seen = recorder.0.lock().unwrap().clone();
        assert!(
            seen.contains(&r#"complete 3 {"Ok":{"kind":"done"}}"#.to_owned()),
            "{seen:?}"
        );
        // Shutdown panics inside the plugin; the caller must not notice.
        driver.shutdown();
        drop(driver);
    }

    #[test]
    fn unreadable_requests_are_refused_not_panicked_on() {
        let module = root_module::<TestPlugin>();
        let recorder = Recorder::default();
        let ROk(driver) = module.new_driver()(RStr::from_str("{}"), sink(&recorder)) else {
            panic!("build failed");
        };
        let RErr(error) = driver.submit(RStr::from_str(
            r#"{"id":1,"line":"1","request":{"op":"teleport"}}"#,
        )) else {
            panic!("an unknown operation must be refused");
        };
        assert_eq!(
            wire::decode_error(error.as_str()).kind,
            ErrorKind::OperationUnavailable
        );
    }

    #[test]
    fn device_actions_cross_with_errors_and_panics_caught() {
        let module = root_module::<TestPlugin>();
        let recorder = Recorder::default();
        let ROk(driver) = module.new_driver()(RStr::from_str("{}"), sink(&recorder)) else {
            panic!("build failed");
        };
        let set = r#"{"action":"set_login","login":"admin","password":"pw"}"#;
        let ROk(outcome) = driver.device_action(RStr::from_str("p1"), RStr::from_str(set)) else {
            panic!("set_login must succeed");
        };
        assert_eq!(outcome.as_str(), r#"{"outcome":"added","key":"p1/admin"}"#);
        let RErr(error) = driver.device_action(
            RStr::from_str("p2"),
            RStr::from_str(r#"{"action":"refresh"}"#),
        ) else {
            panic!("refresh must fail");
        };
        assert_eq!(
            wire::decode_error(error.as_str()).kind,
            ErrorKind::BadDeviceId
        );
        let RErr(error) = driver.device_action(
            RStr::from_str("p1"),
            RStr::from_str(r#"{"action":"remove"}"#),
        ) else {
            panic!("a panicking action must fail");
        };
        assert!(wire::decode_error(error.as_str())
            .detail
            .contains("remove is not my thing"));
        let RErr(error) = driver.device_action(
            RStr::from_str("p1"),
            RStr::from_str(r#"{"action":"set_login","login":"a","password":"secret-pw","x":1}"#),
        ) else {
            panic!("an unreadable action must fail");
        };
        assert!(!error.as_str().contains("secret-pw"), "{error}");
        // A panic in line_opened stays in the plugin.
        driver.line_opened(RStr::from_str("1"));
    }
}
