//! Phone-table operations: `POST /v1/phones/{driver}/{device}/{action}` hands a
//! [`DeviceAction`] to the named driver instance and answers with its
//! [`DeviceActionOutcome`](tapir_core::DeviceActionOutcome).
//!
//! The action's parameters (`set_login`: `login`, `password`; `add`: `mac`, `login`,
//! `password`) come as a JSON object in the body; actions without parameters take no body. A
//! password is never logged or echoed, not even in the error for a malformed body.

use super::error::ApiError;
use super::extract::ApiPath;
use super::ApiState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use std::sync::Arc;
use tapir_core::{DeviceAction, DeviceActionOutcome, DriverError, ErrorKind};

/// The answer to a phone-table operation.
#[derive(Debug, Serialize)]
pub struct ActionReply {
    /// The driver instance.
    pub driver: String,
    /// The device named in the path.
    pub device: String,
    /// The action's name.
    pub action: &'static str,
    /// What the driver did.
    #[serde(flatten)]
    pub outcome: DeviceActionOutcome,
}

/// Builds the action from its path name and the body's parameters.
///
/// # Errors
/// A 400 naming the parameters the action takes; the body is never quoted.
pub fn parse_action(name: &str, body: &[u8]) -> Result<DeviceAction, ApiError> {
    let mut object = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(object)) => object,
            _ => return Err(ApiError::bad_request("the body must be a JSON object")),
        }
    };
    let parameters = object.len();
    object.insert("action".to_owned(), name.into());
    let action = serde_json::from_value::<DeviceAction>(serde_json::Value::Object(object))
        .ok()
        // Serde lets unit variants of a tagged enum ignore extra fields; refuse them here.
        .filter(|a| {
            parameters == 0 || matches!(a, DeviceAction::Add { .. } | DeviceAction::SetLogin { .. })
        });
    action.ok_or_else(|| {
        ApiError::bad_request(format!(
            "{name:?} is not a phone action with these parameters; actions: refresh, \
             write_configuration, remove, save_configuration (no body), set_login \
             {{login, password}}, add {{mac?, login?, password?}} (the device is the address)"
        ))
    })
}

/// `POST /v1/phones/{driver}/{device}/{action}`.
pub async fn action(
    State(state): State<Arc<ApiState>>,
    ApiPath((driver, device, name)): ApiPath<(String, String, String)>,
    body: Bytes,
) -> Result<Json<ActionReply>, ApiError> {
    let action = parse_action(&name, &body)?;
    let action_name = action.name();
    let instance = state.host.driver(&driver).ok_or_else(|| {
        ApiError::from(DriverError::new(
            ErrorKind::BadDeviceId,
            format!("no driver instance {driver:?}"),
        ))
    })?;
    let target = device.clone();
    // Drivers answer synchronously and may ask the phone (save_configuration): keep that off
    // the async threads.
    let outcome = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            instance.device_action(&target, action)
        }))
    })
    .await
    .map_err(|_| ApiError::internal("the phone action failed"))?
    .map_err(|_| {
        tracing::warn!(instance = %driver, action = action_name, "Driver panicked on a phone action.");
        ApiError::internal("the driver failed on this phone action")
    })??;
    tracing::info!(instance = %driver, device = %device, action = action_name, "Phone action done.");
    Ok(Json(ActionReply {
        driver,
        device,
        action: action_name,
        outcome,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_come_from_the_path_and_the_body() {
        assert_eq!(
            parse_action("refresh", b"").expect("refresh"),
            DeviceAction::Refresh
        );
        assert_eq!(
            parse_action("write_configuration", b" {} ").expect("write"),
            DeviceAction::WriteConfiguration
        );
        assert_eq!(
            parse_action("set_login", br#"{"login":"admin","password":"pw"}"#).expect("login"),
            DeviceAction::SetLogin {
                login: "admin".into(),
                password: "pw".into()
            }
        );
    }

    #[test]
    fn bad_actions_are_400s_that_never_quote_the_body() {
        for (name, body) in [
            ("explode", &b""[..]),
            ("set_login", br#"{"login":"a","password":42,"x":"hunter2"}"#),
            ("set_login", br#"["hunter2"]"#),
            ("refresh", br#"{"password":"hunter2"}"#),
        ] {
            let error = parse_action(name, body).expect_err(name);
            assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(!error.message.contains("hunter2"), "{}", error.message);
        }
    }
}
