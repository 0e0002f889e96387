//! `kubectl rollout undo [--to-revision=N]`, with kubectl's semantics (`rollback.go`):
//! look the revision up, refuse a paused workload, skip when the template already matches,
//! else one JSON Patch replacing `/spec/template` and `/metadata/annotations`.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::annotate::{
    APPLIED_STEPS, ActionMeta, ActionOutcome, LAST_ACTION, LastAction, template_digest,
};
use super::guard::{RevisionGuard, mark_bad};
use super::history::{
    ROLLED_BACK_AS_BAD, ROLLED_BACK_AS_BAD_HASH, Revision, VERIFIED, VERIFIED_HASH,
    comparable_template, history_of, images_of, without_hash,
};
use super::{Cluster, ClusterError, Kind, generation, name_of, retry};
use rollbackd_core::policy::{RevisionRef, Workload};

/// Annotations kubectl keeps from the Deployment instead of the ReplicaSet.
pub const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// What an undo did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UndoOutcome {
    /// The revision the workload was at.
    pub from_revision: u64,
    /// The revision whose template was restored.
    pub to_revision: u64,
    /// `(container, image)` of the restored template.
    pub images: Vec<(String, String)>,
    /// Newer revisions passed over because rollbackd had rolled them back as bad.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_bad: Vec<u64>,
    /// The revision this undo marked as rolled back as bad.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marked_bad: Option<u64>,
}

