//! What the engine knows about one workload's current deploy: the deploy itself, signal
//! samples (before and after it) and events. Plain data, filled by the edges.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// One value of a signal at a time; no value means no data (missing or NaN). Packed in
/// 16 bytes (microseconds, and NaN for no data): a 10,000-workload fleet keeps minutes of
/// samples of every signal.
#[derive(Clone, Copy)]
pub struct Sample {
    at_us: i64,
    value: f64,
}

impl Sample {
    /// A sample (times are kept to the microsecond). A non-finite value (NaN, ±Inf: an
    /// x/0 ratio of inconsistent counters) is no data.
    pub fn new(at: DateTime<Utc>, value: Option<f64>) -> Self {
        Sample {
            at_us: at.timestamp_micros(),
            value: value.filter(|v| v.is_finite()).unwrap_or(f64::NAN),
        }
    }

    /// When it was taken.
    pub fn at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.at_us).unwrap_or_default()
    }

    /// Its value; `None` for no data.
    pub fn value(&self) -> Option<f64> {
        (!self.value.is_nan()).then_some(self.value)
    }
}

impl PartialEq for Sample {
    fn eq(&self, other: &Self) -> bool {
        self.at_us == other.at_us && self.value() == other.value()
    }
}

impl std::fmt::Debug for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sample")
            .field("at", &self.at())
            .field("value", &self.value())
            .finish()
    }
}

impl Serialize for Sample {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Sample", 2)?;
        st.serialize_field("at", &self.at())?;
        st.serialize_field("value", &self.value())?;
        st.end()
    }
}

/// A new revision of the watched workload: it opens the post-deploy window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Deploy {
    /// When the revision was deployed; the post-deploy window counts from here.
    pub at: DateTime<Utc>,
    /// The workload's revision number, when known.
    pub revision: Option<u64>,
    /// The new revision's image, when known.
    pub image: Option<String>,
    /// Baselines captured elsewhere (e.g. PromQL with `offset`); they win over baselines
    /// computed from pre-deploy samples.
    pub baselines: BTreeMap<String, f64>,
    /// Each signal's value just before the deploy (given by the source, or frozen from the
    /// last sample before it): a condition that already held then is not the deploy's doing.
    pub pre_deploy: BTreeMap<String, f64>,
}

/// Where the workload's rollout stands (from the cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutPhase {
    /// Still replacing pods, within its progress deadline.
    Progressing,
    /// Every replica updated and available.
    Complete,
    /// Past its progress deadline.
    Stalled,
}

/// The smallest and largest finite value a signal took since the deploy: a condition (an
/// interval) held at every post-deploy sample exactly when it holds at both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extent {
    /// Smallest finite value since the deploy.
    pub min: f64,
    /// Largest finite value since the deploy.
    pub max: f64,
}

/// An Alertmanager alert changing state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertTransition {
    /// When rollbackd learned of the change.
    pub at: DateTime<Utc>,
    /// Alertmanager's `startsAt`: when the condition began (may be long before `at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// True when the alert started firing, false when it resolved.
    pub firing: bool,
    /// Identity of the alert across deliveries.
    pub fingerprint: String,
    /// The alert's labels as Alertmanager sent them.
    pub labels: BTreeMap<String, String>,
}

/// A human approval for the current deploy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    /// When the approval was given.
    pub at: DateTime<Utc>,
    /// Who approved, when known.
    pub by: Option<String>,
    /// The row the approval was given for, when named; any approval counts for the deploy.
    pub row: Option<String>,
}

/// A rollback of the current deploy that already happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackRecord {
    /// When the rollback happened.
    pub at: DateTime<Utc>,
    /// The revision recorded with the rollback, when known; the engine reads only `at`.
    pub revision: Option<u64>,
}

/// Everything observed for one workload, in time order.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    deploy: Option<Deploy>,
    /// Each signal's samples, oldest first (a short list: a policy has a handful of signals).
    samples: Vec<(String, Vec<Sample>)>,
    alerts: Vec<AlertTransition>,
    approvals: Vec<Approval>,
    rollbacks: Vec<RollbackRecord>,
    /// Per signal, the range of its values since the deploy.
    extents: Vec<(String, Extent)>,
    /// The latest rollout phase and when it was read.
    rollout: Option<(DateTime<Utc>, Option<RolloutPhase>)>,
    /// Rows that have been undecidable (missing data) since when, continuously.
    unknown_since: Vec<(String, DateTime<Utc>)>,
    /// Metric values are rates between two direct scrapes, not PromQL over a range: no value
    /// reaches back before the deploy by more than one scrape.
    direct_scrape: bool,
}

