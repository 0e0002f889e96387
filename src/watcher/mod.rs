//! The deploy watcher: kube-rs watchers/reflectors over the ReplicaSets, Deployments,
//! Rollouts and Pods of the namespaces the policies name. A new highest revision of a
//! watched workload is snapshotted (its ConfigMaps) and emitted as [`DeployObserved`]; a
//! revision rollbackd itself created (undo, set_image, restart) is flagged so the caller
//! opens no new post-deploy window for it. On start every workload's current revision is
//! rebuilt from the cluster and emitted with `initial: true`.
//!
//! Every watch task is a critical task (its stop fails `/healthz`); watch errors are
//! counted and logged on state changes, and a workload whose namespace's watches have
//! failed for longer than its policy's `stale_after` gets no kube signals (no data).

mod health;
mod index;
mod signals;
mod trim;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::cluster::annotate::LastAction;
use crate::cluster::pods::KubeSignals;
use crate::cluster::snapshot::{snapshot_configmaps, snapshot_from_revision};
use crate::cluster::views::{DeploymentView, PodView, ReplicaSetView};
use crate::cluster::{Cluster, Kind};
use crate::health::{Expect, Supervisor};
pub use health::{WatchChange, WatchHealth};
use index::{NsIndex, controller_name};
use rollbackd_core::policy::{Policy, Workload};
use signals::{Inputs, Owner, current_replicaset};

/// A revision of a watched workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeployObserved {
    /// The policy's agent id.
    pub agent: String,
    /// The workload's policy id.
    pub workload: String,
    /// Namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// The new highest revision.
    pub revision: u64,
    /// The ReplicaSet's creation time. A revision made by an undo reuses an old
    /// ReplicaSet, so this can be long before `observed_at`.
    pub at: Option<DateTime<Utc>>,
    /// When the watcher saw the revision.
    pub observed_at: DateTime<Utc>,
    /// `(container, image)` of the revision.
    pub images: Vec<(String, String)>,
    /// rollbackd's own action created this revision.
    pub rolled_back_by_rollbackd: bool,
    /// Reported at start-up (rebuilt from the cluster), not seen happening.
    pub initial: bool,
    /// ConfigMap snapshots that exist for this revision.
    pub snapshots: Vec<String>,
}

/// Errors starting the watcher.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// No policy names a workload.
    #[error("no workloads to watch")]
    Nothing,
}

impl WatchError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        "nothing_to_watch"
    }
}

/// One watched workload: a policy and the index of the workload in it (the policy is
/// shared, not copied per workload).
#[derive(Clone)]
struct Target {
    policy: Arc<Policy>,
    index: usize,
}

impl Target {
    fn agent(&self) -> &str {
        &self.policy.agent.id
    }

    fn workload(&self) -> &Workload {
        // in range: `index` comes from `0..workloads.len()` of this (immutable) policy
        &self.policy.workloads[self.index]
    }
}

#[derive(Clone)]
struct NsStores {
    replicasets: Store<ReplicaSetView>,
    pods: Store<PodView>,
    deployments: Store<DeploymentView>,
    rollouts: Store<DynamicObject>,
}

/// A running watcher. Dropping it stops the watches.
pub struct DeployWatcher {
    targets: Vec<Target>,
    stores: BTreeMap<String, NsStores>,
    tasks: Vec<AbortHandle>,
    /// Which watches are failing, and since when.
    watches: Arc<WatchHealth>,
    /// Per (agent, workload): the digest of the objects its kube signals were computed
    /// from, and those signals. A cycle recomputes only the workloads whose objects changed.
    signals: Mutex<HashMap<(String, String), (u64, KubeSignals)>>,
}

pub use crate::cluster::annotate::created_by_rollbackd;

impl DeployWatcher {
    /// Starts watching every workload (primary and coordinated) the policies name and
    /// sends revisions on `tx` (its tasks' stops and watch errors are recorded in a
    /// supervisor of its own; the daemon uses [`DeployWatcher::start_supervised`]).
    pub async fn start(
        cluster: Cluster,
        policies: &[Arc<Policy>],
        tx: mpsc::Sender<DeployObserved>,
    ) -> Result<DeployWatcher, WatchError> {
        Self::start_supervised(cluster, policies, tx, Supervisor::default()).await
    }

