//! The host's HTTP listeners: the application endpoint (`[http]`, the [`api`](crate::api)
//! router, plain or HTTPS) and the phones' callback endpoint (`[phones]`). One accept loop
//! serves both, HTTP/1.1 with keep-alive and WebSocket upgrades, and keeps idle, slow and
//! hostile connections from starving them:
//!
//! - [`guard`]: each connection's phase; the header and keep-alive timeouts; at most `max`
//!   connections per listener, the one waiting longest giving way to a newcomer; shedding
//!   waiting connections when descriptors run out;
//! - `service`: the body timeout (408) and the peer address for handlers;
//! - `io`: the send timeout for clients that do not read;
//! - [`descriptors`]: `tapir run` raises its open-file limit to the hard limit.
//!
//! The accept loop never spins: on `EMFILE`/`ENFILE` it sheds waiting connections and retries
//! at once, or backs off up to a second when there is nothing to shed.

pub mod descriptors;
pub mod guard;
mod io;
mod service;

use crate::config::{ConnectionLimits, HttpConfig};
use guard::{Pool, Reason, Ticket};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use crate::api::router;

/// Which listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The application endpoint: API, event streams, page, metrics (`[http]`).
    Api,
    /// The phones' callback endpoint (`[phones]`).
    Phones,
}