impl Observations {
    /// Empty observations.
    pub fn new() -> Self {
        Self::default()
    }

    /// Observations whose metric values come from direct scrapes (see
    /// [`Observations::direct_scrape`]).
    pub fn scraped() -> Self {
        Observations {
            direct_scrape: true,
            ..Self::default()
        }
    }

    /// Whether metric values are rates between direct scrapes rather than PromQL over a
    /// range (a PromQL range selector then says nothing about how far a value reaches back).
    pub fn direct_scrape(&self) -> bool {
        self.direct_scrape
    }

    /// The current deploy, if one was seen.
    pub fn deploy(&self) -> Option<&Deploy> {
        self.deploy.as_ref()
    }

    /// A new deploy: approvals, rollbacks and undecidable rows belonged to the previous
    /// one. Samples already recorded since it start its extents.
    pub fn record_deploy(&mut self, deploy: Deploy) {
        self.approvals.clear();
        self.rollbacks.clear();
        self.unknown_since.clear();
        self.extents.clear();
        for (signal, series) in &self.samples {
            for s in series.iter().filter(|s| s.at() >= deploy.at) {
                if let Some(v) = s.value() {
                    widen(&mut self.extents, signal, v);
                }
            }
        }
        self.deploy = Some(deploy);
    }

    /// Adds a sample; a non-finite value (NaN, ±Inf) is stored as no data. A sample for a time already recorded
    /// replaces it; an older one is inserted in place.
    pub fn record_sample(&mut self, signal: &str, at: DateTime<Utc>, value: Option<f64>) {
        let value = value.filter(|v| v.is_finite());
        let i = match self.samples.iter().position(|(s, _)| s == signal) {
            Some(i) => i,
            None => {
                self.samples.push((signal.to_string(), Vec::new()));
                self.samples.len() - 1
            }
        };
        let sample = Sample::new(at, value);
        if let (Some(v), Some(d)) = (sample.value(), &self.deploy)
            && at >= d.at
        {
            widen(&mut self.extents, signal, v);
        }
        let series = &mut self.samples[i].1;
        // compare at the kept precision: a time recorded twice replaces, whatever its nanoseconds
        let at = sample.at();
        let pos = series.partition_point(|s| s.at() < at);
        match series.get_mut(pos) {
            Some(existing) if existing.at() == at => *existing = sample,
            Some(_) => series.insert(pos, sample),
            None => series.push(sample),
        }
    }

    /// The range of a signal's values since the deploy.
    pub fn extent(&self, signal: &str) -> Option<Extent> {
        self.extents
            .iter()
            .find(|(s, _)| s == signal)
            .map(|(_, e)| *e)
    }

    /// The workload's rollout phase read at `at` (`None`: could not be read).
    pub fn record_rollout(&mut self, at: DateTime<Utc>, phase: Option<RolloutPhase>) {
        self.rollout = Some((at, phase));
    }

    /// The rollout phase read last, unless older than `stale_after` before `now`.
    pub fn rollout_phase(
        &self,
        now: DateTime<Utc>,
        stale_after: TimeDelta,
    ) -> Option<RolloutPhase> {
        self.rollout
            .filter(|(at, _)| *at <= now && now - *at <= stale_after)
            .and_then(|(_, phase)| phase)
    }

    /// Since when `row` has been undecidable without a break, if it is now.
    pub fn unknown_since(&self, row: &str) -> Option<DateTime<Utc>> {
        self.unknown_since
            .iter()
            .find(|(r, _)| r == row)
            .map(|(_, at)| *at)
    }

    /// Remembers which rows the decision at `now` could not evaluate: a row that stays
    /// undecidable past its runbook deadline is handed to a human.
    pub fn track_unknown(&mut self, unknown_rows: &[String], now: DateTime<Utc>) {
        self.unknown_since
            .retain(|(row, _)| unknown_rows.iter().any(|u| u == row));
        for row in unknown_rows {
            if !self.unknown_since.iter().any(|(r, _)| r == row) {
                self.unknown_since.push((row.clone(), now));
            }
        }
    }

