//! `kubectl rollout status` as a pure function, and `wait_rollout`.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::views::{DeploymentView, DeploymentViewStatus};
use super::{Cluster, ClusterError, Kind};
use rollbackd_core::policy::Workload;

/// Where a rollout stands, with kubectl's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "message", rename_all = "snake_case")]
pub enum RolloutStatus {
    /// `deployment "x" successfully rolled out`.
    Done(String),
    /// Still progressing: kubectl's waiting line (without the newline).
    Waiting(String),
    /// The progress deadline passed: `deployment "x" exceeded its progress deadline`.
    Failed(String),
}

/// kubectl's `DeploymentStatusViewer.Status`, rule for rule.
pub fn deployment_status(d: &DeploymentView) -> RolloutStatus {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let unknown = DeploymentViewStatus::default();
    let status = d.status.as_ref().unwrap_or(&unknown);
    if generation > status.observed_generation.unwrap_or(0) {
        return RolloutStatus::Waiting(
            "Waiting for deployment spec update to be observed...".into(),
        );
    }
    if status.deadline_exceeded {
        return RolloutStatus::Failed(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if let Some(want) = d.replicas
        && updated < want
    {
        return RolloutStatus::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {updated} out of {want} new replicas have been updated..."
        ));
    }
    if replicas > updated {
        return RolloutStatus::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        ));
    }
    if available < updated {
        return RolloutStatus::Waiting(format!(
            "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    RolloutStatus::Done(format!("deployment {name:?} successfully rolled out"))
}

/// An Argo Rollout's status from its `phase` (Healthy / Degraded / other).
pub fn argo_rollout_status(ro: &Value) -> RolloutStatus {
    let name = ro
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let generation = ro
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let observed = ro
        .pointer("/status/observedGeneration")
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(0);
    let message = ro
        .pointer("/status/message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if generation > observed {
        return RolloutStatus::Waiting("Waiting for rollout spec update to be observed...".into());
    }
    match ro.pointer("/status/phase").and_then(Value::as_str) {
        Some("Healthy") => RolloutStatus::Done(format!("rollout {name:?} successfully rolled out")),
        Some("Degraded") => {
            RolloutStatus::Failed(format!("rollout {name:?} is degraded: {message}"))
        }
        p => RolloutStatus::Waiting(format!(
            "Waiting for rollout {name:?} to finish: phase {}: {message}",
            p.unwrap_or("unknown")
        )),
    }
}

/// The status of a workload object of either kind.
pub fn status_of(kind: Kind, obj: &Value) -> Result<RolloutStatus, ClusterError> {
    match kind {
        Kind::Rollout => Ok(argo_rollout_status(obj)),
        _ => Ok(deployment_status(&serde_json::from_value(obj.clone())?)),
    }
}

/// Polls the workload until its rollout is done (Ok), failed (`RolloutFailed`) or
/// `timeout` passes (`StepTimeout` with the last waiting message).
pub async fn wait_rollout(
    cluster: &Cluster,
    w: &Workload,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Value, ClusterError> {
    let kind = Kind::of(w);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let obj = cluster.get_workload(w).await?;
        let last = match status_of(kind, &obj)? {
            RolloutStatus::Done(m) => return Ok(json!({"status": m})),
            RolloutStatus::Failed(m) => return Err(ClusterError::RolloutFailed(m)),
            RolloutStatus::Waiting(m) => m,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(ClusterError::StepTimeout(timeout, last));
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(ClusterError::Cancelled),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
