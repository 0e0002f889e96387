//! The SQLite store as the notifiers' [`OutboxStore`].

use chrono::{DateTime, Utc};

use super::{Store, StoreError};
use crate::notify::{NotifyError, OutboxItem, OutboxStore, ThreadRef};

fn err(e: StoreError) -> NotifyError {
    NotifyError::Store(e.to_string())
}

impl OutboxStore for Store {
    fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxItem>, NotifyError> {
        let rows = self.outbox_due(now, limit).map_err(err)?;
        rows.into_iter()
            .map(|r| {
                Ok(OutboxItem {
                    id: r.id,
                    message: serde_json::from_value(r.message).map_err(|e| {
                        NotifyError::Store(format!("outbox row {}: message: {e}", r.id))
                    })?,
                    target: serde_json::from_value(r.target).map_err(|e| {
                        NotifyError::Store(format!("outbox row {}: target: {e}", r.id))
                    })?,
                    attempts: r.attempts,
                    next_attempt_at: r.next_attempt_at,
                })
            })
            .collect()
    }

    fn mark_sent(&self, id: i64, at: DateTime<Utc>) -> Result<(), NotifyError> {
        self.outbox_sent(id, at).map_err(err)
    }

    fn mark_retry(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), NotifyError> {
        self.outbox_retry(id, attempts, next_attempt_at, error)
            .map_err(err)
    }

    fn mark_failed(&self, id: i64, attempts: u32, error: &str) -> Result<(), NotifyError> {
        self.outbox_failed(id, attempts, error).map_err(err)
    }

    fn thread(
        &self,
        incident_id: &str,
        target_key: &str,
    ) -> Result<Option<ThreadRef>, NotifyError> {
        Ok(Store::thread(self, incident_id, target_key)
            .map_err(err)?
            .map(|data| ThreadRef {
                key: target_key.to_string(),
                data,
            }))
    }

    fn save_thread(&self, incident_id: &str, thread: &ThreadRef) -> Result<(), NotifyError> {
        Store::save_thread(self, incident_id, &thread.key, &thread.data).map_err(err)
    }
}
