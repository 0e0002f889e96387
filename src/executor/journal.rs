//! The step journal: what ran, so a restarted daemon resumes a method without running any
//! step twice. Every store (the daemon's `StateStore`) is a [`StepJournal`]; [`MemoryJournal`]
//! is in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StepOutcome;

/// A journal write failed.
#[derive(Debug, thiserror::Error)]
#[error("step journal: {0}")]
pub struct JournalError(pub String);

impl JournalError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        "journal"
    }
}

/// What the journal knows about one step on one workload.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its outcome, once finished.
    pub outcome: Option<StepOutcome>,
}

/// Where step progress is recorded. `incident` is the executor's journal key
/// (`<incident>/<method>`), `step` the step's index, `workload` the workload id.
#[async_trait]
pub trait StepJournal: Send + Sync {
    /// The record of one step on one workload, if any.
    async fn status(&self, incident: &str, step: usize, workload: &str) -> Option<StepRecord>;
    /// Records that a step starts.
    async fn started(
        &self,
        incident: &str,
        step: usize,
        workload: &str,
        at: DateTime<Utc>,
    ) -> Result<(), JournalError>;
    /// Records a step's outcome.
    async fn finished(
        &self,
        incident: &str,
        step: usize,
        workload: &str,
        outcome: &StepOutcome,
    ) -> Result<(), JournalError>;
}

type Key = (String, usize, String);

/// An in-memory journal (tests, and daemons without a store).
#[derive(Debug, Default)]
pub struct MemoryJournal {
    records: Mutex<HashMap<Key, StepRecord>>,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(incident: &str, step: usize, workload: &str) -> Key {
        (incident.to_string(), step, workload.to_string())
    }

    /// Every record (for inspection).
    pub fn records(&self) -> Vec<(String, usize, String, StepRecord)> {
        let map = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = map
            .iter()
            .map(|((i, s, w), r)| (i.clone(), *s, w.clone(), r.clone()))
            .collect();
        v.sort_by(|a, b| (&a.0, a.1, &a.2).cmp(&(&b.0, b.1, &b.2)));
        v
    }
}

#[async_trait]
impl StepJournal for MemoryJournal {
    async fn status(&self, incident: &str, step: usize, workload: &str) -> Option<StepRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&Self::key(incident, step, workload))
            .cloned()
    }

    async fn started(
        &self,
        incident: &str,
        step: usize,
        workload: &str,
        at: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                Self::key(incident, step, workload),
                StepRecord {
                    started_at: at,
                    outcome: None,
                },
            );
        Ok(())
    }

    async fn finished(
        &self,
        incident: &str,
        step: usize,
        workload: &str,
        outcome: &StepOutcome,
    ) -> Result<(), JournalError> {
        let mut map = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let rec = map
            .entry(Self::key(incident, step, workload))
            .or_insert(StepRecord {
                started_at: outcome.started_at.unwrap_or_else(Utc::now),
                outcome: None,
            });
        rec.outcome = Some(outcome.clone());
        Ok(())
    }
}
