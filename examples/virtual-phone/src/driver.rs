//! The driver object: takes requests from the host, hands them to a worker thread that runs the
//! `Phone` with its timer queue, and stops that thread on shutdown.
//!
//! No async runtime: a plugin owns its threads, and one thread with `recv_timeout` on a
//! `std::sync::mpsc` channel is all a simulated phone needs.

use crate::config::{IncomingConfig, LineConfig, VirtualPhoneConfig};
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
    /// Add a line (`/lines/add`).
    AddLine(LineConfig),
    /// Remove a line, ending its calls (`/lines/remove`).
    RemoveLine(String),
    /// Take a line out of service with a reason, or (`None`) put it back
    /// (`/lines/out-of-service`, `/lines/in-service`).
    Service {
        key: String,
        out_of_service: Option<String>,
    },
}

/// The reason given when `/lines/out-of-service` names none.
const DEFAULT_OUT_OF_SERVICE_REASON: &str = "taken out of service over HTTP";

/// A running virtual phone driver.
pub struct VirtualPhone {
    /// The keys of the lines that exist now. Changed by the HTTP line endpoints before they
    /// ask the worker, so `submit` refuses a removed line at once.
    lines: Mutex<HashSet<String>>,
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
            lines: Mutex::new(config.lines.iter().map(|l| l.key.clone()).collect()),
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

    fn lock_lines(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // Every change is one insert or remove: the set stays usable after a panic.
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn has_line(&self, key: &str) -> bool {
        self.lock_lines().contains(key)
    }

    /// Hands work to the worker; `reply` is the body of the 202 sent when it was queued.
    fn send_work(&self, work: Work, reply: String) -> HttpReply {
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        match requests.as_ref().map(|s| s.send(work)) {
            Some(Ok(())) => HttpReply::text(202, reply),
            _ => HttpReply::text(503, "the virtual phone is shut down\n"),
        }
    }

    /// `/ring`: the incoming call to offer.
    fn ring(&self, query: &Query) -> Result<(Work, String), HttpReply> {
        let (Some(line), Some(from)) = (query.get("line"), query.get("from")) else {
            return Err(HttpReply::text(
                400,
                "usage: /ring?line=KEY&from=NUMBER[&name=NAME]\n",
            ));
        };
        if !self.has_line(line) {
            return Err(HttpReply::text(404, format!("no line {line}\n")));
        }
        let incoming = IncomingConfig {
            line: line.to_owned(),
            after_ms: 0,
            from: from.to_owned(),
            name: query.get("name").map(str::to_owned),
            repeat_ms: None,
        };
        Ok((Work::Ring(incoming), "ringing\n".to_owned()))
    }

    /// `/lines/add`: the key is taken now, so a second add of the same key is refused.
    fn add_line(&self, query: &Query) -> Result<(Work, String), HttpReply> {
        let Some(key) = query.get("key").map(str::trim).filter(|k| !k.is_empty()) else {
            return Err(HttpReply::text(
                400,
                "usage: /lines/add?key=KEY[&name=NAME][&number=NUMBER]\n",
            ));
        };
        if !self.lock_lines().insert(key.to_owned()) {
            return Err(HttpReply::text(409, format!("line {key} exists\n")));
        }
        let config = LineConfig {
            key: key.to_owned(),
            name: query.get("name").map(str::to_owned),
            number: query.get("number").map(str::to_owned),
        };
        Ok((Work::AddLine(config), format!("adding line {key}\n")))
    }

    /// The `key` of a request about a line that exists.
    fn existing_line(&self, query: &Query, usage: &str) -> Result<String, HttpReply> {
        let Some(key) = query.get("key") else {
            return Err(HttpReply::text(400, format!("usage: {usage}\n")));
        };
        if !self.has_line(key) {
            return Err(HttpReply::text(404, format!("no line {key}\n")));
        }
        Ok(key.to_owned())
    }
}

/// A decoded query string; the first value of a repeated name counts.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Self {
        Self(
            raw.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(key), percent_decode(value))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl PhoneDriver for VirtualPhone {
    fn submit(&self, envelope: RequestEnvelope) -> Result<(), DriverError> {
        if !self.has_line(envelope.line.as_str()) {
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

    /// The test-and-demo endpoints (`GET` or `POST`), so testers can change the phone on
    /// demand:
    /// - `/ring?line=KEY&from=NUMBER[&name=NAME]`: an incoming call arrives now;
    /// - `/lines/add?key=KEY[&name=NAME][&number=NUMBER]`: a new line appears;
    /// - `/lines/remove?key=KEY`: the line's calls end, then the line goes;
    /// - `/lines/out-of-service?key=KEY[&reason=TEXT]` and `/lines/in-service?key=KEY`.
    ///
    /// Accepted requests get 202 (the worker does the work right after); missing parameters
    /// 400, an unknown line 404, a key already in use 409, anything else 404.
    fn http_callback(&self, request: HttpCallback) -> HttpReply {
        let query = Query::parse(&request.query);
        let work = match request.path.as_str() {
            "/ring" => self.ring(&query),
            "/lines/add" => self.add_line(&query),
            "/lines/remove" => self
                .existing_line(&query, "/lines/remove?key=KEY")
                .map(|key| {
                    self.lock_lines().remove(&key);
                    (
                        Work::RemoveLine(key.clone()),
                        format!("removing line {key}\n"),
                    )
                }),
            "/lines/out-of-service" => self
                .existing_line(&query, "/lines/out-of-service?key=KEY[&reason=TEXT]")
                .map(|key| {
                    let reason = query
                        .get("reason")
                        .filter(|r| !r.is_empty())
                        .unwrap_or(DEFAULT_OUT_OF_SERVICE_REASON)
                        .to_owned();
                    let reply = format!("line {key} out of service\n");
                    (
                        Work::Service {
                            key,
                            out_of_service: Some(reason),
                        },
                        reply,
                    )
                }),
            "/lines/in-service" => {
                self.existing_line(&query, "/lines/in-service?key=KEY")
                    .map(|key| {
                        let reply = format!("line {key} in service\n");
                        (
                            Work::Service {
                                key,
                                out_of_service: None,
                            },
                            reply,
                        )
                    })
            }
            _ => Err(HttpReply::text(
                404,
                "the virtual phone knows /ring, /lines/add, /lines/remove, \
                 /lines/out-of-service and /lines/in-service\n",
            )),
        };
        match work {
            Ok((work, reply)) => self.send_work(work, reply),
            Err(reply) => reply,
        }
    }

    /// One row per line: a virtual phone is always connected and configured.
    fn devices(&self) -> Vec<DeviceStatus> {
        let mut keys: Vec<_> = self.lock_lines().iter().cloned().collect();
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
            Ok(Work::AddLine(config)) => phone.add_line(config),
            Ok(Work::RemoveLine(key)) => phone.remove_line(&key, Instant::now()),
            Ok(Work::Service {
                key,
                out_of_service,
            }) => phone.set_service(&key, out_of_service),
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
