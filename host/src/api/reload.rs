//! `POST /v1/reload` (control token), and the reload the daemon runs on SIGHUP: both re-read
//! the configuration through the [`Reloader`](crate::reload::Reloader) and swap the API tokens.

use super::error::ApiError;
use super::ApiState;
use crate::reload::{ReloadError, Reloaded};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use std::sync::Arc;

/// Re-reads the configuration and applies it, API tokens included. Blocks while driver
/// instances stop; call it off the async threads.
///
/// # Errors
/// The configuration's problems (nothing was changed), or `None` when this API has no
/// configuration source to reload.
pub fn reload(state: &ApiState) -> Option<Result<Reloaded, ReloadError>> {
    let reloader = state.reloader.as_ref()?;
    Some(reloader.reload(&state.host).map(|(config, reloaded)| {
        state.set_auth(super::auth::Auth::from_config(&config));
        reloaded
    }))
}

/// `POST /v1/reload`: 200 with what changed, or 422 `invalid_config` with every problem (the
/// running configuration stays as it was).
pub async fn handle(State(state): State<Arc<ApiState>>) -> Result<Json<Reloaded>, ApiError> {
    let outcome = tokio::task::spawn_blocking(move || reload(&state))
        .await
        .map_err(|_| ApiError::internal("the reload failed"))?;
    match outcome {
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_reloadable",
            "this host was not started from a configuration it can read again",
        )),
        Some(Ok(reloaded)) => Ok(Json(reloaded)),
        Some(Err(ReloadError::Invalid(problems))) => {
            let count = problems.len();
            let listed: Vec<serde_json::Value> = problems
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "path": p.path,
                        "message": p.message,
                        "line": p.location.map(|l| l.0),
                        "column": p.location.map(|l| l.1),
                        "text": p.to_string(),
                    })
                })
                .collect();
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_config",
                format!("the configuration has {count} problem(s); nothing was changed"),
            )
            .with("problems", listed))
        }
    }
}
