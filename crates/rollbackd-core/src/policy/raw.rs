//! The policy file exactly as written: serde types with `deny_unknown_fields`, spans kept
//! where [`super::validate`] needs to point at a line. Nothing here is checked beyond types.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::duration::Dur;

/// A whole policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub agent: RawAgent,
    pub window: RawWindow,
    pub workloads: Vec<Spanned<RawWorkload>>,
    #[serde(default)]
    pub signals: BTreeMap<Spanned<String>, Spanned<RawSignal>>,
    pub matrix: Vec<Spanned<RawRow>>,
    #[serde(default)]
    pub guards: Vec<Spanned<RawGuard>>,
    pub methods: BTreeMap<Spanned<String>, Spanned<RawMethod>>,
    pub verification: RawVerification,
    pub notify: RawNotify,
}

/// `[agent]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub id: String,
    pub name: String,
    pub runbook: Option<String>,
    /// Slack user (`U…`, `W…`) and user-group (`S…`) ids who may press the incident
    /// message's buttons.
    pub slack_approvers: Option<Vec<Spanned<String>>>,
}

/// `[window]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    pub duration: Dur,
    pub fix_forward_after: Option<Spanned<Dur>>,
    pub stale_after: Option<Dur>,
    /// An alert counts against a deploy only if it started this long after it.
    pub alert_grace: Option<Dur>,
    /// How many times worse a pre-existing condition must get to count against a deploy.
    pub worsened_factor: Option<Spanned<f64>>,
}

/// One `[[workloads]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    pub id: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub container: Option<String>,
    /// `primary` (default: watched, opens windows) or `coordinated` (only acted on by methods).
    pub role: Option<String>,
    pub metrics_url: Option<String>,
    #[serde(default)]
    pub configmaps: Vec<String>,
}

/// `[signals.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignal {
    pub description: Option<String>,
    pub unit: Option<String>,
    pub promql: Option<String>,
    pub scrape: Option<RawScrape>,
    pub kube: Option<String>,
    pub alert: Option<BTreeMap<String, String>>,
    /// Lookback before the deploy from which the baseline is taken, e.g. `"1h"`.
    pub baseline: Option<Dur>,
    /// How far back one value reaches (default: the PromQL's longest range selector).
    pub range: Option<Dur>,
    /// The series reads only the current revision.
    #[serde(default)]
    pub per_revision: bool,
}

/// `scrape = { … }`: how to compute the signal from the agent's own `/metrics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScrape {
    /// `[numerator_selector, denominator_selector]`, both counters.
    pub ratio: Option<[String; 2]>,
    /// Histogram base name for a quantile.
    pub histogram: Option<String>,
    pub quantile: Option<f64>,
    /// A gauge selector read as is.
    pub gauge: Option<String>,
    /// A counter selector turned into a per-second rate.
    pub rate: Option<String>,
}

/// A condition `{ signal = "…", above = 0.5, for = "15m" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    pub signal: Spanned<String>,
    pub above: Option<f64>,
    pub at_least: Option<f64>,
    pub below: Option<f64>,
    pub at_most: Option<f64>,
    pub equals: Option<f64>,
    pub relative_to: Option<Spanned<String>>,
    #[serde(rename = "for")]
    pub held_for: Option<Dur>,
}

/// One `[[matrix]]` row.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRow {
    pub id: String,
    pub severity: String,
    pub section: Option<String>,
    pub when: Vec<RawCondition>,
    pub window: Option<Spanned<String>>,
    pub within: Option<Dur>,
    pub action: Spanned<String>,
    pub method: Option<Spanned<String>>,
    pub deadline: Option<Dur>,
    pub approver: Option<String>,
    /// Overrides `[agent] slack_approvers` for incidents of this row.
    pub slack_approvers: Option<Vec<Spanned<String>>>,
}

/// One `[[guards]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    pub id: String,
    pub description: String,
    pub when: Vec<RawCondition>,
    pub scope: Option<Spanned<String>>,
    pub rows: Option<Vec<Spanned<String>>>,
}

