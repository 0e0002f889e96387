//! Argo Rollouts: abort (as `kubectl argo rollouts abort`) and undo on the Rollout's history.

use serde_json::json;

use super::annotate::{ActionMeta, ActionOutcome, LastAction};
use super::guard::RevisionGuard;
use super::history::load;
use super::undo::{UndoOutcome, undo_object};
use super::{Cluster, ClusterError, Kind, resource_version, retry};
use rollbackd_core::policy::{RevisionRef, Workload};

/// Plans or performs an abort: merge patch `{"status":{"abort":true}}` on the status
/// subresource, then rollbackd's annotation on the Rollout (a second, metadata-only patch:
/// the status subresource ignores metadata). Both carry the resourceVersion they read; a
/// Rollout that moved on to someone's newer deploy is not aborted
/// ([`ClusterError::Superseded`]).
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
    let guard = RevisionGuard::new(meta);
    retry::on_conflict(cluster.retry_policy(), || async {
        let (ro, history) = load(cluster, w).await?;
        guard.check(&ro, &history)?;
        let mut body = body.clone();
        body["metadata"] = json!({"resourceVersion": resource_version(&ro)});
        merge(cluster, w, body, true).await
    })
    .await?;
    let record = LastAction::new(meta, "argo_abort");
    retry::on_conflict(cluster.retry_policy(), || async {
        let ro = cluster.get(Kind::Rollout, &w.namespace, &w.name).await?;
        let ann = json!({"metadata": {"resourceVersion": resource_version(&ro),
                                      "annotations": record.annotations(&ro)}});
        merge(cluster, w, ann, false).await
    })
    .await?;
    Ok(ActionOutcome::Done {
        detail: json!({"abort": true}),
    })
}

async fn merge(
    cluster: &Cluster,
    w: &Workload,
    body: serde_json::Value,
    status: bool,
) -> Result<serde_json::Value, ClusterError> {
    cluster
        .patch(
            Kind::Rollout,
            &w.namespace,
            &w.name,
            &kube::api::Patch::Merge(body),
            status,
        )
        .await
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
