//! The validated policy: what the engine, the executor and the notifiers read. Every
//! reference in it (signal, method, workload, row) is known to resolve.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

/// One agent's runbook, validated. The sections a fleet of look-alike policies repeats
/// (signals, matrix, guards, methods, verification, templates) are shared behind `Arc`s:
/// clones share them, and [`super::load_all`] shares identical sections between files.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// File the policy was loaded from (for messages).
    pub source: PathBuf,
    /// The runbook's agent (`[agent]`).
    pub agent: Agent,
    /// The post-deploy window and its timing rules (`[window]`).
    pub window: Window,
    /// The workloads the policy names (`[[workloads]]`); exactly one is primary.
    pub workloads: Vec<Workload>,
    /// Signals by name (`[signals.NAME]`).
    pub signals: Arc<BTreeMap<String, Signal>>,
    /// Decision matrix rows in precedence order: the first matching row wins.
    pub matrix: Arc<Vec<Row>>,
    /// "Do not roll back" rules (`[[guards]]`), checked before any automatic rollback.
    pub guards: Arc<Vec<Guard>>,
    /// Rollback methods by name (`[methods.NAME]`).
    pub methods: Arc<BTreeMap<String, Method>>,
    /// How recovery is checked after a rollback (`[verification]`).
    pub verification: Arc<Verification>,
    /// Who is told and in which words (`[notify]`).
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

    /// Who may press the Slack buttons of an incident of `row` (the row's own list, else
    /// the agent's); `None` = the agent's list (agent-wide actions: pause, resume).
    pub fn slack_approvers(&self, row: Option<&str>) -> &SlackApprovers {
        row.and_then(|id| self.row(id))
            .and_then(|r| r.slack_approvers.as_ref())
            .unwrap_or(&self.agent.slack_approvers)
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
    /// Human-readable agent name, e.g. `BoilerEfficiencyOptimizer`; used in messages.
    pub name: String,
    /// The runbook this policy encodes.
    pub runbook: Option<String>,
    /// Who may press the buttons of this agent's Slack messages (`slack_approvers`); a row
    /// may name others for its incidents ([`Row::slack_approvers`]).
    pub slack_approvers: SlackApprovers,
}

/// Slack users and user groups allowed to approve, reject, cancel, pause and resume from
/// Slack. Empty: nobody may (the buttons are refused).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SlackApprovers {
    /// User ids (`U…`, or `W…` on Enterprise Grid).
    pub users: Vec<String>,
    /// User-group ids (`S…`); membership is asked of Slack when a button is pressed.
    pub groups: Vec<String>,
}

impl SlackApprovers {
    /// Whether nobody is named.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The policy's id for the workload; steps' `workloads` refer to it.
    pub id: String,
    /// Deployment or Argo Rollout.
    pub kind: WorkloadKind,
    /// Kubernetes namespace.
    pub namespace: String,
    /// Kubernetes object name.
    pub name: String,
    /// Container that `set_image` acts on and versions are read from; `None` = the first
    /// container of the pod template.
    pub container: Option<String>,
    /// Primary (watched) or coordinated (only acted on by methods); default primary.
    pub role: WorkloadRole,
    /// The agent's own `/metrics`, for direct scrape.
    pub metrics_url: Option<String>,
    /// ConfigMaps snapshotted when a deploy is first seen.
    pub configmaps: Vec<String>,
}

/// A named input to the decision matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// The signal's name, the key of `[signals.NAME]`; conditions refer to it.
    pub name: String,
    /// Free text for humans (the policy's `description`).
    pub description: Option<String>,
    /// Unit for display; default `count`, `bool` for alert and `rollout_stalled` signals.
    pub unit: Unit,
    /// Where the values come from: a metric, kube state or an alert.
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
    /// Seconds (e.g. latencies).
    Seconds,
    /// A plain number (default).
    Count,
    /// 0 or 1.
    Bool,
}

/// Where a signal's samples come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalSource {
    /// A metric: PromQL when Prometheus is configured, direct scrape otherwise.
    Metric {
        /// PromQL query, used when Prometheus is configured.
        promql: Option<String>,
        /// How to compute the value from the agent's `/metrics`, used when no Prometheus is
        /// configured.
        scrape: Option<ScrapeSpec>,
    },
    /// Derived from the watched workload's state.
    Kube(KubeSignal),
    /// 1 while an Alertmanager alert with these labels is firing, else 0.
    Alert {
        /// Labels an alert must carry, each with this value (e.g. `condition`).
        labels: BTreeMap<String, String>,
    },
}

