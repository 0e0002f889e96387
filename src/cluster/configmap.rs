//! `patch_configmap` and `restore_configmap`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::annotate::{ActionMeta, ActionOutcome, LastAction};
use super::snapshot::{snapshot_data, snapshot_name};
use super::{Cluster, ClusterError, Kind, resource_version, retry};

/// Plans or performs a merge patch of some `data` keys. The patch carries the
/// resourceVersion it read; a 409 Conflict re-reads and re-plans.
pub async fn patch_configmap(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    data: &BTreeMap<String, String>,
    meta: &ActionMeta,
) -> Result<ActionOutcome, ClusterError> {
    retry::on_conflict(cluster.retry_policy(), || {
        patch_once(cluster, namespace, name, data, meta)
    })
    .await
}

/// One read-plan-write cycle of a ConfigMap patch.
async fn patch_once(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    data: &BTreeMap<String, String>,
    meta: &ActionMeta,
) -> Result<ActionOutcome, ClusterError> {
    let cm = cluster.get(Kind::ConfigMap, namespace, name).await?;
    let before = cm.get("data").cloned().unwrap_or(json!({}));
    let changed: Map<String, Value> = data
        .iter()
        .filter(|(k, v)| before.get(k.as_str()).and_then(Value::as_str) != Some(v.as_str()))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let detail = json!({"configmap": name, "data": data});
    if changed.is_empty() {
        return Ok(ActionOutcome::Skipped {
            reason: format!("ConfigMap {name} already has these values"),
            detail,
        });
    }
    let record = LastAction::new(meta, "patch_configmap");
    let body = json!({"metadata": {"resourceVersion": resource_version(&cm), "annotations": record.annotations(&cm)},
                      "data": changed});
    apply(cluster, namespace, name, body, meta, detail).await
}

/// Plans or performs a restore of ConfigMap `name` from its snapshot at `revision`: keys of
/// the snapshot are set, keys absent from it are removed. The patch carries the
/// resourceVersion it read; a 409 Conflict re-reads, so a key added meanwhile is removed too.
pub async fn restore_configmap(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    revision: u64,
    meta: &ActionMeta,
) -> Result<ActionOutcome, ClusterError> {
    retry::on_conflict(cluster.retry_policy(), || {
        restore_once(cluster, namespace, name, revision, meta)
    })
    .await
}

/// One read-plan-write cycle of a ConfigMap restore.
async fn restore_once(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    revision: u64,
    meta: &ActionMeta,
) -> Result<ActionOutcome, ClusterError> {
    let snap = snapshot_data(cluster, namespace, name, revision)
        .await?
        .ok_or_else(|| ClusterError::SnapshotMissing {
            namespace: namespace.to_string(),
            name: name.to_string(),
            revision,
        })?;
    let cm = cluster.get(Kind::ConfigMap, namespace, name).await?;
    let before = cm.get("data").cloned().unwrap_or(json!({}));
    let detail =
        json!({"configmap": name, "snapshot": snapshot_name(name, revision), "revision": revision});
    if before == snap {
        return Ok(ActionOutcome::Skipped {
            reason: format!("ConfigMap {name} already matches its snapshot of revision {revision}"),
            detail,
        });
    }
    let mut data = snap.as_object().cloned().unwrap_or_default();
    if let Some(cur) = before.as_object() {
        for k in cur.keys() {
            data.entry(k.clone()).or_insert(Value::Null);
        }
    }
    let mut record = LastAction::new(meta, "restore_configmap");
    record.to_revision = Some(revision);
    let body = json!({"metadata": {"resourceVersion": resource_version(&cm), "annotations": record.annotations(&cm)},
                      "data": data});
    apply(cluster, namespace, name, body, meta, detail).await
}

async fn apply(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    body: Value,
    meta: &ActionMeta,
    detail: Value,
) -> Result<ActionOutcome, ClusterError> {
    if meta.dry_run {
        return Ok(ActionOutcome::Planned {
            plan: json!({"request": format!("PATCH ConfigMap {namespace}/{name}"),
                         "content_type": "application/merge-patch+json", "patch": body}),
        });
    }
    cluster
        .patch(
            Kind::ConfigMap,
            namespace,
            name,
            &kube::api::Patch::Merge(body),
            false,
        )
        .await?;
    Ok(ActionOutcome::Done { detail })
}
