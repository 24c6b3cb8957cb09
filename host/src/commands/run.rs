//! `tapir run`: the daemon. Starts the drivers and the HTTP endpoint, reloads the
//! configuration on SIGHUP, waits for SIGINT or SIGTERM, then stops in order: HTTP first, then
//! the drivers (open calls are reported). Under systemd (`Type=notify`) it tells the service
//! manager when it is ready, reloading and stopping.

use crate::config::{Config, Source};
use crate::host::Host;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long the drivers get to stop before the host leaves without them.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Runs the daemon until a signal arrives.
pub fn run(config: Option<PathBuf>) -> ExitCode {
    let source = match config {
        Some(path) => Source::File(path),
        None => Source::Embedded,
    };
    let Some((config, catalog)) = super::load(&source) else {
        return ExitCode::from(2);
    };
    let as_read = config.clone();
    if let Err(error) = crate::logging::init(&config.log) {
        eprintln!("tapir: cannot set up logging: {error}");
        return ExitCode::from(2);
    }
    match source.path() {
        None => tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            http = %config.http.listen,
            "Starting tapir on the embedded default configuration: a SIMULATED office on loopback (no real phones). Open http://{}/ and dial; `tapir run --config FILE` for real phones.",
            config.http.listen
        ),
        Some(path) => tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            config = %path.display(),
            drivers = config.drivers.len(),
            "Starting tapir."
        ),
    }
    log_access(&config);
    crate::http::descriptors::raise_limit();
    crate::http::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.http.workers_or_default())
        .enable_all()
        .thread_name("tapir-host")
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            tracing::error!(%error, "Cannot start the async runtime.");
            return ExitCode::FAILURE;
        }
    };
    let mut config = config;
    let Some(listeners) = runtime.block_on(bind_all(&mut config)) else {
        return ExitCode::FAILURE;
    };
    let (host, cluster) = if config.cluster.is_some() {
        match runtime.block_on(join_cluster(&config, catalog)) {
            Ok((host, cluster)) => (host, Some(cluster)),
            Err(error) => {
                tracing::error!(%error, "Cannot join the cluster.");
                return ExitCode::FAILURE;
            }
        }
    } else {
        // Built inside the runtime, SIP drivers run their tasks on it (`sip_ua::runtime`).
        let _in_runtime = runtime.enter();
        (Arc::new(Host::start(&config, &catalog)), None)
    };
    tracing::info!(
        lines = host.tsp.lines().len(),
        failed = host.failed().len(),
        "Drivers started."
    );
    let reloader = crate::reload::Reloader::new(source, as_read);
    let code = runtime.block_on(serve(
        listeners,
        Arc::clone(&host),
        &config,
        reloader,
        cluster,
    ));
    let stopping = Arc::clone(&host);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        stopping.shutdown();
        let _ = done_tx.send(());
    });
    if done_rx.recv_timeout(SHUTDOWN_DEADLINE).is_err() {
        tracing::error!(
            deadline_s = SHUTDOWN_DEADLINE.as_secs(),
            "Drivers did not stop in time; leaving without them."
        );
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    tracing::info!("tapir stopped.");
    code
}

/// Says in the first log lines who may use the API, loudly when anybody may.
fn log_access(config: &Config) {
    if !config.http.enabled {
        return;
    }
    let scheme = if config.http.tls() { "https" } else { "http" };
    if config.api.tokens.is_empty() {
        tracing::warn!(
            http = %config.http.listen,
            "No API tokens configured: the API is open to every client that can reach {scheme}://{}; only loopback is allowed so. Add [[api.tokens]] to require tokens.",
            config.http.listen
        );
    } else {
        let names: Vec<&str> = config.api.tokens.iter().map(|t| t.name.as_str()).collect();
        tracing::info!(
            http = %config.http.listen,
            tokens = names.len(),
            holders = ?names,
            "API access needs a token ({scheme})."
        );
    }
}

/// Connects to the cluster and starts the node's cluster tasks; the lease manager then starts
/// the instances this node takes and mirrors the others.
async fn join_cluster(
    config: &Config,
    catalog: crate::catalog::Catalog,
) -> Result<(Arc<Host>, Arc<crate::cluster::Cluster>), crate::cluster::ClusterError> {
    let (engine, host) = crate::cluster::connect(config).await?;
    let host = Arc::new(host);
    let cluster =
        crate::cluster::Cluster::start(config, engine, Arc::clone(&host), Arc::new(catalog))
            .await?;
    Ok((host, Arc::new(cluster)))
}

