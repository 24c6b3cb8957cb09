//! Log forwarding across the boundary.
//!
//! A cdylib links its own copy of `tracing`, with its own global dispatcher: without help, a
//! plugin's `tracing::info!` goes nowhere. So the plugin side installs (once per library, when
//! the first driver is built) a small subscriber whose only layer formats each event and
//! forwards it through the host's sink ([`FfiSink::log`](crate::ffi::FfiSink::log)); the host
//! side re-emits it with its own `tracing`, under the target [`PLUGIN_LOG_TARGET`] with the
//! fields `plugin` (the plugin's name) and `source` (the plugin-side module path).

use crate::ffi::LogLevel;
use crate::plugin::SinkProxy;
use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, Once, PoisonError, Weak};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

/// The `tracing` target under which the host re-emits plugin log lines.
pub const PLUGIN_LOG_TARGET: &str = "tapir::plugin";

/// The sinks a plugin library can forward through: one per live driver instance. Any live one
/// will do, since the host tags the line with the plugin's name, not the instance.
static SINKS: Mutex<Vec<Weak<SinkProxy>>> = Mutex::new(Vec::new());

static INSTALL: Once = Once::new();

thread_local! {
    /// Set while this thread forwards an event, so that an event raised during forwarding
    /// (or re-emitted into this same dispatcher when the plugin is linked statically) is not
    /// forwarded again in a loop.
    static FORWARDING: Cell<bool> = const { Cell::new(false) };
}

/// Plugin side: remembers `sink` for forwarding and installs the forwarding subscriber if this
/// library has none yet.
///
/// If a global dispatcher is already set (the driver was linked into the host statically, so
/// its `tracing` *is* the host's), nothing is installed: the events already reach the host.
pub(crate) fn install(sink: &Arc<SinkProxy>) {
    {
        let mut sinks = SINKS.lock().unwrap_or_else(PoisonError::into_inner);
        sinks.retain(|weak| weak.strong_count() > 0);
        sinks.push(Arc::downgrade(sink));
    }
    INSTALL.call_once(|| {
        if tracing::dispatcher::has_been_set() {
            return;
        }
        let subscriber = tracing_subscriber::registry().with(ForwardLayer);
        // Losing the race against another thread installing a dispatcher is harmless.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

fn live_sink() -> Option<Arc<SinkProxy>> {
    let sinks = SINKS.lock().unwrap_or_else(PoisonError::into_inner);
    sinks.iter().rev().find_map(Weak::upgrade)
}

/// The layer that forwards every event through a live sink.
struct ForwardLayer;

impl<S: Subscriber> Layer<S> for ForwardLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(_guard) = ForwardingGuard::enter() else {
            return;
        };
        let Some(sink) = live_sink() else {
            return;
        };
        let meta = event.metadata();
        let mut text = EventText::default();
        event.record(&mut text);
        sink.log(LogLevel::from(*meta.level()), meta.target(), &text.finish());
    }
}

/// Marks this thread as forwarding; `None` when it already is.
struct ForwardingGuard;

impl ForwardingGuard {
    fn enter() -> Option<Self> {
        FORWARDING.with(|flag| {
            if flag.replace(true) {
                None
            } else {
                Some(ForwardingGuard)
            }
        })
    }
}

impl Drop for ForwardingGuard {
    fn drop(&mut self) {
        FORWARDING.with(|flag| flag.set(false));
    }
}

/// Formats an event as `message key=value key=value`.
#[derive(Default)]
struct EventText {
    message: String,
    fields: String,
}

impl EventText {
    fn finish(self) -> String {
        match (self.message.is_empty(), self.fields.is_empty()) {
            (_, true) => self.message,
            (true, false) => self.fields,
            (false, false) => format!("{} {}", self.message, self.fields),
        }
    }

    fn push_field(&mut self, name: &str, value: fmt::Arguments<'_>) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{name}={value}");
    }
}

impl Visit for EventText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.push_field(field.name(), format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.push_field(field.name(), format_args!("{value:?}"));
        }
    }
}

/// Host side: re-emits a plugin's log line with the host's `tracing`.
pub(crate) fn emit(plugin: &str, level: LogLevel, source: &str, message: &str) {
    match level {
        LogLevel::Error => tracing::error!(target: PLUGIN_LOG_TARGET, plugin, source, "{message}"),
        LogLevel::Warn => tracing::warn!(target: PLUGIN_LOG_TARGET, plugin, source, "{message}"),
        LogLevel::Info => tracing::info!(target: PLUGIN_LOG_TARGET, plugin, source, "{message}"),
        LogLevel::Debug => tracing::debug!(target: PLUGIN_LOG_TARGET, plugin, source, "{message}"),
        LogLevel::Trace => tracing::trace!(target: PLUGIN_LOG_TARGET, plugin, source, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// Captures events' formatted text through the same visitor the forwarder uses.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            let mut text = EventText::default();
            event.record(&mut text);
            self.0.lock().unwrap().push(format!(
                "{} {} {}",
                event.metadata().level(),
                event.metadata().target(),
                text.finish()
            ));
        }
    }

    #[test]
    fn events_are_formatted_as_message_then_fields() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(line = "100", call = 7, "Call placed.");
            tracing::warn!(only = true);
        });
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(
            lines,
            vec![
                "INFO tapir_plugin_abi::logging::tests Call placed. line=100 call=7".to_owned(),
                "WARN tapir_plugin_abi::logging::tests only=true".to_owned(),
            ]
        );
    }

    #[test]
    fn host_side_reemits_with_plugin_name_and_source() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        tracing::subscriber::with_default(subscriber, || {
            emit(
                "virtual-phone",
                LogLevel::Warn,
                "vp::worker",
                "Line down. line=100",
            );
        });
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(
            lines,
            vec![
                "WARN tapir::plugin Line down. line=100 plugin=virtual-phone source=vp::worker"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn the_forwarding_guard_refuses_reentry_on_one_thread() {
        let outer = ForwardingGuard::enter();
        assert!(outer.is_some());
        assert!(ForwardingGuard::enter().is_none());
        drop(outer);
        assert!(ForwardingGuard::enter().is_some());
    }
}
