//! Webhook ingestion under load: `concurrency` senders post Alertmanager notifications of
//! `per_request` new alerts each, for the fleet's workloads (so every alert is matched to an
//! agent, recorded in SQLite before the 200, and wakes its evaluation), for a fixed time.
//! The senders share the machine with rollbackd: the figure is conservative.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::fleet::{self, NAMESPACE, World};
use super::report::{Ingestion, Latency};

/// One notification of `per_request` firing alerts numbered from `first`.
fn notification(first: usize, per_request: usize, workloads: usize) -> String {
    let starts = chrono::Utc::now().to_rfc3339();
    let alerts: Vec<String> = (first..first + per_request)
        .map(|seq| {
            format!(
                r#"{{"status":"firing","labels":{{"alertname":"BenchNoise","severity":"info","namespace":"{NAMESPACE}","deployment":"{}","seq":"{seq}"}},"annotations":{{}},"startsAt":"{starts}","endsAt":"0001-01-01T00:00:00Z","fingerprint":"{seq:016x}"}}"#,
                fleet::deployment(seq % workloads)
            )
        })
        .collect();
    format!(
        r#"{{"version":"4","groupKey":"bench","status":"firing","receiver":"rollbackd","alerts":[{}]}}"#,
        alerts.join(",")
    )
}

/// Runs one load level against `world` (alert numbers start at `*next` and advance).
pub async fn run(
    world: &World,
    per_request: usize,
    concurrency: usize,
    duration: Duration,
    next: &Arc<AtomicUsize>,
) -> anyhow::Result<Ingestion> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let url = world.webhook_url();
    let workloads = world.n;
    let started = Instant::now();
    let deadline = started + duration;
    let senders = (0..concurrency).map(|_| {
        let (http, url, next) = (http.clone(), url.clone(), next.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut alerts, mut failed) = (0usize, 0usize);
            while Instant::now() < deadline {
                let first = next.fetch_add(per_request, Ordering::Relaxed);
                let body = notification(first, per_request, workloads);
                let t0 = Instant::now();
                let sent = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(t0.elapsed());
                        alerts += per_request;
                    }
                    _ => failed += 1,
                }
            }
            (latencies, alerts, failed)
        })
    });
    let mut latencies = Vec::new();
    let (mut alerts, mut failed) = (0, 0);
    for sender in futures::future::join_all(senders).await {
        let (l, a, f) = sender.map_err(|e| anyhow!("a sender panicked: {e}"))?;
        latencies.extend(l);
        alerts += a;
        failed += f;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Ingestion {
        alerts_per_request: per_request,
        concurrency,
        seconds,
        requests: latencies.len(),
        alerts,
        alerts_per_second: alerts as f64 / seconds,
        requests_per_second: latencies.len() as f64 / seconds,
        latency: Latency::of(&latencies),
        failed,
    })
}
