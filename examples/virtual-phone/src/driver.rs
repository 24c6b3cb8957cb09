//! The driver object: takes requests from the host, hands them to a worker thread that runs the
//! `Phone` with its timer queue, and stops that thread on shutdown.
//!
//! No async runtime: a plugin owns its threads, and one thread with `recv_timeout` on a
//! `std::sync::mpsc` channel is all a simulated phone needs.

use crate::config::{IncomingConfig, VirtualPhoneConfig};
use crate::phone::Phone;
use std::collections::HashSet;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;
use tapir_core::{
    Configuration, Connection, DeviceStatus, DriverError, DriverEvent, ErrorKind, HttpCallback,
    HttpReply, LineKey, PhoneDriver, Request, RequestEnvelope, SharedSink,
};

/// What the worker thread is asked to do.
enum Work {
    /// A request from the host.
    Request(RequestEnvelope),
    /// Ring now, as asked over HTTP (`/ring`).
    Ring(IncomingConfig),
}

/// A running virtual phone driver.
pub struct VirtualPhone {
    lines: HashSet<String>,
    panic_on_number: Option<String>,
    /// `None` once shut down; dropping the sender is what stops the worker.
    requests: Mutex<Option<mpsc::Sender<Work>>>,
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
        sender.send(Work::Request(envelope)).map_err(|_| {
            DriverError::new(ErrorKind::Uninitialized, "the virtual phone has stopped")
        })
    }

    /// `GET` or `POST /ring?line=KEY&from=NUMBER[&name=NAME]` makes an incoming call arrive
    /// now: a way for testers to ring a line on demand. Everything else is 404.
    fn http_callback(&self, request: HttpCallback) -> HttpReply {
        if request.path != "/ring" {
            return HttpReply::text(404, "the virtual phone knows only /ring\n");
        }
        let mut line = None;
        let mut from = None;
        let mut name = None;
        for pair in request.query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match key {
                "line" => line = Some(value),
                "from" => from = Some(value),
                "name" => name = Some(value),
                _ => {}
            }
        }
        let (Some(line), Some(from)) = (line, from) else {
            return HttpReply::text(400, "usage: /ring?line=KEY&from=NUMBER[&name=NAME]\n");
        };
        if !self.lines.contains(&line) {
            return HttpReply::text(404, format!("no line {line}\n"));
        }
        let incoming = IncomingConfig {
            line,
            after_ms: 0,
            from,
            name,
            repeat_ms: None,
        };
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        match requests.as_ref().map(|s| s.send(Work::Ring(incoming))) {
            Some(Ok(())) => HttpReply::text(202, "ringing\n"),
            _ => HttpReply::text(503, "the virtual phone is shut down\n"),
        }
    }

    /// One row per line: a virtual phone is always connected and configured.
    fn devices(&self) -> Vec<DeviceStatus> {
        let mut keys: Vec<_> = self.lines.iter().cloned().collect();
        keys.sort();
        keys.into_iter()
            .map(|key| DeviceStatus {
                model: Some("virtual phone".to_owned()),
                number: Some(key.clone()),
                connection: Connection::Connected,
                configuration: Configuration::Correct,
                lines: vec![LineKey::new(key.clone())],
                key,
                ..DeviceStatus::default()
            })
            .collect()
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
fn run(mut phone: Phone, requests: mpsc::Receiver<Work>) {
    loop {
        phone.fire_due(Instant::now());
        let next = match phone.next_deadline() {
            Some(at) => requests.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => requests.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(Work::Request(envelope)) => phone.handle(envelope, Instant::now()),
            Ok(Work::Ring(incoming)) => phone.offer(&incoming, Instant::now()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    phone.shut_down();
}

/// Decodes `%XX` escapes and `+` (form encoding) in a query value; malformed escapes stay as
/// they are.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod decode_tests {
    use super::percent_decode;

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(percent_decode("Anna+M%C3%BCller"), "Anna Müller");
        assert_eq!(percent_decode("%2B49"), "+49");
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%zz1"), "%zz1");
    }
}
