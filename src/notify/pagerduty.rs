//! PagerDuty Events API v2: one alert per rollbackd incident, keyed by its `dedup_key`
//! (`rollbackd/<incident id>`). A stage that needs a human triggers it, a human taking over
//! acknowledges it, the incident moving on resolves it ([`event_action`]).
//!
//! `POST {pagerduty_api_url}` (default `https://events.pagerduty.com/v2/enqueue`) is
//! answered 202 when the event is accepted; 400 means the event is invalid (permanent), 429
//! and 5xx are transient. The dedup key makes a repeated event idempotent on PagerDuty's
//! side, so a retry after a lost answer adds nothing. The thread remembers the alert's last
//! action, so an acknowledge or resolve is only sent for an alert this incident triggered.
//! The routing key is a secret: outbox rows name it, only the notifiers know it, and it is
//! cut out of every error.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::error::NotifyError;
use super::http;
pub use super::message::EventAction;
use super::message::{Message, ThreadRef, stage_name};
use rollbackd_core::incident::State;
use rollbackd_core::policy::{PagerDutySeverity, Stage};

const TARGET: &str = "pagerduty";

/// PagerDuty's limit on `payload.summary`, in characters.
pub const SUMMARY_LIMIT: usize = 1024;

/// The `client` of every event.
pub const CLIENT: &str = "rollbackd";

/// The event a stage of an incident now in `state` sends, if any:
///
/// | stage | event |
/// | --- | --- |
/// | `awaiting_approval`, `blocked` (a guard, a rate limit), `escalated` (no data past the row's deadline), `failed` | trigger |
/// | `initiated` (after an approval: a human acted), `stopped` by a pause (a human has it) | acknowledge |
/// | `complete` (rolled back and verified), `resolved`, `superseded`, `stopped` by a cancel | resolve |
/// | `in_progress`, `continued`, `inconclusive`, `notice`, `preexisting` | nothing |
///
/// An acknowledge or resolve goes out only when this incident triggered an alert (an
/// unattended rollback that went well pages nobody).
pub fn event_action(stage: Stage, state: State) -> Option<EventAction> {
    match stage {
        Stage::AwaitingApproval | Stage::Blocked | Stage::Escalated | Stage::Failed => {
            Some(EventAction::Trigger)
        }
        Stage::Stopped if state == State::Cancelled => Some(EventAction::Resolve),
        Stage::Initiated | Stage::Stopped => Some(EventAction::Acknowledge),
        Stage::Complete | Stage::Resolved | Stage::Superseded => Some(EventAction::Resolve),
        Stage::InProgress
        | Stage::Continued
        | Stage::Inconclusive
        | Stage::Notice
        | Stage::Preexisting => None,
    }
}

/// The alert's state after an event (kept in the thread).
fn state_after(action: EventAction) -> &'static str {
    match action {
        EventAction::Trigger => "triggered",
        EventAction::Acknowledge => "acknowledged",
        EventAction::Resolve => "resolved",
    }
}

/// The alert's key: one per rollbackd incident.
pub fn dedup_key(incident_id: &str) -> String {
    format!("rollbackd/{incident_id}")
}

/// What needs a human, per triggering stage.
fn headline(stage: Stage) -> &'static str {
    match stage {
        Stage::AwaitingApproval => "rollback awaits approval",
        Stage::Blocked => "rollback blocked: a human must decide",
        Stage::Escalated => "no data past the runbook's deadline: a human must decide",
        Stage::Failed => "rollback failed: a human must take over",
        _ => "rollback needs attention",
    }
}

/// `text` cut to at most `limit` characters (the last one an ellipsis when cut).
fn cut(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit.saturating_sub(1)) {
        Some((end, _)) if text.chars().count() > limit => format!("{}…", &text[..end]),
        _ => text.to_string(),
    }
}

/// One line for the alert: agent, what is needed, runbook severity and row, the reason
/// (at most [`SUMMARY_LIMIT`] characters).
pub fn summary(message: &Message) -> String {
    let field = |k: &str| message.fields.get(k).map(String::as_str);
    let mut out = format!(
        "{} {}: {}",
        message.agent_id,
        message.agent_name,
        headline(message.stage)
    );
    if message.stage == Stage::AwaitingApproval
        && let Some(approver) = field("approver")
    {
        out.push_str(&format!(" from the {approver}"));
    }
    let severity = message.severity.as_deref().unwrap_or("n/a");
    match field("row") {
        Some(row) => out.push_str(&format!(" ({severity}, row {row})")),
        None => out.push_str(&format!(" ({severity})")),
    }
    if let Some(reason) = field("reason").filter(|r| !r.is_empty()) {
        out.push_str(": ");
        out.push_str(reason);
    }
    // one line: PagerDuty shows the summary as a title
    let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
    cut(&flat, SUMMARY_LIMIT)
}

