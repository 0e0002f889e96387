//! A stage of an incident as a Kubernetes Event: reason and type from the stage, a plain
//! note that says which row, which values and which thresholds (no Slack markup).

use chrono::{DateTime, Utc};
use rollbackd_core::policy::Stage;

use super::message::Message;
use crate::events::correlator::{NewEvent, Regarding};

/// `reason`, `action` and whether a human may need to look, for a stage.
pub fn stage_reason(stage: Stage) -> (&'static str, &'static str, bool) {
    match stage {
        Stage::Initiated => ("RollbackStarted", "Rollback", true),
        Stage::InProgress => ("RollbackVerifying", "Rollback", false),
        Stage::Complete => ("RollbackVerified", "Verify", false),
        Stage::Failed => ("RollbackFailed", "Rollback", true),
        Stage::Resolved => ("RollbackResolved", "Watch", false),
        Stage::AwaitingApproval => ("RollbackAwaitingApproval", "Decide", true),
        Stage::Blocked => ("RollbackBlocked", "Decide", true),
        Stage::Inconclusive => ("SignalsInconclusive", "Decide", true),
        Stage::Notice => ("RunbookNotice", "Decide", false),
        Stage::Superseded => ("RollbackSuperseded", "Decide", false),
        Stage::Stopped => ("RollbackStopped", "Rollback", true),
        Stage::Preexisting => ("ConditionPreexisting", "Decide", false),
        Stage::Escalated => ("RollbackEscalated", "Decide", true),
        Stage::Continued => ("RollbackContinued", "Rollback", false),
    }
}

/// What happened, in words, from the message's fields.
fn headline(stage: Stage, f: &dyn Fn(&str) -> Option<String>) -> String {
    let revision = |key: &str| f(key).map(|r| format!(" revision {r}")).unwrap_or_default();
    match stage {
        Stage::Initiated => format!("rolling back{}", revision("from_revision")),
        Stage::InProgress => format!("rolled back{}, verifying", {
            let to = revision("to_revision");
            if to.is_empty() {
                String::new()
            } else {
                format!(" to{to}")
            }
        }),
        Stage::Complete => "rollback verified, watching".into(),
        Stage::Failed => "rollback failed, a human must take over".into(),
        Stage::Resolved => "stable through the post-rollback watch: resolved".into(),
        Stage::AwaitingApproval => format!(
            "rollback waits for approval by {}",
            f("approver").unwrap_or_else(|| "an operator".into())
        ),
        Stage::Blocked => "rollback blocked, a human must decide".into(),
        Stage::Inconclusive => "cannot evaluate (no data), not acting".into(),
        Stage::Notice => "runbook notice, no action".into(),
        Stage::Superseded => "nothing rolled back: superseded".into(),
        Stage::Stopped => "rollback stopped by a human".into(),
        Stage::Preexisting => "condition held before the deploy: not rolled back".into(),
        Stage::Escalated => "undecidable past the runbook's deadline: a human must decide".into(),
        Stage::Continued => "paused rollback continues".into(),
    }
}

/// The event for one announced stage, on `regarding`, at `at`.
pub fn stage_event(message: &Message, regarding: Regarding, at: DateTime<Utc>) -> NewEvent {
    let (reason, action, warning) = stage_reason(message.stage);
    let f = |key: &str| {
        message
            .fields
            .get(key)
            .filter(|v| !v.is_empty() && v.as_str() != "n/a")
            .cloned()
    };
    let mut note = headline(message.stage, &f);
    match (f("row"), &message.severity) {
        (Some(row), Some(sev)) => note.push_str(&format!(" by row {row} ({sev})")),
        (Some(row), None) => note.push_str(&format!(" by row {row}")),
        _ => {}
    }
    // the decision's values against its thresholds, else its one-line reason
    if let Some(why) = f("evidence").or_else(|| f("reason")) {
        note.push_str(": ");
        note.push_str(&why);
    }
    if let Some(error) = f("error") {
        note.push_str(&format!(" ({error})"));
    }
    note.push_str(&format!(" [incident {}]", message.incident_id));
    NewEvent {
        regarding,
        warning,
        reason: reason.into(),
        action: action.into(),
        note,
        at,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_note_names_the_row_its_values_and_the_incident() {
        let message = Message {
            incident_id: "gl-002-1".into(),
            agent_id: "GL-002".into(),
            agent_name: "BoilerEfficiencyOptimizer".into(),
            stage: Stage::InProgress,
            severity: Some("P0".into()),
            text: "*Rolling back* <!here>".into(),
            fields: BTreeMap::from([
                ("row".to_string(), "p0-error-rate".to_string()),
                ("to_revision".to_string(), "3".to_string()),
                ("evidence".to_string(), "error_rate=0.6 > 0.5".to_string()),
                ("mention".to_string(), "<!here>".to_string()),
            ]),
        };
        let regarding = Regarding {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "greenlang".into(),
            name: "gl-002-boiler-efficiency".into(),
        };
        let at = "2026-01-15T03:00:00Z".parse().expect("time");
        let e = stage_event(&message, regarding, at);
        assert_eq!(
            e.note,
            "rolled back to revision 3, verifying by row p0-error-rate (P0): \
             error_rate=0.6 > 0.5 [incident gl-002-1]"
        );
        assert_eq!((e.reason.as_str(), e.warning), ("RollbackVerifying", false));
        assert!(
            !e.note.contains('<') && !e.note.contains('*'),
            "no Slack markup"
        );
        // every stage has a reason the API server accepts (UpperCamelCase, ≤ 128)
        for (_, stage) in Stage::ALL {
            let (reason, action, _) = stage_reason(stage);
            for word in [reason, action] {
                assert!(word.len() <= 128 && word.chars().all(|c| c.is_ascii_alphanumeric()));
                assert!(word.starts_with(|c: char| c.is_ascii_uppercase()), "{word}");
            }
        }
    }
}
