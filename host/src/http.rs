//! The application-facing HTTP endpoint (the `[http]` listener): serving the
//! [`api`](crate::api) router over plain HTTP or, with `tls_cert`/`tls_key`, over HTTPS only.

use crate::config::HttpConfig;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

pub use crate::api::router;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed.
    #[error("cannot load TLS certificate or key: {0}")]
    Load(#[source] std::io::Error),
    /// The listener could not be handed to the TLS server.
    #[error("cannot use the listener for TLS: {0}")]
    Listener(#[source] std::io::Error),
}

/// Installs ring as the process's TLS crypto provider (once; later calls do nothing).
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Serves `app` on `listener` (TLS when configured) until `stop` turns true.
///
/// # Errors
/// When TLS is configured and its files cannot be loaded.
pub async fn serve(
    what: &'static str,
    listener: TcpListener,
    app: axum::Router,
    http: &HttpConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, TlsError> {
    let (Some(cert), Some(key)) = (&http.tls_cert, &http.tls_key) else {
        return Ok(crate::commands::run::serve_on(what, listener, app, stop));
    };
    install_crypto_provider();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .map_err(TlsError::Load)?;
    let std_listener = listener.into_std().map_err(TlsError::Listener)?;
    let bound = std_listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(listen = %bound, "{what} listening (HTTPS).");
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        let _ = stop.wait_for(|s| *s).await;
        stopper.graceful_shutdown(Some(Duration::from_secs(3)));
    });
    let server = axum_server::from_tcp_rustls(std_listener, tls).handle(handle);
    Ok(tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(error) = server.serve(service).await {
            tracing::error!(%error, "{what} failed.");
        }
    }))
}
