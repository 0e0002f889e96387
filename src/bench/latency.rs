//! Webhook received → first rollback PATCH: one firing outage alert per workload, sent one
//! at a time to a daemon with at most [`BACKGROUND`] earlier incidents still rolling out and
//! verifying; the clock stops when the
//! simulator receives the undo PATCH of that workload's Deployment (both ends are timed in
//! this process, on the wall clock).

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::fleet::{self, Backend, NAMESPACE, World};
use super::report::{Latency, WebhookToPatch};
use crate::store::IncidentFilter;

/// Earlier incidents that may still be rolling out and verifying when an alert is sent.
pub const BACKGROUND: usize = 4;

/// An Alertmanager (payload version 4) notification of one firing alert.
pub fn outage_alert(i: usize) -> serde_json::Value {
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{deployment=\"{}\"}}", fleet::deployment(i)),
        "status": "firing",
        "receiver": "rollbackd",
        "alerts": [{
            "status": "firing",
            "labels": {
                "alertname": "ServiceOutage", "condition": "service_outage", "severity": "critical",
                "namespace": NAMESPACE, "deployment": fleet::deployment(i)
            },
            "annotations": {"summary": "no request succeeds"},
            "startsAt": chrono::Utc::now().to_rfc3339(),
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": format!("{i:016x}"),
        }]
    })
}

/// Runs the measurement over a fresh `workloads`-workload world keeping its state in
/// `backend`.
pub async fn run(workloads: usize, backend: Backend) -> anyhow::Result<WebhookToPatch> {
    let world = World::start(workloads, backend).await?;
    let result = measure(&world).await;
    world.stop().await;
    result
}

async fn measure(world: &World) -> anyhow::Result<WebhookToPatch> {
    let http = reqwest::Client::new();
    let url = world.webhook_url();
    let mut requests = world.sim.subscribe_requests();
    let mut latencies = Vec::with_capacity(world.n);
    let mut answers = Vec::with_capacity(world.n);
    for i in 0..world.n {
        let body = serde_json::to_vec(&outage_alert(i))?;
        let target = format!(
            "/namespaces/{NAMESPACE}/deployments/{}",
            fleet::deployment(i)
        );
        let sent = SystemTime::now();
        let t0 = Instant::now();
        let response = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| format!("alert {i}"))?;
        answers.push(t0.elapsed());
        if !response.status().is_success() {
            return Err(anyhow!("alert {i}: webhook answered {}", response.status()));
        }
        let patched = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match requests.recv().await {
                    Ok(r) if r.method == "PATCH" && r.path.ends_with(&target) => return Ok(r.at),
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return Err(anyhow!("the simulator stopped")),
                }
            }
        })
        .await
        .map_err(|_| anyhow!("alert {i}: no rollback PATCH of {target} within 10 s"))??;
        latencies.push(patched.duration_since(sent).unwrap_or_default());
        // the next alert meets a daemon with at most BACKGROUND earlier incidents still
        // rolling out and verifying
        if !world.settle(BACKGROUND, Duration::from_secs(30)).await {
            return Err(anyhow!(
                "alert {i}: more than {BACKGROUND} incidents still in flight after 30 s"
            ));
        }
    }
    let incidents = world
        .daemon
        .store
        .incidents(&IncidentFilter {
            limit: Some(world.n + 10),
            ..Default::default()
        })
        .await?
        .len();
    Ok(WebhookToPatch {
        store: world.backend.name().to_string(),
        workloads: world.n,
        latency: Latency::of(&latencies),
        webhook_answer: Latency::of(&answers),
        incidents,
    })
}
