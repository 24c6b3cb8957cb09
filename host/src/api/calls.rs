//! Calls and every operation on them. Each operation answers at once with its request id
//! (202); `?wait=SECONDS` waits (bounded by `[api] wait_max_s`) for the completion instead.

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::lines::with_seq;
use super::ApiState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tapir_core::{AddressId, CallId, ErrorKind, LineId, Operation, RequestId};
use tapir_tsp::{Action, CallSnapshot, RequestResult, Tsp};

/// `?wait=SECONDS` of every operation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Wait up to this long for the completion.
    pub wait: Option<f64>,
}

/// A call as the API shows it: the front end's snapshot plus what it allows now.
#[derive(Debug, Serialize)]
pub struct CallView {
    /// The call.
    #[serde(flatten)]
    pub call: CallSnapshot,
    /// The operations its line and state allow now (TAPI's call features).
    pub features: Vec<Operation>,
}

fn view(state: &ApiState, call: CallSnapshot) -> CallView {
    let features = state.host.tsp.call_features(call.id);
    CallView { call, features }
}

/// `GET /v1/calls`: every call not yet forgotten (ended calls stay for
/// `[api] idle_call_linger_s`).
pub async fn list(State(state): State<Arc<ApiState>>) -> Response {
    let seq = state.position().await;
    let calls: Vec<CallView> = state
        .host
        .tsp
        .calls()
        .into_iter()
        .map(|c| view(&state, c))
        .collect();
    with_seq(seq, Json(calls))
}

/// `GET /v1/calls/{call}`.
pub async fn detail(
    State(state): State<Arc<ApiState>>,
    ApiPath(call): ApiPath<u64>,
) -> Result<Response, ApiError> {
    let seq = state.position().await;
    let snapshot = state.host.tsp.call(CallId(call)).ok_or_else(|| {
        ApiError::from(tapir_core::DriverError::new(
            ErrorKind::InvalidCallHandle,
            format!("no call {call}"),
        ))
    })?;
    Ok(with_seq(seq, Json(view(&state, snapshot))))
}

/// What an operation answers.
#[derive(Debug, Serialize)]
pub struct OperationReply {
    /// The request; its completion is the `completed` event with this id.
    pub request: RequestId,
    /// The call the operation created (make call, setup transfer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<CallId>,
    /// Whether the completion is included (only with `?wait`).
    pub completed: bool,
    /// The completion's result, when `completed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<RequestResult>,
}

/// Submits an action; answers 202 at once, or waits for the completion with `?wait`.
///
/// # Errors
/// The front end's refusal, mapped to its status; with `?wait`, a failed completion too.
pub async fn submit(
    state: &ApiState,
    action: Action,
    wait: WaitQuery,
) -> Result<Response, ApiError> {
    let operation = action.operation().name();
    let wait = match wait.wait {
        Some(w) if !w.is_finite() || w < 0.0 => {
            return Err(ApiError::bad_request(
                "wait must be a number of seconds, 0 or more",
            ))
        }
        Some(w) => Some(Duration::from_secs_f64(w).min(state.wait_max)),
        None => None,
    };
    // With a wait, the request's own completion is registered together with the request, so
    // it cannot slip past however many events the host publishes meanwhile. A cluster node
    // always watches: it records the request until it completes.
    let tsp = &state.host.tsp;
    let watched = wait.is_some() || state.cluster.is_some();
    let line = match &state.cluster {
        None => None,
        Some(_) => action
            .line()
            .or_else(|| action.call().and_then(|c| tsp.call(c)).map(|c| c.line)),
    };
    let submit = move |tsp: &Tsp| match watched {
        true => tsp
            .submit_watched(action)
            .map(|(accepted, watch)| (accepted, Some(watch))),
        false => tsp.submit(action).map(|accepted| (accepted, None)),
    };
    let submitted = match &state.cluster {
        // Drivers only check and enqueue in `submit`, so it runs here on the handler's thread:
        // no hand-off to the blocking pool and back.
        None => submit(tsp),
        // A cluster's mirror forwards the request to the node running the line and waits for
        // its acceptance (a blocking round trip over NATS): not on a runtime worker.
        Some(_) => {
            let tsp = Arc::clone(tsp);
            tokio::task::spawn_blocking(move || submit(&tsp))
                .await
                .map_err(|_| ApiError::internal("submitting the request failed"))?
        }
    };
    let (accepted, mut watch) = match submitted {
        Ok(accepted) => {
            count(operation, "accepted");
            accepted
        }
        Err(error) => {
            count(operation, error.kind.name());
            tracing::debug!(operation, %error, "API request refused.");
            return Err(error.into());
        }
    };
    let mut early = None;
    if let (Some(cluster), Some(line), Some(watch)) = (&state.cluster, line, watch.as_mut()) {
        early = cluster.note_pending(accepted.request, line, watch).await;
    }
    let mut reply = OperationReply {
        request: accepted.request,
        call: accepted.call,
        completed: false,
        result: None,
    };
    if let (Some(wait), Some(watch)) = (wait, watch) {
        let completed = match early {
            Some(result) => Ok(result),
            None => tokio::time::timeout(wait, watch.result()).await,
        };
        if let Ok(result) = completed {
            if let RequestResult::Err(error) = &result {
                return Err(ApiError::from(error.clone())
                    .with("request", accepted.request.0)
                    .with("call", accepted.call.map(|c| c.0)));
            }
            reply.completed = true;
            reply.result = Some(result);
            return Ok((StatusCode::OK, Json(reply)).into_response());
        }
    }
    Ok((StatusCode::ACCEPTED, Json(reply)).into_response())
}

