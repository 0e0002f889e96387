//! The validated policy: what the engine, the executor and the notifiers read. Every
//! reference in it (signal, method, workload, row) is known to resolve.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::TimeDelta;
use serde::Serialize;

/// One agent's runbook, validated. The sections a fleet of look-alike policies repeats
/// (signals, matrix, guards, methods, verification, templates) are shared behind `Arc`s:
/// clones share them, and [`super::load_all`] shares identical sections between files.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// File the policy was loaded from (for messages).
    pub source: PathBuf,
    pub agent: Agent,
    pub window: Window,
    pub workloads: Vec<Workload>,
    pub signals: Arc<BTreeMap<String, Signal>>,
    /// Decision matrix rows in precedence order: the first matching row wins.
    pub matrix: Arc<Vec<Row>>,
    pub guards: Arc<Vec<Guard>>,
    pub methods: Arc<BTreeMap<String, Method>>,
    pub verification: Arc<Verification>,
    pub notify: Notify,
}

impl Policy {
    /// The workload whose new revisions open the post-deploy window.
    pub fn primary_workload(&self) -> Option<&Workload> {
        self.workloads
            .iter()
            .find(|w| w.role == WorkloadRole::Primary)
    }

    /// A workload by its policy id.
    pub fn workload(&self, id: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.id == id)
    }

    /// A matrix row by id.
    pub fn row(&self, id: &str) -> Option<&Row> {
        self.matrix.iter().find(|r| r.id == id)
    }

    /// How old a sample before the deploy may be to stand for `signal`'s pre-deploy value.
    pub fn pre_deploy_max_age(&self, signal: &str) -> TimeDelta {
        self.signals
            .get(signal)
            .map_or(self.window.stale_after, |s| {
                s.pre_deploy_max_age(self.window.stale_after)
            })
    }

    /// How much of a signal's history decisions can read: its longest `for` (in the
    /// matrix, the guards and the verification checks) or its baseline lookback, whichever
    /// is longer. (Pruning also keeps the one sample before that, the value current then.)
    pub fn sample_retention(&self, signal: &str) -> TimeDelta {
        let conditions = self
            .matrix
            .iter()
            .flat_map(|r| &r.when)
            .chain(self.guards.iter().flat_map(|g| &g.when))
            .chain(&self.verification.checks);
        let held = conditions
            .filter(|c| c.signal == signal)
            .filter_map(|c| c.held_for)
            .max()
            .unwrap_or_default();
        let lookback = self
            .signals
            .get(signal)
            .and_then(|s| s.baseline)
            .unwrap_or_default();
        held.max(lookback)
    }
}

/// The agent a runbook is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agent {
    /// e.g. `GL-002`; alerts name the agent by this id.
    pub id: String,
    pub name: String,
    /// The runbook this policy encodes.
    pub runbook: Option<String>,
}

/// The post-deploy window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// How long after a deploy rows with `window = "inside"` apply.
    pub duration: TimeDelta,
    /// Past this deploy age nothing is rolled back: the runbook says fix forward.
    pub fix_forward_after: Option<TimeDelta>,
    /// A sample older than this is no data.
    pub stale_after: TimeDelta,
    /// An alert counts against a deploy only if it started at least this long after it
    /// (default 0s: after the deploy). Alerts that started earlier are pre-existing.
    pub alert_grace: TimeDelta,
    /// A condition that already held before the deploy counts against it only once its value
    /// is this many times worse than before the deploy (default 2).
    pub worsened_factor: f64,
}

impl Window {
    /// How long after a deploy the daemon keeps evaluating.
    pub fn horizon(&self) -> TimeDelta {
        self.fix_forward_after.unwrap_or(self.duration)
    }
}

/// What kind of object a workload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// argoproj.io/v1alpha1 Rollout.
    Rollout,
}

/// Whether a workload is watched or only acted upon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadRole {
    /// Watched: its new revisions open windows.
    Primary,
    /// Rolled back only as part of a coordinated method.
    Coordinated,
}

/// A Kubernetes workload the policy names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    pub id: String,
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub container: Option<String>,
    pub role: WorkloadRole,
    /// The agent's own `/metrics`, for direct scrape.
    pub metrics_url: Option<String>,
    /// ConfigMaps snapshotted when a deploy is first seen.
    pub configmaps: Vec<String>,
}

