//! Lines, their addresses (forwarding, do-not-disturb, status) and the phone table.

use super::calls::{submit, WaitQuery};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::ApiState;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tapir_core::{AddressId, AddressStatus, DeviceStatus, ErrorKind, Forwarding, LineId};
use tapir_tsp::{Action, LineSnapshot};

/// The header carrying the event position a snapshot is at least as new as: resume the
/// event stream with `?after=` this value to miss nothing.
pub const SEQ_HEADER: HeaderName = HeaderName::from_static("x-tapir-seq");

/// A body with the `X-Tapir-Seq` header.
pub(crate) fn with_seq(seq: u64, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    if let Ok(value) = HeaderValue::from_str(&seq.to_string()) {
        response.headers_mut().insert(SEQ_HEADER, value);
    }
    response
}

pub(crate) fn line_or_404(state: &ApiState, line: u32) -> Result<LineSnapshot, ApiError> {
    state.host.tsp.line(LineId(line)).ok_or_else(|| {
        ApiError::from(tapir_core::DriverError::new(
            ErrorKind::BadDeviceId,
            format!("no line {line}"),
        ))
    })
}

/// `GET /v1/lines`.
pub async fn list(State(state): State<Arc<ApiState>>) -> Response {
    // The position is read before the snapshot, so replaying from it misses nothing.
    let seq = state.host.tsp.last_seq();
    with_seq(seq, Json(state.host.tsp.lines()))
}

/// `GET /v1/lines/{line}`: capabilities, service and address state.
pub async fn detail(
    State(state): State<Arc<ApiState>>,
    ApiPath(line): ApiPath<u32>,
) -> Result<Response, ApiError> {
    let seq = state.host.tsp.last_seq();
    Ok(with_seq(seq, Json(line_or_404(&state, line)?)))
}

/// One address as the API shows it.
#[derive(Debug, Serialize)]
pub struct AddressView {
    /// The line.
    pub line: LineId,
    /// The address.
    pub address: AddressId,
    /// Its dialable number and name, from the line's capabilities.
    #[serde(flatten)]
    pub info: tapir_core::AddressInfo,
    /// Forwarding and DND as last reported (empty until the driver reports or is queried).
    pub status: AddressStatus,
}

/// `GET /v1/lines/{line}/addresses/{address}`: the state as last reported.
pub async fn address(
    State(state): State<Arc<ApiState>>,
    ApiPath((line, address)): ApiPath<(u32, u32)>,
) -> Result<Json<AddressView>, ApiError> {
    let snapshot = line_or_404(&state, line)?;
    let address = AddressId(address);
    let info = snapshot
        .caps
        .addresses
        .iter()
        .find(|a| a.id == address)
        .cloned()
        .ok_or_else(|| {
            ApiError::from(tapir_core::DriverError::new(
                ErrorKind::InvalidAddressId,
                format!("line {line} has no address {address}"),
            ))
        })?;
    Ok(Json(AddressView {
        line: snapshot.id,
        address,
        info,
        status: snapshot
            .addresses
            .get(&address)
            .cloned()
            .unwrap_or_default(),
    }))
}

/// `POST /v1/lines/{line}/addresses/{address}/query`: asks the device (the answer is the
/// completion's `address_status`).
pub async fn query_address(
    State(state): State<Arc<ApiState>>,
    ApiPath((line, address)): ApiPath<(u32, u32)>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
) -> Result<Response, ApiError> {
    submit(
        &state,
        Action::QueryAddressStatus {
            line: LineId(line),
            address: AddressId(address),
        },
        wait,
    )
    .await
}

/// `PUT /v1/lines/{line}/addresses/{address}/forwarding` with `{"mode", "destination"}`.
pub async fn set_forwarding(
    State(state): State<Arc<ApiState>>,
    ApiPath((line, address)): ApiPath<(u32, u32)>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
    ApiJson(forwarding): ApiJson<Forwarding>,
) -> Result<Response, ApiError> {
    submit(
        &state,
        Action::Forward {
            line: LineId(line),
            address: AddressId(address),
            forward: Some(forwarding),
        },
        wait,
    )
    .await
}

/// `DELETE /v1/lines/{line}/addresses/{address}/forwarding`.
pub async fn cancel_forwarding(
    State(state): State<Arc<ApiState>>,
    ApiPath((line, address)): ApiPath<(u32, u32)>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
) -> Result<Response, ApiError> {
    submit(
        &state,
        Action::Forward {
            line: LineId(line),
            address: AddressId(address),
            forward: None,
        },
        wait,
    )
    .await
}

/// The body of `PUT .../dnd`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DndBody {
    /// On or off.
    pub enabled: bool,
}

/// `PUT /v1/lines/{line}/addresses/{address}/dnd` with `{"enabled": true}`.
pub async fn set_dnd(
    State(state): State<Arc<ApiState>>,
    ApiPath((line, address)): ApiPath<(u32, u32)>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<DndBody>,
) -> Result<Response, ApiError> {
    submit(
        &state,
        Action::SetDoNotDisturb {
            line: LineId(line),
            address: AddressId(address),
            enabled: body.enabled,
        },
        wait,
    )
    .await
}

/// One row of the phone table.
#[derive(Debug, Serialize)]
pub struct PhoneRow {
    /// The driver instance (its config section name).
    pub driver: String,
    /// The device.
    #[serde(flatten)]
    pub device: DeviceStatus,
}

/// The phone table with the driver instances that failed to start.
#[derive(Debug, Serialize)]
pub struct Phones {
    /// Every device of every running driver instance.
    pub phones: Vec<PhoneRow>,
    /// Driver instances that did not start, with the reason.
    pub failed_drivers: Vec<FailedDriver>,
}

/// A driver instance that did not start.
#[derive(Debug, Serialize)]
pub struct FailedDriver {
    /// Its name.
    pub driver: String,
    /// Why.
    pub reason: String,
}

/// `GET /v1/phones`: `devices()` of every driver instance.
pub async fn phones(State(state): State<Arc<ApiState>>) -> Result<Json<Phones>, ApiError> {
    let host = Arc::clone(&state.host);
    // Drivers answer synchronously (a plugin may take a lock); keep that off the async threads.
    let phones = tokio::task::spawn_blocking(move || {
        let mut rows = Vec::new();
        for (name, driver) in &host.drivers {
            let devices =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver.devices()))
                    .unwrap_or_else(|_| {
                        tracing::warn!(instance = %name, "Driver panicked listing its devices.");
                        Vec::new()
                    });
            rows.extend(devices.into_iter().map(|device| PhoneRow {
                driver: name.clone(),
                device,
            }));
        }
        Phones {
            phones: rows,
            failed_drivers: host
                .failed
                .iter()
                .map(|(driver, reason)| FailedDriver {
                    driver: driver.clone(),
                    reason: reason.clone(),
                })
                .collect(),
        }
    })
    .await
    .map_err(|_| ApiError::internal("listing the phones failed"))?;
    Ok(Json(phones))
}
