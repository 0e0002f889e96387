//! What the console shows beside the stored records: an agent's signals read against the
//! thresholds of the rows that test them, and a method's steps in words (so a confirmation
//! can say exactly what an approval will do). Additive fields of the agents and incident
//! answers.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::signals::latest::LatestReadings;
use rollbackd_core::policy::{Action, ImageRef, Policy, RevisionRef, StepAction};

/// Every signal of `policy` that a row tests, with its latest reading and, per row, the
/// thresholds and whether the reading meets them (`null` when it cannot be told here: no
/// data, or a threshold relative to a baseline the agents page does not know).
pub fn signal_readings(policy: &Policy, latest: Option<&LatestReadings>) -> Vec<Value> {
    policy
        .signals
        .iter()
        .filter_map(|(name, signal)| {
            let rows: Vec<Value> = policy
                .matrix
                .iter()
                .flat_map(|row| row.when.iter().map(move |c| (row, c)))
                .filter(|(_, c)| &c.signal == name)
                .map(|(row, c)| (row, c, c.describe_thresholds()))
                .collect::<Vec<_>>()
                .into_iter()
                .map(|(row, c, threshold)| {
                    let reading = latest.and_then(|l| l.get(&policy.agent.id, name));
                    let meets = match reading {
                        Some((_, Some(v))) if !c.relative_to_baseline => Some(c.accepts(v)),
                        _ => None,
                    };
                    json!({"row": row.id, "severity": row.severity, "action": row.action,
                           "threshold": threshold, "meets": meets})
                })
                .collect();
            if rows.is_empty() {
                return None;
            }
            let reading = latest.and_then(|l| l.get(&policy.agent.id, name));
            let (at, value): (Option<DateTime<Utc>>, Option<f64>) = match reading {
                Some((at, value)) => (Some(at), value),
                None => (None, None),
            };
            Some(
                json!({"name": name, "unit": signal.unit, "value": value, "read_at": at,
                        "rows": rows}),
            )
        })
        .collect()
}

/// The steps of `policy`'s method `method` in words, e.g. `undo: kubectl rollout undo
/// deployment/gl-008 (namespace greenlang-gl008) to the previous revision`; `None` when the
/// policy has no such method.
pub fn method_plan(policy: &Policy, method: &str) -> Option<Value> {
    let m = policy.methods.get(method)?;
    let steps: Vec<Value> = m
        .steps
        .iter()
        .map(|step| {
            let targets: Vec<String> = step
                .workloads
                .iter()
                .map(|id| {
                    policy
                        .workloads
                        .iter()
                        .find(|w| &w.id == id)
                        .map(|w| format!("{} {}/{}", kind(&w.kind), w.namespace, w.name))
                        .unwrap_or_else(|| id.clone())
                })
                .collect();
            let on = if targets.is_empty() {
                policy
                    .primary_workload()
                    .map(|w| format!("{} {}/{}", kind(&w.kind), w.namespace, w.name))
                    .unwrap_or_default()
            } else {
                targets.join(", ")
            };
            json!({"name": step.name, "kind": step.action.kind(), "text": step_text(&step.action, &on)})
        })
        .collect();
    Some(json!({"name": m.name, "description": m.description, "steps": steps}))
}

/// The method a manual rollback of `policy` runs when the request names none: the method of
/// its first unattended row, else its first method (the choice `POST /api/v1/rollbacks` makes).
pub fn default_method(policy: &Policy) -> Option<String> {
    policy
        .matrix
        .iter()
        .find(|r| r.action == Action::Rollback)
        .and_then(|r| r.method.clone())
        .or_else(|| policy.methods.keys().next().cloned())
}

fn kind(k: &impl std::fmt::Debug) -> String {
    format!("{k:?}").to_lowercase()
}

fn revision(r: &RevisionRef) -> String {
    match r {
        RevisionRef::Previous => "the previous revision".into(),
        RevisionRef::LastKnownGood => "the last revision that passed verification".into(),
        RevisionRef::Revision(n) => format!("revision {n}"),
    }
}

fn step_text(action: &StepAction, on: &str) -> String {
    match action {
        StepAction::Undo(r) => format!("kubectl rollout undo {on} to {}", revision(r)),
        StepAction::SetImage(ImageRef::Previous) => {
            format!("set the image of {on} back to the previous revision's image")
        }
        StepAction::SetImage(ImageRef::LastKnownGood) => {
            format!(
                "set the image of {on} back to the image of the last revision that passed verification"
            )
        }
        StepAction::SetImage(ImageRef::Literal(image)) => {
            format!("set the image of {on} to {image}")
        }
        StepAction::Restart => format!("kubectl rollout restart {on}"),
        StepAction::Scale(Some(n)) => format!("scale {on} to {n} replicas"),
        StepAction::Scale(None) => format!("scale {on} back to its replica count before scaling"),
        StepAction::SwitchService { service, .. } => {
            format!("switch Service {service}'s selector, for {on}")
        }
        StepAction::RestoreConfigMap(name) => {
            format!("restore ConfigMap {name} from its snapshot taken at the deploy, for {on}")
        }
        StepAction::PatchConfigMap { name, data } => {
            let keys: Vec<&str> = data.keys().map(String::as_str).collect();
            format!("patch ConfigMap {name} (set {}), for {on}", keys.join(", "))
        }
        StepAction::ArgoAbort => format!("abort the Argo Rollout {on}"),
        StepAction::ArgoUndo(r) => format!("undo the Argo Rollout {on} to {}", revision(r)),
        StepAction::Http { method, url, .. } => format!("HTTP {method} {url}"),
        StepAction::Job { name, image, .. } => format!("run Job {name} ({image}) next to {on}"),
        StepAction::WaitRollout => format!("wait for the rollout of {on} to complete"),
        StepAction::Wait(d) => format!("wait {}s", d.num_seconds()),
    }
}
