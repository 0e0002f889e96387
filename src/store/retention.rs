//! Retention: what is older than the configured age goes, in one transaction, and nothing
//! an open incident or a pending notification still needs.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError, ts};

/// How many rows one pass deleted, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Finished incidents (resolved, escalated, cancelled, superseded) last changed before
    /// the cutoff, with their transitions, steps and threads.
    pub incidents: usize,
    /// Backups of those incidents (an open incident's backups are never deleted).
    pub backups: usize,
    /// Notifications of those incidents (all delivered or failed: an incident with one
    /// pending is not deleted), and finished ones of incidents no longer stored.
    pub outbox: usize,
    /// Audit entries before the cutoff whose target is no longer a stored incident.
    pub audit: usize,
    /// Alerts received before the cutoff.
    pub alerts: usize,
}

impl Pruned {
    /// Rows deleted in all.
    pub fn total(&self) -> usize {
        self.incidents + self.backups + self.outbox + self.audit + self.alerts
    }
}

/// The states whose incidents retention may delete: the daemon has nothing left to do.
const FINISHED: &str = "('resolved', 'escalated', 'cancelled', 'superseded')";

impl Store {
    /// Deletes what is older than `cutoff` (see [`Pruned`] for what each table keeps).
    /// An incident with a notification still pending stays until it is delivered.
    pub fn prune_older_than(&self, cutoff: DateTime<Utc>) -> Result<Pruned, StoreError> {
        let cutoff = ts(cutoff);
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS expired (id TEXT PRIMARY KEY);
             DELETE FROM expired;",
        )?;
        tx.execute(
            &format!(
                "INSERT INTO expired (id)
                 SELECT i.id FROM incidents i
                 WHERE i.state IN {FINISHED} AND i.updated_at < ?1
                   AND NOT EXISTS (SELECT 1 FROM outbox o
                                   WHERE o.incident_id = i.id AND o.state = 'pending')"
            ),
            params![cutoff],
        )?;
        let mut pruned = Pruned::default();
        for table in ["transitions", "steps", "threads"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE incident_id IN (SELECT id FROM expired)"),
                [],
            )?;
        }
        pruned.backups = tx.execute(
            "DELETE FROM backups WHERE incident_id IN (SELECT id FROM expired)",
            [],
        )?;
        // an expired incident has no pending row; a kept incident keeps its whole record
        pruned.outbox = tx.execute(
            "DELETE FROM outbox WHERE incident_id IN (SELECT id FROM expired)
               OR (state != 'pending' AND created_at < ?1
                   AND incident_id NOT IN (SELECT id FROM incidents))",
            params![cutoff],
        )?;
        pruned.incidents = tx.execute(
            "DELETE FROM incidents WHERE id IN (SELECT id FROM expired)",
            [],
        )?;
        pruned.audit = tx.execute(
            "DELETE FROM audit WHERE at < ?1 AND target NOT IN (SELECT id FROM incidents)",
            params![cutoff],
        )?;
        pruned.alerts = tx.execute("DELETE FROM alerts WHERE received_at < ?1", params![cutoff])?;
        tx.execute("DELETE FROM expired", [])?;
        tx.commit()?;
        Ok(pruned)
    }
}
