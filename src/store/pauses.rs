//! Pauses: automation frozen for one agent or globally. Pause wins over everything.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError, parse_ts, ts};

/// The scope key of the global pause.
pub const GLOBAL: &str = "global";

/// An active pause.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Pause {
    /// An agent id, or `global`.
    pub scope: String,
    /// Name of the caller who paused (the API token's name).
    pub paused_by: String,
    /// Why, as the caller said.
    pub reason: String,
    /// When the pause began.
    pub at: DateTime<Utc>,
}

impl Store {
    /// Pauses a scope (idempotent: the first pause's record is kept).
    pub fn pause(&self, pause: &Pause) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO pauses (scope, paused_by, reason, at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(scope) DO NOTHING",
            params![pause.scope, pause.paused_by, pause.reason, ts(pause.at)],
        )?;
        Ok(())
    }

    /// Resumes a scope; returns whether it was paused.
    pub fn resume(&self, scope: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()?
            .execute("DELETE FROM pauses WHERE scope = ?1", [scope])?
            == 1)
    }

    /// Every active pause.
    pub fn pauses(&self) -> Result<Vec<Pause>, StoreError> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare_cached("SELECT scope, paused_by, reason, at FROM pauses ORDER BY scope")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(Pause {
                scope: r.get(0)?,
                paused_by: r.get(1)?,
                reason: r.get(2)?,
                at: parse_ts(&r.get::<_, String>(3)?)?,
            });
        }
        Ok(out)
    }

    /// The pause that applies to `agent` (global first), if any.
    pub fn paused(&self, agent: &str) -> Result<Option<Pause>, StoreError> {
        let pauses = self.pauses()?;
        Ok(pauses
            .iter()
            .find(|p| p.scope == GLOBAL)
            .or_else(|| pauses.iter().find(|p| p.scope == agent))
            .cloned())
    }
}
