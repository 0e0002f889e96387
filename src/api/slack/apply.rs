//! What a press does, after Slack has its acknowledgement: check the presser against the
//! policy, act through the API's own operations, then tell Slack (the root message updated
//! in place, or an ephemeral answer to the presser alone).

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Value, json};

use super::SlackInteractions;
use super::press::Press;
use crate::api::agents::pause_as;
use crate::api::rollbacks::{approve_as, change_as};
use crate::api::{ApiError, ApiState};
use crate::notify::slack_buttons::{ACTIONS_BLOCK_ID, SlackButton, message_blocks};
use crate::store::{AuditEntry, Incident};
use rollbackd_core::incident::Event;

/// The audited actions a press may be "already" answered with.
const DECISIONS: [(&str, &str); 3] = [
    ("rollback.approve", "approved"),
    ("rollback.reject", "rejected"),
    ("rollback.cancel", "cancelled"),
];

/// Applies `press` and answers it in Slack; every outcome is logged and counted.
pub(super) async fn apply(state: ApiState, slack: Arc<SlackInteractions>, press: Press) {
    let outcome = match act(&state, &slack, &press).await {
        Ok(line) => {
            update_root(&slack, &press, &line).await;
            "applied"
        }
        Err(text) => {
            tell(&slack, &press, &text).await;
            "refused"
        }
    };
    state
        .metrics
        .inc("rollbackd_slack_interactions_total", &[outcome]);
}

/// The line the root message gets (`Ok`), or what the presser alone is told (`Err`).
async fn act(state: &ApiState, slack: &SlackInteractions, press: &Press) -> Result<String, String> {
    let id = &press.incident;
    let incident = state
        .store
        .incident(id)
        .await
        .map_err(|e| format!("rollbackd could not read incident {id} ({e}): nothing was changed."))?
        .ok_or_else(|| format!("rollbackd knows no incident {id}: nothing was changed."))?;
    let policy = state.policy(&incident.agent).cloned().ok_or_else(|| {
        format!(
            "rollbackd has no policy for {}: nothing was changed.",
            incident.agent
        )
    })?;
    let agent_wide = matches!(press.button, SlackButton::Pause | SlackButton::Resume);
    let (approvers, scope) = if agent_wide {
        (policy.slack_approvers(None), incident.agent.clone())
    } else {
        (
            policy.slack_approvers(incident.row.as_deref()),
            scope_of(&incident),
        )
    };
    let refusal = match slack.members.approves(approvers, &press.user).await {
        Ok(true) => None,
        Ok(false) => Some((
            format!("not an approver for {scope}"),
            format!("You are not an approver for {scope}: nothing was changed."),
        )),
        Err(why) => Some((
            format!("approvers not checked: {why}"),
            format!(
                "rollbackd could not check that you are an approver for {scope} ({why}): nothing was changed."
            ),
        )),
    };
    if let Some((reason, text)) = refusal {
        audit_refusal(state, press, &incident.id, &reason).await;
        return Err(text);
    }
    let actor = press.actor();
    let done = match press.button {
        SlackButton::Approve => approve_as(state, &actor, id, "approved in Slack")
            .await
            .map(drop),
        SlackButton::Reject => change_as(
            state,
            &actor,
            id,
            "rejected in Slack",
            Event::Cancel,
            "rollback.reject",
        )
        .await
        .map(drop),
        SlackButton::Cancel => change_as(
            state,
            &actor,
            id,
            "cancelled in Slack",
            Event::Cancel,
            "rollback.cancel",
        )
        .await
        .map(drop),
        SlackButton::Pause => pause_as(state, &actor, &incident.agent, "paused in Slack", true)
            .await
            .map(drop),
        SlackButton::Resume => pause_as(state, &actor, &incident.agent, "resumed in Slack", false)
            .await
            .map(drop),
    };
    match done {
        Ok(_) => Ok(line(press, &incident.agent)),
        // a decision that came too late hears who decided first
        Err(ApiError::Conflict(why))
            if matches!(press.button, SlackButton::Approve | SlackButton::Reject) =>
        {
            Err(already(state, id)
                .await
                .unwrap_or(format!("{why}: nothing was changed.")))
        }
        Err(e) => Err(format!("{e}: nothing was changed.")),
    }
}

/// `GL-008 Severity 2`: how a refusal names what the presser may not decide.
fn scope_of(incident: &Incident) -> String {
    match &incident.severity {
        Some(severity) => format!("{} {severity}", incident.agent),
        None => incident.agent.clone(),
    }
}

