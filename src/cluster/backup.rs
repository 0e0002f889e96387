//! Pre-rollback backups: the workload objects and their ConfigMaps, saved before the first
//! mutating step of a method.

use std::path::PathBuf;

use serde_json::Value;

use super::{Cluster, ClusterError, Kind};
use rollbackd_core::policy::Workload;

/// Where backups go. The first save of an object for an incident wins: saving it again
/// must keep the original (a resumed run must not overwrite the pre-rollback state).
#[async_trait::async_trait]
pub trait BackupSink: Send + Sync {
    /// Saves one object.
    async fn save(
        &self,
        incident_id: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        object: &Value,
    ) -> Result<(), ClusterError>;
}

/// Writes `DIR/<incident>/<kind>-<ns>-<name>.json`.
#[derive(Debug, Clone)]
pub struct DirBackupSink {
    dir: PathBuf,
}

impl DirBackupSink {
    /// A sink writing under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirBackupSink { dir: dir.into() }
    }

    /// The file an object is saved to.
    pub fn path(&self, incident_id: &str, kind: &str, namespace: &str, name: &str) -> PathBuf {
        self.dir.join(sanitize(incident_id)).join(format!(
            "{}-{}-{}.json",
            sanitize(kind),
            sanitize(namespace),
            sanitize(name)
        ))
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[async_trait::async_trait]
impl BackupSink for DirBackupSink {
    async fn save(
        &self,
        incident_id: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        object: &Value,
    ) -> Result<(), ClusterError> {
        let path = self.path(incident_id, kind, namespace, name);
        if path.exists() {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ClusterError::Backup(format!("{}: {e}", parent.display())))?;
        }
        let text = serde_json::to_string_pretty(object)?;
        std::fs::write(&path, text)
            .map_err(|e| ClusterError::Backup(format!("{}: {e}", path.display())))
    }
}

/// A sink that keeps nothing (for callers that opt out of backups).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBackup;

#[async_trait::async_trait]
impl BackupSink for NoBackup {
    async fn save(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &str,
        _: &Value,
    ) -> Result<(), ClusterError> {
        Ok(())
    }
}

/// Saves each workload object and each of its existing ConfigMaps.
pub async fn backup_workloads(
    cluster: &Cluster,
    sink: &dyn BackupSink,
    incident_id: &str,
    workloads: &[&Workload],
) -> Result<usize, ClusterError> {
    let mut saved = 0;
    for w in workloads {
        let kind = Kind::of(w);
        if let Some(obj) = cluster.get_opt(kind, &w.namespace, &w.name).await? {
            sink.save(incident_id, kind.name(), &w.namespace, &w.name, &obj)
                .await?;
            saved += 1;
        }
        for cm in &w.configmaps {
            if let Some(obj) = cluster.get_opt(Kind::ConfigMap, &w.namespace, cm).await? {
                sink.save(incident_id, "ConfigMap", &w.namespace, cm, &obj)
                    .await?;
                saved += 1;
            }
        }
    }
    Ok(saved)
}
