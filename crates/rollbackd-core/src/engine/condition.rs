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
        // no transition of a matching alert yet: it has not fired since the deploy
        let latest = series
            .last()
            .copied()
            .or_else(|| is_alert.then(|| Sample::new(self.deployed_at, Some(0.0))));
        // alert series are kept current by their transitions: they never go stale
        let stale = (!is_alert).then_some((self.now, self.policy.window.stale_after));
        let baseline = cond
            .relative_to_baseline
            .then(|| self.baseline(&cond.signal))
            .flatten();
        let (mut evidence, divisor) = judge(cond, latest, stale, baseline);
        if evidence.truth != Truth::True {
            return evidence;
        }
        let compare = |v: f64| divisor.map_or(v, |b| v / b);
        let held = self.held_for(&series, is_alert, |v| cond.accepts(compare(v)));
        evidence.held_for = Some(format_duration(held));
        if let Some(required) = cond.held_for
            && held < required
        {
            evidence.note = Some(format!(
                "holds, but only for {} of the required {}",
                format_duration(held),
                format_duration(required)
            ));
            evidence.truth = Truth::False;
        }
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

/// Judges a condition on its signal's latest sample, before any `for`: no sample, a sample
/// older than `stale` allows (`(now, stale_after)`; `None`: never stale), no data, or a
/// baseline-relative condition without a usable `baseline` is unknown; otherwise true or
/// false by the thresholds. Returns the evidence and the baseline it divided by. The engine,
/// [`guards_now`](super::guards_now) and the runner's post-rollback checks judge with it alike.
pub fn judge(
    cond: &Condition,
    latest: Option<Sample>,
    stale: Option<(DateTime<Utc>, TimeDelta)>,
    baseline: Option<f64>,
) -> (ConditionEvidence, Option<f64>) {
    let mut evidence = ConditionEvidence::unknown(cond);
    let Some(latest) = latest else {
        evidence.note = Some("no samples".into());
        return (evidence, None);
    };
    if let Some((now, stale_after)) = stale {
        let age = now - latest.at();
        if age > stale_after {
            evidence.note = Some(format!("stale: last sample {} ago", format_duration(age)));
            return (evidence, None);
        }
    }
    let Some(value) = latest.value() else {
        evidence.note = Some("no data (NaN or null)".into());
        return (evidence, None);
    };
    evidence.value = Some(value);
    let divisor = if cond.relative_to_baseline {
        match baseline {
            Some(b) if b > 0.0 && b.is_finite() => {
                evidence.baseline = Some(b);
                evidence.ratio = Some(value / b);
                Some(b)
            }
            Some(b) => {
                evidence.note = Some(format!(
                    "baseline is {}: ratio undefined",
                    super::format_value(b)
                ));
                return (evidence, None);
            }
            None => {
                evidence.note =
                    Some("no baseline: no samples in the lookback before the deploy".into());
                return (evidence, None);
            }
        }
    } else {
        None
    };
    let compared = divisor.map_or(value, |b| value / b);
    evidence.truth = if cond.accepts(compared) {
        Truth::True
    } else {
        Truth::False
    };
    (evidence, divisor)
}