/// The event body for `message` (the routing key is filled in by the caller).
/// `rollbackd_url`, when known, links the alert to the incident in rollbackd's API.
pub fn event_body(
    routing_key: &str,
    action: EventAction,
    message: &Message,
    severity: PagerDutySeverity,
    rollbackd_url: Option<&str>,
) -> Value {
    let mut event = Map::new();
    event.insert("routing_key".into(), routing_key.into());
    event.insert("event_action".into(), action.as_str().into());
    event.insert("dedup_key".into(), dedup_key(&message.incident_id).into());
    if action != EventAction::Trigger {
        return Value::Object(event);
    }
    let field = |k: &str| message.fields.get(k).cloned();
    let source = match (field("namespace"), field("workload")) {
        (Some(ns), Some(w)) => format!("{ns}/{w}"),
        _ => message.agent_id.clone(),
    };
    let mut details: BTreeMap<String, String> = message
        .fields
        .iter()
        .filter(|(k, _)| k.as_str() != "mention")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    details.insert("stage".into(), stage_name(message.stage).into());
    details.insert("message".into(), message.text.clone());
    if let Some(s) = &message.severity {
        details.insert("runbook_severity".into(), s.clone());
    }
    let mut payload = json!({
        "summary": summary(message),
        "source": source,
        "severity": severity.as_str(),
        "component": format!("{} {}", message.agent_id, message.agent_name),
        "class": stage_name(message.stage),
        "custom_details": details,
    });
    if let (Some(group), Some(p)) = (field("namespace"), payload.as_object_mut()) {
        p.insert("group".into(), group.into());
    }
    event.insert("payload".into(), payload);
    event.insert("client".into(), CLIENT.into());
    let mut links = Vec::new();
    // tell-only notices have no incident in rollbackd's API
    if let Some(base) = rollbackd_url.filter(|_| !message.incident_id.starts_with("notice-")) {
        let href = format!(
            "{}/api/v1/rollbacks/{}",
            base.trim_end_matches('/'),
            message.incident_id
        );
        links.push(
            json!({"href": href, "text": format!("rollbackd incident {}", message.incident_id)}),
        );
    }
    if let Some(base) = rollbackd_url {
        event.insert("client_url".into(), base.trim_end_matches('/').into());
    }
    if let Some(status) = field("status_url") {
        links.push(json!({"href": status, "text": "Status page"}));
    }
    if !links.is_empty() {
        event.insert("links".into(), links.into());
    }
    Value::Object(event)
}

/// The alert state the thread remembers (`triggered`, `acknowledged`, `resolved`).
fn remembered(thread: Option<&ThreadRef>) -> Option<&str> {
    thread?.data.get("state")?.as_str()
}

/// A PagerDuty Events API v2 client.
#[derive(Clone)]
pub(crate) struct PagerDutyApi {
    client: reqwest::Client,
    url: String,
    keys: BTreeMap<String, String>,
    rollbackd_url: Option<String>,
}

impl PagerDutyApi {
    /// A client posting to `url` with the routing keys by service name.
    pub(crate) fn new(
        client: reqwest::Client,
        url: &str,
        keys: BTreeMap<String, String>,
        rollbackd_url: Option<String>,
    ) -> Self {
        PagerDutyApi {
            client,
            url: url.to_string(),
            keys,
            rollbackd_url,
        }
    }

