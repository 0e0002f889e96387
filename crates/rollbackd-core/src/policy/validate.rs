//! Turns a [`RawPolicy`] into a [`Policy`], collecting every problem with its line.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;

use chrono::TimeDelta;
use toml::Spanned;

use super::error::{Locator, PolicyError};
use super::model::*;
use super::raw::*;
use super::template;

/// Validates one parsed file. All problems are reported, not just the first.
pub fn validate(raw: RawPolicy, locator: &Locator<'_>) -> Result<Policy, Vec<PolicyError>> {
    let mut v = Validator {
        locator,
        errors: Vec::new(),
    };
    let policy = v.policy(raw);
    if v.errors.is_empty() {
        Ok(policy)
    } else {
        Err(v.errors)
    }
}

struct Validator<'a> {
    locator: &'a Locator<'a>,
    errors: Vec<PolicyError>,
}

fn known<'k>(names: impl IntoIterator<Item = &'k String>) -> String {
    let list: Vec<&str> = names.into_iter().map(String::as_str).collect();
    if list.is_empty() {
        "none defined".into()
    } else {
        format!("known: {}", list.join(", "))
    }
}

impl Validator<'_> {
    fn error(&mut self, span: Range<usize>, field: impl Into<String>, message: impl Into<String>) {
        let error = self.locator.error(span, field, message);
        self.errors.push(error);
    }

    fn policy(&mut self, raw: RawPolicy) -> Policy {
        let slack_approvers = self
            .slack_approvers(raw.agent.slack_approvers, "agent.slack_approvers", 0..0)
            .unwrap_or_default();
        let agent = Agent {
            id: raw.agent.id,
            name: raw.agent.name,
            runbook: raw.agent.runbook,
            slack_approvers,
        };
        if agent.id.trim().is_empty() {
            self.error(0..0, "agent.id", "must not be empty");
        }
        let window = self.window(&raw.window);
        let workloads = self.workloads(raw.workloads);
        let signals = self.signals(raw.signals);
        let method_names: BTreeSet<String> =
            raw.methods.keys().map(|k| k.get_ref().clone()).collect();
        let matrix = self.matrix(raw.matrix, &signals, &method_names, &window);
        let guards = self.guards(raw.guards, &signals, &matrix);
        let methods = self.methods(raw.methods, &workloads);
        let verification = self.verification(raw.verification, &signals, &method_names);
        let notify = self.notify(raw.notify, &matrix);
        Policy {
            source: self.locator.file().to_path_buf(),
            agent,
            window,
            workloads,
            signals: Arc::new(signals),
            matrix: Arc::new(matrix),
            guards: Arc::new(guards),
            methods: Arc::new(methods),
            verification: Arc::new(verification),
            notify,
        }
    }

    /// Slack user ids (`U…`, `W…`) and user-group ids (`S…`), each checked for its shape
    /// (a name such as `@alice` or a channel id is refused with its line).
    fn slack_approvers(
        &mut self,
        raw: Option<Vec<Spanned<String>>>,
        field: &str,
        span: Range<usize>,
    ) -> Option<SlackApprovers> {
        let raw = raw?;
        let mut out = SlackApprovers::default();
        for (i, id) in raw.into_iter().enumerate() {
            let at = if id.span().is_empty() {
                span.clone()
            } else {
                id.span()
            };
            let text = id.into_inner();
            let shaped = (3..=24).contains(&text.len())
                && text
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            match text.chars().next() {
                Some('U' | 'W') if shaped => out.users.push(text),
                Some('S') if shaped => out.groups.push(text),
                _ => self.error(
                    at,
                    format!("{field}[{i}]"),
                    format!(
                        "{text:?} is not a Slack user id (U…, W…) or user-group id (S…): use the id from the member's or group's profile, not a name"
                    ),
                ),
            }
        }
        Some(out)
    }

    fn window(&mut self, raw: &RawWindow) -> Window {
        let window = Window {
            duration: raw.duration.0,
            fix_forward_after: raw.fix_forward_after.as_ref().map(|d| d.get_ref().0),
            stale_after: raw.stale_after.map_or(TimeDelta::minutes(5), |d| d.0),
            alert_grace: raw.alert_grace.map_or(TimeDelta::zero(), |d| d.0),
            worsened_factor: raw.worsened_factor.as_ref().map_or(2.0, |f| *f.get_ref()),
        };
        if let Some(f) = &raw.worsened_factor
            && !(f.get_ref().is_finite() && *f.get_ref() > 1.0)
        {
            self.error(
                f.span(),
                "window.worsened_factor",
                "must be a number greater than 1 (e.g. 2: twice as bad as before the deploy)",
            );
        }
        if window.alert_grace < TimeDelta::zero() {
            self.error(0..0, "window.alert_grace", "must not be negative");
        }
        if window.duration <= TimeDelta::zero() {
            self.error(0..0, "window.duration", "must be longer than 0s");
        }
        if let Some(ff) = &raw.fix_forward_after
            && ff.get_ref().0 < window.duration
        {
            self.error(
                ff.span(),
                "window.fix_forward_after",
                "must not be shorter than window.duration",
            );
        }
        window
    }

    fn workloads(&mut self, raw: Vec<Spanned<RawWorkload>>) -> Vec<Workload> {
        let mut out: Vec<Workload> = Vec::new();
        for (i, spanned) in raw.into_iter().enumerate() {
            let span = spanned.span();
            let w = spanned.into_inner();
            let field = format!("workloads[{i}]");
            let kind = match w.kind.as_str() {
                "Deployment" => WorkloadKind::Deployment,
                "Rollout" => WorkloadKind::Rollout,
                other => {
                    self.error(
                        span.clone(),
                        format!("{field}.kind"),
                        format!("unknown kind {other:?} (expected Deployment or Rollout)"),
                    );
                    WorkloadKind::Deployment
                }
            };
            let role = match w.role.as_deref() {
                None | Some("primary") => WorkloadRole::Primary,
                Some("coordinated") => WorkloadRole::Coordinated,
                Some(other) => {
                    self.error(
                        span.clone(),
                        format!("{field}.role"),
                        format!("unknown role {other:?} (expected primary or coordinated)"),
                    );
                    WorkloadRole::Primary
                }
            };
            if out.iter().any(|o| o.id == w.id) {
                self.error(
                    span.clone(),
                    format!("{field}.id"),
                    format!("duplicate workload id {:?}", w.id),
                );
            }
            out.push(Workload {
                id: w.id,
                kind,
                namespace: w.namespace,
                name: w.name,
                container: w.container,
                role,
                metrics_url: w.metrics_url,
                configmaps: w.configmaps,
            });
        }
        match out
            .iter()
            .filter(|w| w.role == WorkloadRole::Primary)
            .count()
        {
            1 => {}
            n => self.error(
                0..0,
                "workloads",
                format!("exactly one workload must have role \"primary\" (found {n})"),
            ),
        }
        out
    }

    fn signals(
        &mut self,
        raw: BTreeMap<Spanned<String>, Spanned<RawSignal>>,
    ) -> BTreeMap<String, Signal> {
        let mut out = BTreeMap::new();
        for (name, spanned) in raw {
            let span = spanned.span();
            let name = name.into_inner();
            let s = spanned.into_inner();
            let field = format!("signals.{name}");
            let sources = [
                s.promql.is_some() || s.scrape.is_some(),
                s.kube.is_some(),
                s.alert.is_some(),
            ];
            let source = match sources.iter().filter(|x| **x).count() {
                1 => self.signal_source(&s, &field, span.clone()),
                0 => {
                    self.error(
                        span.clone(),
                        field.clone(),
                        "needs a source: promql and/or scrape, kube, or alert",
                    );
                    None
                }
                _ => {
                    self.error(
                        span.clone(),
                        field.clone(),
                        "give one source kind: (promql and/or scrape), kube, or alert",
                    );
                    None
                }
            };
            let unit = match (s.unit.as_deref(), &source) {
                (Some("ratio"), _) => Unit::Ratio,
                (Some("seconds"), _) => Unit::Seconds,
                (Some("count"), _) => Unit::Count,
                (Some("bool"), _) => Unit::Bool,
                (Some(other), _) => {
                    self.error(
                        span.clone(),
                        format!("{field}.unit"),
                        format!("unknown unit {other:?} (expected ratio, seconds, count or bool)"),
                    );
                    Unit::Count
                }
                (None, Some(SignalSource::Alert { .. }))
                | (None, Some(SignalSource::Kube(KubeSignal::RolloutStalled))) => Unit::Bool,
                (None, _) => Unit::Count,
            };
            if let Some(baseline) = s.baseline
                && baseline.0 <= TimeDelta::zero()
            {
                self.error(
                    span.clone(),
                    format!("{field}.baseline"),
                    "lookback must be longer than 0s",
                );
            }
            if let Some(source) = source {
                out.insert(
                    name.clone(),
                    Signal {
                        name,
                        description: s.description,
                        unit,
                        source,
                        baseline: s.baseline.map(|d| d.0),
                        range: s.range.map(|d| d.0),
                        per_revision: s.per_revision,
                    },
                );
            }
        }
        out
    }

    fn signal_source(
        &mut self,
        s: &RawSignal,
        field: &str,
        span: Range<usize>,
    ) -> Option<SignalSource> {
        if let Some(kube) = &s.kube {
            return match KubeSignal::ALL.iter().find(|(n, _)| n == kube) {
                Some((_, k)) => Some(SignalSource::Kube(*k)),
                None => {
                    let names: Vec<&str> = KubeSignal::ALL.iter().map(|(n, _)| *n).collect();
                    self.error(
                        span,
                        format!("{field}.kube"),
                        format!("unknown kube signal {kube:?} (known: {})", names.join(", ")),
                    );
                    None
                }
            };
        }
        if let Some(labels) = &s.alert {
            if labels.is_empty() {
                self.error(
                    span,
                    format!("{field}.alert"),
                    "needs at least one label to match",
                );
                return None;
            }
            return Some(SignalSource::Alert {
                labels: labels.clone(),
            });
        }
        let scrape = match &s.scrape {
            None => None,
            Some(raw) => Some(self.scrape(raw, field, span.clone())?),
        };
        if let Some(q) = &s.promql
            && q.trim().is_empty()
        {
            self.error(span, format!("{field}.promql"), "must not be empty");
            return None;
        }
        Some(SignalSource::Metric {
            promql: s.promql.clone(),
            scrape,
        })
    }

    fn scrape(&mut self, raw: &RawScrape, field: &str, span: Range<usize>) -> Option<ScrapeSpec> {
        let forms = [
            raw.ratio.is_some(),
            raw.histogram.is_some(),
            raw.gauge.is_some(),
            raw.rate.is_some(),
        ];
        if forms.iter().filter(|x| **x).count() != 1 {
            self.error(
                span,
                format!("{field}.scrape"),
                "give exactly one of ratio, histogram (+ quantile), gauge, rate",
            );
            return None;
        }
        if let Some([numerator, denominator]) = &raw.ratio {
            return Some(ScrapeSpec::Ratio {
                numerator: numerator.clone(),
                denominator: denominator.clone(),
            });
        }
        if let Some(histogram) = &raw.histogram {
            return match raw.quantile {
                Some(q) if q > 0.0 && q < 1.0 => Some(ScrapeSpec::Quantile {
                    histogram: histogram.clone(),
                    quantile: q,
                }),
                _ => {
                    self.error(
                        span,
                        format!("{field}.scrape.quantile"),
                        "histogram needs a quantile between 0 and 1, e.g. 0.95",
                    );
                    None
                }
            };
        }
        if let Some(gauge) = &raw.gauge {
            return Some(ScrapeSpec::Gauge(gauge.clone()));
        }
        raw.rate.clone().map(ScrapeSpec::Rate)
    }

    fn condition(
        &mut self,
        raw: RawCondition,
        field: &str,
        signals: &BTreeMap<String, Signal>,
    ) -> Option<Condition> {
        let span = raw.signal.span();
        let name = raw.signal.into_inner();
        let mut ok = true;
        match signals.get(&name) {
            None => {
                self.error(
                    span.clone(),
                    format!("{field}.signal"),
                    format!("unknown signal {name:?} ({})", known(signals.keys())),
                );
                ok = false;
            }
            Some(signal) => {
                if raw.relative_to.is_some() && signal.baseline.is_none() {
                    self.error(span.clone(), format!("{field}.relative_to"), format!("signal {name:?} has no baseline (add baseline = \"1h\" to [signals.{name}])"));
                    ok = false;
                }
            }
        }
        if let Some(rel) = &raw.relative_to
            && rel.get_ref() != "baseline"
        {
            self.error(
                rel.span(),
                format!("{field}.relative_to"),
                format!(
                    "unknown reference {:?} (expected \"baseline\")",
                    rel.get_ref()
                ),
            );
            ok = false;
        }
        if raw.above.is_some() && raw.at_least.is_some()
            || raw.below.is_some() && raw.at_most.is_some()
        {
            self.error(
                span.clone(),
                field.to_string(),
                "give one lower bound (above or at_least) and one upper bound (below or at_most)",
            );
            ok = false;
        }
        let has_bound = [raw.above, raw.at_least, raw.below, raw.at_most]
            .iter()
            .any(Option::is_some);
        if raw.equals.is_some() && has_bound {
            self.error(
                span.clone(),
                format!("{field}.equals"),
                "equals cannot be combined with above/below bounds",
            );
            ok = false;
        }
        if raw.equals.is_none() && !has_bound {
            self.error(
                span.clone(),
                field.to_string(),
                "needs a threshold: above, at_least, below, at_most or equals",
            );
            ok = false;
        }
        let bounds = [raw.above, raw.at_least, raw.below, raw.at_most, raw.equals];
        if bounds.iter().flatten().any(|v| v.is_nan()) {
            self.error(
                span.clone(),
                field.to_string(),
                "thresholds must be numbers, not NaN",
            );
            ok = false;
        }
        let lower = raw
            .above
            .map(|value| Bound {
                value,
                inclusive: false,
            })
            .or(raw.at_least.map(|value| Bound {
                value,
                inclusive: true,
            }));
        let upper = raw
            .below
            .map(|value| Bound {
                value,
                inclusive: false,
            })
            .or(raw.at_most.map(|value| Bound {
                value,
                inclusive: true,
            }));
        if let (Some(l), Some(u)) = (lower, upper)
            && l.value >= u.value
        {
            self.error(
                span,
                field.to_string(),
                format!(
                    "empty range: lower bound {} is not below upper bound {}",
                    l.value, u.value
                ),
            );
            ok = false;
        }
        ok.then_some(Condition {
            signal: name,
            lower,
            upper,
            equals: raw.equals,
            relative_to_baseline: raw.relative_to.is_some(),
            held_for: raw.held_for.map(|d| d.0),
        })
    }

    fn conditions(
        &mut self,
        raw: Vec<RawCondition>,
        field: &str,
        span: Range<usize>,
        signals: &BTreeMap<String, Signal>,
        allow_empty: bool,
    ) -> Vec<Condition> {
        if raw.is_empty() && !allow_empty {
            self.error(span, field.to_string(), "needs at least one condition");
        }
        raw.into_iter()
            .enumerate()
            .filter_map(|(j, c)| self.condition(c, &format!("{field}[{j}]"), signals))
            .collect()
    }

    /// Kube state that every rollout passes through (no pods available, a pod restarting,
    /// an image still pulling) is no evidence unless it lasts: an unattended rollback row on
    /// it needs `for`. `rollout_stalled` carries its own deadline (progressDeadlineSeconds).
    fn transient_kube_without_for(
        &mut self,
        when: &[Condition],
        signals: &BTreeMap<String, Signal>,
        field: &str,
        span: Range<usize>,
    ) {
        for (j, c) in when.iter().enumerate() {
            let transient = signals.get(&c.signal).is_some_and(|s| {
                matches!(
                    s.source,
                    SignalSource::Kube(
                        KubeSignal::AvailableReplicas
                            | KubeSignal::CrashloopingPods
                            | KubeSignal::ImagePullBackoff
                    )
                )
            });
            if transient && c.held_for.is_none() {
                self.error(
                    span.clone(),
                    format!("{field}.when[{j}].for"),
                    format!(
                        "kube signal {:?} passes through this state during every rollout: an unattended rollback row on it needs `for` (e.g. \"2m\")",
                        c.signal
                    ),
                );
            }
        }
    }

    fn matrix(
        &mut self,
        raw: Vec<Spanned<RawRow>>,
        signals: &BTreeMap<String, Signal>,
        methods: &BTreeSet<String>,
        window: &Window,
    ) -> Vec<Row> {
        let mut out: Vec<Row> = Vec::new();
        if raw.is_empty() {
            self.error(0..0, "matrix", "needs at least one row");
        }
        for (i, spanned) in raw.into_iter().enumerate() {
            let span = spanned.span();
            let r = spanned.into_inner();
            let field = format!("matrix[{i}]");
            if out.iter().any(|o| o.id == r.id) {
                self.error(
                    span.clone(),
                    format!("{field}.id"),
                    format!("duplicate row id {:?}", r.id),
                );
            }
            let when = self.conditions(
                r.when,
                &format!("{field}.when"),
                span.clone(),
                signals,
                false,
            );
            let row_window = match r.window.as_ref().map(|w| (w.get_ref().as_str(), w.span())) {
                None | Some(("inside", _)) => RowWindow::Inside,
                Some(("outside", _)) => RowWindow::Outside,
                Some(("any", _)) => RowWindow::Any,
                Some((other, wspan)) => {
                    self.error(
                        wspan,
                        format!("{field}.window"),
                        format!("unknown window {other:?} (expected inside, outside or any)"),
                    );
                    RowWindow::Inside
                }
            };
            let action = match r.action.get_ref().as_str() {
                "rollback" => Action::Rollback,
                "rollback_after_approval" => Action::RollbackAfterApproval,
                "notify" => Action::Notify,
                "none" => Action::None,
                other => {
                    self.error(r.action.span(), format!("{field}.action"), format!("unknown action {other:?} (expected rollback, rollback_after_approval, notify or none)"));
                    Action::None
                }
            };
            if let Some(m) = &r.method
                && !methods.contains(m.get_ref())
            {
                self.error(
                    m.span(),
                    format!("{field}.method"),
                    format!("unknown method {:?} ({})", m.get_ref(), known(methods)),
                );
            }
            if action == Action::Rollback {
                self.transient_kube_without_for(&when, signals, &field, span.clone());
            }
            if r.method.is_none()
                && matches!(action, Action::Rollback | Action::RollbackAfterApproval)
            {
                self.error(
                    r.action.span(),
                    format!("{field}.method"),
                    "a rollback row needs a method",
                );
            }
            if let Some(within) = r.within
                && within.0 > window.horizon()
            {
                self.error(
                    span.clone(),
                    format!("{field}.within"),
                    "is longer than the window: the row could never apply past it",
                );
            }
            let slack_approvers = match r.slack_approvers {
                Some(ids) if ids.is_empty() => {
                    self.error(
                        span.clone(),
                        format!("{field}.slack_approvers"),
                        "is empty: nobody could press this row's buttons; leave it out to use [agent] slack_approvers",
                    );
                    None
                }
                ids => self.slack_approvers(ids, &format!("{field}.slack_approvers"), span.clone()),
            };
            out.push(Row {
                slack_approvers,
                id: r.id,
                severity: r.severity,
                section: r.section,
                when,
                window: row_window,
                within: r.within.map(|d| d.0),
                action,
                method: r.method.map(Spanned::into_inner),
                deadline: r.deadline.map(|d| d.0),
                approver: r.approver,
            });
        }
        out
    }

    fn guards(
        &mut self,
        raw: Vec<Spanned<RawGuard>>,
        signals: &BTreeMap<String, Signal>,
        matrix: &[Row],
    ) -> Vec<Guard> {
        let mut out = Vec::new();
        for (i, spanned) in raw.into_iter().enumerate() {
            let span = spanned.span();
            let g = spanned.into_inner();
            let field = format!("guards[{i}]");
            let when = self.conditions(
                g.when,
                &format!("{field}.when"),
                span.clone(),
                signals,
                false,
            );
            let scope = match g.scope.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
                None | Some(("unattended", _)) => GuardScope::Unattended,
                Some(("always", _)) => GuardScope::Always,
                Some((other, sspan)) => {
                    self.error(
                        sspan,
                        format!("{field}.scope"),
                        format!("unknown scope {other:?} (expected unattended or always)"),
                    );
                    GuardScope::Unattended
                }
            };
            let rows = g.rows.map(|rows| {
                rows.into_iter()
                    .filter_map(|r| {
                        if matrix.iter().any(|m| &m.id == r.get_ref()) {
                            Some(r.into_inner())
                        } else {
                            let ids: Vec<String> = matrix.iter().map(|m| m.id.clone()).collect();
                            self.error(
                                r.span(),
                                format!("{field}.rows"),
                                format!("unknown row {:?} ({})", r.get_ref(), known(&ids)),
                            );
                            None
                        }
                    })
                    .collect()
            });
            out.push(Guard {
                id: g.id,
                description: g.description,
                when,
                scope,
                rows,
            });
        }
        out
    }

    fn methods(
        &mut self,
        raw: BTreeMap<Spanned<String>, Spanned<RawMethod>>,
        workloads: &[Workload],
    ) -> BTreeMap<String, Method> {
        let mut out = BTreeMap::new();
        for (name, spanned) in raw {
            let span = spanned.span();
            let name = name.into_inner();
            let m = spanned.into_inner();
            let field = format!("methods.{name}");
            if m.steps.is_empty() {
                self.error(span, field.clone(), "needs at least one step");
            }
            let steps = m
                .steps
                .into_iter()
                .enumerate()
                .filter_map(|(i, s)| self.step(s, &format!("{field}.steps[{i}]"), workloads))
                .collect();
            out.insert(
                name.clone(),
                Method {
                    name,
                    description: m.description,
                    eta: m.eta.map(|d| d.0),
                    steps,
                },
            );
        }
        out
    }

    fn step(
        &mut self,
        spanned: Spanned<RawStep>,
        field: &str,
        workloads: &[Workload],
    ) -> Option<Step> {
        let span = spanned.span();
        let s = spanned.into_inner();
        let targets: Vec<String> = match &s.workloads {
            None => workloads
                .iter()
                .filter(|w| w.role == WorkloadRole::Primary)
                .map(|w| w.id.clone())
                .collect(),
            Some(list) => {
                let ids: Vec<String> = workloads.iter().map(|w| w.id.clone()).collect();
                for w in list {
                    if !ids.contains(w.get_ref()) {
                        self.error(
                            w.span(),
                            format!("{field}.workloads"),
                            format!("unknown workload {:?} ({})", w.get_ref(), known(&ids)),
                        );
                    }
                }
                list.iter().map(|w| w.get_ref().clone()).collect()
            }
        };
        let action = self.step_action(&s, field, span.clone())?;
        for id in &targets {
            let Some(w) = workloads.iter().find(|w| &w.id == id) else {
                continue;
            };
            let argo = matches!(action, StepAction::ArgoAbort | StepAction::ArgoUndo(_));
            let deployment_only = matches!(action, StepAction::Undo(_));
            if argo && w.kind != WorkloadKind::Rollout {
                self.error(
                    span.clone(),
                    field.to_string(),
                    format!(
                        "{} needs a Rollout, but workload {id:?} is a Deployment",
                        action.kind()
                    ),
                );
            }
            if deployment_only && w.kind != WorkloadKind::Deployment {
                self.error(
                    span.clone(),
                    field.to_string(),
                    format!("undo needs a Deployment; use argo_undo for Rollout {id:?}"),
                );
            }
            if let StepAction::RestoreConfigMap(cm) = &action
                && !w.configmaps.contains(cm)
            {
                self.error(span.clone(), format!("{field}.restore_configmap"), format!("ConfigMap {cm:?} is not in workload {id:?}'s configmaps, so no pre-deploy snapshot of it is taken"));
            }
        }
        Some(Step {
            name: s.name.unwrap_or_else(|| action.kind().to_string()),
            workloads: targets,
            container: s.container,
            timeout: s.timeout.map(|d| d.0),
            action,
        })
    }

    fn step_action(&mut self, s: &RawStep, field: &str, span: Range<usize>) -> Option<StepAction> {
        let mut actions = Vec::new();
        if let Some(r) = &s.undo {
            actions.push(
                self.revision_ref(r, &format!("{field}.undo"), span.clone())
                    .map(StepAction::Undo),
            );
        }
        if let Some(image) = &s.set_image {
            actions.push(Some(StepAction::SetImage(match image.as_str() {
                "previous" => ImageRef::Previous,
                "last_known_good" => ImageRef::LastKnownGood,
                literal => ImageRef::Literal(literal.to_string()),
            })));
        }
        if let Some(restart) = s.restart {
            actions.push(
                self.flag(restart, "restart", field, span.clone())
                    .then_some(StepAction::Restart),
            );
        }
        if let Some(scale) = &s.scale {
            actions.push(match scale {
                RawScale::Replicas(n) => Some(StepAction::Scale(Some(*n))),
                RawScale::Name(n) if n == "restore" => Some(StepAction::Scale(None)),
                RawScale::Name(other) => {
                    self.error(
                        span.clone(),
                        format!("{field}.scale"),
                        format!("expected a replica count or \"restore\", got {other:?}"),
                    );
                    None
                }
            });
        }
        if let Some(sw) = &s.switch_service {
            actions.push(Some(StepAction::SwitchService {
                service: sw.service.clone(),
                selector: sw.selector.clone(),
                remove: sw.remove.clone(),
            }));
        }
        if let Some(cm) = &s.restore_configmap {
            actions.push(Some(StepAction::RestoreConfigMap(cm.clone())));
        }
        if let Some(p) = &s.patch_configmap {
            actions.push(Some(StepAction::PatchConfigMap {
                name: p.name.clone(),
                data: p.data.clone(),
            }));
        }
        if let Some(abort) = s.argo_abort {
            actions.push(
                self.flag(abort, "argo_abort", field, span.clone())
                    .then_some(StepAction::ArgoAbort),
            );
        }
        if let Some(r) = &s.argo_undo {
            actions.push(
                self.revision_ref(r, &format!("{field}.argo_undo"), span.clone())
                    .map(StepAction::ArgoUndo),
            );
        }
        if let Some(h) = &s.http {
            actions.push(self.http(h, field));
        }
        if let Some(j) = &s.job {
            actions.push(Some(StepAction::Job {
                name: j.name.clone(),
                image: j.image.clone(),
                command: j.command.clone(),
            }));
        }
        if let Some(wait) = s.wait_rollout {
            actions.push(
                self.flag(wait, "wait_rollout", field, span.clone())
                    .then_some(StepAction::WaitRollout),
            );
        }
        if let Some(d) = s.wait {
            actions.push(Some(StepAction::Wait(d.0)));
        }
        match actions.len() {
            1 => actions.pop().flatten(),
            0 => {
                self.error(span, field.to_string(), "needs one action: undo, set_image, restart, scale, switch_service, restore_configmap, patch_configmap, argo_abort, argo_undo, http, job, wait_rollout or wait");
                None
            }
            n => {
                self.error(
                    span,
                    field.to_string(),
                    format!("has {n} actions; give one action per step"),
                );
                None
            }
        }
    }

    fn flag(&mut self, value: bool, key: &str, field: &str, span: Range<usize>) -> bool {
        if !value {
            self.error(
                span,
                format!("{field}.{key}"),
                format!("{key} = false does nothing; remove the step"),
            );
        }
        value
    }

    fn revision_ref(
        &mut self,
        raw: &RawRevisionRef,
        field: &str,
        span: Range<usize>,
    ) -> Option<RevisionRef> {
        match raw {
            RawRevisionRef::Number(0) => {
                self.error(span, field.to_string(), "revisions start at 1");
                None
            }
            RawRevisionRef::Number(n) => Some(RevisionRef::Revision(*n)),
            RawRevisionRef::Name(n) if n == "previous" => Some(RevisionRef::Previous),
            RawRevisionRef::Name(n) if n == "last_known_good" => Some(RevisionRef::LastKnownGood),
            RawRevisionRef::Name(other) => {
                self.error(span, field.to_string(), format!("expected \"previous\", \"last_known_good\" or a revision number, got {other:?}"));
                None
            }
        }
    }

    fn http(&mut self, h: &RawHttp, field: &str) -> Option<StepAction> {
        let method = h
            .method
            .clone()
            .unwrap_or_else(|| "POST".into())
            .to_uppercase();
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
            self.error(
                h.url.span(),
                format!("{field}.http.method"),
                format!("unsupported HTTP method {method:?}"),
            );
            return None;
        }
        let url = h.url.get_ref();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            self.error(
                h.url.span(),
                format!("{field}.http.url"),
                format!("expected an http:// or https:// URL, got {url:?}"),
            );
            return None;
        }
        let body = match &h.body {
            None => None,
            Some(b) => match serde_json::from_str(b.get_ref()) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.error(
                        b.span(),
                        format!("{field}.http.body"),
                        format!("not valid JSON: {e}"),
                    );
                    return None;
                }
            },
        };
        Some(StepAction::Http {
            method,
            url: url.clone(),
            body,
            expect_status: h.expect_status.unwrap_or(200),
        })
    }

    fn verification(
        &mut self,
        raw: RawVerification,
        signals: &BTreeMap<String, Signal>,
        methods: &BTreeSet<String>,
    ) -> Verification {
        let checks = self.conditions(raw.checks, "verification.checks", 0..0, signals, true);
        if let Some(r) = &raw.recovery
            && !methods.contains(r.get_ref())
        {
            self.error(
                r.span(),
                "verification.recovery",
                format!("unknown method {:?} ({})", r.get_ref(), known(methods)),
            );
        }
        let health = raw.health.and_then(|h| {
            let url = h.url.get_ref();
            if url.starts_with("http://") || url.starts_with("https://") {
                Some(HealthCheck {
                    url: url.clone(),
                    expect_status: h.expect_status.unwrap_or(200),
                })
            } else {
                self.error(
                    h.url.span(),
                    "verification.health.url",
                    format!("expected an http:// or https:// URL, got {url:?}"),
                );
                None
            }
        });
        Verification {
            rollout_timeout: raw.rollout_timeout.0,
            ready_hold: raw.ready_hold.map_or(TimeDelta::zero(), |d| d.0),
            health,
            checks,
            watch: raw.watch.map_or(TimeDelta::zero(), |d| d.0),
            recovery: raw.recovery.map(Spanned::into_inner),
        }
    }

    fn notify(&mut self, raw: RawNotify, matrix: &[Row]) -> Notify {
        let templates = self.templates(
            raw.templates.stages,
            "notify.templates",
            template::default_template,
            template::check,
        );
        let statuspage_templates = self.templates(
            raw.templates.statuspage,
            "notify.templates.statuspage",
            template::default_public_template,
            template::check_public,
        );
        let pagerduty = raw.pagerduty.map(|pd| self.pagerduty(pd, matrix));
        Notify {
            slack_channel: raw.slack_channel,
            mention: raw.mention,
            status_url: raw.status_url,
            statuspage: raw.statuspage.map(|s| Statuspage {
                page_id: s.page_id,
                component_id: s.component_id,
            }),
            templates: Arc::new(templates),
            statuspage_templates: Arc::new(statuspage_templates),
            pagerduty,
        }
    }

    /// A template per stage: the defaults, overridden by the policy's (each checked).
    fn templates(
        &mut self,
        raw: BTreeMap<Spanned<String>, Spanned<String>>,
        section: &str,
        default: fn(Stage) -> &'static str,
        check: fn(&str) -> Result<(), String>,
    ) -> BTreeMap<Stage, String> {
        let mut templates: BTreeMap<Stage, String> = Stage::ALL
            .iter()
            .map(|(_, stage)| (*stage, default(*stage).to_string()))
            .collect();
        for (key, text) in raw {
            let field = format!("{section}.{}", key.get_ref());
            match Stage::ALL.iter().find(|(n, _)| n == key.get_ref()) {
                None => {
                    let mut names: Vec<&str> = Stage::ALL.iter().map(|(n, _)| *n).collect();
                    let mut what = "stage";
                    if section == "notify.templates" {
                        names.push(STATUSPAGE_TEMPLATES);
                        what = "stage or target";
                    }
                    self.error(
                        key.span(),
                        field,
                        format!("unknown {what} (known: {})", names.join(", ")),
                    );
                }
                Some((_, stage)) => match check(text.get_ref()) {
                    Ok(()) if text.get_ref().trim().is_empty() => {
                        self.error(
                            text.span(),
                            field,
                            "must not be empty (leave the key out for the default wording)",
                        );
                    }
                    Ok(()) => {
                        templates.insert(*stage, text.into_inner());
                    }
                    Err(message) => self.error(text.span(), field, message),
                },
            }
        }
        templates
    }

    /// `pagerduty = { … }`: a routing key named (never given), a known severity mapping.
    fn pagerduty(&mut self, raw: RawPagerDuty, matrix: &[Row]) -> PagerDuty {
        let service = match raw.service {
            None => PagerDuty::DEFAULT_SERVICE.to_string(),
            Some(s) => {
                let (span, name) = (s.span(), s.into_inner());
                let plain = !name.is_empty()
                    && name.len() <= 63
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !plain {
                    self.error(
                        span,
                        "notify.pagerduty.service",
                        "must be the name of a routing key in the daemon's configuration (letters, digits, '-', '_', '.'; at most 63)",
                    );
                } else if looks_like_routing_key(&name) {
                    self.error(
                        span,
                        "notify.pagerduty.service",
                        "looks like a routing key itself: a routing key is a secret, so keep it in the daemon's configuration ([notify.pagerduty_services.NAME] routing_key_file) and name it here",
                    );
                }
                name
            }
        };
        let known: BTreeSet<&str> = matrix
            .iter()
            .map(|r| r.severity.as_str())
            .chain(["manual"])
            .collect();
        let mut severities = BTreeMap::new();
        for (key, value) in raw.severity {
            let field = format!("notify.pagerduty.severity.{:?}", key.get_ref());
            if !known.contains(key.get_ref().as_str()) {
                let list: Vec<&str> = known.iter().copied().collect();
                self.error(
                    key.span(),
                    field.clone(),
                    format!(
                        "no matrix row has this severity (known: {})",
                        list.join(", ")
                    ),
                );
            }
            match PagerDutySeverity::from_name(value.get_ref()) {
                Some(severity) => {
                    severities.insert(key.into_inner(), severity);
                }
                None => {
                    let names: Vec<&str> = PagerDutySeverity::ALL.iter().map(|(n, _)| *n).collect();
                    self.error(
                        value.span(),
                        field,
                        format!(
                            "unknown PagerDuty severity {:?} (expected {})",
                            value.get_ref(),
                            names.join(", ")
                        ),
                    );
                }
            }
        }
        PagerDuty {
            service,
            severities,
        }
    }
}

