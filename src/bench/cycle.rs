//! One evaluation cycle over 100 … 10,000 workloads that share three PromQL signals. Each
//! size runs in its own process (`rollbackd bench-cycle`), so its peak RSS is its own: the
//! parent serves the stand-in Prometheus and a simulator holding the fleet's Deployments;
//! the child watches them as the daemon does (reflector caches of Deployments, ReplicaSets
//! and pods), builds the fleet's policies, opens every post-deploy window and times what a
//! daemon cycle does: derive every workload's kube signals from the caches, read every
//! PromQL signal, evaluate every agent.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::{Context, anyhow};
use chrono::{TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::fake_prometheus::FakePrometheus;
use super::fleet;
use super::report::{Cycle, peak_rss_mib};
use crate::cluster::Cluster;
use crate::daemon::collect::MetricSource;
use crate::daemon::evaluate::{Evaluator, Limits};
use crate::lifecycle::announce::Channels;
use crate::metrics::Metrics;
use crate::signals::latest::LatestReadings;
use crate::signals::prometheus::{PromClient, PromClientConfig};
use crate::store::{SqliteStore, Synchronous};
use crate::watcher::DeployWatcher;
use rollbackd_core::policy::SignalSource;

/// What the child process reports (one JSON line on stdout).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildReport {
    /// Size of the fleet the child process evaluated.
    pub workloads: usize,
    /// Wall time of each cycle, in ms (kube signals included).
    pub cycles_ms: Vec<f64>,
    /// Of which deriving the kube signals from the watcher's caches, in ms.
    pub kube_ms: Vec<f64>,
    /// PromQL requests of each cycle, as counted by rollbackd.
    pub requests: Vec<usize>,
    /// Distinct PromQL signals the fleet shares.
    pub shared_signals: usize,
    /// Peak RSS of the child process (VmHWM), in MiB.
    pub peak_rss_mib: f64,
    /// Peak RSS once the watcher's caches held the fleet.
    #[serde(default)]
    pub watch_rss_mib: f64,
}