/// How to compute a signal from two scrapes of `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub enum ScrapeSpec {
    /// `ratio = [numerator, denominator]`: the numerator's increase over the denominator's
    /// between two scrapes.
    Ratio {
        /// Counter selector counted as the numerator (e.g. 5xx requests).
        numerator: String,
        /// Counter selector counted as the denominator (e.g. all requests).
        denominator: String,
    },
    /// `histogram` + `quantile`: a quantile of the histogram's bucket increases between two
    /// scrapes.
    Quantile {
        /// Histogram base name (without `_bucket`).
        histogram: String,
        /// The quantile, strictly between 0 and 1 (e.g. 0.95).
        quantile: f64,
    },
    /// `gauge`: the selected gauge's value, read as is.
    Gauge(String),
    /// `rate`: the selected counter's per-second rate between two scrapes.
    Rate(String),
}

/// Kubernetes-derived signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KubeSignal {
    /// `restarts`: container restarts of pods created since the deploy.
    Restarts,
    /// `oom_kills`: containers OOMKilled in pods created since the deploy.
    OomKills,
    /// `crashlooping_pods`: pods waiting in CrashLoopBackOff.
    CrashloopingPods,
    /// `image_pull_backoff`: pods waiting in ImagePullBackOff or ErrImagePull.
    ImagePullBackoff,
    /// `available_replicas`: the workload's `status.availableReplicas`.
    AvailableReplicas,
    /// `rollout_stalled`: 1 when the rollout exceeded its progress deadline, else 0.
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
    /// The threshold.
    pub value: f64,
    /// Whether a value equal to the threshold passes (`at_least`/`at_most`) or not
    /// (`above`/`below`).
    pub inclusive: bool,
}

/// A test on one signal: `lower < value < upper`, optionally as a multiple of the
/// baseline, optionally required to hold for a duration.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Name of the signal tested.
    pub signal: String,
    /// From `above` (exclusive) or `at_least` (inclusive); `None` = no lower bound.
    pub lower: Option<Bound>,
    /// From `below` (exclusive) or `at_most` (inclusive); `None` = no upper bound.
    pub upper: Option<Bound>,
    /// From `equals`: the value must be exactly this; never combined with bounds.
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
    /// Row id, unique in the policy; shown in decisions and messages.
    pub id: String,
    /// The runbook's own severity name (P0, Severity 1, Immediate…).
    pub severity: String,
    /// The runbook section and words this row encodes.
    pub section: Option<String>,
    /// Conditions that must all hold for the row to match.
    pub when: Vec<Condition>,
    /// Which deploy ages the row applies to (default `inside`).
    pub window: RowWindow,
    /// Tighter bound on the deploy age than the window, e.g. GL-001's 2 h for heat loss.
    pub within: Option<TimeDelta>,
    /// What to do when the row matches.
    pub action: Action,
    /// The method to run; required for `rollback` and `rollback_after_approval` rows.
    pub method: Option<String>,
    /// The runbook's deadline for acting ("<5 min").
    pub deadline: Option<TimeDelta>,
    /// Who must approve a `rollback_after_approval` row.
    pub approver: Option<String>,
    /// Who may press the Slack buttons of this row's incidents, instead of the agent's
    /// list; `None` = the agent's.
    pub slack_approvers: Option<SlackApprovers>,
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
    /// Guard id, unique in the policy; a blocked decision names it.
    pub id: String,
    /// The sentence told to humans when the guard blocks.
    pub description: String,
    /// Conditions that block when they all hold (or cannot be evaluated).
    pub when: Vec<Condition>,
    /// Whether an approval lifts the guard (default `unattended`).
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
    /// The method's name, the key of `[methods.NAME]`.
    pub name: String,
    /// Free text for humans (the policy's `description`).
    pub description: Option<String>,
    /// The runbook's estimate, used as the ETA in messages.
    pub eta: Option<TimeDelta>,
    /// Steps in order; the first failure stops the method.
    pub steps: Vec<Step>,
}

