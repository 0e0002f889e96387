//! The daemon: wiring of the API, the evaluation loop, the incident runner, the deploy
//! watcher and the notification outbox. This is the only module that sees them all.
//!
//! ```text
//! watcher ──deploys──▶ evaluation loop ◀──wake── API (webhook, override)
//!                        │ decisions → gate → incidents (store)
//!                        ▼
//!                      runner ──steps──▶ executor / verifier ──▶ cluster
//!                        │ transitions + outbox rows (one transaction)
//!                        ▼
//!                      outbox worker ──▶ Slack, Statuspage, webhook
//! ```

pub mod alert_sync;
pub mod collect;
pub mod evaluate;
pub mod gate;
pub mod leader;
pub mod leading_outbox;
pub mod pre_deploy;
pub mod retention;
pub mod runner;
pub mod seed;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{AgentIndex, AlertIngest, ApiState, Auth, Forwarder, Wake, router};
use crate::channel::bounded;
use crate::cluster::Cluster;
use crate::executor::Executor;
use crate::health::{Expect, Supervisor, TaskHealth};
use crate::lifecycle::announce::Channels;
use crate::metrics::Metrics;
use crate::notify::{DeliveryObserver, NotifierConfig, Notifiers, OutboxStore, run_outbox};
use crate::signals::latest::{Latest, LatestReadings};
use crate::store::StateStore;
use crate::watcher::{DeployWatcher, KubeSnapshot};
use collect::MetricSource;
use evaluate::{Evaluator, Limits};
use rollbackd_core::policy::Policy;
use runner::Runner;

/// Capacity of each internal channel of the evaluation loop.
const CHANNEL_CAPACITY: usize = 4096;

/// An evaluation cycle's read of the metric signals, running beside the loop.
type ReadFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = (collect::Readings, KubeSnapshot)> + Send>>;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The API's address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The deploy watcher could not start (no policy names a workload).
    #[error("watcher: {0}")]
    Watch(#[from] crate::watcher::WatchError),
    /// The notifiers could not be built.
    #[error("notifiers: {0}")]
    Notify(#[from] crate::notify::NotifyError),
    /// The client forwarding a standby's writes to the leader could not be built.
    #[error("forwarding: {0}")]
    Forward(#[from] crate::api::ForwardError),
}

impl DaemonError {
    /// Label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DaemonError::Listen { .. } => "listen",
            DaemonError::Store(_) => "store",
            DaemonError::Watch(_) => "watch",
            DaemonError::Notify(_) => "notify",
            DaemonError::Forward(_) => "forward",
        }
    }
}

/// Everything the daemon runs with.
pub struct DaemonOptions {
    /// The validated policies, one per agent.
    pub policies: Vec<Arc<Policy>>,
    /// Where incidents, steps, outbox, audit, alerts and pauses are kept.
    pub store: Arc<dyn StateStore>,
    /// Client of the Kubernetes API (or the simulator).
    pub client: kube::Client,
    /// Where metric signals come from: Prometheus or direct scrape.
    pub source: MetricSource,
    /// Address the API listens on (`server.listen`).
    pub listen: SocketAddr,
    /// Request bodies above this many bytes get 413 (`server.max_body_bytes`).
    pub max_body_bytes: usize,
    /// API tokens and the webhook's credentials.
    pub auth: Auth,
    /// Alert label naming the agent (`webhook.agent_label`).
    pub agent_label: String,
    /// Evaluation interval and the random jitter added to it.
    pub interval: Duration,
    /// Up to this much random delay is added to each interval.
    pub jitter: Duration,
    /// Dry run and rate limits (`[safety]`).
    pub limits: Limits,
    /// Notifier endpoints, credentials and retry settings.
    pub notifier: NotifierConfig,
    /// Which notifier kinds are configured.
    pub channels: Channels,
    /// How often the post-rollback watch re-checks the signals.
    pub watch_interval: Duration,
    /// Leader election among replicas; `None` = this instance always acts.
    pub leader: Option<LeaderOptions>,
    /// Alertmanager, asked for the firing alerts whenever this replica starts leading.
    pub alertmanager: Option<crate::signals::alertmanager::AlertmanagerClient>,
    /// Delete finished incidents, alerts and audit entries older than this (hourly);
    /// `None` keeps everything (the demo, tests).
    pub retention: Option<Duration>,
}

