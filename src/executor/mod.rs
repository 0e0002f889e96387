//! The method executor: runs a method's steps in order (a step's workloads in parallel),
//! stops at the first failure, journals every step so a restarted daemon resumes without
//! running any step twice, and backs up the workloads before the first mutation.

pub mod context;
pub mod journal;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde::Serialize;
use serde_json::{Value, json};

use crate::cluster::annotate::{
    ActionMeta, ActionOutcome, LastAction, applied_steps, step_applied,
};
use crate::cluster::backup::{BackupSink, backup_workloads};
use crate::cluster::history::load;
use crate::cluster::{
    Cluster, ClusterError, Kind, argo, configmap, http_step, image, job, restart,
};
use crate::cluster::{rollout_status, scale, service, undo};
pub use context::{IncidentRevision, RunContext};
pub use journal::{JournalError, MemoryJournal, StepJournal, StepRecord};
use rollbackd_core::policy::{Method, Step, StepAction, Workload};

/// Errors that stop a run before or between steps (a failing step is reported in the
/// [`MethodOutcome`], not here).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A step names a workload the policy does not define.
    #[error("step {step:?} names unknown workload {workload:?}")]
    UnknownWorkload {
        /// Step name.
        step: String,
        /// Workload id.
        workload: String,
    },
    /// The policy has no primary workload and a step relies on it.
    #[error("step {0:?} has no workload and the policy has no primary workload")]
    NoWorkload(String),
    /// The journal could not be written: the run stops rather than risk repeating steps.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The pre-rollback backup failed: nothing was mutated.
    #[error("pre-rollback backup failed, nothing was changed: {0}")]
    Backup(ClusterError),
    /// This replica lost the right to write (the Lease's fence): the run stops, the step
    /// stays unfinished in the journal for the new leader.
    #[error("{0}")]
    Fenced(ClusterError),
}

impl ExecError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ExecError::UnknownWorkload { .. } => "unknown_workload",
            ExecError::NoWorkload(_) => "no_workload",
            ExecError::Journal(_) => "journal",
            ExecError::Backup(_) => "backup",
            ExecError::Fenced(_) => "fenced",
        }
    }
}

/// How one step ended on one workload.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "state", content = "value", rename_all = "snake_case")]
pub enum StepState {
    /// Applied (or found applied on resume).
    Done,
    /// Nothing to do.
    Skipped(String),
    /// Failed, with the error.
    Failed(String),
    /// Not run because an earlier step failed or the run was cancelled.
    NotRun,
    /// Dry run: the plan.
    DryRun(Value),
}

/// One step on one workload.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StepOutcome {
    /// Step index in the method.
    pub index: usize,
    /// Step name.
    pub name: String,
    /// Workload id.
    pub workload: String,
    /// Step kind (`undo`, `set_image`, …).
    pub kind: String,
    /// How it ended.
    pub state: StepState,
    /// When it started (`None` when not run).
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Step-specific detail (revisions, images, logs, HTTP status, error label…).
    pub detail: Value,
}

/// The outcome of a method run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodOutcome {
    /// Method name.
    pub method: String,
    /// One entry per step and workload, in order.
    pub steps: Vec<StepOutcome>,
    /// Whether the run was cancelled.
    pub cancelled: bool,
}

impl MethodOutcome {
    /// Whether every step was done, skipped or planned.
    pub fn succeeded(&self) -> bool {
        !self.cancelled
            && self
                .steps
                .iter()
                .all(|s| !matches!(s.state, StepState::Failed(_) | StepState::NotRun))
    }

    /// The first failed step.
    pub fn failure(&self) -> Option<&StepOutcome> {
        self.steps
            .iter()
            .find(|s| matches!(s.state, StepState::Failed(_)))
    }
}

/// Runs methods against the cluster.
#[derive(Clone)]
pub struct Executor {
    cluster: Cluster,
    backup: Arc<dyn BackupSink>,
    http: reqwest::Client,
}

/// Per-run state shared by steps: the revision each workload is being rolled back to.
#[derive(Default)]
struct RunState {
    targets: Mutex<BTreeMap<String, u64>>,
    backed_up: Mutex<bool>,
}

const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(300);

fn to_std(d: Option<chrono::TimeDelta>, default: Duration) -> Duration {
    d.and_then(|d| d.to_std().ok()).unwrap_or(default)
}

