//! The manual override API: trigger a rollback, approve or cancel one, list and show them.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::error::{ErrorBody, parse_json};
use super::openapi::UNAVAILABLE;
use super::{ApiError, ApiState, Wake, to_the_end};
use crate::config::Role;
use crate::lifecycle::announce::announce;
use crate::lifecycle::ending::{Ending, end_without_rollback};
use crate::store::{
    AuditEntry, Incident, IncidentFilter, NewIncident, Opened, StepRow, Transition,
    TransitionRecord, Trigger,
};
use rollbackd_core::engine::{always_blocking, guard_sentence, guards_now};
use rollbackd_core::incident::{Event, Running, State as IncidentState, may_supersede, superseded};
use rollbackd_core::policy::{Action, Policy, Stage};

/// `POST /api/v1/rollbacks` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// The agent (policy) id, any case.
    #[schema(example = "GL-002")]
    pub agent: String,
    /// A method of the agent's policy; default: the method of its first unattended row.
    #[schema(example = "quick")]
    pub method: Option<String>,
    /// Roll back to this revision instead of the method's own target.
    #[schema(minimum = 1)]
    pub revision: Option<u64>,
    /// Why, audited and shown in every notification; must not be blank.
    #[schema(min_length = 1)]
    pub reason: String,
    /// Plan only: no mutating step runs.
    #[serde(default)]
    pub dry_run: bool,
}

/// `approve` / `cancel` / pause / resume body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why, as the caller says: audited.
    #[serde(default)]
    pub reason: String,
}

/// `GET /api/v1/rollbacks` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this agent's incidents.
    pub agent: Option<String>,
    /// Only incidents in this state.
    #[param(value_type = Option<IncidentState>)]
    pub state: Option<String>,
    /// How many incidents, 1 to 1000 ([`MAX_LIST_LIMIT`]); default 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// `GET /api/v1/rollbacks`: incidents, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RollbackList {
    /// The incidents.
    pub rollbacks: Vec<Incident>,
}

/// A notification of an incident and how its delivery went.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    /// The target's key (e.g. `slack:#ops`), never a webhook URL.
    pub target: String,
    /// The lifecycle stage the message announces, e.g. `initiated`.
    pub stage: Option<Value>,
    /// `pending`, `sent` or `dead`.
    pub state: String,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The last delivery error, if any.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub sent_at: Option<chrono::DateTime<Utc>>,
}

/// An object backed up before a step changed it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupView {
    /// The object's kind, e.g. `Deployment`.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// `GET /api/v1/rollbacks/{id}`: one incident with everything about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RollbackDetail {
    /// The incident.
    pub incident: Incident,
    /// Its state changes, oldest first.
    pub timeline: Vec<TransitionRecord>,
    /// Its method steps with their outcomes.
    pub steps: Vec<StepRow>,
    /// The decision that opened it, with its evidence.
    pub evidence: Value,
    /// Its notifications.
    pub notifications: Vec<NotificationView>,
    /// What was backed up before it changed anything.
    pub backups: Vec<BackupView>,
    /// Its audit trail.
    pub audit: Vec<AuditEntry>,
    /// Its method's steps in words (what an approval would run).
    pub plan: Option<Value>,
}

/// An approve or cancel, done.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentChanged {
    /// The incident.
    pub id: String,
    /// Its state now.
    pub state: IncidentState,
    /// The token's name that asked.
    pub by: String,
}

/// The largest `limit` the list accepts.
pub const MAX_LIST_LIMIT: usize = 1000;

/// `limit` as a number in 1..=[`MAX_LIST_LIMIT`], or a 400 naming `limit`.
fn parse_limit(limit: Option<&str>) -> Result<Option<usize>, ApiError> {
    let Some(text) = limit else { return Ok(None) };
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_LIST_LIMIT).contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::field(
            "limit",
            format!("must be a whole number from 1 to {MAX_LIST_LIMIT}, got {text:?}"),
        )),
    }
}

fn audit(actor: &str, action: &str, target: &str, reason: &str, detail: Value) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        actor: actor.into(),
        action: action.into(),
        target: target.into(),
        reason: reason.into(),
        detail,
    }
}

