//! `rollbackd sim`: the Kubernetes API simulator on its own, for kubectl to explore.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::daemon::seed::seed;
use rollbackd_core::policy::load_all;
use rollbackd_sim::{SimConfig, Simulator};

/// Serves until SIGINT/SIGTERM.
pub async fn run(
    listen: SocketAddr,
    policies: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    pod_ready_after: Duration,
) -> anyhow::Result<()> {
    let sim = Simulator::start(
        listen,
        SimConfig {
            pod_ready_after,
            ..SimConfig::default()
        },
    )
    .await?;
    if let Some(dir) = policies {
        let policies: Vec<_> = load_all(&[dir])
            .map_err(|e| anyhow::anyhow!("invalid policies:\n{e}"))?
            .into_iter()
            .map(Arc::new)
            .collect();
        for w in seed(&sim, &policies, 3)? {
            println!("seeded deployment {w}");
        }
    }
    println!("Kubernetes API simulator listening on {}", sim.url());
    match kubeconfig {
        Some(path) => {
            let dir = path
                .parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            let written = sim.kubeconfig(&dir)?;
            if written != path {
                std::fs::rename(&written, &path)?;
            }
            println!("kubeconfig written: export KUBECONFIG={}", path.display());
        }
        None => println!("try: kubectl --server {} get deployments -A", sim.url()),
    }
    crate::process::shutdown_signal().await;
    sim.shutdown().await;
    Ok(())
}
