//! Replays a trace through the engine and reports every change of decision, as
//! `rollbackd evaluate` prints it.

mod format;
mod trace;

pub use format::{format_json, format_text};
pub use trace::{Entry, TraceError, TraceLine, parse_trace, read_trace};

use chrono::{DateTime, Utc};

use crate::engine::{
    AlertTransition, Approval, Decision, Deploy, Observations, RollbackRecord, alert_belongs_to,
    decide,
};
use crate::policy::Policy;

/// A decision that differs from the one before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The trace time of the change (the line's `at`).
    pub at: DateTime<Utc>,
    /// Trace line that caused it.
    pub line: usize,
    /// The new decision with its evidence.
    pub decision: Decision,
}

/// Feeds the lines to the engine and evaluates at each distinct time (lines with the same
/// `at` are simultaneous); keeps the decisions that differ in kind, row or blocker from the
/// previous one.
pub fn replay(policy: &Policy, lines: &[TraceLine]) -> Vec<Change> {
    let mut observations = Observations::new();
    let mut changes: Vec<Change> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        apply(policy, &mut observations, line);
        if lines.get(i + 1).is_some_and(|next| next.at == line.at) {
            continue;
        }
        let decision = decide(policy, &observations, line.at);
        observations.track_unknown(&decision.evidence.unknown_row_ids(), line.at);
        let key = |d: &Decision| (d.decision, d.row.clone(), d.evidence.blocked_by.clone());
        if changes
            .last()
            .is_none_or(|c| key(&c.decision) != key(&decision))
        {
            changes.push(Change {
                at: line.at,
                line: line.line,
                decision,
            });
        }
    }
    changes
}

/// Applies one trace line to the observations.
pub fn apply(policy: &Policy, observations: &mut Observations, line: &TraceLine) {
    match &line.entry {
        Entry::Signals(values) => {
            for (name, value) in values {
                observations.record_sample(name, line.at, *value);
            }
        }
        Entry::Deploy {
            revision,
            image,
            baselines,
            pre_deploy,
        } => {
            observations.record_deploy(Deploy {
                at: line.at,
                revision: *revision,
                image: image.clone(),
                baselines: baselines.clone(),
                pre_deploy: pre_deploy.clone(),
            });
            observations.freeze_pre_deploy(|signal| policy.pre_deploy_max_age(signal));
        }
        Entry::Rollout { phase } => observations.record_rollout(line.at, *phase),
        Entry::AlertFiring {
            labels,
            fingerprint,
            ..
        }
        | Entry::AlertResolved {
            labels,
            fingerprint,
        } => {
            let identified = ["agent", "namespace", "deployment"]
                .iter()
                .any(|k| labels.contains_key(*k));
            if identified && !alert_belongs_to(policy, labels) {
                return;
            }
            let started_at = match &line.entry {
                Entry::AlertFiring { starts_at, .. } => *starts_at,
                _ => None,
            };
            observations.record_alert(AlertTransition {
                at: line.at,
                started_at,
                firing: matches!(line.entry, Entry::AlertFiring { .. }),
                fingerprint: fingerprint
                    .clone()
                    .unwrap_or_else(|| fingerprint_of(labels)),
                labels: labels.clone(),
            });
        }
        Entry::Approved { by, row } => observations.record_approval(Approval {
            at: line.at,
            by: by.clone(),
            row: row.clone(),
        }),
        Entry::RolledBack { revision } => observations.record_rollback(RollbackRecord {
            at: line.at,
            revision: *revision,
        }),
    }
}

/// A stable identity for an alert without a fingerprint: its sorted labels.
pub fn fingerprint_of(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