/// Triggers a rollback by hand.
#[utoipa::path(post, path = "/api/v1/rollbacks", tag = "rollbacks",
    summary = "Trigger a rollback by hand (operator)",
    description = "An `always` guard that holds (or cannot be evaluated) refuses it with its sentence (409, audited).",
    security(("bearer" = [])),
    request_body(content = TriggerRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "the incident opened", body = Incident),
        (status = 400, description = "malformed body; `field` names the culprit", body = ErrorBody),
        (status = 401, description = "missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "valid credentials without the operator role", body = ErrorBody),
        (status = 404, description = "no policy for the agent", body = ErrorBody),
        (status = 409, description = "an incident is already open for the agent, or an `always` guard holds", body = ErrorBody),
        (status = 413, description = "body over the size cap", content(
            (ErrorBody = "application/json"), (String = "text/plain"))),
        (status = 423, description = "automation is paused", body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody, headers(
            ("Retry-After" = u32, description = "seconds to wait before retrying"))),
    ))]
pub async fn trigger(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Incident>), ApiError> {
    to_the_end(open_by_hand(state, headers, body)).await
}

async fn open_by_hand(
    state: ApiState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Incident>), ApiError> {
    let caller = state.auth.caller(&headers, Role::Operator)?;
    state.require_leader()?;
    let req: TriggerRequest = parse_json(&body)?;
    if req.reason.trim().is_empty() {
        return Err(ApiError::field(
            "reason",
            "say why (it is audited and shown in every notification)",
        ));
    }
    let policy = state
        .policy(&req.agent)
        .ok_or_else(|| ApiError::NotFound(format!("no policy for agent {:?}", req.agent)))?
        .clone();
    let method = match &req.method {
        Some(m) if policy.methods.contains_key(m) => m.clone(),
        Some(m) => {
            let known: Vec<&String> = policy.methods.keys().collect();
            return Err(ApiError::field(
                "method",
                format!(
                    "agent {} has no method {m:?} (known: {known:?})",
                    policy.agent.id
                ),
            ));
        }
        None => policy
            .matrix
            .iter()
            .find(|r| r.action == Action::Rollback)
            .and_then(|r| r.method.clone())
            .or_else(|| policy.methods.keys().next().cloned())
            .ok_or_else(|| ApiError::field("method", "the policy has no method"))?,
    };
    if let Some(pause) = state.store.paused(&policy.agent.id).await? {
        return Err(ApiError::Locked(format!(
            "automation for {} is paused by {} ({}): resume first",
            pause.scope, pause.paused_by, pause.reason
        )));
    }
    if !(req.dry_run || state.dry_run) {
        refuse_if_never(&state, &policy, &caller.name, &req.reason).await?;
    }
    let status = state
        .status
        .read()
        .ok()
        .and_then(|s| s.get(&policy.agent.id).cloned());
    let revision = status.as_ref().and_then(|s| s.revision);
    let workload = policy
        .primary_workload()
        .ok_or_else(|| ApiError::NotFound("policy has no primary workload".into()))?;
    let mut vars = BTreeMap::new();
    if let Some(r) = req.revision {
        vars.insert("to_revision".to_string(), r.to_string());
    }
    let dry_run = req.dry_run || state.dry_run;
    let new = NewIncident {
        agent: policy.agent.id.clone(),
        namespace: workload.namespace.clone(),
        workload: workload.name.clone(),
        revision,
        from_image: status.as_ref().and_then(|s| s.image.clone()),
        row: None,
        severity: Some("manual".into()),
        method: Some(method.clone()),
        trigger: Trigger::Manual,
        requested_by: Some(caller.name.clone()),
        reason: format!("manual rollback by {}: {}", caller.name, req.reason),
        decision: json!({"decision": "rollback", "trigger": "manual", "by": caller.name, "method": method, "revision": req.revision, "dry_run": dry_run}),
        dry_run,
        vars,
        deploy_at: status.as_ref().and_then(|s| s.deployed_at),
    };
    let entry = audit(
        &caller.name,
        "rollback.trigger",
        "",
        &req.reason,
        json!({"agent": policy.agent.id, "method": method, "revision": req.revision, "dry_run": dry_run}),
    );
    // checked against every open incident of the agent in the create's own transaction:
    // two concurrent triggers for one deploy open one incident; the "initiated" message is
    // queued in the same transaction (a crash cannot lose it)
    let extra: BTreeMap<&'static str, String> = req
        .revision
        .map(|r| ("to_revision", r.to_string()))
        .into_iter()
        .collect();
    let (announced, channels) = (policy.clone(), state.channels.clone());
    let announce_start = Box::new(move |incident: &Incident| {
        announce(&announced, incident, Stage::Initiated, &extra, &channels)
    });
    let incident = match state
        .store
        .open_incident(&new, Event::Start, Utc::now(), Some(&entry), announce_start)
        .await?
    {
        Opened::New(incident) => incident,
        Opened::AlreadyOpen(open) => {
            return Err(ApiError::Conflict(format!(
                "incident {} is already {} for {}",
                open.id, open.state, policy.agent.id
            )));
        }
    };
    let _ = state.wake.send(Wake::Incident(incident.id.clone()));
    Ok((StatusCode::CREATED, Json(incident)))
}

