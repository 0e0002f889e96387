//! The incident runner: the single writer that moves incidents through their lifecycle.
//! Each transition is persisted (with its announcement in the same transaction) before
//! the next action; a restarted daemon resumes every in-flight incident from the store,
//! and the executor's journal makes sure no step runs twice.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::cluster::history::load;
use crate::executor::{Executor, IncidentRevision, RunContext};
use crate::lifecycle::announce::{Channels, announce, elapsed, version_of};
use crate::lifecycle::ending::{Ending, end_without_rollback};
use crate::metrics::Metrics;
use crate::signals::latest::Latest;
use crate::store::{AuditEntry, Incident, StateStore, Transition};
use crate::verify::{CheckResult, SignalChecks, Verifier};
use rollbackd_core::engine::{Sample, Truth, always_blocking, guard_sentence, guards_now, judge};
use rollbackd_core::incident::{Event, Running, State, superseded};
use rollbackd_core::policy::{Condition, Method, Policy, RevisionRef, Stage, StepAction};

/// Post-rollback checks against the evaluation loop's readings: a check passes once the
/// readings taken after `since` satisfy it continuously for its `for` (at once without one);
/// it fails when that does not happen within `grace` (plus its `for`): signals computed over
/// a window, like `rate(…[5m])`, need time to reflect the rollback. `relative_to =
/// "baseline"` checks compare `value / baseline` with the deploy's pre-deploy baseline.
#[derive(Clone)]
pub struct LatestChecks {
    /// The agent whose readings are checked.
    pub agent: String,
    /// The evaluation loop's latest readings.
    pub latest: Latest,
    /// Readings before this (the rollback) do not count.
    pub since: chrono::DateTime<Utc>,
    /// How long a check may wait for a passing reading.
    pub grace: Duration,
    /// The deploy's pre-deploy baselines (carried by the incident), per signal.
    pub baselines: BTreeMap<String, f64>,
    /// A cancel, a pause or shutdown: stop waiting for a passing reading.
    pub stop: CancellationToken,
}

/// One reading judged against a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The reading satisfies the check.
    Pass(String),
    /// The reading (data) does not satisfy it.
    Fail(String),
    /// No usable reading (none since `since`, no data, non-finite, no baseline).
    NoData(String),
}

impl LatestChecks {
    /// The latest reading of `signal` taken after `since`, with its time.
    fn reading(&self, signal: &str) -> Option<(chrono::DateTime<Utc>, Option<f64>)> {
        let (at, value) = self.latest.read().ok()?.get(&self.agent, signal)?;
        (at > self.since).then_some((at, value))
    }

    /// The latest reading judged against `condition`, ignoring its `for` (the watch's tick).
    pub fn verdict_now(&self, condition: &Condition) -> Verdict {
        self.verdict(
            condition,
            self.reading(&condition.signal).and_then(|(_, v)| v),
        )
    }

    fn verdict(&self, condition: &Condition, value: Option<f64>) -> Verdict {
        let fmt = rollbackd_core::engine::format_value;
        let signal = &condition.signal;
        // the reading is recent by construction (taken after `since`): no staleness here
        let sample = Sample::new(self.since, value);
        let baseline = self.baselines.get(signal).copied();
        let (e, _) = judge(condition, Some(sample), None, baseline);
        let Some(v) = e.value else {
            return Verdict::NoData(format!("{signal}: no recent data (no data is not a pass)"));
        };
        let shown = match (e.ratio, e.baseline) {
            (Some(r), Some(b)) => format!("{} ({r:.2}x baseline {})", fmt(v), fmt(b)),
            _ => fmt(v),
        };
        let needs = condition.describe_thresholds();
        match e.truth {
            Truth::True => Verdict::Pass(format!("{signal} = {shown} {needs}")),
            Truth::False => Verdict::Fail(format!("{signal} = {shown}, needs {needs}")),
            Truth::Unknown => Verdict::NoData(format!(
                "{signal}: no pre-deploy baseline to compare with (no data is not a pass)"
            )),
        }
    }
}