/// Where and how replicas elect the one that acts.
#[derive(Debug, Clone)]
pub struct LeaderOptions {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's name in the Lease.
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// How often the Lease is read and renewed.
    pub renew_every: Duration,
    /// This replica's API URL, written on the Lease while it leads so that standbys
    /// forward writes to it (`server.advertise_url`); `None`: standbys answer them 503.
    pub advertise_url: Option<String>,
}

/// A running daemon.
pub struct DaemonHandle {
    /// Where the API listens.
    pub api_addr: SocketAddr,
    /// The daemon's store.
    pub store: Arc<dyn StateStore>,
    /// rollbackd's own metrics, as `/metrics` serves them.
    pub metrics: Arc<Metrics>,
    /// Each agent's current status by agent id, as `GET /api/v1/agents` shows it.
    pub status: Arc<RwLock<BTreeMap<String, crate::api::AgentStatus>>>,
    /// The critical tasks: a stopped one fails `/healthz`.
    pub tasks: Arc<TaskHealth>,
    cancel: CancellationToken,
    tasks_running: Vec<JoinHandle<()>>,
    /// The incident runner: its tasks are waited for at shutdown.
    runner: Arc<Runner>,
}

impl DaemonHandle {
    /// Stops taking new work, lets the incident step in flight reach its journal, flushes
    /// the outbox, and waits for the tasks.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        // the runner's incident tasks stop at their next step boundary, journal written
        self.runner.shutdown(Duration::from_secs(10)).await;
        for t in self.tasks_running {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }

    /// Resolves when a critical task ended (it should not before shutdown).
    pub fn cancelled(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

struct MetricsObserver(Arc<Metrics>);

impl DeliveryObserver for MetricsObserver {
    fn delivered(&self, target_kind: &str, outcome: &str, _elapsed: Duration) {
        self.0
            .inc("rollbackd_notifications_total", &[target_kind, outcome]);
    }
}

/// Marks each revision that lived through its window cleanly as verified on its ReplicaSet,
/// so `last_known_good` can return to it. A failure is logged: the mark is a convenience for
/// later rollbacks, never needed for this one.
async fn mark_verified(
    cluster: Cluster,
    policies: Arc<Vec<Arc<Policy>>>,
    mut rx: mpsc::Receiver<evaluate::RevisionVerified>,
) {
    while let Some(v) = rx.recv().await {
        let Some(w) = policies
            .iter()
            .find(|p| p.agent.id == v.agent)
            .and_then(|p| p.workload(&v.workload))
        else {
            continue;
        };
        match crate::cluster::annotate::mark_revision_verified(&cluster, w, v.revision).await {
            Ok(rs) => {
                tracing::info!(agent = %v.agent, revision = v.revision, replicaset = %rs, "revision marked verified: it lived through its window")
            }
            Err(e) => {
                tracing::warn!(agent = %v.agent, revision = v.revision, error = %e, "could not mark the revision verified")
            }
        }
    }
}

/// A pseudo-random jitter in `[0, max)` without a RNG dependency.
fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return max;
    }
    let nanos = Utc::now().timestamp_subsec_nanos() as u128;
    Duration::from_nanos((nanos * 2_654_435_761 % max.as_nanos().max(1)) as u64)
}

/// Drives an incident; a driver that panics is a runner failure (`/healthz` fails).
fn drive(runner: &Arc<Runner>, supervisor: &Supervisor, id: String) {
    if let Some(handle) = runner.drive(id) {
        supervisor.watch("runner", Expect::MayFinish, handle);
    }
}

/// Says at start, in the log and on `/metrics`, whether the Alertmanager webhook accepts
/// alerts from anyone.
fn report_webhook_auth(auth: &Auth, metrics: &Metrics) {
    let open = auth.webhook.is_open();
    if open {
        tracing::warn!(
            "the Alertmanager webhook accepts alerts without credentials ([webhook] allow_unauthenticated = true)"
        );
    }
    metrics.set(
        "rollbackd_webhook_unauthenticated",
        &[],
        if open { 1.0 } else { 0.0 },
    );
}

