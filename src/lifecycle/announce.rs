//! Turns an incident stage into outbox rows: the policy's template rendered with the
//! incident's values, for every target the policy and the configuration enable. Slack,
//! the webhook and Kubernetes Events get the team's wording (mentions, row, evidence); the
//! status page gets the public wording (`[notify.templates.statuspage]`); PagerDuty gets
//! an event when the stage needs a human or ends that need.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;

use crate::notify::pagerduty::event_action;
use crate::notify::{Message, SLACK_WEBHOOK_NAME, Target, WEBHOOK_NAME};
use crate::store::{Incident, NewOutbox};
use rollbackd_core::policy::duration::format_duration;
use rollbackd_core::policy::template::{PUBLIC_PLACEHOLDERS, default_public_template, render};
use rollbackd_core::policy::{Policy, Stage};

/// Which notifier kinds are configured daemon-wide. The webhook URLs are handed to the
/// notifiers ([`Channels::webhook_urls`]); outbox rows only name them.
#[derive(Clone, Default)]
pub struct Channels {
    /// A Slack bot token is set: use the Web API with the policy's channel.
    pub slack_api: bool,
    /// Else an incoming webhook URL (a secret).
    pub slack_webhook_url: Option<String>,
    /// A Statuspage key is set: use the policy's page and component.
    pub statuspage: bool,
    /// A generic JSON webhook (its URL may hold a token).
    pub webhook_url: Option<String>,
    /// The PagerDuty services whose routing keys are configured (the names only: the keys
    /// stay with the notifiers). A policy's `pagerduty.service` pages only if named here.
    pub pagerduty_services: BTreeSet<String>,
    /// Record each stage as a Kubernetes Event on the workload (`kubernetes.events`).
    pub kube_events: bool,
    /// Where those events go (set by the daemon when it starts; off until then).
    pub events: crate::events::recorder::EventRecorder,
}

/// Secrets are not printed.
impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels")
            .field("slack_api", &self.slack_api)
            .field("slack_webhook", &self.slack_webhook_url.is_some())
            .field("statuspage", &self.statuspage)
            .field("webhook", &self.webhook_url.is_some())
            .field("pagerduty_services", &self.pagerduty_services)
            .field("kube_events", &self.kube_events)
            .finish()
    }
}

