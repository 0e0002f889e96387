//! Evaluating one condition against a signal's samples, with three-valued truth.

use std::borrow::Cow;

use chrono::{DateTime, TimeDelta, Utc};

use super::alerts::alert_series;
use super::decision::{ConditionEvidence, Truth};
use super::observations::{Observations, Sample};
use crate::policy::duration::format_duration;
use crate::policy::{Condition, Policy, SignalSource};

/// What a condition is evaluated against.
pub struct Context<'a> {
    pub policy: &'a Policy,
    pub observations: &'a Observations,
    pub deployed_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

impl Context<'_> {
    /// A signal's samples up to now; alert signals are derived from alert transitions.
    fn series(&self, signal: &str) -> (Cow<'_, [Sample]>, bool) {
        match self.policy.signals.get(signal).map(|s| &s.source) {
            Some(SignalSource::Alert { labels }) => (
                Cow::Owned(alert_series(labels, self.observations.alerts(), self.now)),
                true,
            ),
            _ => {
                let all = self.observations.samples(signal);
                let upto = all.partition_point(|s| s.at() <= self.now);
                (Cow::Borrowed(&all[..upto]), false)
            }
        }
    }

    /// The pre-deploy baseline: given with the deploy, or the mean of the samples in the
    /// signal's lookback before the deploy.
    pub fn baseline(&self, signal: &str) -> Option<f64> {
        let deploy = self.observations.deploy()?;
        if let Some(v) = deploy.baselines.get(signal) {
            return Some(*v);
        }
        let lookback = self.policy.signals.get(signal)?.baseline?;
        self.observations.sample_baseline(signal, lookback)
    }

    /// Evaluates one condition.
    pub fn evaluate(&self, cond: &Condition) -> ConditionEvidence {
        let (series, is_alert) = self.series(&cond.signal);
        let mut evidence = ConditionEvidence::unknown(cond);
        let latest = match series.last() {
            Some(s) => *s,
            None if is_alert => Sample::new(self.deployed_at, Some(0.0)),
            None => {
                evidence.note = Some("no samples".into());
                return evidence;
            }
        };
        if !is_alert {
            let age = self.now - latest.at();
            if age > self.policy.window.stale_after {
                evidence.note = Some(format!("stale: last sample {} ago", format_duration(age)));
                return evidence;
            }
        }
        let Some(value) = latest.value() else {
            evidence.note = Some("no data (NaN or null)".into());
            return evidence;
        };
        evidence.value = Some(value);
        let baseline = if cond.relative_to_baseline {
            match self.baseline(&cond.signal) {
                Some(b) if b > 0.0 && b.is_finite() => {
                    evidence.baseline = Some(b);
                    Some(b)
                }
                Some(_) => {
                    evidence.note = Some("baseline is 0: ratio undefined".into());
                    return evidence;
                }
                None => {
                    evidence.note =
                        Some("no baseline: no samples in the lookback before the deploy".into());
                    return evidence;
                }
            }
        } else {
            None
        };
        let compare = |v: f64| baseline.map_or(v, |b| v / b);
        evidence.ratio = baseline.map(|b| value / b);
        if !cond.accepts(compare(value)) {
            evidence.truth = Truth::False;
            return evidence;
        }
        let held = self.held_for(&series, is_alert, |v| cond.accepts(compare(v)));
        evidence.held_for = Some(format_duration(held));
        evidence.truth = match cond.held_for {
            Some(required) if held < required => {
                evidence.note = Some(format!(
                    "holds, but only for {} of the required {}",
                    format_duration(held),
                    format_duration(required)
                ));
                Truth::False
            }
            _ => Truth::True,
        };
        evidence
    }

    /// How long, up to now, every sample since the deploy has passed `accepts`.
    fn held_for(
        &self,
        series: &[Sample],
        is_alert: bool,
        accepts: impl Fn(f64) -> bool,
    ) -> TimeDelta {
        let mut start = self.now;
        for s in series.iter().rev() {
            match s.value() {
                Some(v) if accepts(v) => start = s.at(),
                _ => break,
            }
        }
        if is_alert && series.is_empty() {
            start = self.deployed_at;
        }
        // persistence counts from the deploy, not before it
        let start = start.max(self.deployed_at);
        (self.now - start).max(TimeDelta::zero())
    }
}
