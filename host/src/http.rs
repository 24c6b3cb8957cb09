//! The host's HTTP endpoint. For now it serves health and read-only status (lines, calls);
//! the phones' callbacks and the application API mount here as they arrive.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use tapir_tsp::{CallSnapshot, LineSnapshot, Tsp};

/// Builds the routes.
pub fn router(tsp: Arc<Tsp>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/lines", get(lines))
        .route("/v1/calls", get(calls))
        .with_state(tsp)
}

async fn lines(State(tsp): State<Arc<Tsp>>) -> Json<Vec<LineSnapshot>> {
    Json(tsp.lines())
}

async fn calls(State(tsp): State<Arc<Tsp>>) -> Json<Vec<CallSnapshot>> {
    Json(tsp.calls())
}
