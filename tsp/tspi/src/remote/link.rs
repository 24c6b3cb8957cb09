//! The link: a driver of the local front end that stands for the central host. `submit`
//! only queues; one thread with its own small runtime sends the requests to the host one at
//! a time, reads the event stream, and feeds both into the [`Mirror`]. Because a request's
//! answer is handled before any event that arrived after it was sent, the host's events about
//! a call this workstation created always find the call already mapped.
//!
//! When the host is lost (the stream or a request fails), the lines go out of service and
//! pending requests complete with `Disconnected`; the link then reconnects with backoff
//! (0.25 s doubling up to `reconnect_max_s`) and resumes or reloads.

use super::http::{Client, HttpError, Stream, StreamEnd};
use super::mirror::{CallView, LineView, Mirror, Out, Prepared};
use super::RemoteConfig;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;
use tapir_core::{
    CallId, DriverError, ErrorKind, PhoneDriver, RequestEnvelope, RequestId, SharedSink,
};
use tokio::sync::mpsc;

/// The first wait before reconnecting.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How long a resumed stream may take to repeat the last event seen.
const RESUME_CHECK: Duration = Duration::from_secs(3);

enum Work {
    Request(RequestEnvelope),
    Stop,
}

/// The local driver standing for the host.
pub struct RemoteDriver {
    tx: mpsc::UnboundedSender<Work>,
    connected: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl RemoteDriver {
    /// Starts the link's thread. `first_sync` is told once the first connection attempt is
    /// over (lines reported, or the host unreachable).
    ///
    /// # Errors
    /// The thread or its runtime could not start.
    pub fn start(
        config: RemoteConfig,
        client: Client,
        sink: SharedSink,
        first_sync: std::sync::mpsc::Sender<()>,
    ) -> Result<Self, DriverError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let connected = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DriverError::failed(format!("cannot start a runtime: {e}")))?;
        let link = Link {
            client,
            sink,
            mirror: Mirror::new(config.filter()),
            rx,
            connected: Arc::clone(&connected),
            first_sync: Some(first_sync),
            backoff_max: Duration::from_secs_f64(config.reconnect_max_s).max(FIRST_BACKOFF),
            url: config.url.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("tapir-tspi-remote".into())
            .spawn(move || runtime.block_on(link.run()))
            .map_err(|e| DriverError::failed(format!("cannot start the link thread: {e}")))?;
        Ok(Self {
            tx,
            connected,
            thread: Mutex::new(Some(thread)),
        })
    }
}

impl PhoneDriver for RemoteDriver {
    fn submit(&self, request: RequestEnvelope) -> Result<(), DriverError> {
        if !self.connected.load(Ordering::SeqCst) {
            return Err(DriverError::new(
                ErrorKind::Disconnected,
                "the tapir host is unreachable",
            ));
        }
        self.tx
            .send(Work::Request(request))
            .map_err(|_| DriverError::new(ErrorKind::Uninitialized, "the link has stopped"))
    }

    fn shutdown(&self) {
        let _ = self.tx.send(Work::Stop);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("The remote link's thread panicked.");
            }
        }
    }
}

enum Flow {
    Stop,
    Lost(String),
}

struct Link {
    client: Client,
    sink: SharedSink,
    mirror: Mirror,
    rx: mpsc::UnboundedReceiver<Work>,
    connected: Arc<AtomicBool>,
    first_sync: Option<std::sync::mpsc::Sender<()>>,
    backoff_max: Duration,
    url: String,
}

