//! `job`: run a batch/v1 Job to completion (e.g. a migration downgrade), keeping its logs.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::annotate::{ActionMeta, ActionOutcome, LastAction};
use super::{Cluster, ClusterError, Kind, name_of};

/// The Job's name for an incident: `<name>-<incident>`, DNS-safe, at most 63 characters.
/// The same incident and step always get the same name, so a resumed run finds its Job.
pub fn job_name(name: &str, incident: &str) -> String {
    let raw = format!("{name}-{incident}").to_lowercase();
    let mut s: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.truncate(63);
    s.trim_matches('-').to_string()
}

fn finished(job: &Value) -> Option<(bool, String)> {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
        .map(|c| {
            (
                c["type"] == "Complete",
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// Plans or runs a Job and waits for `Complete`/`Failed` within `timeout`.
#[allow(clippy::too_many_arguments)]
pub async fn run_job(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    image: &str,
    command: &[String],
    timeout: Duration,
    cancel: &CancellationToken,
    meta: &ActionMeta,
) -> Result<ActionOutcome, ClusterError> {
    let jname = job_name(name, &meta.incident);
    let record = LastAction::new(meta, "job");
    let mut container = json!({"name": "job", "image": image});
    if !command.is_empty() {
        container["command"] = json!(command);
    }
    let obj = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": jname, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "rollbackd"},
                     "annotations": record.annotations(&Value::Null)},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "containers": [container]}}}
    });
    if meta.dry_run {
        return Ok(ActionOutcome::Planned {
            plan: json!({"request": format!("POST Job {namespace}"), "object": obj}),
        });
    }
    // A resumed run waits on the Job it already created instead of creating another.
    if cluster
        .get_opt(Kind::Job, namespace, &jname)
        .await?
        .is_none()
    {
        match cluster.create(Kind::Job, namespace, &obj).await {
            Ok(_) => {}
            Err(e) if e.status_code() == Some(409) => {}
            Err(e) => return Err(e),
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let job = cluster.get(Kind::Job, namespace, &jname).await?;
        if let Some((ok, reason)) = finished(&job) {
            let logs = collect_logs(cluster, namespace, &jname).await;
            let detail = json!({"job": jname, "reason": reason, "logs": logs});
            return if ok {
                Ok(ActionOutcome::Done { detail })
            } else {
                Err(ClusterError::JobFailed {
                    name: jname,
                    reason,
                    logs,
                })
            };
        }
        if tokio::time::Instant::now() >= deadline {
            let logs = collect_logs(cluster, namespace, &jname).await;
            return Err(ClusterError::StepTimeout(
                timeout,
                format!("job {jname} did not finish; logs:\n{logs}"),
            ));
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(ClusterError::Cancelled),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// The logs of every pod of a Job, each headed by the pod name (errors are noted inline).
pub async fn collect_logs(cluster: &Cluster, namespace: &str, job: &str) -> String {
    let pods = match cluster
        .list(Kind::Pod, namespace, Some(&format!("job-name={job}")))
        .await
    {
        Ok(p) => p,
        Err(e) => return format!("(could not list pods: {e})"),
    };
    let mut out = String::new();
    for p in &pods {
        let pod = name_of(p);
        out.push_str(&format!("==> pod {pod} <==\n"));
        match cluster.pod_logs(namespace, pod).await {
            Ok(l) => out.push_str(&l),
            Err(e) => out.push_str(&format!("(could not read logs: {e})\n")),
        }
    }
    out
}
