//! Blame only what the deploy caused: a condition that already held before the deploy is
//! not evidence against it, and a value computed over a range that still reaches before the
//! deploy only counts when the pre-deploy value shows the change came after it.

use chrono::{DateTime, Utc};

use super::alerts::firing_alerts;
use super::condition::Context;
use super::decision::{ConditionEvidence, Truth};
use super::format_value;
use super::observations::RolloutPhase;
use crate::policy::duration::format_duration;
use crate::policy::{Condition, KubeSignal, Signal, SignalSource};

impl Context<'_> {
    /// Evaluates a matrix row's condition: [`Context::evaluate`], then, when it holds,
    /// whether it counts against this deploy. Guards use plain `evaluate` (safety does not
    /// care who caused a condition).
    pub fn evaluate_against_deploy(&self, cond: &Condition) -> ConditionEvidence {
        let mut e = self.evaluate(cond);
        let Some(signal) = self.policy.signals.get(&cond.signal) else {
            return e;
        };
        if signal.can_predate_deploy() && !cond.relative_to_baseline {
            e.pre_deploy = self.observations.pre_deploy(&cond.signal);
        }
        if e.truth != Truth::True {
            return e;
        }
        match &signal.source {
            SignalSource::Alert { labels } => self.alert_blame(labels, &mut e),
            SignalSource::Kube(KubeSignal::AvailableReplicas)
                if self.rollout_phase() == Some(RolloutPhase::Progressing) =>
            {
                e.truth = Truth::False;
                e.note = Some(
                    "rollout in progress within its progress deadline: not yet an outage".into(),
                );
            }
            _ if signal.can_predate_deploy() && !cond.relative_to_baseline => {
                self.sample_blame(cond, signal, &mut e);
            }
            _ => {}
        }
        e
    }

    fn rollout_phase(&self) -> Option<RolloutPhase> {
        self.observations
            .rollout_phase(self.now, self.policy.window.stale_after)
    }

    /// An alert counts only if it started after the deploy (plus the policy's grace).
    fn alert_blame(
        &self,
        labels: &std::collections::BTreeMap<String, String>,
        e: &mut ConditionEvidence,
    ) {
        let counted_from = self.deployed_at + self.policy.window.alert_grace;
        let firing = firing_alerts(labels, self.observations.alerts(), self.now);
        let start = |t: &&super::AlertTransition| t.started_at.unwrap_or(t.at);
        if firing.is_empty() || firing.iter().any(|t| start(t) >= counted_from) {
            return;
        }
        let since = firing.iter().map(start).min().unwrap_or(self.deployed_at);
        let grace = self.policy.window.alert_grace;
        let after = if grace > chrono::TimeDelta::zero() {
            format!("the deploy + {}", format_duration(grace))
        } else {
            "the deploy".to_string()
        };
        e.preexisting = Some(format!(
            "held before the deploy since {}: the alert started before {after} ({})",
            rfc3339(since),
            rfc3339(counted_from)
        ));
    }

    /// A sampled condition counts unless it held before the deploy and at every sample
    /// since, without getting `worsened_factor` times worse.
    fn sample_blame(&self, cond: &Condition, signal: &Signal, e: &mut ConditionEvidence) {
        let age = self.now - self.deployed_at;
        let reaching_back = signal
            .range()
            .filter(|r| age < *r && !self.observations.direct_scrape());
        let Some(value) = e.value else { return };
        match e.pre_deploy {
            Some(pre) if bad_side(cond, pre) => {
                let unbroken = self
                    .observations
                    .extent(&cond.signal)
                    .is_none_or(|x| bad_side(cond, x.min) && bad_side(cond, x.max));
                let factor = self.policy.window.worsened_factor;
                if !unbroken {
                    e.note = Some(format!(
                        "held before the deploy ({}) but cleared after it: this occurrence is new",
                        format_value(pre)
                    ));
                } else if worsened(cond, pre, value, factor) {
                    e.note = Some(format!(
                        "held before the deploy ({}), now at least {}x worse",
                        format_value(pre),
                        format_value(factor)
                    ));
                } else {
                    e.preexisting = Some(format!(
                        "held before the deploy: {} was {} when it was made ({}), and has not cleared or got {}x worse since",
                        cond.signal,
                        format_value(pre),
                        rfc3339(self.deployed_at),
                        format_value(factor)
                    ));
                }
            }
            Some(pre) => {
                if let Some(range) = reaching_back {
                    e.note = Some(format!(
                        "the value over [{}] still partly reads pre-deploy data; before the deploy it was {}, short of the threshold: the change came after the deploy",
                        format_duration(range),
                        format_value(pre)
                    ));
                }
            }
            None => {
                e.needs_pre_deploy = true;
                if let Some(range) = reaching_back {
                    e.truth = Truth::False;
                    e.note = Some(format!(
                        "not yet attributable: the value over [{}] reads pre-deploy data until {}, and there is no pre-deploy value to compare",
                        format_duration(range),
                        rfc3339(self.deployed_at + range)
                    ));
                }
            }
        }
    }
}

