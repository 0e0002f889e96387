//! Argo Rollouts: abort (as `kubectl argo rollouts abort`) and undo on the Rollout's history.

use serde_json::json;

use super::annotate::{ActionMeta, ActionOutcome, LastAction};
use super::undo::{UndoOutcome, undo_object};
use super::{Cluster, ClusterError, Kind};
use crate::policy::{RevisionRef, Workload};

/// Plans or performs an abort: merge patch `{"status":{"abort":true}}` on the status
/// subresource, then rollbackd's annotation on the Rollout (a second, metadata-only patch:
/// the status subresource ignores metadata).
pub async fn argo_abort(
    cluster: &Cluster,
    w: &Workload,
    meta: &ActionMeta,
) -> Result<ActionOutcome, ClusterError> {
    let body = json!({"status": {"abort": true}});
    if meta.dry_run {
        return Ok(ActionOutcome::Planned {
            plan: json!({"request": format!("PATCH Rollout {}/{}/status", w.namespace, w.name),
                         "content_type": "application/merge-patch+json", "patch": body}),
        });
    }
    cluster
        .patch(
            Kind::Rollout,
            &w.namespace,
            &w.name,
            &kube::api::Patch::Merge(body),
            true,
        )
        .await?;
    let record = LastAction::new(meta, "argo_abort");
    let ro = cluster.get(Kind::Rollout, &w.namespace, &w.name).await?;
    let ann = json!({"metadata": {"annotations": record.annotations(&ro)}});
    cluster
        .patch(
            Kind::Rollout,
            &w.namespace,
            &w.name,
            &kube::api::Patch::Merge(ann),
            false,
        )
        .await?;
    Ok(ActionOutcome::Done {
        detail: json!({"abort": true}),
    })
}

/// Plans or performs an undo of a Rollout (ReplicaSets owned by it, annotation
/// `rollout.argoproj.io/revision`).
pub async fn argo_undo(
    cluster: &Cluster,
    w: &Workload,
    to: RevisionRef,
    meta: &ActionMeta,
) -> Result<(UndoOutcome, ActionOutcome), ClusterError> {
    undo_object(cluster, Kind::Rollout, &w.namespace, &w.name, to, meta).await
}
