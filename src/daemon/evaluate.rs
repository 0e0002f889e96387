//! The evaluation loop's state and one cycle: per agent, the current deploy's
//! observations; each cycle reads the signals, feeds the pure engine, and hands
//! decisions that need a human or a rollback to the incident side through the gate.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, TimeDelta, Utc};

use super::collect::{MetricSource, Readings};
use super::gate::{GateInput, GateOutcome, gate};
use super::pre_deploy::{self, Fetched};
use crate::api::{AgentAlert, AgentStatus};
use crate::channel::BoundedTx;
use crate::cluster::pods::KubeSignals;
use crate::lifecycle::announce::{Channels, announce};
use crate::lifecycle::ending::{Ending, end_without_rollback};
use crate::metrics::Metrics;
use crate::signals::latest::Latest;
use crate::store::{Incident, NewIncident, Opened, StateStore, Trigger};
use rollbackd_core::engine::{
    AlertTransition, Decision, DecisionKind, Deploy, Observations, RollbackRecord, RolloutPhase,
    alert_series, decide,
};
use rollbackd_core::incident::Event;
use rollbackd_core::policy::{KubeSignal, Policy, SignalSource, Stage};

/// Safety limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Decide and notify, never mutate (`safety.dry_run`).
    pub dry_run: bool,
    /// At most this many unattended rollbacks per agent per window
    /// (`safety.max_rollbacks_per_agent_per_window`).
    pub max_per_agent_per_window: usize,
    /// At most this many unattended rollbacks per hour across agents
    /// (`safety.max_rollbacks_per_hour`).
    pub max_per_hour: usize,
}

/// How far back recorded alerts are loaded when the daemon starts leading.
pub const ALERT_LOOKBACK: TimeDelta = TimeDelta::hours(6);

struct Window {
    policy: Arc<Policy>,
    observations: Observations,
    /// How much history each signal keeps (`Policy::sample_retention`, computed once), in
    /// the order of `policy.signals`.
    retention: Vec<TimeDelta>,
    /// A completed rollback closed the window: no more decisions until a new deploy.
    closed: bool,
    image: Option<String>,
    /// The last decision key seen, and whether it was acted on (an action that failed on a
    /// store error, or that a pause held back, is tried again at the next cycle).
    last: Option<(DecisionKey, bool)>,
    /// The current deploy's baselines are being fetched (answers for an older deploy are
    /// dropped by revision): until they arrive, a missing baseline is not yet news.
    baselines_pending: bool,
    /// Pre-deploy values fetched from Prometheus for this deploy: not yet, in flight, done.
    pre_fetch: PreFetch,
    /// Every decision for the current deploy so far was `none` or `notify`.
    clean: bool,
    /// The current deploy lived through its window cleanly and was reported as verified.
    verified: bool,
    /// This replica did not sample the window (it opened on a deploy seen late, or a
    /// take-over): its recent history is fetched from Prometheus at the next cycle.
    backfill: bool,
}

/// A deploy older than this when its window opens was not seen live (a restart, a
/// take-over): its window's recent history is fetched instead of waited for.
const SEEN_LATE: TimeDelta = TimeDelta::seconds(30);

/// A revision that lived through its whole post-deploy window without a breach: it is
/// marked verified, so `last_known_good` can return to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionVerified {
    /// The agent's id.
    pub agent: String,
    /// The policy's id of the primary workload.
    pub workload: String,
    /// The revision that lived through its window.
    pub revision: u64,
}

/// Whether a deploy's missing pre-deploy values were asked of Prometheus. They are asked
/// for only when a rollback row's condition needs them (the daemon usually sampled the
/// signal before the deploy), so a fleet-wide deploy costs no queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PreFetch {
    NotYet,
    InFlight,
    Done,
}

/// What makes a decision new: its kind, row and blocker.
type DecisionKey = (DecisionKind, Option<String>, Option<String>);

/// What [`Evaluator::act`] did with a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Acted {
    /// Done with this decision: an incident or notice exists, or there is nothing to do.
    Done,
    /// Automation is paused: the decision is acted on once the pause is lifted.
    Paused(String),
}

/// Everything one agent's evaluation needs, owned by the loop task.
pub struct Evaluator {
    windows: HashMap<String, Window>,
    /// The store incidents are opened in.
    pub store: Arc<dyn StateStore>,
    /// rollbackd's own metrics.
    pub metrics: Arc<Metrics>,
    /// Each agent's current status by agent id, as `GET /api/v1/agents` shows it.
    pub status: Arc<RwLock<BTreeMap<String, AgentStatus>>>,
    /// Each signal's latest reading, shared with the runner's post-rollback checks.
    pub latest: Latest,
    /// Where metric signals come from: Prometheus or direct scrape.
    pub source: Arc<MetricSource>,
    /// Dry run and rate limits.
    pub limits: Limits,
    /// Which notifier kinds are configured.
    pub channels: Channels,
    /// Incidents to drive.
    pub runner: crate::channel::BoundedTx<String>,
    /// Baselines and pre-deploy values fetched off the loop, applied at the next cycle.
    fetched_tx: tokio::sync::mpsc::Sender<Fetched>,
    fetched_rx: tokio::sync::mpsc::Receiver<Fetched>,
    /// Where revisions that lived through their window cleanly are reported.
    verified_tx: Option<BoundedTx<RevisionVerified>>,
}

/// The rollout phase the kube signals read: stalled past the progress deadline,
/// progressing while the rollout still replaces pods, else complete.
fn rollout_phase(k: &KubeSignals) -> RolloutPhase {
    if k.rollout_stalled > 0 {
        RolloutPhase::Stalled
    } else if k.rollout_progressing > 0 {
        RolloutPhase::Progressing
    } else {
        RolloutPhase::Complete
    }
}

fn kube_value(k: &KubeSignals, s: KubeSignal) -> f64 {
    (match s {
        KubeSignal::Restarts => k.restarts,
        KubeSignal::OomKills => k.oom_kills,
        KubeSignal::CrashloopingPods => k.crashlooping_pods,
        KubeSignal::ImagePullBackoff => k.image_pull_backoff,
        KubeSignal::AvailableReplicas => k.available_replicas,
        KubeSignal::RolloutStalled => k.rollout_stalled,
    }) as f64
}