/// Whether a name has the shape of a PagerDuty integration key (32 letters and digits).
fn looks_like_routing_key(name: &str) -> bool {
    name.len() == 32 && name.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The longest range selector (`[5m]`, or a subquery's `[30m:1m]`) in a PromQL query.
pub fn promql_range(query: &str) -> Option<TimeDelta> {
    query
        .split('[')
        .skip(1)
        .filter_map(|rest| rest.split(']').next())
        .filter_map(|inside| {
            crate::policy::duration::parse_duration(inside.split(':').next()?.trim()).ok()
        })
        .max()
}

#[cfg(test)]
mod range_tests {
    use super::promql_range;
    use chrono::TimeDelta;

    #[test]
    fn the_longest_range_selector_is_the_range() {
        let q = r#"sum(rate(x{s=~"5.."}[5m])) / sum(rate(x[1m])) + max_over_time(y[30m:1m])"#;
        assert_eq!(promql_range(q), Some(TimeDelta::minutes(30)));
        assert_eq!(promql_range("up"), None);
        assert_eq!(
            promql_range("x{a=~\"[a-z]\"}"),
            None,
            "a regex class is no range"
        );
    }

    #[test]
    fn an_unattended_row_on_transient_kube_state_needs_for() {
        let policy = |when: &str, action: &str| {
            format!(
                r#"
[agent]
id = "T"
name = "T"
[window]
duration = "2h"
[[workloads]]
id = "w"
kind = "Deployment"
namespace = "ns"
name = "w"
[signals.available]
kube = "available_replicas"
[[matrix]]
id = "down"
severity = "P0"
when = [{when}]
action = "{action}"
method = "m"
[methods.m]
[[methods.m.steps]]
undo = "previous"
[verification]
rollout_timeout = "5m"
[notify]
"#
            )
        };
        let parse =
            |text: String| crate::policy::parse_policy(std::path::Path::new("p.toml"), &text);
        let errors = parse(policy(
            r#"{ signal = "available", at_most = 0 }"#,
            "rollback",
        ))
        .expect_err("no `for` on an unattended outage row");
        let text = errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("p.toml:"), "{text}");
        assert!(text.contains("matrix[0].when[0].for"), "{text}");
        assert!(text.contains("during every rollout"), "{text}");
        assert!(
            parse(policy(
                r#"{ signal = "available", at_most = 0, for = "2m" }"#,
                "rollback"
            ))
            .is_ok()
        );
        assert!(parse(policy(r#"{ signal = "available", at_most = 0 }"#, "notify")).is_ok());
    }
}

#[cfg(test)]
mod notify_tests {
    use crate::policy::{PagerDutySeverity, Stage, parse_policy};

    /// A small valid policy whose `[notify]` section is `notify`.
    fn policy(notify: &str) -> String {
        format!(
            r#"
[agent]
id = "T"
name = "Thermo"
[window]
duration = "2h"
[[workloads]]
id = "w"
kind = "Deployment"
namespace = "ns"
name = "w"
[signals.errors]
promql = "x"
[[matrix]]
id = "bad"
severity = "P1"
when = [{{ signal = "errors", above = 0.5 }}]
action = "rollback_after_approval"
method = "m"
[methods.m]
[[methods.m.steps]]
undo = "previous"
[verification]
rollout_timeout = "5m"
{notify}
"#
        )
    }

    fn errors(notify: &str) -> String {
        parse_policy(std::path::Path::new("p.toml"), &policy(notify))
            .expect_err("invalid")
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn statuspage_templates_default_per_stage_and_can_be_overridden() {
        let text = policy(
            "[notify]\n[notify.templates]\ninitiated = \"@here rolling back {agent_id} (row {row})\"\n[notify.templates.statuspage]\ncomplete = \"{agent_name} is back on {to_version}.\"\n",
        );
        let p = parse_policy(std::path::Path::new("p.toml"), &text).unwrap();
        assert_eq!(
            p.notify.statuspage_templates[&Stage::Complete],
            "{agent_name} is back on {to_version}."
        );
        assert_eq!(
            p.notify.templates[&Stage::Initiated],
            "@here rolling back {agent_id} (row {row})"
        );
        for (_, stage) in Stage::ALL {
            assert!(
                !p.notify.statuspage_templates[&stage].is_empty(),
                "{stage:?}"
            );
        }
        assert_eq!(p.notify.pagerduty, None);
    }

    #[test]
    fn statuspage_templates_name_the_line_of_each_problem() {
        let text = errors(
            "[notify]\n[notify.templates.statuspage]\ninitiated = \"Rolling back (row {row})\"\nstarted = \"x\"\nresolved = \"@here all good\"\ncomplete = \" \"\n",
        );
        assert!(
            text.contains("p.toml:27:13: notify.templates.statuspage.initiated: placeholder {row} is not for a public status page"),
            "{text}"
        );
        assert!(
            text.contains(
                "p.toml:28:1: notify.templates.statuspage.started: unknown stage (known: initiated"
            ),
            "{text}"
        );
        assert!(
            text.contains("notify.templates.statuspage.resolved: \"@here\" is Slack markup"),
            "{text}"
        );
        assert!(
            text.contains("notify.templates.statuspage.complete: must not be empty"),
            "{text}"
        );
        let text = errors("[notify]\n[notify.templates]\nstatuspages = \"x\"\n");
        assert!(
            text.contains(
                "notify.templates.statuspages: unknown stage or target (known: initiated"
            ),
            "{text}"
        );
        assert!(text.contains(", statuspage)"), "{text}");
    }

    #[test]
    fn pagerduty_names_a_routing_key_and_maps_severities() {
        let text = policy(
            "[notify]\npagerduty = { service = \"plant-safety\", severity = { \"P1\" = \"critical\" } }\n",
        );
        let p = parse_policy(std::path::Path::new("p.toml"), &text).unwrap();
        let pd = p.notify.pagerduty.unwrap();
        assert_eq!(pd.service, "plant-safety");
        assert_eq!(pd.severity(Some("P1")), PagerDutySeverity::Critical);
        assert_eq!(pd.severity(Some("P2")), PagerDutySeverity::Warning);
        let p = parse_policy(
            std::path::Path::new("p.toml"),
            &policy("[notify]\npagerduty = {}\n"),
        )
        .unwrap();
        assert_eq!(p.notify.pagerduty.unwrap().service, "default");
    }

    #[test]
    fn pagerduty_refuses_keys_unknown_severities_and_fields() {
        let text = errors(
            "[notify]\npagerduty = { service = \"0123456789abcdef0123456789abcdef\", severity = { \"P7\" = \"critical\", \"P1\" = \"page\" } }\n",
        );
        assert!(
            text.contains(
                "p.toml:26:25: notify.pagerduty.service: looks like a routing key itself"
            ),
            "{text}"
        );
        assert!(
            text.contains("notify.pagerduty.severity.\"P7\": no matrix row has this severity (known: P1, manual)"),
            "{text}"
        );
        assert!(
            text.contains("notify.pagerduty.severity.\"P1\": unknown PagerDuty severity \"page\" (expected critical, error, warning, info)"),
            "{text}"
        );
        let text = errors("[notify]\npagerduty = { routing_key = \"abc\" }\n");
        assert!(text.contains("p.toml:26:"), "{text}");
        assert!(text.contains("unknown field `routing_key`"), "{text}");
        let text = errors("[notify]\npagerduty = { service = \"a b\" }\n");
        assert!(text.contains("must be the name of a routing key"), "{text}");
    }
}

#[cfg(test)]
mod slack_approver_tests {
    use crate::policy::parse_policy;

    /// A small valid policy with `agent` appended to `[agent]` and `row` to its one row.
    fn policy(agent: &str, row: &str) -> String {
        format!(
            r#"
[agent]
id = "T"
name = "Thermo"
{agent}
[window]
duration = "2h"
[[workloads]]
id = "w"
kind = "Deployment"
namespace = "ns"
name = "w"
[signals.errors]
promql = "x"
[[matrix]]
id = "bad"
severity = "Severity 2"
when = [{{ signal = "errors", above = 0.5 }}]
action = "rollback_after_approval"
method = "m"
{row}
[methods.m]
[[methods.m.steps]]
undo = "previous"
[verification]
rollout_timeout = "5m"
[notify]
"#
        )
    }

    #[test]
    fn users_and_groups_are_told_apart_and_a_row_overrides_the_agent() {
        let text = policy(
            r#"slack_approvers = ["U012AB3CD", "W0ABCDEF1", "S0614TZR7"]"#,
            r#"slack_approvers = ["U0MANAGER"]"#,
        );
        let p = parse_policy(std::path::Path::new("p.toml"), &text).unwrap();
        assert_eq!(p.agent.slack_approvers.users, ["U012AB3CD", "W0ABCDEF1"]);
        assert_eq!(p.agent.slack_approvers.groups, ["S0614TZR7"]);
        assert_eq!(p.slack_approvers(Some("bad")).users, ["U0MANAGER"]);
        assert!(p.slack_approvers(Some("bad")).groups.is_empty());
        assert_eq!(p.slack_approvers(None), &p.agent.slack_approvers);
        assert_eq!(p.slack_approvers(Some("nope")), &p.agent.slack_approvers);
        let none = parse_policy(std::path::Path::new("p.toml"), &policy("", "")).unwrap();
        assert!(none.slack_approvers(Some("bad")).is_empty());
    }

    #[test]
    fn a_name_instead_of_an_id_is_refused_with_its_line() {
        let text = policy(
            r#"slack_approvers = ["U012AB3CD", "@alice"]"#,
            r#"slack_approvers = ["C0CHANNEL"]"#,
        );
        let errors = parse_policy(std::path::Path::new("p.toml"), &text)
            .expect_err("invalid")
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("p.toml:5:")
                && errors[0].contains("agent.slack_approvers[1]")
                && errors[0].contains("\"@alice\" is not a Slack user id"),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("p.toml:21:")
                && errors[1].contains("matrix[0].slack_approvers[0]"),
            "{errors:?}"
        );
        let empty = policy("", "slack_approvers = []");
        let errors = parse_policy(std::path::Path::new("p.toml"), &empty).expect_err("invalid");
        assert!(errors[0].to_string().contains("is empty"), "{errors:?}");
    }
}
