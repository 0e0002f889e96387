//! The precondition of every step that acts on a workload: it still runs the revision the
//! incident is about. A deploy that lands between rollbackd's read and its write makes the
//! write fail (a JSON patch `test`s the `metadata.generation` it read: 422; a merge or
//! strategic patch carries the `metadata.resourceVersion` it read: 409 Conflict); the step
//! re-reads, and this guard then refuses with [`ClusterError::Superseded`] instead of
//! rolling back someone's fresh deploy. It also marks the revision a rollback takes out of
//! service as rolled back as bad, so no later rollback restores it.

use std::sync::OnceLock;

use serde_json::Value;

use super::annotate::{ActionMeta, LastAction, mark_rolled_back_as_bad};
use super::history::comparable_template;
use super::history::{History, Revision, images_of};
use super::{Cluster, ClusterError};

/// The revision a step protects: the incident's, else the one the step reads first.
#[derive(Debug)]
pub struct RevisionGuard {
    incident: String,
    expected: Option<u64>,
    baseline: OnceLock<Baseline>,
}

/// The protected revision's number and pod template.
#[derive(Debug)]
struct Baseline {
    revision: u64,
    template: Value,
}

impl RevisionGuard {
    /// A guard for one step run.
    pub fn new(meta: &ActionMeta) -> Self {
        RevisionGuard {
            incident: meta.incident.clone(),
            expected: meta.expected_revision,
            baseline: OnceLock::new(),
        }
    }

    /// Checks a fresh read of the workload: it runs the protected revision's template, or
    /// the template this incident's own earlier step wrote. Anything else is someone's newer
    /// deploy: [`ClusterError::Superseded`].
    pub fn check(&self, owner: &Value, history: &History) -> Result<(), ClusterError> {
        let base = self
            .baseline
            .get_or_init(|| self.baseline_of(owner, history));
        let ours = LastAction::read(owner)
            .is_some_and(|r| r.wrote_current_template(owner, &self.incident));
        if ours || same_template(&base.template, owner) {
            return Ok(());
        }
        Err(ClusterError::Superseded {
            workload: history.workload.clone(),
            expected: base.revision,
            found: describe(owner, history),
        })
    }

    /// The incident's revision as recorded in its ReplicaSet (`null` template when that is
    /// gone), else what the workload runs at this first read.
    fn baseline_of(&self, owner: &Value, history: &History) -> Baseline {
        match self.expected {
            Some(n) => Baseline {
                revision: n,
                template: history.find(n).map_or(Value::Null, |r| r.template.clone()),
            },
            None => Baseline {
                revision: running(owner, history).map_or(0, |r| r.number),
                template: owner
                    .pointer("/spec/template")
                    .cloned()
                    .unwrap_or(Value::Null),
            },
        }
    }
}

/// The newest revision whose template the workload runs, if the controller numbered it yet.
pub fn running<'a>(owner: &Value, history: &'a History) -> Option<&'a Revision> {
    history
        .revisions
        .iter()
        .rev()
        .find(|r| same_template(&r.template, owner))
}

fn same_template(template: &Value, owner: &Value) -> bool {
    !template.is_null()
        && owner
            .pointer("/spec/template")
            .is_some_and(|t| comparable_template(t) == comparable_template(template))
}

/// What the workload runs, for a human: `revision 3 (app=web:3)`.
fn describe(owner: &Value, history: &History) -> String {
    let images = owner
        .pointer("/spec/template")
        .map(images_of)
        .unwrap_or_default()
        .iter()
        .map(|(c, i)| format!("{c}={i}"))
        .collect::<Vec<_>>()
        .join(", ");
    match running(owner, history) {
        Some(r) => format!("revision {} ({images})", r.number),
        None => format!("a new template ({images}) not yet given a revision"),
    }
}

/// The revision an incident's rollback takes out of service: the incident's revision, else
/// the one the workload runs, unless this incident's own earlier step wrote it.
pub fn rolled_back_revision<'a>(
    owner: &Value,
    history: &'a History,
    meta: &ActionMeta,
) -> Option<&'a Revision> {
    match meta.expected_revision {
        Some(n) => history.find(n),
        None => {
            let ours = LastAction::read(owner)
                .is_some_and(|r| r.wrote_current_template(owner, &meta.incident));
            running(owner, history).filter(|_| !ours)
        }
    }
}

/// Marks the revision a rollback takes out of service as rolled back as bad (before the
/// rollback's write, so a crash in between cannot lose the mark), and returns its number.
/// A mark that cannot be written is logged and the rollback goes on: refusing to roll back
/// a bad deploy for want of a bookkeeping annotation would be the greater harm.
pub async fn mark_bad(
    cluster: &Cluster,
    namespace: &str,
    owner: &Value,
    history: &History,
    meta: &ActionMeta,
) -> Option<u64> {
    let rev = rolled_back_revision(owner, history, meta)?;
    match mark_rolled_back_as_bad(cluster, namespace, &rev.replicaset, &meta.incident).await {
        Ok(()) => Some(rev.number),
        Err(e) => {
            tracing::warn!(workload = %history.workload, revision = rev.number, error = %e,
                "could not mark the rolled-back revision as bad");
            None
        }
    }
}
