//! The incident runner: the single writer that moves incidents through their lifecycle.
//! Each transition is persisted (with its announcement in the same transaction) before
//! the next action; a restarted daemon resumes every in-flight incident from the store,
//! and the executor's journal makes sure no step runs twice.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tracing::Instrument;

use super::announce::{Channels, announce, elapsed, version_of};
use super::latest::Latest;
use crate::cluster::history::load;
use crate::executor::{Executor, RunContext};
use crate::incident::{Event, State};
use crate::metrics::Metrics;
use crate::policy::{Condition, Method, Policy, RevisionRef, Stage, StepAction};
use crate::store::{Incident, Store, Transition};
use crate::verify::{CheckResult, SignalChecks, Verifier};

/// Post-rollback checks against the evaluation loop's readings: a check passes on the first
/// reading taken after `since` that satisfies it; it fails when none does within `grace`
/// (signals computed over a window, like `rate(…[5m])`, need time to reflect the rollback).
#[derive(Clone)]
pub struct LatestChecks {
    pub agent: String,
    pub latest: Latest,
    /// Readings before this (the rollback) do not count.
    pub since: chrono::DateTime<Utc>,
    /// How long a check may wait for a passing reading.
    pub grace: Duration,
}

impl LatestChecks {
    /// The latest reading of `signal` taken after `since`.
    fn reading(&self, signal: &str) -> Option<Option<f64>> {
        let (at, value) = self.latest.read().ok()?.get(&self.agent, signal)?;
        (at > self.since).then_some(value)
    }

    fn verdict(condition: &Condition, value: Option<Option<f64>>) -> (bool, String) {
        let fmt = crate::engine::format_value;
        match value {
            _ if condition.relative_to_baseline => (
                false,
                "baseline-relative checks are not supported after a rollback".into(),
            ),
            Some(Some(v)) if condition.accepts(v) => (
                true,
                format!(
                    "{} = {} {}",
                    condition.signal,
                    fmt(v),
                    condition.describe_thresholds()
                ),
            ),
            Some(Some(v)) => (
                false,
                format!(
                    "{} = {}, needs {}",
                    condition.signal,
                    fmt(v),
                    condition.describe_thresholds()
                ),
            ),
            Some(None) | None => (
                false,
                format!(
                    "{}: no recent data (no data is not a pass)",
                    condition.signal
                ),
            ),
        }
    }
}

