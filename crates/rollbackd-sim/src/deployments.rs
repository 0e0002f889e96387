//! The Deployment controller: ReplicaSets via [`super::workload`], then status and conditions
//! exactly as `kubectl rollout status` reads them.

use serde_json::{Value, json};

use super::controller::{Ctx, int};
use super::discovery::{DEPLOYMENTS, REPLICASETS};
use super::ids;
use super::workload::{self, Rollup};

/// The revision annotation on Deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";

/// Builds a condition, keeping the old timestamps when nothing about it changed.
pub fn condition(old: &Value, kind: &str, status: &str, reason: &str, message: &str) -> Value {
    let prev = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
    let now = ids::now();
    let transition = prev
        .filter(|c| c["status"] == status)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .map(String::from)
        .unwrap_or_else(|| now.clone());
    let update = prev
        .filter(|c| c["status"] == status && c["reason"] == reason && c["message"] == message)
        .and_then(|c| c["lastUpdateTime"].as_str())
        .map(String::from)
        .unwrap_or(now);
    json!({"type": kind, "status": status, "lastUpdateTime": update,
           "lastTransitionTime": transition, "reason": reason, "message": message})
}

fn status_for(d: &Value, r: &Rollup) -> Value {
    let rs = r.new_rs.clone().unwrap_or_default();
    let available = r.ready;
    let (a_status, a_reason, a_msg) = if available >= r.desired - r.max_unavailable {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let paused = d.pointer("/spec/paused") == Some(&json!(true));
    let (p_status, p_reason, p_msg) = if paused {
        (
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".to_string(),
        )
    } else if r.complete {
        (
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs}\" has successfully progressed."),
        )
    } else if r.deadline_exceeded {
        (
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{rs}\" has timed out progressing."),
        )
    } else {
        (
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs}\" is progressing."),
        )
    };
    let mut status = json!({
        "observedGeneration": int(d, "/metadata/generation"),
        "replicas": r.replicas,
        "updatedReplicas": r.updated,
        "readyReplicas": r.ready,
        "availableReplicas": available,
        "conditions": [
            condition(d, "Available", a_status, a_reason, a_msg),
            condition(d, "Progressing", p_status, p_reason, &p_msg),
        ],
    });
    let unavailable = (r.desired - available).max(0);
    if unavailable > 0 {
        status["unavailableReplicas"] = json!(unavailable);
    }
    if let Some(m) = status.as_object_mut() {
        for k in [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ] {
            if m.get(k) == Some(&json!(0)) {
                m.remove(k);
            }
        }
    }
    status
}

/// Reconciles the queued Deployments.
pub fn reconcile(ctx: &mut Ctx<'_>) {
    for d in ctx.next(&DEPLOYMENTS) {
        let sets = ctx.controlled(&REPLICASETS, &d);
        let Some(r) = workload::sync(ctx, &d, sets, REVISION) else {
            continue;
        };
        let mut updated = d.clone();
        if r.revision > 0 {
            if !updated["metadata"]["annotations"].is_object() {
                updated["metadata"]["annotations"] = json!({});
            }
            updated["metadata"]["annotations"][REVISION] = json!(r.revision.to_string());
        }
        updated["status"] = status_for(&d, &r);
        if updated != d {
            ctx.save(&DEPLOYMENTS, updated);
        }
    }
}
