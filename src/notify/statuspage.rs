//! Atlassian Statuspage: one incident per rollbackd incident. The first message creates
//! it (`POST /pages/{page}/incidents`, answered 201 with its `id`, kept as the thread);
//! later ones `PATCH /pages/{page}/incidents/{id}`. Over about 1 request/s per key it
//! answers 420 or 429: transient, waiting `Retry-After` or at least one second.
//!
//! Each create and update carries `metadata.rollbackd` (the rollbackd incident id and the
//! outbox row id; never shown on the page). A delivery in doubt (its process died, or
//! its answer was lost) is looked up before it is sent again (`StatuspageApi::find`): a
//! create by the incident listing, an update by the incident's last recorded row.
//!
//! The body is public: the rollback path renders it from the policy's
//! `[notify.templates.statuspage]` wording (no Slack mentions, no mrkdwn, no row or
//! incident ids), and it is never empty.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::AUTHORIZATION;
use serde_json::{Map, Value, json};

use super::error::NotifyError;
use super::http;
use super::message::{Message, ThreadRef};
use super::pacer::Pacer;
use rollbackd_core::policy::Stage;

const TARGET: &str = "statuspage";

/// The least wait after a 420/429 without `Retry-After`.
const RATE_LIMIT_FLOOR: Duration = Duration::from_secs(1);

/// The Statuspage incident status for a stage.
pub fn incident_status(stage: Stage) -> &'static str {
    match stage {
        Stage::Initiated
        | Stage::InProgress
        | Stage::Failed
        | Stage::Stopped
        | Stage::Continued => "identified",
        Stage::Complete | Stage::Superseded => "monitoring",
        Stage::Resolved => "resolved",
        Stage::AwaitingApproval
        | Stage::Blocked
        | Stage::Inconclusive
        | Stage::Notice
        | Stage::Preexisting
        | Stage::Escalated => "investigating",
    }
}

/// Whether a runbook severity means the service is down (P0, Severity 1, Immediate).
fn is_outage(severity: Option<&str>) -> bool {
    severity.is_some_and(|s| {
        let s = s.trim();
        s.eq_ignore_ascii_case("P0")
            || s.eq_ignore_ascii_case("Severity 1")
            || s.eq_ignore_ascii_case("Sev1")
            || s.eq_ignore_ascii_case("Immediate")
    })
}

/// The component status a stage sets, if it sets one: the severity's impact when an
/// incident is announced, `operational` when resolved, nothing otherwise (a no-data
/// incident does not claim an outage).
pub fn component_status(stage: Stage, severity: Option<&str>) -> Option<&'static str> {
    let impact = if is_outage(severity) {
        "major_outage"
    } else {
        "degraded_performance"
    };
    match stage {
        Stage::Initiated | Stage::AwaitingApproval | Stage::Blocked => Some(impact),
        Stage::Resolved => Some("operational"),
        Stage::InProgress
        | Stage::Complete
        | Stage::Failed
        | Stage::Inconclusive
        | Stage::Notice
        | Stage::Superseded
        | Stage::Stopped
        | Stage::Preexisting
        | Stage::Escalated
        | Stage::Continued => None,
    }
}

/// The incident title, e.g. `GL-002 Service Issues - Rolling Back`.
pub fn incident_name(message: &Message) -> String {
    let what = match incident_status(message.stage) {
        "investigating" => "Investigating",
        _ => "Rolling Back",
    };
    format!("{} Service Issues - {what}", message.agent_id)
}

/// The incident's body text: the message's (rendered from the policy's public template by
/// the rollback path), never empty.
pub fn body_text(message: &Message) -> String {
    if message.text.trim().is_empty() {
        format!(
            "We are investigating an issue with {} {}.",
            message.agent_id, message.agent_name
        )
    } else {
        message.text.clone()
    }
}

/// The `{"incident": {…}}` body; `create` adds the name.
pub fn incident_body(message: &Message, component_id: &str, create: bool) -> Value {
    let mut incident = Map::new();
    if create {
        incident.insert("name".into(), incident_name(message).into());
    }
    incident.insert("status".into(), incident_status(message.stage).into());
    incident.insert("body".into(), body_text(message).into());
    if let Some(status) = component_status(message.stage, message.severity.as_deref()) {
        incident.insert("components".into(), json!({ component_id: status }));
        incident.insert("component_ids".into(), json!([component_id]));
    }
    json!({ "incident": incident })
}

/// Marks a create or update body with the rollbackd incident and outbox row it delivers
/// (`incident.metadata.rollbackd`), so that a delivery in doubt can be found again.
pub fn with_metadata(mut body: Value, incident_id: &str, outbox_id: i64) -> Value {
    body["incident"]["metadata"] = json!({
        "rollbackd": {"incident_id": incident_id, "outbox_id": outbox_id.to_string()}
    });
    body
}

