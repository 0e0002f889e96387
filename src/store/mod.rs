//! The daemon's state: incidents with their transitions, steps and evidence, backups, the
//! notification outbox, the audit log, received alerts and pauses. [`StateStore`]
//! (`contract.rs`) is its contract; [`SqliteStore`] implements it over [`Store`], one
//! SQLite file (WAL), running every call on a blocking thread; [`KubeStore`]
//! ([`kubernetes`]) implements it on the Kubernetes API, shared by every replica. Writes that
//! belong together (a transition and its notifications) share one transaction (one object
//! write on Kubernetes), so a crash never leaves one without the other.

mod alerts;
mod audit;
mod backups;
mod checkpoint;
mod contract;
mod incidents;
mod kube_journal;
pub mod kubernetes;
mod notify_outbox;
mod outbox;
mod pauses;
mod retention;
mod schema;
mod sqlite;
mod steps;

pub use alerts::{AlertRecord, RecordedAlert};
pub use audit::AuditEntry;
pub use contract::{Announce, Backup, StateStore};
pub use incidents::{IncidentFilter, Opened, Transition};
pub use kubernetes::KubeStore;
pub use outbox::{NewOutbox, OutboxRow};
pub use pauses::{GLOBAL, Pause};
pub use retention::Pruned;
pub use rollbackd_core::incident::{Incident, NewIncident, TransitionRecord, Trigger};
pub use sqlite::SqliteStore;
pub use steps::StepRow;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Connection;

use rollbackd_core::incident::TransitionError;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// JSON could not be written to or read from the store.
    #[error("stored JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    /// No incident with this id.
    #[error("incident {0} not found")]
    NotFound(String),
    /// The incident lifecycle does not allow the transition.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The incident's state changed since the caller read it.
    #[error("incident {id} changed concurrently (expected {expected})")]
    Concurrent {
        /// The incident's id.
        id: String,
        /// The state the caller expected it in.
        expected: String,
    },
    /// A panic while holding the connection poisoned its lock.
    #[error("the store's lock was poisoned by a panic")]
    Poisoned,
    /// A stored value cannot be parsed (e.g. an unknown state); the text says which.
    #[error("stored value is invalid: {0}")]
    Corrupt(String),
    /// The WAL checkpointer thread could not be started.
    #[error("cannot start the WAL checkpointer thread: {0}")]
    Thread(std::io::Error),
    /// The thread running the call panicked or was cancelled; the text says which.
    #[error("store call did not finish: {0}")]
    Task(String),
    /// The Kubernetes API failed or refused a call (the text says which object and why).
    #[error("kubernetes: {0}")]
    Kube(String),
    /// This replica may not write: it does not hold the leader Lease in the term it
    /// acquired (the text says which write and why). Nothing was written.
    #[error("fenced: {0}")]
    Fenced(String),
}

impl StoreError {
    /// Label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            StoreError::Sqlite(_) => "sqlite",
            StoreError::Json(_) => "json",
            StoreError::NotFound(_) => "not_found",
            StoreError::Transition(_) => "invalid_transition",
            StoreError::Concurrent { .. } => "concurrent",
            StoreError::Poisoned => "poisoned",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Thread(_) => "thread",
            StoreError::Task(_) => "task",
            StoreError::Kube(_) => "kubernetes",
            StoreError::Fenced(_) => "fenced",
        }
    }
}

/// How hard SQLite syncs each commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Durable across process crashes (kill -9), not power loss. The default.
    Normal,
    /// Durable across power loss; every commit waits for fsync.
    Full,
}

/// The synchronous SQLite store: calls are short, serialized and block their thread
/// ([`SqliteStore`] runs them on blocking threads). Cheap to share behind an `Arc`.
pub struct Store {
    conn: Mutex<Connection>,
    /// Checkpoints the WAL off the write path (file stores only).
    _checkpointer: Option<checkpoint::Checkpointer>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path`, in WAL mode, migrated.
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        let mut store = Self::init(conn, synchronous)?;
        store.conn()?.pragma_update(None, "wal_autocheckpoint", 0)?;
        store._checkpointer =
            Some(checkpoint::Checkpointer::start(path).map_err(StoreError::Thread)?);
        Ok(store)
    }

    /// A private in-memory store (tests, `--dry-run` experiments).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, Synchronous::Normal)
    }

    fn init(conn: Connection, synchronous: Synchronous) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        )?;
        let version: usize = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get::<_, String>(0),
            )
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        for (i, migration) in schema::MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(migration)?;
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(i + 1).to_string()],
            )?;
            tx.commit()?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            _checkpointer: None,
        })
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }
}

/// Times are stored as RFC 3339 UTC with milliseconds, so they sort as text.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses a stored time.
pub(crate) fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("time {s:?}: {e}")))
}