impl Evaluator {
    /// An evaluator over `policies`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        policies: &[Arc<Policy>],
        store: Arc<dyn StateStore>,
        metrics: Arc<Metrics>,
        status: Arc<RwLock<BTreeMap<String, AgentStatus>>>,
        latest: Latest,
        source: MetricSource,
        limits: Limits,
        channels: Channels,
        runner: crate::channel::BoundedTx<String>,
    ) -> Self {
        let scraped = matches!(source, MetricSource::Scrape { .. });
        let windows = policies
            .iter()
            .map(|p| {
                let w = Window {
                    policy: p.clone(),
                    observations: if scraped {
                        Observations::scraped()
                    } else {
                        Observations::new()
                    },
                    retention: p
                        .signals
                        .keys()
                        .map(|name| p.sample_retention(name))
                        .collect(),
                    closed: false,
                    image: None,
                    last: None,
                    baselines_pending: false,
                    pre_fetch: PreFetch::NotYet,
                    clean: false,
                    verified: false,
                    backfill: false,
                };
                (p.agent.id.clone(), w)
            })
            .collect();
        // one fetch per deploy in flight per agent, at most: the fetch tasks wait for room
        let (fetched_tx, fetched_rx) = tokio::sync::mpsc::channel(policies.len() * 2 + 16);
        Self {
            verified_tx: None,
            fetched_tx,
            fetched_rx,
            windows,
            store,
            metrics,
            status,
            latest,
            source: Arc::new(source),
            limits,
            channels,
            runner,
        }
    }

    fn policies(&self) -> Vec<Arc<Policy>> {
        self.windows.values().map(|w| w.policy.clone()).collect()
    }

    /// A new revision of a watched workload. Revisions rollbackd made itself do not open a
    /// window: they close the current one. Baselines and pre-deploy values come first from
    /// the samples before the deploy; Prometheus' answers for them are fetched beside the
    /// loop (a fleet-wide deploy must not stall alert handling) and applied when they arrive.
    pub async fn on_deploy(
        &mut self,
        agent: &str,
        revision: u64,
        at: DateTime<Utc>,
        image: Option<String>,
        by_rollbackd: bool,
    ) {
        let Some(w) = self.windows.get_mut(agent) else {
            return;
        };
        if by_rollbackd {
            w.observations.record_rollback(RollbackRecord {
                at,
                revision: Some(revision),
            });
            w.closed = true;
            tracing::info!(
                agent,
                revision,
                "revision made by rollbackd's rollback: the window is closed"
            );
            return;
        }
        if w.observations
            .deploy()
            .is_some_and(|d| d.revision == Some(revision))
        {
            return;
        }
        if revision <= 1 {
            // a first revision has nothing to roll back to: its window would only ever escalate
            tracing::info!(
                agent,
                revision,
                "first revision: no window (nothing to roll back to)"
            );
            return;
        }
        tracing::info!(agent, revision, %at, "new revision: post-deploy window opens");
        let policy = w.policy.clone();
        if let Err(e) = self.supersede_waiting(&policy, revision, at).await {
            tracing::error!(agent, error = %e, "could not close the incidents of the replaced revision");
        }
        let Some(w) = self.windows.get_mut(agent) else {
            return;
        };
        w.observations.record_deploy(Deploy {
            at,
            revision: Some(revision),
            image: image.clone(),
            ..Deploy::default()
        });
        // the samples before the deploy, which pruning drops as the window goes on: fix
        // what they say now
        w.observations.freeze_baselines(
            w.policy
                .signals
                .iter()
                .filter_map(|(name, s)| Some((name.as_str(), s.baseline?))),
        );
        let policy = w.policy.clone();
        w.observations
            .freeze_pre_deploy(|signal| policy.pre_deploy_max_age(signal));
        w.closed = false;
        w.clean = true;
        w.verified = false;
        w.image = image;
        w.last = None;
        w.pre_fetch = PreFetch::NotYet;
        w.baselines_pending = false;
        w.backfill = Utc::now() - at > SEEN_LATE;
        if matches!(self.source.as_ref(), MetricSource::Prometheus(_))
            && pre_deploy::has_promql_baselines(&w.policy)
        {
            w.baselines_pending = true;
            let (source, policy) = (self.source.clone(), w.policy.clone());
            self.spawn_fetch(source, policy, revision, at, pre_deploy::Wanted::Baselines);
        }
    }

    /// This replica starts leading: every open window was not sampled here, so each one's
    /// recent history is fetched at the next cycle (the first decision after a take-over
    /// needs no `for` to fill again).
    pub fn want_backfill(&mut self) {
        for w in self.windows.values_mut() {
            if w.observations.deploy().is_some() && !w.closed {
                w.backfill = true;
            }
        }
    }

    /// Fetches the history of every window that wants it, beside the loop: one range query
    /// per distinct PromQL, reaching back each signal's retention (its longest `for` or
    /// baseline lookback). Direct scrapes have no history to ask for.
    fn spawn_backfills(&mut self, now: DateTime<Utc>) {
        if !matches!(self.source.as_ref(), MetricSource::Prometheus(_)) {
            return;
        }
        let mut wanted = Vec::new();
        let mut revisions = BTreeMap::new();
        for (agent, w) in &mut self.windows {
            if !std::mem::take(&mut w.backfill) {
                continue;
            }
            let Some(revision) = w.observations.deploy().and_then(|d| d.revision) else {
                continue;
            };
            let signals: Vec<(String, TimeDelta)> = w
                .policy
                .signals
                .iter()
                .zip(&w.retention)
                .filter(|((_, s), keep)| {
                    **keep > TimeDelta::zero()
                        && matches!(
                            s.source,
                            SignalSource::Metric {
                                promql: Some(_),
                                ..
                            }
                        )
                })
                .map(|((name, _), keep)| (name.clone(), *keep))
                .collect();
            if !signals.is_empty() {
                revisions.insert(agent.clone(), revision);
                wanted.push((w.policy.clone(), signals));
            }
        }
        if wanted.is_empty() {
            return;
        }
        let longest = wanted
            .iter()
            .flat_map(|(_, s)| s.iter().map(|(_, keep)| *keep))
            .max()
            .unwrap_or_default();
        tracing::info!(
            windows = wanted.len(),
            back = %rollbackd_core::policy::duration::format_duration(longest),
            "fetching the recent history of windows this replica did not sample"
        );
        let (source, tx) = (self.source.clone(), self.fetched_tx.clone());
        tokio::spawn(async move {
            let mut history = source.history(&wanted, now).await;
            for (agent, revision) in revisions {
                let mine: BTreeMap<String, Vec<(DateTime<Utc>, f64)>> = {
                    let keys: Vec<(String, String)> = history
                        .keys()
                        .filter(|(a, _)| *a == agent)
                        .cloned()
                        .collect();
                    keys.into_iter()
                        .filter_map(|k| history.remove(&k).map(|v| (k.1, v)))
                        .collect()
                };
                let fetched = Fetched {
                    agent,
                    revision,
                    history: mine,
                    ..Fetched::default()
                };
                if tx.send(fetched).await.is_err() {
                    return;
                }
            }
        });
    }

    /// Fetches reference values for a deploy beside the loop; they are applied when they
    /// arrive (the fetch waits for room in the bounded channel, the loop never does).
    fn spawn_fetch(
        &self,
        source: Arc<MetricSource>,
        policy: Arc<Policy>,
        revision: u64,
        at: DateTime<Utc>,
        wanted: pre_deploy::Wanted,
    ) {
        let tx = self.fetched_tx.clone();
        tokio::spawn(async move {
            let fetched = pre_deploy::fetch(source, policy, revision, at, wanted).await;
            let _ = tx.send(fetched).await;
        });
    }

    /// A new revision replaced the one that incidents still waiting for a human (approval,
    /// a blocking guard) are about: they end as superseded at once, and the people who were
    /// asked are told why, instead of an approval later rolling back the new deploy.
    async fn supersede_waiting(
        &self,
        policy: &Policy,
        revision: u64,
        at: DateTime<Utc>,
    ) -> Result<(), crate::store::StoreError> {
        let waiting = self.store.waiting_for_human(&policy.agent.id).await?;
        let stale = waiting
            .iter()
            .filter(|i| i.revision.is_some_and(|r| r != revision));
        for inc in stale {
            let why = format!(
                "deploy revision {} was replaced by revision {revision} at {}: nothing to roll back",
                inc.revision.unwrap_or_default(),
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            let ending = Ending {
                event: Event::Supersede,
                stage: Stage::Superseded,
                actor: "rollbackd",
                why: &why,
                note: None,
                detail: serde_json::json!({"revision": revision}),
            };
            end_without_rollback(
                self.store.as_ref(),
                &self.channels,
                policy,
                inc,
                &ending,
                Utc::now(),
            )
            .await?;
            tracing::info!(agent = %policy.agent.id, incident = %inc.id, "superseded by a new revision");
        }
        Ok(())
    }

    /// Reports revisions that live through their whole window cleanly on `tx`.
    pub fn report_verified(&mut self, tx: BoundedTx<RevisionVerified>) {
        self.verified_tx = Some(tx);
    }

    /// Applies the baselines and pre-deploy values fetched for a deploy (the source's
    /// answers win over those frozen from samples), unless a newer deploy replaced it.
    fn apply_fetched(&mut self) {
        while let Ok(f) = self.fetched_rx.try_recv() {
            let Some(w) = self.windows.get_mut(&f.agent) else {
                continue;
            };
            let current = w.observations.deploy().and_then(|d| d.revision);
            if current != Some(f.revision) {
                continue;
            }
            if !f.history.is_empty() {
                for (signal, points) in f.history {
                    for (at, value) in points {
                        w.observations.record_sample(&signal, at, Some(value));
                    }
                }
                w.last = None;
                continue;
            }
            if f.pre {
                w.pre_fetch = PreFetch::Done;
            } else {
                w.baselines_pending = false;
            }
            w.observations.update_reference(f.baselines, f.pre_deploy);
            w.last = None;
        }
    }

    /// A rollback of `agent`'s current deploy completed (from the incident runner).
    pub fn on_rolled_back(&mut self, agent: &str, at: DateTime<Utc>) {
        if let Some(w) = self.windows.get_mut(agent) {
            w.observations.record_rollback(RollbackRecord {
                at,
                revision: w.observations.deploy().and_then(|d| d.revision),
            });
            w.closed = true;
        }
    }

    /// Records new alert states (in the order they were recorded) and evaluates once each
    /// agent whose signals read one of them. Alerts no signal of the agent's policy
    /// selects cannot change a decision: they stay in the store, not in memory.
    pub async fn on_alerts(&mut self, alerts: Vec<AgentAlert>, now: DateTime<Utc>) {
        self.apply_fetched();
        let mut agents = BTreeSet::new();
        for a in alerts {
            if let Some(w) = self.windows.get_mut(&a.agent)
                && read_by(&w.policy, &a.transition.labels)
            {
                w.observations.record_alert(a.transition);
                agents.insert(a.agent);
            }
        }
        for agent in agents {
            self.evaluate(&agent, now).await;
        }
    }

    /// Loads the alerts recorded in the last [`ALERT_LOOKBACK`] (on becoming the leader:
    /// alerts recorded before a restart still count). Decisions follow at the next cycle.
    pub async fn load_alerts(&mut self, now: DateTime<Utc>) {
        let alerts = match self.store.alerts_since(None, now - ALERT_LOOKBACK).await {
            Ok(alerts) => alerts,
            Err(e) => {
                tracing::error!(error = %e, "cannot load recorded alerts: only new ones will count");
                return;
            }
        };
        for a in alerts {
            let Some(w) = a
                .alert
                .agent
                .as_ref()
                .and_then(|id| self.windows.get_mut(id))
            else {
                continue;
            };
            if !read_by(&w.policy, &a.alert.labels) {
                continue;
            }
            w.observations
                .record_alert(a.alert.transition(a.received_at));
        }
    }

    /// One cycle: read every signal, then evaluate every agent.
    pub async fn cycle(
        &mut self,
        now: DateTime<Utc>,
        kube: &(dyn Fn(&str, &str) -> Option<KubeSignals> + Sync),
    ) -> Readings {
        let readings = self.read(now).await;
        self.apply(&readings, now, now, kube).await;
        readings
    }

    /// Reads every metric signal at `now`, as a future that borrows nothing from the
    /// evaluator: the loop keeps taking alerts while Prometheus answers (a slow query must
    /// not hold back a webhook-driven rollback).
    pub fn read(
        &self,
        now: DateTime<Utc>,
    ) -> impl std::future::Future<Output = Readings> + Send + 'static {
        let (source, policies) = (self.source.clone(), self.policies());
        async move { source.read(&policies, now).await }
    }

    /// The second half of a cycle: records `readings` (read at `read_at`) and the kube
    /// signals as samples, then evaluates every agent at `now`.
    pub async fn apply(
        &mut self,
        readings: &Readings,
        read_at: DateTime<Utc>,
        now: DateTime<Utc>,
        kube: &(dyn Fn(&str, &str) -> Option<KubeSignals> + Sync),
    ) {
        self.apply_fetched();
        self.spawn_backfills(now);
        for ((agent, signal), value) in &readings.values {
            if let Some(w) = self.windows.get_mut(agent) {
                w.observations.record_sample(signal, read_at, *value);
            }
        }
        for (source, reason) in &readings.errors {
            self.metrics.inc(
                "rollbackd_signal_errors_total",
                &[source, reason.split(':').nth(1).map_or("error", str::trim)],
            );
        }
        for w in self.windows.values_mut() {
            let Some(workload) = w.policy.primary_workload() else {
                continue;
            };
            let k = kube(&w.policy.agent.id, &workload.id);
            w.observations
                .record_rollout(read_at, k.as_ref().map(rollout_phase));
            for (name, s) in w.policy.signals.iter() {
                if let SignalSource::Kube(kind) = s.source {
                    w.observations.record_sample(
                        name,
                        read_at,
                        k.as_ref().map(|k| kube_value(k, kind)),
                    );
                }
            }
            // only the history a decision can read: a fleet of 10,000 workloads keeps
            // minutes of samples each, not the whole window
            let (retention, signals) = (&w.retention, &w.policy.signals);
            w.observations.prune_each(now, |signal| {
                signals
                    .keys()
                    .position(|name| name == signal)
                    .and_then(|i| retention.get(i))
                    .copied()
                    .unwrap_or_default()
            });
            // alert history likewise: the longest `for` over an alert signal
            let alert_retention = signals
                .values()
                .zip(retention.iter())
                .filter(|(s, _)| matches!(s.source, SignalSource::Alert { .. }))
                .map(|(_, keep)| *keep)
                .max()
                .unwrap_or_default();
            w.observations.prune_alerts(now, alert_retention);
        }
        if let Ok(mut latest) = self.latest.write() {
            for ((agent, signal), value) in &readings.values {
                latest.set(agent, signal, read_at, *value);
            }
            // kube and alert signals too, so post-rollback checks can use every signal
            for (agent, w) in &self.windows {
                for (name, s) in w.policy.signals.iter() {
                    let value = match &s.source {
                        SignalSource::Alert { labels } => Some(
                            alert_series(labels, w.observations.alerts(), now)
                                .last()
                                .and_then(|x| x.value())
                                .unwrap_or(0.0),
                        ),
                        SignalSource::Kube(_) => {
                            w.observations.samples(name).last().and_then(|x| x.value())
                        }
                        SignalSource::Metric { .. } => continue,
                    };
                    latest.set(agent, name, now, value);
                }
            }
        }
        let agents: Vec<String> = self.windows.keys().cloned().collect();
        for agent in agents {
            let started = std::time::Instant::now();
            self.evaluate(&agent, now).await;
            self.metrics.observe(
                "rollbackd_evaluation_duration_seconds",
                &[&agent],
                started.elapsed().as_secs_f64(),
            );
        }
    }

    /// Evaluates one agent and acts on a changed decision.
    pub async fn evaluate(&mut self, agent: &str, now: DateTime<Utc>) {
        let Some(w) = self.windows.get_mut(agent) else {
            return;
        };
        let Some(deploy) = w.observations.deploy().cloned() else {
            return;
        };
        let horizon = w.policy.window.horizon();
        let open = !w.closed && now - deploy.at <= horizon;
        let decision = open.then(|| decide(&w.policy, &w.observations, now));
        if let Some(d) = &decision {
            w.observations
                .track_unknown(&d.evidence.unknown_row_ids(), now);
            if !matches!(d.decision, DecisionKind::None | DecisionKind::Notify) {
                w.clean = false;
            }
        }
        if w.clean && !w.closed && !w.verified && now - deploy.at > w.policy.window.duration {
            w.verified = true;
            if let (Some(tx), Some(revision), Some(workload)) = (
                &self.verified_tx,
                deploy.revision,
                w.policy.primary_workload(),
            ) {
                tracing::info!(
                    agent,
                    revision,
                    "revision lived through its window without a breach: verified"
                );
                let _ = tx.send(RevisionVerified {
                    agent: agent.to_string(),
                    workload: workload.id.clone(),
                    revision,
                });
            }
        }
        if let Ok(mut status) = self.status.write() {
            status.insert(
                agent.to_string(),
                AgentStatus {
                    revision: deploy.revision,
                    image: w.image.clone(),
                    deployed_at: Some(deploy.at),
                    window_open: open,
                    window_ends_at: Some(deploy.at + horizon),
                    decision: decision.clone(),
                    evaluated_at: Some(now),
                },
            );
        }
        let Some(decision) = decision else { return };
        if !decision.evidence.missing_pre_deploy.is_empty()
            && w.pre_fetch == PreFetch::NotYet
            && matches!(self.source.as_ref(), MetricSource::Prometheus(_))
        {
            // a rollback row holds on a signal sampled only since the deploy: ask
            // Prometheus what it read at the deploy before blaming the deploy for it
            w.pre_fetch = PreFetch::InFlight;
            let (source, policy) = (self.source.clone(), w.policy.clone());
            let wanted =
                pre_deploy::Wanted::PreDeploy(decision.evidence.missing_pre_deploy.clone());
            let revision = deploy.revision.unwrap_or_default();
            self.spawn_fetch(source, policy, revision, deploy.at, wanted);
        }
        let Some(w) = self.windows.get_mut(agent) else {
            return;
        };
        if w.pre_fetch == PreFetch::InFlight
            && decision
                .evidence
                .conditions
                .iter()
                .any(|c| c.needs_pre_deploy)
        {
            // its attribution waits for the value before the deploy (one query)
            return;
        }
        if w.baselines_pending
            && matches!(
                decision.decision,
                DecisionKind::Inconclusive | DecisionKind::Escalate
            )
        {
            // the baselines are on their way: missing ones are not news yet
            return;
        }
        let key: DecisionKey = (
            decision.decision,
            decision.row.clone(),
            decision.evidence.blocked_by.clone(),
        );
        let changed = w.last.as_ref().is_none_or(|(last, _)| last != &key);
        if !changed && w.last.as_ref().is_some_and(|(_, acted)| *acted) {
            return;
        }
        if changed {
            self.metrics.inc(
                "rollbackd_decisions_total",
                &[agent, decision.decision.as_str()],
            );
            tracing::info!(agent, decision = decision.decision.as_str(), row = ?decision.row, reason = %decision.reason, "decision changed");
        }
        // acted on only once the action is recorded: a store error or a pause leaves the
        // decision to the next cycle (after `resume`, a still-failing deploy is acted on)
        w.last = Some((key, false));
        if decision.decision == DecisionKind::None {
            // nothing to act on (the gate would ignore it): no store reads for a healthy
            // fleet's first cycle
            w.last = w.last.take().map(|(k, _)| (k, true));
            return;
        }
        let policy = w.policy.clone();
        let image = w.image.clone();
        let acted = match self.act(&policy, &deploy, image, &decision, now).await {
            Ok(Acted::Done) => true,
            Ok(Acted::Paused(why)) => {
                if changed {
                    tracing::warn!(agent, %why, decision = decision.decision.as_str(), "automation paused: not acting until it is resumed");
                }
                false
            }
            Err(e) => {
                tracing::error!(agent, error = %e, "could not record the decision's incident: retried next cycle");
                false
            }
        };
        if let Some(w) = self.windows.get_mut(agent) {
            w.last = w.last.take().map(|(k, _)| (k, acted));
        }
    }

    async fn act(
        &self,
        policy: &Arc<Policy>,
        deploy: &Deploy,
        image: Option<String>,
        decision: &Decision,
        now: DateTime<Utc>,
    ) -> Result<Acted, crate::store::StoreError> {
        let agent = &policy.agent.id;
        let existing = self
            .store
            .automatic_incident_for(agent, deploy.revision)
            .await?;
        let input = GateInput {
            decision: Some(decision.decision),
            paused_by: self
                .store
                .paused(agent)
                .await?
                .map(|p| format!("{} ({})", p.paused_by, p.scope)),
            agent_rollbacks_in_window: self
                .store
                .rollbacks_since(Some(agent), deploy.at, true)
                .await?,
            rollbacks_last_hour: self
                .store
                .rollbacks_since(None, now - TimeDelta::hours(1), true)
                .await?,
            max_per_agent_per_window: self.limits.max_per_agent_per_window,
            max_per_hour: self.limits.max_per_hour,
        };
        let outcome = gate(&input);
        if let Some(inc) = &existing {
            // a worse row now wants an unattended rollback of a deploy awaiting approval: go
            if inc.state == rollbackd_core::incident::State::AwaitingApproval
                && outcome == GateOutcome::Rollback
            {
                let note = format!("escalated without approval: {}", decision.reason);
                let entry = crate::store::AuditEntry {
                    at: now,
                    actor: "rollbackd".into(),
                    action: "rollback.escalate".into(),
                    target: inc.id.clone(),
                    reason: decision.reason.clone(),
                    detail: serde_json::to_value(decision).unwrap_or_default(),
                };
                self.store
                    .transition(
                        &crate::store::Transition::new(&inc.id, Event::Approve, now, &note)
                            .expecting(inc.state)
                            .audited(&entry),
                    )
                    .await?;
                tracing::warn!(agent, incident = %inc.id, row = ?decision.row, "awaiting approval, but a more severe row now rolls back unattended");
                let _ = self.runner.send(inc.id.clone());
                return Ok(Acted::Done);
            }
            tracing::info!(agent, incident = %inc.id, state = %inc.state, "this deploy already has an incident: no new one");
            return Ok(Acted::Done);
        }
        let Some(workload) = policy.primary_workload() else {
            return Ok(Acted::Done);
        };
        let (event, stage, reason) = match outcome {
            GateOutcome::Ignore => return Ok(Acted::Done),
            GateOutcome::Paused(why) => return Ok(Acted::Paused(why)),
            GateOutcome::Tell => {
                let stage = tell_stage(decision);
                let notice = crate::store::Incident {
                    id: format!(
                        "notice-{}-{}",
                        agent.to_lowercase(),
                        now.format("%Y%m%dT%H%M%S%.3fZ")
                    ),
                    agent: agent.clone(),
                    namespace: workload.namespace.clone(),
                    workload: workload.name.clone(),
                    revision: deploy.revision,
                    from_image: image,
                    row: decision.row.clone(),
                    severity: decision.severity.clone(),
                    method: decision.method.clone(),
                    trigger: Trigger::Automatic,
                    requested_by: None,
                    reason: decision.reason.clone(),
                    decision: serde_json::to_value(decision).unwrap_or_default(),
                    state: rollbackd_core::incident::State::Detected,
                    dry_run: self.limits.dry_run,
                    vars: BTreeMap::new(),
                    deploy_at: Some(deploy.at),
                    created_at: now,
                    updated_at: now,
                };
                let rows = announce(policy, &notice, stage, &BTreeMap::new(), &self.channels);
                self.store.enqueue_notice(&notice, &rows, now).await?;
                return Ok(Acted::Done);
            }
            GateOutcome::Rollback => (Event::Start, Stage::Initiated, decision.reason.clone()),
            GateOutcome::AwaitApproval => (
                Event::RequestApproval,
                Stage::AwaitingApproval,
                decision.reason.clone(),
            ),
            GateOutcome::Block(why) if decision.decision == DecisionKind::Blocked => (
                Event::Block,
                Stage::Blocked,
                format!("{} ({why})", decision.reason),
            ),
            GateOutcome::Block(why) => (
                Event::Block,
                Stage::Blocked,
                format!("{} — blocked: {why}", decision.reason),
            ),
        };
        let vars = self
            .windows
            .get(agent)
            .map(|w| alert_vars(policy, &w.observations, decision))
            .unwrap_or_default();
        let new = NewIncident {
            agent: agent.clone(),
            namespace: workload.namespace.clone(),
            workload: workload.name.clone(),
            revision: deploy.revision,
            from_image: image,
            row: decision.row.clone(),
            severity: decision.severity.clone(),
            method: decision.method.clone(),
            trigger: Trigger::Automatic,
            requested_by: None,
            reason,
            decision: incident_decision(decision, deploy),
            dry_run: self.limits.dry_run,
            vars,
            deploy_at: Some(deploy.at),
        };
        // the incident and its notifications in one transaction, checked against every open
        // incident of the agent in that same transaction
        let (announced, channels) = (policy.clone(), self.channels.clone());
        let announce_opened = Box::new(move |incident: &Incident| {
            announce(&announced, incident, stage, &BTreeMap::new(), &channels)
        });
        let opened = self
            .store
            .open_incident(&new, event, now, None, announce_opened)
            .await?;
        let incident = match opened {
            Opened::New(incident) => incident,
            Opened::AlreadyOpen(open) => {
                tracing::info!(agent, incident = %open.id, state = %open.state, "this deploy already has an open incident: no new one");
                return Ok(Acted::Done);
            }
        };
        tracing::info!(agent, incident = %incident.id, state = %incident.state, "incident opened");
        let _ = self.runner.send(incident.id);
        Ok(Acted::Done)
    }
}

