//! The Job controller: one pod per Job; `Complete` when it succeeds, `Failed` when it fails.

use serde_json::{Value, json};

use super::controller::{Ctx, int};
use super::deployments::condition;
use super::discovery::{JOBS, PODS};
use super::ids;
use super::replicasets::create_pod;

fn finished(job: &Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
            })
        })
}

/// Reconciles the queued Jobs.
pub fn reconcile(ctx: &mut Ctx<'_>) {
    for job in ctx.next(&JOBS) {
        if finished(&job) || job.pointer("/spec/suspend") == Some(&json!(true)) {
            continue;
        }
        let pods = ctx.controlled(&PODS, &job);
        if pods.is_empty() {
            let Some(mut template) = job
                .pointer("/spec/template")
                .filter(|t| t.is_object())
                .cloned()
            else {
                continue;
            };
            if !template["metadata"]["labels"].is_object() {
                if !template["metadata"].is_object() {
                    template["metadata"] = json!({});
                }
                template["metadata"]["labels"] = json!({});
            }
            template["metadata"]["labels"]["batch.kubernetes.io/job-name"] =
                job["metadata"]["name"].clone();
            template["metadata"]["labels"]["job-name"] = job["metadata"]["name"].clone();
            let _ = create_pod(ctx, &job, &template);
            let mut updated = job.clone();
            updated["status"] = json!({"active": 1, "startTime": ids::now(), "ready": 0});
            ctx.save(&JOBS, updated);
            continue;
        }
        let phase = |p: &Value| {
            p.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Pending")
                .to_string()
        };
        let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count();
        let failed = pods.iter().filter(|p| phase(p) == "Failed").count();
        let start = job
            .pointer("/status/startTime")
            .cloned()
            .unwrap_or_else(|| json!(ids::now()));
        let mut status = json!({"startTime": start, "active": pods.len() - succeeded - failed});
        if succeeded > 0 {
            status = json!({
                "startTime": start, "completionTime": ids::now(), "succeeded": succeeded,
                "conditions": [
                    condition(&job, "SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
                    condition(&job, "Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
                ],
            });
        } else if failed > 0 {
            status = json!({
                "startTime": start, "failed": failed,
                "conditions": [
                    condition(&job, "FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
                    condition(&job, "Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
                ],
            });
        }
        if job.get("status") != Some(&status) {
            let mut updated = job.clone();
            updated["status"] = status;
            if int(&updated, "/status/active") == 0
                && let Some(m) = updated["status"].as_object_mut()
            {
                m.remove("active");
            }
            ctx.save(&JOBS, updated);
        }
    }
}
