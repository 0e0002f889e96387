//! `POST /api/v1/alerts`: Alertmanager's webhook (payload version 4). Alerts are recorded
//! durably before the 2xx (concurrent requests share one commit, see [`super::ingest`]); a redelivery is recognised by (fingerprint, status, startsAt);
//! alerts no policy claims are recorded as unmatched and counted, never dropped silently.
//! Only the leader records: a standby forwards the notification to it ([`super::forward`]),
//! or answers 503 without recording when it cannot, and Alertmanager retries.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ErrorBody, parse_json};
use super::openapi::UNAVAILABLE;
use super::{ApiError, ApiState};
use crate::store::AlertRecord;
use rollbackd_core::policy::{Policy, WorkloadRole};
use rollbackd_core::replay::fingerprint_of;

/// The webhook body, as Alertmanager 0.25 sends it (unknown fields are tolerated).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AlertmanagerPayload)]
pub struct WebhookPayload {
    /// Payload version; only `"4"` is accepted.
    #[schema(example = "4")]
    pub version: String,
    /// Alertmanager's `groupKey` for the group; informational.
    #[serde(default)]
    pub group_key: Option<String>,
    /// The group's `status`: `firing` while any alert fires, else `resolved`; informational
    /// (each alert's own status is what counts).
    #[serde(default)]
    pub status: Option<String>,
    /// Name of the Alertmanager receiver that sent it; informational.
    #[serde(default)]
    pub receiver: Option<String>,
    /// Labels every alert of the group shares (`commonLabels`); informational.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    /// Link back to the Alertmanager (`externalURL`); informational.
    #[serde(default)]
    pub external_url: Option<String>,
    /// The alerts of the group, each with its own state.
    pub alerts: Vec<WebhookAlert>,
}

/// One alert of a group.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    #[schema(example = "firing")]
    pub status: String,
    /// The alert's labels: those naming the agent (`webhook.agent_label`, else `namespace` +
    /// `deployment`) and those the policies' alert signals match.
    pub labels: BTreeMap<String, String>,
    /// The alert's annotations, stored with it.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When the condition began (`startsAt`): an alert counts against a deploy only if it
    /// began after it (plus the policy's `window.alert_grace`).
    pub starts_at: DateTime<Utc>,
    /// `0001-01-01T00:00:00Z` while firing.
    #[serde(default)]
    pub ends_at: Option<String>,
    /// Link to the alert's source expression (`generatorURL`); informational.
    #[serde(default)]
    pub generator_url: Option<String>,
    /// Alertmanager's identity of the alert; default: its sorted labels.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// Which agent an alert is about, looked up by hash rather than by scanning every policy
/// for every alert: the `agent_label` naming an agent id (any case), else the `namespace` +
/// `deployment` (or `rollout`) labels naming one of a policy's workloads (primary workloads
/// win over coordinated ones; among equals, the first policy).
#[derive(Debug, Default)]
pub struct AgentIndex {
    by_id: HashMap<String, String>,
    primary: HashMap<(String, String), String>,
    coordinated: HashMap<(String, String), String>,
}

impl AgentIndex {
    /// The index of `policies`.
    pub fn new(policies: &[Arc<Policy>]) -> Self {
        let mut index = Self::default();
        for p in policies {
            let id = &p.agent.id;
            index
                .by_id
                .entry(id.to_lowercase())
                .or_insert_with(|| id.clone());
            for w in &p.workloads {
                let map = if w.role == WorkloadRole::Primary {
                    &mut index.primary
                } else {
                    &mut index.coordinated
                };
                map.entry((w.namespace.clone(), w.name.clone()))
                    .or_insert_with(|| id.clone());
            }
        }
        index
    }

    /// The agent id an alert with these labels is about.
    pub fn resolve(&self, labels: &BTreeMap<String, String>, agent_label: &str) -> Option<String> {
        if let Some(agent) = labels.get(agent_label) {
            return self.by_id.get(&agent.to_lowercase()).cloned();
        }
        let ns = labels.get("namespace")?;
        let name = labels.get("deployment").or_else(|| labels.get("rollout"))?;
        let key = (ns.clone(), name.clone());
        self.primary
            .get(&key)
            .or_else(|| self.coordinated.get(&key))
            .cloned()
    }
}

/// Alerts Alertmanager reports as firing, as the webhook would have recorded them: only
/// those about a known agent (the others are not rollbackd's).
pub fn active_records(
    alerts: &[crate::signals::alertmanager::ActiveAlert],
    agents: &AgentIndex,
    agent_label: &str,
) -> Vec<AlertRecord> {
    alerts
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let agent = agents.resolve(&a.labels, agent_label)?;
            let alert = WebhookAlert {
                status: "firing".into(),
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: a.starts_at,
                // an active alert's endsAt is Alertmanager's resolve timeout, not an end
                ends_at: None,
                generator_url: None,
                fingerprint: Some(a.fingerprint.clone()),
            };
            to_record(&alert, i, Some(agent)).ok()
        })
        .collect()
}

fn to_record(
    alert: &WebhookAlert,
    i: usize,
    agent: Option<String>,
) -> Result<AlertRecord, ApiError> {
    if alert.status != "firing" && alert.status != "resolved" {
        return Err(ApiError::field(
            format!("alerts[{i}].status"),
            format!(
                "expected \"firing\" or \"resolved\", got {:?}",
                alert.status
            ),
        ));
    }
    let ends_at = match alert.ends_at.as_deref() {
        None | Some("") | Some("0001-01-01T00:00:00Z") => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|e| {
                    ApiError::field(
                        format!("alerts[{i}].endsAt"),
                        format!("{s:?} is not an RFC 3339 time: {e}"),
                    )
                })?
                .with_timezone(&Utc),
        ),
    };
    Ok(AlertRecord {
        fingerprint: alert
            .fingerprint
            .clone()
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| fingerprint_of(&alert.labels)),
        status: alert.status.clone(),
        starts_at: alert.starts_at,
        ends_at,
        agent,
        labels: alert.labels.clone(),
        annotations: alert.annotations.clone(),
    })
}

