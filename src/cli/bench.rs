//! `rollbackd bench` and its per-size child `rollbackd bench-cycle`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::bench::{BenchOptions, Measurement, cycle, run};

/// Runs the benchmark and prints the table.
pub async fn bench(
    out: &Path,
    quick: bool,
    alerts: Option<usize>,
    only: Vec<Measurement>,
) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rollbackd::bench=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let exe = std::env::current_exe().context("locating the rollbackd executable")?;
    let out: PathBuf = out.to_path_buf();
    let mut opts = if quick {
        BenchOptions::quick(out, exe)
    } else {
        BenchOptions::full(out, exe)
    };
    if let Some(n) = alerts {
        opts.alerts = n;
    }
    if !only.is_empty() {
        opts.only = only;
    }
    let figures = run(&opts).await?;
    println!("{}", figures.table());
    println!(
        "figures written to {} and {}",
        opts.out.with_extension("json").display(),
        opts.out.with_extension("md").display()
    );
    Ok(())
}

/// One size's cycles, in this process (reports one JSON line).
pub async fn bench_cycle(
    workloads: usize,
    prometheus: &str,
    kube: &str,
    cycles: usize,
) -> anyhow::Result<()> {
    cycle::child(workloads, prometheus, kube, cycles).await
}