/// Starts every task; returns once the API listens and the watcher has its first view.
pub async fn start(mut opts: DaemonOptions) -> Result<DaemonHandle, DaemonError> {
    let cancel = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());
    let status = Arc::new(RwLock::new(BTreeMap::new()));
    let latest: Latest = Arc::new(RwLock::new(LatestReadings::default()));
    let policies = Arc::new(opts.policies);
    report_webhook_auth(&opts.auth, &metrics);
    let supervisor = Supervisor {
        health: Arc::new(TaskHealth::new()),
        metrics: metrics.clone(),
        shutdown: cancel.clone(),
    };
    let ready = Arc::new(AtomicBool::new(false));
    // bounded: alerts wait for room (back-pressure on the webhook); other wakes, incident
    // drives and rollback notes are dropped and counted when a stalled loop lets them fill
    let (wake_tx, mut wake_rx) = bounded::<Wake>("wake", CHANNEL_CAPACITY, metrics.clone());
    let (runner_tx, mut runner_rx) = bounded::<String>("runner", CHANNEL_CAPACITY, metrics.clone());
    let (rolled_tx, mut rolled_rx) = bounded::<String>("rolled", CHANNEL_CAPACITY, metrics.clone());
    let (deploy_tx, mut deploy_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let mut tasks = Vec::new();
    if opts.channels.kube_events {
        let instance = opts
            .leader
            .as_ref()
            .map_or_else(|| "rollbackd".to_string(), |l| l.identity.clone());
        let cluster = Cluster::new(opts.client.clone());
        let (recorder, writer) =
            crate::events::recorder::start(cluster, instance, metrics.clone(), cancel.clone());
        tasks.push(supervisor.spawn("events", Expect::RunsUntilShutdown, writer));
        opts.channels.events = recorder;
    }

    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: opts.listen,
            source,
        })?;
    let api_addr = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen {
            addr: opts.listen,
            source,
        })?;
    // only the leader evaluates, acts and takes writes through the API; a standby keeps its
    // caches warm
    let (leader_tx, leader_rx) = tokio::sync::watch::channel(opts.leader.is_none());
    // the Lease holder each election round reads, for a standby to forward writes to
    let (leader_addr_tx, leader_addr_rx) = tokio::sync::watch::channel(None);
    let forward = match &opts.leader {
        Some(l) => {
            if l.advertise_url.is_none() {
                tracing::warn!(
                    "no API URL to advertise ([server] advertise_url, or $POD_IP): while this replica leads, standbys answer writes 503 instead of forwarding them"
                );
            }
            Some(Forwarder::new(
                &l.identity,
                leader_addr_rx,
                crate::api::forward::TIMEOUT,
            )?)
        }
        None => None,
    };
    let alerts = AlertIngest::start(opts.store.clone(), wake_tx.clone());
    let agents = Arc::new(AgentIndex::new(&policies));
    if let Some(client) = opts.alertmanager.clone() {
        let sync = alert_sync::AlertSync {
            client,
            ingest: alerts.clone(),
            agents: agents.clone(),
            agent_label: opts.agent_label.clone(),
        };
        tasks.push(supervisor.spawn(
            "alert-sync",
            Expect::RunsUntilShutdown,
            sync.run(leader_rx.clone(), cancel.clone()),
        ));
    }
    let api_state = ApiState {
        agents,
        alerts,
        store: opts.store.clone(),
        policies: policies.clone(),
        auth: Arc::new(opts.auth),
        agent_label: opts.agent_label,
        metrics: metrics.clone(),
        status: status.clone(),
        wake: wake_tx,
        ready: ready.clone(),
        tasks: supervisor.health.clone(),
        dry_run: opts.limits.dry_run,
        leading: leader_rx.clone(),
        forward,
        latest: latest.clone(),
        channels: opts.channels.clone(),
        slack: crate::api::SlackInteractions::from_config(&opts.notifier)?,
    };
    let app = router(api_state, opts.max_body_bytes);
    let c = cancel.clone();
    tasks.push(
        supervisor.spawn("api", Expect::RunsUntilShutdown, async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { c.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "API server stopped");
            }
        }),
    );

    // webhook URLs are secrets: the notifiers hold them, outbox rows only name them
    let mut notifier = opts.notifier;
    notifier.webhook_urls.extend(opts.channels.webhook_urls());
    let notifiers = Notifiers::new(notifier)?.with_events(opts.channels.events.clone());
    // replicas that share one store (the Kubernetes store) leave delivery to the leader;
    // with a store of its own, a replica delivers what it queued (and flushes it on the
    // way out, after stepping down)
    let own: Arc<dyn OutboxStore> = Arc::new(opts.store.clone());
    let outbox: Arc<dyn OutboxStore> = if opts.store.shared() {
        Arc::new(leading_outbox::LeadingOutbox::new(own, leader_rx.clone()))
    } else {
        own
    };
    let observer = Arc::new(MetricsObserver(metrics.clone()));
    let c = cancel.clone();
    tasks.push(
        supervisor.spawn("outbox", Expect::RunsUntilShutdown, async move {
            run_outbox(
                outbox,
                notifiers,
                observer,
                async move { c.cancelled().await },
            )
            .await
        }),
    );

    if let Some(keep) = opts.retention {
        let (store, c) = (opts.store.clone(), cancel.clone());
        tasks.push(supervisor.spawn(
            "retention",
            Expect::RunsUntilShutdown,
            retention::run(store, keep, retention::EVERY, leader_rx.clone(), c),
        ));
    }

    // the fence the cluster checks before every write, when replicas elect a leader
    let mut fence = None;
    if let Some(l) = &opts.leader {
        let (term_tx, term_rx) = tokio::sync::watch::channel(None);
        fence = Some(crate::cluster::fence::Fence::new(
            opts.client.clone(),
            &l.namespace,
            &l.lease_name,
            &l.identity,
            term_rx,
        ));
        // only the Lease holder writes to a shared store, too
        if let Some(fence) = &fence {
            opts.store.fence_writes(fence.clone());
        }
        let elector = leader::LeaderElector::new(
            opts.client.clone(),
            &l.namespace,
            &l.lease_name,
            &l.identity,
            l.lease_duration,
            l.renew_every,
        )
        .with_term(term_tx)
        .with_advertise_url(l.advertise_url.clone())
        .with_leader_addr(leader_addr_tx);
        let c = cancel.clone();
        tasks.push(
            supervisor.spawn("leader", Expect::RunsUntilShutdown, async move {
                elector.run(c, leader_tx).await
            }),
        );
    } else {
        drop(leader_tx);
        drop(leader_addr_tx);
    }
    let mut cluster = Cluster::new(opts.client);
    if let Some(fence) = fence {
        cluster = cluster.with_fence(fence);
    }
    let watcher = Arc::new(
        DeployWatcher::start_supervised(cluster.clone(), &policies, deploy_tx, supervisor.clone())
            .await?,
    );
    let (verified_tx, verified_rx) = crate::channel::bounded("verified", 1024, metrics.clone());
    tasks.push(supervisor.spawn(
        "verified",
        Expect::RunsUntilShutdown,
        mark_verified(cluster.clone(), policies.clone(), verified_rx),
    ));
    let executor = Executor::new(cluster, Arc::new(opts.store.clone()));
    let runner = Runner::new(
        opts.store.clone(),
        policies.clone(),
        executor,
        metrics.clone(),
        latest.clone(),
        opts.channels.clone(),
        rolled_tx,
        opts.watch_interval,
        status.clone(),
        leader_rx.clone(),
    );

    let mut evaluator = Evaluator::new(
        &policies,
        opts.store.clone(),
        metrics.clone(),
        status.clone(),
        latest,
        opts.source,
        opts.limits,
        opts.channels,
        runner_tx,
    );
    evaluator.report_verified(verified_tx);
    let c = cancel.clone();
    let (interval, max_jitter) = (opts.interval, opts.jitter);
    let runner_for_loop = runner.clone();
    let runner_for_handle = runner.clone();
    let primary: BTreeMap<String, String> = policies
        .iter()
        .filter_map(|p| Some((p.agent.id.clone(), p.primary_workload()?.id.clone())))
        .collect();
    let store = opts.store.clone();
    let opts_has_leader = opts.leader.is_some();
    ready.store(true, Ordering::Relaxed);
    let sup = supervisor.clone();
    tasks.push(supervisor.spawn("evaluation", Expect::RunsUntilShutdown, async move {
        let mut next = tokio::time::Instant::now();
        let mut leader_rx = leader_rx;
        let mut was_leader = false;
        // the cycle's read in progress, and when it started: it runs beside the loop's other
        // work, and only applying its readings needs the evaluator
        let mut reading: Option<(DateTime<Utc>, ReadFuture)> = None;
        // failing reads are logged when they start and end, not every cycle
        let mut outages = collect::ReadOutages::default();
        loop {
            let leading = *leader_rx.borrow();
            if leading && !was_leader {
                // alerts recorded before a restart still count; later ones come with wakes
                evaluator.load_alerts(Utc::now()).await;
                // this replica did not sample the open windows: fetch their recent history
                evaluator.want_backfill();
                tracing::info!("acting as leader: resuming in-flight incidents");
                for inc in store.in_flight().await.unwrap_or_default() {
                    tracing::info!(incident = %inc.id, state = %inc.state, "resuming in-flight incident");
                    drive(&runner_for_loop, &sup, inc.id);
                }
            } else if !leading && was_leader {
                tracing::warn!("lost leadership: no new evaluations or steps until it is regained");
            }
            was_leader = leading;
            tokio::select! {
                _ = c.cancelled() => break,
                changed = leader_rx.changed(), if opts_has_leader => {
                    if changed.is_err() {
                        tracing::error!("leader election stopped: acting no more");
                        break;
                    }
                }
                _ = tokio::time::sleep_until(next), if leading && reading.is_none() => {
                    let now = Utc::now();
                    // the metric reads and the kube signals (a pass over the watcher's
                    // caches, on a blocking thread) run beside the loop
                    let (metrics, w) = (evaluator.read(now), watcher.clone());
                    let kube = tokio::task::spawn_blocking(move || w.kube_snapshot());
                    reading = Some((now, Box::pin(async move {
                        let (readings, kube) = tokio::join!(metrics, kube);
                        let kube = kube.unwrap_or_else(|e| {
                            // no kube signals this cycle: they read as no data (inconclusive)
                            tracing::error!(error = %e, "could not derive the kube signals");
                            KubeSnapshot::default()
                        });
                        (readings, kube)
                    })));
                }
                (readings, kube) = async {
                    match reading.as_mut() {
                        Some((_, read)) => read.await,
                        None => std::future::pending().await,
                    }
                }, if reading.is_some() => {
                    let read_at = reading.take().map_or_else(Utc::now, |(at, _)| at);
                    outages.report(&readings, read_at);
                    if leading {
                        evaluator.apply(&readings, read_at, Utc::now(), &|agent, workload| kube.of(agent, workload)).await;
                    }
                    next = tokio::time::Instant::now() + interval + jitter(max_jitter);
                }
                Some(d) = deploy_rx.recv() => {
                    if primary.get(&d.agent) == Some(&d.workload) {
                        evaluator.on_deploy(&d.agent, d.revision, d.at.unwrap_or_else(Utc::now), d.images.first().map(|(_, i)| i.clone()), d.rolled_back_by_rollbackd).await;
                    }
                }
                Some(wake) = wake_rx.recv() => {
                    // an alert storm wakes the loop once per commit: take every wake
                    // waiting now and evaluate each woken agent once
                    let mut alerts = Vec::new();
                    let mut next = Some(wake);
                    while let Some(wake) = next {
                        match wake {
                            Wake::Alerts(new) if leading => alerts.extend(new),
                            Wake::Incident(id) if leading => {
                                drive(&runner_for_loop, &sup, id);
                            }
                            _ => {}
                        }
                        next = wake_rx.try_recv().ok();
                    }
                    if !alerts.is_empty() {
                        evaluator.on_alerts(alerts, Utc::now()).await;
                    }
                }
                Some(id) = runner_rx.recv(), if leading => { drive(&runner_for_loop, &sup, id); }
                Some(agent) = rolled_rx.recv() => evaluator.on_rolled_back(&agent, Utc::now()),
            }
        }
    }));
    Ok(DaemonHandle {
        api_addr,
        store: opts.store,
        metrics,
        status,
        tasks: supervisor.health,
        cancel,
        tasks_running: tasks,
        runner: runner_for_handle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WebhookAuth;

    #[test]
    fn an_open_webhook_shows_on_metrics() {
        let open = Auth {
            webhook: WebhookAuth {
                allow_unauthenticated: true,
                ..WebhookAuth::default()
            },
            ..Auth::default()
        };
        let metrics = Metrics::new();
        report_webhook_auth(&open, &metrics);
        assert!(
            metrics
                .render()
                .contains("\nrollbackd_webhook_unauthenticated 1.0\n")
        );
        let closed = Auth {
            webhook: WebhookAuth {
                bearer_token: Some("a-long-enough-token".into()),
                allow_unauthenticated: true,
                ..WebhookAuth::default()
            },
            ..Auth::default()
        };
        report_webhook_auth(&closed, &metrics);
        assert!(
            metrics
                .render()
                .contains("\nrollbackd_webhook_unauthenticated 0.0\n")
        );
    }
}
