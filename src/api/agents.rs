//! Agents: their windows and current decisions, and pausing automation.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::error::parse_json;
use super::rollbacks::ReasonRequest;
use super::{ApiError, ApiState, Wake, to_the_end};
use crate::config::Role;
use crate::store::{AuditEntry, GLOBAL, Pause};
use rollbackd_core::engine::Decision;

/// What the evaluation loop knows about one agent right now.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentStatus {
    /// The current deploy's revision, when known.
    pub revision: Option<u64>,
    /// The current deploy's image, when known.
    pub image: Option<String>,
    /// When the current deploy happened.
    pub deployed_at: Option<DateTime<Utc>>,
    /// The window is open (the deploy is younger than the policy's horizon).
    pub window_open: bool,
    /// When the window closes: the deploy time plus `fix_forward_after`, else `window.duration`.
    pub window_ends_at: Option<DateTime<Utc>>,
    /// The latest decision; `None` once the window is closed.
    pub decision: Option<Decision>,
    /// When the latest decision was made.
    pub evaluated_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/agents`
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.auth.caller(&headers, Role::Viewer)?;
    let status = state.status.read().map(|s| s.clone()).unwrap_or_default();
    let pauses = state.store.pauses().await?;
    let global = pauses.iter().find(|p| p.scope == GLOBAL);
    let latest = state.latest.read().ok();
    let agents: Vec<Value> = state
        .policies
        .iter()
        .map(|p| {
            let w = p.primary_workload();
            let paused = global.or_else(|| pauses.iter().find(|x| x.scope == p.agent.id));
            json!({
                "id": p.agent.id,
                "name": p.agent.name,
                "workload": w.map(|w| json!({"kind": w.kind, "namespace": w.namespace, "name": w.name})),
                "window": {"duration_seconds": p.window.duration.num_seconds(), "fix_forward_after_seconds": p.window.fix_forward_after.map(|d| d.num_seconds())},
                "paused": paused,
                "status": status.get(&p.agent.id),
                "signals": super::views::signal_readings(p, latest.as_deref()),
                "manual_plan": super::views::default_method(p).and_then(|m| super::views::method_plan(p, &m)),
            })
        })
        .collect();
    Ok(Json(json!({"agents": agents, "global_pause": global})))
}

async fn set_pause(
    state: ApiState,
    headers: HeaderMap,
    scope: String,
    body: Bytes,
    pause: bool,
) -> Result<Json<Value>, ApiError> {
    let caller = state.auth.caller(&headers, Role::Operator)?;
    state.require_leader()?;
    let req: ReasonRequest = if body.is_empty() {
        ReasonRequest::default()
    } else {
        parse_json(&body)?
    };
    if scope != GLOBAL && state.policy(&scope).is_none() {
        return Err(ApiError::NotFound(format!("no policy for agent {scope:?}")));
    }
    let scope = if scope == GLOBAL {
        GLOBAL.to_string()
    } else {
        state
            .policy(&scope)
            .map(|p| p.agent.id.clone())
            .unwrap_or_default()
    };
    let now = Utc::now();
    let changed = if pause {
        state
            .store
            .pause(&Pause {
                scope: scope.clone(),
                paused_by: caller.name.clone(),
                reason: req.reason.clone(),
                at: now,
            })
            .await?;
        true
    } else {
        state.store.resume(&scope).await?
    };
    let action = if pause { "agent.pause" } else { "agent.resume" };
    state
        .store
        .audit(&AuditEntry {
            at: now,
            actor: caller.name.clone(),
            action: action.into(),
            target: scope.clone(),
            reason: req.reason,
            detail: json!({"changed": changed}),
        })
        .await?;
    let _ = state.wake.send(Wake::Pauses);
    Ok(Json(
        json!({"scope": scope, "paused": pause, "changed": changed, "by": caller.name}),
    ))
}

/// `POST /api/v1/agents/{id}/pause`
pub async fn pause(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    to_the_end(set_pause(state, headers, id, body, true)).await
}

/// `POST /api/v1/agents/{id}/resume`
pub async fn resume(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    to_the_end(set_pause(state, headers, id, body, false)).await
}

/// `POST /api/v1/pause`: freeze all automation.
pub async fn pause_all(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    to_the_end(set_pause(state, headers, GLOBAL.into(), body, true)).await
}

/// `POST /api/v1/resume`
pub async fn resume_all(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    to_the_end(set_pause(state, headers, GLOBAL.into(), body, false)).await
}
