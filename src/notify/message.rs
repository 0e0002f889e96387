//! What the outbox stores: a rendered message, where it goes, and what a target remembers
//! between the stages of one incident.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use rollbackd_core::policy::{PagerDutySeverity, Stage};

/// One notification for one stage of one incident, ready to send. Serializable (it is
/// stored in the outbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The incident this message is about; messages of one incident share a thread.
    pub incident_id: String,
    /// The policy's agent id, e.g. `GL-002`.
    pub agent_id: String,
    /// The agent's name, e.g. `BoilerEfficiencyOptimizer`.
    pub agent_name: String,
    /// The stage announced, stored with its policy spelling (`in_progress`).
    #[serde(with = "stage_serde")]
    pub stage: Stage,
    /// The matched row's runbook severity (P0, Severity 1, Immediate…), if any.
    pub severity: Option<String>,
    /// The rendered template text for this stage (`policy::template::render`).
    pub text: String,
    /// The template values (from_version, to_version, reason, evidence, pods_updated, …),
    /// for structured payloads.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// The policy spelling of a stage (`initiated`, `in_progress`, …).
pub fn stage_name(stage: Stage) -> &'static str {
    Stage::ALL
        .iter()
        .find(|(_, s)| *s == stage)
        .map_or("unknown", |(name, _)| name)
}

/// The stage with this policy spelling.
pub fn stage_from_name(name: &str) -> Option<Stage> {
    Stage::ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Serde for [`Stage`] by its policy spelling (`Stage` itself only serializes).
mod stage_serde {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use rollbackd_core::policy::Stage;

    pub fn serialize<S: Serializer>(stage: &Stage, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::stage_name(*stage))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Stage, D::Error> {
        let name = String::deserialize(d)?;
        super::stage_from_name(&name)
            .ok_or_else(|| D::Error::custom(format!("unknown stage {name:?}")))
    }
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Slack Web API: `chat.postMessage`, then `chat.update` plus threaded replies.
    Slack {
        /// Channel name (`#gl-002-incidents`) or ID.
        channel: String,
    },
    /// Slack incoming webhook: a plain post answered with the text `ok`.
    SlackWebhook {
        /// The name of the webhook URL in [`super::NotifierConfig::webhook_urls`]. The URL
        /// itself is a secret: it is never stored, logged or shown.
        #[serde(default = "slack_webhook_name")]
        name: String,
    },
    /// An Atlassian Statuspage incident on one component.
    Statuspage {
        /// The page id.
        page_id: String,
        /// The component the incident affects.
        component_id: String,
    },
    /// A generic JSON POST.
    Webhook {
        /// The name of the receiver's URL in [`super::NotifierConfig::webhook_urls`] (the
        /// URL may hold a token: it is never stored, logged or shown).
        #[serde(default = "webhook_name")]
        name: String,
    },
    /// A PagerDuty Events API v2 alert, one per incident (`dedup_key`
    /// `rollbackd/<incident id>`).
    #[serde(rename = "pagerduty")]
    PagerDuty {
        /// The name of the routing key in [`super::NotifierConfig::pagerduty_routing_keys`]
        /// (the key is a secret: it is never stored, logged or shown).
        service: String,
        /// The alert's severity, mapped from the runbook's by the policy.
        severity: PagerDutySeverity,
        /// What the event does to the incident's alert (decided from the stage and the
        /// incident's state by `pagerduty::event_action`).
        action: EventAction,
    },
    /// A Kubernetes Event (`events.k8s.io/v1`) on the incident's workload.
    KubeEvent {
        /// The workload's `apiVersion`.
        api_version: String,
        /// Its kind (`Deployment`, `Rollout`).
        workload_kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

/// What a PagerDuty event does to the incident's alert (Events API v2 `event_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    /// Open (or add to) the alert: a human is needed.
    Trigger,
    /// A human has it.
    Acknowledge,
    /// It is over.
    Resolve,
}

impl EventAction {
    /// The API spelling (`trigger`, `acknowledge`, `resolve`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Trigger => "trigger",
            EventAction::Acknowledge => "acknowledge",
            EventAction::Resolve => "resolve",
        }
    }
}

/// The name the daemon gives the configured Slack incoming webhook (`notify.slack_webhook_url`).
pub const SLACK_WEBHOOK_NAME: &str = "slack-webhook";
/// The name the daemon gives the configured generic webhook (`notify.webhook_url`).
pub const WEBHOOK_NAME: &str = "webhook";

/// Rows queued before targets were named held the URL (dropped when read); they go to
/// the configured webhook of their kind.
fn slack_webhook_name() -> String {
    SLACK_WEBHOOK_NAME.into()
}

fn webhook_name() -> String {
    WEBHOOK_NAME.into()
}