async fn change(
    state: &ApiState,
    headers: &HeaderMap,
    id: &str,
    body: &[u8],
    event: Event,
    action: &str,
) -> Result<Json<IncidentChanged>, ApiError> {
    let caller = state.auth.caller(headers, Role::Operator)?;
    state.require_leader()?;
    let req = reason(body)?;
    change_as(state, &caller.name, id, &req.reason, event, action)
        .await
        .map(Json)
}

/// The optional `{"reason": …}` body of approve, cancel, pause and resume.
pub(super) fn reason(body: &[u8]) -> Result<ReasonRequest, ApiError> {
    if body.is_empty() {
        Ok(ReasonRequest::default())
    } else {
        parse_json(body)
    }
}

/// Moves incident `id` by `event` for `by` (an API token's name, or a Slack user), audited
/// as `action` with `reason`, and wakes the daemon: the one path of every door (API, Slack).
pub(super) async fn change_as(
    state: &ApiState,
    by: &str,
    id: &str,
    reason: &str,
    event: Event,
    action: &str,
) -> Result<IncidentChanged, ApiError> {
    state.require_leader()?;
    let incident = state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    let entry = audit(by, action, id, reason, json!({"from": incident.state}));
    let note = format!("{action} by {by}: {reason}");
    let to = state
        .store
        .transition(
            &Transition::new(id, event, Utc::now(), &note)
                .expecting(incident.state)
                .audited(&entry),
        )
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Transition(t) => {
                ApiError::Conflict(format!("incident {id} is {}: cannot {action}", t.from))
            }
            other => ApiError::from(other),
        })?;
    let _ = state.wake.send(Wake::Incident(id.to_string()));
    Ok(IncidentChanged {
        id: id.to_string(),
        state: to,
        by: by.to_string(),
    })
}

/// Approves an incident awaiting approval (or blocked by an `unattended` guard), after
/// checking the world again: an incident whose deploy was replaced or is past
/// `fix_forward_after` ends as superseded (409 saying why), and an `always` guard that holds
/// or cannot be evaluated now refuses the approval (409 with its sentence; audited; nothing
/// changes).
#[utoipa::path(post, path = "/api/v1/rollbacks/{id}/approve", tag = "rollbacks",
    summary = "Approve a rollback awaiting approval (operator)",
    description = "The world is checked again first: an incident whose deploy was replaced or is past `fix_forward_after` ends as superseded (409 saying why), and an `always` guard that holds refuses the approval (409 with its sentence).",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the incident's id")),
    request_body(content = Option<ReasonRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "approved", body = IncidentChanged),
        (status = 400, description = "malformed body; `field` names the culprit", body = ErrorBody),
        (status = 401, description = "missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "valid credentials without the operator role", body = ErrorBody),
        (status = 404, description = "no such incident", body = ErrorBody),
        (status = 409, description = "the incident's state does not allow it, it was superseded, or an `always` guard holds", body = ErrorBody),
        (status = 413, description = "body over the size cap", content(
            (ErrorBody = "application/json"), (String = "text/plain"))),
        (status = 423, description = "automation is paused", body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody, headers(
            ("Retry-After" = u32, description = "seconds to wait before retrying"))),
    ))]
