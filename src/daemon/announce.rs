//! Turns an incident stage into outbox rows: the policy's template rendered with the
//! incident's values, for every target the policy and the configuration enable.

use std::collections::BTreeMap;

use chrono::TimeDelta;

use crate::notify::{Message, Target};
use crate::policy::duration::format_duration;
use crate::policy::template::render;
use crate::policy::{Policy, Stage};
use crate::store::{Incident, NewOutbox};

/// Which notifier kinds are configured daemon-wide.
#[derive(Debug, Clone, Default)]
pub struct Channels {
    /// A Slack bot token is set: use the Web API with the policy's channel.
    pub slack_api: bool,
    /// Else an incoming webhook URL.
    pub slack_webhook_url: Option<String>,
    /// A Statuspage key is set: use the policy's page and component.
    pub statuspage: bool,
    /// A generic JSON webhook.
    pub webhook_url: Option<String>,
}

/// Severities that earn the policy's `mention`.
fn severe(severity: Option<&str>) -> bool {
    matches!(
        severity,
        Some("P0" | "Severity 1" | "Immediate" | "Emergency" | "manual")
    )
}

/// The image tag, as runbooks call versions (`ghcr.io/x/gl-002:v1.2.5` → `v1.2.5`).
pub fn version_of(image: &str) -> String {
    image
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/') && !image.contains('@'))
        .map_or(image.to_string(), |(_, tag)| tag.to_string())
}

/// The values every template may use; `extra` overrides and adds (pods, to_version, error…).
pub fn values(
    policy: &Policy,
    incident: &Incident,
    extra: &BTreeMap<&'static str, String>,
) -> BTreeMap<&'static str, String> {
    let mut v: BTreeMap<&'static str, String> = BTreeMap::new();
    v.insert("agent_id", policy.agent.id.clone());
    v.insert("agent_name", policy.agent.name.clone());
    v.insert("namespace", incident.namespace.clone());
    v.insert("workload", incident.workload.clone());
    v.insert(
        "severity",
        incident.severity.clone().unwrap_or_else(|| "n/a".into()),
    );
    v.insert(
        "row",
        incident.row.clone().unwrap_or_else(|| "manual".into()),
    );
    v.insert(
        "method",
        incident.method.clone().unwrap_or_else(|| "n/a".into()),
    );
    v.insert("reason", incident.reason.clone());
    v.insert("incident_id", incident.id.clone());
    if let Some(image) = &incident.from_image {
        v.insert("from_version", version_of(image));
    }
    if let Some(r) = incident.revision {
        v.insert("from_revision", r.to_string());
    }
    let eta = incident
        .method
        .as_ref()
        .and_then(|m| policy.methods.get(m))
        .and_then(|m| m.eta);
    v.insert("eta", eta.map_or("unknown".into(), format_duration));
    v.insert("watch", format_duration(policy.verification.watch));
    if let Some(url) = &policy.notify.status_url {
        v.insert("status_url", url.clone());
    }
    v.insert(
        "mention",
        if severe(incident.severity.as_deref()) {
            policy.notify.mention.clone().unwrap_or_default()
        } else {
            String::new()
        },
    );
    let approver = incident
        .row
        .as_ref()
        .and_then(|r| policy.row(r))
        .and_then(|r| r.approver.clone());
    v.insert("approver", approver.unwrap_or_else(|| "an operator".into()));
    v.insert("evidence", evidence_summary(&incident.decision));
    for (k, val) in extra {
        v.insert(k, val.clone());
    }
    v
}

/// One line of evidence from a stored decision: each condition's value against its threshold.
pub fn evidence_summary(decision: &serde_json::Value) -> String {
    let conditions = decision["evidence"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut parts: Vec<String> = conditions
        .iter()
        .map(|c| {
            let value = c["value"]
                .as_f64()
                .map_or("n/a".to_string(), crate::engine::format_value);
            format!(
                "{}={value} (needs {})",
                c["signal"].as_str().unwrap_or("?"),
                c["threshold"].as_str().unwrap_or("?")
            )
        })
        .collect();
    if let Some(by) = decision["evidence"]["blocked_by"].as_str() {
        parts.push(format!("blocked by {by}"));
    }
    if parts.is_empty() {
        "n/a".into()
    } else {
        parts.join("; ")
    }
}

/// The outbox rows announcing `stage` of `incident`.
pub fn announce(
    policy: &Policy,
    incident: &Incident,
    stage: Stage,
    extra: &BTreeMap<&'static str, String>,
    channels: &Channels,
) -> Vec<NewOutbox> {
    let values = values(policy, incident, extra);
    let template = policy
        .notify
        .templates
        .get(&stage)
        .map(String::as_str)
        .unwrap_or("");
    let message = Message {
        incident_id: incident.id.clone(),
        agent_id: policy.agent.id.clone(),
        agent_name: policy.agent.name.clone(),
        stage,
        severity: incident.severity.clone(),
        text: render(template, &values).trim().to_string(),
        fields: values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    };
    let mut targets = Vec::new();
    match (
        &policy.notify.slack_channel,
        channels.slack_api,
        &channels.slack_webhook_url,
    ) {
        (Some(channel), true, _) => targets.push(Target::Slack {
            channel: channel.clone(),
        }),
        (_, _, Some(url)) => targets.push(Target::SlackWebhook { url: url.clone() }),
        _ => {}
    }
    // the status page is for incidents, not for "monitor" notices or missing data
    let public = !matches!(stage, Stage::Notice | Stage::Inconclusive);
    if let (Some(sp), true, true) = (&policy.notify.statuspage, channels.statuspage, public) {
        targets.push(Target::Statuspage {
            page_id: sp.page_id.clone(),
            component_id: sp.component_id.clone(),
        });
    }
    if let Some(url) = &channels.webhook_url {
        targets.push(Target::Webhook { url: url.clone() });
    }
    targets
        .into_iter()
        .filter_map(|t| {
            Some(NewOutbox {
                target_key: t.key(),
                target: serde_json::to_value(&t).ok()?,
                message: serde_json::to_value(&message).ok()?,
            })
        })
        .collect()
}

/// `1m30s`-style elapsed time for messages.
pub fn elapsed(d: TimeDelta) -> String {
    format_duration(TimeDelta::seconds(d.num_seconds()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_tags() {
        assert_eq!(version_of("ghcr.io/greenlang/gl-002:v1.2.5"), "v1.2.5");
        assert_eq!(version_of("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(version_of("nginx"), "nginx");
    }
}