    /// [`DeployWatcher::start`] with the daemon's supervisor: a watch task that stops
    /// before shutdown is a `watcher` failure, and watch errors are counted in its metrics.
    pub async fn start_supervised(
        cluster: Cluster,
        policies: &[Arc<Policy>],
        tx: mpsc::Sender<DeployObserved>,
        supervisor: Supervisor,
    ) -> Result<DeployWatcher, WatchError> {
        let mut targets = Vec::new();
        for p in policies {
            for index in 0..p.workloads.len() {
                targets.push(Target {
                    policy: p.clone(),
                    index,
                });
            }
        }
        if targets.is_empty() {
            return Err(WatchError::Nothing);
        }
        let mut namespaces: Vec<String> = targets
            .iter()
            .map(|t| t.workload().namespace.clone())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        let client = cluster.client().clone();
        let mut stores = BTreeMap::new();
        let mut tasks = Vec::new();
        let watches = Arc::new(WatchHealth::new());
        let spawn =
            |tasks: &mut Vec<AbortHandle>,
             task: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
                let handle = tokio::spawn(task);
                tasks.push(handle.abort_handle());
                supervisor.watch("watcher", Expect::RunsUntilShutdown, handle);
            };
        let observer = |resource: &'static str, ns: &str| Observer {
            resource,
            namespace: ns.to_string(),
            watches: watches.clone(),
            metrics: supervisor.metrics.clone(),
        };
        for ns in namespaces {
            let (pods, pw) = reflector::store::<PodView>();
            let pod_stream = reflector::reflector(
                pw,
                watcher(
                    Api::<PodView>::namespaced(client.clone(), &ns),
                    watcher::Config::default(),
                ),
            )
            .default_backoff();
            spawn(
                &mut tasks,
                Box::pin(observer("pods", &ns).drain(pod_stream)),
            );
            let (deployments, dw) = reflector::store::<DeploymentView>();
            let d_stream = reflector::reflector(
                dw,
                watcher(
                    Api::<DeploymentView>::namespaced(client.clone(), &ns),
                    watcher::Config::default(),
                ),
            )
            .default_backoff();
            spawn(
                &mut tasks,
                Box::pin(observer("deployments", &ns).drain(d_stream)),
            );
            let ar = Kind::Rollout.resource();
            let rw = reflector::store::Writer::<DynamicObject>::new(ar.clone());
            let rollouts = rw.as_reader();
            if targets
                .iter()
                .any(|t| t.workload().namespace == ns && Kind::of(t.workload()) == Kind::Rollout)
            {
                let r_stream = reflector::reflector(
                    rw,
                    watcher(
                        Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &ar),
                        watcher::Config::default(),
                    )
                    .modify(trim::rollout),
                )
                .default_backoff();
                spawn(
                    &mut tasks,
                    Box::pin(observer("rollouts", &ns).drain(r_stream)),
                );
            }
            let (replicasets, rsw) = reflector::store::<ReplicaSetView>();
            let s = NsStores {
                replicasets: replicasets.clone(),
                pods,
                deployments,
                rollouts,
            };
            stores.insert(ns.clone(), s.clone());
            let ns_targets: Vec<Target> = targets
                .iter()
                .filter(|t| t.workload().namespace == ns)
                .cloned()
                .collect();
            let rs_stream = reflector::reflector(
                rsw,
                watcher(
                    Api::<ReplicaSetView>::namespaced(client.clone(), &ns),
                    watcher::Config::default(),
                ),
            )
            .default_backoff();
            let cluster = cluster.clone();
            let tx = tx.clone();
            let rs_observer = observer("replicasets", &ns);
            spawn(
                &mut tasks,
                Box::pin(async move {
                    let mut seen: HashMap<(String, String), u64> = HashMap::new();
                    let mut ready = false;
                    let mut stream = std::pin::pin!(rs_stream);
                    while let Some(ev) = stream.next().await {
                        rs_observer.event(&ev);
                        match ev {
                            Ok(watcher::Event::InitDone) => {
                                ready = true;
                                if !process(&cluster, &s, &ns_targets, &mut seen, true, &tx, None)
                                    .await
                                {
                                    return;
                                }
                            }
                            Ok(watcher::Event::Apply(rs) | watcher::Event::Delete(rs)) if ready => {
                                // only the workload that controls this ReplicaSet can have a new revision
                                let Some(owner) = controller_name(&rs) else {
                                    continue;
                                };
                                if !process(
                                    &cluster,
                                    &s,
                                    &ns_targets,
                                    &mut seen,
                                    false,
                                    &tx,
                                    Some(owner),
                                )
                                .await
                                {
                                    return;
                                }
                            }
                            Ok(_) | Err(_) => {}
                        }
                    }
                }),
            );
        }
        Ok(DeployWatcher {
            targets,
            stores,
            tasks,
            watches,
            signals: Mutex::new(HashMap::new()),
        })
    }

    /// Kube signals of a workload from the watcher's caches (`None` for an unknown
    /// workload or before the caches hold it).
    pub fn kube_signals(&self, workload_id: &str) -> Option<KubeSignals> {
        let t = self
            .targets
            .iter()
            .find(|t| t.workload().id == workload_id)?;
        self.signals_for(t)
    }

    /// Kube signals of one policy's workload: workload ids are unique within a policy only
    /// (GL-001 and GL-006 both call a workload `gl-006`).
    pub fn kube_signals_of(&self, agent: &str, workload_id: &str) -> Option<KubeSignals> {
        let t = self
            .targets
            .iter()
            .find(|t| t.agent() == agent && t.workload().id == workload_id)?;
        self.signals_for(t)
    }

    fn signals_for(&self, t: &Target) -> Option<KubeSignals> {
        if self.stale(t, Utc::now()) {
            return None;
        }
        let s = self.stores.get(&t.workload().namespace)?;
        let index = NsIndex::new(s.replicasets.state(), s.pods.state());
        Inputs::of(t.workload(), s, &index).map(|i| i.signals())
    }

    /// Kube signals of every watched workload at once, each namespace's caches indexed once
    /// (what an evaluation cycle asks for).
    ///
    /// Signals are derived from the cached objects only, so a workload whose objects kept
    /// their resourceVersions keeps its signals from the last snapshot: a fleet where little
    /// changes costs an index and a digest per workload, not a conversion of every object.
    pub fn kube_snapshot(&self) -> KubeSnapshot {
        self.kube_snapshot_at(Utc::now())
    }

    /// [`DeployWatcher::kube_snapshot`] as of `now`: a workload whose namespace's watches
    /// have been failing for longer than its policy's `stale_after` is left out (no data),
    /// rather than given the cache's old values.
    pub fn kube_snapshot_at(&self, now: DateTime<Utc>) -> KubeSnapshot {
        let mut signals = HashMap::with_capacity(self.targets.len());
        let mut cache = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        for (ns, s) in &self.stores {
            let index = NsIndex::new(s.replicasets.state(), s.pods.state());
            for t in self
                .targets
                .iter()
                .filter(|t| &t.workload().namespace == ns)
            {
                if self.stale(t, now) {
                    continue;
                }
                let key = (t.agent().to_string(), t.workload().id.clone());
                let Some(inputs) = Inputs::of(t.workload(), s, &index) else {
                    cache.remove(&key);
                    continue;
                };
                let digest = inputs.digest();
                let k = match cache.get(&key) {
                    Some((seen, k)) if *seen == digest => k.clone(),
                    _ => {
                        let k = inputs.signals();
                        cache.insert(key.clone(), (digest, k.clone()));
                        k
                    }
                };
                signals.insert(key, k);
            }
        }
        KubeSnapshot { signals }
    }

    /// Whether the caches a target's signals come from are stale at `now`.
    fn stale(&self, t: &Target, now: DateTime<Utc>) -> bool {
        self.watches
            .stale(&t.workload().namespace, now, t.policy.window.stale_after)
    }

    /// Which watches are failing (for tests and diagnostics).
    pub fn watch_health(&self) -> &WatchHealth {
        &self.watches
    }

    /// Stops every watch.
    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for DeployWatcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reports one watch's events to [`WatchHealth`] and the error counter.