/// One step; with several workloads it runs on them in parallel.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Shown in the journal and messages; defaults to the action's kind (e.g. `undo`).
    pub name: String,
    /// Ids of the workloads the step acts on, in parallel (default: the primary workload).
    pub workloads: Vec<String>,
    /// Container for `set_image`; `None` = the workload's `container`, else the first container.
    pub container: Option<String>,
    /// Time limit of a `wait_rollout`, `job` or `http` step. `None` = the policy's
    /// `verification.rollout_timeout` for `wait_rollout`, 5 min for `job`, 30 s for `http`.
    pub timeout: Option<TimeDelta>,
    /// What the step does.
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
    /// The image of the revision before the current one.
    Previous,
    /// The image of the newest earlier revision that passed verification.
    LastKnownGood,
    /// This exact image reference, e.g. `repo/img:tag`.
    Literal(String),
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepAction {
    /// `undo`: `kubectl rollout undo` to this revision (Deployments only).
    Undo(RevisionRef),
    /// `set_image`: set the container's image.
    SetImage(ImageRef),
    /// `restart = true`: `kubectl rollout restart`.
    Restart,
    /// `None` restores the replica count remembered before scaling.
    Scale(Option<u32>),
    /// `switch_service`: patch a Service's selector (blue-green).
    SwitchService {
        /// Name of the Service, in the workload's namespace.
        service: String,
        /// Selector keys and values to set.
        selector: BTreeMap<String, String>,
        /// Selector keys to delete.
        remove: Vec<String>,
    },
    /// `restore_configmap`: restore this ConfigMap from the snapshot taken when the deploy
    /// was first seen.
    RestoreConfigMap(String),
    /// `patch_configmap`: set keys of a ConfigMap (feature flags, model versions).
    PatchConfigMap {
        /// Name of the ConfigMap, in the workload's namespace.
        name: String,
        /// Keys and values to set.
        data: BTreeMap<String, String>,
    },
    /// `argo_abort = true`: abort the Argo Rollout.
    ArgoAbort,
    /// `argo_undo`: undo the Argo Rollout to this revision.
    ArgoUndo(RevisionRef),
    /// `http`: call an HTTP endpoint (e.g. the agent's API).
    Http {
        /// HTTP method, upper case; default `POST`.
        method: String,
        /// `http://` or `https://` URL; `{label}` placeholders are filled percent-encoded.
        url: String,
        /// JSON body (the policy's `body`, parsed); `None` = no body.
        body: Option<serde_json::Value>,
        /// The status that counts as success; default 200.
        expect_status: u16,
    },
    /// `job`: run a Kubernetes Job to completion.
    Job {
        /// Name of the Job, in the workload's namespace.
        name: String,
        /// Container image the Job runs.
        image: String,
        /// Container command; empty = the image's entrypoint.
        command: Vec<String>,
    },
    /// `wait_rollout = true`: wait for the workload's rollout to complete.
    WaitRollout,
    /// `wait`: pause this long.
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
    /// How long the rollback's rollout may take to complete.
    pub rollout_timeout: TimeDelta,
    /// Pods must stay Ready with no new restarts this long.
    pub ready_hold: TimeDelta,
    /// An HTTP endpoint that must answer the expected status; `None` = no health check.
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
    /// `http://` or `https://` URL to request.
    pub url: String,
    /// The status that counts as healthy; default 200.
    pub expect_status: u16,
}

/// Who is told, and in which words.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notify {
    /// Slack channel for the Web API (`chat.postMessage`); unused with an incoming webhook.
    pub slack_channel: Option<String>,
    /// Prefix for severe messages, e.g. `@here`.
    pub mention: Option<String>,
    /// Status page link, the templates' `{status_url}`.
    pub status_url: Option<String>,
    /// The Statuspage page and component to update; `None` = no Statuspage.
    pub statuspage: Option<Statuspage>,
    /// Message template per stage: the policy's `[notify.templates]` over the defaults.
    /// Slack, the generic webhook and Kubernetes Events say this.
    pub templates: Arc<BTreeMap<Stage, String>>,
    /// Public wording per stage for the status page: the policy's
    /// `[notify.templates.statuspage]` over [`super::template::default_public_template`].
    /// Only [`super::template::PUBLIC_PLACEHOLDERS`] may appear in it.
    pub statuspage_templates: Arc<BTreeMap<Stage, String>>,
    /// Page on-call through PagerDuty when a human is needed; `None` = never.
    pub pagerduty: Option<PagerDuty>,
}

/// PagerDuty paging for one policy (`pagerduty = { service = "…", severity = { … } }`).
/// The routing key is a secret: the policy only names it, the daemon's configuration
/// holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct PagerDuty {
    /// The name of the routing key in the daemon's configuration: `default` (the
    /// default) is `notify.pagerduty_routing_key`, any other name one of
    /// `[notify.pagerduty_services.NAME]`.
    pub service: String,
    /// Runbook severity (exactly as the rows spell it) → PagerDuty severity, over
    /// [`PagerDutySeverity::from_runbook`].
    pub severities: BTreeMap<String, PagerDutySeverity>,
}

impl PagerDuty {
    /// The routing key name used when a policy names none.
    pub const DEFAULT_SERVICE: &'static str = "default";

    /// The PagerDuty severity of an incident with this runbook severity: the policy's
    /// mapping, else the default one.
    pub fn severity(&self, runbook: Option<&str>) -> PagerDutySeverity {
        runbook
            .and_then(|s| self.severities.get(s).copied())
            .unwrap_or_else(|| PagerDutySeverity::from_runbook(runbook))
    }
}

