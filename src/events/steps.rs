//! A method's step as a Kubernetes Event on the workload it acted on: what it did, to
//! which revision or image, or why it failed.

use chrono::{DateTime, Utc};
use rollbackd_core::policy::Policy;
use serde_json::Value;

use super::correlator::{NewEvent, Regarding};
use crate::executor::{StepOutcome, StepState};

/// The event for one step of `incident`'s method, or `None` for a step that did not run
/// (or only planned, in a dry run) or a workload the policy does not name.
pub fn step_event(
    policy: &Policy,
    incident: &str,
    step: &StepOutcome,
    now: DateTime<Utc>,
) -> Option<NewEvent> {
    let (reason, outcome, warning) = match &step.state {
        StepState::Done => ("RollbackStepDone", "done".to_string(), false),
        StepState::Skipped(why) => ("RollbackStepSkipped", format!("skipped: {why}"), false),
        StepState::Failed(error) => ("RollbackStepFailed", format!("failed: {error}"), true),
        StepState::NotRun | StepState::DryRun(_) => return None,
    };
    let w = policy.workloads.iter().find(|w| w.id == step.workload)?;
    let resource = crate::cluster::Kind::of(w).resource();
    let facts = facts(&step.detail);
    let mut note = format!(
        "step {} {} ({}) {}",
        step.index + 1,
        step.name,
        step.kind,
        outcome
    );
    if !facts.is_empty() {
        note.push_str(&format!("; {facts}"));
    }
    note.push_str(&format!(" [incident {incident}]"));
    Some(NewEvent {
        regarding: Regarding {
            api_version: resource.api_version,
            kind: resource.kind,
            namespace: w.namespace.clone(),
            name: w.name.clone(),
        },
        warning,
        reason: reason.into(),
        action: upper_camel(&step.kind),
        note,
        at: step.finished_at.unwrap_or(now),
    })
}

/// The detail's plain values (`to_revision=3, image=…`), not its nested objects or logs.
fn facts(detail: &Value) -> String {
    let Some(map) = detail.as_object() else {
        return String::new();
    };
    map.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "error" | "log" | "logs" | "body"))
        .filter_map(|(k, v)| match v {
            Value::String(s) if s.len() <= 200 => Some(format!("{k}={s}")),
            Value::Number(n) => Some(format!("{k}={n}")),
            Value::Bool(b) => Some(format!("{k}={b}")),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `set_image` → `SetImage`: an Event's `action`.
fn upper_camel(snake: &str) -> String {
    snake
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_step_says_what_it_did_on_its_workload() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/gl-002.toml");
        let policy = rollbackd_core::policy::load_file(&path).expect("policy");
        let w = policy.primary_workload().expect("primary");
        let at = "2026-01-15T03:00:00Z".parse().expect("time");
        let step = StepOutcome {
            index: 0,
            name: "undo".into(),
            workload: w.id.clone(),
            kind: "set_image".into(),
            state: StepState::Done,
            started_at: Some(at),
            finished_at: Some(at),
            detail: json!({"to_revision": 3, "image": "x:v1", "log": "long", "nested": {}}),
        };
        let e = step_event(&policy, "gl-002-1", &step, at).expect("an event");
        assert_eq!(e.regarding.name, w.name);
        assert_eq!(
            (e.reason.as_str(), e.action.as_str()),
            ("RollbackStepDone", "SetImage")
        );
        assert_eq!(
            e.note,
            "step 1 undo (set_image) done; image=x:v1, to_revision=3 [incident gl-002-1]"
        );
        let failed = StepOutcome {
            state: StepState::Failed("precondition failed".into()),
            ..step.clone()
        };
        let e = step_event(&policy, "gl-002-1", &failed, at).expect("an event");
        assert!(
            e.warning && e.note.contains("failed: precondition failed"),
            "{}",
            e.note
        );
        let planned = StepOutcome {
            state: StepState::DryRun(json!({})),
            ..step
        };
        assert!(step_event(&policy, "gl-002-1", &planned, at).is_none());
    }
}
