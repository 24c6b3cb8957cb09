//! Metrics in Prometheus text format at `/metrics`.
//!
//! Counters are recorded where things happen, through the `metrics` facade, into one
//! process-wide Prometheus recorder ([`recorder`]):
//! - `tapir_api_requests_total{operation, result}`: API operations, `result` is `accepted` or
//!   the error code of the refusal;
//! - `tapir_api_auth_failures_total{code}`: requests refused for their token;
//! - `tapir_request_completions_total{result}`: completions, `ok` or the error kind;
//! - `tapir_driver_errors_total{kind}`: completions that failed in a driver;
//! - `tapir_phone_callbacks_total{result}`: phone callbacks, `accepted` (2xx), `rejected`
//!   (4xx) or `failed` (other).
//!
//! Gauges are read from the front end at scrape time: `tapir_active_calls`,
//! `tapir_lines{state="in_service"|"out_of_service"}`, `tapir_driver_instances{state}`.

use super::ApiState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};

/// The process-wide recorder, installed on first use. When another recorder is installed
/// already, the handle still renders (only what reaches it).
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "A metrics recorder was installed already; /metrics may be incomplete."
                );
            }
            handle
        })
        .clone()
}

/// `GET /metrics`.
pub async fn render(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    let lines = state.host.tsp.lines();
    let in_service = lines.iter().filter(|l| l.in_service).count();
    metrics::gauge!("tapir_lines", "state" => "in_service").set(in_service as f64);
    metrics::gauge!("tapir_lines", "state" => "out_of_service")
        .set((lines.len() - in_service) as f64);
    let active = state
        .host
        .tsp
        .calls()
        .iter()
        .filter(|c| !c.state.is_idle())
        .count();
    metrics::gauge!("tapir_active_calls").set(active as f64);
    metrics::gauge!("tapir_driver_instances", "state" => "running")
        .set(state.host.drivers.len() as f64);
    metrics::gauge!("tapir_driver_instances", "state" => "failed")
        .set(state.host.failed.len() as f64);
    let text = state
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
