//! The safety gate between a decision and an incident: pause wins over everything, a dry
//! run never mutates, and unattended rollbacks are rate-limited per agent per window and
//! globally per hour. Pure: the counts and the pause come in as data.

use rollbackd_core::engine::DecisionKind;

/// What the gate knows.
#[derive(Debug, Clone, Default)]
pub struct GateInput {
    /// The engine's decision kind; `None` is ignored like a `none` decision.
    pub decision: Option<DecisionKind>,
    /// Who paused automation for this agent (or globally), if anyone.
    pub paused_by: Option<String>,
    /// Unattended rollbacks of this agent since its deploy.
    pub agent_rollbacks_in_window: usize,
    /// Unattended rollbacks of every agent in the last hour.
    pub rollbacks_last_hour: usize,
    /// At most this many unattended rollbacks per agent per window
    /// (`safety.max_rollbacks_per_agent_per_window`).
    pub max_per_agent_per_window: usize,
    /// At most this many unattended rollbacks per hour across agents
    /// (`safety.max_rollbacks_per_hour`).
    pub max_per_hour: usize,
}

/// What to do with a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateOutcome {
    /// Nothing to open an incident for.
    Ignore,
    /// Automation is paused: record the decision, act on nothing.
    Paused(String),
    /// Open an incident that rolls back.
    Rollback,
    /// Open an incident that waits for approval.
    AwaitApproval,
    /// Open a blocked incident and escalate; the string says why.
    Block(String),
    /// Tell a human (notify or inconclusive): no rollback.
    Tell,
}

/// Applies the gate.
pub fn gate(input: &GateInput) -> GateOutcome {
    let Some(kind) = input.decision else {
        return GateOutcome::Ignore;
    };
    if matches!(kind, DecisionKind::None) {
        return GateOutcome::Ignore;
    }
    if let Some(by) = &input.paused_by {
        return GateOutcome::Paused(format!("automation paused by {by}"));
    }
    match kind {
        DecisionKind::Rollback => {
            if input.agent_rollbacks_in_window >= input.max_per_agent_per_window {
                GateOutcome::Block(format!(
                    "rate limit: {} unattended rollback(s) of this agent already in this window (max {})",
                    input.agent_rollbacks_in_window, input.max_per_agent_per_window
                ))
            } else if input.rollbacks_last_hour >= input.max_per_hour {
                GateOutcome::Block(format!(
                    "rate limit: {} unattended rollback(s) in the last hour across all agents (max {})",
                    input.rollbacks_last_hour, input.max_per_hour
                ))
            } else {
                GateOutcome::Rollback
            }
        }
        DecisionKind::AwaitApproval => GateOutcome::AwaitApproval,
        DecisionKind::Blocked => GateOutcome::Block("blocked by the policy".into()),
        DecisionKind::Notify | DecisionKind::Inconclusive | DecisionKind::Escalate => {
            GateOutcome::Tell
        }
        DecisionKind::None => GateOutcome::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(kind: DecisionKind) -> GateInput {
        GateInput {
            decision: Some(kind),
            max_per_agent_per_window: 1,
            max_per_hour: 3,
            ..Default::default()
        }
    }

    #[test]
    fn pause_wins_over_everything() {
        for kind in [
            DecisionKind::Rollback,
            DecisionKind::AwaitApproval,
            DecisionKind::Blocked,
            DecisionKind::Inconclusive,
        ] {
            let mut i = input(kind);
            i.paused_by = Some("alice".into());
            assert_eq!(
                gate(&i),
                GateOutcome::Paused("automation paused by alice".into())
            );
        }
    }

    #[test]
    fn rate_limits_turn_rollbacks_into_blocks() {
        assert_eq!(gate(&input(DecisionKind::Rollback)), GateOutcome::Rollback);
        let mut i = input(DecisionKind::Rollback);
        i.agent_rollbacks_in_window = 1;
        assert!(matches!(gate(&i), GateOutcome::Block(r) if r.contains("this agent")));
        let mut i = input(DecisionKind::Rollback);
        i.rollbacks_last_hour = 3;
        assert!(matches!(gate(&i), GateOutcome::Block(r) if r.contains("last hour")));
        assert_eq!(
            gate(&input(DecisionKind::AwaitApproval)),
            GateOutcome::AwaitApproval,
            "approvals are not rate limited"
        );
        assert_eq!(gate(&input(DecisionKind::None)), GateOutcome::Ignore);
        assert_eq!(gate(&input(DecisionKind::Inconclusive)), GateOutcome::Tell);
    }
}