/// Whether `v` is on the bad side of the condition's bound that says "bad": the lower bound
/// when there is one (`above`, `at_least`: a band's upper bound only separates it from a
/// worse row), else the upper bound (`below`, `at_most`), else `equals`.
fn bad_side(cond: &Condition, v: f64) -> bool {
    if let Some(e) = cond.equals {
        return v == e;
    }
    if let Some(l) = cond.lower {
        return if l.inclusive {
            v >= l.value
        } else {
            v > l.value
        };
    }
    cond.upper.is_some_and(|u| {
        if u.inclusive {
            v <= u.value
        } else {
            v < u.value
        }
    })
}

/// Whether `value` is `factor` times worse than `pre` in the direction the condition looks:
/// higher for a lower bound (`above`, `at_least`), lower for an upper bound only.
fn worsened(cond: &Condition, pre: f64, value: f64, factor: f64) -> bool {
    if cond.equals.is_some() {
        return false;
    }
    if cond.lower.is_some() {
        return pre > 0.0 && value >= pre * factor;
    }
    pre > 0.0 && value <= pre / factor
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeDelta;

    use crate::engine::{AlertTransition, DecisionKind, Deploy, Observations, decide};
    use crate::policy::{Policy, parse_policy};

    const POLICY: &str = r#"
[agent]
id = "T-1"
name = "Test"
[window]
duration = "2h"
alert_grace = "30s"
worsened_factor = 2
[[workloads]]
id = "w"
kind = "Deployment"
namespace = "ns"
name = "w"
[signals.error_rate]
promql = "sum(rate(e[5m])) / sum(rate(r[5m]))"
[signals.available]
kube = "available_replicas"
[signals.outage]
alert = { condition = "outage" }
[[matrix]]
id = "p0"
severity = "P0"
when = [{ signal = "error_rate", above = 0.1 }]
action = "rollback"
method = "m"
[[matrix]]
id = "down"
severity = "P0"
when = [{ signal = "available", at_most = 0, for = "1m" }]
action = "rollback"
method = "m"
[[matrix]]
id = "alerted"
severity = "P0"
when = [{ signal = "outage", equals = 1 }]
action = "rollback"
method = "m"
[methods.m]
[[methods.m.steps]]
undo = "previous"
[verification]
rollout_timeout = "5m"
[notify]
"#;

    fn t(seconds: i64) -> chrono::DateTime<chrono::Utc> {
        "2025-01-01T12:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            + TimeDelta::seconds(seconds)
    }

    /// A deploy at t(0) with `error_rate` at `before` until then, healthy otherwise.
    fn deployed(before: f64) -> (Policy, Observations) {
        let policy = parse_policy(Path::new("t.toml"), POLICY).unwrap();
        let mut o = Observations::new();
        for s in [-120, -60] {
            o.record_sample("error_rate", t(s), Some(before));
            o.record_sample("available", t(s), Some(3.0));
        }
        o.record_deploy(Deploy {
            at: t(0),
            ..Deploy::default()
        });
        o.freeze_pre_deploy(|s| policy.pre_deploy_max_age(s));
        (policy, o)
    }

    fn at(o: &mut Observations, s: i64, error_rate: Option<f64>) {
        o.record_sample("error_rate", t(s), error_rate);
        o.record_sample("available", t(s), Some(3.0));
    }

    #[test]
    fn a_condition_that_held_before_the_deploy_counts_only_once_clearly_worse() {
        let (policy, mut o) = deployed(0.2);
        at(&mut o, 30, Some(0.3));
        let d = decide(&policy, &o, t(30));
        assert_eq!(d.decision, DecisionKind::Notify, "{}", d.reason);
        assert_eq!(d.evidence.preexisting[0].row, "p0");
        at(&mut o, 60, Some(0.41));
        let d = decide(&policy, &o, t(60));
        assert_eq!(d.decision, DecisionKind::Rollback, "2x worse: {}", d.reason);
        assert!(
            d.evidence.conditions[0]
                .note
                .as_deref()
                .is_some_and(|n| n.contains("2x worse")),
            "{:?}",
            d.evidence.conditions[0]
        );
    }

    #[test]
    fn a_condition_that_cleared_after_the_deploy_and_returned_is_new() {
        let (policy, mut o) = deployed(0.2);
        at(&mut o, 30, Some(0.01));
        assert_eq!(decide(&policy, &o, t(30)).decision, DecisionKind::None);
        at(&mut o, 400, Some(0.2));
        let d = decide(&policy, &o, t(400));
        assert_eq!(d.decision, DecisionKind::Rollback, "{}", d.reason);
    }

    #[test]
    fn a_range_reaching_before_the_deploy_counts_when_the_value_before_was_healthy() {
        let (policy, mut o) = deployed(0.0);
        at(&mut o, 20, Some(0.15));
        let d = decide(&policy, &o, t(20));
        assert_eq!(d.decision, DecisionKind::Rollback, "{}", d.reason);
        let note = d.evidence.conditions[0].note.clone().unwrap_or_default();
        assert!(
            note.contains("still partly reads pre-deploy data"),
            "{note}"
        );
        // with nothing from before the deploy, the [5m] range must first be covered
        let policy = parse_policy(Path::new("t.toml"), POLICY).unwrap();
        let mut o = Observations::new();
        o.record_deploy(Deploy {
            at: t(0),
            ..Deploy::default()
        });
        at(&mut o, 20, Some(0.15));
        assert_eq!(decide(&policy, &o, t(20)).decision, DecisionKind::None);
        at(&mut o, 300, Some(0.15));
        assert_eq!(decide(&policy, &o, t(300)).decision, DecisionKind::Rollback);
        // a rate between two direct scrapes reaches back one scrape, not the PromQL's [5m]
        let mut o = Observations::scraped();
        o.record_deploy(Deploy {
            at: t(0),
            ..Deploy::default()
        });
        at(&mut o, 20, Some(0.15));
        assert_eq!(decide(&policy, &o, t(20)).decision, DecisionKind::Rollback);
    }

    #[test]
    fn an_alert_counts_only_if_it_started_after_the_deploy_and_its_grace() {
        let (policy, mut o) = deployed(0.0);
        at(&mut o, 40, Some(0.0));
        let fire = |o: &mut Observations, fingerprint: &str, started: i64| {
            o.record_alert(AlertTransition {
                at: t(40),
                started_at: Some(t(started)),
                firing: true,
                fingerprint: fingerprint.into(),
                labels: [("condition".to_string(), "outage".to_string())].into(),
            })
        };
        fire(&mut o, "old", -3600);
        fire(&mut o, "during-grace", 20);
        let d = decide(&policy, &o, t(40));
        assert_eq!(d.decision, DecisionKind::Notify, "{}", d.reason);
        assert!(d.reason.contains("deploy + 30s"), "{}", d.reason);
        fire(&mut o, "new", 35);
        assert_eq!(decide(&policy, &o, t(40)).decision, DecisionKind::Rollback);
    }

    #[test]
    fn no_available_pod_is_not_an_outage_while_the_rollout_progresses() {
        use crate::engine::RolloutPhase;
        let (policy, mut o) = deployed(0.0);
        for s in (0..=180).step_by(30) {
            o.record_sample("error_rate", t(s), Some(0.0));
            o.record_sample("available", t(s), Some(0.0));
            o.record_rollout(t(s), Some(RolloutPhase::Progressing));
        }
        let d = decide(&policy, &o, t(180));
        assert_eq!(d.decision, DecisionKind::None, "{}", d.reason);
        o.record_rollout(t(180), Some(RolloutPhase::Stalled));
        assert_eq!(decide(&policy, &o, t(180)).decision, DecisionKind::Rollback);
        // a phase read too long ago says nothing
        o.record_rollout(t(-600), Some(RolloutPhase::Progressing));
        assert_eq!(decide(&policy, &o, t(180)).decision, DecisionKind::Rollback);
    }

    #[test]
    fn infinity_is_no_data() {
        let (policy, mut o) = deployed(0.0);
        at(&mut o, 30, Some(f64::INFINITY));
        let d = decide(&policy, &o, t(30));
        assert_eq!(d.decision, DecisionKind::Inconclusive, "{}", d.reason);
        at(&mut o, 60, Some(f64::NEG_INFINITY));
        assert_eq!(
            decide(&policy, &o, t(60)).decision,
            DecisionKind::Inconclusive
        );
    }
}
