//! ConfigMap snapshots per revision: `<name>.rollbackd-rev-<revision>`, taken when a
//! revision is first seen, so a rollback can restore the config that matched the code.

use serde_json::{Value, json};

use super::{Cluster, ClusterError, Kind};
use rollbackd_core::policy::Workload;

/// The label marking objects rollbackd manages.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The label naming a snapshot's source ConfigMap.
pub const SOURCE: &str = "rollbackd.io/source";
/// The label naming a snapshot's revision.
pub const REVISION: &str = "rollbackd.io/revision";

/// The snapshot name of ConfigMap `name` at `revision`.
pub fn snapshot_name(name: &str, revision: u64) -> String {
    format!("{name}.rollbackd-rev-{revision}")
}

/// Copies every ConfigMap the workload lists into its snapshot for `revision`. Existing
/// snapshots are kept (idempotent); a missing source ConfigMap is skipped with a warning.
/// Returns the snapshot names that exist afterwards.
pub async fn snapshot_configmaps(
    cluster: &Cluster,
    w: &Workload,
    revision: u64,
) -> Result<Vec<String>, ClusterError> {
    let mut out = Vec::new();
    for name in &w.configmaps {
        let snap = snapshot_name(name, revision);
        if cluster
            .get_opt(Kind::ConfigMap, &w.namespace, &snap)
            .await?
            .is_some()
        {
            out.push(snap);
            continue;
        }
        let Some(src) = cluster.get_opt(Kind::ConfigMap, &w.namespace, name).await? else {
            tracing::warn!(configmap = %name, namespace = %w.namespace, "ConfigMap to snapshot does not exist");
            continue;
        };
        create_snapshot(cluster, &w.namespace, &snap, name, revision, &src).await?;
        out.push(snap);
    }
    Ok(out)
}

/// For a revision rollbackd created by rolling back to `source_revision`: its snapshots are
/// copies of `source_revision`'s (the config that matches the restored code), not of the
/// live ConfigMaps, which may still hold the bad config until `restore_configmap` runs.
/// Falls back to the live ConfigMap when the source has no snapshot.
pub async fn snapshot_from_revision(
    cluster: &Cluster,
    w: &Workload,
    revision: u64,
    source_revision: u64,
) -> Result<Vec<String>, ClusterError> {
    let mut out = Vec::new();
    for name in &w.configmaps {
        let snap = snapshot_name(name, revision);
        if cluster
            .get_opt(Kind::ConfigMap, &w.namespace, &snap)
            .await?
            .is_some()
        {
            out.push(snap);
            continue;
        }
        let source = snapshot_name(name, source_revision);
        let Some(src) = cluster
            .get_opt(Kind::ConfigMap, &w.namespace, &source)
            .await?
        else {
            let single = Workload {
                configmaps: vec![name.clone()],
                ..w.clone()
            };
            out.extend(snapshot_configmaps(cluster, &single, revision).await?);
            continue;
        };
        create_snapshot(cluster, &w.namespace, &snap, name, revision, &src).await?;
        out.push(snap);
    }
    Ok(out)
}

/// Creates snapshot `snap` of ConfigMap `source` for `revision` with `src`'s data; an
/// existing snapshot (409) is kept: snapshots are written once.
async fn create_snapshot(
    cluster: &Cluster,
    namespace: &str,
    snap: &str,
    source: &str,
    revision: u64,
    src: &serde_json::Value,
) -> Result<(), ClusterError> {
    let obj = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": snap, "namespace": namespace, "labels": {
            MANAGED_BY: "rollbackd", SOURCE: source, REVISION: revision.to_string()}},
        "data": src.get("data").cloned().unwrap_or(json!({})),
        "binaryData": src.get("binaryData").cloned().unwrap_or(json!({})),
    });
    match cluster.create(Kind::ConfigMap, namespace, &obj).await {
        Ok(_) => Ok(()),
        Err(e) if e.status_code() == Some(409) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The data of a snapshot, if it exists.
pub async fn snapshot_data(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    revision: u64,
) -> Result<Option<Value>, ClusterError> {
    Ok(cluster
        .get_opt(Kind::ConfigMap, namespace, &snapshot_name(name, revision))
        .await?
        .map(|s| s.get("data").cloned().unwrap_or(json!({}))))
}
