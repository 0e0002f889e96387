//! Agents: their windows and current decisions, and pausing automation.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::openapi::UNAVAILABLE;
use super::rollbacks::ReasonRequest;
use super::rollbacks::reason;
use super::{ApiError, ApiState, Wake, to_the_end};
use crate::config::Role;
use crate::store::{AuditEntry, GLOBAL, Pause};
use rollbackd_core::engine::Decision;
use rollbackd_core::policy::WorkloadKind;

/// What the evaluation loop knows about one agent right now.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
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
    /// The latest decision with its evidence; `None` once the window is closed.
    #[schema(value_type = Option<Object>)]
    pub decision: Option<Decision>,
    /// When the latest decision was made.
    pub evaluated_at: Option<DateTime<Utc>>,
}

/// An agent's primary workload.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkloadView {
    /// `Deployment` or `Rollout`.
    pub kind: WorkloadKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// An agent's rollback window, from its policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowView {
    /// How long after a deploy the agent may roll it back.
    pub duration_seconds: i64,
    /// After this long, a fix forward is expected instead of a rollback.
    pub fix_forward_after_seconds: Option<i64>,
}

/// One agent: its policy's workload and window, its pause, and what the evaluation loop
/// knows now.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    /// The agent (policy) id, e.g. `GL-002`.
    pub id: String,
    /// The agent's name.
    pub name: String,
    /// Its primary workload.
    pub workload: Option<WorkloadView>,
    /// Its rollback window.
    pub window: WindowView,
    /// The pause that freezes it (its own, or the global one).
    pub paused: Option<Pause>,
    /// Its window and current decision; none before the first evaluation.
    pub status: Option<AgentStatus>,
    /// Each signal a row tests: its latest reading and, per row, the threshold and whether
    /// the reading meets it (`null`: no data, or relative to a baseline).
    pub signals: Vec<Value>,
    /// The steps a manual rollback would run, in words.
    pub manual_plan: Option<Value>,
}

/// `GET /api/v1/agents`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    /// Every agent, in policy order.
    pub agents: Vec<AgentView>,
    /// The global pause, when all automation is frozen.
    pub global_pause: Option<Pause>,
}

/// A pause or resume, done.
#[derive(Debug, Serialize, ToSchema)]
pub struct PauseChanged {
    /// The agent id, or `global`.
    pub scope: String,
    /// Whether the scope is now paused.
    pub paused: bool,
    /// Whether anything changed (a second pause keeps the first one's record).
    pub changed: bool,
    /// The token's name that asked.
    pub by: String,
}

/// `GET /api/v1/agents`
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents",
    summary = "Agents with their window, current decision and evidence, and pauses (viewer)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the agents", body = AgentList),
        (status = 401, description = "missing or invalid credentials", body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody, headers(
            ("Retry-After" = u32, description = "seconds to wait before retrying"))),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<AgentList>, ApiError> {
    state.auth.caller(&headers, Role::Viewer)?;
    let status = state.status.read().map(|s| s.clone()).unwrap_or_default();
    let pauses = state.store.pauses().await?;
    let global = pauses.iter().find(|p| p.scope == GLOBAL);
    let latest = state.latest.read().ok();
    let agents = state
        .policies
        .iter()
        .map(|p| AgentView {
            id: p.agent.id.clone(),
            name: p.agent.name.clone(),
            workload: p.primary_workload().map(|w| WorkloadView {
                kind: w.kind,
                namespace: w.namespace.clone(),
                name: w.name.clone(),
            }),
            window: WindowView {
                duration_seconds: p.window.duration.num_seconds(),
                fix_forward_after_seconds: p.window.fix_forward_after.map(|d| d.num_seconds()),
            },
            paused: global
                .or_else(|| pauses.iter().find(|x| x.scope == p.agent.id))
                .cloned(),
            status: status.get(&p.agent.id).cloned(),
            signals: super::views::signal_readings(p, latest.as_deref()),
            manual_plan: super::views::default_method(p)
                .and_then(|m| super::views::method_plan(p, &m)),
        })
        .collect();
    Ok(Json(AgentList {
        agents,
        global_pause: global.cloned(),
    }))
}

async fn set_pause(
    state: ApiState,
    headers: HeaderMap,
    scope: String,
    body: Bytes,
    pause: bool,
) -> Result<Json<PauseChanged>, ApiError> {
    let caller = state.auth.caller(&headers, Role::Operator)?;
    state.require_leader()?;
    let req = reason(&body)?;
    pause_as(&state, &caller.name, &scope, &req.reason, pause)
        .await
        .map(Json)
}

