//! rollbackd's own annotations: what it did to a workload, and the marks on revisions that
//! passed verification or were rolled back as bad (their keys are [`super::history`]'s, which
//! reads them). A restarted or second daemon reads them to see what was done.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::history::{
    ROLLED_BACK_AS_BAD, ROLLED_BACK_AS_BAD_HASH, VERIFIED, VERIFIED_HASH, hash_label, load,
};
use super::{Cluster, ClusterError, Kind, annotation};
use rollbackd_core::policy::Workload;

/// The annotation recording rollbackd's last action on a workload (a JSON string).
pub const LAST_ACTION: &str = "rollbackd.io/last-action";
/// The annotation listing the steps rollbackd applied to an object, newest last, as a JSON
/// array of `"<incident>/<method>/<step index>"` (at most [`APPLIED_STEPS_KEPT`]). Unlike
/// [`LAST_ACTION`] it survives later steps, so a resumed run (even one whose journal was
/// lost) can tell every step it already applied to this object.
pub const APPLIED_STEPS: &str = "rollbackd.io/applied-steps";
/// How many entries [`APPLIED_STEPS`] keeps.
pub const APPLIED_STEPS_KEPT: usize = 32;
/// The annotation remembering the replica count before rollbackd scaled.
pub const REPLICAS_BEFORE_SCALE: &str = "rollbackd.io/replicas-before-scale";

/// Who is acting and why: attached to every mutation.
#[derive(Debug, Clone)]
pub struct ActionMeta {
    /// The incident the action belongs to.
    pub incident: String,
    /// The method the step belongs to.
    pub method: String,
    /// The step's name.
    pub step: String,
    /// The step's index in its method.
    pub step_index: usize,
    /// Why (one sentence for a human).
    pub reason: String,
    /// Report the change instead of making it.
    pub dry_run: bool,
    /// The revision the incident is about, for the workload acted on (`None`: the revision
    /// the step reads first). A step whose workload has moved on to another deploy fails
    /// with [`ClusterError::Superseded`] instead of acting on the newer deploy.
    pub expected_revision: Option<u64>,
}

/// The content of [`LAST_ACTION`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastAction {
    /// Incident id.
    pub incident: String,
    /// Method name.
    #[serde(default)]
    pub method: String,
    /// Step name.
    pub step: String,
    /// Step index in the method.
    #[serde(default)]
    pub step_index: Option<usize>,
    /// Step kind (`undo`, `set_image`, …).
    #[serde(default)]
    pub kind: String,
    /// When (RFC 3339).
    pub at: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// The workload's revision when the action was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_revision: Option<u64>,
    /// The revision rolled back to, for undo and revision-based set_image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_revision: Option<u64>,
    /// The `pod-template-hash` of the ReplicaSet whose template an undo restored: the
    /// deployment controller reuses that ReplicaSet, so the revision rollbackd produced is
    /// the one whose ReplicaSet carries this hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_hash: Option<String>,
    /// [`template_digest`] of the pod template rollbackd wrote (undo, set_image, restart):
    /// the workload still runs rollbackd's change while its template has this digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_digest: Option<String>,
}

impl LastAction {
    /// A record for a step about to be applied.
    pub fn new(meta: &ActionMeta, kind: &str) -> Self {
        LastAction {
            incident: meta.incident.clone(),
            method: meta.method.clone(),
            step: meta.step.clone(),
            step_index: Some(meta.step_index),
            kind: kind.to_string(),
            at: Utc::now(),
            reason: meta.reason.clone(),
            from_revision: None,
            to_revision: None,
            template_hash: None,
            template_digest: None,
        }
    }

    /// Whether the workload `owner` still runs the template this record says rollbackd
    /// wrote for `incident`.
    pub fn wrote_current_template(&self, owner: &Value, incident: &str) -> bool {
        self.incident == incident && self.wrote_template_of(owner)
    }

    /// Whether `owner` still runs the template this record says rollbackd wrote.
    fn wrote_template_of(&self, owner: &Value) -> bool {
        self.template_digest.as_deref().is_some_and(|d| {
            owner
                .pointer("/spec/template")
                .is_some_and(|t| template_digest(t) == d)
        })
    }

    /// The annotation value (a JSON string).
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the record on an object, if any (an unreadable record counts as none).
    pub fn read(obj: &Value) -> Option<LastAction> {
        annotation(obj, LAST_ACTION).and_then(|s| serde_json::from_str(s).ok())
    }

    /// rollbackd's annotations for an object about to be changed: this record as
    /// [`LAST_ACTION`] and the object's [`APPLIED_STEPS`] with this step appended.
    pub fn annotations(&self, current: &Value) -> serde_json::Map<String, Value> {
        let mut steps = applied_steps(current);
        let id = step_id(&self.incident, &self.method, self.step_index.unwrap_or(0));
        steps.retain(|s| *s != id);
        steps.push(id);
        let skip = steps.len().saturating_sub(APPLIED_STEPS_KEPT);
        let steps: Vec<String> = steps.into_iter().skip(skip).collect();
        let mut m = serde_json::Map::new();
        m.insert(LAST_ACTION.to_string(), json!(self.to_annotation()));
        m.insert(
            APPLIED_STEPS.to_string(),
            json!(serde_json::to_string(&steps).unwrap_or_default()),
        );
        m
    }

    /// Whether this record is the given incident's method step.
    pub fn is_step(&self, incident: &str, method: &str, step_index: usize) -> bool {
        self.incident == incident && self.method == method && self.step_index == Some(step_index)
    }
}

