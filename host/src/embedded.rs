//! A host embedded in another program: the one-shot `tapir call`, and the TSP library inside
//! TAPISRV. The drivers plus the phone-facing callback endpoint, on a small runtime of its
//! own, so drivers that learn call state from phone callbacks (snom Action URLs) work there
//! too. The application API is not served: the embedding program is the application.

use crate::catalog::Catalog;
use crate::config::Config;
use crate::host::Host;
use std::ops::Deref;
use std::sync::Mutex;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running embedded host. Dereferences to the [`Host`].
pub struct Embedded {
    host: Host,
    services: Mutex<Option<Services>>,
}

struct Services {
    runtime: Runtime,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl Embedded {
    /// Binds the phone endpoint (when `[phones]` is enabled), starts the drivers (telling them
    /// the endpoint's real address), and serves the endpoint. When the port is taken (a
    /// daemon runs already), the host starts without it and says so in the log.
    pub fn start(mut config: Config, catalog: &Catalog) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tapir-embedded")
            .enable_all()
            .build();
        let runtime = match runtime {
            Ok(rt) => rt,
            Err(error) => {
                tracing::error!(%error, "Cannot start a runtime for the phone endpoint; starting without it.");
                config.phones.enabled = false;
                return Self {
                    host: Host::start(&config, catalog),
                    services: Mutex::new(None),
                };
            }
        };
        let listener = if config.phones.enabled {
            runtime.block_on(crate::commands::run::bind(
                "Phone callback endpoint",
                config.phones.listen,
            ))
        } else {
            None
        };
        match listener.as_ref().and_then(|l| l.local_addr().ok()) {
            Some(addr) => config.phones.listen = addr,
            None => {
                if config.phones.enabled {
                    tracing::warn!(listen = %config.phones.listen, "Phone callbacks will not reach this host.");
                }
                config.phones.enabled = false;
            }
        }
        let host = Host::start(&config, catalog);
        let (stop, stop_rx) = watch::channel(false);
        let server = listener.map(|listener| {
            let app = crate::phones::router(std::sync::Arc::clone(&host.tsp));
            let _guard = runtime.enter();
            crate::http::serve(
                crate::http::Endpoint::Phones,
                listener,
                app,
                None,
                config.phones.connections,
                stop_rx,
            )
        });
        Self {
            host,
            services: Mutex::new(Some(Services {
                runtime,
                stop,
                server,
            })),
        }
    }

    /// Stops the endpoint, then the drivers (open calls are logged). Safe to call twice.
    pub fn shutdown(&self) {
        let services = self
            .services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(services) = services {
            let _ = services.stop.send(true);
            if let Some(server) = services.server {
                let _ = services
                    .runtime
                    .block_on(async { tokio::time::timeout(Duration::from_secs(2), server).await });
            }
            services.runtime.shutdown_timeout(Duration::from_secs(1));
        }
        self.host.shutdown();
    }
}

impl Deref for Embedded {
    type Target = Host;

    fn deref(&self) -> &Host {
        &self.host
    }
}