/// The severities of the PagerDuty Events API v2 (`payload.severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PagerDutySeverity {
    /// The service is down or unsafe (P0, Severity 1, Immediate, Emergency).
    Critical,
    /// A serious problem a human must act on soon (P1, Severity 2; the default).
    Error,
    /// Degraded, to be looked at (P2, Severity 3, Standard, Planned…).
    Warning,
    /// For information (P3, Monitor, No Action).
    Info,
}

impl PagerDutySeverity {
    /// Every severity with its API spelling.
    pub const ALL: [(&'static str, PagerDutySeverity); 4] = [
        ("critical", PagerDutySeverity::Critical),
        ("error", PagerDutySeverity::Error),
        ("warning", PagerDutySeverity::Warning),
        ("info", PagerDutySeverity::Info),
    ];

    /// The API spelling (`critical`, `error`, `warning`, `info`).
    pub fn as_str(self) -> &'static str {
        match self {
            PagerDutySeverity::Critical => "critical",
            PagerDutySeverity::Error => "error",
            PagerDutySeverity::Warning => "warning",
            PagerDutySeverity::Info => "info",
        }
    }

    /// The severity with this API spelling.
    pub fn from_name(name: &str) -> Option<PagerDutySeverity> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }

    /// The default mapping of the runbooks' severities (case and spacing ignored):
    ///
    /// | runbook severity | PagerDuty |
    /// | --- | --- |
    /// | P0, Sev0/Sev1, Severity 0/1, Immediate, Emergency, Critical | `critical` |
    /// | P1, Sev2, Severity 2, Rollback, Configuration, High, Urgent, Major | `error` |
    /// | P2, Sev3, Severity 3, Standard, Evaluate, Planned, Delayed, Medium, Minor | `warning` |
    /// | P3, P4, Sev4, Severity 4, Monitor, No Action, Low | `info` |
    /// | anything else, or none (a manual rollback) | `error` |
    pub fn from_runbook(severity: Option<&str>) -> PagerDutySeverity {
        let Some(severity) = severity else {
            return PagerDutySeverity::Error;
        };
        let words: Vec<String> = severity
            .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        match words.join(" ").as_str() {
            "p0" | "sev0" | "sev 0" | "sev1" | "sev 1" | "severity 0" | "severity 1"
            | "immediate" | "emergency" | "critical" => PagerDutySeverity::Critical,
            "p2" | "sev3" | "sev 3" | "severity 3" | "standard" | "evaluate" | "planned"
            | "delayed" | "medium" | "minor" | "warning" => PagerDutySeverity::Warning,
            "p3" | "p4" | "sev4" | "sev 4" | "severity 4" | "monitor" | "no action" | "low"
            | "info" => PagerDutySeverity::Info,
            _ => PagerDutySeverity::Error,
        }
    }
}

/// An Atlassian Statuspage page and component.
#[derive(Debug, Clone, PartialEq)]
pub struct Statuspage {
    /// Statuspage page id.
    pub page_id: String,
    /// Statuspage component id of the agent's service.
    pub component_id: String,
}

/// The moments an incident is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// An unattended or approved rollback starts.
    Initiated,
    /// The method's steps are done; verification is under way.
    InProgress,
    /// Verification passed; the post-rollback watch begins.
    Complete,
    /// A step or verification failed: a human must take over.
    Failed,
    /// The service stayed stable through the whole watch.
    Resolved,
    /// A `rollback_after_approval` row matched: waiting for a human to approve.
    AwaitingApproval,
    /// A guard, a rate limit or an earlier rollback stopped a rollback: a human must decide.
    Blocked,
    /// Data is missing, stale or not a number: rollbackd cannot evaluate and does not act.
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

#[cfg(test)]
mod pagerduty_tests {
    use super::PagerDutySeverity as S;

    #[test]
    fn runbook_severities_map_to_pagerduty_ones() {
        for (runbook, expected) in [
            ("P0", S::Critical),
            ("Severity 1", S::Critical),
            ("SEV-1", S::Critical),
            ("Immediate", S::Critical),
            ("Emergency", S::Critical),
            ("P1", S::Error),
            ("Severity 2", S::Error),
            ("Rollback", S::Error),
            ("Configuration", S::Error),
            ("P2", S::Warning),
            ("severity  3", S::Warning),
            ("Standard", S::Warning),
            ("Planned", S::Warning),
            ("Delayed", S::Warning),
            ("Evaluate", S::Warning),
            ("P3", S::Info),
            ("Monitor", S::Info),
            ("No Action", S::Info),
            ("something else", S::Error),
        ] {
            assert_eq!(S::from_runbook(Some(runbook)), expected, "{runbook}");
        }
        assert_eq!(S::from_runbook(None), S::Error);
        for (name, s) in S::ALL {
            assert_eq!(s.as_str(), name);
            assert_eq!(S::from_name(name), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), name);
        }
    }
}
