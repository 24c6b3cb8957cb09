//! The host side of a driver instance: [`DylibDriver`] turns a plugin's FFI driver back into a
//! [`PhoneDriver`], and [`HostSink`] gives the plugin the host's [`EventSink`] in FFI shape.
//!
//! With these two the host cannot tell a dylib driver from a built-in one.

use crate::ffi::{FfiDriverBox, FfiSink, LogLevel};
use crate::{logging, wire};
use abi_stable::std_types::{RErr, ROk, RStr, RString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use tapir_core::{
    CallId, DeviceAction, DeviceActionOutcome, DeviceStatus, DriverError, DriverEvent,
    HttpCallback, HttpReply, LineKey, Outcome, PhoneDriver, RequestEnvelope, RequestId, SharedSink,
};

/// A driver living in a plugin library, seen as an ordinary [`PhoneDriver`].
pub(crate) struct DylibDriver {
    pub(crate) driver: FfiDriverBox,
    pub(crate) plugin: Arc<str>,
}

impl PhoneDriver for DylibDriver {
    fn submit(&self, request: RequestEnvelope) -> Result<(), DriverError> {
        let json = wire::encode(&request).map_err(|e| {
            DriverError::failed(format!("cannot encode the request for the plugin: {e}"))
        })?;
        match self.driver.submit(json.as_rstr()) {
            ROk(()) => Ok(()),
            RErr(error) => Err(wire::decode_error(error.as_str())),
        }
    }

    fn http_callback(&self, request: HttpCallback) -> HttpReply {
        let Ok(json) = wire::encode(&request) else {
            return HttpReply::text(500, "cannot pass the callback to the plugin\n");
        };
        let reply = self.driver.http_callback(json.as_rstr());
        serde_json::from_str(reply.as_str()).unwrap_or_else(|e| {
            tracing::warn!(plugin = %self.plugin, error = %e, "Unreadable callback reply from a plugin.");
            HttpReply::text(500, "unreadable reply from the driver\n")
        })
    }

    fn devices(&self) -> Vec<DeviceStatus> {
        let json = self.driver.devices();
        serde_json::from_str(json.as_str()).unwrap_or_else(|e| {
            tracing::warn!(plugin = %self.plugin, error = %e, "Unreadable phone table from a plugin.");
            Vec::new()
        })
    }

    fn device_action(
        &self,
        device: &str,
        action: DeviceAction,
    ) -> Result<DeviceActionOutcome, DriverError> {
        // The error text never contains the action itself: it may carry a password.
        let json = wire::encode(&action).map_err(|_| {
            DriverError::failed(format!("cannot encode the {} action", action.name()))
        })?;
        match self
            .driver
            .device_action(RStr::from_str(device), json.as_rstr())
        {
            ROk(outcome) => serde_json::from_str(outcome.as_str()).map_err(|e| {
                DriverError::failed(format!("unreadable outcome from the plugin: {e}"))
            }),
            RErr(error) => Err(wire::decode_error(error.as_str())),
        }
    }

    fn line_opened(&self, line: &LineKey) {
        self.driver.line_opened(RStr::from_str(line.as_str()));
    }

    fn shutdown(&self) {
        self.driver.shutdown();
    }
}

impl std::fmt::Debug for DylibDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DylibDriver")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

/// The host's sink, handed to a plugin. Its methods run on plugin threads; they decode the JSON
/// and pass it straight on to the host's sink (which never blocks).
///
/// A panic in the host's sink is caught here: it would otherwise cross back into the plugin and
/// end the process.
pub(crate) struct HostSink {
    pub(crate) sink: SharedSink,
    pub(crate) plugin: Arc<str>,
}

impl HostSink {
    fn guarded(&self, what: &str, f: impl FnOnce()) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
            tracing::error!(
                plugin = %self.plugin,
                panic = %wire::panic_message(&*payload),
                "The host's sink panicked while handling {what} from a plugin."
            );
        }
    }
}

impl FfiSink for HostSink {
    fn event(&self, event: RStr<'_>) {
        match serde_json::from_str::<DriverEvent>(event.as_str()) {
            Ok(event) => self.guarded("an event", || self.sink.event(event)),
            Err(e) => tracing::warn!(
                plugin = %self.plugin,
                error = %e,
                event = %event,
                "Dropped an event the host cannot read (plugin built against another tapir-core?)."
            ),
        }
    }

