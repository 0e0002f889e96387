//! `restart`: `kubectl rollout restart` (sets the template's `restartedAt` annotation).

use chrono::{SecondsFormat, Utc};
use serde_json::json;

use super::annotate::{ActionMeta, ActionOutcome, LastAction};
use super::history::load;
use super::image::patch_body;
use super::{Cluster, ClusterError, Kind};
use crate::policy::Workload;

/// The pod-template annotation kubectl sets to restart a rollout.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Plans or performs a restart of a policy workload.
pub async fn restart(
    cluster: &Cluster,
    w: &Workload,
    meta: &ActionMeta,
) -> Result<ActionOutcome, ClusterError> {
    let kind = Kind::of(w);
    let (owner, history) = load(cluster, w).await?;
    let mut record = LastAction::new(meta, "restart");
    record.from_revision = history.current().map(|r| r.number);
    let at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let body = json!({
        "metadata": {"annotations": record.annotations(&owner)},
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