/// A named input to the decision matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub name: String,
    pub description: Option<String>,
    pub unit: Unit,
    pub source: SignalSource,
    /// Lookback before the deploy from which the baseline is taken.
    pub baseline: Option<TimeDelta>,
    /// The policy's `range`: how far back one value reaches, when the PromQL does not say
    /// (see [`Signal::range`]).
    pub range: Option<TimeDelta>,
    /// The series only reads the current revision (e.g. selected by pod-template-hash, or
    /// kube counters of the new pods): it is never pre-deploy data.
    pub per_revision: bool,
}

impl Signal {
    /// How far back one value reaches (`rate(x[5m])` → 5m): for that long after a deploy the
    /// value still reads pre-deploy data. The policy's `range`, else the PromQL's longest
    /// range selector.
    pub fn range(&self) -> Option<TimeDelta> {
        self.range.or_else(|| match &self.source {
            SignalSource::Metric {
                promql: Some(q), ..
            } => crate::policy::validate::promql_range(q),
            _ => None,
        })
    }

    /// How old a sample before the deploy may be and still say what the signal read at the
    /// deploy: `stale_after`, or the signal's range when longer (a value over the last hour
    /// changes little in ten minutes).
    pub fn pre_deploy_max_age(&self, stale_after: TimeDelta) -> TimeDelta {
        self.range().map_or(stale_after, |r| r.max(stale_after))
    }

    /// Whether a value of this signal can carry a condition from before the deploy: metric
    /// signals not marked per-revision, alerts, and kube state other than the counters of
    /// the new revision's pods (restarts, OOM kills).
    pub fn can_predate_deploy(&self) -> bool {
        !self.per_revision
            && !matches!(
                self.source,
                SignalSource::Kube(KubeSignal::Restarts | KubeSignal::OomKills)
            )
    }
}

/// The unit a signal's value is in (for display).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Fraction 0–1, shown as a percentage.
    Ratio,
    Seconds,
    Count,
    /// 0 or 1.
    Bool,
}

/// Where a signal's samples come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalSource {
    /// A metric: PromQL when Prometheus is configured, direct scrape otherwise.
    Metric {
        promql: Option<String>,
        scrape: Option<ScrapeSpec>,
    },
    /// Derived from the watched workload's state.
    Kube(KubeSignal),
    /// 1 while an Alertmanager alert with these labels is firing, else 0.
    Alert { labels: BTreeMap<String, String> },
}

/// How to compute a signal from two scrapes of `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub enum ScrapeSpec {
    Ratio {
        numerator: String,
        denominator: String,
    },
    Quantile {
        histogram: String,
        quantile: f64,
    },
    Gauge(String),
    Rate(String),
}

/// Kubernetes-derived signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KubeSignal {
    Restarts,
    OomKills,
    CrashloopingPods,
    ImagePullBackoff,
    AvailableReplicas,
    RolloutStalled,
}

impl KubeSignal {
    /// All kube signals with their policy spelling.
    pub const ALL: [(&'static str, KubeSignal); 6] = [
        ("restarts", KubeSignal::Restarts),
        ("oom_kills", KubeSignal::OomKills),
        ("crashlooping_pods", KubeSignal::CrashloopingPods),
        ("image_pull_backoff", KubeSignal::ImagePullBackoff),
        ("available_replicas", KubeSignal::AvailableReplicas),
        ("rollout_stalled", KubeSignal::RolloutStalled),
    ];
}

/// One bound of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

/// A test on one signal: `lower < value < upper`, optionally as a multiple of the
/// baseline, optionally required to hold for a duration.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub signal: String,
    pub lower: Option<Bound>,
    pub upper: Option<Bound>,
    pub equals: Option<f64>,
    /// Compare `value / baseline` instead of `value`.
    pub relative_to_baseline: bool,
    /// The condition must have held continuously this long.
    pub held_for: Option<TimeDelta>,
}

impl Condition {
    /// Whether a (possibly baseline-relative) value passes the thresholds.
    pub fn accepts(&self, compared: f64) -> bool {
        let lower_ok = self.lower.is_none_or(|b| {
            if b.inclusive {
                compared >= b.value
            } else {
                compared > b.value
            }
        });
        let upper_ok = self.upper.is_none_or(|b| {
            if b.inclusive {
                compared <= b.value
            } else {
                compared < b.value
            }
        });
        let equals_ok = self.equals.is_none_or(|v| compared == v);
        lower_ok && upper_ok && equals_ok
    }

