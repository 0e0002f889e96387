//! The benchmark's fleet: `n` look-alike services cloned from `fleet.toml` (three shared
//! PromQL signals), their Deployments in the Kubernetes simulator, and a whole rollbackd
//! (SQLite file, API, watcher, runner) watching them, reading a stand-in Prometheus.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;

use super::fake_prometheus::{Answers, FakePrometheus};
use crate::api::Auth;
use crate::daemon::collect::MetricSource;
use crate::daemon::evaluate::Limits;
use crate::daemon::{DaemonHandle, DaemonOptions, start};
use crate::lifecycle::announce::Channels;
use crate::notify::NotifierConfig;
use crate::signals::prometheus::{PromClient, PromClientConfig};
use crate::store::{KubeStore, SqliteStore, StateStore, Synchronous};
use rollbackd_core::policy::{Policy, PolicyErrors, SignalSource, parse_policy};
use rollbackd_sim::{SimConfig, SimHandle, Simulator};

/// The namespace every fleet workload lives in.
pub const NAMESPACE: &str = "bench";

const TEMPLATE: &str = include_str!("fleet.toml");

/// The Deployment of workload `i`.
pub fn deployment(i: usize) -> String {
    format!("svc-{i:05}")
}

/// The agent id of workload `i`.
pub fn agent(i: usize) -> String {
    format!("FLEET-{i:05}")
}

/// The image workload `i` runs at `version`.
pub fn image(i: usize, version: &str) -> String {
    format!("registry.local/bench/{}:{version}", deployment(i))
}

/// `n` policies, one per workload, all sharing the template's three PromQL texts.
pub fn policies(n: usize) -> anyhow::Result<Vec<Arc<Policy>>> {
    let template =
        parse_policy(Path::new("src/bench/fleet.toml"), TEMPLATE).map_err(PolicyErrors)?;
    Ok((0..n)
        .map(|i| {
            let mut p = template.clone();
            p.agent.id = agent(i);
            if let Some(w) = p.workloads.first_mut() {
                w.name = deployment(i);
            }
            Arc::new(p)
        })
        .collect())
}

/// The template's PromQL texts, with a healthy value for each: 0.1 % errors, p95 200 ms,
/// p99 400 ms (no row matches).
pub fn healthy_answers(n: usize) -> anyhow::Result<Answers> {
    let template = policies(1)?;
    let p = template.first().context("no template policy")?;
    let values = p
        .signals
        .iter()
        .filter_map(|(name, s)| match &s.source {
            SignalSource::Metric {
                promql: Some(q), ..
            } => Some((
                q.clone(),
                match name.as_str() {
                    "error_rate" => 0.001,
                    "latency_p95" => 0.2,
                    _ => 0.4,
                },
            )),
            _ => None,
        })
        .collect();
    Ok(Answers {
        namespace: NAMESPACE.into(),
        deployments: (0..n).map(deployment).collect(),
        values,
    })
}

/// How often the fleet's waits look again.
const POLL: Duration = Duration::from_millis(100);

/// Calls `check` every `every` until it is `Ok`; after `timeout`, fails with the last
/// thing `check` said was missing.
pub async fn poll_until(
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(missing) if t0.elapsed() > timeout => {
                return Err(anyhow!("{missing} after {:?}", t0.elapsed()));
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// `Ok` when `done`, else what is missing.
pub fn done_when(done: bool, missing: impl FnOnce() -> String) -> Result<(), String> {
    if done { Ok(()) } else { Err(missing()) }
}

/// A simulator holding the fleet's `n` Deployments, each rolled out at v1 (one Ready pod).
pub async fn start_cluster(n: usize) -> anyhow::Result<SimHandle> {
    // The simulator stands in for a cluster that runs elsewhere, yet shares this machine's
    // two cores. Its controllers reconcile only what changed, and a 1 s tick with pods
    // Ready after 1 s keeps the stand-in's share of the CPU small (webhook → PATCH never
    // waits for a controller pass).
    let config = SimConfig {
        tick: Duration::from_millis(1000),
        pod_ready_after: Duration::from_secs(1),
        ..SimConfig::default()
    };
    let t0 = Instant::now();
    let sim = Simulator::start("127.0.0.1:0".parse()?, config).await?;
    for i in 0..n {
        sim.create(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": deployment(i), "namespace": NAMESPACE, "labels": {"app": deployment(i)}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": deployment(i)}},
                "template": {"metadata": {"labels": {"app": deployment(i)}},
                             "spec": {"containers": [{"name": "app", "image": image(i, "v1")}]}},
                "progressDeadlineSeconds": 60,
            }
        }))?;
    }
    poll_until(Duration::from_secs(60 + n as u64 / 20), POLL, || {
        let done = (0..n)
            .filter(|i| {
                sim.get("apps/v1", "Deployment", NAMESPACE, &deployment(*i))
                    .is_some_and(|d| d["status"]["availableReplicas"].as_u64() == Some(1))
            })
            .count();
        done_when(done == n, || {
            format!("only {done} of {n} Deployments rolled out")
        })
    })
    .await?;
    tracing::info!(workloads = n, elapsed = ?t0.elapsed(), "fleet: v1 rolled out");
    Ok(sim)
}

/// Where the benchmarked daemon keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (the default backend).
    Sqlite,
    /// `RollbackIncident`s and ConfigMaps on the (simulated) Kubernetes API, the CRD created
    /// from the built-in manifest.
    Kubernetes,
}

impl Backend {
    /// Its `store.backend` name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Kubernetes => "kubernetes",
        }
    }
}

