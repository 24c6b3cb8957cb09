//! Lines, their addresses (forwarding, do-not-disturb, status) and the phone table.

use super::calls::{submit, WaitQuery};
use super::directory::{self, ListQuery, PhoneRow};
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::ApiState;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tapir_core::{AddressId, AddressStatus, ErrorKind, Forwarding, LineId};
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

/// `GET /v1/lines/{line}`: capabilities, service and address state, and its phone.
pub async fn detail(
    State(state): State<Arc<ApiState>>,
    ApiPath(line): ApiPath<u32>,
) -> Result<Response, ApiError> {
    let seq = state.position().await;
    line_or_404(&state, line)?;
    let view = directory::read(&state)
        .await?
        .lines
        .into_iter()
        .find(|l| l.line.id == LineId(line));
    let view = view.ok_or_else(|| {
        ApiError::from(tapir_core::DriverError::new(
            ErrorKind::BadDeviceId,
            format!("no line {line}"),
        ))
    })?;
    Ok(with_seq(seq, Json(view)))
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

/// The phone table with the driver instances that failed to start.
#[derive(Debug, Serialize)]
pub struct Phones {
    /// Every device of every running driver instance (or the page asked for).
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

/// `GET /v1/phones`: `devices()` of every driver instance; with `q`, `filter`, `driver`,
/// `offset`, `limit` the matching page (`X-Tapir-Total` tells how many matched).
pub async fn phones(
    State(state): State<Arc<ApiState>>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let seq = state.position().await;
    let (phones, total) = directory::read(&state).await?.phones(&query);
    let failed_drivers = state
        .host
        .failed()
        .into_iter()
        .map(|(driver, reason)| FailedDriver { driver, reason })
        .collect();
    Ok(directory::with_total(
        seq,
        total,
        Json(Phones {
            phones,
            failed_drivers,
        }),
    ))
}
