//! Alertmanager alerts as signals, and which agent an alert is about.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::observations::{AlertTransition, Sample};
use crate::policy::Policy;

/// Whether an alert's labels name this policy's agent: its `agent` label equals the
/// agent id, or its `namespace` + `deployment` labels name one of the policy's workloads.
pub fn alert_belongs_to(policy: &Policy, labels: &BTreeMap<String, String>) -> bool {
    if let Some(agent) = labels.get("agent") {
        return agent.eq_ignore_ascii_case(&policy.agent.id);
    }
    match (
        labels.get("namespace"),
        labels.get("deployment").or_else(|| labels.get("rollout")),
    ) {
        (Some(ns), Some(name)) => policy
            .workloads
            .iter()
            .any(|w| &w.namespace == ns && &w.name == name),
        _ => false,
    }
}

/// Whether an alert carries every label of a matcher.
pub fn alert_matches(
    matcher: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    matcher.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The 0/1 series of "some alert matching `matcher` is firing", one sample per change,
/// up to `now`. Before any matching alert the value is 0.
pub fn alert_series(
    matcher: &BTreeMap<String, String>,
    transitions: &[AlertTransition],
    now: DateTime<Utc>,
) -> Vec<Sample> {
    let mut firing: BTreeSet<&str> = BTreeSet::new();
    let mut series: Vec<Sample> = Vec::new();
    for t in transitions.iter().filter(|t| t.at <= now) {
        if !alert_matches(matcher, &t.labels) {
            continue;
        }
        if t.firing {
            firing.insert(&t.fingerprint);
        } else {
            firing.remove(t.fingerprint.as_str());
        }
        let value = if firing.is_empty() { 0.0 } else { 1.0 };
        if series.last().and_then(|s| s.value()) != Some(value) {
            series.push(Sample::new(t.at, Some(value)));
        }
    }
    series
}

/// The alerts matching `matcher` that are firing at `now` (each fingerprint's latest state).
pub fn firing_alerts<'a>(
    matcher: &BTreeMap<String, String>,
    transitions: &'a [AlertTransition],
    now: DateTime<Utc>,
) -> Vec<&'a AlertTransition> {
    let mut latest: BTreeMap<&str, &AlertTransition> = BTreeMap::new();
    for t in transitions
        .iter()
        .filter(|t| t.at <= now && alert_matches(matcher, &t.labels))
    {
        latest.insert(&t.fingerprint, t);
    }
    latest.into_values().filter(|t| t.firing).collect()
}