/// A stable digest of a pod template, ignoring the controllers' hash labels and empty
/// values (64-bit FNV-1a over canonical JSON, as 16 hex digits).
pub fn template_digest(template: &Value) -> String {
    let mut text = String::new();
    canonical_json(&super::history::comparable_template(template), &mut text);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// JSON with object keys in sorted order, whatever the map's own order.
fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(e, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The identifier of a step in [`APPLIED_STEPS`].
pub fn step_id(incident: &str, method: &str, step_index: usize) -> String {
    format!("{incident}/{method}/{step_index}")
}

/// The steps an object's [`APPLIED_STEPS`] lists (empty when absent or unreadable).
pub fn applied_steps(obj: &Value) -> Vec<String> {
    annotation(obj, APPLIED_STEPS)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// Whether rollbackd's annotations on an object show this step was applied.
pub fn step_applied(obj: &Value, incident: &str, method: &str, step_index: usize) -> bool {
    LastAction::read(obj).is_some_and(|r| r.is_step(incident, method, step_index))
        || applied_steps(obj).contains(&step_id(incident, method, step_index))
}

/// What one action did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ActionOutcome {
    /// The change was made.
    Done {
        /// What was changed (step-specific).
        detail: Value,
    },
    /// Nothing needed doing.
    Skipped {
        /// Why.
        reason: String,
        /// Step-specific detail.
        detail: Value,
    },
    /// Dry run: what would be sent.
    Planned {
        /// The exact request(s).
        plan: Value,
    },
}

impl ActionOutcome {
    /// The step-specific detail (the plan for dry runs).
    pub fn detail(&self) -> &Value {
        match self {
            ActionOutcome::Done { detail } | ActionOutcome::Skipped { detail, .. } => detail,
            ActionOutcome::Planned { plan } => plan,
        }
    }
}

/// Marks a ReplicaSet as verified (`rollbackd.io/verified: "true"`, bound to its
/// `pod-template-hash` by [`VERIFIED_HASH`]).
pub async fn mark_verified(
    cluster: &Cluster,
    namespace: &str,
    replicaset: &str,
) -> Result<(), ClusterError> {
    mark_replicaset(
        cluster,
        namespace,
        replicaset,
        (VERIFIED, "true"),
        VERIFIED_HASH,
    )
    .await
}

/// Marks revision `revision` of a policy workload as verified (it lived through its whole
/// post-deploy window without a breach), so `last_known_good` can pick it. Returns the
/// ReplicaSet's name; a revision not in the history is [`ClusterError::RevisionNotFound`].
pub async fn mark_revision_verified(
    cluster: &Cluster,
    w: &Workload,
    revision: u64,
) -> Result<String, ClusterError> {
    let (_, history) = load(cluster, w).await?;
    let rs = history
        .find(revision)
        .ok_or(ClusterError::RevisionNotFound(revision))?
        .replicaset
        .clone();
    mark_verified(cluster, &w.namespace, &rs).await?;
    Ok(rs)
}

/// Marks a ReplicaSet as rolled back as bad by `incident` (bound to its hash by
/// [`ROLLED_BACK_AS_BAD_HASH`]).
pub async fn mark_rolled_back_as_bad(
    cluster: &Cluster,
    namespace: &str,
    replicaset: &str,
    incident: &str,
) -> Result<(), ClusterError> {
    let mark = (ROLLED_BACK_AS_BAD, incident);
    mark_replicaset(
        cluster,
        namespace,
        replicaset,
        mark,
        ROLLED_BACK_AS_BAD_HASH,
    )
    .await
}

/// Sets one annotation on a ReplicaSet, with `hash_key` naming the ReplicaSet's own
/// template hash so the mark cannot spread to other ReplicaSets.
async fn mark_replicaset(
    cluster: &Cluster,
    namespace: &str,
    replicaset: &str,
    (key, value): (&str, &str),
    hash_key: &str,
) -> Result<(), ClusterError> {
    let rs = cluster.get(Kind::ReplicaSet, namespace, replicaset).await?;
    let hash = hash_label(&rs)
        .ok_or_else(|| {
            ClusterError::Invalid(format!(
                "ReplicaSet {namespace}/{replicaset} has no template hash label"
            ))
        })?
        .to_string();
    let patch = json!({"metadata": {"annotations": {key: value, hash_key: hash}}});
    cluster
        .patch(
            Kind::ReplicaSet,
            namespace,
            replicaset,
            &kube::api::Patch::Merge(patch),
            false,
        )
        .await?;
    Ok(())
}

/// Whether the workload's current revision is rollbackd's own, as its last-action record on
/// `owner` says: an undo's revision is the ReplicaSet whose template it restored (its hash,
/// `current_hash`, is the one recorded); a set_image's or restart's is the template it wrote,
/// still the workload's template. A human deploy landing right after rollbackd's action
/// (even one the controller numbers "rollbackd's revision + 1") is not rollbackd's.
pub fn created_by_rollbackd(owner: &Value, current_hash: Option<&str>) -> bool {
    let Some(r) = LastAction::read(owner) else {
        return false;
    };
    if !matches!(
        r.kind.as_str(),
        "undo" | "argo_undo" | "set_image" | "restart"
    ) {
        return false;
    }
    let wrote_template = r.wrote_template_of(owner);
    let restored_current = match (r.template_hash.as_deref(), current_hash) {
        (Some(restored), Some(current)) => restored == current,
        _ => true,
    };
    wrote_template && restored_current
}