impl Channels {
    /// The webhook URLs by the target names outbox rows carry, for
    /// [`crate::notify::NotifierConfig::webhook_urls`].
    pub fn webhook_urls(&self) -> BTreeMap<String, String> {
        let named = [
            (SLACK_WEBHOOK_NAME, &self.slack_webhook_url),
            (WEBHOOK_NAME, &self.webhook_url),
        ];
        named
            .into_iter()
            .filter_map(|(name, url)| Some((name.to_string(), url.clone()?)))
            .collect()
    }
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
    // a target the operator named is known before the rollback runs
    if let Some(r) = incident.vars.get("to_revision") {
        v.insert("to_revision", r.clone());
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
    let evidence = evidence_parts(&incident.decision);
    if !evidence.is_empty() {
        v.insert("evidence", evidence.join("; "));
    }
    for (k, val) in extra {
        v.insert(k, val.clone());
    }
    v
}

/// One line of evidence from a stored decision: each condition's value against its
/// threshold (`n/a` without any).
pub fn evidence_summary(decision: &serde_json::Value) -> String {
    let parts = evidence_parts(decision);
    if parts.is_empty() {
        "n/a".into()
    } else {
        parts.join("; ")
    }
}

/// Each condition's value against its threshold, and what blocked the decision.
fn evidence_parts(decision: &serde_json::Value) -> Vec<String> {
    let conditions = decision["evidence"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut parts: Vec<String> = conditions
        .iter()
        .map(|c| {
            let value = c["value"]
                .as_f64()
                .map_or("n/a".to_string(), rollbackd_core::engine::format_value);
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
    parts
}

/// The template without the lines whose placeholders all lack a value, so a message says
/// only what is known at its stage (no "Target Version: n/a (revision n/a)" before the
/// rollback chose its target). Lines without placeholders are kept.
pub fn drop_unknown_lines(template: &str, values: &BTreeMap<&'static str, String>) -> String {
    template
        .split('\n')
        .filter(|line| {
            let names = placeholders(line);
            names.is_empty() || names.iter().any(|n| values.contains_key(n))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `{name}` placeholders of one template line (`{{` and `}}` are literal braces).
fn placeholders(line: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find('{') {
        let tail = &rest[open..];
        if let Some(after) = tail.strip_prefix("{{") {
            rest = after;
            continue;
        }
        let Some(close) = tail.find('}') else { break };
        names.push(&tail[1..close]);
        rest = &tail[close + 1..];
    }
    names
}

/// The public wording of `stage` for the status page: the policy's public template (only
/// public values, lines whose values are unknown left out), else the default one, else one
/// plain sentence: never empty, never a mention, a row id or an incident id.
pub fn public_text(
    policy: &Policy,
    stage: Stage,
    values: &BTreeMap<&'static str, String>,
) -> String {
    let public: BTreeMap<&'static str, String> = values
        .iter()
        .filter(|(k, v)| {
            PUBLIC_PLACEHOLDERS.contains(k)
                // nothing rather than "unknown" or "0s"
                && !(**k == "eta" && v.as_str() == "unknown")
                && !(**k == "watch" && v.as_str() == "0s")
        })
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let fill = |template: &str| {
        render(&drop_unknown_lines(template, &public), &public)
            .trim()
            .to_string()
    };
    let chosen = policy
        .notify
        .statuspage_templates
        .get(&stage)
        .map(|t| fill(t))
        .filter(|t| !t.is_empty());
    chosen
        .or_else(|| Some(fill(default_public_template(stage))).filter(|t| !t.is_empty()))
        .unwrap_or_else(|| {
            format!(
                "We are investigating an issue with {} {}.",
                policy.agent.id, policy.agent.name
            )
        })
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
        text: render(&drop_unknown_lines(template, &values), &values)
            .trim()
            .to_string(),
        fields: values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    };
    let mut targets: Vec<(Target, &Message)> = Vec::new();
    match (
        &policy.notify.slack_channel,
        channels.slack_api,
        &channels.slack_webhook_url,
    ) {
        (Some(channel), true, _) => targets.push((
            Target::Slack {
                channel: channel.clone(),
            },
            &message,
        )),
        (_, _, Some(_)) => targets.push((
            Target::SlackWebhook {
                name: SLACK_WEBHOOK_NAME.into(),
            },
            &message,
        )),
        _ => {}
    }
    // the status page is for incidents, not for "monitor" notices or missing data
    let public = !matches!(
        stage,
        Stage::Notice | Stage::Inconclusive | Stage::Preexisting | Stage::Escalated
    );
    let public_message = Message {
        text: public_text(policy, stage, &values),
        ..message.clone()
    };
    if let (Some(sp), true, true) = (&policy.notify.statuspage, channels.statuspage, public) {
        targets.push((
            Target::Statuspage {
                page_id: sp.page_id.clone(),
                component_id: sp.component_id.clone(),
            },
            &public_message,
        ));
    }
    // PagerDuty: only the stages that need a human or end that need
    if let Some(pd) = &policy.notify.pagerduty
        && channels.pagerduty_services.contains(&pd.service)
        && let Some(action) = event_action(stage, incident.state)
    {
        targets.push((
            Target::PagerDuty {
                service: pd.service.clone(),
                severity: pd.severity(incident.severity.as_deref()),
                action,
            },
            &message,
        ));
    }
    if channels.webhook_url.is_some() {
        targets.push((
            Target::Webhook {
                name: WEBHOOK_NAME.into(),
            },
            &message,
        ));
    }
    if channels.kube_events {
        targets.push((kube_event_target(policy, incident), &message));
    }
    targets
        .into_iter()
        .filter_map(|(t, m)| {
            Some(NewOutbox {
                target_key: t.key(),
                target: serde_json::to_value(&t).ok()?,
                message: serde_json::to_value(m).ok()?,
            })
        })
        .collect()
}

/// The Kubernetes Event target for an incident: its workload (the policy's primary one
/// when the incident names none the policy knows).
fn kube_event_target(policy: &Policy, incident: &Incident) -> Target {
    let workload = policy
        .workloads
        .iter()
        .find(|w| w.name == incident.workload && w.namespace == incident.namespace)
        .or_else(|| policy.primary_workload());
    let resource = workload
        .map_or(crate::cluster::Kind::Deployment, crate::cluster::Kind::of)
        .resource();
    Target::KubeEvent {
        api_version: resource.api_version,
        workload_kind: resource.kind,
        namespace: incident.namespace.clone(),
        name: incident.workload.clone(),
    }
}

/// `1m30s`-style elapsed time for messages.
pub fn elapsed(d: TimeDelta) -> String {
    format_duration(TimeDelta::seconds(d.num_seconds()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Trigger;
    use chrono::Utc;

    fn gl002() -> Policy {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/gl-002.toml");
        let source = std::fs::read_to_string(&path).unwrap();
        rollbackd_core::policy::parse_policy(&path, &source).unwrap()
    }

    fn incident() -> Incident {
        let now = Utc::now();
        Incident {
            id: "inc-1".into(),
            agent: "GL-002".into(),
            namespace: "greenlang".into(),
            workload: "gl-002-boiler-efficiency".into(),
            revision: Some(7),
            from_image: Some("ghcr.io/greenlang/gl-002:v1.2.5".into()),
            row: Some("p0-error-rate".into()),
            severity: Some("P0".into()),
            method: Some("quick".into()),
            trigger: Trigger::Automatic,
            requested_by: None,
            reason: "error rate 60%".into(),
            decision: serde_json::json!({}),
            state: rollbackd_core::incident::State::Detected,
            dry_run: false,
            vars: BTreeMap::new(),
            deploy_at: Some(now),
            created_at: now,
            updated_at: now,
        }
    }

    fn text_of(rows: &[NewOutbox]) -> String {
        rows[0].message["text"].as_str().unwrap().to_string()
    }

    fn webhook_only() -> Channels {
        Channels {
            webhook_url: Some("http://127.0.0.1:9/hook".into()),
            ..Channels::default()
        }
    }

    #[test]
    fn the_initiated_message_leaves_out_what_is_not_known_yet() {
        let policy = gl002();
        let rows = announce(
            &policy,
            &incident(),
            Stage::Initiated,
            &BTreeMap::new(),
            &webhook_only(),
        );
        let text = text_of(&rows);
        assert!(!text.contains("n/a"), "{text}");
        assert!(!text.contains("Target Version"), "{text}");
        assert!(
            text.contains("Current Version: v1.2.5 (revision 7)"),
            "{text}"
        );
        // a target the operator named is known from the start
        let mut manual = incident();
        manual.vars.insert("to_revision".into(), "5".into());
        let text = text_of(&announce(
            &policy,
            &manual,
            Stage::Initiated,
            &BTreeMap::new(),
            &webhook_only(),
        ));
        assert!(text.contains("(revision 5)"), "{text}");
        // once the rollback ran, the target is filled in
        let extra = BTreeMap::from([
            ("to_version", "v1.2.4".to_string()),
            ("to_revision", "6".to_string()),
        ]);
        let text = text_of(&announce(
            &policy,
            &incident(),
            Stage::Initiated,
            &extra,
            &webhook_only(),
        ));
        assert!(
            text.contains("Target Version: v1.2.4 (revision 6)"),
            "{text}"
        );
    }

    #[test]
    fn lines_without_placeholders_and_escaped_braces_are_kept() {
        let values = BTreeMap::from([("agent_id", "GL-002".to_string())]);
        let template = "A {{literal}} line\n{to_version} ({to_revision})\n{agent_id}: {error}";
        assert_eq!(
            drop_unknown_lines(template, &values),
            "A {{literal}} line\n{agent_id}: {error}"
        );
    }

    #[test]
    fn outbox_rows_name_webhooks_without_their_urls() {
        let channels = Channels {
            slack_webhook_url: Some("https://hooks.slack.com/services/T/B/SECRET1".into()),
            webhook_url: Some("https://hooks.example/SECRET2".into()),
            ..Channels::default()
        };
        let rows = announce(
            &gl002(),
            &incident(),
            Stage::Initiated,
            &BTreeMap::new(),
            &channels,
        );
        let keys: Vec<&str> = rows.iter().map(|r| r.target_key.as_str()).collect();
        assert_eq!(keys, ["slack_webhook:slack-webhook", "webhook:webhook"]);
        for row in &rows {
            let stored = serde_json::to_string(row).unwrap();
            assert!(!stored.contains("SECRET"), "{stored}");
        }
    }

    /// Every repository policy, with an incident on its first row whose decision has
    /// evidence.
    fn every_policy() -> Vec<(Policy, Incident)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        rollbackd_core::policy::load_all(&[dir])
            .unwrap()
            .into_iter()
            .map(|p| {
                let row = p.matrix[0].clone();
                let mut inc = incident();
                inc.id = "inc-7f3a9c".into();
                inc.agent = p.agent.id.clone();
                inc.row = Some(row.id.clone());
                inc.severity = Some(row.severity.clone());
                inc.method = row.method.clone();
                inc.reason = format!("Rollback {}: error_rate=0.62 > 0.5", row.id);
                inc.decision = serde_json::json!({"evidence": {"conditions": [
                    {"signal": "error_rate", "value": 0.62, "threshold": "> 0.5"}
                ]}});
                (p, inc)
            })
            .collect()
    }

    fn all_channels() -> Channels {
        Channels {
            slack_api: true,
            statuspage: true,
            pagerduty_services: BTreeSet::from(["default".to_string()]),
            ..Channels::default()
        }
    }

    fn row_for<'a>(rows: &'a [NewOutbox], kind: &str) -> Option<&'a NewOutbox> {
        rows.iter().find(|r| r.target["kind"] == kind)
    }

    #[test]
    fn the_status_page_gets_public_wording_at_every_stage_and_slack_the_evidence() {
        let extra = BTreeMap::from([
            ("to_version", "v1.2.4".to_string()),
            ("to_revision", "6".to_string()),
            ("duration", "4m".to_string()),
            ("pods_updated", "3".to_string()),
            ("pods_total", "3".to_string()),
            ("error", "step 2 (undo) failed: conflict".to_string()),
        ]);
        let mut public_rows = 0;
        for (policy, inc) in every_policy() {
            let row = inc.row.clone().unwrap();
            for (name, stage) in Stage::ALL {
                let all = values(&policy, &inc, &extra);
                let text = public_text(&policy, stage, &all);
                let what = format!("{} {name}: {text:?}", policy.agent.id);
                assert!(!text.trim().is_empty(), "{what}");
                for internal in [
                    "@",
                    "*",
                    "_",
                    "<",
                    "|",
                    "#",
                    "n/a",
                    "inc-7f3a9c",
                    &row,
                    "error_rate",
                ] {
                    assert!(!text.contains(internal), "{internal:?} in {what}");
                }
                let rows = announce(&policy, &inc, stage, &extra, &all_channels());
                let slack = row_for(&rows, "slack").unwrap();
                let slack_text = slack.message["text"].as_str().unwrap();
                if policy.notify.templates[&stage].contains("{evidence}") {
                    assert!(
                        slack_text.contains("error_rate=0.62 (needs > 0.5)"),
                        "{} {name}: {slack_text}",
                        policy.agent.id
                    );
                }
                if let Some(sp) = row_for(&rows, "statuspage") {
                    assert_eq!(sp.message["text"], text.as_str(), "{what}");
                    assert_eq!(sp.message["stage"], name);
                    public_rows += 1;
                }
            }
        }
        // four policies have a status page, each announces ten stages there
        assert_eq!(public_rows, 40);
    }

    #[test]
    fn a_policys_public_wording_wins_and_unknown_values_drop_their_line() {
        let policy = gl002();
        let mut all = values(&policy, &incident(), &BTreeMap::new());
        let text = public_text(&policy, Stage::Initiated, &all);
        assert_eq!(
            text,
            "We have identified a deployment issue affecting the GL-002 service. We are rolling back to the previous stable version.\nExpected resolution time: 5m."
        );
        // no estimate: no "unknown"
        all.insert("eta", "unknown".into());
        let text = public_text(&policy, Stage::Initiated, &all);
        assert!(!text.contains("Expected"), "{text}");
        // GL-002's complete names the version; without it the default wording stands in
        let text = public_text(&policy, Stage::Complete, &all);
        assert!(
            text.starts_with("The rollback of GL-002 BoilerEfficiencyOptimizer has been completed"),
            "{text}"
        );
        all.insert("to_version", "v1.2.4".into());
        let text = public_text(&policy, Stage::Complete, &all);
        assert!(
            text.starts_with("The rollback to v1.2.4 has been completed successfully."),
            "{text}"
        );
    }

    #[test]
    fn pagerduty_is_told_only_what_needs_or_ends_a_human() {
        let (gl001, mut inc) = every_policy()
            .into_iter()
            .find(|(p, _)| p.agent.id == "GL-001")
            .unwrap();
        inc.severity = Some("P0".into());
        let on = |inc: &Incident, stage: Stage, channels: &Channels| {
            announce(&gl001, inc, stage, &BTreeMap::new(), channels)
                .into_iter()
                .find(|r| r.target["kind"] == "pagerduty")
        };
        let pd = |stage: Stage, channels: &Channels| on(&inc, stage, channels);
        let blocked = pd(Stage::Blocked, &all_channels()).unwrap();
        assert_eq!(
            blocked.target,
            serde_json::json!({"kind": "pagerduty", "service": "default", "severity": "critical", "action": "trigger"})
        );
        // stopped: a pause is acknowledged, a cancel resolves
        let stopped = pd(Stage::Stopped, &all_channels()).unwrap();
        assert_eq!(stopped.target["action"], "acknowledge");
        let cancelled = Incident {
            state: rollbackd_core::incident::State::Cancelled,
            ..inc.clone()
        };
        let resolve = on(&cancelled, Stage::Stopped, &all_channels()).unwrap();
        assert_eq!(resolve.target["action"], "resolve");
        assert_eq!(blocked.target_key, "pagerduty:default");
        // the team's wording, not the public one
        assert!(
            blocked.message["text"]
                .as_str()
                .unwrap()
                .contains("ROLLBACK BLOCKED")
        );
        for stage in [
            Stage::AwaitingApproval,
            Stage::Escalated,
            Stage::Failed,
            Stage::Initiated,
            Stage::Stopped,
            Stage::Complete,
            Stage::Resolved,
            Stage::Superseded,
        ] {
            assert!(pd(stage, &all_channels()).is_some(), "{stage:?}");
        }
        for stage in [Stage::InProgress, Stage::Notice, Stage::Inconclusive] {
            assert!(pd(stage, &all_channels()).is_none(), "{stage:?}");
        }
        // no routing key for the policy's service: no row
        let other = Channels {
            pagerduty_services: BTreeSet::from(["ops".to_string()]),
            ..all_channels()
        };
        assert!(pd(Stage::Blocked, &other).is_none());
        // a policy without `pagerduty` never pages
        let rows = announce(
            &gl002(),
            &incident(),
            Stage::Failed,
            &BTreeMap::new(),
            &all_channels(),
        );
        assert!(row_for(&rows, "pagerduty").is_none());
    }

    #[test]
    fn versions_are_tags() {
        assert_eq!(version_of("ghcr.io/greenlang/gl-002:v1.2.5"), "v1.2.5");
        assert_eq!(version_of("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(version_of("nginx"), "nginx");
    }
}