impl Target {
    /// The target kind, for metrics and errors: `slack`, `slack_webhook`, `statuspage`,
    /// `pagerduty`, `webhook`, `kube_event`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Slack { .. } => "slack",
            Target::SlackWebhook { .. } => "slack_webhook",
            Target::Statuspage { .. } => "statuspage",
            Target::PagerDuty { .. } => "pagerduty",
            Target::Webhook { .. } => "webhook",
            Target::KubeEvent { .. } => "kube_event",
        }
    }

    /// Identifies the target: messages of one incident with the same key go out in order
    /// and share a [`ThreadRef`].
    pub fn key(&self) -> String {
        match self {
            Target::Slack { channel } => format!("slack:{channel}"),
            Target::SlackWebhook { name } => format!("slack_webhook:{name}"),
            Target::Statuspage {
                page_id,
                component_id,
            } => format!("statuspage:{page_id}/{component_id}"),
            Target::PagerDuty { service, .. } => format!("pagerduty:{service}"),
            Target::Webhook { name } => format!("webhook:{name}"),
            Target::KubeEvent { .. } => "kube_event".into(),
        }
    }
}

/// What a target remembers between stages of one incident (Slack channel ID + `ts`;
/// Statuspage incident id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRef {
    /// The [`Target::key`] it belongs to.
    pub key: String,
    /// Target-specific data, e.g. `{"channel":"C123","ts":"1700000000.000100"}`.
    pub data: serde_json::Value,
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// The row id; within an incident and target, rows go out in id order.
    pub id: i64,
    /// What to say.
    pub message: Message,
    /// Where to say it.
    pub target: Target,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not to be sent before this time.
    pub next_attempt_at: DateTime<Utc>,
    /// When an earlier attempt started whose outcome is unknown (the process died, or the
    /// answer was lost): the target is asked whether it has the message before it is sent
    /// again. `None` for a first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_doubt_since: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            incident_id: "inc-1".into(),
            agent_id: "GL-002".into(),
            agent_name: "BoilerEfficiencyOptimizer".into(),
            stage: Stage::InProgress,
            severity: Some("P0".into()),
            text: "ROLLBACK IN PROGRESS".into(),
            fields: BTreeMap::from([("from_version".into(), "v1.2.5".into())]),
        }
    }

    #[test]
    fn message_round_trips_with_stage_spelling() {
        let json = serde_json::to_value(message()).unwrap();
        assert_eq!(json["stage"], "in_progress");
        assert_eq!(json["fields"]["from_version"], "v1.2.5");
        let back: Message = serde_json::from_value(json).unwrap();
        assert_eq!(back, message());
    }

    #[test]
    fn every_stage_round_trips() {
        for (name, stage) in Stage::ALL {
            assert_eq!(stage_name(stage), name);
            assert_eq!(stage_from_name(name), Some(stage));
        }
    }

    #[test]
    fn rejects_unknown_stage() {
        let mut json = serde_json::to_value(message()).unwrap();
        json["stage"] = "exploded".into();
        let err = serde_json::from_value::<Message>(json).unwrap_err();
        assert!(err.to_string().contains("unknown stage"), "{err}");
    }

    #[test]
    fn a_target_stored_with_its_url_reads_back_as_a_name() {
        let legacy = serde_json::json!({"kind": "webhook", "url": "https://x.example/SECRET"});
        let target: Target = serde_json::from_value(legacy).unwrap();
        assert_eq!(
            target,
            Target::Webhook {
                name: WEBHOOK_NAME.into()
            }
        );
        let stored = serde_json::to_string(&target).unwrap();
        assert_eq!(stored, r#"{"kind":"webhook","name":"webhook"}"#);
    }

    #[test]
    fn a_pagerduty_target_names_its_routing_key() {
        let target = Target::PagerDuty {
            service: "plant-safety".into(),
            severity: PagerDutySeverity::Critical,
            action: EventAction::Trigger,
        };
        let stored = serde_json::to_string(&target).unwrap();
        assert_eq!(
            stored,
            r#"{"kind":"pagerduty","service":"plant-safety","severity":"critical","action":"trigger"}"#
        );
        assert_eq!(serde_json::from_str::<Target>(&stored).unwrap(), target);
        assert_eq!(target.key(), "pagerduty:plant-safety");
        assert_eq!(target.kind(), "pagerduty");
    }

    #[test]
    fn item_and_target_round_trip() {
        let item = OutboxItem {
            id: 7,
            message: message(),
            target: Target::Statuspage {
                page_id: "PAGE".into(),
                component_id: "COMP".into(),
            },
            attempts: 2,
            next_attempt_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            in_doubt_since: None,
        };
        let json = serde_json::to_value(&item).unwrap();
        assert_eq!(json["target"]["kind"], "statuspage");
        let back: OutboxItem = serde_json::from_value(json).unwrap();
        assert_eq!(back, item);
        assert_eq!(item.target.key(), "statuspage:PAGE/COMP");
        assert_eq!(item.target.kind(), "statuspage");
    }
}
