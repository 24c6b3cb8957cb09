//! # The application API
//!
//! Everything served on the `[http]` listener: the REST API under `/v1`, its event stream
//! (Server-Sent Events and WebSocket), the OpenAPI document, the web status page at `/`,
//! `/metrics` and `/healthz`. The phones' callback endpoint is elsewhere ([`crate::phones`])
//! and never reaches these routes.
//!
//! - [`auth`]: tokens and what each route needs;
//! - [`error`]: the JSON error shape and the one mapping from error kinds to HTTP statuses;
//! - [`extract`]: body, path and query extractors that fail with JSON errors;
//! - [`lines`]: lines, addresses (forwarding, DND) and the phone table;
//! - [`phones`]: phone-table operations (refresh, write configuration, remove, set login, ...);
//! - [`calls`]: calls and every call operation, with `?wait=SECONDS`;
//! - [`events`]: the event stream, resumable by sequence number;
//! - [`metrics`]: the Prometheus recorder and `/metrics`;
//! - [`openapi`]: the OpenAPI 3 document;
//! - [`page`]: the embedded status page;
//! - [`pump`]: the background task that opens every line for the API and forgets ended calls;
//! - [`reload`]: `POST /v1/reload`, and the reload SIGHUP triggers;
//! - [`directory`]: lines joined with their phones, searched, filtered and paged.
//!
//! **Invariant:** every route is added through [`RouteTable`], which records its method, path
//! and needed access; the OpenAPI test compares that record with the document.

pub mod auth;
pub mod calls;
pub mod directory;
pub mod error;
pub mod events;
pub mod extract;
pub mod lines;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod phones;
pub mod pump;
pub mod reload;

use crate::config::Config;
use crate::host::Host;
use auth::{Auth, Need};
use axum::handler::Handler;
use axum::routing::MethodRouter;
use axum::Router;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What every handler shares.
pub struct ApiState {
    /// The running host: the front end and its drivers.
    pub host: Arc<Host>,
    /// Access rules; a reload replaces them.
    auth: RwLock<Arc<Auth>>,
    /// Re-reads the configuration (`POST /v1/reload`, SIGHUP); absent where the host is not
    /// run from a configuration source of its own.
    pub reloader: Option<crate::reload::Reloader>,
    /// The longest `?wait` honoured.
    pub wait_max: Duration,
    /// The Prometheus renderer, when metrics are recorded.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Set when the host stops: event streams end so the listener can close.
    stopping: tokio::sync::watch::Sender<bool>,
    /// The cluster this node belongs to; `None` for a host of its own.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl ApiState {
    /// The API over a running host.
    pub fn new(host: Arc<Host>, config: &Config) -> Self {
        let (stopping, _) = tokio::sync::watch::channel(false);
        Self {
            host,
            auth: RwLock::new(Arc::new(Auth::from_config(config))),
            reloader: None,
            wait_max: Duration::from_secs(config.api.wait_max_s),
            metrics: Some(metrics::recorder()),
            stopping,
            cluster: None,
        }
    }

