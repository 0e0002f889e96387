//! `GET /api/v1/whoami`: the name and role of the token presented, so a client (the
//! console) shows only what the caller may do. The server checks the role again on every
//! write; this answer only spares a viewer buttons that would be refused.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::config::Role;

/// `GET /api/v1/whoami`: `{name, role}`; 401 without a valid token.
pub async fn whoami(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = state.auth.caller(&headers, Role::Viewer)?;
    Ok(Json(json!({"name": caller.name, "role": caller.role})))
}