    /// Sends `action` to `service`'s routing key. Returns the alert's new state as the
    /// thread; `None` when nothing was sent (an acknowledge or resolve for an alert this
    /// incident never triggered, or already resolved).
    pub(crate) async fn send(
        &self,
        service: &str,
        event: (EventAction, PagerDutySeverity),
        key: String,
        message: &Message,
        thread: Option<&ThreadRef>,
    ) -> Result<Option<ThreadRef>, NotifyError> {
        let (action, severity) = event;
        let state = remembered(thread);
        let open = matches!(state, Some("triggered" | "acknowledged"));
        let pointless = match action {
            EventAction::Trigger => false,
            EventAction::Acknowledge => !open || state == Some("acknowledged"),
            EventAction::Resolve => !open,
        };
        if pointless {
            tracing::debug!(
                incident = %message.incident_id,
                action = action.as_str(),
                "pagerduty: no open alert of this incident to {}",
                action.as_str()
            );
            return Ok(None);
        }
        let routing_key = self
            .keys
            .get(service)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| NotifyError::NotConfigured {
                target: TARGET,
                detail: format!("no routing key for PagerDuty service {service:?}"),
            })?;
        let body = event_body(
            routing_key,
            action,
            message,
            severity,
            self.rollbackd_url.as_deref(),
        );
        let request = self.client.post(&self.url).json(&body);
        let (status, headers, answer) = http::send(TARGET, request).await?;
        if !(200..300).contains(&status) {
            // the answer may quote the event: never let the key into an error or a log
            let answer = answer.replace(routing_key.as_str(), "<routing key>");
            return Err(http::status_error(TARGET, status, &headers, &answer));
        }
        Ok(Some(ThreadRef {
            key,
            data: json!({
                "dedup_key": dedup_key(&message.incident_id),
                "state": state_after(action),
            }),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(stage: Stage) -> Message {
        Message {
            incident_id: "inc-1".into(),
            agent_id: "GL-001".into(),
            agent_name: "ProcessHeatOrchestrator".into(),
            stage,
            severity: Some("P1".into()),
            text: "@here ROLLBACK BLOCKED".into(),
            fields: BTreeMap::from([
                ("namespace".into(), "greenlang".into()),
                ("workload".into(), "gl-001".into()),
                ("row".into(), "heat-optimization-errors".into()),
                ("reason".into(), "errors\nat 12%".into()),
                ("approver".into(), "on-call engineer".into()),
                ("mention".into(), "@here ".into()),
                ("status_url".into(), "https://status.example".into()),
            ]),
        }
    }

    #[test]
    fn stages_map_to_actions() {
        use EventAction::*;
        assert_eq!(
            event_action(Stage::Stopped, State::Cancelled),
            Some(Resolve),
            "a cancel ends the need"
        );
        assert_eq!(
            event_action(Stage::Stopped, State::RollingBack),
            Some(Acknowledge),
            "a pause: a human has it"
        );
        for (stage, action) in [
            (Stage::AwaitingApproval, Some(Trigger)),
            (Stage::Blocked, Some(Trigger)),
            (Stage::Escalated, Some(Trigger)),
            (Stage::Failed, Some(Trigger)),
            (Stage::Initiated, Some(Acknowledge)),
            (Stage::Stopped, Some(Acknowledge)),
            (Stage::Complete, Some(Resolve)),
            (Stage::Resolved, Some(Resolve)),
            (Stage::Superseded, Some(Resolve)),
            (Stage::InProgress, None),
            (Stage::Inconclusive, None),
            (Stage::Notice, None),
        ] {
            assert_eq!(
                event_action(stage, State::AwaitingApproval),
                action,
                "{stage:?}"
            );
        }
    }

    #[test]
    fn trigger_carries_the_payload_and_links() {
        let body = event_body(
            "KEY",
            EventAction::Trigger,
            &message(Stage::Blocked),
            PagerDutySeverity::Error,
            Some("https://rollbackd.example/"),
        );
        assert_eq!(body["routing_key"], "KEY");
        assert_eq!(body["event_action"], "trigger");
        assert_eq!(body["dedup_key"], "rollbackd/inc-1");
        assert_eq!(body["client"], "rollbackd");
        assert_eq!(body["client_url"], "https://rollbackd.example");
        let p = &body["payload"];
        assert_eq!(
            p["summary"],
            "GL-001 ProcessHeatOrchestrator: rollback blocked: a human must decide (P1, row heat-optimization-errors): errors at 12%"
        );
        assert_eq!(p["source"], "greenlang/gl-001");
        assert_eq!(p["severity"], "error");
        assert_eq!(p["component"], "GL-001 ProcessHeatOrchestrator");
        assert_eq!(p["group"], "greenlang");
        assert_eq!(p["class"], "blocked");
        assert_eq!(p["custom_details"]["row"], "heat-optimization-errors");
        assert_eq!(p["custom_details"]["runbook_severity"], "P1");
        assert!(p["custom_details"].get("mention").is_none());
        assert_eq!(
            body["links"][0]["href"],
            "https://rollbackd.example/api/v1/rollbacks/inc-1"
        );
        assert_eq!(body["links"][1]["href"], "https://status.example");
        let approval = event_body(
            "KEY",
            EventAction::Trigger,
            &message(Stage::AwaitingApproval),
            PagerDutySeverity::Error,
            None,
        );
        assert!(
            approval["payload"]["summary"]
                .as_str()
                .unwrap()
                .contains("rollback awaits approval from the on-call engineer (P1")
        );
        assert!(approval.get("client_url").is_none());
    }

    #[test]
    fn acknowledge_and_resolve_carry_only_the_key() {
        let body = event_body(
            "KEY",
            EventAction::Resolve,
            &message(Stage::Complete),
            PagerDutySeverity::Error,
            Some("https://x"),
        );
        assert_eq!(
            body,
            json!({"routing_key": "KEY", "event_action": "resolve", "dedup_key": "rollbackd/inc-1"})
        );
    }

    #[test]
    fn summary_is_at_most_1024_characters() {
        let mut m = message(Stage::Failed);
        m.fields.insert("reason".into(), "é".repeat(5000));
        let s = summary(&m);
        assert_eq!(s.chars().count(), SUMMARY_LIMIT);
        assert!(s.ends_with('…'));
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "ab…");
    }
}