    /// The thresholds as text, e.g. `> 0.2 and <= 0.5` or `> 2x baseline`.
    pub fn describe_thresholds(&self) -> String {
        let suffix = if self.relative_to_baseline {
            "x baseline"
        } else {
            ""
        };
        let mut parts = Vec::new();
        if let Some(b) = self.lower {
            let op = if b.inclusive { ">=" } else { ">" };
            parts.push(format!("{op} {}{suffix}", b.value));
        }
        if let Some(b) = self.upper {
            let op = if b.inclusive { "<=" } else { "<" };
            parts.push(format!("{op} {}{suffix}", b.value));
        }
        if let Some(v) = self.equals {
            parts.push(format!("== {v}{suffix}"));
        }
        parts.join(" and ")
    }
}

/// What the runbook says to do when a row matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Fix forward / no action.
    None,
    /// Tell a human; do not act.
    Notify,
    /// Roll back once a human approves.
    RollbackAfterApproval,
    /// Roll back unattended.
    Rollback,
}

/// Which deploy ages a row applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowWindow {
    /// Only while the deploy is younger than the window.
    Inside,
    /// Only once the window has passed.
    Outside,
    /// At any age (until `fix_forward_after`).
    Any,
}

/// One row of the decision matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    /// The runbook's own severity name (P0, Severity 1, Immediate…).
    pub severity: String,
    /// The runbook section and words this row encodes.
    pub section: Option<String>,
    pub when: Vec<Condition>,
    pub window: RowWindow,
    /// Tighter bound on the deploy age than the window, e.g. GL-001's 2 h for heat loss.
    pub within: Option<TimeDelta>,
    pub action: Action,
    pub method: Option<String>,
    /// The runbook's deadline for acting ("<5 min").
    pub deadline: Option<TimeDelta>,
    /// Who must approve a `rollback_after_approval` row.
    pub approver: Option<String>,
}

/// Whether a guard also stops rollbacks a human approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardScope {
    /// Blocks unattended rollbacks only; an approver may proceed.
    Unattended,
    /// Blocks every automatic rollback, approved or not.
    Always,
}

/// A "do NOT roll back" rule: when its conditions hold (or cannot be evaluated), an
/// automatic rollback is blocked and a human is told.
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    pub id: String,
    pub description: String,
    pub when: Vec<Condition>,
    pub scope: GuardScope,
    /// Rows it applies to; `None` = every row.
    pub rows: Option<Vec<String>>,
}

impl Guard {
    /// Whether this guard applies to a row.
    pub fn applies_to(&self, row: &str) -> bool {
        self.rows
            .as_ref()
            .is_none_or(|rows| rows.iter().any(|r| r == row))
    }
}

/// A named rollback method: ordered steps, stopping at the first failure.
#[derive(Debug, Clone, PartialEq)]
pub struct Method {
    pub name: String,
    pub description: Option<String>,
    /// The runbook's estimate, used as the ETA in messages.
    pub eta: Option<TimeDelta>,
    pub steps: Vec<Step>,
}

/// One step; with several workloads it runs on them in parallel.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub workloads: Vec<String>,
    pub container: Option<String>,
    pub timeout: Option<TimeDelta>,
    pub action: StepAction,
}

/// A revision to go back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevisionRef {
    /// The revision before the current one (kubectl's default).
    Previous,
    /// The newest earlier revision that passed verification.
    LastKnownGood,
    /// A fixed revision number.
    Revision(u64),
}