/// The simulated time between two cycles (the shipped `[evaluation] interval`).
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// The child: `cycles` cycles over `workloads` workloads against `prometheus` and the
/// cluster at `kube`, the clock advancing by [`INTERVAL`] each cycle.
pub async fn child(
    workloads: usize,
    prometheus: &str,
    kube: &str,
    cycles: usize,
) -> anyhow::Result<()> {
    let policies = fleet::policies(workloads)?;
    let client = kube::Client::try_from(kube::Config::new(kube.parse()?))?;
    let (deploys, mut observed) = tokio::sync::mpsc::channel(1024);
    let watcher = DeployWatcher::start(Cluster::new(client), &policies, deploys).await?;
    // the windows are opened below; the revisions the watcher reports are not needed
    tokio::spawn(async move { while observed.recv().await.is_some() {} });
    fleet::poll_until(
        std::time::Duration::from_secs(60 + workloads as u64 / 50),
        std::time::Duration::from_millis(200),
        || {
            let cached = watcher.kube_snapshot().len();
            fleet::done_when(cached >= workloads, || {
                format!("the watcher's caches hold {cached} of {workloads} workloads")
            })
        },
    )
    .await?;
    let watch_rss_mib = peak_rss_mib().unwrap_or_default();
    let shared_signals = policies.first().map_or(0, |p| {
        p.signals
            .values()
            .filter(|s| matches!(s.source, SignalSource::Metric { .. }))
            .count()
    });
    let dir = tempfile::tempdir()?;
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("rollbackd.db"), Synchronous::Normal).await?);
    let (runner, _incidents) = crate::channel::bounded("runner", 1024, Arc::new(Metrics::new()));
    let mut evaluator = Evaluator::new(
        &policies,
        store,
        Arc::new(Metrics::new()),
        Arc::new(RwLock::new(BTreeMap::new())),
        Arc::new(RwLock::new(LatestReadings::default())),
        MetricSource::Prometheus(PromClient::new(PromClientConfig::new(prometheus))?),
        Limits {
            dry_run: true,
            max_per_agent_per_window: 1,
            max_per_hour: 10,
        },
        Channels::default(),
        runner,
    );
    let start = Utc::now();
    let deployed = start - TimeDelta::minutes(1);
    for i in 0..workloads {
        evaluator
            .on_deploy(
                &fleet::agent(i),
                2,
                deployed,
                Some(fleet::image(i, "v2")),
                false,
            )
            .await;
    }
    let mut report = ChildReport {
        workloads,
        cycles_ms: Vec::with_capacity(cycles),
        kube_ms: Vec::with_capacity(cycles),
        requests: Vec::with_capacity(cycles),
        shared_signals,
        peak_rss_mib: 0.0,
        watch_rss_mib,
    };
    for k in 0..cycles {
        // the daemon's clock, one default interval per cycle: enough cycles fill every
        // signal's retained history, so the peak RSS is the steady state's
        let now = start + TimeDelta::from_std(INTERVAL)? * k as i32;
        let t0 = Instant::now();
        let kube = watcher.kube_snapshot();
        report.kube_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        let readings = evaluator
            .cycle(now, &|agent, workload| kube.of(agent, workload))
            .await;
        report.cycles_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        report.requests.push(readings.requests);
        if !readings.errors.is_empty() {
            return Err(anyhow!("the cycle's reads failed: {:?}", readings.errors));
        }
    }
    report.peak_rss_mib = peak_rss_mib().unwrap_or_default();
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The parent: one child per size, each against a stand-in answering for exactly its fleet.
pub async fn run(exe: &Path, sizes: &[usize], cycles: usize) -> anyhow::Result<Vec<Cycle>> {
    let mut out = Vec::new();
    for &n in sizes {
        let prometheus = FakePrometheus::start(&fleet::healthy_answers(n)?).await?;
        let sim = fleet::start_cluster(n).await?;
        let before = prometheus.queries();
        let output = tokio::process::Command::new(exe)
            .args([
                "bench-cycle",
                "--workloads",
                &n.to_string(),
                "--prometheus",
                &prometheus.url(),
                "--kube",
                &sim.url(),
                "--cycles",
                &cycles.to_string(),
            ])
            .env("RUST_LOG", "error")
            .output()
            .await
            .with_context(|| format!("starting {}", exe.display()))?;
        let seen = prometheus.queries() - before;
        prometheus.stop().await;
        sim.shutdown().await;
        if !output.status.success() {
            return Err(anyhow!(
                "bench-cycle --workloads {n} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .context("bench-cycle printed no report")?;
        let r: ChildReport =
            serde_json::from_str(line).with_context(|| format!("bench-cycle report {line:?}"))?;
        out.push(summarize(&r, seen));
    }
    Ok(out)
}

fn summarize(r: &ChildReport, seen: usize) -> Cycle {
    let first_ms = r.cycles_ms.first().copied().unwrap_or_default();
    let median_ms = steady_median(&r.cycles_ms);
    Cycle {
        workloads: r.workloads,
        first_ms,
        median_ms,
        max_ms: r.cycles_ms.iter().copied().fold(0.0, f64::max),
        kube_median_ms: steady_median(&r.kube_ms),
        kube_first_ms: r.kube_ms.first().copied().unwrap_or_default(),
        cycles: r.cycles_ms.len(),
        interval_s: INTERVAL.as_secs_f64(),
        promql_requests: r.requests.iter().copied().max().unwrap_or_default(),
        promql_requests_seen: seen as f64 / r.cycles_ms.len().max(1) as f64,
        shared_signals: r.shared_signals,
        peak_rss_mib: r.peak_rss_mib,
        watch_rss_mib: r.watch_rss_mib,
    }
}

/// The median of every value but the first (the steady state); the first if there is no other.
fn steady_median(values: &[f64]) -> f64 {
    let mut steady: Vec<f64> = values.iter().skip(1).copied().collect();
    steady.sort_by(f64::total_cmp);
    steady
        .get(steady.len() / 2)
        .or(values.first())
        .copied()
        .unwrap_or_default()
}
