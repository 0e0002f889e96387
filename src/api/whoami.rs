//! `GET /api/v1/whoami`: the name and role of the token presented, so a client (the
//! console) shows only what the caller may do. The server checks the role again on every
//! write; this answer only spares a viewer buttons that would be refused.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiError, ApiState};
use crate::config::Role;

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Whoami {
    /// The token's name (`anonymous` when no tokens are configured).
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// `GET /api/v1/whoami`: `{name, role}`; 401 without a valid token.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "auth",
    summary = "The name and role of the token presented (viewer)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the caller", body = Whoami),
        (status = 401, description = "missing or invalid credentials", body = ErrorBody),
    ))]
pub async fn whoami(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Whoami>, ApiError> {
    let caller = state.auth.caller(&headers, Role::Viewer)?;
    Ok(Json(Whoami {
        name: caller.name,
        role: caller.role,
    }))
}
