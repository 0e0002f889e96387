//! Any store, through its contract, as the executor's step journal and as the
//! pre-rollback backup sink, so a restarted daemon skips steps already done and keeps the
//! first backup of every object.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{AuditEntry, StateStore, StepRow};
use crate::cluster::ClusterError;
use crate::cluster::backup::BackupSink;
use crate::executor::{JournalError, StepJournal, StepOutcome, StepRecord, StepState};

/// The executor keys its journal `<incident>/<method>`; the store files steps by incident
/// and method.
fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or((key, ""))
}

fn incident_of(key: &str) -> &str {
    split_key(key).0
}

fn state_name(state: &StepState) -> &'static str {
    match state {
        StepState::Done => "done",
        StepState::Skipped(_) => "skipped",
        StepState::Failed(_) => "failed",
        StepState::NotRun => "not_run",
        StepState::DryRun(_) => "dry_run",
    }
}

#[async_trait]
impl StepJournal for Arc<dyn StateStore> {
    async fn status(&self, incident: &str, step: usize, workload: &str) -> Option<StepRecord> {
        let (incident, method) = split_key(incident);
        let rows = self.steps(incident).await.ok()?;
        let row = rows
            .into_iter()
            .find(|r| r.method == method && r.index == step && r.workload == workload)?;
        let outcome = match row.state.as_str() {
            "started" => None,
            _ => serde_json::from_value::<StepOutcome>(row.detail.clone()).ok(),
        };
        Some(StepRecord {
            started_at: row.started_at.unwrap_or_else(Utc::now),
            outcome,
        })
    }

    async fn started(
        &self,
        incident: &str,
        step: usize,
        workload: &str,
        at: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.save_step(&StepRow {
            incident_id: incident_of(incident).to_string(),
            method: split_key(incident).1.to_string(),
            index: step,
            workload: workload.to_string(),
            name: String::new(),
            kind: String::new(),
            state: "started".into(),
            started_at: Some(at),
            finished_at: None,
            detail: Value::Null,
        })
        .await
        .map_err(|e| JournalError(e.to_string()))
    }

    async fn finished(
        &self,
        incident: &str,
        step: usize,
        workload: &str,
        outcome: &StepOutcome,
    ) -> Result<(), JournalError> {
        let row = StepRow {
            incident_id: incident_of(incident).to_string(),
            method: split_key(incident).1.to_string(),
            index: step,
            workload: workload.to_string(),
            name: outcome.name.clone(),
            kind: outcome.kind.clone(),
            state: state_name(&outcome.state).into(),
            started_at: outcome.started_at,
            finished_at: outcome.finished_at.or_else(|| Some(Utc::now())),
            detail: serde_json::to_value(outcome).map_err(|e| JournalError(e.to_string()))?,
        };
        // every mutation rollbackd makes is audited, once, in the same write as its journal
        // entry (a process killed between two writes would leave it unaudited); a resumed
        // run skips finished steps
        let written = if matches!(outcome.state, StepState::NotRun | StepState::DryRun(_)) {
            self.save_step(&row).await
        } else {
            let entry = AuditEntry {
                at: outcome.finished_at.unwrap_or_else(Utc::now),
                actor: "rollbackd".into(),
                action: format!("step.{}", outcome.kind),
                target: incident_of(incident).to_string(),
                reason: format!(
                    "{} on {}: {}",
                    outcome.name,
                    workload,
                    state_name(&outcome.state)
                ),
                detail: outcome.detail.clone(),
            };
            self.finish_step(&row, &entry).await
        };
        written.map_err(|e| JournalError(e.to_string()))
    }
}

#[async_trait]
impl BackupSink for Arc<dyn StateStore> {
    async fn save(
        &self,
        incident_id: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        object: &Value,
    ) -> Result<(), ClusterError> {
        let existing = self
            .backups(incident_id)
            .await
            .map_err(|e| ClusterError::Backup(e.to_string()))?;
        if existing
            .iter()
            .any(|(k, ns, n, _)| k == kind && ns == namespace && n == name)
        {
            return Ok(());
        }
        self.save_backup(incident_id, kind, namespace, name, object, Utc::now())
            .await
            .map_err(|e| ClusterError::Backup(e.to_string()))
    }
}
