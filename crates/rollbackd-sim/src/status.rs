//! Kubernetes `Status` error objects and the error type every handler returns.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An API error that renders as a Kubernetes `Status` object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request could not be understood (malformed JSON, bad patch, bad selector).
    #[error("{0}")]
    BadRequest(String),
    /// 404: the object or resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 409: stale resourceVersion.
    #[error("{0}")]
    Conflict(String),
    /// 409: create of an existing name.
    #[error("{0}")]
    AlreadyExists(String),
    /// 422: the object is not valid.
    #[error("{0}")]
    Invalid(String),
    /// 415: the patch content type is not supported.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 405: the verb is not allowed on this path.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 410: the requested resourceVersion is too old.
    #[error("{0}")]
    Gone(String),
    /// 503: the server cannot handle the request now (see [`crate::refusals`]).
    #[error("{0}")]
    ServiceUnavailable(String),
}

impl ApiError {
    /// The HTTP status code of this error.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_) | ApiError::AlreadyExists(_) => 409,
            ApiError::Invalid(_) => 422,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Gone(_) => 410,
            ApiError::ServiceUnavailable(_) => 503,
        }
    }

    /// The Kubernetes `reason` string of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::NotFound(_) => "NotFound",
            ApiError::Conflict(_) => "Conflict",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Invalid(_) => "Invalid",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::Gone(_) => "Expired",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
        }
    }

    /// A `NotFound` error phrased like the real API server (`deployments.apps "web" not found`).
    pub fn not_found(resource: &str, group: &str, name: &str) -> Self {
        ApiError::NotFound(format!(
            "{} \"{name}\" not found",
            qualified(resource, group)
        ))
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        })
    }
}

/// `deployments.apps`, or just `pods` for the core group.
pub fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::BAD_REQUEST);
        crate::server::json_response(code, &self.to_status())
    }
}