/// The annotations kubectl would send: skip-listed ones from the workload, the rest from
/// the ReplicaSet. rollbackd's own annotations are never copied from the ReplicaSet.
pub fn rollback_annotations(owner: &Value, rev: &Revision) -> Map<String, Value> {
    let mut out = Map::new();
    let owner_ann = owner
        .pointer("/metadata/annotations")
        .and_then(Value::as_object);
    for k in ANNOTATIONS_TO_SKIP {
        if let Some(v) = owner_ann.and_then(|a| a.get(k)) {
            out.insert(k.to_string(), v.clone());
        }
    }
    for (k, v) in &rev.annotations {
        let ours = [
            VERIFIED,
            VERIFIED_HASH,
            ROLLED_BACK_AS_BAD,
            ROLLED_BACK_AS_BAD_HASH,
            LAST_ACTION,
            APPLIED_STEPS,
        ]
        .contains(&k.as_str());
        if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) && !ours {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Plans or performs an undo of a Deployment or Rollout object. The JSON patch `test`s the
/// `metadata.generation` it read (the spec is unchanged since: status updates do not
/// count); when the test fails the undo re-reads and, if someone deployed meanwhile, fails
/// with [`ClusterError::Superseded`].
pub async fn undo_object(
    cluster: &Cluster,
    kind: Kind,
    namespace: &str,
    name: &str,
    to: RevisionRef,
    meta: &ActionMeta,
) -> Result<(UndoOutcome, ActionOutcome), ClusterError> {
    let guard = RevisionGuard::new(meta);
    retry::on_conflict(cluster.retry_policy(), || {
        undo_once(cluster, kind, namespace, name, to, meta, &guard)
    })
    .await
}

/// One read-check-write cycle of an undo.
async fn undo_once(
    cluster: &Cluster,
    kind: Kind,
    namespace: &str,
    name: &str,
    to: RevisionRef,
    meta: &ActionMeta,
    guard: &RevisionGuard,
) -> Result<(UndoOutcome, ActionOutcome), ClusterError> {
    let owner = cluster.get(kind, namespace, name).await?;
    let history = history_of(cluster, kind, &owner).await?;
    guard.check(&owner, &history)?;
    let target = match history.resolve_safe(to) {
        Ok(target) => target,
        Err(ClusterError::NoSafeTarget { reason, .. })
            if meta.expected_revision.is_none() && already_restored(&owner, &history, to) =>
        {
            // a coordinated method reaching another workload that rollbackd already rolled
            // back (e.g. for its own incident): it is on the revision rollbackd restored,
            // and every earlier one was rolled back as bad. Leave it there. (On the
            // incident's own workload this stays an error: the incident escalates.)
            let current = history.current().map_or(0, |r| r.number);
            let reason = format!(
                "already on revision {current}, which rollbackd restored; nothing safer to go to ({reason})"
            );
            return Ok((
                UndoOutcome {
                    from_revision: current,
                    to_revision: current,
                    images: history
                        .current()
                        .map(|r| images_of(&r.template))
                        .unwrap_or_default(),
                    skipped_bad: Vec::new(),
                    marked_bad: None,
                },
                ActionOutcome::Skipped {
                    reason,
                    detail: Value::Null,
                },
            ));
        }
        Err(e) => return Err(e),
    };
    let rev = target.revision;
    let from_revision = history.current().map(|r| r.number).unwrap_or(0);
    let mut outcome = UndoOutcome {
        from_revision,
        to_revision: rev.number,
        images: images_of(&rev.template),
        skipped_bad: target.skipped_bad,
        marked_bad: None,
    };
    if !outcome.skipped_bad.is_empty() {
        tracing::info!(workload = %history.workload, skipped = ?outcome.skipped_bad, to = rev.number,
            "passing over revisions rollbackd rolled back as bad");
    }
    if owner.pointer("/spec/paused") == Some(&Value::Bool(true)) {
        return Err(ClusterError::Paused);
    }
    let current = owner
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    if comparable_template(&rev.template) == comparable_template(&current) {
        let reason = format!("current template already matches revision {}", rev.number);
        return Ok((
            outcome.clone(),
            ActionOutcome::Skipped {
                reason,
                detail: serde_json::to_value(&outcome)?,
            },
        ));
    }
    let template = without_hash(&rev.template);
    let mut annotations = rollback_annotations(&owner, &rev);
    let mut record = LastAction::new(
        meta,
        if kind == Kind::Rollout {
            "argo_undo"
        } else {
            "undo"
        },
    );
    record.from_revision = Some(from_revision);
    record.to_revision = Some(rev.number);
    record.template_hash = rev.template_hash.clone();
    record.template_digest = Some(template_digest(&template));
    annotations.extend(record.annotations(&owner));
    let ops = json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        {"op": "test", "path": "/metadata/generation", "value": generation(&owner)},
    ]);
    if meta.dry_run {
        return Ok((
            outcome.clone(),
            ActionOutcome::Planned {
                plan: json!({
                    "request": format!("PATCH {} {namespace}/{name}", kind.name()),
                    "content_type": "application/json-patch+json",
                    "patch": ops,
                    "undo": outcome,
                }),
            },
        ));
    }
    let patch: json_patch::Patch = serde_json::from_value(ops)?;
    outcome.marked_bad = mark_bad(cluster, namespace, &owner, &history, meta).await;
    cluster
        .patch(kind, namespace, name, &kube::api::Patch::Json(patch), false)
        .await
        .map_err(|e| e.from_json_patch_test(&format!("{} {namespace}/{name}", kind.name())))?;
    tracing::info!(
        workload = %format!("{namespace}/{}", name_of(&owner)),
        from = from_revision, to = rev.number, incident = %meta.incident,
        "rolled back"
    );
    let detail = serde_json::to_value(&outcome)?;
    Ok((outcome, ActionOutcome::Done { detail }))
}

/// `undo` on a policy workload (Deployment or Rollout).
pub async fn undo(
    cluster: &Cluster,
    w: &Workload,
    to: RevisionRef,
    meta: &ActionMeta,
) -> Result<(UndoOutcome, ActionOutcome), ClusterError> {
    undo_object(cluster, Kind::of(w), &w.namespace, &w.name, to, meta).await
}

/// Whether the workload already runs a revision rollbackd restored by rolling back, and the
/// step asks for "whatever is before it" (not a named revision).
pub(crate) fn already_restored(
    owner: &Value,
    history: &crate::cluster::history::History,
    to: RevisionRef,
) -> bool {
    matches!(to, RevisionRef::Previous | RevisionRef::LastKnownGood)
        && crate::cluster::annotate::created_by_rollbackd(
            owner,
            history.current().and_then(|r| r.template_hash.as_deref()),
        )
}