/// `[methods.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMethod {
    pub description: Option<String>,
    pub eta: Option<Dur>,
    pub steps: Vec<Spanned<RawStep>>,
}

/// One `[[methods.NAME.steps]]` entry: exactly one action key plus common fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub name: Option<String>,
    pub workloads: Option<Vec<Spanned<String>>>,
    pub container: Option<String>,
    pub timeout: Option<Dur>,
    pub undo: Option<RawRevisionRef>,
    pub set_image: Option<String>,
    pub restart: Option<bool>,
    pub scale: Option<RawScale>,
    pub switch_service: Option<RawSwitchService>,
    pub restore_configmap: Option<String>,
    pub patch_configmap: Option<RawPatchConfigMap>,
    pub argo_abort: Option<bool>,
    pub argo_undo: Option<RawRevisionRef>,
    pub http: Option<RawHttp>,
    pub job: Option<RawJob>,
    pub wait_rollout: Option<bool>,
    pub wait: Option<Dur>,
}

/// `"previous"`, `"last_known_good"` or a revision number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRevisionRef {
    Number(u64),
    Name(String),
}

/// `scale = 0` or `scale = "restore"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawScale {
    Replicas(u32),
    Name(String),
}

/// `switch_service = { service = "…", selector = { … } }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwitchService {
    pub service: String,
    pub selector: BTreeMap<String, String>,
    /// Selector keys to remove (GL-002's "remove /spec/selector/slot").
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `patch_configmap = { name = "…", data = { … } }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPatchConfigMap {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

/// `http = { method = "POST", url = "…", body = "…", expect_status = 200 }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub method: Option<String>,
    pub url: Spanned<String>,
    pub body: Option<Spanned<String>>,
    pub expect_status: Option<u16>,
}

/// `job = { name = "…", image = "…", command = […] }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
}

/// `[verification]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerification {
    pub rollout_timeout: Dur,
    pub ready_hold: Option<Dur>,
    pub health: Option<RawHealth>,
    #[serde(default)]
    pub checks: Vec<RawCondition>,
    pub watch: Option<Dur>,
    pub recovery: Option<Spanned<String>>,
}

/// `health = { url = "…", expect_status = 200 }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub url: Spanned<String>,
    pub expect_status: Option<u16>,
}

/// `[notify]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub slack_channel: Option<String>,
    pub mention: Option<String>,
    pub status_url: Option<String>,
    pub statuspage: Option<RawStatuspage>,
    pub pagerduty: Option<RawPagerDuty>,
    #[serde(default)]
    pub templates: RawTemplates,
}

/// `pagerduty = { service = "…", severity = { "P1" = "critical" } }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPagerDuty {
    /// The name of a routing key in the daemon's configuration (default `default`).
    pub service: Option<Spanned<String>>,
    /// Runbook severity → PagerDuty severity.
    #[serde(default)]
    pub severity: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// The key of `[notify.templates]` that holds the status page's wording.
pub const STATUSPAGE_TEMPLATES: &str = "statuspage";

/// `[notify.templates]`: a template per stage (Slack, webhook, events), and
/// `[notify.templates.statuspage]`, the public wording per stage.
#[derive(Debug, Default)]
pub struct RawTemplates {
    /// Stage name → template.
    pub stages: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Stage name → public template (`[notify.templates.statuspage]`).
    pub statuspage: BTreeMap<Spanned<String>, Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawTemplates {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawTemplates;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "a table of templates by stage, and a [notify.templates.{STATUSPAGE_TEMPLATES}] table"
                )
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawTemplates, A::Error> {
                let mut out = RawTemplates::default();
                // each value read by its key, so the spans survive (no buffering)
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    if key.get_ref() == STATUSPAGE_TEMPLATES {
                        out.statuspage = map.next_value()?;
                    } else {
                        let text = map.next_value()?;
                        out.stages.insert(key, text);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Visit)
    }
}

/// `statuspage = { page_id = "…", component_id = "…" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatuspage {
    pub page_id: String,
    pub component_id: String,
}