    /// The same API on a cluster node: positions and event streams are the cluster's.
    pub fn with_cluster(mut self, cluster: Option<Arc<crate::cluster::Cluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    /// The position of the newest event the lists reflect (`X-Tapir-Seq`): the front end's,
    /// or in a cluster the cluster's stream position.
    pub async fn position(&self) -> u64 {
        match &self.cluster {
            Some(cluster) => {
                let cluster = Arc::clone(cluster);
                tokio::task::spawn_blocking(move || cluster.position())
                    .await
                    .unwrap_or(0)
            }
            None => self.host.tsp.last_seq(),
        }
    }

    /// The same API with a reloader for its configuration source.
    pub fn with_reloader(mut self, reloader: crate::reload::Reloader) -> Self {
        self.reloader = Some(reloader);
        self
    }

    /// The access rules in force.
    pub fn auth(&self) -> Arc<Auth> {
        Arc::clone(&self.auth.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the access rules (a reload with other tokens); the next request uses them.
    pub fn set_auth(&self, auth: Auth) {
        *self.auth.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(auth);
    }

    /// Ends every event stream: the host is stopping.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves when the host stops.
    pub(crate) fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

/// The routes of the API, with the method, path and access of each, as added.
pub struct RouteTable {
    paths: BTreeMap<&'static str, MethodRouter<Arc<ApiState>>>,
    /// (method, path, access) of every route, in the order added.
    pub routes: Vec<(&'static str, &'static str, Need)>,
    state: Arc<ApiState>,
}

impl RouteTable {
    fn new(state: Arc<ApiState>) -> Self {
        Self {
            paths: BTreeMap::new(),
            routes: Vec::new(),
            state,
        }
    }

    fn add<H, T>(mut self, method: &'static str, path: &'static str, need: Need, handler: H) -> Self
    where
        H: Handler<T, Arc<ApiState>>,
        T: 'static,
    {
        let one = match method {
            "GET" => axum::routing::get(handler),
            "POST" => axum::routing::post(handler),
            "PUT" => axum::routing::put(handler),
            "DELETE" => axum::routing::delete(handler),
            _ => unreachable!("RouteTable::add is called with literal methods only"),
        }
        .route_layer(axum::middleware::from_fn_with_state(
            (Arc::clone(&self.state), need),
            auth::authorize,
        ));
        let merged = match self.paths.remove(path) {
            Some(existing) => existing.merge(one),
            None => one,
        };
        self.paths.insert(path, merged);
        self.routes.push((method, path, need));
        self
    }

    fn get<H: Handler<T, Arc<ApiState>>, T: 'static>(
        self,
        path: &'static str,
        need: Need,
        h: H,
    ) -> Self {
        self.add("GET", path, need, h)
    }

    fn post<H: Handler<T, Arc<ApiState>>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add("POST", path, Need::Control, h)
    }

    fn into_router(self) -> Router {
        let mut router = Router::new();
        for (path, method_router) in self.paths {
            router = router.route(path, method_router);
        }
        router
            .fallback(|uri: axum::http::Uri| async move { error::ApiError::no_route(uri.path()) })
            .method_not_allowed_fallback(|| async {
                error::ApiError::new(
                    axum::http::StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "this endpoint does not take that method",
                )
            })
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
            .with_state(self.state)
    }
}

/// Every route of the application endpoint.
pub fn table(state: Arc<ApiState>) -> RouteTable {
    use Need::{Control, Public, Read};
    RouteTable::new(state)
        .get("/", Public, page::index)
        .get("/healthz", Public, || async { "ok\n" })
        .get("/metrics", Read, metrics::render)
        .get("/v1/openapi.json", Public, openapi::document)
        .get("/v1/lines", Read, directory::lines)
        .get("/v1/lines/{line}", Read, lines::detail)
        .post("/v1/lines/{line}/calls", calls::make_call)
        .get("/v1/lines/{line}/addresses/{address}", Read, lines::address)
        .add(
            "POST",
            "/v1/lines/{line}/addresses/{address}/query",
            Read,
            lines::query_address,
        )
        .add(
            "PUT",
            "/v1/lines/{line}/addresses/{address}/forwarding",
            Control,
            lines::set_forwarding,
        )
        .add(
            "DELETE",
            "/v1/lines/{line}/addresses/{address}/forwarding",
            Control,
            lines::cancel_forwarding,
        )
        .add(
            "PUT",
            "/v1/lines/{line}/addresses/{address}/dnd",
            Control,
            lines::set_dnd,
        )
        .get("/v1/phones", Read, lines::phones)
        .get("/v1/drivers", Read, directory::drivers)
        .get("/v1/summary", Read, directory::summary)
        .post("/v1/reload", reload::handle)
        .post("/v1/phones/{driver}/{device}/{action}", phones::action)
        .get("/v1/calls", Read, calls::list)
        .get("/v1/calls/{call}", Read, calls::detail)
        .post("/v1/calls/{call}/drop", calls::drop_call)
        .post("/v1/calls/{call}/answer", calls::answer)
        .post("/v1/calls/{call}/hold", calls::hold)
        .post("/v1/calls/{call}/unhold", calls::unhold)
        .post("/v1/calls/{call}/redirect", calls::redirect)
        .post("/v1/calls/{call}/blind-transfer", calls::blind_transfer)
        .post("/v1/calls/{call}/setup-transfer", calls::setup_transfer)
        .post(
            "/v1/calls/{call}/complete-transfer",
            calls::complete_transfer,
        )
        .post("/v1/calls/{call}/swap-hold", calls::swap_hold)
        .post("/v1/calls/{call}/dial", calls::dial)
        .get("/v1/events", Read, events::sse)
        .get("/v1/events/ws", Read, events::ws)
}

/// The application endpoint's router.
pub fn router(state: Arc<ApiState>) -> Router {
    table(state).into_router()
}
