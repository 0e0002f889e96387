//! What a method run needs besides the method: incident, policy, reason, variables,
//! dry-run flag and cancellation.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::policy::Policy;

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
        }
    }
}