pub async fn approve(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<IncidentChanged>, ApiError> {
    to_the_end(approve_now(state, id, headers, body)).await
}

async fn approve_now(
    state: ApiState,
    id: String,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<IncidentChanged>, ApiError> {
    let caller = state.auth.caller(&headers, Role::Operator)?;
    state.require_leader()?;
    let req = reason(&body)?;
    approve_as(&state, &caller.name, &id, &req.reason)
        .await
        .map(Json)
}

/// Approves incident `id` for `by`: the pause, blocked and world checks, then the
/// transition ([`change_as`]); the one path of every door (API, Slack).
pub(super) async fn approve_as(
    state: &ApiState,
    by: &str,
    id: &str,
    reason: &str,
) -> Result<IncidentChanged, ApiError> {
    state.require_leader()?;
    let incident = state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    if let Some(pause) = state.store.paused(&incident.agent).await? {
        return Err(ApiError::Locked(format!(
            "automation for {} is paused by {}: resume first",
            pause.scope, pause.paused_by
        )));
    }
    if incident.state == IncidentState::Blocked
        && incident.decision["evidence"]["blocked_by"] == "already_rolled_back"
    {
        return Err(ApiError::Conflict(format!(
            "incident {id} is blocked because the deploy was already rolled back; trigger a new rollback instead"
        )));
    }
    // only what an approval can move: anything else gets the lifecycle's 409 below
    if let Some(policy) = state.policy(&incident.agent).cloned()
        && matches!(
            incident.state,
            IncidentState::AwaitingApproval | IncidentState::Blocked
        )
    {
        recheck_world(state, by, &incident, &policy, Utc::now()).await?;
    }
    change_as(state, by, id, reason, Event::Approve, "rollback.approve").await
}

/// What runs on `agent` now, as the evaluation loop last published it.
fn running(state: &ApiState, agent: &str) -> Option<Running> {
    let status = state.status.read().ok()?;
    let s = status.get(agent)?;
    Some(Running {
        revision: s.revision,
        deployed_at: s.deployed_at,
    })
}

/// The pre-deploy baselines an incident carries (`decision.baselines`).
pub fn incident_baselines(incident: &Incident) -> BTreeMap<String, f64> {
    serde_json::from_value(incident.decision["baselines"].clone()).unwrap_or_default()
}

/// Item 7 and item 6 of issue 12, for an approval: supersede an incident the world moved
/// past, refuse one an `always` guard forbids.
async fn recheck_world(
    state: &ApiState,
    by: &str,
    incident: &Incident,
    policy: &Policy,
    now: chrono::DateTime<Utc>,
) -> Result<(), ApiError> {
    let id = &incident.id;
    let Some(running) = running(state, &incident.agent) else {
        return Err(ApiError::Conflict(format!(
            "incident {id} not approved: rollbackd has not yet read which revision of {} runs (just started?); retry in a moment",
            incident.agent
        )));
    };
    if may_supersede(incident.state)
        && let Some(why) = superseded(incident, policy, Some(running), now)
    {
        let note = format!("superseded when {by} approved: {why}");
        let ending = Ending {
            event: Event::Supersede,
            stage: Stage::Superseded,
            actor: by,
            why: &why,
            note: Some(&note),
            detail: json!({"running_revision": running.revision}),
        };
        end_without_rollback(
            state.store.as_ref(),
            &state.channels,
            policy,
            incident,
            &ending,
            now,
        )
        .await
        .map_err(|e| conflict(id, "approve", e))?;
        return Err(ApiError::Conflict(format!(
            "incident {id} not approved and ended as superseded: {why}"
        )));
    }
    let baselines = incident_baselines(incident);
    // the readings' lock is not held across the awaits below
    let guards = {
        let latest = state.latest.read().ok();
        guards_now(
            policy,
            incident.row.as_deref(),
            &baselines,
            |signal| latest.as_ref()?.get(&incident.agent, signal),
            now,
        )
    };
    if let Some(guard) = always_blocking(&guards) {
        let sentence = guard_sentence(guard);
        let entry = audit(
            by,
            "rollback.approve_refused",
            id,
            &sentence,
            json!({"guard": guard.guard, "evidence": guard}),
        );
        state.store.audit(&entry).await?;
        return Err(ApiError::Conflict(format!(
            "incident {id} cannot be approved: {sentence}; an \"always\" guard is not lifted by an approval"
        )));
    }
    Ok(())
}

/// A manual rollback is a click too: an `always` guard (GL-001's life-safety rule) that
/// holds, or cannot be evaluated, refuses it with its sentence, and the refusal is audited.
async fn refuse_if_never(
    state: &ApiState,
    policy: &Policy,
    by: &str,
    reason: &str,
) -> Result<(), ApiError> {
    // the readings' lock is not held across the awaits below
    let guards = {
        let latest = state.latest.read().ok();
        guards_now(
            policy,
            None,
            &BTreeMap::new(),
            |signal| latest.as_ref()?.get(&policy.agent.id, signal),
            Utc::now(),
        )
    };
    let Some(guard) = always_blocking(&guards) else {
        return Ok(());
    };
    let sentence = guard_sentence(guard);
    let entry = audit(
        by,
        "rollback.trigger_refused",
        &policy.agent.id,
        reason,
        json!({"guard": guard.guard, "evidence": guard}),
    );
    state.store.audit(&entry).await?;
    Err(ApiError::Conflict(format!(
        "{} cannot be rolled back: {sentence}; an \"always\" guard holds for manual rollbacks too",
        policy.agent.id
    )))
}

fn conflict(id: &str, action: &str, e: crate::store::StoreError) -> ApiError {
    match e {
        crate::store::StoreError::Transition(t) => {
            ApiError::Conflict(format!("incident {id} is {}: cannot {action}", t.from))
        }
        crate::store::StoreError::Concurrent { .. } => {
            ApiError::Conflict(format!("incident {id} changed meanwhile: cannot {action}"))
        }
        other => ApiError::from(other),
    }
}

/// Cancels an incident; one in flight (rolling back, verifying, monitoring) is stopped by the
/// runner at its next step boundary, which tells who stopped it after which step.
#[utoipa::path(post, path = "/api/v1/rollbacks/{id}/cancel", tag = "rollbacks",
    summary = "Cancel a rollback (operator); one in flight stops at its next step boundary",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the incident's id")),
    request_body(content = Option<ReasonRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "cancelled", body = IncidentChanged),
        (status = 400, description = "malformed body; `field` names the culprit", body = ErrorBody),
        (status = 401, description = "missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "valid credentials without the operator role", body = ErrorBody),
        (status = 404, description = "no such incident", body = ErrorBody),
        (status = 409, description = "the incident's state does not allow it", body = ErrorBody),
        (status = 413, description = "body over the size cap", content(
            (ErrorBody = "application/json"), (String = "text/plain"))),
        (status = 503, description = UNAVAILABLE, body = ErrorBody, headers(
            ("Retry-After" = u32, description = "seconds to wait before retrying"))),
    ))]
