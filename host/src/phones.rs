//! The phone-facing HTTP endpoint: `/phones/{instance}/...` goes to that driver instance's
//! `http_callback`. It is a listener of its own, apart from the application API, and grants
//! nothing but what the driver answers.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tapir_core::{HttpCallback, HttpReply};
use tapir_tsp::Tsp;

/// The running instances are looked up per request: a reload adds and removes them.
type Drivers = Arc<Tsp>;

/// Largest callback body accepted; phones send short forms and XML.
const MAX_BODY: usize = 64 * 1024;

/// Builds the routes for the driver instances running in `tsp`.
pub fn router(tsp: Arc<Tsp>) -> Router {
    Router::new()
        .route("/phones/{instance}", any(callback_root))
        .route("/phones/{instance}/{*rest}", any(callback))
        .with_state(tsp)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

async fn callback_root(
    state: State<Drivers>,
    Path(instance): Path<String>,
    peer: ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    dispatch(
        state,
        instance,
        String::new(),
        peer,
        method,
        uri,
        headers,
        body,
    )
    .await
}

async fn callback(
    state: State<Drivers>,
    Path((instance, rest)): Path<(String, String)>,
    peer: ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    dispatch(state, instance, rest, peer, method, uri, headers, body).await
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    State(drivers): State<Drivers>,
    instance: String,
    rest: String,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let Some(driver) = drivers.driver(&instance) else {
        count(StatusCode::NOT_FOUND);
        return (StatusCode::NOT_FOUND, "no such driver instance\n").into_response();
    };
    let request = HttpCallback {
        method: method.as_str().to_owned(),
        path: format!("/{rest}"),
        query: uri.query().unwrap_or_default().to_owned(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        peer: peer.to_string(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let reply = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            driver.http_callback(request)
        }))
        .unwrap_or_else(|_| HttpReply::text(500, "the driver failed\n"))
    })
    .await
    .unwrap_or_else(|_| HttpReply::text(500, "the driver failed\n"));
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    count(status);
    metrics::histogram!(crate::api::metrics::PHONE_CALLBACK_DURATION, "driver" => instance)
        .record(started.elapsed().as_secs_f64());
    (
        status,
        [(axum::http::header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response()
}

/// Counts a callback by its reply: 2xx accepted, 4xx rejected, anything else failed.
fn count(status: StatusCode) {
    let result = if status.is_success() {
        "accepted"
    } else if status.is_client_error() {
        "rejected"
    } else {
        "failed"
    };
    metrics::counter!("tapir_phone_callbacks_total", "result" => result).increment(1);
}
