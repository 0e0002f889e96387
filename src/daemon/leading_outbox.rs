//! The outbox as the delivery worker sees it when the replicas share one store (the
//! Kubernetes store): delivered by the leader only, or a standby would send every message
//! again. A standby's worker finds nothing due until its replica leads (without leader
//! election a replica always leads); a leader that steps down leaves what is pending to the
//! next one.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::notify::{NotifyError, OutboxItem, OutboxStore, ThreadRef};

/// An [`OutboxStore`] whose due items are only given out while `leading` says so.
pub struct LeadingOutbox {
    inner: Arc<dyn OutboxStore>,
    leading: watch::Receiver<bool>,
}

impl LeadingOutbox {
    /// `inner`, delivered while `leading` holds `true`.
    pub fn new(inner: Arc<dyn OutboxStore>, leading: watch::Receiver<bool>) -> Self {
        Self { inner, leading }
    }
}

#[async_trait]
impl OutboxStore for LeadingOutbox {
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxItem>, NotifyError> {
        if !*self.leading.borrow() {
            return Ok(Vec::new());
        }
        self.inner.due(now, limit).await
    }

    async fn mark_sent(
        &self,
        id: i64,
        at: DateTime<Utc>,
        thread: Option<&ThreadRef>,
    ) -> Result<(), NotifyError> {
        self.inner.mark_sent(id, at, thread).await
    }

    async fn mark_attempt(&self, id: i64, at: DateTime<Utc>) -> Result<(), NotifyError> {
        self.inner.mark_attempt(id, at).await
    }

    async fn mark_retry(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
        error: &str,
        in_doubt: bool,
    ) -> Result<(), NotifyError> {
        self.inner
            .mark_retry(id, attempts, next_attempt_at, error, in_doubt)
            .await
    }

    async fn mark_failed(&self, id: i64, attempts: u32, error: &str) -> Result<(), NotifyError> {
        self.inner.mark_failed(id, attempts, error).await
    }

    async fn thread(
        &self,
        incident_id: &str,
        target_key: &str,
    ) -> Result<Option<ThreadRef>, NotifyError> {
        self.inner.thread(incident_id, target_key).await
    }

    async fn save_thread(&self, incident_id: &str, thread: &ThreadRef) -> Result<(), NotifyError> {
        self.inner.save_thread(incident_id, thread).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{MemoryOutbox, Message, Target};
    use rollbackd_core::policy::Stage;

    #[tokio::test]
    async fn a_standby_finds_nothing_due_until_it_leads() {
        let memory = Arc::new(MemoryOutbox::new());
        let now = Utc::now();
        memory.push(
            Message {
                incident_id: "i-1".into(),
                agent_id: "GL-002".into(),
                agent_name: "BoilerEfficiencyOptimizer".into(),
                stage: Stage::Initiated,
                severity: None,
                text: "rolling back".into(),
                fields: Default::default(),
            },
            Target::Webhook { name: "h".into() },
            now,
        );
        let (tx, rx) = watch::channel(false);
        let outbox = LeadingOutbox::new(memory, rx);
        assert!(outbox.due(now, 10).await.expect("due").is_empty());
        tx.send(true).expect("sent");
        assert_eq!(outbox.due(now, 10).await.expect("due").len(), 1);
    }
}