/// The outbox row id recorded in a Statuspage incident's metadata by rollbackd, if any.
fn recorded_row(incident: &Value) -> Option<i64> {
    incident
        .pointer("/metadata/rollbackd/outbox_id")?
        .as_str()?
        .parse()
        .ok()
}

/// The Statuspage incident an earlier message of the incident opened.
fn existing_incident(thread: Option<&ThreadRef>) -> Option<&str> {
    thread?.data.get("incident_id")?.as_str()
}

/// An answer's JSON.
fn parse(body: &str) -> Result<Value, NotifyError> {
    serde_json::from_str(body).map_err(|_| NotifyError::BadResponse {
        target: TARGET,
        detail: format!("not JSON: {}", http::truncate(body)),
    })
}

/// A Statuspage API client.
#[derive(Clone)]
pub(crate) struct StatuspageApi {
    client: reqwest::Client,
    base: String,
    key: Option<String>,
    pacer: Arc<Pacer>,
}

impl StatuspageApi {
    /// A client for `base` (e.g. `https://api.statuspage.io/v1`) sending at most one
    /// request per `min_interval`.
    pub(crate) fn new(
        client: reqwest::Client,
        base: &str,
        key: Option<String>,
        min_interval: Duration,
    ) -> Self {
        StatuspageApi {
            client,
            base: base.to_string(),
            key,
            pacer: Arc::new(Pacer::new(min_interval)),
        }
    }