/// The decision stored on an incident: the engine's decision with its evidence, plus the
/// deploy's frozen pre-deploy baselines (`baselines`), so that `relative_to = "baseline"`
/// verification checks can be computed after the rollback.
fn incident_decision(decision: &Decision, deploy: &Deploy) -> serde_json::Value {
    let mut value = serde_json::to_value(decision).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "baselines".into(),
            serde_json::to_value(&deploy.baselines).unwrap_or_default(),
        );
    }
    value
}

/// How a decision that only tells a human is announced: no data, no data past a deadline,
/// a condition older than the deploy, or a `notify` row.
fn tell_stage(decision: &Decision) -> Stage {
    match decision.decision {
        DecisionKind::Inconclusive => Stage::Inconclusive,
        DecisionKind::Escalate => Stage::Escalated,
        _ if decision
            .evidence
            .preexisting
            .first()
            .is_some_and(|p| decision.row.as_deref() == Some(p.row.as_str())) =>
        {
            Stage::Preexisting
        }
        _ => Stage::Notice,
    }
}

/// Whether one of `policy`'s alert signals selects an alert with these labels.
fn read_by(policy: &Policy, labels: &BTreeMap<String, String>) -> bool {
    policy.signals.values().any(|s| match &s.source {
        SignalSource::Alert { labels: matcher } => {
            rollbackd_core::engine::alert_matches(matcher, labels)
        }
        _ => false,
    })
}

