//! The audit log: who did what, to what, and why.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError, parse_ts, ts};

/// One audited action.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The token's name, or `rollbackd` for the daemon's own actions.
    pub actor: String,
    /// e.g. `rollback.trigger`, `rollback.approve`, `agent.pause`, `step.undo`.
    pub action: String,
    /// An incident id, an agent id or `global`.
    pub target: String,
    /// Why, as the caller or rollbackd said.
    pub reason: String,
    /// Details of the action as JSON (e.g. what changed, a step's output).
    pub detail: serde_json::Value,
}

pub(super) fn insert_audit(tx: &rusqlite::Connection, e: &AuditEntry) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit (at, actor, action, target, reason, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![ts(e.at), e.actor, e.action, e.target, e.reason, serde_json::to_string(&e.detail)?],
    )?;
    Ok(())
}

impl Store {
    /// Appends to the audit log.
    pub fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        insert_audit(&tx, entry)?;
        tx.commit()?;
        Ok(())
    }

    /// Audit entries about `target` (or all when `None`), oldest first.
    pub fn audit_log(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT at, actor, action, target, reason, detail FROM audit WHERE (?1 IS NULL OR target = ?1) ORDER BY id LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![target, limit as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(AuditEntry {
                at: parse_ts(&r.get::<_, String>(0)?)?,
                actor: r.get(1)?,
                action: r.get(2)?,
                target: r.get(3)?,
                reason: r.get(4)?,
                detail: serde_json::from_str(&r.get::<_, String>(5)?)?,
            });
        }
        Ok(out)
    }
}
