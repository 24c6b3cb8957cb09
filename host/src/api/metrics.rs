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
//! Histograms (Prometheus histograms with the buckets of [`LATENCY_BUCKETS`]):
//! - `tapir_request_duration_seconds{operation, driver, result}`: from a request's submission
//!   to its completion, recorded by the front end;
//! - `tapir_phone_callback_duration_seconds{driver}`: how long a driver took to answer a
//!   phone's callback.
//!
//! The SIP stack shared by the built-in SIP drivers records (through the same facade, since
//! built-in drivers run in this process): `tapir_sip_retransmissions_total`,
//! `tapir_sip_transaction_timeouts_total` and the gauge
//! `tapir_sip_registrations{state="registering"|"registered"|"failed"}`.
//!
//! Gauges are read from the front end at scrape time: `tapir_active_calls`,
//! `tapir_lines{state="in_service"|"out_of_service"}`, `tapir_driver_instances{state}`.

use super::ApiState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};

/// The histogram of phone callback handling, per driver instance.
pub const PHONE_CALLBACK_DURATION: &str = "tapir_phone_callback_duration_seconds";

/// Bucket bounds, in seconds, of the latency histograms: a millisecond to a minute.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Every metric family the host exports, for the documentation test and the dashboard test.
pub const FAMILIES: &[&str] = &[
    "tapir_api_requests_total",
    "tapir_api_auth_failures_total",
    "tapir_request_completions_total",
    "tapir_driver_errors_total",
    "tapir_phone_callbacks_total",
    "tapir_active_calls",
    "tapir_lines",
    "tapir_driver_instances",
    tapir_tsp::front::REQUEST_DURATION,
    PHONE_CALLBACK_DURATION,
    "tapir_sip_retransmissions_total",
    "tapir_sip_transaction_timeouts_total",
    "tapir_sip_registrations",
    "tapir_runtime_workers",
];

/// The process-wide recorder, installed on first use. When another recorder is installed
/// already, the handle still renders (only what reaches it).
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = [tapir_tsp::front::REQUEST_DURATION, PHONE_CALLBACK_DURATION]
                .into_iter()
                .try_fold(PrometheusBuilder::new(), |b, name| {
                    b.set_buckets_for_metric(Matcher::Full(name.to_owned()), LATENCY_BUCKETS)
                })
                .unwrap_or_else(|error| {
                    tracing::warn!(%error, "Histogram buckets refused; latencies render as summaries.");
                    PrometheusBuilder::new()
                });
            let recorder = builder.build_recorder();
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
        .filter(|c| c.state.is_live())
        .count();
    metrics::gauge!("tapir_active_calls").set(active as f64);
    metrics::gauge!("tapir_runtime_workers")
        .set(tokio::runtime::Handle::current().metrics().num_workers() as f64);
    metrics::gauge!("tapir_driver_instances", "state" => "running")
        .set(state.host.tsp.drivers().len() as f64);
    metrics::gauge!("tapir_driver_instances", "state" => "failed")
        .set(state.host.failed().len() as f64);
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