/// Pauses (`pause`) or resumes `scope` (an agent id, or [`GLOBAL`]) for `by` (an API
/// token's name, or a Slack user), audited, and wakes the daemon: the one path of every
/// door (API, Slack).
pub(super) async fn pause_as(
    state: &ApiState,
    by: &str,
    scope: &str,
    reason: &str,
    pause: bool,
) -> Result<PauseChanged, ApiError> {
    state.require_leader()?;
    if scope != GLOBAL && state.policy(scope).is_none() {
        return Err(ApiError::NotFound(format!("no policy for agent {scope:?}")));
    }
    let scope = if scope == GLOBAL {
        GLOBAL.to_string()
    } else {
        state
            .policy(scope)
            .map(|p| p.agent.id.clone())
            .unwrap_or_default()
    };
    let now = Utc::now();
    let changed = if pause {
        state
            .store
            .pause(&Pause {
                scope: scope.clone(),
                paused_by: by.to_string(),
                reason: reason.to_string(),
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
            actor: by.to_string(),
            action: action.into(),
            target: scope.clone(),
            reason: reason.to_string(),
            detail: json!({"changed": changed}),
        })
        .await?;
    let _ = state.wake.send(Wake::Pauses);
    Ok(PauseChanged {
        scope,
        paused: pause,
        changed,
        by: by.to_string(),
    })
}

/// `POST /api/v1/agents/{id}/pause`
#[utoipa::path(post, path = "/api/v1/agents/{id}/pause", tag = "agents",
    summary = "Freeze automation for one agent (operator)",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the agent's id (any case)")),
    request_body(content = Option<ReasonRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "done", body = PauseChanged),
        (status = 400, description = "malformed body; `field` names the culprit", body = ErrorBody),
        (status = 401, description = "missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "valid credentials without the operator role", body = ErrorBody),
        (status = 404, description = "no policy for the agent", body = ErrorBody),
        (status = 413, description = "body over the size cap", content(
            (ErrorBody = "application/json"), (String = "text/plain"))),
        (status = 503, description = UNAVAILABLE, body = ErrorBody, headers(
            ("Retry-After" = u32, description = "seconds to wait before retrying"))),
    ))]
pub async fn pause(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PauseChanged>, ApiError> {
    to_the_end(set_pause(state, headers, id, body, true)).await
}

/// `POST /api/v1/agents/{id}/resume`
#[utoipa::path(post, path = "/api/v1/agents/{id}/resume", tag = "agents",
    summary = "Resume automation for one agent (operator)",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the agent's id (any case)")),
    request_body(content = Option<ReasonRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "done", body = PauseChanged),
        (status = 400, description = "malformed body; `field` names the culprit", body = ErrorBody),
        (status = 401, description = "missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "valid credentials without the operator role", body = ErrorBody),
        (status = 404, description = "no policy for the agent", body = ErrorBody),
        (status = 413, description = "body over the size cap", content(
            (ErrorBody = "application/json"), (String = "text/plain"))),
        (status = 503, description = UNAVAILABLE, body = ErrorBody, headers(
            ("Retry-After" = u32, description = "seconds to wait before retrying"))),
    ))]
pub async fn resume(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PauseChanged>, ApiError> {
    to_the_end(set_pause(state, headers, id, body, false)).await
}

/// `POST /api/v1/pause`: freeze all automation.
#[utoipa::path(post, path = "/api/v1/pause", tag = "agents",
    summary = "Freeze all automation (operator)",
    security(("bearer" = [])),
    request_body(content = Option<ReasonRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "done", body = PauseChanged),
        (status = 400, description = "malformed body; `field` names the culprit", body = ErrorBody),
        (status = 401, description = "missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "valid credentials without the operator role", body = ErrorBody),
        (status = 413, description = "body over the size cap", content(
            (ErrorBody = "application/json"), (String = "text/plain"))),
        (status = 503, description = UNAVAILABLE, body = ErrorBody, headers(
            ("Retry-After" = u32, description = "seconds to wait before retrying"))),
    ))]
pub async fn pause_all(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PauseChanged>, ApiError> {
    to_the_end(set_pause(state, headers, GLOBAL.into(), body, true)).await
}

/// `POST /api/v1/resume`
#[utoipa::path(post, path = "/api/v1/resume", tag = "agents",
    summary = "Resume all automation (operator)",
    security(("bearer" = [])),
    request_body(content = Option<ReasonRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "done", body = PauseChanged),
        (status = 400, description = "malformed body; `field` names the culprit", body = ErrorBody),
        (status = 401, description = "missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "valid credentials without the operator role", body = ErrorBody),
        (status = 413, description = "body over the size cap", content(
            (ErrorBody = "application/json"), (String = "text/plain"))),
        (status = 503, description = UNAVAILABLE, body = ErrorBody, headers(
            ("Retry-After" = u32, description = "seconds to wait before retrying"))),
    ))]
pub async fn resume_all(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PauseChanged>, ApiError> {
    to_the_end(set_pause(state, headers, GLOBAL.into(), body, false)).await
}
