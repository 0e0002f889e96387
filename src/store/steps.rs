//! Method steps as run for an incident: the journal that makes a resumed incident skip
//! what is already done.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::audit::insert_audit;
use super::{AuditEntry, Store, StoreError, parse_ts, ts};

/// One step on one workload.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StepRow {
    /// The incident the step ran for.
    pub incident_id: String,
    /// The method the step belongs to: the incident's own, or its verification's recovery
    /// method, whose step 0 on a workload is not the main method's step 0.
    pub method: String,
    /// 0-based position of the step in its method.
    pub index: usize,
    /// The policy's id of the workload the step acted on.
    pub workload: String,
    /// The step's name (empty while `started`).
    pub name: String,
    /// The step's action kind, e.g. `undo` (empty while `started`).
    pub kind: String,
    /// `started`, `done`, `skipped`, `failed`, `dry_run`, `not_run`.
    pub state: String,
    /// When the step started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the step finished; `None` while it runs.
    pub finished_at: Option<DateTime<Utc>>,
    /// The step's outcome as JSON (output, plan or error); null while `started`.
    pub detail: serde_json::Value,
}

impl Store {
    /// Inserts or replaces a step's record (its first start time is kept).
    pub fn save_step(&self, step: &StepRow) -> Result<(), StoreError> {
        upsert_step(&*self.conn()?, step)
    }

    /// Records a finished step and the audit entry of what it did in one transaction: a
    /// mutation is journaled and audited together or not at all.
    pub fn finish_step(&self, step: &StepRow, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        upsert_step(&tx, step)?;
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    /// The steps of an incident, in order: method by method (in the order they first
    /// started), then by position and workload.
    pub fn steps(&self, incident_id: &str) -> Result<Vec<StepRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT incident_id, step_index, workload, name, kind, state, started_at, finished_at, detail, method
             FROM steps WHERE incident_id = ?1
             ORDER BY (SELECT MIN(rowid) FROM steps AS first
                       WHERE first.incident_id = steps.incident_id AND first.method = steps.method),
                      step_index, workload",
        )?;
        let mut rows = stmt.query([incident_id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let started: Option<String> = r.get(6)?;
            let finished: Option<String> = r.get(7)?;
            out.push(StepRow {
                incident_id: r.get(0)?,
                method: r.get(9)?,
                index: r.get::<_, i64>(1)? as usize,
                workload: r.get(2)?,
                name: r.get(3)?,
                kind: r.get(4)?,
                state: r.get(5)?,
                started_at: started.as_deref().map(parse_ts).transpose()?,
                finished_at: finished.as_deref().map(parse_ts).transpose()?,
                detail: serde_json::from_str(&r.get::<_, String>(8)?)?,
            });
        }
        Ok(out)
    }
}

/// Inserts or replaces a step's record (its first start time is kept).
fn upsert_step(conn: &rusqlite::Connection, step: &StepRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO steps (incident_id, step_index, workload, name, kind, state, started_at, finished_at, detail, method)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT(incident_id, method, step_index, workload) DO UPDATE SET
           name = excluded.name, kind = excluded.kind, state = excluded.state,
           started_at = COALESCE(steps.started_at, excluded.started_at),
           finished_at = excluded.finished_at, detail = excluded.detail",
        params![
            step.incident_id,
            step.index as i64,
            step.workload,
            step.name,
            step.kind,
            step.state,
            step.started_at.map(ts),
            step.finished_at.map(ts),
            serde_json::to_string(&step.detail)?,
            step.method
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::schema::MIGRATIONS;
    use super::super::{Store, Synchronous};

    /// A file written by a daemon before steps were keyed by method keeps its journal:
    /// each step becomes its incident's own method's step.
    #[test]
    fn steps_journaled_before_the_method_key_belong_to_the_incidents_method() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO meta VALUES ('schema_version', '3');",
            )
            .unwrap();
            for m in &MIGRATIONS[..3] {
                conn.execute_batch(m).unwrap();
            }
            conn.execute_batch(
                "INSERT INTO incidents (id, agent, namespace, workload, method, trigger, reason,
                     decision, state, created_at, updated_at)
                 VALUES ('INC-1', 'GL-002', 'greenlang', 'gl-002', 'quick', 'manual', 'r', '{}',
                     'monitoring', '2026-11-26T00:00:00Z', '2026-11-26T00:00:00Z');
                 INSERT INTO steps (incident_id, step_index, workload, name, kind, state, detail)
                 VALUES ('INC-1', 0, 'gl-002', 'undo', 'undo', 'done', '{}'),
                        ('INC-1', 1, 'gl-002', 'wait', 'wait_rollout', 'started', 'null');",
            )
            .unwrap();
        }
        let store = Store::open(&path, Synchronous::Normal).unwrap();
        let steps: Vec<_> = store
            .steps("INC-1")
            .unwrap()
            .into_iter()
            .map(|s| (s.method, s.index, s.state))
            .collect();
        assert_eq!(
            steps,
            [
                ("quick".to_string(), 0, "done".to_string()),
                ("quick".to_string(), 1, "started".to_string())
            ]
        );
    }
}
