//! Whether an incident was overtaken by the world before anything was mutated: its deploy
//! revision is no longer the one running (a newer deploy landed, e.g. a fix forward), or the
//! deploy is past the policy's `fix_forward_after`. Pure: what runs and `now` come in.

use chrono::{DateTime, Utc};

use super::{Incident, State, Trigger};
use crate::policy::Policy;
use crate::policy::duration::format_duration;

/// What runs on the agent's primary workload now, as the evaluation loop last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    /// The running revision.
    pub revision: Option<u64>,
    /// When it was deployed.
    pub deployed_at: Option<DateTime<Utc>>,
}

/// Why `incident` must end as superseded instead of rolling back, or `None` when it still
/// applies. A manual rollback is not bound by `fix_forward_after` (a human asked for it);
/// only an automatic incident is.
pub fn superseded(
    incident: &Incident,
    policy: &Policy,
    running: Option<Running>,
    now: DateTime<Utc>,
) -> Option<String> {
    if let (
        Some(ours),
        Some(Running {
            revision: Some(theirs),
            deployed_at,
        }),
    ) = (incident.revision, running)
        && ours != theirs
    {
        let at = deployed_at.map_or(String::new(), |at| format!(" at {}", at.to_rfc3339()));
        return Some(format!(
            "deploy revision {ours} was replaced by revision {theirs}{at}: nothing to roll back"
        ));
    }
    if incident.trigger == Trigger::Automatic
        && let (Some(ff), Some(at)) = (policy.window.fix_forward_after, incident.deploy_at)
        && now - at > ff
    {
        return Some(format!(
            "deploy revision {} is {} old, past fix_forward_after {}: fix forward",
            incident.revision.map_or("?".into(), |r| r.to_string()),
            format_duration(now - at),
            format_duration(ff)
        ));
    }
    None
}

/// Whether the lifecycle lets `state` end as superseded (`rolling_back` only before a
/// mutating step: the caller checks its journal).
pub fn may_supersede(state: State) -> bool {
    super::next(state, super::Event::Supersede).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use std::collections::BTreeMap;

    fn incident(revision: u64, deploy_at: DateTime<Utc>, trigger: Trigger) -> Incident {
        Incident {
            id: "gl-002-1".into(),
            agent: "GL-002".into(),
            namespace: "greenlang".into(),
            workload: "gl-002".into(),
            revision: Some(revision),
            from_image: None,
            row: None,
            severity: None,
            method: None,
            trigger,
            requested_by: None,
            reason: "x".into(),
            decision: serde_json::Value::Null,
            state: State::AwaitingApproval,
            dry_run: false,
            vars: BTreeMap::new(),
            deploy_at: Some(deploy_at),
            created_at: deploy_at,
            updated_at: deploy_at,
        }
    }

    #[test]
    fn a_newer_revision_or_an_old_deploy_supersedes() {
        let p =
            crate::policy::load_file(&crate::policy::seed_policy("gl-001.toml")).expect("loads");
        let ff = p
            .window
            .fix_forward_after
            .expect("GL-001 has fix_forward_after");
        let now: DateTime<Utc> = "2026-01-15T03:00:00Z".parse().expect("a time");
        let fresh = incident(7, now - TimeDelta::minutes(5), Trigger::Automatic);
        let same = Running {
            revision: Some(7),
            deployed_at: fresh.deploy_at,
        };
        assert_eq!(superseded(&fresh, &p, Some(same), now), None);
        let newer = Running {
            revision: Some(8),
            deployed_at: Some(now),
        };
        let why = superseded(&fresh, &p, Some(newer), now).expect("superseded");
        assert!(
            why.starts_with("deploy revision 7 was replaced by revision 8 at "),
            "{why}"
        );
        let old = incident(7, now - ff - TimeDelta::minutes(1), Trigger::Automatic);
        let why = superseded(&old, &p, Some(same), now).expect("past fix_forward_after");
        assert!(why.contains("past fix_forward_after"), "{why}");
        let manual = incident(7, now - ff - TimeDelta::minutes(1), Trigger::Manual);
        assert_eq!(superseded(&manual, &p, Some(same), now), None);
        assert!(may_supersede(State::Blocked));
        assert!(!may_supersede(State::Verifying));
    }
}