impl SignalChecks for LatestChecks {
    async fn check(&self, condition: &Condition) -> CheckResult {
        let deadline = tokio::time::Instant::now() + self.grace;
        loop {
            let (passed, detail) = Self::verdict(condition, self.reading(&condition.signal));
            if passed || tokio::time::Instant::now() >= deadline {
                return CheckResult {
                    name: condition.signal.clone(),
                    passed,
                    detail,
                };
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// What the runner shares with its incident tasks.
pub struct Runner {
    pub store: Arc<Store>,
    pub policies: Arc<Vec<Arc<Policy>>>,
    pub executor: Executor,
    pub metrics: Arc<Metrics>,
    pub latest: Latest,
    pub channels: Channels,
    /// Told when a rollback of an agent's deploy completed (closes its window).
    pub rolled_back: crate::channel::BoundedTx<String>,
    /// How often the post-rollback watch re-checks the signals.
    pub watch_interval: Duration,
    running: Mutex<HashSet<String>>,
}

impl Runner {
    /// A runner.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<Store>,
        policies: Arc<Vec<Arc<Policy>>>,
        executor: Executor,
        metrics: Arc<Metrics>,
        latest: Latest,
        channels: Channels,
        rolled_back: crate::channel::BoundedTx<String>,
        watch_interval: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            policies,
            executor,
            metrics,
            latest,
            channels,
            rolled_back,
            watch_interval,
            running: Mutex::new(HashSet::new()),
        })
    }

    fn policy(&self, agent: &str) -> Option<Arc<Policy>> {
        self.policies.iter().find(|p| p.agent.id == agent).cloned()
    }

    /// Drives `id` in its own task unless it is already being driven.
    pub fn drive(self: &Arc<Self>, id: String) -> Option<tokio::task::JoinHandle<()>> {
        {
            let Ok(mut running) = self.running.lock() else {
                return None;
            };
            if !running.insert(id.clone()) {
                return None;
            }
        }
        let me = self.clone();
        let span = tracing::info_span!("incident", id = %id);
        Some(tokio::spawn(
            async move {
                if let Err(e) = me.run(&id).await {
                    tracing::error!(error = %e, "incident driver stopped; it resumes on the next wake or restart");
                }
                if let Ok(mut running) = me.running.lock() {
                    running.remove(&id);
                }
            }
            .instrument(span),
        ))
    }

    fn transition(
        &self,
        inc: &Incident,
        policy: &Policy,
        event: Event,
        note: &str,
        stage: Option<Stage>,
        extra: &BTreeMap<&'static str, String>,
    ) -> Result<State, crate::store::StoreError> {
        let rows = stage
            .map(|s| announce(policy, inc, s, extra, &self.channels))
            .unwrap_or_default();
        self.store.transition(
            &Transition::new(&inc.id, event, Utc::now(), note)
                .expecting(inc.state)
                .notifying(&rows),
        )
    }

    /// The method to run, with a manual `to_revision` applied to its undo steps.
    fn method(&self, inc: &Incident, policy: &Policy) -> Option<Method> {
        let mut method = policy.methods.get(inc.method.as_deref()?)?.clone();
        if let Some(r) = inc
            .vars
            .get("to_revision")
            .and_then(|r| r.parse::<u64>().ok())
        {
            for step in &mut method.steps {
                match &mut step.action {
                    StepAction::Undo(target) | StepAction::ArgoUndo(target) => {
                        *target = RevisionRef::Revision(r)
                    }
                    _ => {}
                }
            }
        }
        Some(method)
    }

    async fn run(&self, id: &str) -> Result<(), crate::store::StoreError> {
        loop {
            let inc = self
                .store
                .incident(id)?
                .ok_or_else(|| crate::store::StoreError::NotFound(id.to_string()))?;
            let Some(policy) = self.policy(&inc.agent) else {
                tracing::error!(agent = %inc.agent, "no policy for this incident's agent");
                return Ok(());
            };
            let ctx = RunContext {
                dry_run: inc.dry_run,
                vars: inc.vars.clone(),
                ..RunContext::new(inc.id.clone(), policy.clone(), inc.reason.clone())
            };
            match inc.state {
                State::RollingBack => self.roll_back(&inc, &policy, &ctx).await?,
                State::Verifying => self.verify(&inc, &policy, &ctx).await?,
                State::Monitoring => self.watch(&inc, &policy).await?,
                State::Failed => {
                    self.transition(
                        &inc,
                        &policy,
                        Event::Escalate,
                        "handed to a human with the evidence",
                        None,
                        &BTreeMap::new(),
                    )?;
                }
                _ => return Ok(()),
            }
        }
    }

    async fn roll_back(
        &self,
        inc: &Incident,
        policy: &Arc<Policy>,
        ctx: &RunContext,
    ) -> Result<(), crate::store::StoreError> {
        // an approval moved it here without an announcement: announce the start once
        if !self
            .store
            .outbox_for(&inc.id)?
            .iter()
            .any(|o| o.message["stage"] == "initiated")
        {
            let rows = announce(
                policy,
                inc,
                Stage::Initiated,
                &BTreeMap::new(),
                &self.channels,
            );
            self.store.enqueue(&inc.id, &rows, Utc::now())?;
        }
        let Some(method) = self.method(inc, policy) else {
            let extra = BTreeMap::from([("error", format!("method {:?} not found", inc.method))]);
            self.transition(
                inc,
                policy,
                Event::StepFailed,
                "no method",
                Some(Stage::Failed),
                &extra,
            )?;
            return Ok(());
        };
        let started = std::time::Instant::now();
        let outcome = self.executor.run(ctx, &method, self.store.as_ref()).await;
        let method_name = method.name.clone();
        // a dry run writes no journal: keep its plans on the incident for people to read
        if inc.dry_run
            && let Ok(o) = &outcome
        {
            for step in &o.steps {
                let row = crate::store::StepRow {
                    incident_id: inc.id.clone(),
                    index: step.index,
                    workload: step.workload.clone(),
                    name: step.name.clone(),
                    kind: step.kind.clone(),
                    state: "dry_run".into(),
                    started_at: step.started_at,
                    finished_at: step.finished_at,
                    detail: serde_json::to_value(step).unwrap_or_default(),
                };
                self.store.save_step(&row)?;
            }
        }
        for step in outcome.iter().flat_map(|o| o.steps.iter()) {
            if let (Some(a), Some(b)) = (step.started_at, step.finished_at) {
                let state = serde_json::to_value(&step.state)
                    .ok()
                    .and_then(|v| v["state"].as_str().map(str::to_string))
                    .unwrap_or_default();
                self.metrics.observe(
                    "rollbackd_step_duration_seconds",
                    &[&step.kind, &state],
                    (b - a).num_milliseconds() as f64 / 1000.0,
                );
            }
        }
        match outcome {
            Ok(o) if o.succeeded() => {
                let to = self.target_version(policy).await;
                let mut extra = BTreeMap::from([(
                    "duration",
                    elapsed(chrono::TimeDelta::from_std(started.elapsed()).unwrap_or_default()),
                )]);
                extra.extend(to);
                let note = format!(
                    "{} step(s) done{}",
                    o.steps.len(),
                    if inc.dry_run {
                        " (dry run: nothing changed)"
                    } else {
                        ""
                    }
                );
                self.transition(
                    inc,
                    policy,
                    Event::StepsDone,
                    &note,
                    Some(Stage::InProgress),
                    &extra,
                )?;
                if !inc.dry_run {
                    let _ = self.rolled_back.send(inc.agent.clone());
                }
            }
            Ok(o) => {
                let failure = o
                    .failure()
                    .map(|s| {
                        format!(
                            "step {} ({}) on {}: {:?}",
                            s.index, s.name, s.workload, s.state
                        )
                    })
                    .unwrap_or_else(|| "cancelled".into());
                self.metrics.inc(
                    "rollbackd_rollbacks_total",
                    &[&inc.agent, &method_name, "step_failed"],
                );
                let extra = BTreeMap::from([("error", failure.clone())]);
                self.transition(
                    inc,
                    policy,
                    Event::StepFailed,
                    &failure,
                    Some(Stage::Failed),
                    &extra,
                )?;
            }
            Err(e) => {
                self.metrics.inc(
                    "rollbackd_rollbacks_total",
                    &[&inc.agent, &method_name, e.metric_label()],
                );
                let extra = BTreeMap::from([("error", e.to_string())]);
                self.transition(
                    inc,
                    policy,
                    Event::StepFailed,
                    &e.to_string(),
                    Some(Stage::Failed),
                    &extra,
                )?;
            }
        }
        Ok(())
    }

    /// The version and revision now running on the primary workload, for messages.
    async fn target_version(&self, policy: &Policy) -> BTreeMap<&'static str, String> {
        let mut out = BTreeMap::new();
        let Some(w) = policy.primary_workload() else {
            return out;
        };
        if let Ok((obj, history)) = load(self.executor.cluster(), w).await {
            if let Some(current) = history.current() {
                out.insert("to_revision", current.number.to_string());
                if let Some(image) = current.image(w.container.as_deref()) {
                    out.insert("to_version", version_of(image));
                }
            }
            let replicas = obj["spec"]["replicas"].as_u64().unwrap_or(0);
            let updated = obj["status"]["updatedReplicas"].as_u64().unwrap_or(0);
            out.insert("pods_total", replicas.to_string());
            out.insert("pods_updated", updated.to_string());
        }
        out
    }

