//! The precondition of every step that acts on a workload: it still runs the revision the
//! incident is about. A deploy that lands between rollbackd's read and its write makes the
//! write fail (every write carries the resourceVersion it read, so the API server answers
//! 409 Conflict); the step re-reads, and this guard then refuses with
//! [`ClusterError::Superseded`] instead of rolling back someone's fresh deploy.

use std::sync::OnceLock;

use serde_json::Value;

use super::ClusterError;
use super::annotate::{ActionMeta, LastAction};
use super::history::{History, Revision, images_of};
use super::undo::comparable_template;

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
