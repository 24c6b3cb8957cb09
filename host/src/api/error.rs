//! The API's errors: one JSON shape for every 4xx and 5xx, and the one place where a front-end
//! [`ErrorKind`] becomes an HTTP status.
//!
//! Body: `{"error": {"code": "invalid_call_state", "message": "...", "status": 409}}`. The
//! `code` is the front end's error kind name, or one of the API's own codes
//! ([`ApiError::code`]).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tapir_core::{DriverError, ErrorKind};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, lower-case code to branch on.
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
    /// Extra fields merged into the error object (`oldest` of a history gap, `request` of a
    /// failed completion).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: BodyInner<'a>,
}

#[derive(Serialize)]
struct BodyInner<'a> {
    code: &'a str,
    message: &'a str,
    status: u16,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: serde_json::Map::new(),
        }
    }

    /// Adds a field to the error object.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// 400: the request cannot be read (malformed JSON, bad path or query).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no token, or a token that is not known.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403: the token may read but not control.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 for a path that is no route at all.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "no_route",
            format!("no such endpoint: {path}"),
        )
    }

    /// 500: something inside the host broke.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

/// The HTTP status of each front-end error kind. The only such mapping in tapir.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        // The thing named does not exist.
        ErrorKind::BadDeviceId
        | ErrorKind::InvalidCallHandle
        | ErrorKind::InvalidConsultCallHandle
        | ErrorKind::InvalidAddressId => StatusCode::NOT_FOUND,
        // It exists but is not in a state that allows the operation.
        ErrorKind::InvalidCallState
        | ErrorKind::InvalidLineHandle
        | ErrorKind::ResourceUnavailable => StatusCode::CONFLICT,
        // The request is well-formed but cannot be carried out as asked.
        ErrorKind::OperationUnavailable
        | ErrorKind::InvalidAddress
        | ErrorKind::InvalidParameter => StatusCode::UNPROCESSABLE_ENTITY,
        // The device or driver failed.
        ErrorKind::OperationFailed => StatusCode::BAD_GATEWAY,
        // The device or host cannot serve now.
        ErrorKind::Disconnected | ErrorKind::Uninitialized | ErrorKind::NoMemory => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorKind::StructureTooSmall | ErrorKind::IncompatibleVersion => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<DriverError> for ApiError {
    fn from(error: DriverError) -> Self {
        Self::new(status_of(error.kind), error.kind.name(), error.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: BodyInner {
                code: self.code,
                message: &self.message,
                status: self.status.as_u16(),
                extra: &self.extra,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tapir\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_4xx_or_5xx_status() {
        for kind in ErrorKind::ALL {
            let status = status_of(kind);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{kind}"
            );
        }
        assert_eq!(status_of(ErrorKind::BadDeviceId), StatusCode::NOT_FOUND);
        assert_eq!(status_of(ErrorKind::InvalidCallState), StatusCode::CONFLICT);
    }
}
