//! What the engine knows about one workload's current deploy: the deploy itself, signal
//! samples (before and after it) and events. Plain data, filled by the edges.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// One value of a signal; `None` means no data (missing or NaN).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub value: Option<f64>,
}

/// A new revision of the watched workload: it opens the post-deploy window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Deploy {
    pub at: DateTime<Utc>,
    pub revision: Option<u64>,
    pub image: Option<String>,
    /// Baselines captured elsewhere (e.g. PromQL with `offset`); they win over baselines
    /// computed from pre-deploy samples.
    pub baselines: BTreeMap<String, f64>,
}

/// An Alertmanager alert changing state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertTransition {
    pub at: DateTime<Utc>,
    pub firing: bool,
    /// Identity of the alert across deliveries.
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
}

/// A human approval for the current deploy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    pub at: DateTime<Utc>,
    pub by: Option<String>,
    pub row: Option<String>,
}

/// A rollback of the current deploy that already happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackRecord {
    pub at: DateTime<Utc>,
    pub revision: Option<u64>,
}

/// Everything observed for one workload, in time order.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    deploy: Option<Deploy>,
    samples: BTreeMap<String, Vec<Sample>>,
    alerts: Vec<AlertTransition>,
    approvals: Vec<Approval>,
    rollbacks: Vec<RollbackRecord>,
}

impl Observations {
    /// Empty observations.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current deploy, if one was seen.
    pub fn deploy(&self) -> Option<&Deploy> {
        self.deploy.as_ref()
    }

    /// A new deploy: approvals and rollbacks belonged to the previous one.
    pub fn record_deploy(&mut self, deploy: Deploy) {
        self.approvals.clear();
        self.rollbacks.clear();
        self.deploy = Some(deploy);
    }

    /// Adds a sample; NaN is stored as no data. A sample for a time already recorded
    /// replaces it; an older one is inserted in place.
    pub fn record_sample(&mut self, signal: &str, at: DateTime<Utc>, value: Option<f64>) {
        let value = value.filter(|v| !v.is_nan());
        let series = self.samples.entry(signal.to_string()).or_default();
        let sample = Sample { at, value };
        let pos = series.partition_point(|s| s.at < at);
        match series.get_mut(pos) {
            Some(existing) if existing.at == at => *existing = sample,
            Some(_) => series.insert(pos, sample),
            None => series.push(sample),
        }
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
        self.samples.get(signal).map_or(&[], Vec::as_slice)
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

    /// Drops samples older than `keep` before `now` (baseline lookbacks must fit in it).
    pub fn prune(&mut self, now: DateTime<Utc>, keep: TimeDelta) {
        let cutoff = now - keep;
        for series in self.samples.values_mut() {
            let old = series.partition_point(|s| s.at < cutoff);
            // keep the newest old sample: it is still the current value
            series.drain(..old.saturating_sub(1));
        }
    }
}
