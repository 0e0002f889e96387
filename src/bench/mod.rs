//! `rollbackd bench`: measures the daemon on this machine and writes the figures.
//!
//! - [`latency`]: webhook received → first rollback PATCH, over one alert per workload;
//! - [`cycle`]: one evaluation cycle over 100 … 10,000 workloads sharing three PromQL
//!   signals: wall time, PromQL requests, peak RSS (each size in its own process);
//! - [`ingest`]: webhook ingestion, alerts per second and request latency;
//! - [`compare`]: the same breach under Flagger's and Argo Rollouts' analysis defaults.
//!
//! Everything runs in-process on 127.0.0.1: the Kubernetes simulator, a stand-in
//! Prometheus ([`fake_prometheus`]) and a whole rollbackd over a generated [`fleet`].
//! Like the demo, this is a front-end command: its errors are `anyhow`.

pub mod compare;
pub mod cycle;
pub mod fake_prometheus;
pub mod fleet;
pub mod ingest;
pub mod latency;
pub mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use anyhow::Context;

use report::{Figures, Machine};

/// What to measure, and how much.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Alerts (one per workload) for webhook → PATCH.
    pub alerts: usize,
    /// Fleet sizes for the evaluation cycle.
    pub sizes: Vec<usize>,
    /// Cycles per size (the first, then the steady state), one simulated interval apart.
    pub cycles: usize,
    /// Alerts per request for each ingestion level.
    pub batches: Vec<usize>,
    /// Concurrent senders during ingestion.
    pub concurrency: usize,
    /// How long each ingestion level lasts.
    pub ingest_for: Duration,
    /// Workloads the ingested alerts are spread over.
    pub ingest_workloads: usize,
    /// Where the figures go: `<out>.json` and `<out>.md`.
    pub out: PathBuf,
    /// The `rollbackd` executable to run `bench-cycle` with.
    pub exe: PathBuf,
    /// The measurements to run.
    pub only: Vec<Measurement>,
}

/// One of the benchmark's measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Measurement {
    /// Webhook received → first rollback PATCH, SQLite store.
    Latency,
    /// Webhook received → first rollback PATCH, Kubernetes store on the simulator.
    LatencyKubernetes,
    /// One evaluation cycle per fleet size.
    Cycle,
    /// Webhook ingestion.
    Ingest,
}

impl Measurement {
    /// Every measurement.
    pub const ALL: [Measurement; 4] = [
        Self::Latency,
        Self::LatencyKubernetes,
        Self::Cycle,
        Self::Ingest,
    ];
}

impl BenchOptions {
    /// The sizes: 1,000 alerts; 100, 1,000 and 10,000 workloads; 1, 10 and 100
    /// alerts per request for 5 s each.
    pub fn full(out: PathBuf, exe: PathBuf) -> Self {
        Self {
            alerts: 1000,
            sizes: vec![100, 1000, 10_000],
            // 25 min of 15 s cycles: past the fleet's longest retention (15 m `for` + 5 m)
            cycles: 100,
            batches: vec![1, 10, 100],
            concurrency: 16,
            ingest_for: Duration::from_secs(5),
            ingest_workloads: 1000,
            out,
            exe,
            only: Measurement::ALL.to_vec(),
        }
    }

    /// A small run that exercises every measurement in seconds (for the tests).
    pub fn quick(out: PathBuf, exe: PathBuf) -> Self {
        Self {
            alerts: 20,
            sizes: vec![100],
            cycles: 3,
            batches: vec![10],
            concurrency: 4,
            ingest_for: Duration::from_millis(500),
            ingest_workloads: 20,
            out,
            exe,
            only: Measurement::ALL.to_vec(),
        }
    }
}

/// Runs every measurement, prints the table as it goes and writes the figures.
pub async fn run(opts: &BenchOptions) -> anyhow::Result<Figures> {
    let mut figures = Figures {
        machine: Machine::this(),
        webhook_to_patch: None,
        webhook_to_patch_kubernetes: None,
        cycles: Vec::new(),
        ingestion: Vec::new(),
        comparison: Vec::new(),
    };
    if opts.only.contains(&Measurement::Latency) {
        eprintln!(
            "webhook → rollback PATCH: {} workloads, one alert each …",
            opts.alerts
        );
        figures.webhook_to_patch = Some(latency::run(opts.alerts, fleet::Backend::Sqlite).await?);
    }
    if opts.only.contains(&Measurement::LatencyKubernetes) {
        eprintln!(
            "webhook → rollback PATCH with the Kubernetes store: {} workloads …",
            opts.alerts
        );
        figures.webhook_to_patch_kubernetes =
            Some(latency::run(opts.alerts, fleet::Backend::Kubernetes).await?);
    }
    if opts.only.contains(&Measurement::Cycle) {
        eprintln!("evaluation cycles: {:?} workloads …", opts.sizes);
        figures.cycles = cycle::run(&opts.exe, &opts.sizes, opts.cycles).await?;
    }
    if opts.only.contains(&Measurement::Ingest) {
        eprintln!(
            "webhook ingestion: {:?} alerts per request, {} senders …",
            opts.batches, opts.concurrency
        );
        let world = fleet::World::start(opts.ingest_workloads, fleet::Backend::Sqlite).await?;
        let next = Arc::new(AtomicUsize::new(0));
        for &batch in &opts.batches {
            match ingest::run(&world, batch, opts.concurrency, opts.ingest_for, &next).await {
                Ok(i) => figures.ingestion.push(i),
                Err(e) => {
                    world.stop().await;
                    return Err(e);
                }
            }
        }
        world.stop().await;
    }

    let (interval, jitter) = crate::config::evaluation_defaults();
    let cycle = figures
        .cycles
        .iter()
        .max_by_key(|c| c.workloads)
        .map_or(Duration::ZERO, |c| {
            Duration::from_secs_f64(c.median_ms / 1e3)
        });
    let hook = figures
        .webhook_to_patch
        .as_ref()
        .map_or(Duration::ZERO, |w| {
            Duration::from_secs_f64(w.latency.p50_ms / 1e3)
        });
    figures.comparison = compare::rows(&compare::Inputs {
        interval,
        jitter,
        cycle,
        webhook_to_patch: hook,
    });
    write(&opts.out, &figures)?;
    Ok(figures)
}

/// Writes `<out>.json` and `<out>.md`.
fn write(out: &Path, figures: &Figures) -> anyhow::Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let json = out.with_extension("json");
    std::fs::write(&json, serde_json::to_string_pretty(figures)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let md = out.with_extension("md");
    std::fs::write(&md, figures.table()).with_context(|| format!("writing {}", md.display()))?;
    Ok(())
}