impl Executor {
    /// An executor writing backups to `backup`.
    pub fn new(cluster: Cluster, backup: Arc<dyn BackupSink>) -> Self {
        Executor {
            cluster,
            backup,
            http: reqwest::Client::new(),
        }
    }

    /// The cluster handle.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The key steps are journaled under: `<incident>/<method>`.
    pub fn journal_key(ctx: &RunContext, method: &Method) -> String {
        format!("{}/{}", ctx.incident_id, method.name)
    }

    /// Runs `method`: steps in order, a step's workloads in parallel, stopping at the first
    /// failure (later steps are `NotRun`). Steps the journal records as finished are not run
    /// again; a step recorded as started is first checked against rollbackd's annotation.
    pub async fn run(
        &self,
        ctx: &RunContext,
        method: &Method,
        journal: &dyn StepJournal,
    ) -> Result<MethodOutcome, ExecError> {
        let policy = &ctx.policy;
        let mut plan: Vec<Vec<&Workload>> = Vec::new();
        for step in &method.steps {
            let mut ws = Vec::new();
            if step.workloads.is_empty() {
                ws.push(
                    policy
                        .primary_workload()
                        .ok_or_else(|| ExecError::NoWorkload(step.name.clone()))?,
                );
            }
            for id in &step.workloads {
                ws.push(
                    policy
                        .workload(id)
                        .ok_or_else(|| ExecError::UnknownWorkload {
                            step: step.name.clone(),
                            workload: id.clone(),
                        })?,
                );
            }
            plan.push(ws);
        }
        let key = Self::journal_key(ctx, method);
        let state = RunState::default();
        let mut out = MethodOutcome {
            method: method.name.clone(),
            steps: Vec::new(),
            cancelled: false,
        };
        let mut stopped = false;
        for (index, (step, ws)) in method.steps.iter().zip(&plan).enumerate() {
            // a step boundary: a cancel, a pause or shutdown stops the run here
            if !stopped && ctx.stopping() {
                out.cancelled = true;
                stopped = true;
            }
            if stopped {
                out.steps
                    .extend(ws.iter().map(|w| not_run(index, step, &w.id)));
                continue;
            }
            if step.action.is_mutating() && !ctx.dry_run {
                let mut pending = false;
                for w in ws {
                    let record = journal.status(&key, index, &w.id).await;
                    if record.is_none_or(|r| r.outcome.is_none()) {
                        pending = true;
                        break;
                    }
                }
                if pending {
                    self.backup_once(ctx, &plan, &state).await?;
                }
            }
            let results = join_all(
                ws.iter()
                    .map(|w| self.run_one(ctx, method, &key, index, step, w, journal, &state)),
            )
            .await;
            for r in results {
                let r = r?;
                if matches!(r.state, StepState::Failed(_)) {
                    stopped = true;
                }
                if ctx.cancel.is_cancelled() {
                    out.cancelled = true;
                }
                out.steps.push(r);
            }
        }
        Ok(out)
    }