    fn complete(&self, request: u64, outcome: RStr<'_>) {
        // Every request completes exactly once: an unreadable outcome still completes it.
        let outcome: Outcome = serde_json::from_str(outcome.as_str()).unwrap_or_else(|e| {
            Err(DriverError::failed(format!(
                "unreadable completion from the plugin ({e}): {outcome}"
            )))
        });
        self.guarded("a completion", || {
            self.sink.complete(RequestId(request), outcome)
        });
    }

    fn new_call_id(&self) -> u64 {
        match catch_unwind(AssertUnwindSafe(|| self.sink.new_call_id())) {
            Ok(CallId(id)) => id,
            Err(payload) => {
                // No id can be invented safely; abort this process the orderly way rather than
                // unwinding into the plugin.
                tracing::error!(
                    plugin = %self.plugin,
                    panic = %wire::panic_message(&*payload),
                    "The host's sink panicked while allocating a call id."
                );
                std::process::abort()
            }
        }
    }

    fn callback_url(&self) -> RString {
        catch_unwind(AssertUnwindSafe(|| self.sink.callback_url()))
            .ok()
            .flatten()
            .map(RString::from)
            .unwrap_or_default()
    }

    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        self.guarded("a log line", || {
            logging::emit(&self.plugin, level, target.as_str(), message.as_str())
        });
    }

    fn state_dir(&self) -> RString {
        catch_unwind(AssertUnwindSafe(|| self.sink.state_dir()))
            .ok()
            .flatten()
            .map(|dir| RString::from(dir.to_string_lossy().into_owned()))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tapir_core::{Completion, EventSink};

    #[derive(Default)]
    struct Recorder {
        events: Mutex<Vec<DriverEvent>>,
        completions: Mutex<Vec<(RequestId, Outcome)>>,
    }

    impl EventSink for Recorder {
        fn event(&self, event: DriverEvent) {
            self.events.lock().unwrap().push(event);
        }
        fn complete(&self, request: RequestId, outcome: Outcome) {
            self.completions.lock().unwrap().push((request, outcome));
        }
        fn new_call_id(&self) -> CallId {
            CallId(77)
        }
    }

    fn host_sink(recorder: &Arc<Recorder>) -> HostSink {
        HostSink {
            sink: recorder.clone(),
            plugin: Arc::from("test"),
        }
    }

    #[test]
    fn events_and_completions_are_decoded_and_passed_on() {
        let recorder = Arc::new(Recorder::default());
        let sink = host_sink(&recorder);
        sink.event(RStr::from_str(r#"{"event":"line_in_service","line":"7"}"#));
        sink.complete(5, RStr::from_str(r#"{"Ok":{"kind":"done"}}"#));
        assert_eq!(sink.new_call_id(), 77);
        assert_eq!(
            *recorder.events.lock().unwrap(),
            vec![DriverEvent::LineInService {
                line: LineKey::new("7")
            }]
        );
        assert_eq!(
            *recorder.completions.lock().unwrap(),
            vec![(RequestId(5), Ok(Completion::Done))]
        );
    }

    #[test]
    fn unreadable_events_are_dropped_but_unreadable_completions_still_complete() {
        let recorder = Arc::new(Recorder::default());
        let sink = host_sink(&recorder);
        sink.event(RStr::from_str(r#"{"event":"line_exploded"}"#));
        sink.complete(9, RStr::from_str("not json"));
        assert!(recorder.events.lock().unwrap().is_empty());
        let completions = recorder.completions.lock().unwrap();
        assert_eq!(completions.len(), 1);
        assert_eq!(completions[0].0, RequestId(9));
        let Err(error) = &completions[0].1 else {
            panic!("an unreadable outcome must complete with an error");
        };
        assert!(error.detail.contains("not json"), "{}", error.detail);
    }

    #[test]
    fn a_panicking_host_sink_does_not_unwind_into_the_plugin() {
        struct Panicky;
        impl EventSink for Panicky {
            fn event(&self, _: DriverEvent) {
                panic!("host bug");
            }
            fn complete(&self, _: RequestId, _: Outcome) {
                panic!("host bug");
            }
            fn new_call_id(&self) -> CallId {
                CallId(1)
            }
        }
        let sink = HostSink {
            sink: Arc::new(Panicky),
            plugin: Arc::from("test"),
        };
        sink.event(RStr::from_str(r#"{"event":"line_in_service","line":"7"}"#));
        sink.complete(1, RStr::from_str(r#"{"Ok":{"kind":"done"}}"#));
    }
}