/// A simulator, a stand-in Prometheus and a rollbackd over an `n`-workload fleet whose
/// every workload is at revision 2 with its post-deploy window open.
pub struct World {
    /// The Kubernetes API simulator holding the fleet's Deployments.
    pub sim: SimHandle,
    /// The stand-in Prometheus answering the fleet's shared queries.
    pub prometheus: FakePrometheus,
    /// The rollbackd under test.
    pub daemon: DaemonHandle,
    /// How many workloads the fleet has.
    pub n: usize,
    /// Where the daemon keeps its state.
    pub backend: Backend,
    _dir: tempfile::TempDir,
}

impl World {
    /// Builds the world with its state in `backend`; takes a few seconds per thousand
    /// workloads.
    pub async fn start(n: usize, backend: Backend) -> anyhow::Result<World> {
        let t0 = Instant::now();
        let sim = start_cluster(n).await?;
        let client = kube::Client::try_from(kube::Config::new(sim.url().parse()?))?;
        let prometheus = FakePrometheus::start(&healthy_answers(n)?).await?;
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn StateStore> = match backend {
            Backend::Sqlite => Arc::new(
                SqliteStore::open(&dir.path().join("rollbackd.db"), Synchronous::Normal).await?,
            ),
            Backend::Kubernetes => {
                sim.create(crate::store::kubernetes::crd::definition()?)?;
                Arc::new(KubeStore::open(client.clone(), "rollbackd").await?)
            }
        };
        let daemon = start(DaemonOptions {
            policies: policies(n)?,
            store,
            client: client.clone(),
            source: MetricSource::Prometheus(PromClient::new(PromClientConfig::new(
                prometheus.url(),
            ))?),
            listen: "127.0.0.1:0".parse()?,
            max_body_bytes: 4 << 20,
            auth: Auth {
                tokens: Vec::new(),
                // the benchmark's senders post without credentials
                webhook: crate::config::WebhookAuth {
                    allow_unauthenticated: true,
                    ..Default::default()
                },
            },
            agent_label: "agent".into(),
            // the shipped defaults ([evaluation] interval 15s, jitter 2s)
            interval: Duration::from_secs(15),
            jitter: Duration::from_secs(2),
            limits: Limits {
                dry_run: false,
                max_per_agent_per_window: 1,
                max_per_hour: 1_000_000,
            },
            notifier: NotifierConfig::default(),
            channels: Channels::default(),
            watch_interval: Duration::from_secs(1),
            leader: None,
            retention: None,
            alertmanager: None,
        })
        .await?;
        let world = World {
            sim,
            prometheus,
            daemon,
            n,
            backend,
            _dir: dir,
        };
        world.deploy_v2(&client).await?;
        tracing::info!(workloads = n, elapsed = ?t0.elapsed(), "fleet: v2 deployed");
        world
            .wait_windows_open(Duration::from_secs(60 + n as u64 / 20))
            .await?;
        tracing::info!(workloads = n, elapsed = ?t0.elapsed(), "fleet: every window open");
        // v2's pods replace v1's: measure only once the simulator is done, so its
        // controllers (the stand-in for a cluster elsewhere) do not share the CPU
        world
            .wait_quiet(
                Duration::from_secs(1),
                Duration::from_secs(60 + n as u64 / 20),
            )
            .await?;
        tracing::info!(workloads = n, elapsed = ?t0.elapsed(), "fleet: simulator quiet");
        Ok(world)
    }

    async fn deploy_v2(&self, client: &kube::Client) -> anyhow::Result<()> {
        let api: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), NAMESPACE);
        for i in 0..self.n {
            let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image(i, "v2")}]}}}});
            api.patch(
                &deployment(i),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Strategic(patch),
            )
            .await
            .with_context(|| format!("deploying v2 of {}", deployment(i)))?;
        }
        Ok(())
    }

    async fn wait_windows_open(&self, timeout: Duration) -> anyhow::Result<()> {
        poll_until(timeout, POLL, || {
            let open = self.daemon.status.read().map_or(0, |s| {
                s.values()
                    .filter(|a| a.window_open && a.revision == Some(2))
                    .count()
            });
            done_when(open == self.n, || {
                format!("only {open} of {} post-deploy windows open", self.n)
            })
        })
        .await
    }

    /// Waits until the simulator's store has not changed for `quiet`.
    async fn wait_quiet(&self, quiet: Duration, timeout: Duration) -> anyhow::Result<()> {
        let (mut rv, mut since) = (self.sim.resource_version(), Instant::now());
        poll_until(timeout, Duration::from_millis(50), || {
            let now = self.sim.resource_version();
            if now != rv {
                (rv, since) = (now, Instant::now());
            }
            done_when(since.elapsed() >= quiet, || {
                "the simulator was still busy".to_string()
            })
        })
        .await
    }

    /// The webhook's URL.
    pub fn webhook_url(&self) -> String {
        format!("http://{}/api/v1/alerts", self.daemon.api_addr)
    }

    /// Waits until at most `busy` incidents are in flight; false after `timeout`. Polls a
    /// count every 10 ms: an index in SQLite, the watched copy on the Kubernetes store
    /// (reading the incidents themselves would compete with the daemon for its store and
    /// the CPU it is measured on).
    pub async fn settle(&self, busy: usize, timeout: Duration) -> bool {
        let t0 = Instant::now();
        let every = Duration::from_millis(10);
        loop {
            let count = self.daemon.store.in_flight_count().await;
            if !count.is_ok_and(|n| n > busy) {
                return true;
            }
            if t0.elapsed() > timeout {
                return false;
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Lets the incidents in flight finish (up to 60 s), then stops everything.
    pub async fn stop(self) {
        self.settle(0, Duration::from_secs(60)).await;
        self.daemon.shutdown().await;
        self.prometheus.stop().await;
        self.sim.shutdown().await;
    }
}