pub async fn cancel(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<IncidentChanged>, ApiError> {
    to_the_end(async move {
        change(
            &state,
            &headers,
            &id,
            &body,
            Event::Cancel,
            "rollback.cancel",
        )
        .await
    })
    .await
}

/// Lists incidents, newest first.
#[utoipa::path(get, path = "/api/v1/rollbacks", tag = "rollbacks",
    summary = "List rollbacks (incidents), newest first (viewer)",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "the incidents", body = RollbackList),
        (status = 400, description = "a bad query parameter; `field` names it", body = ErrorBody),
        (status = 401, description = "missing or invalid credentials", body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody, headers(
            ("Retry-After" = u32, description = "seconds to wait before retrying"))),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<RollbackList>, ApiError> {
    state.auth.caller(&headers, Role::Viewer)?;
    let state_filter = match q.state.as_deref() {
        None => None,
        Some(s) => Some(
            s.parse::<IncidentState>()
                .map_err(|e| ApiError::field("state", e))?,
        ),
    };
    let incidents = state
        .store
        .incidents(&IncidentFilter {
            agent: q.agent,
            state: state_filter,
            limit: parse_limit(q.limit.as_deref())?,
        })
        .await?;
    Ok(Json(RollbackList {
        rollbacks: incidents,
    }))
}

/// One incident with its timeline, steps, evidence, notifications, backups and audit.
#[utoipa::path(get, path = "/api/v1/rollbacks/{id}", tag = "rollbacks",
    summary = "One rollback: timeline, steps, evidence, notifications, backups, audit (viewer)",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the incident's id")),
    responses(
        (status = 200, description = "the incident", body = RollbackDetail),
        (status = 401, description = "missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "no such incident", body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody, headers(
            ("Retry-After" = u32, description = "seconds to wait before retrying"))),
    ))]
pub async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<RollbackDetail>, ApiError> {
    state.auth.caller(&headers, Role::Viewer)?;
    let incident = state
        .store
        .incident(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    let notifications = state
        .store
        .outbox_for(&id)
        .await?
        .into_iter()
        .map(|o| NotificationView {
            target: o.target_key,
            stage: o.message.get("stage").cloned(),
            state: o.state,
            attempts: o.attempts,
            last_error: o.last_error,
            sent_at: o.sent_at,
        })
        .collect();
    let backups = state
        .store
        .backups(&id)
        .await?
        .into_iter()
        .map(|(kind, namespace, name, _)| BackupView {
            kind,
            namespace,
            name,
        })
        .collect();
    // what an approval would run, in words (the console's confirmation says it)
    let plan = state
        .policy(&incident.agent)
        .and_then(|p| super::views::method_plan(p, incident.method.as_deref()?));
    Ok(Json(RollbackDetail {
        evidence: incident.decision.clone(),
        incident,
        timeline: state.store.transitions(&id).await?,
        steps: state.store.steps(&id).await?,
        notifications,
        backups,
        audit: state.store.audit_log(Some(&id), 1000).await?,
        plan,
    }))
}