/// `Rollback approved by <@U123> at 03:12 UTC`.
fn line(press: &Press, agent: &str) -> String {
    let what = match press.button {
        SlackButton::Approve => "Rollback approved".to_string(),
        SlackButton::Reject => "Rollback rejected".to_string(),
        SlackButton::Cancel => "Rollback cancelled".to_string(),
        SlackButton::Pause => format!("Automation for {agent} paused"),
        SlackButton::Resume => format!("Automation for {agent} resumed"),
    };
    format!(
        "{what} by <@{}> at {}",
        press.user,
        Utc::now().format("%H:%M UTC")
    )
}

/// Who decided the incident already, when it was: a second press is told instead of
/// getting a bare conflict.
async fn already(state: &ApiState, id: &str) -> Option<String> {
    let log = state.store.audit_log(Some(id), 1000).await.ok()?;
    let (entry, verb) = log.iter().rev().find_map(|e| {
        DECISIONS
            .iter()
            .find(|(action, _)| *action == e.action)
            .map(|(_, verb)| (e, verb))
    })?;
    Some(format!(
        "Incident {id} was already {verb} by {} at {}: nothing was changed.",
        entry.actor,
        entry.at.format("%H:%M UTC")
    ))
}

async fn audit_refusal(state: &ApiState, press: &Press, id: &str, reason: &str) {
    let entry = AuditEntry {
        at: Utc::now(),
        actor: press.actor(),
        action: "slack.refused".into(),
        target: id.to_string(),
        reason: reason.to_string(),
        detail: json!({"button": press.button.action_id(), "user": press.user}),
    };
    if let Err(e) = state.store.audit(&entry).await {
        tracing::warn!(error = %e, "slack: refusal not audited");
    }
}

/// The root message's blocks after a press: as Slack showed them, minus the buttons, plus
/// what happened (and a Resume button after a pause).
fn updated_blocks(press: &Press, line: &str) -> Value {
    let mut blocks: Vec<Value> = press
        .blocks
        .as_ref()
        .and_then(Value::as_array)
        .map(|b| {
            b.iter()
                .filter(|b| b["block_id"] != ACTIONS_BLOCK_ID && b["type"] != "actions")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]}));
    if press.button == SlackButton::Pause
        && let Some(resume) =
            message_blocks("", &press.incident, &press.agent, &[SlackButton::Resume])
                .as_array()
                .and_then(|b| b.get(1).cloned())
    {
        blocks.push(resume);
    }
    Value::Array(blocks)
}

/// `chat.update` of the pressed message (its channel and `ts`), else a replacement through
/// the `response_url`.
async fn update_root(slack: &SlackInteractions, press: &Press, line: &str) {
    let blocks = updated_blocks(press, line);
    let sent = match (&press.channel, &press.message_ts) {
        (Some(channel), Some(ts)) => slack
            .api
            .call(
                "chat.update",
                &json!({"channel": channel, "ts": ts, "text": line, "blocks": blocks}),
            )
            .await
            .map(|_| ()),
        _ => match trusted_response_url(slack, press) {
            Some(url) => {
                let body = json!({"replace_original": true, "text": line, "blocks": blocks});
                slack.api.respond(url, &body).await
            }
            None => return,
        },
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, incident = %press.incident, "slack: message not updated after a press");
    }
}

/// An ephemeral answer to the presser alone: through the `response_url`, else
/// `chat.postEphemeral`.
async fn tell(slack: &SlackInteractions, press: &Press, text: &str) {
    let sent = match (trusted_response_url(slack, press), &press.channel) {
        (Some(url), _) => {
            let body =
                json!({"response_type": "ephemeral", "replace_original": false, "text": text});
            slack.api.respond(url, &body).await
        }
        (None, Some(channel)) => slack
            .api
            .call(
                "chat.postEphemeral",
                &json!({"channel": channel, "user": press.user, "text": text}),
            )
            .await
            .map(|_| ()),
        (None, None) => return,
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, incident = %press.incident, "slack: ephemeral answer not sent");
    }
}

/// The press's `response_url` when it points at Slack (`https://hooks.slack.com/`) or at
/// the configured Slack API's origin (a stand-in): never anywhere else.
fn trusted_response_url<'p>(slack: &SlackInteractions, press: &'p Press) -> Option<&'p str> {
    let url = press.response_url.as_deref()?;
    let origin = origin(slack.api.base());
    (url.starts_with("https://hooks.slack.com/")
        || (!origin.is_empty() && url.starts_with(&format!("{origin}/"))))
    .then_some(url)
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let Some(after) = url.find("://").map(|i| i + 3) else {
        return "";
    };
    match url[after..].find('/') {
        Some(slash) => &url[..after + slash],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_is_scheme_host_and_port() {
        assert_eq!(origin("https://slack.com/api"), "https://slack.com");
        assert_eq!(origin("http://127.0.0.1:4000/api"), "http://127.0.0.1:4000");
        assert_eq!(origin("http://127.0.0.1:4000"), "http://127.0.0.1:4000");
        assert_eq!(origin("not a url"), "");
    }
}