    async fn verify(
        &self,
        inc: &Incident,
        policy: &Arc<Policy>,
        ctx: &RunContext,
    ) -> Result<(), crate::store::StoreError> {
        let method = inc.method.clone().unwrap_or_default();
        if inc.dry_run {
            self.metrics.inc(
                "rollbackd_rollbacks_total",
                &[&inc.agent, &method, "dry_run"],
            );
            self.transition(
                inc,
                policy,
                Event::Verified,
                "dry run: nothing to verify",
                Some(Stage::Complete),
                &BTreeMap::new(),
            )?;
            return Ok(());
        }
        let since = self
            .store
            .transitions(&inc.id)?
            .iter()
            .rev()
            .find(|t| t.to == State::Verifying)
            .map(|t| t.at)
            .unwrap_or_else(Utc::now);
        let grace = policy
            .verification
            .rollout_timeout
            .to_std()
            .unwrap_or(Duration::from_secs(300));
        let checks = LatestChecks {
            agent: inc.agent.clone(),
            latest: self.latest.clone(),
            since,
            grace,
        };
        let verifier = Verifier::new(self.executor.clone());
        let outcome = verifier.verify(ctx, &checks, self.store.as_ref()).await;
        let mut extra = self.target_version(policy).await;
        if outcome.passed {
            self.metrics.inc(
                "rollbackd_rollbacks_total",
                &[&inc.agent, &method, "verified"],
            );
            let started = self
                .store
                .transitions(&inc.id)?
                .first()
                .map(|t| t.at)
                .unwrap_or_else(Utc::now);
            extra.insert("duration", elapsed(Utc::now() - started));
            let note = outcome
                .checks
                .iter()
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect::<Vec<_>>()
                .join("; ");
            self.transition(
                inc,
                policy,
                Event::Verified,
                &note,
                Some(Stage::Complete),
                &extra,
            )?;
        } else {
            self.metrics.inc(
                "rollbackd_rollbacks_total",
                &[&inc.agent, &method, "verification_failed"],
            );
            extra.insert(
                "error",
                format!(
                    "verification failed after one recovery attempt: {}",
                    outcome.evidence
                ),
            );
            extra.insert("evidence", outcome.evidence.clone());
            self.transition(
                inc,
                policy,
                Event::VerificationFailed,
                &outcome.evidence,
                Some(Stage::Failed),
                &extra,
            )?;
        }
        Ok(())
    }

