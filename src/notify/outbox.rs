//! What the delivery worker needs from persistence, and what it reports.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::NotifyError;
use super::message::{OutboxItem, ThreadRef};

/// Persistence the worker needs: every store (the daemon's `StateStore`) implements it, and
/// so does [`super::MemoryOutbox`].
///
/// Items of one incident to one target (same `message.incident_id` and `target.key()`)
/// form a queue in id order; only its oldest pending item may be sent.
#[async_trait::async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Up to `limit` pending items, oldest first, that are the **oldest pending item of
    /// their incident+target queue** and whose `next_attempt_at <= now`. A queue whose head
    /// waits for a retry yields nothing, so later items never overtake it.
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxItem>, NotifyError>;
    /// The item was delivered (the store counts this attempt in `attempts`). `thread`, what
    /// a first delivery left (a Slack message's `ts`, a Statuspage incident id), is saved in
    /// the same write: a process killed in between would otherwise leave either a delivered
    /// first message without its thread (the next message would open a second thread) or
    /// a thread without its item marked sent (the message would go out twice).
    async fn mark_sent(
        &self,
        id: i64,
        at: DateTime<Utc>,
        thread: Option<&ThreadRef>,
    ) -> Result<(), NotifyError>;
    /// A delivery attempt of the item starts at `at`. Recorded before the message leaves:
    /// until the item is marked sent, retried or failed, it is in doubt, and
    /// [`due`](Self::due) answers it with `in_doubt_since` set, so that the next attempt
    /// asks the target first instead of sending it twice.
    async fn mark_attempt(&self, id: i64, at: DateTime<Utc>) -> Result<(), NotifyError>;
    /// The item failed transiently: `attempts` made so far, try again at `next_attempt_at`.
    /// `in_doubt`: the failure may hide a delivery (no answer came back), so the item stays
    /// in doubt; otherwise the target said it did not take it and the doubt is cleared.
    async fn mark_retry(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
        error: &str,
        in_doubt: bool,
    ) -> Result<(), NotifyError>;
    /// The item is given up (permanent error or attempts exhausted); its queue moves on.
    async fn mark_failed(&self, id: i64, attempts: u32, error: &str) -> Result<(), NotifyError>;
    /// What earlier messages of the incident left for this target.
    async fn thread(
        &self,
        incident_id: &str,
        target_key: &str,
    ) -> Result<Option<ThreadRef>, NotifyError>;
    /// Remembers a thread (replacing an older one for the same incident and target).
    async fn save_thread(&self, incident_id: &str, thread: &ThreadRef) -> Result<(), NotifyError>;
}

/// Told about every delivery attempt (for metrics).
pub trait DeliveryObserver: Send + Sync {
    /// One attempt at `target_kind` (`slack`, `statuspage`, …) ended with `outcome`
    /// (`sent`, `retry` or `failed`; `error` only if the store call recording it
    /// panicked) after `elapsed`.
    fn delivered(&self, target_kind: &str, outcome: &str, elapsed: Duration) {
        let _ = (target_kind, outcome, elapsed);
    }
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl DeliveryObserver for NoopObserver {}
