//! `tapir run`: the daemon. Starts the drivers and the HTTP endpoint, waits for SIGINT or
//! SIGTERM, then stops in order: HTTP first, then the drivers (open calls are reported).

use crate::config::Source;
use crate::host::Host;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

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
    if let Err(error) = crate::logging::init(&config.log) {
        eprintln!("tapir: cannot set up logging: {error}");
        return ExitCode::from(2);
    }
    match source.path() {
        None => tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            http = %config.http.listen,
            "Starting tapir on the embedded default configuration: no phones, loopback only."
        ),
        Some(path) => tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            config = %path.display(),
            drivers = config.drivers.len(),
            "Starting tapir."
        ),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
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
    let host = Arc::new(Host::start(&config, &catalog));
    tracing::info!(
        lines = host.tsp.lines().len(),
        failed = host.failed.len(),
        "Drivers started."
    );
    let code = runtime.block_on(serve(&config, Arc::clone(&host)));
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

async fn serve(config: &crate::config::Config, host: Arc<Host>) -> ExitCode {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = if config.http.enabled {
        match crate::http::bind(config.http.listen).await {
            Ok(listener) => {
                let addr = listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                tracing::info!(listen = %addr, "HTTP endpoint listening.");
                let app = crate::http::router(Arc::clone(&host.tsp));
                let mut stop = stop_rx.clone();
                Some(tokio::spawn(async move {
                    let shutdown = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    if let Err(error) = axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown)
                        .await
                    {
                        tracing::error!(%error, "HTTP endpoint failed.");
                    }
                }))
            }
            Err(error) => {
                tracing::error!(listen = %config.http.listen, %error, "Cannot listen for HTTP.");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let signal = wait_for_signal().await;
    tracing::info!(signal, "Shutting down.");
    let _ = stop_tx.send(true);
    if let Some(server) = server {
        if tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .is_err()
        {
            tracing::warn!("HTTP endpoint did not stop in time.");
        }
    }
    ExitCode::SUCCESS
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "ctrl-c"
}
