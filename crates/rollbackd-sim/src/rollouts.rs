//! A minimal Argo Rollouts controller: ReplicaSets per template (shared with Deployments),
//! `status.currentPodHash`/`stableRS`/`phase`, and `status.abort` honoured.

use serde_json::json;

use super::controller::{Ctx, int};
use super::deployments::condition;
use super::discovery::{REPLICASETS, ROLLOUTS};
use super::workload;

/// The revision annotation on Rollouts and their ReplicaSets.
pub const REVISION: &str = "rollout.argoproj.io/revision";

/// Reconciles the queued Rollouts.
pub fn reconcile(ctx: &mut Ctx<'_>) {
    for ro in ctx.next(&ROLLOUTS) {
        let sets = ctx.controlled(&REPLICASETS, &ro);
        let Some(r) = workload::sync(ctx, &ro, sets, REVISION) else {
            continue;
        };
        let old = ro.get("status").cloned().unwrap_or(json!({}));
        let current = r.new_hash.clone().unwrap_or_default();
        let mut stable = old["stableRS"].as_str().unwrap_or_default().to_string();
        if r.complete {
            stable = current.clone();
        }
        let mut abort = old["abort"] == json!(true);
        if abort && current == stable {
            abort = false;
        }
        let paused = ro.pointer("/spec/paused") == Some(&json!(true));
        let (phase, message) = if abort {
            (
                "Degraded",
                format!(
                    "RolloutAborted: Rollout aborted update to revision {}",
                    r.revision
                ),
            )
        } else if paused {
            ("Paused", "manually paused".to_string())
        } else if r.deadline_exceeded {
            (
                "Degraded",
                "ProgressDeadlineExceeded: ReplicaSet has timed out progressing.".to_string(),
            )
        } else if r.complete {
            ("Healthy", String::new())
        } else {
            (
                "Progressing",
                "more replicas need to be updated".to_string(),
            )
        };
        let mut status = json!({
            "observedGeneration": int(&ro, "/metadata/generation").to_string(),
            "replicas": r.replicas,
            "updatedReplicas": r.updated,
            "readyReplicas": r.ready,
            "availableReplicas": r.ready,
            "currentPodHash": current,
            "phase": phase,
            "message": message,
            "conditions": [condition(
                &ro,
                "Progressing",
                if r.deadline_exceeded || abort { "False" } else { "True" },
                if abort { "RolloutAborted" } else if r.complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
                &message,
            )],
        });
        if !stable.is_empty() {
            status["stableRS"] = json!(stable);
        }
        if abort {
            status["abort"] = json!(true);
        }
        let mut updated = ro.clone();
        if r.revision > 0 {
            if !updated["metadata"]["annotations"].is_object() {
                updated["metadata"]["annotations"] = json!({});
            }
            updated["metadata"]["annotations"][REVISION] = json!(r.revision.to_string());
        }
        updated["status"] = status;
        if updated != ro {
            ctx.save(&ROLLOUTS, updated);
        }
    }
}
