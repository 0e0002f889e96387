//! Method steps as run for an incident: the journal that makes a resumed incident skip
//! what is already done.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError, parse_ts, ts};

/// One step on one workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRow {
    /// The incident the step ran for.
    pub incident_id: String,
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
    /// Inserts or replaces a step's record.
    pub fn save_step(&self, step: &StepRow) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO steps (incident_id, step_index, workload, name, kind, state, started_at, finished_at, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(incident_id, step_index, workload) DO UPDATE SET
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
                serde_json::to_string(&step.detail)?
            ],
        )?;
        Ok(())
    }

    /// The steps of an incident, in order.
    pub fn steps(&self, incident_id: &str) -> Result<Vec<StepRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT incident_id, step_index, workload, name, kind, state, started_at, finished_at, detail
             FROM steps WHERE incident_id = ?1 ORDER BY step_index, workload",
        )?;
        let mut rows = stmt.query([incident_id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let started: Option<String> = r.get(6)?;
            let finished: Option<String> = r.get(7)?;
            out.push(StepRow {
                incident_id: r.get(0)?,
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
