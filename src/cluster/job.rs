//! `job`: run a batch/v1 Job to completion (e.g. a migration downgrade), keeping its logs.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::annotate::{ActionMeta, ActionOutcome, LastAction};
use super::{Cluster, ClusterError, Kind, name_of};
use crate::text::cap;

/// The Job's name for an incident: `<name>-<incident>`, DNS-safe, at most 63 characters.
/// The same incident and step always get the same name, so a resumed run finds its Job.
pub fn job_name(name: &str, incident: &str) -> String {
    let raw = format!("{name}-{incident}").to_lowercase();
    let mut s: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    crate::text::truncate_in_place(&mut s, 63);
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

/// Most bytes of Job logs kept: they are copied into the step's detail, the audit and Slack.
pub const LOG_LIMIT: usize = 16 * 1024;

/// The logs of every pod of a Job, each headed by the pod name (errors are noted inline),
/// at most [`LOG_LIMIT`] bytes.
pub async fn collect_logs(cluster: &Cluster, namespace: &str, job: &str) -> String {
    let pods = match cluster
        .list(Kind::Pod, namespace, Some(&format!("job-name={job}")))
        .await
    {
        Ok(p) => p,
        Err(e) => return format!("(could not list pods: {e})"),
    };
    let mut logs = Vec::with_capacity(pods.len());
    for p in &pods {
        let pod = name_of(p).to_string();
        let log = cluster
            .pod_logs(namespace, &pod)
            .await
            .map_err(|e| e.to_string());
        logs.push((pod, log));
    }
    join_logs(&logs)
}

/// Pods' logs (or the error reading them) as one text, capped at [`LOG_LIMIT`] bytes on a
/// character boundary with a note of how much was cut.
fn join_logs(logs: &[(String, Result<String, String>)]) -> String {
    let mut out = String::new();
    for (pod, log) in logs {
        out.push_str(&format!("==> pod {pod} <==\n"));
        match log {
            Ok(l) => out.push_str(l),
            Err(e) => out.push_str(&format!("(could not read logs: {e})\n")),
        }
    }
    cap(&out, LOG_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_capped_on_a_character_boundary() {
        // 40 KiB of three-byte characters: no cut may split one
        let big = "é€".repeat(8 * 1024);
        let logs = [
            ("migrate-1".to_string(), Ok(big.clone())),
            ("migrate-2".to_string(), Err("gone".to_string())),
        ];
        let text = join_logs(&logs);
        let total = "==> pod migrate-1 <==\n".len()
            + big.len()
            + "==> pod migrate-2 <==\n(could not read logs: gone)\n".len();
        assert!(
            text.starts_with("==> pod migrate-1 <==\né€"),
            "{}",
            crate::text::truncate_chars(&text, 40)
        );
        let kept = text.find('…').unwrap();
        assert!(kept <= LOG_LIMIT, "{kept}");
        assert!(
            text.ends_with(&format!("… ({} bytes cut)", total - kept)),
            "{}",
            &text[kept..]
        );
    }

    #[test]
    fn short_logs_are_kept_whole() {
        let logs = [("p".to_string(), Ok("ready\n".to_string()))];
        assert_eq!(join_logs(&logs), "==> pod p <==\nready\n");
    }
}
