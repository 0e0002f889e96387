//! The notification outbox: rows written in the same transaction as the incident
//! transition they announce, delivered later by the notifier task.

use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};
use serde::Serialize;

use super::{Store, StoreError, parse_ts, ts};
use crate::notify::Target;

/// A notification to queue: where it goes (`target`, with a stable `target_key` used to
/// keep per-target order and threads) and what it says (`message`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewOutbox {
    /// The target's stable key (e.g. `slack:#gl-002-incidents`): an incident's rows with one
    /// key are sent in order and share a thread.
    pub target_key: String,
    /// Where the message goes, as JSON (a Slack channel, a Statuspage component, a webhook
    /// name); never a secret URL.
    pub target: serde_json::Value,
    /// What it says: the rendered message with its stage and fields, as JSON.
    pub message: serde_json::Value,
}

/// A stored outbox row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    /// Row id, in queueing order.
    pub id: i64,
    /// The incident the message announces.
    pub incident_id: String,
    /// The target's stable key (e.g. `slack:#gl-002-incidents`).
    pub target_key: String,
    /// Where the message goes, as JSON; never a secret URL.
    pub target: serde_json::Value,
    /// What it says, as JSON.
    pub message: serde_json::Value,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// When the next delivery attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When it was delivered; `None` until then.
    pub sent_at: Option<DateTime<Utc>>,
    /// When the last delivery attempt started (recorded before the message left). A
    /// pending row with it set is in doubt: that attempt may have reached the target.
    pub attempted_at: Option<DateTime<Utc>>,
}

pub(super) fn insert_outbox(
    tx: &Transaction<'_>,
    incident_id: &str,
    item: &NewOutbox,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO outbox (incident_id, target_key, target, message, next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![
            incident_id,
            item.target_key,
            serde_json::to_string(&item.target)?,
            serde_json::to_string(&item.message)?,
            ts(at)
        ],
    )?;
    Ok(())
}

const COLUMNS: &str = "id, incident_id, target_key, target, message, state, attempts, next_attempt_at, last_error, sent_at, attempted_at";

fn from_row(r: &rusqlite::Row<'_>) -> Result<OutboxRow, StoreError> {
    let sent_at: Option<String> = r.get(9)?;
    let attempted_at: Option<String> = r.get(10)?;
    Ok(OutboxRow {
        id: r.get(0)?,
        incident_id: r.get(1)?,
        target_key: r.get(2)?,
        target: serde_json::from_str(&r.get::<_, String>(3)?)?,
        message: serde_json::from_str(&r.get::<_, String>(4)?)?,
        state: r.get(5)?,
        attempts: r.get(6)?,
        next_attempt_at: parse_ts(&r.get::<_, String>(7)?)?,
        last_error: r.get(8)?,
        sent_at: sent_at.as_deref().map(parse_ts).transpose()?,
        attempted_at: attempted_at.as_deref().map(parse_ts).transpose()?,
    })
}

/// A row with its target re-read as a [`Target`] (which keeps a webhook's name and drops
/// any URL) and its key rebuilt from it. A target that does not read is shown as its kind.
pub(super) fn redacted(mut row: OutboxRow) -> OutboxRow {
    match serde_json::from_value::<Target>(row.target.clone()) {
        Ok(target) => {
            row.target_key = target.key();
            row.target = serde_json::to_value(&target).unwrap_or_default();
        }
        Err(_) => {
            let kind = row.target["kind"].as_str().unwrap_or("unknown").to_string();
            row.target_key = kind.clone();
            row.target = serde_json::json!({ "kind": kind });
        }
    }
    row
}

impl Store {
    /// Queues notifications for an incident outside a transition.
    pub fn enqueue(
        &self,
        incident_id: &str,
        items: &[NewOutbox],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        for item in items {
            insert_outbox(&tx, incident_id, item, at)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Pending rows whose time has come, oldest first; only the oldest pending row of each
    /// (incident, target) is returned, so a target sees an incident's messages in order.
    pub fn outbox_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox o WHERE state = 'pending' AND next_attempt_at <= ?1
               AND id = (SELECT MIN(id) FROM outbox p WHERE p.state = 'pending'
                         AND p.incident_id = o.incident_id AND p.target_key = o.target_key)
             ORDER BY id LIMIT ?2"
        ))?;
        let mut rows = stmt.query(params![ts(now), limit as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(from_row(r)?);
        }
        Ok(out)
    }

    /// Every outbox row of an incident, in order, as the API may show it: rows queued
    /// before webhook targets were named held the webhook URL (a secret) in `target` and
    /// `target_key`; they come back with the target's name instead.
    pub fn outbox_for(&self, incident_id: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE incident_id = ?1 ORDER BY id"
        ))?;
        let mut rows = stmt.query([incident_id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(redacted(from_row(r)?));
        }
        Ok(out)
    }

    /// A row was delivered; `thread` (target key, data), what its delivery opened, is saved
    /// for the row's incident in the same transaction.
    pub fn outbox_sent(
        &self,
        id: i64,
        at: DateTime<Utc>,
        thread: Option<(&str, &serde_json::Value)>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE outbox SET state = 'sent', sent_at = ?2, attempts = attempts + 1 WHERE id = ?1",
            params![id, ts(at)],
        )?;
        if let Some((key, data)) = thread {
            tx.execute(
                "INSERT INTO threads (incident_id, target_key, data)
                 SELECT incident_id, ?2, ?3 FROM outbox WHERE id = ?1
                 ON CONFLICT(incident_id, target_key) DO UPDATE SET data = excluded.data",
                params![id, key, serde_json::to_string(data)?],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A delivery attempt of a pending row starts at `at` (recorded before it leaves).
    pub fn outbox_attempt(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE outbox SET attempted_at = ?2 WHERE id = ?1 AND state = 'pending'",
            params![id, ts(at)],
        )?;
        Ok(())
    }

    /// A delivery failed and will be retried at `next`; unless `in_doubt`, the attempt
    /// mark is cleared.
    pub fn outbox_retry(
        &self,
        id: i64,
        attempts: u32,
        next: DateTime<Utc>,
        error: &str,
        in_doubt: bool,
    ) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4,
               attempted_at = CASE WHEN ?5 THEN attempted_at END WHERE id = ?1",
            params![id, attempts, ts(next), error, in_doubt],
        )?;
        Ok(())
    }

    /// Delivery was given up.
    pub fn outbox_failed(&self, id: i64, attempts: u32, error: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE outbox SET state = 'failed', attempts = ?2, last_error = ?3 WHERE id = ?1",
            params![id, attempts, error],
        )?;
        Ok(())
    }

    /// Pending or failed notification counts, for `/metrics`.
    pub fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT state, COUNT(*) FROM outbox GROUP BY state")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A target's thread for an incident (Slack channel id + ts, Statuspage incident id).
    pub fn thread(
        &self,
        incident_id: &str,
        target_key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT data FROM threads WHERE incident_id = ?1 AND target_key = ?2",
        )?;
        let mut rows = stmt.query(params![incident_id, target_key])?;
        match rows.next()? {
            Some(r) => Ok(Some(serde_json::from_str(&r.get::<_, String>(0)?)?)),
            None => Ok(None),
        }
    }

    /// Remembers a target's thread.
    pub fn save_thread(
        &self,
        incident_id: &str,
        target_key: &str,
        data: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO threads (incident_id, target_key, data) VALUES (?1, ?2, ?3)
             ON CONFLICT(incident_id, target_key) DO UPDATE SET data = excluded.data",
            params![incident_id, target_key, serde_json::to_string(data)?],
        )?;
        Ok(())
    }
}