impl Endpoint {
    /// Its name in logs.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Api => "HTTP endpoint",
            Endpoint::Phones => "Phone callback endpoint",
        }
    }

    /// Its `listener` label in metrics: the configuration section.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Api => "http",
            Endpoint::Phones => "phones",
        }
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed.
    #[error("cannot load TLS certificate or key from {path}: {detail}")]
    Load {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The certificate and key do not make a TLS configuration.
    #[error("cannot use the TLS certificate and key: {0}")]
    Config(#[source] rustls::Error),
}

/// Installs ring as the process's TLS crypto provider (once; later calls do nothing).
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Loads a PEM certificate chain and private key into a TLS acceptor speaking HTTP/1.1.
///
/// # Errors
/// When a file cannot be read or parsed, or the key does not fit the certificate.
pub fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    install_crypto_provider();
    let load = |path: &Path, detail: String| TlsError::Load {
        path: path.display().to_string(),
        detail,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| load(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(load(cert, "no certificate in the file".to_owned()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| load(key, e.to_string()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves the application endpoint as `[http]` says: HTTPS when `tls_cert` and `tls_key` are
/// set, within `[http.connections]`. Must be called inside a tokio runtime.
///
/// # Errors
/// When TLS is configured and its files cannot be used.
pub fn serve_api(
    listener: TcpListener,
    app: axum::Router,
    http: &HttpConfig,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, TlsError> {
    let tls = match (&http.tls_cert, &http.tls_key) {
        (Some(cert), Some(key)) => Some(load_tls(cert, key)?),
        _ => None,
    };
    Ok(serve(
        Endpoint::Api,
        listener,
        app,
        tls,
        http.connections,
        stop,
    ))
}

/// Serves `app` on `listener` (over TLS with `tls`) until `stop` turns true, within `limits`.
/// Must be called inside a tokio runtime.
pub fn serve(
    endpoint: Endpoint,
    listener: TcpListener,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let scheme = if tls.is_some() { " (HTTPS)" } else { "" };
    tracing::info!(
        listen = %bound,
        max_connections = limits.max.get(),
        "{} listening{scheme}.",
        endpoint.name()
    );
    tokio::spawn(accept_loop(endpoint, listener, app, tls, limits, stop))
}

/// How long connections get to finish when the host stops.
const GRACE: Duration = Duration::from_secs(3);
/// Waiting connections shed at once when descriptors run out.
const SHED_BATCH: usize = 16;
/// The longest pause of the accept loop after an error.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

async fn accept_loop(
    endpoint: Endpoint,
    listener: TcpListener,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let pool = Pool::start(endpoint.label(), limits);
    let warn = Throttle::new(Duration::from_secs(10));
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                backoff = Duration::from_millis(10);
                match pool.admit() {
                    Some(ticket) => {
                        let connection = Connection {
                            endpoint,
                            app: app.clone(),
                            tls: tls.clone(),
                            stop: stop.clone(),
                        };
                        tokio::spawn(connection.run(tcp, peer, ticket));
                    }
                    None => {
                        drop(tcp);
                        metrics::counter!(
                            "tapir_http_connections_closed_total",
                            "listener" => endpoint.label(),
                            "reason" => Reason::Refused.label()
                        )
                        .increment(1);
                        if warn.ready() {
                            tracing::warn!(
                                max = limits.max.get(),
                                "{}: every connection is busy; new connections are closed.",
                                endpoint.name()
                            );
                        }
                    }
                }
            }
            Err(error) if out_of_descriptors(&error) => {
                let shed = guard::shed_waiting(SHED_BATCH);
                if warn.ready() {
                    tracing::warn!(%error, shed, "{}: out of file descriptors; closing connections that only wait.", endpoint.name());
                }
                if shed > 0 {
                    // The shed connections close as their tasks run; retry very soon.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                } else {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            // The peer gave up before we accepted: nothing to do.
            Err(error) if aborted(&error) => {}
            Err(error) => {
                if warn.ready() {
                    tracing::warn!(%error, "{}: accepting failed.", endpoint.name());
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    drop(listener);
    // Connections were told to finish (they watch `stop`); give them the grace time.
    let deadline = Instant::now() + GRACE;
    while pool.len() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.close_all();
}

/// What a connection's task needs.
struct Connection {
    endpoint: Endpoint,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, tcp: TcpStream, peer: SocketAddr, ticket: Ticket) {
        let conn = Arc::clone(&ticket.conn);
        let limits = *ticket.limits();
        let _ = tcp.set_nodelay(true);
        // The ticket lives with the socket: also after a WebSocket upgrade takes the socket
        // out of this task, the connection is counted until it closes.
        let io = io::GuardedIo::new(tcp, ticket, limits.send_timeout());
        let work = async {
            match &self.tls {
                None => self.http(io, peer, &conn, &limits).await,
                Some(acceptor) => match acceptor.accept(io).await {
                    Ok(stream) => self.http(stream, peer, &conn, &limits).await,
                    Err(error) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed.")
                    }
                },
            }
        };
        tokio::select! {
            _ = work => {}
            reason = conn.closed() => {
                tracing::debug!(%peer, reason = reason.label(), "{}: connection closed by the host.", self.endpoint.name());
            }
        }
    }

    async fn http<S>(
        &self,
        stream: S,
        peer: SocketAddr,
        conn: &Arc<guard::Conn>,
        limits: &ConnectionLimits,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = service::Guarded {
            app: self.app.clone(),
            peer,
            conn: Arc::clone(conn),
            body_timeout: limits.body_timeout(),
            endpoint: self.endpoint,
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        // The guard times heads itself (from the connection's start, not per read).
        builder.header_read_timeout(None).keep_alive(true);
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        let mut stop = self.stop.clone();
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "{}: connection ended with an error.", self.endpoint.name());
                }
                return;
            }
            _ = stop.wait_for(|s| *s) => {}
        }
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    }
}

/// `EMFILE` (this process) or `ENFILE` (the whole system): descriptors ran out.
fn out_of_descriptors(error: &std::io::Error) -> bool {
    // The same numbers on Linux, the BSDs and macOS; WSAEMFILE on Windows.
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    const WSAEMFILE: i32 = 10024;
    let code = error.raw_os_error();
    if cfg!(windows) {
        code == Some(WSAEMFILE)
    } else {
        code == Some(EMFILE) || code == Some(ENFILE)
    }
}

fn aborted(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionRefused
    )
}

/// At most one warning per period, so that a flood does not flood the log too.
struct Throttle {
    period: Duration,
    start: Instant,
    next: AtomicU64,
}

impl Throttle {
    fn new(period: Duration) -> Self {
        Self {
            period,
            start: Instant::now(),
            next: AtomicU64::new(0),
        }
    }

    fn ready(&self) -> bool {
        let now = self.start.elapsed().as_millis() as u64;
        let next = self.next.load(Ordering::Relaxed);
        now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now + self.period.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}