    /// A signal's value just before the deploy: given with it, else frozen at the deploy.
    pub fn pre_deploy(&self, signal: &str) -> Option<f64> {
        self.deploy.as_ref()?.pre_deploy.get(signal).copied()
    }

    /// An alert fired or resolved. Redeliveries of the same state are ignored.
    pub fn record_alert(&mut self, transition: AlertTransition) {
        let current = self
            .alerts
            .iter()
            .rev()
            .find(|t| t.fingerprint == transition.fingerprint)
            .map(|t| t.firing);
        if current == Some(transition.firing) || (current.is_none() && !transition.firing) {
            return;
        }
        self.alerts.push(transition);
    }

    /// A human approved rolling back the current deploy.
    pub fn record_approval(&mut self, approval: Approval) {
        self.approvals.push(approval);
    }

    /// The current deploy was rolled back.
    pub fn record_rollback(&mut self, rollback: RollbackRecord) {
        self.rollbacks.push(rollback);
    }

    /// Samples of one signal, oldest first.
    pub fn samples(&self, signal: &str) -> &[Sample] {
        self.samples
            .iter()
            .find(|(s, _)| s == signal)
            .map_or(&[], |(_, series)| series.as_slice())
    }

    /// Alert transitions, oldest first.
    pub fn alerts(&self) -> &[AlertTransition] {
        &self.alerts
    }

    /// The first approval at or before `now`.
    pub fn approval(&self, now: DateTime<Utc>) -> Option<&Approval> {
        self.approvals.iter().find(|a| a.at <= now)
    }

    /// The first rollback at or before `now`.
    pub fn rollback(&self, now: DateTime<Utc>) -> Option<&RollbackRecord> {
        self.rollbacks.iter().find(|r| r.at <= now)
    }

    /// Drops each signal's samples older than `keep(signal)` before `now`.
    pub fn prune_each(&mut self, now: DateTime<Utc>, keep: impl Fn(&str) -> TimeDelta) {
        for (signal, series) in &mut self.samples {
            let cutoff = now - keep(signal);
            let old = series.partition_point(|s| s.at() < cutoff);
            // keep the newest old sample: it is still the current value
            series.drain(..old.saturating_sub(1));
        }
    }

    /// Drops alert transitions older than `keep` before `now`, as [`Self::prune_each`] does
    /// for samples: each alert keeps the transition that gives its state at the cutoff when
    /// that state is firing (so a long-firing alert keeps its `startsAt` and a `for` still
    /// sees it held), and an alert resolved before the cutoff is forgotten (absent and
    /// resolved read the same).
    pub fn prune_alerts(&mut self, now: DateTime<Utc>, keep: TimeDelta) {
        let cutoff = now - keep;
        // per fingerprint, the index of its last transition before the cutoff
        let mut state_at_cutoff: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, t) in self.alerts.iter().enumerate() {
            if t.at < cutoff {
                state_at_cutoff.insert(&t.fingerprint, i);
            }
        }
        let keep_old: Vec<usize> = state_at_cutoff
            .into_values()
            .filter(|&i| self.alerts[i].firing)
            .collect();
        let mut i = 0;
        self.alerts.retain(|t| {
            let kept = t.at >= cutoff || keep_old.contains(&i);
            i += 1;
            kept
        });
    }

    /// The mean of a signal's finite samples in `lookback` before the deploy.
    pub fn sample_baseline(&self, signal: &str, lookback: TimeDelta) -> Option<f64> {
        let deploy = self.deploy.as_ref()?;
        let from = deploy.at - lookback;
        let values: Vec<f64> = self
            .samples(signal)
            .iter()
            .filter(|s| s.at() >= from && s.at() < deploy.at)
            .filter_map(|s| s.value())
            .filter(|v| v.is_finite())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }

    /// Reference values for the current deploy that arrived after it (e.g. from
    /// Prometheus): they replace those frozen from samples.
    pub fn update_reference(
        &mut self,
        baselines: BTreeMap<String, f64>,
        pre_deploy: BTreeMap<String, f64>,
    ) {
        if let Some(deploy) = self.deploy.as_mut() {
            deploy.baselines.extend(baselines);
            deploy.pre_deploy.extend(pre_deploy);
        }
    }

    /// Fixes the current deploy's missing pre-deploy values from the last sample of each
    /// signal before it (not older than `max_age(signal)`), before pruning drops them.
    pub fn freeze_pre_deploy(&mut self, max_age: impl Fn(&str) -> TimeDelta) {
        let Some(deploy) = self.deploy.as_ref() else {
            return;
        };
        let frozen: Vec<(String, f64)> = self
            .samples
            .iter()
            .filter(|(signal, _)| !deploy.pre_deploy.contains_key(signal))
            .filter_map(|(signal, series)| {
                let before = series.partition_point(|s| s.at() < deploy.at);
                let last = series[..before].last()?;
                let fresh = deploy.at - last.at() <= max_age(signal);
                Some((signal.clone(), last.value().filter(|_| fresh)?))
            })
            .collect();
        if let Some(deploy) = self.deploy.as_mut() {
            deploy.pre_deploy.extend(frozen);
        }
    }

    /// Fixes the current deploy's missing baselines from the samples before it, so that
    /// pruning those samples later cannot move them.
    pub fn freeze_baselines<'a>(&mut self, lookbacks: impl Iterator<Item = (&'a str, TimeDelta)>) {
        let frozen: Vec<(String, f64)> = lookbacks
            .filter(|(signal, _)| {
                self.deploy
                    .as_ref()
                    .is_some_and(|d| !d.baselines.contains_key(*signal))
            })
            .filter_map(|(signal, lookback)| {
                Some((signal.to_string(), self.sample_baseline(signal, lookback)?))
            })
            .collect();
        if let Some(deploy) = self.deploy.as_mut() {
            deploy.baselines.extend(frozen);
        }
    }
}