/// An image to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageRef {
    Previous,
    LastKnownGood,
    Literal(String),
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepAction {
    Undo(RevisionRef),
    SetImage(ImageRef),
    Restart,
    /// `None` restores the replica count remembered before scaling.
    Scale(Option<u32>),
    SwitchService {
        service: String,
        selector: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    RestoreConfigMap(String),
    PatchConfigMap {
        name: String,
        data: BTreeMap<String, String>,
    },
    ArgoAbort,
    ArgoUndo(RevisionRef),
    Http {
        method: String,
        url: String,
        body: Option<serde_json::Value>,
        expect_status: u16,
    },
    Job {
        name: String,
        image: String,
        command: Vec<String>,
    },
    WaitRollout,
    Wait(TimeDelta),
}

impl StepAction {
    /// The step kind as spelled in policies.
    pub fn kind(&self) -> &'static str {
        match self {
            StepAction::Undo(_) => "undo",
            StepAction::SetImage(_) => "set_image",
            StepAction::Restart => "restart",
            StepAction::Scale(_) => "scale",
            StepAction::SwitchService { .. } => "switch_service",
            StepAction::RestoreConfigMap(_) => "restore_configmap",
            StepAction::PatchConfigMap { .. } => "patch_configmap",
            StepAction::ArgoAbort => "argo_abort",
            StepAction::ArgoUndo(_) => "argo_undo",
            StepAction::Http { .. } => "http",
            StepAction::Job { .. } => "job",
            StepAction::WaitRollout => "wait_rollout",
            StepAction::Wait(_) => "wait",
        }
    }

    /// Whether the step changes the cluster or the outside world.
    pub fn is_mutating(&self) -> bool {
        !matches!(self, StepAction::WaitRollout | StepAction::Wait(_))
    }
}

/// How recovery is checked after a rollback.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    pub rollout_timeout: TimeDelta,
    /// Pods must stay Ready with no new restarts this long.
    pub ready_hold: TimeDelta,
    pub health: Option<HealthCheck>,
    /// Conditions that must hold after the rollback (e.g. error rate < 1 %).
    pub checks: Vec<Condition>,
    /// The runbook's post-rollback watch before the incident is resolved.
    pub watch: TimeDelta,
    /// Method run once when verification fails, before escalating.
    pub recovery: Option<String>,
}

/// An HTTP health endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub url: String,
    pub expect_status: u16,
}

/// Who is told, and in which words.
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    pub slack_channel: Option<String>,
    /// Prefix for severe messages, e.g. `@here`.
    pub mention: Option<String>,
    pub status_url: Option<String>,
    pub statuspage: Option<Statuspage>,
    pub templates: Arc<BTreeMap<Stage, String>>,
}

/// An Atlassian Statuspage page and component.
#[derive(Debug, Clone, PartialEq)]
pub struct Statuspage {
    pub page_id: String,
    pub component_id: String,
}

/// The moments an incident is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Initiated,
    InProgress,
    Complete,
    Failed,
    Resolved,
    AwaitingApproval,
    Blocked,
    Inconclusive,
    /// A `notify` row matched: told, no action.
    Notice,
    /// The incident ended without a rollback: a newer deploy replaced its revision, or the
    /// deploy is past `fix_forward_after` (`{error}` says which).
    Superseded,
    /// A human cancelled or paused a rollback in flight (`{error}` says who, and after
    /// which step).
    Stopped,
    /// A rollback row holds, but its condition was there before the deploy: told, no action.
    Preexisting,
    /// A rollback row stayed undecidable past its runbook deadline: a human must decide now.
    Escalated,
    /// A rollback held by a pause continues from its journal (`{error}` says from where).
    Continued,
}

impl Stage {
    /// Every stage with its policy spelling.
    pub const ALL: [(&'static str, Stage); 14] = [
        ("initiated", Stage::Initiated),
        ("in_progress", Stage::InProgress),
        ("complete", Stage::Complete),
        ("failed", Stage::Failed),
        ("resolved", Stage::Resolved),
        ("awaiting_approval", Stage::AwaitingApproval),
        ("blocked", Stage::Blocked),
        ("inconclusive", Stage::Inconclusive),
        ("notice", Stage::Notice),
        ("superseded", Stage::Superseded),
        ("stopped", Stage::Stopped),
        ("preexisting", Stage::Preexisting),
        ("escalated", Stage::Escalated),
        ("continued", Stage::Continued),
    ];
}

#[cfg(test)]
mod tests {
    #[test]
    fn sample_retention_is_the_longest_for_or_baseline_lookback() {
        let p = crate::policy::load_file(&crate::policy::seed_policy("gl-009.toml")).unwrap();
        // latency_p95 has a 1 h baseline lookback; crashlooping_pods a 1 m `for`;
        // service_outage neither
        assert_eq!(
            p.sample_retention("latency_p95"),
            chrono::TimeDelta::hours(1)
        );
        assert_eq!(
            p.sample_retention("crashlooping_pods"),
            chrono::TimeDelta::minutes(1)
        );
        assert_eq!(
            p.sample_retention("service_outage"),
            chrono::TimeDelta::zero()
        );
    }
}