impl Link {
    async fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        let mut failures = 0u32;
        loop {
            match self.connect().await {
                Ok(stream) => {
                    self.connected.store(true, Ordering::SeqCst);
                    self.synced();
                    tracing::info!(url = %self.url, "Connected to the tapir host.");
                    backoff = FIRST_BACKOFF;
                    failures = 0;
                    let flow = self.serve(stream).await;
                    self.connected.store(false, Ordering::SeqCst);
                    match flow {
                        Flow::Stop => return self.stop(),
                        Flow::Lost(reason) => {
                            tracing::warn!(url = %self.url, %reason, "Lost the tapir host; its lines are out of service until it is back.");
                            let out = self.mirror.lost(&reason);
                            self.apply(out);
                        }
                    }
                }
                Err(error) => {
                    if failures == 0 {
                        tracing::warn!(url = %self.url, %error, "Cannot reach the tapir host; retrying.");
                    } else {
                        tracing::debug!(url = %self.url, %error, failures, "Still cannot reach the tapir host.");
                    }
                    failures = failures.saturating_add(1);
                    self.synced();
                }
            }
            if let Flow::Stop = self.wait(backoff).await {
                return self.stop();
            }
            backoff = (backoff * 2).min(self.backoff_max);
        }
    }

    fn synced(&mut self) {
        if let Some(first) = self.first_sync.take() {
            let _ = first.send(());
        }
    }

    fn apply(&self, out: Vec<Out>) {
        for item in out {
            match item {
                Out::Event(event) => self.sink.event(*event),
                Out::Complete(request, outcome) => self.sink.complete(request, outcome),
            }
        }
    }

    fn new_call_id(&self) -> impl FnMut() -> CallId {
        let sink = Arc::clone(&self.sink);
        move || sink.new_call_id()
    }

    /// Lists the lines, then resumes the stream after the last event seen, or reloads the
    /// lines and calls when that is not possible.
    async fn connect(&mut self) -> Result<Stream, HttpError> {
        let (lines, seq): (Vec<LineView>, u64) = self.client.get("/v1/lines").await?;
        let mut restarted = false;
        if let Some(last) = self.mirror.last().cloned() {
            if seq >= last.seq {
                match self.client.stream(last.seq.saturating_sub(1)).await {
                    Ok(mut stream) => {
                        // The same host repeats the last event seen; a restarted one has
                        // another event there, or none yet.
                        match tokio::time::timeout(RESUME_CHECK, stream.next()).await {
                            Ok(Ok(first)) if first == last => {
                                let out =
                                    self.mirror
                                        .reload(lines, None, false, &mut self.new_call_id());
                                self.apply(out);
                                tracing::info!(
                                    after = last.seq,
                                    "Resumed the host's event stream."
                                );
                                return Ok(stream);
                            }
                            _ => restarted = true,
                        }
                    }
                    Err(e) if e.is_history_gap() => {
                        tracing::info!(
                            after = last.seq,
                            "The host's history no longer reaches back; reloading."
                        );
                    }
                    Err(e) => return Err(e),
                }
            } else {
                restarted = true;
            }
        }
        if restarted {
            tracing::info!("The tapir host restarted; reloading its lines and calls.");
        }
        // A consistent pair of lists: both at the same position (a few tries while the host
        // is busy; the stream then replays from the older one).
        let mut tries = 0;
        let (lines, calls, at) = loop {
            let (calls, at_calls): (Vec<CallView>, u64) = self.client.get("/v1/calls").await?;
            let (lines, at_lines): (Vec<LineView>, u64) = self.client.get("/v1/lines").await?;
            tries += 1;
            if at_calls == at_lines || tries == 3 {
                break (lines, calls, at_calls.min(at_lines));
            }
        };
        let stream = self.client.stream(at).await?;
        let out = self
            .mirror
            .reload(lines, Some(calls), restarted, &mut self.new_call_id());
        self.apply(out);
        Ok(stream)
    }

    /// Sends requests and applies events until the host is lost or the link stops.
    async fn serve(&mut self, mut stream: Stream) -> Flow {
        loop {
            tokio::select! {
                biased;
                work = self.rx.recv() => match work {
                    None | Some(Work::Stop) => return Flow::Stop,
                    Some(Work::Request(envelope)) => {
                        if let Err(reason) = self.execute(envelope).await {
                            return Flow::Lost(reason);
                        }
                    }
                },
                event = stream.next() => match event {
                    Ok(event) => {
                        let (out, fetch) = self.mirror.event(event, &mut self.new_call_id());
                        self.apply(out);
                        if let Some(line) = fetch {
                            match self.client.get::<LineView>(&format!("/v1/lines/{}", line.0)).await {
                                Ok((view, _)) => {
                                    let mut out = Vec::new();
                                    self.mirror.line(view, &mut out);
                                    self.apply(out);
                                }
                                // Gone again before it was fetched: its removal follows.
                                Err(HttpError::Api { status: 404, .. }) => {}
                                Err(e) => return Flow::Lost(e.to_string()),
                            }
                        }
                    }
                    Err(StreamEnd::Lost(reason)) => return Flow::Lost(reason),
                    Err(StreamEnd::Gap) => {
                        return Flow::Lost("the link fell behind the host's events".to_owned())
                    }
                },
            }
        }
    }

    /// Sends one request to the host. `Err` when the host cannot be reached.
    async fn execute(&mut self, envelope: RequestEnvelope) -> Result<(), String> {
        let id = envelope.id;
        let http = match self.mirror.prepare(&envelope) {
            Ok(Prepared::Send(http)) => http,
            Ok(Prepared::Settled(out)) => {
                self.apply(out);
                return Ok(());
            }
            Err(error) => {
                self.sink.complete(id, Err(error));
                return Ok(());
            }
        };
        match self
            .client
            .call(http.method, &http.path, http.body.as_ref())
            .await
        {
            Ok(reply) => {
                match reply["request"].as_u64() {
                    Some(remote) => self.mirror.accepted(
                        id,
                        RequestId(remote),
                        reply["call"].as_u64().map(CallId),
                    ),
                    None => {
                        let out = self
                            .mirror
                            .refused(id, DriverError::failed("the tapir host sent no request id"));
                        self.apply(out);
                    }
                }
                Ok(())
            }
            Err(HttpError::Transport(detail)) => Err(detail),
            Err(error) => {
                tracing::debug!(request = %id, %error, "The tapir host refused a request.");
                let out = self.mirror.refused(id, error.to_driver_error());
                self.apply(out);
                Ok(())
            }
        }
    }

    /// Waits before the next attempt; requests that arrive meanwhile fail at once.
    async fn wait(&mut self, wait: Duration) -> Flow {
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return Flow::Lost(String::new()),
                work = self.rx.recv() => match work {
                    None | Some(Work::Stop) => return Flow::Stop,
                    Some(Work::Request(envelope)) => self.sink.complete(
                        envelope.id,
                        Err(DriverError::new(ErrorKind::Disconnected, "the tapir host is unreachable")),
                    ),
                },
            }
        }
    }

    /// Completes what is still pending or queued; nothing follows.
    fn stop(mut self) {
        let out = self.mirror.abandon();
        self.apply(out);
        self.rx.close();
        while let Ok(work) = self.rx.try_recv() {
            if let Work::Request(envelope) = work {
                self.sink.complete(
                    envelope.id,
                    Err(DriverError::new(
                        ErrorKind::Uninitialized,
                        "the provider is shutting down",
                    )),
                );
            }
        }
    }
}
