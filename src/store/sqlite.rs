//! The SQLite backend of [`StateStore`]: each call runs the synchronous [`Store`] on
//! tokio's blocking pool, so SQLite (a write waiting for the lock, an fsync, a retention
//! pass) never holds up an async worker. Borrowed arguments are copied into the call.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::contract::{Announce, Backup, StateStore};
use super::{
    AlertRecord, AuditEntry, Incident, IncidentFilter, NewIncident, NewOutbox, Opened, OutboxRow,
    Pause, Pruned, RecordedAlert, StepRow, Store, StoreError, Synchronous, Transition,
    TransitionRecord,
};
use rollbackd_core::incident::{Event, State};

/// The SQLite store behind the [`StateStore`] contract. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    store: Arc<Store>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, migrated, on a blocking thread.
    pub async fn open(path: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        let store = tokio::task::spawn_blocking(move || Store::open(&path, synchronous))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        Ok(Self::new(store))
    }

    /// A private in-memory store (tests, experiments), created on a blocking thread.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let store = tokio::task::spawn_blocking(Store::in_memory)
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        Ok(Self::new(store))
    }

    /// The contract over an opened synchronous store.
    pub fn new(store: Store) -> Self {
        Self {
            store: Arc::new(store),
        }
    }

    /// Runs `call` on the blocking pool.
    async fn call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || call(&store))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn create_incident(
        &self,
        new: &NewIncident,
        first: Event,
        at: DateTime<Utc>,
        outbox: &[NewOutbox],
        audit: Option<&AuditEntry>,
    ) -> Result<Incident, StoreError> {
        let (new, outbox, audit) = (new.clone(), outbox.to_vec(), audit.cloned());
        self.call(move |s| s.create_incident(&new, first, at, &outbox, audit.as_ref()))
            .await
    }

    async fn open_incident(
        &self,
        new: &NewIncident,
        first: Event,
        at: DateTime<Utc>,
        audit: Option<&AuditEntry>,
        announce: Announce,
    ) -> Result<Opened, StoreError> {
        let (new, audit) = (new.clone(), audit.cloned());
        self.call(move |s| s.open_incident(&new, first, at, audit.as_ref(), announce))
            .await
    }

    async fn transition(&self, change: &Transition<'_>) -> Result<State, StoreError> {
        let (id, note) = (change.id.to_string(), change.note.to_string());
        let (outbox, audit) = (change.outbox.to_vec(), change.audit.cloned());
        let (event, expected, at) = (change.event, change.expected, change.at);
        self.call(move |s| {
            s.transition(&Transition {
                id: &id,
                event,
                expected,
                at,
                note: &note,
                outbox: &outbox,
                audit: audit.as_ref(),
            })
        })
        .await
    }

    async fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        let id = id.to_string();
        self.call(move |s| s.incident(&id)).await
    }

    async fn incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>, StoreError> {
        let filter = filter.clone();
        self.call(move |s| s.incidents(&filter)).await
    }

    async fn in_flight_count(&self) -> Result<usize, StoreError> {
        self.call(Store::in_flight_count).await
    }

    async fn incident_counts(&self) -> Result<Vec<(State, usize)>, StoreError> {
        self.call(Store::incident_counts).await
    }

    async fn in_flight(&self) -> Result<Vec<Incident>, StoreError> {
        self.call(Store::in_flight).await
    }

    async fn transitions(&self, id: &str) -> Result<Vec<TransitionRecord>, StoreError> {
        let id = id.to_string();
        self.call(move |s| s.transitions(&id)).await
    }

    async fn rollbacks_since(
        &self,
        agent: Option<&str>,
        since: DateTime<Utc>,
        unattended_only: bool,
    ) -> Result<usize, StoreError> {
        let agent = agent.map(str::to_string);
        self.call(move |s| s.rollbacks_since(agent.as_deref(), since, unattended_only))
            .await
    }

    async fn open_incident_for(
        &self,
        agent: &str,
        revision: Option<u64>,
    ) -> Result<Option<Incident>, StoreError> {
        let agent = agent.to_string();
        self.call(move |s| s.open_incident_for(&agent, revision))
            .await
    }

    async fn waiting_for_human(&self, agent: &str) -> Result<Vec<Incident>, StoreError> {
        let agent = agent.to_string();
        self.call(move |s| s.waiting_for_human(&agent)).await
    }

    async fn automatic_incident_for(
        &self,
        agent: &str,
        revision: Option<u64>,
    ) -> Result<Option<Incident>, StoreError> {
        let agent = agent.to_string();
        self.call(move |s| s.automatic_incident_for(&agent, revision))
            .await
    }

    async fn save_step(&self, step: &StepRow) -> Result<(), StoreError> {
        let step = step.clone();
        self.call(move |s| s.save_step(&step)).await
    }

    async fn finish_step(&self, step: &StepRow, audit: &AuditEntry) -> Result<(), StoreError> {
        let (step, audit) = (step.clone(), audit.clone());
        self.call(move |s| s.finish_step(&step, &audit)).await
    }

    async fn steps(&self, incident_id: &str) -> Result<Vec<StepRow>, StoreError> {
        let id = incident_id.to_string();
        self.call(move |s| s.steps(&id)).await
    }

    async fn save_backup(
        &self,
        incident_id: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        object: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let names = [incident_id, kind, namespace, name].map(str::to_string);
        let object = object.clone();
        self.call(move |s| {
            let [id, kind, namespace, name] = &names;
            s.save_backup(id, kind, namespace, name, &object, at)
        })
        .await
    }

    async fn backups(&self, incident_id: &str) -> Result<Vec<Backup>, StoreError> {
        let id = incident_id.to_string();
        self.call(move |s| s.backups(&id)).await
    }

    async fn enqueue(
        &self,
        incident_id: &str,
        items: &[NewOutbox],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (id, items) = (incident_id.to_string(), items.to_vec());
        self.call(move |s| s.enqueue(&id, &items, at)).await
    }

    async fn enqueue_notice(
        &self,
        notice: &Incident,
        items: &[NewOutbox],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // the outbox needs no incident row: the notice's rows are filed under its id
        self.enqueue(&notice.id, items, at).await
    }

    async fn outbox_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.call(move |s| s.outbox_due(now, limit)).await
    }

    async fn outbox_for(&self, incident_id: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let id = incident_id.to_string();
        self.call(move |s| s.outbox_for(&id)).await
    }

    async fn outbox_sent(
        &self,
        id: i64,
        at: DateTime<Utc>,
        thread: Option<(&str, &serde_json::Value)>,
    ) -> Result<(), StoreError> {
        let thread = thread.map(|(k, d)| (k.to_string(), d.clone()));
        self.call(move |s| s.outbox_sent(id, at, thread.as_ref().map(|(k, d)| (k.as_str(), d))))
            .await
    }

    async fn outbox_attempt(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.call(move |s| s.outbox_attempt(id, at)).await
    }

    async fn outbox_retry(
        &self,
        id: i64,
        attempts: u32,
        next: DateTime<Utc>,
        error: &str,
        in_doubt: bool,
    ) -> Result<(), StoreError> {
        let error = error.to_string();
        self.call(move |s| s.outbox_retry(id, attempts, next, &error, in_doubt))
            .await
    }

    async fn outbox_failed(&self, id: i64, attempts: u32, error: &str) -> Result<(), StoreError> {
        let error = error.to_string();
        self.call(move |s| s.outbox_failed(id, attempts, &error))
            .await
    }

    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.call(Store::outbox_counts).await
    }

    async fn thread(
        &self,
        incident_id: &str,
        target_key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let (id, key) = (incident_id.to_string(), target_key.to_string());
        self.call(move |s| s.thread(&id, &key)).await
    }

    async fn save_thread(
        &self,
        incident_id: &str,
        target_key: &str,
        data: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let (id, key, data) = (
            incident_id.to_string(),
            target_key.to_string(),
            data.clone(),
        );
        self.call(move |s| s.save_thread(&id, &key, &data)).await
    }

    async fn pause(&self, pause: &Pause) -> Result<(), StoreError> {
        let pause = pause.clone();
        self.call(move |s| s.pause(&pause)).await
    }

    async fn resume(&self, scope: &str) -> Result<bool, StoreError> {
        let scope = scope.to_string();
        self.call(move |s| s.resume(&scope)).await
    }

    async fn pauses(&self) -> Result<Vec<Pause>, StoreError> {
        self.call(Store::pauses).await
    }

    async fn paused(&self, agent: &str) -> Result<Option<Pause>, StoreError> {
        let agent = agent.to_string();
        self.call(move |s| s.paused(&agent)).await
    }

    async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.call(move |s| s.audit(&entry)).await
    }

    async fn audit_log(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let target = target.map(str::to_string);
        self.call(move |s| s.audit_log(target.as_deref(), limit))
            .await
    }

    async fn record_alert_groups(
        &self,
        groups: &[Vec<AlertRecord>],
        at: DateTime<Utc>,
    ) -> Result<Vec<Vec<bool>>, StoreError> {
        let groups = groups.to_vec();
        self.call(move |s| s.record_alert_groups(&groups, at)).await
    }

    async fn record_alerts(
        &self,
        alerts: &[AlertRecord],
        at: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        let alerts = alerts.to_vec();
        self.call(move |s| s.record_alerts(&alerts, at)).await
    }

    async fn alerts_since(
        &self,
        agent: Option<Option<&str>>,
        since: DateTime<Utc>,
    ) -> Result<Vec<RecordedAlert>, StoreError> {
        let agent = agent.map(|a| a.map(str::to_string));
        self.call(move |s| s.alerts_since(agent.as_ref().map(Option::as_deref), since))
            .await
    }

    async fn prune_older_than(&self, cutoff: DateTime<Utc>) -> Result<Pruned, StoreError> {
        self.call(move |s| s.prune_older_than(cutoff)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    /// SQLite waits on the blocking pool, not on the runtime: while a write waits for a
    /// lock another connection holds, the other tasks of a single-threaded runtime run.
    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_write_does_not_stall_the_runtime() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("rollbackd.db");
        let store = SqliteStore::open(&path, Synchronous::Normal)
            .await
            .expect("store");
        let held = Duration::from_millis(500);
        let other = rusqlite::Connection::open(&path).expect("second connection");
        other.execute_batch("BEGIN IMMEDIATE").expect("write lock");
        let release = std::thread::spawn(move || {
            std::thread::sleep(held);
            other.execute_batch("ROLLBACK").expect("released");
        });
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        tokio::task::yield_now().await;
        let (before, started) = (ticks.load(Ordering::Relaxed), Instant::now());
        let pause = Pause {
            scope: super::super::GLOBAL.into(),
            paused_by: "alice".into(),
            reason: "test".into(),
            at: "2025-11-17T14:30:00Z".parse().expect("time"),
        };
        store
            .pause(&pause)
            .await
            .expect("written once the lock is free");
        let (waited, ran) = (started.elapsed(), ticks.load(Ordering::Relaxed) - before);
        ticker.abort();
        release.join().expect("released");
        assert!(
            waited >= held / 2,
            "the write waited for the lock ({waited:?})"
        );
        assert!(
            ran >= 10,
            "the runtime ran other tasks only {ran} times while SQLite waited {waited:?}"
        );
        assert_eq!(store.pauses().await.expect("pauses"), [pause]);
    }
}