impl SignalChecks for LatestChecks {
    async fn check(&self, condition: &Condition) -> CheckResult {
        let hold = condition.held_for.unwrap_or_default();
        let deadline = tokio::time::Instant::now() + self.grace + hold.to_std().unwrap_or_default();
        let mut passing_since: Option<chrono::DateTime<Utc>> = None;
        loop {
            let reading = self.reading(&condition.signal);
            let verdict = self.verdict(condition, reading.and_then(|(_, v)| v));
            let (passed, detail) = match (&verdict, reading) {
                (Verdict::Pass(detail), Some((at, _))) => {
                    let since = *passing_since.get_or_insert(at);
                    let held = at - since;
                    if held >= hold {
                        (true, detail.clone())
                    } else {
                        let d = format!(
                            "{detail}, but held only {} of the required {}",
                            rollbackd_core::policy::duration::format_duration(held),
                            rollbackd_core::policy::duration::format_duration(hold)
                        );
                        (false, d)
                    }
                }
                (Verdict::Pass(detail) | Verdict::Fail(detail) | Verdict::NoData(detail), _) => {
                    passing_since = None;
                    (false, detail.clone())
                }
            };
            if passed || tokio::time::Instant::now() >= deadline || self.stop.is_cancelled() {
                return CheckResult {
                    name: condition.signal.clone(),
                    passed,
                    detail,
                };
            }
            tokio::select! {
                _ = self.stop.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }
}

/// What the runner shares with its incident tasks.
pub struct Runner {
    /// The store: incidents, transitions, the step journal, outbox and audit.
    pub store: Arc<dyn StateStore>,
    /// Every loaded policy; an incident's agent picks its own.
    pub policies: Arc<Vec<Arc<Policy>>>,
    /// Runs the methods' steps against the cluster.
    pub executor: Executor,
    /// rollbackd's own metrics.
    pub metrics: Arc<Metrics>,
    /// The evaluation loop's latest readings, for guard re-checks and post-rollback checks.
    pub latest: Latest,
    /// Which notifier kinds are configured.
    pub channels: Channels,
    /// Told when a rollback of an agent's deploy completed (closes its window).
    pub rolled_back: crate::channel::BoundedTx<String>,
    /// How often the post-rollback watch re-checks the signals.
    pub watch_interval: Duration,
    /// Each agent's running revision, as the evaluation loop publishes it.
    pub status: AgentStatuses,
    running: Mutex<HashSet<String>>,
    /// Cancelled at shutdown: every incident task stops at its next step boundary.
    shutdown: CancellationToken,
    /// Whether this replica holds the Lease (always true without leader election). Losing
    /// it stops every incident task at its next step boundary, leaving the incident to the
    /// new leader, which resumes it from the journal.
    leading: tokio::sync::watch::Receiver<bool>,
}

/// The evaluation loop's per-agent status map.
pub type AgentStatuses = Arc<RwLock<BTreeMap<String, crate::api::AgentStatus>>>;

/// How often an incident task looks for a cancel or a pause while it works.
const STOP_POLL: Duration = Duration::from_millis(200);

/// The runner is working on an incident in this state (a cancel or a pause stops it).
fn is_working(state: State) -> bool {
    matches!(
        state,
        State::RollingBack | State::Verifying | State::Monitoring
    )
}

/// What the runner does after an incident task stopped at a boundary.
enum AfterStop {
    /// Done driving it (cancelled, or the daemon is shutting down).
    Halt,
    /// The pause was lifted: carry on from the journal.
    Resume,
}

impl Runner {
    /// A runner.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn StateStore>,
        policies: Arc<Vec<Arc<Policy>>>,
        executor: Executor,
        metrics: Arc<Metrics>,
        latest: Latest,
        channels: Channels,
        rolled_back: crate::channel::BoundedTx<String>,
        watch_interval: Duration,
        status: AgentStatuses,
        leading: tokio::sync::watch::Receiver<bool>,
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
            status,
            running: Mutex::new(HashSet::new()),
            shutdown: CancellationToken::new(),
            leading,
        })
    }

    /// Stops every incident task at its next step boundary (the step in flight reaches its
    /// journal; in-flight incidents resume after a restart) and waits up to `limit` for them.
    pub async fn shutdown(&self, limit: Duration) {
        self.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if self.running.lock().map_or(true, |r| r.is_empty()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!("shutdown: incident tasks still running after {limit:?}");
    }

    fn policy(&self, agent: &str) -> Option<Arc<Policy>> {
        self.policies.iter().find(|p| p.agent.id == agent).cloned()
    }

    /// Drives `id` in its own task unless it is already being driven.
    pub fn drive(self: &Arc<Self>, id: String) -> Option<tokio::task::JoinHandle<()>> {
        if self.shutdown.is_cancelled() {
            return None;
        }
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

    /// Polls the store while a pass works: a cancel or a pause of the incident's agent
    /// cancels `stop` (the run stops at its next step boundary).
    fn watch_for_stop(
        &self,
        inc: &Incident,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let (store, id, agent) = (self.store.clone(), inc.id.clone(), inc.agent.clone());
        let mut leading = self.leading.clone();
        // without leader election nobody changes it: stop watching once its sender is gone
        let mut elected = true;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(STOP_POLL) => {}
                    lost = leading.wait_for(|l| !*l), if elected => {
                        if lost.is_ok() {
                            // the Lease is gone: not ours to act on any more
                            stop.cancel();
                            return;
                        }
                        elected = false;
                    }
                }
                let cancelled = store
                    .incident(&id)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|i| i.state == State::Cancelled);
                let paused = store.paused(&agent).await.ok().flatten().is_some();
                if cancelled || paused {
                    stop.cancel();
                    return;
                }
            }
        })
    }

    /// After a pass stopped at a boundary: on shutdown, leave the incident for the next
    /// start; cancelled, tell who stopped it after which step; paused, tell it and hold
    /// until the pause is lifted.
    async fn stopped(
        &self,
        inc: &Incident,
        policy: &Policy,
    ) -> Result<AfterStop, crate::store::StoreError> {
        if self.shutdown.is_cancelled() {
            tracing::info!(state = %inc.state, "shutdown: stopped at a step boundary; resumes on restart");
            return Ok(AfterStop::Halt);
        }
        if !*self.leading.borrow() {
            tracing::warn!(state = %inc.state, "lost the Lease: stopped at a step boundary; the new leader resumes it from the journal");
            return Ok(AfterStop::Halt);
        }
        let progress = self.progress(inc).await?;
        if inc.state == State::Cancelled {
            let by = self
                .store
                .transitions(&inc.id)
                .await?
                .into_iter()
                .rev()
                .find(|t| t.to == State::Cancelled)
                .map_or_else(|| "cancelled".to_string(), |t| t.note);
            let sentence = format!("stopped ({by}) {progress}");
            tracing::warn!(%sentence, "rollback cancelled in flight");
            self.tell_stopped(inc, policy, "rollback.stopped", &sentence)
                .await?;
            return Ok(AfterStop::Halt);
        }
        let Some(pause) = self.store.paused(&inc.agent).await? else {
            return Ok(AfterStop::Resume);
        };
        let sentence = format!(
            "paused by {} ({}) {progress}; it continues from there when automation is resumed",
            pause.paused_by, pause.reason
        );
        tracing::warn!(%sentence, "rollback held by a pause");
        self.tell_stopped(inc, policy, "rollback.paused", &sentence)
            .await?;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(AfterStop::Halt),
                _ = tokio::time::sleep(STOP_POLL) => {}
            }
            if self.store.paused(&inc.agent).await?.is_none() {
                tracing::info!("pause lifted: the rollback continues from its journal");
                let sentence = format!("the pause was lifted: continuing {progress}");
                let extra = BTreeMap::from([("error", sentence.clone())]);
                let rows = announce(policy, inc, Stage::Continued, &extra, &self.channels);
                self.store.enqueue(&inc.id, &rows, Utc::now()).await?;
                self.store
                    .audit(&AuditEntry {
                        at: Utc::now(),
                        actor: "rollbackd".into(),
                        action: "rollback.continued".into(),
                        target: inc.id.clone(),
                        reason: sentence,
                        detail: serde_json::json!({"state": inc.state}),
                    })
                    .await?;
                return Ok(AfterStop::Resume);
            }
        }
    }

    /// Where a stopped incident got to: the last finished step, or the phase.
    async fn progress(&self, inc: &Incident) -> Result<String, crate::store::StoreError> {
        let last = self
            .store
            .transitions(&inc.id)
            .await?
            .into_iter()
            .rev()
            .find(|t| t.to != State::Cancelled)
            .map(|t| t.to);
        let steps = self.store.steps(&inc.id).await?;
        let done = steps
            .iter()
            .filter(|r| r.finished_at.is_some() && r.state != "failed")
            .max_by_key(|r| r.index);
        let after = match done {
            Some(r) => format!("after step {} ({}) on {}", r.index + 1, r.name, r.workload),
            None => "before any step ran".to_string(),
        };
        Ok(match last {
            Some(State::Verifying) => format!("during verification, {after}"),
            Some(State::Monitoring) => format!("during the post-rollback watch, {after}"),
            _ => after,
        })
    }

    /// Audits and announces a stop (`Stage::Stopped`), outside a transition.
    async fn tell_stopped(
        &self,
        inc: &Incident,
        policy: &Policy,
        action: &str,
        sentence: &str,
    ) -> Result<(), crate::store::StoreError> {
        let extra = BTreeMap::from([("error", sentence.to_string())]);
        let rows = announce(policy, inc, Stage::Stopped, &extra, &self.channels);
        self.store.enqueue(&inc.id, &rows, Utc::now()).await?;
        self.store
            .audit(&AuditEntry {
                at: Utc::now(),
                actor: "rollbackd".into(),
                action: action.into(),
                target: inc.id.clone(),
                reason: sentence.to_string(),
                detail: serde_json::json!({"state": inc.state}),
            })
            .await
    }

    /// An incident cancelled while it waited for a human (awaiting approval, blocked) never
    /// ran, so no pass told anyone: tell the notifiers once (`stopped`), so that what was
    /// opened for it closes (its PagerDuty alert is resolved).
    async fn tell_cancelled_waiting(
        &self,
        inc: &Incident,
        policy: &Policy,
    ) -> Result<(), crate::store::StoreError> {
        let cancel = self
            .store
            .transitions(&inc.id)
            .await?
            .into_iter()
            .rev()
            .find(|t| t.to == State::Cancelled);
        let Some(cancel) = cancel.filter(|t| {
            matches!(
                t.from,
                Some(State::AwaitingApproval | State::Blocked | State::Detected)
            )
        }) else {
            return Ok(());
        };
        let told = self
            .store
            .outbox_for(&inc.id)
            .await?
            .iter()
            .any(|o| o.message["stage"] == "stopped");
        if told {
            return Ok(());
        }
        let sentence = format!("stopped ({}) before any step ran", cancel.note);
        tracing::info!(%sentence, "incident cancelled while it waited for a human");
        self.tell_stopped(inc, policy, "rollback.stopped", &sentence)
            .await
    }

    /// Before the first step of an incident: a newer deploy or `fix_forward_after` ends it
    /// as superseded; for an approved incident, an `always` guard that holds (or cannot be
    /// evaluated) now blocks it. Returns whether it may proceed.
    async fn world_still_wants_it(
        &self,
        inc: &Incident,
        policy: &Policy,
    ) -> Result<bool, crate::store::StoreError> {
        let now = Utc::now();
        let running = self.status.read().ok().and_then(|s| {
            s.get(&inc.agent).map(|st| Running {
                revision: st.revision,
                deployed_at: st.deployed_at,
            })
        });
        if let Some(why) = superseded(inc, policy, running, now) {
            tracing::warn!(%why, "superseded before any step");
            self.end_without_rollback(inc, policy, Event::Supersede, Stage::Superseded, &why)
                .await?;
            return Ok(false);
        }
        let approved = self
            .store
            .transitions(&inc.id)
            .await?
            .iter()
            .any(|t| t.event == "approve");
        if !approved {
            return Ok(true);
        }
        let baselines = crate::api::incident_baselines(inc);
        // the readings' lock is not held across the awaits below
        let guards = {
            let latest = self.latest.read().ok();
            guards_now(
                policy,
                inc.row.as_deref(),
                &baselines,
                |signal| latest.as_ref()?.get(&inc.agent, signal),
                now,
            )
        };
        let Some(guard) = always_blocking(&guards) else {
            return Ok(true);
        };
        let sentence = guard_sentence(guard);
        tracing::warn!(%sentence, "an always guard blocks the approved rollback before its first step");
        let note = format!("blocked before the first step: {sentence}");
        self.end_without_rollback(inc, policy, Event::Block, Stage::Blocked, &note)
            .await?;
        Ok(false)
    }

    /// Supersedes or blocks an incident that mutated nothing (before its first step, or a
    /// mutating step that found a fresh deploy on the workload and wrote nothing): the
    /// transition, its announcement (`{error}` says why) and an audit entry, in one
    /// transaction.
    async fn end_without_rollback(
        &self,
        inc: &Incident,
        policy: &Policy,
        event: Event,
        stage: Stage,
        why: &str,
    ) -> Result<State, crate::store::StoreError> {
        let ending = Ending {
            event,
            stage,
            actor: "rollbackd",
            why,
            note: None,
            detail: serde_json::Value::Null,
        };
        end_without_rollback(
            self.store.as_ref(),
            &self.channels,
            policy,
            inc,
            &ending,
            Utc::now(),
        )
        .await
    }

    async fn transition(
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
        self.store
            .transition(
                &Transition::new(&inc.id, event, Utc::now(), note)
                    .expecting(inc.state)
                    .notifying(&rows),
            )
            .await
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
            if self.shutdown.is_cancelled() {
                return Ok(());
            }
            let inc = self.load(id).await?;
            let Some(policy) = self.policy(&inc.agent) else {
                tracing::error!(agent = %inc.agent, "no policy for this incident's agent");
                return Ok(());
            };
            let stop = self.one_pass(&inc, &policy).await?;
            let now = self.load(id).await?;
            let cancelled_in_flight = now.state == State::Cancelled && is_working(inc.state);
            if stop.is_cancelled() || cancelled_in_flight {
                match self.stopped(&now, &policy).await? {
                    AfterStop::Halt => return Ok(()),
                    AfterStop::Resume => continue,
                }
            }
            match now.state {
                State::RollingBack | State::Verifying | State::Monitoring => {}
                State::Failed => {
                    self.transition(
                        &now,
                        &policy,
                        Event::Escalate,
                        "handed to a human with the evidence",
                        None,
                        &BTreeMap::new(),
                    )
                    .await?;
                }
                State::Cancelled => {
                    self.tell_cancelled_waiting(&now, &policy).await?;
                    return Ok(());
                }
                _ => return Ok(()),
            }
        }
    }

    async fn load(&self, id: &str) -> Result<Incident, crate::store::StoreError> {
        self.store
            .incident(id)
            .await?
            .ok_or_else(|| crate::store::StoreError::NotFound(id.to_string()))
    }

    /// Drives one phase of `inc` (rolling back, verifying or watching) until it moves on or
    /// stops at a step boundary (a cancel, a pause, shutdown); returns the pass's stop token.
    async fn one_pass(
        &self,
        inc: &Incident,
        policy: &Arc<Policy>,
    ) -> Result<CancellationToken, crate::store::StoreError> {
        let stop = self.shutdown.child_token();
        if !*self.leading.borrow() {
            // a task picked up (or looping on) after the Lease was lost: no step
            stop.cancel();
        }
        if is_working(inc.state) && self.store.paused(&inc.agent).await?.is_some() {
            // paused already (e.g. resumed at start while paused): not even a first step
            stop.cancel();
        }
        let watching = self.watch_for_stop(inc, stop.clone());
        let ctx = RunContext {
            dry_run: inc.dry_run,
            vars: inc.vars.clone(),
            stop: stop.clone(),
            incident_revision: incident_revision(inc, policy),
            ..RunContext::new(inc.id.clone(), policy.clone(), inc.reason.clone())
        };
        let result = match inc.state {
            State::RollingBack => self.roll_back(inc, policy, &ctx).await,
            State::Verifying => self.verify(inc, policy, &ctx).await,
            State::Monitoring => self.watch(inc, policy, &stop).await,
            _ => Ok(()),
        };
        watching.abort();
        match result {
            // a human moved it meanwhile (a cancel): the caller tells
            Err(crate::store::StoreError::Concurrent { .. }) => Ok(stop),
            Err(e) => Err(e),
            Ok(()) => Ok(stop),
        }
    }

    async fn roll_back(
        &self,
        inc: &Incident,
        policy: &Arc<Policy>,
        ctx: &RunContext,
    ) -> Result<(), crate::store::StoreError> {
        if self.store.steps(&inc.id).await?.is_empty()
            && !self.world_still_wants_it(inc, policy).await?
        {
            return Ok(());
        }
        // an approval moved it here without an announcement: announce the start once
        if !self
            .store
            .outbox_for(&inc.id)
            .await?
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
            self.store.enqueue(&inc.id, &rows, Utc::now()).await?;
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
            )
            .await?;
            return Ok(());
        };
        let started = std::time::Instant::now();
        let outcome = self.executor.run(ctx, &method, &self.store).await;
        if outcome.as_ref().is_ok_and(|o| o.cancelled) || ctx.cancel.is_cancelled() {
            // stopped at a step boundary (cancel, pause, shutdown): the caller says why
            return Ok(());
        }
        let method_name = method.name.clone();
        // a dry run writes no journal: keep its plans on the incident for people to read
        if inc.dry_run
            && let Ok(o) = &outcome
        {
            for step in &o.steps {
                let row = crate::store::StepRow {
                    incident_id: inc.id.clone(),
                    method: method.name.clone(),
                    index: step.index,
                    workload: step.workload.clone(),
                    name: step.name.clone(),
                    kind: step.kind.clone(),
                    state: "dry_run".into(),
                    started_at: step.started_at,
                    finished_at: step.finished_at,
                    detail: serde_json::to_value(step).unwrap_or_default(),
                };
                self.store.save_step(&row).await?;
            }
        }
        for step in outcome.iter().flat_map(|o| o.steps.iter()) {
            if let Some(event) = crate::events::steps::step_event(policy, &inc.id, step, Utc::now())
            {
                self.channels.events.record(event);
            }
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
                )
                .await?;
                if !inc.dry_run {
                    let _ = self.rolled_back.send(inc.agent.clone());
                }
            }
            Ok(o) if superseded_before_any_change(&o) => {
                // a fresh deploy landed: nothing was written, and nothing will be
                let why = o
                    .failure()
                    .and_then(|s| s.detail["error"].as_str())
                    .unwrap_or("the workload no longer runs the incident's revision")
                    .to_string();
                self.metrics.inc(
                    "rollbackd_rollbacks_total",
                    &[&inc.agent, &method_name, "superseded"],
                );
                self.end_without_rollback(inc, policy, Event::Supersede, Stage::Superseded, &why)
                    .await?;
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
                )
                .await?;
            }
            Err(crate::executor::ExecError::Fenced(why)) => {
                // this replica may not write any more: nothing to tell, nothing failed. Wait
                // until the elector sees it too (the next pass then stops at once), bounded
                // so a slow elector does not hold the task forever.
                tracing::warn!(error = %why, "lost the right to write: the new leader resumes this incident");
                let mut leading = self.leading.clone();
                let _ =
                    tokio::time::timeout(Duration::from_secs(30), leading.wait_for(|l| !*l)).await;
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
                )
                .await?;
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
            )
            .await?;
            return Ok(());
        }
        let since = self
            .store
            .transitions(&inc.id)
            .await?
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
            baselines: crate::api::incident_baselines(inc),
            stop: ctx.stop.clone(),
        };
        let verifier = Verifier::new(self.executor.clone());
        // a cancel, a pause or shutdown ends verification's waits; the caller says why
        let ctx = RunContext {
            cancel: ctx.stop.clone(),
            ..ctx.clone()
        };
        let outcome = verifier.verify(&ctx, &checks, &self.store).await;
        if ctx.stop.is_cancelled() {
            return Ok(());
        }
        let mut extra = self.target_version(policy).await;
        if outcome.passed {
            self.metrics.inc(
                "rollbackd_rollbacks_total",
                &[&inc.agent, &method, "verified"],
            );
            let started = self
                .store
                .transitions(&inc.id)
                .await?
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
            )
            .await?;
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
            )
            .await?;
        }
        Ok(())
    }

    /// The runbook's post-rollback watch: checks hold until it ends → resolved; a check
    /// that fails with data → failed (and escalated).
    async fn watch(
        &self,
        inc: &Incident,
        policy: &Arc<Policy>,
        stop: &CancellationToken,
    ) -> Result<(), crate::store::StoreError> {
        let entered = self
            .store
            .transitions(&inc.id)
            .await?
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
            baselines: crate::api::incident_baselines(inc),
            stop: stop.clone(),
        };
        let (mut ticks, mut saw_data) = (0usize, false);
        // at least one look when there is a watch: a watch that ran out while the rollback
        // was paused (or the daemon down) is not stable by default
        let watches = policy.verification.watch > chrono::TimeDelta::zero();
        while Utc::now() < end || (watches && ticks == 0 && !inc.dry_run) {
            let left = (end - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                // a cancel, a pause or shutdown: the caller says why (a watch tick is a
                // step boundary)
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(left.min(self.watch_interval)) => {}
            }
            if inc.dry_run {
                continue;
            }
            ticks += 1;
            for c in &policy.verification.checks {
                match checks.verdict_now(c) {
                    Verdict::Pass(_) => saw_data = true,
                    Verdict::NoData(_) => {}
                    Verdict::Fail(detail) => {
                        let extra = BTreeMap::from([(
                            "error",
                            format!("degraded during the watch: {detail}"),
                        )]);
                        self.transition(
                            inc,
                            policy,
                            Event::WatchBreached,
                            &detail,
                            Some(Stage::Failed),
                            &extra,
                        )
                        .await?;
                        return Ok(());
                    }
                }
            }
        }
        if ticks > 0 && !saw_data && !policy.verification.checks.is_empty() {
            // silence is not stability: a human looks
            let detail = format!(
                "no data during the watch: none of {} had a reading in {}",
                policy
                    .verification
                    .checks
                    .iter()
                    .map(|c| c.signal.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                elapsed(policy.verification.watch)
            );
            let extra = BTreeMap::from([("error", detail.clone())]);
            self.transition(
                inc,
                policy,
                Event::WatchBreached,
                &detail,
                Some(Stage::Failed),
                &extra,
            )
            .await?;
            return Ok(());
        }
        self.transition(
            inc,
            policy,
            Event::WatchElapsed,
            "stable for the whole watch",
            Some(Stage::Resolved),
            &self.target_version(policy).await,
        )
        .await?;
        Ok(())
    }
}

