//! `restart`: `kubectl rollout restart` (sets the template's `restartedAt` annotation).

use chrono::{SecondsFormat, Utc};
use serde_json::json;

use super::annotate::{ActionMeta, ActionOutcome, LastAction, template_digest};
use super::guard::RevisionGuard;
use super::history::load;
use super::image::patch_body;
use super::{Cluster, ClusterError, Kind, resource_version, retry};
use rollbackd_core::policy::Workload;

/// The pod-template annotation kubectl sets to restart a rollout.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Plans or performs a restart of a policy workload. The write carries the resourceVersion
/// it read; on a 409 Conflict it re-reads and, if someone deployed meanwhile, fails with
/// [`ClusterError::Superseded`] (a restart would roll out their deploy's pods anew).
pub async fn restart(
    cluster: &Cluster,
    w: &Workload,
    meta: &ActionMeta,
) -> Result<ActionOutcome, ClusterError> {
    let guard = RevisionGuard::new(meta);
    retry::on_conflict(cluster.retry_policy(), || {
        restart_once(cluster, w, meta, &guard)
    })
    .await
}

/// One read-check-write cycle of a restart.
async fn restart_once(
    cluster: &Cluster,
    w: &Workload,
    meta: &ActionMeta,
    guard: &RevisionGuard,
) -> Result<ActionOutcome, ClusterError> {
    let kind = Kind::of(w);
    let (owner, history) = load(cluster, w).await?;
    guard.check(&owner, &history)?;
    let mut record = LastAction::new(meta, "restart");
    record.from_revision = history.current().map(|r| r.number);
    let at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut written = owner
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(t) = written.as_object_mut() {
        let meta_obj = t.entry("metadata").or_insert_with(|| json!({}));
        if !meta_obj["annotations"].is_object() {
            meta_obj["annotations"] = json!({});
        }
        meta_obj["annotations"][RESTARTED_AT] = json!(at);
    }
    record.template_digest = Some(template_digest(&written));
    let body = json!({
        "metadata": {"resourceVersion": resource_version(&owner), "annotations": record.annotations(&owner)},
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}
    });
    let patch = if kind == Kind::Deployment {
        kube::api::Patch::Strategic(body)
    } else {
        kube::api::Patch::Merge(body)
    };
    let detail = json!({"restarted_at": at});
    if meta.dry_run {
        return Ok(ActionOutcome::Planned {
            plan: json!({"request": format!("PATCH {} {}/{}", kind.name(), w.namespace, w.name),
                         "patch": patch_body(&patch)}),
        });
    }
    cluster
        .patch(kind, &w.namespace, &w.name, &patch, false)
        .await?;
    Ok(ActionOutcome::Done { detail })
}