struct Observer {
    resource: &'static str,
    namespace: String,
    watches: Arc<WatchHealth>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Observer {
    /// Records one event (an error, or any other event as "in sync").
    fn event<K, E: std::fmt::Display>(&self, ev: &Result<K, E>) {
        let error = ev.as_ref().err().map(|e| e as &dyn std::fmt::Display);
        self.watches.observe(
            self.resource,
            &self.namespace,
            error,
            Utc::now(),
            &self.metrics,
        );
    }

    /// Drives a reflector stream (which fills the cache) and records its events.
    async fn drain<S, K, E>(self, stream: S)
    where
        S: futures::Stream<Item = Result<K, E>>,
        E: std::fmt::Display,
    {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            self.event(&ev);
        }
    }
}

/// Kube signals of every watched workload at one moment.
#[derive(Debug, Default)]
pub struct KubeSnapshot {
    signals: HashMap<(String, String), KubeSignals>,
}

impl KubeSnapshot {
    /// How many workloads have signals.
    pub fn len(&self) -> usize {
        self.signals.len()
    }

    /// Whether no workload has signals (the caches are still empty).
    pub fn is_empty(&self) -> bool {
        self.signals.is_empty()
    }

    /// One policy's workload's signals (`None` for an unknown workload or one not cached yet).
    pub fn of(&self, agent: &str, workload_id: &str) -> Option<KubeSignals> {
        self.signals
            .get(&(agent.to_string(), workload_id.to_string()))
            .cloned()
    }
}

