//! What a method run needs besides the method: incident, policy, reason, variables,
//! dry-run flag and cancellation.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use rollbackd_core::policy::Policy;

/// The context of one method run.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The incident the run belongs to.
    pub incident_id: String,
    /// The policy whose method runs.
    pub policy: Arc<Policy>,
    /// Why (one sentence for a human; recorded on every mutation).
    pub reason: String,
    /// Report what each mutating step would do; mutate nothing.
    pub dry_run: bool,
    /// Values for `{name}` placeholders in HTTP steps (e.g. `plant` from alert labels).
    pub vars: BTreeMap<String, String>,
    /// Cancels the run between steps and inside waits.
    pub cancel: CancellationToken,
    /// The deploy the incident is about (the runner fills it from the incident). Steps on
    /// that workload refuse with `ClusterError::Superseded` once it runs another revision.
    pub incident_revision: Option<IncidentRevision>,
    /// Stops the run at the next step boundary (a human's cancel or pause, shutdown): the
    /// step in flight finishes and reaches its journal; later steps are not run.
    pub stop: CancellationToken,
}

/// The workload and revision an incident is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRevision {
    /// The workload's policy id.
    pub workload: String,
    /// Its revision when the incident opened.
    pub revision: u64,
}

impl RunContext {
    /// Whether the run must not start another step.
    pub fn stopping(&self) -> bool {
        self.cancel.is_cancelled() || self.stop.is_cancelled()
    }
}

impl RunContext {
    /// A context with no variables, not a dry run, and a fresh cancellation token.
    pub fn new(
        incident_id: impl Into<String>,
        policy: Arc<Policy>,
        reason: impl Into<String>,
    ) -> Self {
        RunContext {
            incident_id: incident_id.into(),
            policy,
            reason: reason.into(),
            dry_run: false,
            vars: BTreeMap::new(),
            cancel: CancellationToken::new(),
            incident_revision: None,
            stop: CancellationToken::new(),
        }
    }

    /// The revision a step on workload `workload_id` expects to find (`None` for workloads
    /// other than the incident's).
    pub fn expected_revision(&self, workload_id: &str) -> Option<u64> {
        self.incident_revision
            .as_ref()
            .filter(|r| r.workload == workload_id)
            .map(|r| r.revision)
    }
}