/// Labels of the firing alerts behind a decision's row, for HTTP step placeholders
/// (GL-001's `{plant}`): every label of every matching alert still firing.
fn alert_vars(
    policy: &Policy,
    observations: &Observations,
    decision: &Decision,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    let Some(row) = decision.row.as_deref().and_then(|r| policy.row(r)) else {
        return vars;
    };
    let mut firing: BTreeMap<&str, &AlertTransition> = BTreeMap::new();
    for t in observations.alerts() {
        firing.insert(&t.fingerprint, t);
    }
    for c in &row.when {
        let Some(SignalSource::Alert { labels }) = policy.signals.get(&c.signal).map(|s| &s.source)
        else {
            continue;
        };
        for t in firing
            .values()
            .filter(|t| t.firing && rollbackd_core::engine::alert_matches(labels, &t.labels))
        {
            vars.extend(t.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AlertRecord, IncidentFilter, SqliteStore};

    fn evaluator(store: Arc<dyn StateStore>) -> Evaluator {
        let scraper = crate::signals::scrape::Scraper::new(std::time::Duration::from_secs(1))
            .expect("scraper");
        evaluator_reading(store, MetricSource::scrape(scraper))
    }

    fn evaluator_reading(store: Arc<dyn StateStore>, source: MetricSource) -> Evaluator {
        evaluator_of("policies/gl-002.toml", store, source)
    }

    fn evaluator_of(policy: &str, store: Arc<dyn StateStore>, source: MetricSource) -> Evaluator {
        let policy =
            rollbackd_core::policy::load_file(std::path::Path::new(policy)).expect("policy loads");
        Evaluator::new(
            &[Arc::new(policy)],
            store,
            Arc::new(Metrics::new()),
            Arc::default(),
            Arc::default(),
            source,
            Limits {
                dry_run: true,
                max_per_agent_per_window: 1,
                max_per_hour: 10,
            },
            Channels::default(),
            crate::channel::BoundedTx::detached("runner"),
        )
    }

    async fn memory_store() -> Arc<dyn StateStore> {
        Arc::new(SqliteStore::in_memory().await.expect("store"))
    }

    /// A store on a file, and the sync store's file for a second connection (fault hooks).
    async fn file_store(dir: &tempfile::TempDir) -> (Arc<dyn StateStore>, std::path::PathBuf) {
        let path = dir.path().join("store.db");
        let store = SqliteStore::open(&path, crate::store::Synchronous::Normal)
            .await
            .expect("store");
        (Arc::new(store), path)
    }

    fn labels(condition: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("alertname".to_string(), "X".to_string()),
            ("condition".to_string(), condition.to_string()),
        ])
    }

    fn fingerprints(e: &Evaluator) -> Vec<String> {
        e.windows["GL-002"]
            .observations
            .alerts()
            .iter()
            .map(|t| t.fingerprint.clone())
            .collect()
    }

    /// A cycle at `at` where every metric reads `error_rate` and the rest healthy.
    async fn cycle_at(e: &mut Evaluator, at: DateTime<Utc>, error_rate: f64) {
        let mut readings = Readings::default();
        for (name, s) in e.windows["GL-002"].policy.signals.iter() {
            if let SignalSource::Metric { .. } = s.source {
                let v = if name == "error_rate" {
                    error_rate
                } else {
                    0.2
                };
                readings
                    .values
                    .insert(("GL-002".to_string(), name.clone()), Some(v));
            }
        }
        let healthy = KubeSignals {
            available_replicas: 3,
            ..KubeSignals::default()
        };
        e.apply(&readings, at, at, &|_, _| Some(healthy.clone()))
            .await;
    }

    #[tokio::test]
    async fn a_revision_that_lives_through_its_window_cleanly_is_reported_verified() {
        let (tx, mut rx) = crate::channel::bounded("verified", 8, Arc::new(Metrics::new()));
        let mut e = evaluator(memory_store().await);
        e.report_verified(tx);
        let t0 = Utc::now() - TimeDelta::hours(3);
        cycle_at(&mut e, t0 - TimeDelta::minutes(1), 0.0).await;
        e.on_deploy("GL-002", 7, t0, None, false).await;
        for m in [1, 30, 90, 119] {
            cycle_at(&mut e, t0 + TimeDelta::minutes(m), 0.001).await;
        }
        assert!(rx.try_recv().is_err(), "not before the window ends");
        cycle_at(&mut e, t0 + TimeDelta::minutes(121), 0.001).await;
        let v = rx.try_recv().expect("verified after 2h");
        assert_eq!(
            (v.agent.as_str(), v.workload.as_str(), v.revision),
            ("GL-002", "gl-002", 7)
        );
        cycle_at(&mut e, t0 + TimeDelta::minutes(122), 0.001).await;
        assert!(rx.try_recv().is_err(), "reported once");
        // a deploy that breached once is not verified, even if it recovered
        e.on_deploy("GL-002", 8, t0 + TimeDelta::minutes(125), None, false)
            .await;
        cycle_at(&mut e, t0 + TimeDelta::minutes(126), 0.7).await;
        cycle_at(&mut e, t0 + TimeDelta::minutes(130), 0.0).await;
        cycle_at(&mut e, t0 + TimeDelta::minutes(250), 0.0).await;
        assert!(
            rx.try_recv().is_err(),
            "a breached revision is not verified"
        );
    }

    fn rollback_decision() -> Decision {
        let mut d = Decision::plain(
            DecisionKind::Rollback,
            "P0 p0-service-outage: available_replicas=0",
            rollbackd_core::engine::Evidence::default(),
        );
        d.row = Some("p0-service-outage".into());
        d.severity = Some("P0".into());
        d.method = Some("quick".into());
        d
    }

    fn deploy(at: DateTime<Utc>, revision: u64) -> Deploy {
        Deploy {
            at,
            revision: Some(revision),
            image: None,
            baselines: BTreeMap::from([("latency_p95".to_string(), 0.8)]),
            pre_deploy: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn an_incident_and_its_notifications_are_written_together_or_not_at_all() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, path) = file_store(&dir).await;
        // a fault hook: the disk refuses the notifications
        rusqlite::Connection::open(&path)
            .expect("second connection")
            .execute_batch(
                "CREATE TRIGGER outbox_full BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
            )
            .expect("fault hook");
        let mut e = evaluator(store.clone());
        e.channels.webhook_url = Some("http://127.0.0.1:9/hook".into());
        let policy = e.windows["GL-002"].policy.clone();
        let now = Utc::now();
        let result = e
            .act(&policy, &deploy(now, 7), None, &rollback_decision(), now)
            .await;
        assert!(result.is_err(), "the failed enqueue is reported");
        assert_eq!(
            store
                .incidents(&IncidentFilter::default())
                .await
                .expect("incidents"),
            [],
            "no incident without its notifications"
        );
    }

    /// GL-002 deployed a minute ago, with a data-corruption alert since (a P0 rollback row).
    fn failing_deploy(e: &mut Evaluator, now: DateTime<Utc>) {
        let w = e.windows.get_mut("GL-002").expect("GL-002 window");
        w.observations
            .record_deploy(deploy(now - TimeDelta::minutes(1), 7));
        w.observations.record_alert(AlertTransition {
            at: now - TimeDelta::seconds(30),
            started_at: None,
            firing: true,
            fingerprint: "corrupt".into(),
            labels: labels("data_corruption"),
        });
    }

    async fn incident_count(store: &dyn StateStore) -> usize {
        store
            .incidents(&IncidentFilter::default())
            .await
            .expect("incidents")
            .len()
    }

    #[tokio::test]
    async fn a_decision_whose_action_failed_on_a_store_error_is_retried_next_cycle() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, path) = file_store(&dir).await;
        let hook = rusqlite::Connection::open(&path).expect("second connection");
        hook.execute_batch(
            "CREATE TRIGGER incidents_full BEFORE INSERT ON incidents BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        )
        .expect("fault hook");
        let mut e = evaluator(store.clone());
        let now = Utc::now();
        failing_deploy(&mut e, now);
        e.evaluate("GL-002", now).await;
        assert_eq!(
            incident_count(store.as_ref()).await,
            0,
            "the store refused it"
        );
        hook.execute_batch("DROP TRIGGER incidents_full;")
            .expect("disk back");
        e.evaluate("GL-002", now + TimeDelta::seconds(1)).await;
        assert_eq!(
            incident_count(store.as_ref()).await,
            1,
            "same decision, acted on now"
        );
        e.evaluate("GL-002", now + TimeDelta::seconds(2)).await;
        assert_eq!(incident_count(store.as_ref()).await, 1, "and only once");
    }

    #[tokio::test]
    async fn a_pause_is_re_evaluated_when_lifted() {
        let store = memory_store().await;
        let mut e = evaluator(store.clone());
        let now = Utc::now();
        store
            .pause(&crate::store::Pause {
                scope: crate::store::GLOBAL.into(),
                paused_by: "alice".into(),
                reason: "maintenance".into(),
                at: now,
            })
            .await
            .expect("paused");
        failing_deploy(&mut e, now);
        e.evaluate("GL-002", now).await;
        e.evaluate("GL-002", now + TimeDelta::seconds(1)).await;
        assert_eq!(
            incident_count(store.as_ref()).await,
            0,
            "paused: nothing acted on"
        );
        store.resume(crate::store::GLOBAL).await.expect("resumed");
        e.evaluate("GL-002", now + TimeDelta::seconds(2)).await;
        let incidents = store
            .incidents(&IncidentFilter::default())
            .await
            .expect("incidents");
        assert_eq!(incidents.len(), 1, "the still-failing deploy is acted on");
        assert_eq!(incidents[0].row.as_deref(), Some("p0-data-corruption"));
        assert_eq!(
            incidents[0].decision["baselines"]["latency_p95"], 0.8,
            "the deploy's baselines travel with the incident"
        );
    }

    /// A daemon that did not sample the error rate before the deploy (it started after
    /// it) asks Prometheus what it was at the deploy before blaming the deploy for it.
    #[tokio::test]
    async fn a_missing_pre_deploy_value_is_asked_of_prometheus_before_blaming_the_deploy() {
        use crate::bench::fake_prometheus::{Answers, FakePrometheus};
        use crate::signals::prometheus::{PromClient, PromClientConfig};
        let policy =
            rollbackd_core::policy::load_file(std::path::Path::new("policies/gl-002.toml"))
                .expect("gl-002 loads");
        let Some(SignalSource::Metric {
            promql: Some(query),
            ..
        }) = policy.signals.get("error_rate").map(|s| s.source.clone())
        else {
            panic!("gl-002 reads error_rate with PromQL");
        };
        // Prometheus remembers 60 % errors at the deploy (and answers so at any time)
        let prometheus = FakePrometheus::start(&Answers {
            namespace: "greenlang".into(),
            deployments: vec!["gl-002-boiler-efficiency".into()],
            values: vec![(query, 0.6)],
        })
        .await
        .expect("fake prometheus");
        let client = PromClient::new(PromClientConfig::new(prometheus.url())).expect("client");
        let status = Arc::new(RwLock::new(BTreeMap::new()));
        let mut e = evaluator_reading(memory_store().await, MetricSource::Prometheus(client));
        e.status = status.clone();
        let t0 = Utc::now() - TimeDelta::minutes(10);
        e.on_deploy("GL-002", 7, t0, None, false).await;
        let decided = async |at: DateTime<Utc>, e: &mut Evaluator| {
            cycle_at(e, at, 0.6).await;
            status.read().expect("status")["GL-002"]
                .decision
                .clone()
                .expect("a decision")
        };
        let first = decided(t0 + TimeDelta::minutes(1), &mut e).await;
        assert_eq!(first.evidence.missing_pre_deploy, ["error_rate"]);
        let before = prometheus.queries();
        assert_eq!(before, 0, "nothing asked before a condition needed it");
        let mut at = t0 + TimeDelta::minutes(1);
        let told = loop {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            at += TimeDelta::seconds(15);
            let d = decided(at, &mut e).await;
            if d.evidence.missing_pre_deploy.is_empty() || at > t0 + TimeDelta::minutes(9) {
                break decided(t0 + TimeDelta::minutes(9), &mut e).await;
            }
        };
        assert!(prometheus.queries() > before, "Prometheus was asked");
        assert_eq!(told.decision, DecisionKind::Notify, "{}", told.reason);
        assert!(
            told.reason.contains("not because of this deploy"),
            "{}",
            told.reason
        );
        prometheus.stop().await;
    }

    /// Issue 12 item 15: a deploy's baseline `query_range` runs beside the loop: a
    /// Prometheus that never answers does not hold up `on_deploy` (nor the alerts after it).
    #[tokio::test]
    async fn a_hanging_baseline_query_does_not_stall_the_evaluation_loop() {
        use crate::signals::prometheus::{PromClient, PromClientConfig};
        // accepts connections and never answers
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _held = std::thread::spawn(move || {
            let mut open = Vec::new();
            for s in listener.incoming().flatten() {
                open.push(s);
            }
        });
        let mut config = PromClientConfig::new(format!("http://{addr}"));
        config.timeout = std::time::Duration::from_secs(30);
        let client = PromClient::new(config).expect("client");
        let mut e = evaluator_of(
            "policies/gl-009.toml",
            memory_store().await,
            MetricSource::Prometheus(client),
        );
        let started = std::time::Instant::now();
        e.on_deploy("GL-009", 4, Utc::now(), None, false).await;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "on_deploy waited {:?} for Prometheus",
            started.elapsed()
        );
        assert_eq!(
            e.windows["GL-009"]
                .observations
                .deploy()
                .and_then(|d| d.revision),
            Some(4),
            "the window is open while the baselines are on their way"
        );
    }

    #[tokio::test]
    async fn a_new_revision_supersedes_the_incidents_still_waiting_for_a_human() {
        let store = memory_store().await;
        let mut e = evaluator(store.clone());
        let policy = e.windows["GL-002"].policy.clone();
        let w = policy.primary_workload().expect("primary");
        let new = |revision: u64| NewIncident {
            agent: "GL-002".into(),
            namespace: w.namespace.clone(),
            workload: w.name.clone(),
            revision: Some(revision),
            from_image: None,
            row: Some("p1-error-rate".into()),
            severity: Some("P1".into()),
            method: Some("quick".into()),
            trigger: Trigger::Automatic,
            requested_by: None,
            reason: "35 % errors for 15 min".into(),
            decision: serde_json::json!({}),
            dry_run: false,
            vars: BTreeMap::new(),
            deploy_at: None,
        };
        let now = Utc::now();
        let waiting = store
            .create_incident(&new(7), Event::RequestApproval, now, &[], None)
            .await
            .expect("created");
        e.on_deploy("GL-002", 8, now, None, false).await;
        let inc = store
            .incident(&waiting.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(inc.state, rollbackd_core::incident::State::Superseded);
        let notes: Vec<String> = store
            .transitions(&inc.id)
            .await
            .expect("transitions")
            .into_iter()
            .map(|t| t.note)
            .collect();
        assert!(
            notes
                .iter()
                .any(|n| n.contains("revision 7 was replaced by revision 8")),
            "{notes:?}"
        );
        let audit = store.audit_log(Some(&inc.id), 10).await.expect("audit");
        assert_eq!(audit[0].action, "rollback.supersede");
    }

    #[tokio::test]
    async fn only_alerts_a_signal_reads_are_kept_in_memory() {
        let mut e = evaluator(memory_store().await);
        let now = Utc::now();
        let alert = |fingerprint: &str, condition: &str| AgentAlert {
            agent: "GL-002".into(),
            transition: AlertTransition {
                at: now,
                started_at: None,
                firing: true,
                fingerprint: fingerprint.into(),
                labels: labels(condition),
            },
        };
        e.on_alerts(
            vec![
                alert("noise", "disk_almost_full"),
                alert("outage", "service_outage"),
            ],
            now,
        )
        .await;
        assert_eq!(fingerprints(&e), ["outage"]);
    }

    #[tokio::test]
    async fn alerts_recorded_before_a_restart_are_loaded_when_leading_starts() {
        let store = memory_store().await;
        let now = Utc::now();
        let record = |fingerprint: &str, condition: &str, agent: Option<&str>| AlertRecord {
            fingerprint: fingerprint.into(),
            status: "firing".into(),
            starts_at: now,
            ends_at: None,
            agent: agent.map(str::to_string),
            labels: labels(condition),
            annotations: BTreeMap::new(),
        };
        store
            .record_alerts(
                &[
                    record("outage", "service_outage", Some("GL-002")),
                    record("noise", "disk_almost_full", Some("GL-002")),
                    record("other", "service_outage", None),
                ],
                now - TimeDelta::minutes(10),
            )
            .await
            .expect("recorded");
        store
            .record_alerts(
                &[record("old", "service_outage", Some("GL-002"))],
                now - ALERT_LOOKBACK - TimeDelta::minutes(1),
            )
            .await
            .expect("recorded");
        let mut e = evaluator(store);
        e.load_alerts(now).await;
        assert_eq!(fingerprints(&e), ["outage"]);
    }
}
