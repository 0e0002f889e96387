//! Any store, through its contract, as the notifiers' [`OutboxStore`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{StateStore, StoreError};
use crate::notify::{NotifyError, OutboxItem, OutboxStore, ThreadRef};

fn err(e: StoreError) -> NotifyError {
    NotifyError::Store(e.to_string())
}

#[async_trait]
impl OutboxStore for Arc<dyn StateStore> {
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxItem>, NotifyError> {
        let rows = self.outbox_due(now, limit).await.map_err(err)?;
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
                    in_doubt_since: r.attempted_at,
                })
            })
            .collect()
    }

    async fn mark_sent(
        &self,
        id: i64,
        at: DateTime<Utc>,
        thread: Option<&ThreadRef>,
    ) -> Result<(), NotifyError> {
        self.outbox_sent(id, at, thread.map(|t| (t.key.as_str(), &t.data)))
            .await
            .map_err(err)
    }

    async fn mark_attempt(&self, id: i64, at: DateTime<Utc>) -> Result<(), NotifyError> {
        self.outbox_attempt(id, at).await.map_err(err)
    }

    async fn mark_retry(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
        error: &str,
        in_doubt: bool,
    ) -> Result<(), NotifyError> {
        self.outbox_retry(id, attempts, next_attempt_at, error, in_doubt)
            .await
            .map_err(err)
    }

    async fn mark_failed(&self, id: i64, attempts: u32, error: &str) -> Result<(), NotifyError> {
        self.outbox_failed(id, attempts, error).await.map_err(err)
    }

    async fn thread(
        &self,
        incident_id: &str,
        target_key: &str,
    ) -> Result<Option<ThreadRef>, NotifyError> {
        Ok(StateStore::thread(&**self, incident_id, target_key)
            .await
            .map_err(err)?
            .map(|data| ThreadRef {
                key: target_key.to_string(),
                data,
            }))
    }

    async fn save_thread(&self, incident_id: &str, thread: &ThreadRef) -> Result<(), NotifyError> {
        StateStore::save_thread(&**self, incident_id, &thread.key, &thread.data)
            .await
            .map_err(err)
    }
}