    async fn backup_once(
        &self,
        ctx: &RunContext,
        plan: &[Vec<&Workload>],
        state: &RunState,
    ) -> Result<(), ExecError> {
        if *state.backed_up.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(());
        }
        let mut all: Vec<&Workload> = Vec::new();
        for w in plan.iter().flatten() {
            if !all.iter().any(|x| x.id == w.id) {
                all.push(w);
            }
        }
        backup_workloads(&self.cluster, self.backup.as_ref(), &ctx.incident_id, &all)
            .await
            .map_err(ExecError::Backup)?;
        *state.backed_up.lock().unwrap_or_else(|e| e.into_inner()) = true;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_one(
        &self,
        ctx: &RunContext,
        method: &Method,
        key: &str,
        index: usize,
        step: &Step,
        w: &Workload,
        journal: &dyn StepJournal,
        state: &RunState,
    ) -> Result<StepOutcome, ExecError> {
        let meta = ActionMeta {
            incident: ctx.incident_id.clone(),
            method: method.name.clone(),
            step: step.name.clone(),
            step_index: index,
            reason: ctx.reason.clone(),
            dry_run: ctx.dry_run,
            expected_revision: ctx.expected_revision(&w.id),
        };
        if !ctx.dry_run {
            let rec = journal.status(key, index, &w.id).await;
            if let Some(done) = rec.as_ref().and_then(|r| r.outcome.clone()) {
                tracing::info!(step = %step.name, workload = %w.id, "step already finished, not run again");
                return Ok(done);
            }
            // Started but not finished (or not journaled at all, e.g. a lost journal): the
            // cluster decides. rollbackd's annotation naming this step means it was applied.
            if let Some(found) = self.already_applied(w, step, &meta).await {
                let outcome = StepOutcome {
                    index,
                    name: step.name.clone(),
                    workload: w.id.clone(),
                    kind: step.action.kind().to_string(),
                    state: StepState::Done,
                    started_at: Some(rec.map_or_else(Utc::now, |r| r.started_at)),
                    finished_at: Some(Utc::now()),
                    detail: json!({"resumed": "rollbackd's annotation shows this step was applied", "record": found}),
                };
                journal.finished(key, index, &w.id, &outcome).await?;
                return Ok(outcome);
            }
        }
        let started_at = Utc::now();
        if !ctx.dry_run {
            journal.started(key, index, &w.id, started_at).await?;
        }
        let result = self.action(ctx, step, w, &meta, state).await;
        if let Err(e @ ClusterError::Fenced(_)) = result {
            // not a failure of the step: this replica may not write any more. The step stays
            // "started": the new leader checks it against the cluster before running it.
            tracing::warn!(step = %step.name, workload = %w.id, error = %e, "step not run");
            return Err(ExecError::Fenced(e));
        }
        let cancelled = matches!(result, Err(ClusterError::Cancelled));
        let (st, detail) = match result {
            Ok(ActionOutcome::Done { detail }) => (StepState::Done, detail),
            Ok(ActionOutcome::Skipped { reason, detail }) => (StepState::Skipped(reason), detail),
            Ok(ActionOutcome::Planned { plan }) => (StepState::DryRun(plan.clone()), plan),
            Err(e) => {
                let mut detail = json!({"error": e.to_string(), "label": e.metric_label()});
                if let ClusterError::JobFailed { logs, .. } = &e {
                    detail["logs"] = json!(logs);
                }
                tracing::warn!(step = %step.name, workload = %w.id, error = %e, "step failed");
                (StepState::Failed(e.to_string()), detail)
            }
        };
        let outcome = StepOutcome {
            index,
            name: step.name.clone(),
            workload: w.id.clone(),
            kind: step.action.kind().to_string(),
            state: st,
            started_at: Some(started_at),
            finished_at: Some(Utc::now()),
            detail,
        };
        // A cancelled step stays "started" in the journal: a resumed run re-checks it
        // against the cluster instead of reporting a failure that did not happen.
        if !ctx.dry_run && !cancelled {
            journal.finished(key, index, &w.id, &outcome).await?;
        }
        Ok(outcome)
    }

    /// For a step not journaled as finished: whether rollbackd's annotation on the object it
    /// changes records this incident's step (then it must not run again): the last action,
    /// or the object's list of applied steps.
    async fn already_applied(&self, w: &Workload, step: &Step, meta: &ActionMeta) -> Option<Value> {
        let (kind, ns, name) = match &step.action {
            StepAction::Undo(_)
            | StepAction::SetImage(_)
            | StepAction::Restart
            | StepAction::Scale(_)
            | StepAction::ArgoAbort
            | StepAction::ArgoUndo(_) => (Kind::of(w), w.namespace.as_str(), w.name.clone()),
            StepAction::PatchConfigMap { name, .. } | StepAction::RestoreConfigMap(name) => {
                (Kind::ConfigMap, w.namespace.as_str(), name.clone())
            }
            StepAction::SwitchService { service, .. } => {
                (Kind::Service, w.namespace.as_str(), service.clone())
            }
            _ => return None,
        };
        let obj = self.cluster.get_opt(kind, ns, &name).await.ok()??;
        if !step_applied(&obj, &meta.incident, &meta.method, meta.step_index) {
            return None;
        }
        Some(json!({
            "last_action": LastAction::read(&obj),
            "applied_steps": applied_steps(&obj),
        }))
    }

