//! The HTTP API's one error type and one error body, `{"error": {"code", "message", "field"?}}`,
//! and the one place each room, edit, sync and storage failure becomes a status and a code.
//! A leaf: handlers of every endpoint use it, and it uses none of them.

use schemars::JsonSchema;
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::room::{EditError, HttpSyncError, RoomError};

/// A refusal on its way to becoming an [`ErrorBody`] answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, for programs.
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// The request field at fault (400s on invalid input).
    pub field: Option<String>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `invalid_field`, `not_found`, `already_exists`, ...
    pub code: String,
    /// For people.
    pub message: String,
    /// The request field at fault, for `invalid_field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A 400 for an invalid value of `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field}: {}", message.into());
        ApiError {
            field: Some(field),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message)
        }
    }

    /// Storage could not be read or written; the client may retry.
    pub fn storage() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_failure",
            "storage is unavailable; retry",
        )
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
                field: self.field.clone(),
            },
        }
    }

    pub fn into_response(self) -> Response {
        json_reply(self.status, &self.body())
    }
}

/// 405 with the methods the path takes, in `Allow` (RFC 9110 §15.5.6 requires it).
pub fn method_not_allowed(allowed: &[&str]) -> Response {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("use {} here", allowed.join(" or ")),
    )
    .into_response();
    if let Ok(allow) = warp::http::HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert("allow", allow);
    }
    response
}

/// A JSON answer. The body goes through `serde_json::Value`, whose objects keep their keys
/// sorted: every answer has had its keys in that order (clients and the pinned bodies of
/// `tests/rest_bodies.rs` see the same bytes whatever order a type declares its fields in).
pub fn json_reply<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let value = serde_json::to_value(body).unwrap_or_default();
    warp::reply::with_status(warp::reply::json(&value), status).into_response()
}

impl From<RoomError> for ApiError {
    fn from(e: RoomError) -> Self {
        match e {
            RoomError::Load { doc, cause } => {
                tracing::error!(doc = %doc, cause = %cause, "refused: document unavailable");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "document_unavailable",
                    "the document could not be loaded from storage",
                )
            }
            RoomError::Gone => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "room_busy", "retry"),
        }
    }
}

impl From<EditError> for ApiError {
    fn from(e: EditError) -> Self {
        match e {
            EditError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            EditError::Invalid { field, message } => ApiError::invalid(field, message),
            EditError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "already_exists", m),
            EditError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            EditError::TooLarge => too_large(e.to_string()),
            EditError::Failed => ApiError::new(StatusCode::CONFLICT, "edit_failed", e.to_string()),
            EditError::Storage => not_durable("the edit could not be made durable; retry"),
            EditError::Room(e) => e.into(),
        }
    }
}

impl From<HttpSyncError> for ApiError {
    fn from(e: HttpSyncError) -> Self {
        match e {
            HttpSyncError::TooLarge => too_large(e.to_string()),
            HttpSyncError::Invalid(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_update", e.to_string())
            }
            HttpSyncError::Storage => not_durable("the edits could not be made durable; retry"),
            HttpSyncError::Room(e) => e.into(),
        }
    }
}

fn too_large(message: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "document_too_large", message)
}

fn not_durable(message: &str) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_failure", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The body's bytes as `json_reply` writes them: keys sorted, `field` only when there is one.
    #[test]
    fn bodies() {
        for (error, expected) in [
            (
                ApiError::invalid("tags[2]", "too long"),
                r#"{"error":{"code":"invalid_field","field":"tags[2]","message":"tags[2]: too long"}}"#,
            ),
            (
                ApiError::from(RoomError::Gone),
                r#"{"error":{"code":"room_busy","message":"retry"}}"#,
            ),
        ] {
            let value = serde_json::to_value(error.body()).unwrap_or_default();
            assert_eq!(value.to_string(), expected);
            assert_eq!(error.clone().into_response().status(), error.status);
        }
    }
}