async fn serve(
    listeners: Listeners,
    host: Arc<Host>,
    config: &Config,
    reloader: crate::reload::Reloader,
    cluster: Option<Arc<crate::cluster::Cluster>>,
) -> ExitCode {
    // Registered before anything is served, so an early SIGHUP or SIGTERM is not lost.
    let mut signals = Signals::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    let api = Arc::new(
        crate::api::ApiState::new(Arc::clone(&host), config)
            .with_reloader(reloader)
            .with_cluster(cluster.clone()),
    );
    let drops: crate::api::pump::Dropper = match &cluster {
        Some(cluster) => {
            let cluster = Arc::clone(cluster);
            Arc::new(move |line| cluster.runs_line(line))
        }
        None => Arc::new(|_| true),
    };
    let _pump = crate::api::pump::spawn_for(
        Arc::clone(&host.tsp),
        Duration::from_secs(config.api.idle_call_linger_s),
        drops,
    );
    if let Some(listener) = listeners.http {
        let app = crate::http::router(Arc::clone(&api));
        match crate::http::serve_api(listener, app, &config.http, stop_rx.clone()) {
            Ok(server) => servers.push(server),
            Err(error) => {
                tracing::error!(%error, "The HTTP endpoint cannot start.");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(listener) = listeners.phones {
        let app = crate::phones::router(Arc::clone(&host.tsp));
        servers.push(crate::http::serve(
            crate::http::Endpoint::Phones,
            listener,
            app,
            None,
            config.phones.connections,
            stop_rx.clone(),
        ));
    }
    crate::notify::ready();
    let signal = loop {
        match signals.next().await {
            Signal::Reload => {
                crate::notify::reloading();
                let api = Arc::clone(&api);
                // Problems are logged by the reloader; the daemon goes on either way.
                let _ = tokio::task::spawn_blocking(move || crate::api::reload::reload(&api)).await;
                crate::notify::ready();
            }
            Signal::Stop(name) => break name,
        }
    };
    crate::notify::stopping();
    tracing::info!(signal, "Shutting down.");
    api.stop();
    let _ = stop_tx.send(true);
    for server in servers {
        if tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .is_err()
        {
            tracing::warn!("An HTTP endpoint did not stop in time.");
        }
    }
    if let Some(cluster) = cluster {
        // The drivers stop first, then the leases are given up: other nodes take over at once.
        cluster.stop().await;
    }
    ExitCode::SUCCESS
}

/// The bound listeners of a daemon.
struct Listeners {
    http: Option<TcpListener>,
    phones: Option<TcpListener>,
}

/// Binds the configured listeners before the drivers start, so that drivers are told the
/// phone endpoint's real address (also when the configured port is 0).
async fn bind_all(config: &mut Config) -> Option<Listeners> {
    let http = if config.http.enabled {
        Some(bind("HTTP endpoint", config.http.listen).await?)
    } else {
        None
    };
    let phones = if config.phones.enabled {
        let listener = bind("Phone callback endpoint", config.phones.listen).await?;
        if let Ok(addr) = listener.local_addr() {
            config.phones.listen = addr;
        }
        Some(listener)
    } else {
        None
    };
    Some(Listeners { http, phones })
}

/// Binds a listener; logs and returns `None` when the address cannot be bound.
pub(crate) async fn bind(what: &'static str, addr: SocketAddr) -> Option<TcpListener> {
    match listen_deep(addr) {
        Ok(l) => Some(l),
        Err(error) => {
            tracing::error!(listen = %addr, %error, "{what} cannot listen.");
            None
        }
    }
}

/// How many connections may wait to be accepted. Thousands of phones report the same event at
/// once (a power cut, a group call); with the usual 1,024 the kernel drops SYNs and phones
/// retry a second later, which shows up as one-second tails (measured with the snom bench).
const ACCEPT_BACKLOG: u32 = 8192;

fn listen_deep(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// What a signal asks of the daemon.
enum Signal {
    /// SIGHUP: read the configuration again (Unix only; elsewhere `POST /v1/reload`).
    #[cfg_attr(not(unix), allow(dead_code))]
    Reload,
    /// SIGINT, SIGTERM: stop.
    Stop(&'static str),
}

/// The signals the daemon listens to, registered once so none is lost between two waits.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                hup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            async fn recv(stream: &mut Option<tokio::signal::unix::Signal>) {
                match stream {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            let Self { term, hup } = self;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop("SIGINT"),
                () = recv(term) => Signal::Stop("SIGTERM"),
                () = recv(hup) => {
                    tracing::info!("SIGHUP: reloading the configuration.");
                    Signal::Reload
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop("ctrl-c")
        }
    }
}