/// The workload (by policy id) and revision the incident is about: mutating steps on it
/// refuse to act once it runs another revision.
fn incident_revision(inc: &Incident, policy: &Policy) -> Option<IncidentRevision> {
    let workload = policy
        .workloads
        .iter()
        .find(|w| w.name == inc.workload && w.namespace == inc.namespace)?;
    Some(IncidentRevision {
        workload: workload.id.clone(),
        revision: inc.revision?,
    })
}

/// The method stopped because a fresh deploy replaced the incident's revision, before any of
/// its steps changed anything.
fn superseded_before_any_change(outcome: &crate::executor::MethodOutcome) -> bool {
    let superseded = outcome
        .failure()
        .is_some_and(|s| s.detail["label"] == "superseded");
    superseded
        && !outcome
            .steps
            .iter()
            .any(|s| matches!(s.state, crate::executor::StepState::Done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AgentStatus;
    use crate::store::{NewIncident, SqliteStore, Trigger};
    use rollbackd_core::policy::Bound;

    /// A runner whose cluster is never reached (nothing here mutates).
    fn runner(
        store: Arc<dyn StateStore>,
        policy: Policy,
        status: AgentStatuses,
        latest: Latest,
    ) -> Arc<Runner> {
        runner_leading(
            store,
            policy,
            status,
            latest,
            tokio::sync::watch::channel(true).1,
        )
    }

    /// As [`runner`], leading while `leading` says so.
    fn runner_leading(
        store: Arc<dyn StateStore>,
        policy: Policy,
        status: AgentStatuses,
        latest: Latest,
        leading: tokio::sync::watch::Receiver<bool>,
    ) -> Arc<Runner> {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let executor = Executor::new(
            crate::cluster::Cluster::new(client),
            Arc::new(store.clone()),
        );
        Runner::new(
            store,
            Arc::new(vec![Arc::new(policy)]),
            executor,
            Arc::new(Metrics::new()),
            latest,
            Channels::default(),
            crate::channel::BoundedTx::detached("rolled"),
            Duration::from_millis(100),
            status,
            leading,
        )
    }

    #[tokio::test]
    async fn an_incident_cancelled_while_it_waited_tells_the_notifiers_once() {
        let store = memory_store().await;
        let policy = load("policies/gl-001.toml");
        let inc = store
            .create_incident(
                &new_incident(&policy, 7, "quick"),
                Event::RequestApproval,
                Utc::now(),
                &[],
                None,
            )
            .await
            .expect("incident");
        store
            .transition(&Transition::new(
                &inc.id,
                Event::Cancel,
                Utc::now(),
                "rollback.cancel by oncall: not needed",
            ))
            .await
            .expect("cancel");
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let runner = Runner::new(
            store.clone(),
            Arc::new(vec![Arc::new(policy.clone())]),
            Executor::new(
                crate::cluster::Cluster::new(client),
                Arc::new(store.clone()),
            ),
            Arc::new(Metrics::new()),
            Latest::default(),
            Channels {
                webhook_url: Some("http://127.0.0.1:9/hook".into()),
                pagerduty_services: ["default".to_string()].into(),
                ..Channels::default()
            },
            crate::channel::BoundedTx::detached("rolled"),
            Duration::from_millis(100),
            status_of("GL-001", 7),
            tokio::sync::watch::channel(true).1,
        );
        for _ in 0..2 {
            runner
                .drive(inc.id.clone())
                .expect("driven")
                .await
                .expect("ran");
        }
        let rows = store.outbox_for(&inc.id).await.expect("outbox");
        let told: Vec<(&str, &serde_json::Value)> = rows
            .iter()
            .map(|r| (r.target_key.as_str(), &r.message["stage"]))
            .collect();
        assert_eq!(
            told,
            [
                ("pagerduty:default", &serde_json::json!("stopped")),
                ("webhook:webhook", &serde_json::json!("stopped"))
            ],
            "told once"
        );
        assert_eq!(rows[0].target["action"], "resolve");
        assert!(
            rows[1].message["text"]
                .as_str()
                .expect("text")
                .contains("stopped (rollback.cancel by oncall: not needed) before any step ran")
        );
        // a cancel in flight is told by its pass, not here
        let running = started(&store, &policy).await;
        step(store.as_ref(), &running.id, Event::Cancel).await;
        runner
            .drive(running.id.clone())
            .expect("driven")
            .await
            .expect("ran");
        assert!(
            store
                .outbox_for(&running.id)
                .await
                .expect("outbox")
                .is_empty()
        );
    }

    fn load(path: &str) -> Policy {
        rollbackd_core::policy::load_file(std::path::Path::new(path)).expect("policy loads")
    }

    fn new_incident(policy: &Policy, revision: u64, method: &str) -> NewIncident {
        let w = policy.primary_workload().expect("primary workload");
        NewIncident {
            agent: policy.agent.id.clone(),
            namespace: w.namespace.clone(),
            workload: w.name.clone(),
            revision: Some(revision),
            from_image: None,
            row: None,
            severity: Some("P1".into()),
            method: Some(method.into()),
            trigger: Trigger::Automatic,
            requested_by: None,
            reason: "x".into(),
            decision: serde_json::json!({}),
            dry_run: false,
            vars: BTreeMap::new(),
            deploy_at: Some(Utc::now() - chrono::TimeDelta::minutes(5)),
        }
    }

    fn status_of(agent: &str, revision: u64) -> AgentStatuses {
        let status = AgentStatus {
            revision: Some(revision),
            image: None,
            deployed_at: Some(Utc::now()),
            window_open: true,
            window_ends_at: None,
            decision: None,
            evaluated_at: None,
        };
        Arc::new(RwLock::new(BTreeMap::from([(agent.to_string(), status)])))
    }

    /// An incident of `policy` about revision 7, rolling back with the `quick` method.
    async fn started(store: &Arc<dyn StateStore>, policy: &Policy) -> Incident {
        store
            .create_incident(
                &new_incident(policy, 7, "quick"),
                Event::Start,
                Utc::now(),
                &[],
                None,
            )
            .await
            .expect("incident")
    }

    async fn state_of(store: &dyn StateStore, id: &str) -> State {
        store
            .incident(id)
            .await
            .expect("read")
            .expect("exists")
            .state
    }

    async fn memory_store() -> Arc<dyn StateStore> {
        Arc::new(SqliteStore::in_memory().await.expect("store"))
    }

    async fn step(store: &dyn StateStore, id: &str, event: Event) {
        store
            .transition(&Transition::new(id, event, Utc::now(), "test"))
            .await
            .expect("transition");
    }

    async fn notes(store: &dyn StateStore, id: &str) -> String {
        store
            .transitions(id)
            .await
            .expect("transitions")
            .iter()
            .map(|t| format!("{} {}: {}", t.event, t.to, t.note))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn an_in_flight_incident_picked_up_while_paused_runs_no_step_until_resume() {
        let store = memory_store().await;
        let policy = load("policies/gl-002.toml");
        let inc = started(&store, &policy).await;
        store
            .pause(&crate::store::Pause {
                scope: crate::store::GLOBAL.into(),
                paused_by: "alice".into(),
                reason: "freeze".into(),
                at: Utc::now(),
            })
            .await
            .expect("paused");
        let r = runner(
            store.clone(),
            policy,
            status_of("GL-002", 7),
            Latest::default(),
        );
        let task = r.drive(inc.id.clone()).expect("driven");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            state_of(store.as_ref(), &inc.id).await,
            State::RollingBack,
            "{}",
            notes(store.as_ref(), &inc.id).await
        );
        assert!(
            store.steps(&inc.id).await.expect("steps").is_empty(),
            "no step ran"
        );
        let audit = store.audit_log(Some(&inc.id), 10).await.expect("audit");
        assert_eq!(audit[0].action, "rollback.paused");
        assert!(
            audit[0]
                .reason
                .contains("paused by alice (freeze) before any step ran"),
            "{}",
            audit[0].reason
        );
        r.shutdown(Duration::from_secs(2)).await;
        assert!(task.is_finished(), "shutdown ends a held incident task");
    }

    #[tokio::test]
    async fn losing_the_lease_stops_at_the_next_step_boundary_and_leaves_the_incident() {
        let store = memory_store().await;
        let mut policy = load("policies/gl-002.toml");
        // a first step that takes a while, so the Lease can be lost while it runs
        let primary = policy.primary_workload().expect("primary").id.clone();
        let quick = Arc::make_mut(&mut policy.methods)
            .get_mut("quick")
            .expect("quick method");
        quick.steps.insert(
            0,
            rollbackd_core::policy::Step {
                name: "settle".into(),
                workloads: vec![primary],
                container: None,
                timeout: None,
                action: rollbackd_core::policy::StepAction::Wait(chrono::TimeDelta::milliseconds(
                    800,
                )),
            },
        );
        let inc = started(&store, &policy).await;
        let (leading_tx, leading) = tokio::sync::watch::channel(true);
        let r = runner_leading(
            store.clone(),
            policy,
            status_of("GL-002", 7),
            Latest::default(),
            leading,
        );
        let task = r.drive(inc.id.clone()).expect("driven");
        tokio::time::sleep(Duration::from_millis(300)).await;
        leading_tx.send(false).expect("still watched");
        tokio::time::timeout(Duration::from_secs(3), task)
            .await
            .expect("the task ends at the boundary")
            .expect("no panic");
        let steps = store.steps(&inc.id).await.expect("steps");
        assert_eq!(
            steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["settle"],
            "the step in flight finished; the undo was left to the new leader"
        );
        assert_eq!(
            state_of(store.as_ref(), &inc.id).await,
            State::RollingBack,
            "{}",
            notes(store.as_ref(), &inc.id).await
        );
        let audit = store.audit_log(Some(&inc.id), 10).await.expect("audit");
        assert!(
            audit
                .iter()
                .all(|a| !a.action.contains("stopped") && !a.action.contains("paused")),
            "not told as a stop: the new leader carries on: {audit:?}"
        );
        // a task started while not leading runs no step at all
        let other = store
            .create_incident(
                &new_incident(&load("policies/gl-002.toml"), 7, "quick"),
                Event::Start,
                Utc::now(),
                &[],
                None,
            )
            .await
            .expect("incident");
        let task = r.drive(other.id.clone()).expect("driven");
        tokio::time::timeout(Duration::from_secs(3), task)
            .await
            .expect("ends at once")
            .expect("no panic");
        assert!(store.steps(&other.id).await.expect("steps").is_empty());
    }

    #[tokio::test]
    async fn a_watch_that_ran_out_while_held_still_looks_once() {
        let store = memory_store().await;
        let mut policy = load("policies/gl-002.toml");
        Arc::make_mut(&mut policy.verification).watch = chrono::TimeDelta::minutes(1);
        let t0 = Utc::now() - chrono::TimeDelta::minutes(10);
        let inc = store
            .create_incident(
                &new_incident(&policy, 7, "quick"),
                Event::Start,
                t0,
                &[],
                None,
            )
            .await
            .expect("incident");
        for event in [Event::StepsDone, Event::Verified] {
            store
                .transition(&Transition::new(&inc.id, event, t0, "test"))
                .await
                .expect("transition");
        }
        let latest = Latest::default();
        latest
            .write()
            .expect("lock")
            .set("GL-002", "error_rate", Utc::now(), Some(0.4));
        let r = runner(store.clone(), policy, status_of("GL-002", 7), latest);
        r.run(&inc.id).await.expect("runs");
        let log = notes(store.as_ref(), &inc.id).await;
        assert_eq!(
            state_of(store.as_ref(), &inc.id).await,
            State::Escalated,
            "{log}"
        );
        assert!(log.contains("error_rate = 0.4, needs < 0.01"), "{log}");
    }

    #[tokio::test]
    async fn a_watch_with_no_data_at_all_escalates_instead_of_resolving() {
        let store = memory_store().await;
        let mut policy = load("policies/gl-002.toml");
        Arc::make_mut(&mut policy.verification).watch = chrono::TimeDelta::milliseconds(600);
        let inc = started(&store, &policy).await;
        step(store.as_ref(), &inc.id, Event::StepsDone).await;
        step(store.as_ref(), &inc.id, Event::Verified).await;
        let r = runner(
            store.clone(),
            policy,
            status_of("GL-002", 7),
            Latest::default(),
        );
        r.run(&inc.id).await.expect("runs");
        let log = notes(store.as_ref(), &inc.id).await;
        assert_eq!(
            state_of(store.as_ref(), &inc.id).await,
            State::Escalated,
            "{log}"
        );
        assert!(log.contains("no data during the watch"), "{log}");
    }

    #[tokio::test]
    async fn an_approved_rollback_of_a_replaced_deploy_is_superseded_before_any_step() {
        let store = memory_store().await;
        let policy = load("policies/gl-002.toml");
        let inc = store
            .create_incident(
                &new_incident(&policy, 7, "quick"),
                Event::RequestApproval,
                Utc::now(),
                &[],
                None,
            )
            .await
            .expect("incident");
        step(store.as_ref(), &inc.id, Event::Approve).await;
        // revision 8 (a fix forward) landed between the approval and the runner's start
        let r = runner(
            store.clone(),
            policy,
            status_of("GL-002", 8),
            Latest::default(),
        );
        r.run(&inc.id).await.expect("runs");
        let log = notes(store.as_ref(), &inc.id).await;
        assert_eq!(
            state_of(store.as_ref(), &inc.id).await,
            State::Superseded,
            "{log}"
        );
        assert!(
            log.contains("deploy revision 7 was replaced by revision 8"),
            "{log}"
        );
        assert!(
            store.steps(&inc.id).await.expect("steps").is_empty(),
            "nothing ran"
        );
        let audit = store.audit_log(Some(&inc.id), 10).await.expect("audit");
        assert_eq!(audit[0].action, "rollback.supersede");
    }

    #[tokio::test]
    async fn an_always_guard_that_holds_again_blocks_an_approved_rollback_before_any_step() {
        let store = memory_store().await;
        let policy = load("policies/gl-001.toml");
        let inc = store
            .create_incident(
                &new_incident(&policy, 5, "emergency"),
                Event::RequestApproval,
                Utc::now(),
                &[],
                None,
            )
            .await
            .expect("incident");
        step(store.as_ref(), &inc.id, Event::Approve).await;
        let latest = Latest::default();
        latest
            .write()
            .expect("lock")
            .set("GL-001", "backup_heat_available", Utc::now(), Some(0.0));
        let r = runner(store.clone(), policy, status_of("GL-001", 5), latest);
        r.run(&inc.id).await.expect("runs");
        let log = notes(store.as_ref(), &inc.id).await;
        assert_eq!(
            state_of(store.as_ref(), &inc.id).await,
            State::Blocked,
            "{log}"
        );
        assert!(log.contains("guard life-safety-heat holds"), "{log}");
        assert!(
            store.steps(&inc.id).await.expect("steps").is_empty(),
            "nothing ran"
        );
    }

    fn below(signal: &str, value: f64) -> Condition {
        Condition {
            signal: signal.into(),
            lower: None,
            upper: Some(Bound {
                value,
                inclusive: false,
            }),
            equals: None,
            relative_to_baseline: false,
            held_for: None,
        }
    }

    fn checks(since: chrono::DateTime<Utc>) -> LatestChecks {
        LatestChecks {
            agent: "GL-009".into(),
            latest: Latest::default(),
            since,
            grace: Duration::from_millis(200),
            baselines: BTreeMap::from([("latency_p95".to_string(), 2.0)]),
            stop: CancellationToken::new(),
        }
    }

    fn set(c: &LatestChecks, signal: &str, at: chrono::DateTime<Utc>, value: Option<f64>) {
        c.latest
            .write()
            .expect("lock")
            .set(&c.agent, signal, at, value);
    }

    #[tokio::test]
    async fn a_baseline_relative_check_compares_with_the_deploys_baseline() {
        let since = Utc::now();
        let c = checks(since);
        let relative = Condition {
            relative_to_baseline: true,
            ..below("latency_p95", 1.5)
        };
        set(
            &c,
            "latency_p95",
            since + chrono::TimeDelta::seconds(1),
            Some(2.2),
        );
        let r = c.check(&relative).await;
        assert!(r.passed, "{}", r.detail);
        assert!(r.detail.contains("1.10x baseline 2"), "{}", r.detail);
        set(
            &c,
            "latency_p95",
            since + chrono::TimeDelta::seconds(2),
            Some(3.5),
        );
        let r = c.check(&relative).await;
        assert!(!r.passed, "1.75x baseline: {}", r.detail);
        let no_baseline = LatestChecks {
            baselines: BTreeMap::new(),
            ..c.clone()
        };
        assert!(matches!(
            no_baseline.verdict_now(&relative),
            Verdict::NoData(_)
        ));
    }

    #[tokio::test]
    async fn a_checks_for_must_be_held_by_the_readings() {
        let since = Utc::now();
        let c = checks(since);
        let ms = chrono::TimeDelta::milliseconds;
        let held = Condition {
            held_for: Some(chrono::TimeDelta::seconds(1)),
            ..below("error_rate", 0.01)
        };
        // one good reading, then nothing: not held for 1 s
        set(&c, "error_rate", since + ms(100), Some(0.001));
        let r = c.check(&held).await;
        assert!(!r.passed, "{}", r.detail);
        assert!(
            r.detail.contains("held only 0s of the required 1s"),
            "{}",
            r.detail
        );
        // good readings every 100 ms for 1.5 s: held
        let writer = {
            let c = c.clone();
            tokio::spawn(async move {
                for k in 2..=17 {
                    set(&c, "error_rate", since + ms(100 * k), Some(0.002));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let r = c.check(&held).await;
        writer.abort();
        assert!(r.passed, "{}", r.detail);
    }
}
