//! What the engine decides, and the evidence that explains it.

use serde::Serialize;

use crate::policy::Action;

/// The outcome of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Nothing to do (no row matched, or a fix-forward row).
    None,
    /// Tell a human; do not act.
    Notify,
    /// A row wants a rollback after human approval.
    AwaitApproval,
    /// Roll back now.
    Rollback,
    /// A rollback was wanted but a guard (or an earlier rollback) stops it: escalate.
    Blocked,
    /// Data is missing: nothing is decided, a human is told.
    Inconclusive,
    /// A rollback row has stayed undecidable past its runbook deadline: a human must decide
    /// now (paged, not just told).
    Escalate,
}

impl DecisionKind {
    /// The spelling used in outputs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::None => "none",
            DecisionKind::Notify => "notify",
            DecisionKind::AwaitApproval => "await_approval",
            DecisionKind::Rollback => "rollback",
            DecisionKind::Blocked => "blocked",
            DecisionKind::Inconclusive => "inconclusive",
            DecisionKind::Escalate => "escalate",
        }
    }
}

/// Three-valued truth: missing data is neither true nor false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Truth {
    /// Holds on the data.
    True,
    /// Does not hold on the data.
    False,
    /// Cannot be told: no data, stale or non-finite data, or no baseline.
    Unknown,
}

impl Truth {
    /// Kleene AND over many values: any false is false, else any unknown is unknown.
    pub fn all(values: impl IntoIterator<Item = Truth>) -> Truth {
        let mut result = Truth::True;
        for v in values {
            match v {
                Truth::False => return Truth::False,
                Truth::Unknown => result = Truth::Unknown,
                Truth::True => {}
            }
        }
        result
    }
}

/// One condition against its signal's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionEvidence {
    /// Name of the signal tested.
    pub signal: String,
    /// The latest value, if any.
    pub value: Option<f64>,
    /// The pre-deploy baseline, for baseline-relative conditions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// `value / baseline` for baseline-relative conditions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// The thresholds, e.g. `> 0.5` or `> 2x baseline`.
    pub threshold: String,
    /// How long the condition has held (when it holds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_for: Option<String>,
    /// How long it must hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_for: Option<String>,
    /// Whether the condition holds, does not, or cannot be told.
    pub truth: Truth,
    /// Why the truth is unknown or false when that is not obvious.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The signal's value just before the deploy, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_deploy: Option<f64>,
    /// Set when the condition holds but already held before the deploy: it is not evidence
    /// against the deploy (`held before the deploy since …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preexisting: Option<String>,
    /// The condition holds, but whether the deploy caused it cannot be told without the
    /// signal's value before the deploy (an edge that can fetch it should).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub needs_pre_deploy: bool,
}

impl ConditionEvidence {
    /// A condition not evaluated yet: its thresholds, and no value (truth unknown).
    pub fn unknown(cond: &crate::policy::Condition) -> Self {
        ConditionEvidence {
            signal: cond.signal.clone(),
            value: None,
            baseline: None,
            ratio: None,
            threshold: cond.describe_thresholds(),
            held_for: None,
            required_for: cond.held_for.map(crate::policy::duration::format_duration),
            truth: Truth::Unknown,
            note: None,
            pre_deploy: None,
            preexisting: None,
            needs_pre_deploy: false,
        }
    }
}

/// One guard's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardEvidence {
    /// The guard's id.
    pub guard: String,
    /// The guard's sentence for humans.
    pub description: String,
    /// True when the guard stops the rollback (its conditions hold or cannot be checked).
    pub blocks: bool,
    /// Each of the guard's conditions against its value.
    pub conditions: Vec<ConditionEvidence>,
}

impl GuardEvidence {
    /// A guard's verdict from its conditions: it blocks unless one of them is false (a
    /// condition that cannot be evaluated blocks: fail safe).
    pub fn of(
        guard: &crate::policy::Guard,
        evaluate: impl Fn(&crate::policy::Condition) -> ConditionEvidence,
    ) -> Self {
        let conditions: Vec<ConditionEvidence> = guard.when.iter().map(evaluate).collect();
        GuardEvidence {
            guard: guard.id.clone(),
            description: guard.description.clone(),
            blocks: Truth::all(conditions.iter().map(|c| c.truth)) != Truth::False,
            conditions,
        }
    }

    /// Why it blocks, for people: it holds, or it cannot be evaluated.
    pub fn why(&self) -> &'static str {
        if self.conditions.iter().any(|c| c.truth == Truth::Unknown) {
            "cannot be evaluated (fail safe)"
        } else {
            "holds"
        }
    }
}

/// A row that could not be evaluated for lack of data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnknownRow {
    /// The row's id.
    pub row: String,
    /// The row's runbook severity (P0, Severity 1…).
    pub severity: String,
    /// What the row would do had it data.
    pub action: Action,
    /// `signal: why` for each condition that lacked data.
    pub missing: Vec<String>,
    /// How long the row has been undecidable without a break.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_for: Option<String>,
    /// The runbook's deadline for acting on the row, when it has passed while undecidable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_passed: Option<String>,
}

/// A row whose conditions hold, but not because of the deploy: told, never acted on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreexistingRow {
    /// The row's id.
    pub row: String,
    /// The row's runbook severity (P0, Severity 1…).
    pub severity: String,
    /// What the row would do were its conditions caused by the deploy.
    pub action: Action,
    /// `signal: held before the deploy since …` for each pre-existing condition.
    pub held_before: Vec<String>,
}

/// Everything that explains a decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// How old the deploy is, e.g. `4m`; `None` with no deploy observed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy_age: Option<String>,
    /// The deploy's revision, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The matched row's conditions.
    pub conditions: Vec<ConditionEvidence>,
    /// The verdicts of the guards that apply to the matched rollback row.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<GuardEvidence>,
    /// Rows that could not be evaluated for lack of data, with what was missing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_rows: Vec<UnknownRow>,
    /// Rows that hold only because of conditions older than the deploy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preexisting: Vec<PreexistingRow>,
    /// Signals of holding rollback-row conditions that lack a pre-deploy value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_pre_deploy: Vec<String>,
    /// Who approved a rollback of this deploy (`unknown` when the approval names no one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// What stopped a wanted rollback: a guard id, or `already_rolled_back`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
}

impl Evidence {
    /// The ids of the rows that could not be evaluated (for
    /// [`Observations::track_unknown`](super::Observations::track_unknown)).
    pub fn unknown_row_ids(&self) -> Vec<String> {
        self.unknown_rows.iter().map(|u| u.row.clone()).collect()
    }
}

/// The engine's answer for one workload at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// What to do.
    pub decision: DecisionKind,
    /// Id of the matched row; `None` when no row decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<String>,
    /// The matched row's runbook severity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// The method the matched row names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The runbook's deadline for acting on the row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// One sentence a human can read at 3 a.m.
    pub reason: String,
    /// What the decision is based on.
    pub evidence: Evidence,
}

impl Decision {
    /// A decision with no row.
    pub fn plain(decision: DecisionKind, reason: impl Into<String>, evidence: Evidence) -> Self {
        Self {
            decision,
            row: None,
            severity: None,
            method: None,
            deadline: None,
            reason: reason.into(),
            evidence,
        }
    }
}
