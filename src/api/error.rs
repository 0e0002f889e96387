//! API errors as JSON bodies: `{"error": "...", "field": "..."}` with the right status.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// The `Retry-After` (seconds) of every 503: about one leader election round.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// The body of every API error.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong, in one sentence.
    pub error: String,
    /// The field of the request at fault (a JSON path such as `alerts[0].status`, or a
    /// query parameter), on a 400 that has one.
    pub field: Option<String>,
}

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not what the endpoint takes; `field` names the culprit.
    #[error("{message}")]
    BadRequest {
        /// The field at fault, when one is.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// Missing or unknown credentials (401).
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// The credentials do not allow this: wrong, too low a role, or none configured for it
    /// (403); the text says why.
    #[error("{0}")]
    Forbidden(String),
    /// No such agent or incident (404); the text says which.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the incident's or agent's state.
    #[error("{0}")]
    Conflict(String),
    /// Automation is paused.
    #[error("{0}")]
    Locked(String),
    /// The body is over `server.max_body_bytes` (413).
    #[error("request body too large")]
    TooLarge,
    /// This replica is a standby: only the leader records alerts and requests and acts.
    /// The caller should retry (Alertmanager retries 5xx; through the Service it reaches
    /// the leader).
    #[error("this replica is a standby, not the leader: retry to reach the leader")]
    NotLeader,
    /// A write reached a standby that could not hand it to the leader (see
    /// `api::forward`); the text says why. The caller should retry.
    #[error("{0}")]
    Standby(String),
    /// A part of the daemon the request needs has stopped: the caller should retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The store failed: the caller should retry (Alertmanager retries 5xx).
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// A 400 naming a field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Locked(_) => StatusCode::LOCKED,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotLeader | ApiError::Standby(_) | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Store(StoreError::NotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::Store(StoreError::Transition(_) | StoreError::Concurrent { .. }) => {
                StatusCode::CONFLICT
            }
            ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let field = match &self {
            ApiError::BadRequest { field, .. } => field.clone(),
            _ => None,
        };
        let body = ErrorBody {
            error: self.to_string(),
            field,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED
            && let Ok(v) = "Bearer realm=\"rollbackd\"".parse()
        {
            response.headers_mut().insert("www-authenticate", v);
        }
        // every 503 is worth retrying: a standby, a leader out of reach, a store hiccup
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// Parses a JSON body into `T`, naming the field at fault.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." { None } else { Some(path) };
        ApiError::BadRequest {
            field,
            message: format!("invalid JSON body: {inner}"),
        }
    })
}
