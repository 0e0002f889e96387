//! An in-memory [`OutboxStore`], for tests and the demo.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

use super::error::NotifyError;
use super::message::{Message, OutboxItem, Target, ThreadRef};
use super::outbox::OutboxStore;

/// Where an outbox row stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Waiting to be (re)sent.
    Pending,
    /// Delivered.
    Sent {
        /// When.
        at: DateTime<Utc>,
    },
    /// Given up.
    Failed,
}

/// One row as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// The item (with its current attempts and next attempt time).
    pub item: OutboxItem,
    /// Where it stands.
    pub status: OutboxStatus,
    /// The last error, if an attempt failed.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct State {
    next_id: i64,
    rows: BTreeMap<i64, OutboxRecord>,
    threads: HashMap<(String, String), ThreadRef>,
}

/// An [`OutboxStore`] in a mutex; nothing survives the process.
#[derive(Default)]
pub struct MemoryOutbox {
    state: Mutex<State>,
}

impl MemoryOutbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message (as the rollback path does); returns the row id.
    pub fn push(&self, message: Message, target: Target, now: DateTime<Utc>) -> i64 {
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        let item = OutboxItem {
            id,
            message,
            target,
            attempts: 0,
            next_attempt_at: now,
            in_doubt_since: None,
        };
        state.rows.insert(
            id,
            OutboxRecord {
                item,
                status: OutboxStatus::Pending,
                last_error: None,
            },
        );
        id
    }

    /// One row.
    pub fn record(&self, id: i64) -> Option<OutboxRecord> {
        self.lock().rows.get(&id).cloned()
    }

    /// Every row in id order.
    pub fn records(&self) -> Vec<OutboxRecord> {
        self.lock().rows.values().cloned().collect()
    }

    fn update(&self, id: i64, f: impl FnOnce(&mut OutboxRecord)) -> Result<(), NotifyError> {
        let mut state = self.lock();
        let row = state
            .rows
            .get_mut(&id)
            .ok_or_else(|| NotifyError::Store(format!("no outbox item {id}")))?;
        f(row);
        Ok(())
    }
}

#[async_trait::async_trait]
impl OutboxStore for MemoryOutbox {
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxItem>, NotifyError> {
        let state = self.lock();
        let mut seen = HashSet::new();
        let mut due = Vec::new();
        for row in state.rows.values() {
            if row.status != OutboxStatus::Pending {
                continue;
            }
            let key = (row.item.message.incident_id.clone(), row.item.target.key());
            // Only the oldest pending item of a queue counts, due or not.
            if seen.insert(key) && row.item.next_attempt_at <= now {
                due.push(row.item.clone());
                if due.len() >= limit {
                    break;
                }
            }
        }
        Ok(due)
    }

    async fn mark_sent(
        &self,
        id: i64,
        at: DateTime<Utc>,
        thread: Option<&ThreadRef>,
    ) -> Result<(), NotifyError> {
        let mut state = self.lock();
        let row = state
            .rows
            .get_mut(&id)
            .ok_or_else(|| NotifyError::Store(format!("no outbox item {id}")))?;
        row.item.attempts = row.item.attempts.saturating_add(1);
        row.status = OutboxStatus::Sent { at };
        let incident = row.item.message.incident_id.clone();
        if let Some(thread) = thread {
            state
                .threads
                .insert((incident, thread.key.clone()), thread.clone());
        }
        Ok(())
    }

    async fn mark_attempt(&self, id: i64, at: DateTime<Utc>) -> Result<(), NotifyError> {
        self.update(id, |row| {
            if row.status == OutboxStatus::Pending {
                row.item.in_doubt_since = Some(at);
            }
        })
    }

    async fn mark_retry(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
        error: &str,
        in_doubt: bool,
    ) -> Result<(), NotifyError> {
        self.update(id, |row| {
            row.item.attempts = attempts;
            row.item.next_attempt_at = next_attempt_at;
            if !in_doubt {
                row.item.in_doubt_since = None;
            }
            row.last_error = Some(error.to_string());
        })
    }

    async fn mark_failed(&self, id: i64, attempts: u32, error: &str) -> Result<(), NotifyError> {
        self.update(id, |row| {
            row.item.attempts = attempts;
            row.status = OutboxStatus::Failed;
            row.last_error = Some(error.to_string());
        })
    }

    async fn thread(
        &self,
        incident_id: &str,
        target_key: &str,
    ) -> Result<Option<ThreadRef>, NotifyError> {
        let key = (incident_id.to_string(), target_key.to_string());
        Ok(self.lock().threads.get(&key).cloned())
    }

    async fn save_thread(&self, incident_id: &str, thread: &ThreadRef) -> Result<(), NotifyError> {
        let key = (incident_id.to_string(), thread.key.clone());
        self.lock().threads.insert(key, thread.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use rollbackd_core::policy::Stage;

    fn message(incident: &str, stage: Stage) -> Message {
        Message {
            incident_id: incident.into(),
            agent_id: "GL-002".into(),
            agent_name: "B".into(),
            stage,
            severity: None,
            text: "t".into(),
            fields: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn due_yields_only_queue_heads() {
        let store = MemoryOutbox::new();
        let now = Utc::now();
        let slack = Target::Slack {
            channel: "#c".into(),
        };
        let a1 = store.push(message("a", Stage::Initiated), slack.clone(), now);
        let a2 = store.push(message("a", Stage::InProgress), slack.clone(), now);
        let b1 = store.push(message("b", Stage::Initiated), slack, now);
        let ids = |v: Vec<OutboxItem>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(ids(store.due(now, 10).await.unwrap()), vec![a1, b1]);
        // A head waiting for its retry holds back its queue only.
        store
            .mark_retry(a1, 1, now + TimeDelta::seconds(60), "boom", false)
            .await
            .unwrap();
        assert_eq!(ids(store.due(now, 10).await.unwrap()), vec![b1]);
        store.mark_failed(a1, 2, "gave up").await.unwrap();
        assert_eq!(ids(store.due(now, 10).await.unwrap()), vec![a2, b1]);
        assert_eq!(ids(store.due(now, 1).await.unwrap()), vec![a2]);
        assert!(store.mark_sent(99, now, None).await.is_err());
    }
}