    /// The runbook's post-rollback watch: checks hold until it ends → resolved; a check
    /// that fails with data → failed (and escalated).
    async fn watch(
        &self,
        inc: &Incident,
        policy: &Arc<Policy>,
    ) -> Result<(), crate::store::StoreError> {
        let entered = self
            .store
            .transitions(&inc.id)?
            .iter()
            .rev()
            .find(|t| t.to == State::Monitoring)
            .map(|t| t.at)
            .unwrap_or_else(Utc::now);
        let end = entered + policy.verification.watch;
        let checks = LatestChecks {
            agent: inc.agent.clone(),
            latest: self.latest.clone(),
            since: entered,
            grace: Duration::ZERO,
        };
        while Utc::now() < end {
            let left = (end - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(left.min(self.watch_interval)).await;
            if inc.dry_run {
                continue;
            }
            for c in &policy.verification.checks {
                let r = checks.check(c).await;
                let has_data = !r.detail.contains("no recent data");
                if !r.passed && has_data {
                    let extra = BTreeMap::from([(
                        "error",
                        format!("degraded during the watch: {}", r.detail),
                    )]);
                    self.transition(
                        inc,
                        policy,
                        Event::WatchBreached,
                        &r.detail,
                        Some(Stage::Failed),
                        &extra,
                    )?;
                    return Ok(());
                }
            }
        }
        self.transition(
            inc,
            policy,
            Event::WatchElapsed,
            "stable for the whole watch",
            Some(Stage::Resolved),
            &self.target_version(policy).await,
        )?;
        Ok(())
    }
}