    /// Creates the incident (no thread yet) or updates it. Returns the new thread after a
    /// create.
    pub(crate) async fn send(
        &self,
        page_id: &str,
        component_id: &str,
        (key, outbox_id): (String, i64),
        message: &Message,
        thread: Option<&ThreadRef>,
    ) -> Result<Option<ThreadRef>, NotifyError> {
        let api_key = self.api_key()?;
        let (request, creating) = match existing_incident(thread) {
            Some(id) => (
                self.client
                    .patch(self.url(&["pages", page_id, "incidents", id])?)
                    .json(&with_metadata(
                        incident_body(message, component_id, false),
                        &message.incident_id,
                        outbox_id,
                    )),
                false,
            ),
            None => (
                self.client
                    .post(self.url(&["pages", page_id, "incidents"])?)
                    .json(&with_metadata(
                        incident_body(message, component_id, true),
                        &message.incident_id,
                        outbox_id,
                    )),
                true,
            ),
        };
        let request = request.header(AUTHORIZATION, format!("OAuth {api_key}"));
        let body = self.exchange(request).await?;
        if !creating {
            return Ok(None);
        }
        let id = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| NotifyError::BadResponse {
                target: TARGET,
                detail: format!("create answer lacks an id: {}", http::truncate(&body)),
            })?;
        Ok(Some(ThreadRef {
            key,
            data: json!({ "incident_id": id }),
        }))
    }

    /// Whether Statuspage already has outbox row `outbox_id` of `message`'s incident, from
    /// an attempt whose outcome is unknown: `Some(thread)` when it does (the thread to save
    /// when that attempt created the incident), `None` when it must be sent. A create is
    /// found among the page's incidents by `metadata.rollbackd.incident_id`; an update by
    /// the incident's recorded row being this one or a later one.
    pub(crate) async fn find(
        &self,
        page_id: &str,
        (key, outbox_id): (String, i64),
        message: &Message,
        thread: Option<&ThreadRef>,
    ) -> Result<Option<Option<ThreadRef>>, NotifyError> {
        let api_key = self.api_key()?;
        match existing_incident(thread) {
            Some(id) => {
                let request = self
                    .client
                    .get(self.url(&["pages", page_id, "incidents", id])?)
                    .header(AUTHORIZATION, format!("OAuth {api_key}"));
                let incident: Value = parse(&self.exchange(request).await?)?;
                Ok(recorded_row(&incident)
                    .is_some_and(|row| row >= outbox_id)
                    .then_some(None))
            }
            None => {
                let mut url = self.url(&["pages", page_id, "incidents"])?;
                url.query_pairs_mut().append_pair("limit", "100");
                let request = self
                    .client
                    .get(url)
                    .header(AUTHORIZATION, format!("OAuth {api_key}"));
                let incidents: Value = parse(&self.exchange(request).await?)?;
                let found = incidents.as_array().into_iter().flatten().find(|i| {
                    i.pointer("/metadata/rollbackd/incident_id")
                        .and_then(Value::as_str)
                        == Some(message.incident_id.as_str())
                });
                Ok(found
                    .and_then(|i| i.get("id").and_then(Value::as_str))
                    .map(|id| {
                        Some(ThreadRef {
                            key,
                            data: json!({ "incident_id": id }),
                        })
                    }))
            }
        }
    }

    fn api_key(&self) -> Result<&str, NotifyError> {
        self.key.as_deref().ok_or(NotifyError::NotConfigured {
            target: TARGET,
            detail: "no Statuspage API key".into(),
        })
    }

    /// Sends one paced request; a 2xx answer's body, or the error its status means
    /// (420/429 rate limits wait `Retry-After`, at least a second).
    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<String, NotifyError> {
        self.pacer.wait_turn().await;
        let (status, headers, body) = http::send(TARGET, request).await?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(match http::status_error(TARGET, status, &headers, &body) {
            NotifyError::RateLimited {
                target,
                status,
                retry_after,
            } => NotifyError::RateLimited {
                target,
                status,
                retry_after: Some(retry_after.unwrap_or(RATE_LIMIT_FLOOR)),
            },
            other => other,
        })
    }

    /// `base/segments…` with each segment escaped.
    fn url(&self, segments: &[&str]) -> Result<Url, NotifyError> {
        let mut url = Url::parse(&self.base)
            .map_err(|e| NotifyError::Config(format!("statuspage_api_url: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| NotifyError::Config("statuspage_api_url cannot be a base".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn message(stage: Stage, severity: Option<&str>) -> Message {
        Message {
            incident_id: "inc-1".into(),
            agent_id: "GL-002".into(),
            agent_name: "BoilerEfficiencyOptimizer".into(),
            stage,
            severity: severity.map(str::to_string),
            text: "text".into(),
            fields: BTreeMap::new(),
        }
    }

    #[test]
    fn maps_stages_to_incident_status() {
        let expected = [
            (Stage::Initiated, "identified"),
            (Stage::InProgress, "identified"),
            (Stage::Failed, "identified"),
            (Stage::Complete, "monitoring"),
            (Stage::Resolved, "resolved"),
            (Stage::AwaitingApproval, "investigating"),
            (Stage::Blocked, "investigating"),
            (Stage::Inconclusive, "investigating"),
        ];
        for (stage, status) in expected {
            assert_eq!(incident_status(stage), status, "{stage:?}");
        }
    }

    #[test]
    fn maps_severity_to_component_status() {
        for sev in ["P0", "Severity 1", "Immediate", "immediate"] {
            assert_eq!(
                component_status(Stage::Initiated, Some(sev)),
                Some("major_outage")
            );
        }
        for sev in [Some("P1"), Some("Severity 2"), None] {
            assert_eq!(
                component_status(Stage::Initiated, sev),
                Some("degraded_performance")
            );
        }
        assert_eq!(
            component_status(Stage::Resolved, Some("P0")),
            Some("operational")
        );
        assert_eq!(component_status(Stage::Complete, Some("P0")), None);
        assert_eq!(component_status(Stage::Inconclusive, None), None);
    }

    #[test]
    fn builds_create_and_update_bodies() {
        let create = incident_body(&message(Stage::Initiated, Some("P0")), "COMP", true);
        assert_eq!(
            create,
            json!({"incident": {
                "name": "GL-002 Service Issues - Rolling Back",
                "status": "identified",
                "body": "text",
                "components": {"COMP": "major_outage"},
                "component_ids": ["COMP"],
            }})
        );
        let update = incident_body(&message(Stage::Complete, Some("P0")), "COMP", false);
        assert_eq!(
            update,
            json!({"incident": {"status": "monitoring", "body": "text"}})
        );
        let blocked = incident_body(&message(Stage::Blocked, Some("P1")), "COMP", true);
        assert_eq!(
            blocked["incident"]["name"],
            "GL-002 Service Issues - Investigating"
        );
        assert_eq!(blocked["incident"]["status"], "investigating");
    }

    #[test]
    fn the_body_is_never_empty() {
        let mut m = message(Stage::Failed, Some("P0"));
        m.text = " \n".into();
        let body = incident_body(&m, "COMP", false);
        assert_eq!(
            body["incident"]["body"],
            "We are investigating an issue with GL-002 BoilerEfficiencyOptimizer."
        );
    }

    #[test]
    fn escapes_path_segments() {
        let api = StatuspageApi::new(reqwest::Client::new(), "http://h/v1/", None, Duration::ZERO);
        let url = api.url(&["pages", "a/b", "incidents"]).unwrap();
        assert_eq!(url.as_str(), "http://h/v1/pages/a%2Fb/incidents");
    }
}