fn count(operation: &'static str, result: &'static str) {
    metrics::counter!("tapir_api_requests_total", "operation" => operation, "result" => result)
        .increment(1);
}

/// The body of `POST /v1/lines/{line}/calls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MakeCallBody {
    /// What to dial; without it the call waits in dial tone.
    #[serde(default)]
    pub destination: Option<String>,
    /// The address to call from (0 by default).
    #[serde(default)]
    pub address: AddressId,
}

/// `POST /v1/lines/{line}/calls`: make a call.
pub async fn make_call(
    State(state): State<Arc<ApiState>>,
    ApiPath(line): ApiPath<u32>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<MakeCallBody>,
) -> Result<Response, ApiError> {
    let action = Action::MakeCall {
        line: LineId(line),
        address: body.address,
        destination: body.destination,
    };
    submit(&state, action, wait).await
}

macro_rules! simple_call_op {
    ($($(#[$doc:meta])* $name:ident => $variant:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            pub async fn $name(
                State(state): State<Arc<ApiState>>,
                ApiPath(call): ApiPath<u64>,
                ApiQuery(wait): ApiQuery<WaitQuery>,
            ) -> Result<Response, ApiError> {
                submit(&state, Action::$variant { call: CallId(call) }, wait).await
            }
        )*
    };
}

simple_call_op! {
    /// `POST /v1/calls/{call}/drop`: hang up or reject.
    drop_call => Drop,
    /// `POST /v1/calls/{call}/answer`.
    answer => Answer,
    /// `POST /v1/calls/{call}/hold`.
    hold => Hold,
    /// `POST /v1/calls/{call}/unhold`.
    unhold => Unhold,
    /// `POST /v1/calls/{call}/setup-transfer`: starts a consultation call (its id is `call`
    /// in the reply).
    setup_transfer => SetupTransfer,
}

/// A body naming a destination.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationBody {
    /// Where to.
    pub destination: String,
}

/// `POST /v1/calls/{call}/redirect` with `{"destination"}`: deflect an offered call.
pub async fn redirect(
    State(state): State<Arc<ApiState>>,
    ApiPath(call): ApiPath<u64>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<DestinationBody>,
) -> Result<Response, ApiError> {
    let action = Action::Redirect {
        call: CallId(call),
        destination: body.destination,
    };
    submit(&state, action, wait).await
}

/// `POST /v1/calls/{call}/blind-transfer` with `{"destination"}`.
pub async fn blind_transfer(
    State(state): State<Arc<ApiState>>,
    ApiPath(call): ApiPath<u64>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<DestinationBody>,
) -> Result<Response, ApiError> {
    let action = Action::BlindTransfer {
        call: CallId(call),
        destination: body.destination,
    };
    submit(&state, action, wait).await
}

/// The body of `complete-transfer`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultBody {
    /// The consultation call.
    pub consult: u64,
}

/// `POST /v1/calls/{call}/complete-transfer` with `{"consult"}`.
pub async fn complete_transfer(
    State(state): State<Arc<ApiState>>,
    ApiPath(call): ApiPath<u64>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<ConsultBody>,
) -> Result<Response, ApiError> {
    let action = Action::CompleteTransfer {
        call: CallId(call),
        consult: CallId(body.consult),
    };
    submit(&state, action, wait).await
}

/// The body of `swap-hold`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldBody {
    /// The held call to make active.
    pub held: u64,
}

/// `POST /v1/calls/{call}/swap-hold` with `{"held"}`: `call` is the active one.
pub async fn swap_hold(
    State(state): State<Arc<ApiState>>,
    ApiPath(call): ApiPath<u64>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<HeldBody>,
) -> Result<Response, ApiError> {
    let action = Action::SwapHold {
        active: CallId(call),
        held: CallId(body.held),
    };
    submit(&state, action, wait).await
}

/// The body of `dial`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigitsBody {
    /// The digits.
    pub digits: String,
}

/// `POST /v1/calls/{call}/dial` with `{"digits"}`.
pub async fn dial(
    State(state): State<Arc<ApiState>>,
    ApiPath(call): ApiPath<u64>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<DigitsBody>,
) -> Result<Response, ApiError> {
    let action = Action::Dial {
        call: CallId(call),
        digits: body.digits,
    };
    submit(&state, action, wait).await
}