/// Widens `signal`'s extent to include `v`.
fn widen(extents: &mut Vec<(String, Extent)>, signal: &str, v: f64) {
    match extents.iter_mut().find(|(s, _)| s == signal) {
        Some((_, e)) => {
            e.min = e.min.min(v);
            e.max = e.max.max(v);
        }
        None => extents.push((signal.to_string(), Extent { min: v, max: v })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + TimeDelta::minutes(minute)
    }

    fn every_minute(o: &mut Observations, signal: &str, from: i64, to: i64, value: f64) {
        for m in from..=to {
            o.record_sample(signal, at(m), Some(value));
        }
    }

    #[test]
    fn a_time_recorded_twice_replaces_at_the_kept_precision() {
        let mut o = Observations::new();
        let t = at(1) + TimeDelta::nanoseconds(1_234_567);
        o.record_sample("s", t, Some(1.0));
        o.record_sample("s", t, Some(2.0));
        o.record_sample("s", t + TimeDelta::nanoseconds(100), Some(3.0));
        assert_eq!(o.samples("s").len(), 1);
        assert_eq!(o.samples("s")[0].value(), Some(3.0));
    }

    #[test]
    fn a_sample_packs_its_time_and_no_data_into_16_bytes() {
        assert_eq!(std::mem::size_of::<Sample>(), 16);
        let t = at(7) + TimeDelta::microseconds(123_456);
        let s = Sample::new(t, Some(0.25));
        assert_eq!((s.at(), s.value()), (t, Some(0.25)));
        let none = Sample::new(t, None);
        assert_eq!(none.value(), None);
        assert_eq!(none, Sample::new(t, Some(f64::NAN)), "NaN is no data");
        assert_ne!(none, s);
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            serde_json::json!({"at": "1970-01-01T00:07:00.123456Z", "value": 0.25})
        );
        assert_eq!(
            serde_json::to_value(none).unwrap()["value"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn each_signal_keeps_its_own_history_and_the_sample_before_it() {
        let mut o = Observations::new();
        every_minute(&mut o, "long", 0, 60, 1.0);
        every_minute(&mut o, "short", 0, 60, 1.0);
        o.prune_each(at(60), |s| {
            TimeDelta::minutes(if s == "long" { 20 } else { 5 })
        });
        // minute 40 onwards is inside; minute 39 is the value current at the cutoff
        assert_eq!(o.samples("long").first().map(|s| s.at()), Some(at(39)));
        assert_eq!(o.samples("long").len(), 22);
        assert_eq!(o.samples("short").first().map(|s| s.at()), Some(at(54)));
        assert_eq!(o.samples("short").len(), 7);
    }

    fn alert(minute: i64, fingerprint: &str, firing: bool) -> AlertTransition {
        AlertTransition {
            at: at(minute),
            started_at: Some(at(minute)),
            firing,
            fingerprint: fingerprint.into(),
            labels: BTreeMap::from([("name".to_string(), fingerprint.to_string())]),
        }
    }

    #[test]
    fn alert_history_is_pruned_to_the_state_at_the_cutoff() {
        let mut o = Observations::new();
        // "long" fires at 0 and stays firing; "gone" fires and resolves before the cutoff;
        // "spans" fires before the cutoff and resolves after it; "flaps" flaps throughout
        o.record_alert(alert(0, "long", true));
        o.record_alert(alert(5, "gone", true));
        o.record_alert(alert(10, "gone", false));
        o.record_alert(alert(20, "spans", true));
        o.record_alert(alert(55, "spans", false));
        for m in (0..60).step_by(2) {
            o.record_alert(alert(m, "flaps", m % 4 == 0));
        }
        // each alert's series from the cutoff on, as the engine reads it
        let series = |o: &Observations, name: &str| -> Vec<Option<f64>> {
            let matcher = BTreeMap::from([("name".to_string(), name.to_string())]);
            let all = crate::engine::alerts::alert_series(&matcher, o.alerts(), at(60));
            let current = all
                .iter()
                .rev()
                .find(|s| s.at() < at(30))
                .map(|s| s.value());
            current
                .into_iter()
                .chain(all.iter().filter(|s| s.at() >= at(30)).map(|s| s.value()))
                .collect()
        };
        let names = ["long", "gone", "spans", "flaps"];
        let before: Vec<_> = names.iter().map(|n| series(&o, n)).collect();
        o.prune_alerts(at(60), TimeDelta::minutes(30));
        let fingerprints: BTreeSet<&str> =
            o.alerts().iter().map(|t| t.fingerprint.as_str()).collect();
        assert_eq!(
            fingerprints,
            BTreeSet::from(["long", "spans", "flaps"]),
            "alerts firing at the cutoff stay; those resolved before it go"
        );
        let long: Vec<_> = o
            .alerts()
            .iter()
            .filter(|t| t.fingerprint == "long")
            .collect();
        assert_eq!(long.len(), 1);
        assert_eq!(
            long[0].started_at,
            Some(at(0)),
            "a long-firing alert keeps startsAt"
        );
        assert!(o.alerts().iter().all(|t| t.at >= at(30) || t.firing));
        assert!(
            o.alerts().len() < 20,
            "{} transitions kept",
            o.alerts().len()
        );
        // from the cutoff on, every alert's series reads as before pruning
        let after: Vec<_> = names.iter().map(|n| series(&o, n)).collect();
        assert_eq!(after[0], before[0]);
        assert_eq!(after[2], before[2]);
        assert_eq!(after[3], before[3]);
        assert_eq!(before[1], vec![Some(0.0)], "resolved before the cutoff");
        assert_eq!(after[1], Vec::<Option<f64>>::new(), "forgotten: no series");
        // a redelivered resolve of a forgotten alert changes nothing
        o.record_alert(alert(61, "gone", false));
        assert!(o.alerts().iter().all(|t| t.fingerprint != "gone"));
    }

    #[test]
    fn a_frozen_baseline_survives_pruning_of_the_samples_it_came_from() {
        let mut o = Observations::new();
        every_minute(&mut o, "latency", 0, 59, 0.5);
        o.record_deploy(Deploy {
            at: at(60),
            baselines: BTreeMap::from([("given".to_string(), 9.0)]),
            ..Deploy::default()
        });
        o.freeze_baselines(
            [
                ("latency", TimeDelta::hours(1)),
                ("given", TimeDelta::hours(1)),
                ("unsampled", TimeDelta::hours(1)),
            ]
            .into_iter(),
        );
        every_minute(&mut o, "latency", 60, 180, 2.0);
        o.prune_each(at(180), |_| TimeDelta::minutes(10));
        let baselines = &o.deploy().map(|d| d.baselines.clone()).unwrap_or_default();
        assert_eq!(baselines.get("latency"), Some(&0.5));
        // a baseline the source gave is not replaced; no samples, no baseline
        assert_eq!(baselines.get("given"), Some(&9.0));
        assert_eq!(baselines.get("unsampled"), None);
        // without freezing, the same pruning loses the pre-deploy samples
        assert_eq!(o.sample_baseline("latency", TimeDelta::hours(1)), None);
    }
}
