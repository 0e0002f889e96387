//! `scale`: set the replica count, remembering the previous one in an annotation so that
//! `scale = "restore"` can put it back, even after a daemon restart.

use serde_json::{Value, json};

use super::annotate::{ActionMeta, ActionOutcome, LastAction, REPLICAS_BEFORE_SCALE};
use super::guard::RevisionGuard;
use super::history::load;
use super::{Cluster, ClusterError, Kind, annotation, retry};
use rollbackd_core::policy::Workload;

/// Plans or performs `scale = N` (`Some`) or `scale = "restore"` (`None`). The write carries
/// the resourceVersion it read; a workload that moved on to someone's newer deploy is not
/// scaled ([`ClusterError::Superseded`]).
pub async fn scale(
    cluster: &Cluster,
    w: &Workload,
    replicas: Option<u32>,
    meta: &ActionMeta,
) -> Result<ActionOutcome, ClusterError> {
    let kind = Kind::of(w);
    let guard = RevisionGuard::new(meta);
    retry::on_conflict(cluster.retry_policy(), || async {
        let (obj, history) = load(cluster, w).await?;
        guard.check(&obj, &history)?;
        let current = obj
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let remembered =
            annotation(&obj, REPLICAS_BEFORE_SCALE).and_then(|s| s.parse::<i64>().ok());
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        let mut record = LastAction::new(meta, "scale");
        record.from_revision = None;
        let (target, before_value) = match replicas {
            Some(n) => {
                // Keep the first remembered count: scaling twice must not lose the original.
                let keep = remembered.unwrap_or(current);
                (i64::from(n), json!(keep.to_string()))
            }
            None => {
                let Some(before) = remembered else {
                    return Err(ClusterError::InvalidStep(format!(
                        "nothing to restore: {}/{} has no {REPLICAS_BEFORE_SCALE} annotation",
                        w.namespace, w.name
                    )));
                };
                (before, Value::Null)
            }
        };
        let detail = json!({"from_replicas": current, "replicas": target});
        let mut annotations = record.annotations(&obj);
        annotations.insert(REPLICAS_BEFORE_SCALE.to_string(), before_value);
        let body = json!({
            "metadata": {"resourceVersion": rv, "annotations": annotations},
            "spec": {"replicas": target}
        });
        if meta.dry_run {
            return Ok(ActionOutcome::Planned {
                plan: json!({"request": format!("PATCH {} {}/{}", kind.name(), w.namespace, w.name),
                             "content_type": "application/merge-patch+json", "patch": body}),
            });
        }
        cluster
            .patch(
                kind,
                &w.namespace,
                &w.name,
                &kube::api::Patch::Merge(body),
                false,
            )
            .await?;
        Ok(ActionOutcome::Done { detail })
    })
    .await
}
