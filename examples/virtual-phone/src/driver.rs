//! The driver object: takes requests from the host, hands them to a worker thread that runs the
//! `Phone` with its timer queue, and stops that thread on shutdown.
//!
//! No async runtime: a plugin owns its threads, and one thread with `recv_timeout` on a
//! `std::sync::mpsc` channel is all a simulated phone needs.

use crate::config::VirtualPhoneConfig;
use crate::phone::Phone;
use std::collections::HashSet;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;
use tapir_core::{
    DriverError, DriverEvent, ErrorKind, PhoneDriver, Request, RequestEnvelope, SharedSink,
};

/// A running virtual phone driver.
pub struct VirtualPhone {
    lines: HashSet<String>,
    panic_on_number: Option<String>,
    /// `None` once shut down; dropping the sender is what stops the worker.
    requests: Mutex<Option<mpsc::Sender<RequestEnvelope>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl VirtualPhone {
    /// Starts a virtual phone: announces its lines through `sink` (before returning) and
    /// starts its worker thread.
    ///
    /// # Errors
    /// Returns `Uninitialized` if the worker thread cannot be started.
    pub fn start(config: VirtualPhoneConfig, sink: SharedSink) -> Result<Self, DriverError> {
        let phone = Phone::new(config.clone(), sink.clone(), Instant::now());
        for info in phone.line_infos() {
            sink.event(DriverEvent::LineCreated { info });
        }
        let (sender, receiver) = mpsc::channel();
        let worker = thread::Builder::new()
            .name("virtual-phone".into())
            .spawn(move || run(phone, receiver))
            .map_err(|e| {
                DriverError::new(
                    ErrorKind::Uninitialized,
                    format!("cannot start the worker thread: {e}"),
                )
            })?;
        tracing::info!(lines = config.lines.len(), "Virtual phone started.");
        Ok(Self {
            lines: config.lines.iter().map(|l| l.key.clone()).collect(),
            panic_on_number: config.panic_on_number,
            requests: Mutex::new(Some(sender)),
            worker: Mutex::new(Some(worker)),
        })
    }

    /// The test hook: panics if the request dials the configured number. Runs before any lock
    /// is taken, so the driver is intact after the panic.
    fn panic_if_asked(&self, request: &Request) {
        let Some(trigger) = &self.panic_on_number else {
            return;
        };
        let dialled = match request {
            Request::MakeCall {
                destination: Some(number),
                ..
            } => Some(number),
            Request::Dial { digits, .. } => Some(digits),
            _ => None,
        };
        if dialled == Some(trigger) {
            panic!("panic_on_number: asked to dial {trigger}");
        }
    }
}

impl PhoneDriver for VirtualPhone {
    fn submit(&self, envelope: RequestEnvelope) -> Result<(), DriverError> {
        if !self.lines.contains(envelope.line.as_str()) {
            return Err(DriverError::new(
                ErrorKind::BadDeviceId,
                format!("the virtual phone has no line {}", envelope.line),
            ));
        }
        self.panic_if_asked(&envelope.request);
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = requests.as_ref() else {
            return Err(DriverError::new(
                ErrorKind::Uninitialized,
                "the virtual phone is shut down",
            ));
        };
        sender.send(envelope).map_err(|_| {
            DriverError::new(ErrorKind::Uninitialized, "the virtual phone has stopped")
        })
    }

    fn shutdown(&self) {
        // Dropping the sender ends the worker after it has handled everything already queued.
        drop(
            self.requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(worker) = worker {
            // Shutdown called from the worker itself (a sink reacting to an event) must not
            // wait for itself; the worker ends right after.
            if worker.thread().id() != thread::current().id() && worker.join().is_err() {
                tracing::error!("The virtual phone's worker thread panicked.");
            }
        }
        tracing::info!("Virtual phone stopped.");
    }
}

impl Drop for VirtualPhone {
    fn drop(&mut self) {
        if self
            .worker
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            self.shutdown();
        }
    }
}

/// The worker: runs due timers, waits for the next request or deadline, and finishes pending
/// requests when the driver shuts down.
fn run(mut phone: Phone, requests: mpsc::Receiver<RequestEnvelope>) {
    loop {
        phone.fire_due(Instant::now());
        let next = match phone.next_deadline() {
            Some(at) => requests.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => requests.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(envelope) => phone.handle(envelope, Instant::now()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    phone.shut_down();
}
