//! The manual override API: trigger a rollback, approve or cancel one, list and show them.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::parse_json;
use super::{ApiError, ApiState, Wake, to_the_end};
use crate::config::Role;
use crate::lifecycle::announce::announce;
use crate::lifecycle::ending::{Ending, end_without_rollback};
use crate::store::{
    AuditEntry, Incident, IncidentFilter, NewIncident, Opened, Transition, Trigger,
};
use rollbackd_core::engine::{always_blocking, guard_sentence, guards_now};
use rollbackd_core::incident::{Event, Running, State as IncidentState, may_supersede, superseded};
use rollbackd_core::policy::{Action, Policy, Stage};

/// `POST /api/v1/rollbacks` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    pub agent: String,
    /// A method of the agent's policy; default: the method of its first unattended row.
    pub method: Option<String>,
    /// Roll back to this revision instead of the method's own target.
    pub revision: Option<u64>,
    pub reason: String,
    #[serde(default)]
    pub dry_run: bool,
}

/// `approve` / `cancel` body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    #[serde(default)]
    pub reason: String,
}

/// `GET /api/v1/rollbacks` query.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub agent: Option<String>,
    pub state: Option<String>,
    /// How many incidents, 1..=[`MAX_LIST_LIMIT`] (default 100).
    pub limit: Option<String>,
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
pub async fn trigger(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    to_the_end(open_by_hand(state, headers, body)).await
}

async fn open_by_hand(
    state: ApiState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(json!(incident))))
}

async fn change(
    state: &ApiState,
    headers: &HeaderMap,
    id: &str,
    body: &[u8],
    event: Event,
    action: &str,
) -> Result<Json<Value>, ApiError> {
    let caller = state.auth.caller(headers, Role::Operator)?;
    state.require_leader()?;
    let req: ReasonRequest = if body.is_empty() {
        ReasonRequest::default()
    } else {
        parse_json(body)?
    };
    let incident = state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    let entry = audit(
        &caller.name,
        action,
        id,
        &req.reason,
        json!({"from": incident.state}),
    );
    let note = format!("{action} by {}: {}", caller.name, req.reason);
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
    Ok(Json(json!({"id": id, "state": to, "by": caller.name})))
}

/// Approves an incident awaiting approval (or blocked by an `unattended` guard), after
/// checking the world again: an incident whose deploy was replaced or is past
/// `fix_forward_after` ends as superseded (409 saying why), and an `always` guard that holds
/// or cannot be evaluated now refuses the approval (409 with its sentence; audited; nothing
/// changes).
pub async fn approve(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    to_the_end(approve_now(state, id, headers, body)).await
}

async fn approve_now(
    state: ApiState,
    id: String,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = state.auth.caller(&headers, Role::Operator)?;
    state.require_leader()?;
    let incident = state
        .store
        .incident(&id)
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
        recheck_world(&state, &caller.name, &incident, &policy, Utc::now()).await?;
    }
    change(
        &state,
        &headers,
        &id,
        &body,
        Event::Approve,
        "rollback.approve",
    )
    .await
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
pub async fn cancel(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
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
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({"rollbacks": incidents})))
}

/// One incident with its timeline, steps, evidence, notifications, backups and audit.
pub async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.auth.caller(&headers, Role::Viewer)?;
    let incident = state
        .store
        .incident(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    let notifications: Vec<Value> = state
        .store
        .outbox_for(&id)
        .await?
        .into_iter()
        .map(|o| json!({"target": o.target_key, "stage": o.message.get("stage"), "state": o.state, "attempts": o.attempts, "last_error": o.last_error, "sent_at": o.sent_at}))
        .collect();
    let backups: Vec<Value> = state
        .store
        .backups(&id)
        .await?
        .into_iter()
        .map(|(kind, ns, name, _)| json!({"kind": kind, "namespace": ns, "name": name}))
        .collect();
    // what an approval would run, in words (the console's confirmation says it)
    let plan = state
        .policy(&incident.agent)
        .and_then(|p| super::views::method_plan(p, incident.method.as_deref()?));
    Ok(Json(json!({
        "incident": incident,
        "timeline": state.store.transitions(&id).await?,
        "steps": state.store.steps(&id).await?,
        "evidence": incident.decision,
        "notifications": notifications,
        "backups": backups,
        "audit": state.store.audit_log(Some(&id), 1000).await?,
        "plan": plan,
    })))
}