/// What the webhook recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertsReceived {
    /// Alerts in the notification.
    pub received: usize,
    /// Alerts recorded for the first time, about a known agent.
    pub new: usize,
    /// Redeliveries of alerts already recorded (same fingerprint, status and startsAt).
    pub duplicate: usize,
    /// Alerts about no known agent: recorded without one and counted.
    pub unmatched: usize,
    /// The agents the new alerts are about, in order of first appearance.
    pub agents: Vec<String>,
}

/// The handler.
#[utoipa::path(post, path = "/api/v1/alerts", tag = "alerts",
    summary = "Alertmanager webhook (payload version 4); 2xx only once recorded",
    description = "Alertmanager's `http_config`: a bearer token or basic auth, as `[webhook]` configures. Only the leader records: a standby forwards the notification to it, or answers 503 without recording.",
    security(("webhook_bearer" = []), ("webhook_basic" = [])),
    request_body(content = WebhookPayload, content_type = "application/json"),
    responses(
        (status = 200, description = "every alert recorded", body = AlertsReceived),
        (status = 400, description = "malformed body; `field` names the culprit (e.g. `alerts[0].status`)", body = ErrorBody),
        (status = 401, description = "missing or unreadable credentials", body = ErrorBody),
        (status = 403, description = "wrong credentials, or none configured and `allow_unauthenticated` unset", body = ErrorBody),
        (status = 413, description = "body over the size cap", content(
            (ErrorBody = "application/json"), (String = "text/plain"))),
        (status = 503, description = UNAVAILABLE, body = ErrorBody, headers(
            ("Retry-After" = u32, description = "seconds to wait before retrying"))),
    ))]
pub async fn receive(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<AlertsReceived>, ApiError> {
    let result = receive_inner(&state, &headers, &body).await;
    let code = match &result {
        Ok(_) => "200".to_string(),
        Err(e) => e.status().as_u16().to_string(),
    };
    state
        .metrics
        .inc("rollbackd_webhook_requests_total", &[&code]);
    result
}

async fn receive_inner(
    state: &ApiState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<AlertsReceived>, ApiError> {
    state.auth.webhook(headers)?;
    state.require_leader()?;
    let payload: WebhookPayload = parse_json(body)?;
    if payload.version != "4" {
        return Err(ApiError::field(
            "version",
            format!(
                "unsupported webhook payload version {:?} (expected \"4\")",
                payload.version
            ),
        ));
    }
    let records = payload
        .alerts
        .iter()
        .enumerate()
        .map(|(i, a)| to_record(a, i, state.agents.resolve(&a.labels, &state.agent_label)))
        .collect::<Result<Vec<_>, _>>()?;
    let (records, fresh) = state.alerts.record(records).await?;
    let mut agents: Vec<String> = Vec::new();
    let (mut new, mut duplicate, mut unmatched) = (0, 0, 0);
    for (record, is_new) in records.iter().zip(&fresh) {
        match (is_new, &record.agent) {
            (false, _) => duplicate += 1,
            (true, None) => unmatched += 1,
            (true, Some(agent)) => {
                new += 1;
                if !agents.contains(agent) {
                    agents.push(agent.clone());
                }
            }
        }
    }
    for (result, n) in [
        ("new", new),
        ("duplicate", duplicate),
        ("unmatched", unmatched),
    ] {
        if n > 0 {
            state
                .metrics
                .add("rollbackd_webhook_alerts_total", &[result], n as f64);
        }
    }
    if unmatched > 0 {
        tracing::warn!(
            unmatched,
            "alerts for no known agent recorded with no agent (counted in rollbackd_webhook_alerts_total, result=unmatched)"
        );
    }
    Ok(Json(AlertsReceived {
        received: records.len(),
        new,
        duplicate,
        unmatched,
        agents,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_index_resolves_by_agent_label_then_by_workload_primary_first() {
        let policies: Vec<Arc<Policy>> = rollbackd_core::policy::load_all(&["policies".into()])
            .expect("policies load")
            .into_iter()
            .map(Arc::new)
            .collect();
        let index = AgentIndex::new(&policies);
        let resolve = |pairs: &[(&str, &str)]| index.resolve(&labels(pairs), "agent");
        assert_eq!(resolve(&[("agent", "gl-009")]).as_deref(), Some("GL-009"));
        assert_eq!(resolve(&[("agent", "GL-404")]), None);
        // the agent label wins over workload labels
        assert_eq!(
            resolve(&[
                ("agent", "GL-008"),
                ("namespace", "greenlang"),
                ("deployment", "gl-002-boiler-efficiency")
            ])
            .as_deref(),
            Some("GL-008")
        );
        // GL-001 coordinates GL-002's Deployment; GL-002 watches it: the primary wins
        assert_eq!(
            resolve(&[
                ("namespace", "greenlang"),
                ("deployment", "gl-002-boiler-efficiency")
            ])
            .as_deref(),
            Some("GL-002")
        );
        // a workload only GL-001 coordinates belongs to GL-001
        assert_eq!(
            resolve(&[
                ("namespace", "greenlang"),
                ("deployment", "gl-001-process-heat-orchestrator-green")
            ])
            .as_deref(),
            Some("GL-001")
        );
        assert_eq!(resolve(&[("namespace", "greenlang")]), None);
    }
}