    async fn action(
        &self,
        ctx: &RunContext,
        step: &Step,
        w: &Workload,
        meta: &ActionMeta,
        state: &RunState,
    ) -> Result<ActionOutcome, ClusterError> {
        let c = &self.cluster;
        let timeout = to_std(step.timeout, DEFAULT_STEP_TIMEOUT);
        match &step.action {
            StepAction::Undo(to) => {
                let (u, o) = undo::undo(c, w, *to, meta).await?;
                remember(state, w, u.to_revision);
                Ok(o)
            }
            StepAction::ArgoUndo(to) => {
                let (u, o) = argo::argo_undo(c, w, *to, meta).await?;
                remember(state, w, u.to_revision);
                Ok(o)
            }
            StepAction::SetImage(img) => {
                let o = image::set_image(c, w, step.container.as_deref(), img, meta).await?;
                if let Some(r) = o.detail()["to_revision"].as_u64() {
                    remember(state, w, r);
                }
                Ok(o)
            }
            StepAction::Restart => restart::restart(c, w, meta).await,
            StepAction::Scale(n) => scale::scale(c, w, *n, meta).await,
            StepAction::SwitchService {
                service: svc,
                selector,
                remove,
            } => service::switch_service(c, &w.namespace, svc, selector, remove, meta).await,
            StepAction::PatchConfigMap { name, data } => {
                configmap::patch_configmap(c, &w.namespace, name, data, meta).await
            }
            StepAction::RestoreConfigMap(name) => {
                let rev = self.restore_target(w, meta, state).await?;
                configmap::restore_configmap(c, &w.namespace, name, rev, meta).await
            }
            StepAction::ArgoAbort => argo::argo_abort(c, w, meta).await,
            StepAction::Http {
                method,
                url,
                body,
                expect_status,
            } => {
                http_step::http_call(
                    &self.http,
                    method,
                    url,
                    body.as_ref(),
                    *expect_status,
                    &ctx.vars,
                    to_std(step.timeout, Duration::from_secs(30)),
                    meta,
                )
                .await
            }
            StepAction::Job {
                name,
                image: img,
                command,
            } => {
                job::run_job(
                    c,
                    &w.namespace,
                    name,
                    img,
                    command,
                    timeout,
                    &ctx.cancel,
                    meta,
                )
                .await
            }
            StepAction::WaitRollout => {
                if ctx.dry_run {
                    return Ok(ActionOutcome::Planned {
                        plan: json!({"wait_rollout": w.id, "timeout_seconds": timeout.as_secs()}),
                    });
                }
                let t = to_std(
                    step.timeout,
                    to_std(
                        Some(ctx.policy.verification.rollout_timeout),
                        DEFAULT_STEP_TIMEOUT,
                    ),
                );
                let detail = rollout_status::wait_rollout(c, w, t, &ctx.cancel).await?;
                Ok(ActionOutcome::Done { detail })
            }
            StepAction::Wait(d) => {
                let d = to_std(Some(*d), Duration::ZERO);
                if ctx.dry_run {
                    return Ok(ActionOutcome::Planned {
                        plan: json!({"wait_seconds": d.as_secs_f64()}),
                    });
                }
                tokio::select! {
                    _ = ctx.cancel.cancelled() => Err(ClusterError::Cancelled),
                    _ = tokio::time::sleep(d) => Ok(ActionOutcome::Done { detail: json!({"waited_seconds": d.as_secs_f64()}) }),
                }
            }
        }
    }

    /// The revision whose ConfigMap snapshot a `restore_configmap` restores: the revision
    /// this run rolled the workload back to, else the one rollbackd's annotation records for
    /// this incident (resume), else the workload's previous revision (the undo target).
    async fn restore_target(
        &self,
        w: &Workload,
        meta: &ActionMeta,
        state: &RunState,
    ) -> Result<u64, ClusterError> {
        if let Some(r) = state
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&w.id)
        {
            return Ok(*r);
        }
        let (owner, history) = load(&self.cluster, w).await?;
        if let Some(rec) = LastAction::read(&owner)
            && rec.incident == meta.incident
            && let Some(r) = rec.to_revision
        {
            return Ok(r);
        }
        // the revision an undo to "previous" would pick: never one rolled back as bad
        history
            .resolve_safe(rollbackd_core::policy::RevisionRef::Previous)
            .map(|t| t.revision.number)
    }
}

fn remember(state: &RunState, w: &Workload, revision: u64) {
    state
        .targets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(w.id.clone(), revision);
}

fn not_run(index: usize, step: &Step, workload: &str) -> StepOutcome {
    StepOutcome {
        index,
        name: step.name.clone(),
        workload: workload.to_string(),
        kind: step.action.kind().to_string(),
        state: StepState::NotRun,
        started_at: None,
        finished_at: None,
        detail: Value::Null,
    }
}