/// Checks every target of a namespace for a new highest revision. Returns false when the
/// receiver is gone.
async fn process(
    cluster: &Cluster,
    s: &NsStores,
    targets: &[Target],
    seen: &mut HashMap<(String, String), u64>,
    initial: bool,
    tx: &mpsc::Sender<DeployObserved>,
    only: Option<&str>,
) -> bool {
    // an event about one workload's ReplicaSet indexes only that workload's ReplicaSets
    let sets = s.replicasets.state();
    let sets = match only {
        Some(owner) => sets
            .into_iter()
            .filter(|rs| controller_name(rs) == Some(owner))
            .collect(),
        None => sets,
    };
    let index = NsIndex::new(sets, Vec::new());
    for t in targets
        .iter()
        .filter(|t| only.is_none_or(|n| n == t.workload().name))
    {
        let w = t.workload();
        let kind = Kind::of(w);
        let key = (t.agent().to_string(), w.id.clone());
        // The cached owner suffices to find the highest revision (its uid never changes).
        if let Some(cached) = Owner::cached(s, w) {
            let current =
                current_replicaset(index.replicasets_controlled_by(cached.uid())).map(|(n, _)| n);
            let known = seen.get(&key).copied();
            if current.is_none() || known.is_some_and(|n| current.is_some_and(|c| c <= n)) {
                continue;
            }
        }
        // A new revision: read the owner fresh, rollbackd's annotation must be current.
        let owner = match cluster.get_opt(kind, &w.namespace, &w.name).await {
            Ok(Some(o)) => o,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(workload = %w.id, error = %e, "could not read watched workload");
                continue;
            }
        };
        let uid = owner
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some((number, cur)) = current_replicaset(index.replicasets_controlled_by(uid)) else {
            continue;
        };
        let first = !seen.contains_key(&key);
        if seen.get(&key).is_some_and(|&n| number <= n) {
            continue;
        }
        seen.insert(key, number);
        let ours = created_by_rollbackd(&owner, cur.template_hash.as_deref());
        // An undo's revision gets the snapshot of the revision it restored.
        let undo_source = LastAction::read(&owner)
            .filter(|r| ours && matches!(r.kind.as_str(), "undo" | "argo_undo"))
            .and_then(|r| r.to_revision);
        // a snapshot is a copy made only when absent: taken by whichever replica sees the
        // revision first, leading or not (a fenced one would be lost for good)
        let snapshotter = cluster.unfenced();
        let snap = match undo_source {
            Some(src) => snapshot_from_revision(&snapshotter, w, number, src).await,
            None => snapshot_configmaps(&snapshotter, w, number).await,
        };
        let snapshots = match snap {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(workload = %w.id, revision = number, error = %e, "ConfigMap snapshot failed");
                Vec::new()
            }
        };
        let ev = DeployObserved {
            agent: t.agent().to_string(),
            workload: w.id.clone(),
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            revision: number,
            at: cur.created,
            observed_at: Utc::now(),
            images: cur.images.clone(),
            rolled_back_by_rollbackd: ours,
            initial: initial && first,
            snapshots,
        };
        tracing::info!(agent = %ev.agent, workload = %ev.workload, revision = ev.revision, initial = ev.initial, rolled_back = ev.rolled_back_by_rollbackd, "deploy observed");
        if tx.send(ev).await.is_err() {
            return false;
        }
    }
    true
}
