//! The store contract: everything the daemon keeps, as one async trait. The daemon, the API,
//! the demo and the bench hold an `Arc<dyn StateStore>`; SQLite ([`super::SqliteStore`]) is
//! today's backend. Each call is atomic as documented (a transition with its notifications
//! and audit entry, an incident with its first transition), whatever the backend.
//! `tests/store_contract.rs` holds every backend to the same behaviours.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    AlertRecord, AuditEntry, GLOBAL, Incident, IncidentFilter, NewIncident, NewOutbox, Opened,
    OutboxRow, Pause, Pruned, RecordedAlert, StepRow, StoreError, Transition, TransitionRecord,
};
use rollbackd_core::incident::{Event, State};

/// Builds an incident's notifications from the incident as it is written (its id, its
/// state), inside the transaction that opens it. A backend without transactions may build
/// them again when its write loses a race and the incident gets another id.
pub type Announce = Box<dyn Fn(&Incident) -> Vec<NewOutbox> + Send + Sync>;

/// A backup: (kind, namespace, name, object).
pub type Backup = (String, String, String, serde_json::Value);

/// Where the daemon keeps its state: incidents and their transitions, the step journal,
/// backups, the notification outbox and threads, pauses, audit, alerts, retention.
#[async_trait]
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// Whether every replica of the daemon sees this same state (a store on the Kubernetes
    /// API), rather than each its own (an SQLite file per pod). The daemon then leaves the
    /// outbox to the leader, or a standby would deliver each message again.
    fn shared(&self) -> bool {
        false
    }

    /// From now on, every write first checks `fence` (this replica holds the leader Lease
    /// in its term) and fails with [`StoreError::Fenced`] without writing when it does not.
    /// Only a [`shared`](Self::shared) store needs it: one replica's own file is written
    /// by that replica alone. The default ignores it.
    fn fence_writes(&self, fence: crate::cluster::fence::Fence) {
        let _ = fence;
    }

    // incidents and transitions

    /// Opens an incident in `detected`, applies `first` (start, request approval or block),
    /// and queues its notifications and audit entry, all in one transaction. An audit entry
    /// with an empty target is filed under the new incident's id.
    async fn create_incident(
        &self,
        new: &NewIncident,
        first: Event,
        at: DateTime<Utc>,
        outbox: &[NewOutbox],
        audit: Option<&AuditEntry>,
    ) -> Result<Incident, StoreError>;

    /// Opens an incident unless one is already open for the same agent and revision, in
    /// one transaction: the check, the incident, its first transition, the notifications
    /// `announce` builds from the new incident, and the audit entry. Either everything is
    /// written or nothing is, and two concurrent opens for one deploy yield one incident.
    async fn open_incident(
        &self,
        new: &NewIncident,
        first: Event,
        at: DateTime<Utc>,
        audit: Option<&AuditEntry>,
        announce: Announce,
    ) -> Result<Opened, StoreError>;

    /// Applies a [`Transition`] if the incident is still in the state the caller saw
    /// (compare-and-set: [`StoreError::Concurrent`] otherwise), with its notifications and
    /// audit entry in the same transaction.
    async fn transition(&self, change: &Transition<'_>) -> Result<State, StoreError>;

    /// One incident.
    async fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError>;

    /// Incidents, newest first.
    async fn incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>, StoreError>;

    /// How many incidents are in flight.
    async fn in_flight_count(&self) -> Result<usize, StoreError>;

    /// How many incidents are in each state (states with none are left out).
    async fn incident_counts(&self) -> Result<Vec<(State, usize)>, StoreError>;

    /// Incidents the daemon must pick up again after a restart, oldest first.
    async fn in_flight(&self) -> Result<Vec<Incident>, StoreError>;

    /// The transitions of an incident, oldest first.
    async fn transitions(&self, id: &str) -> Result<Vec<TransitionRecord>, StoreError>;

    /// Rollbacks (incidents that reached `rolling_back`, dry runs aside) started since
    /// `since`, for `agent` or for every agent; only automatic ones if `unattended_only`.
    async fn rollbacks_since(
        &self,
        agent: Option<&str>,
        since: DateTime<Utc>,
        unattended_only: bool,
    ) -> Result<usize, StoreError>;

    /// The open (not terminal) incident for a workload revision, if any.
    async fn open_incident_for(
        &self,
        agent: &str,
        revision: Option<u64>,
    ) -> Result<Option<Incident>, StoreError>;

    /// Every incident of an agent waiting for a human (awaiting approval or blocked),
    /// oldest first.
    async fn waiting_for_human(&self, agent: &str) -> Result<Vec<Incident>, StoreError>;

    /// The newest incident the evaluation loop opened for an agent's revision, in any state.
    async fn automatic_incident_for(
        &self,
        agent: &str,
        revision: Option<u64>,
    ) -> Result<Option<Incident>, StoreError>;

    // the step journal and backups

    /// Inserts or replaces a step's record (its first start time is kept).
    async fn save_step(&self, step: &StepRow) -> Result<(), StoreError>;

    /// Records a finished step together with the audit entry of what it did, in one write:
    /// a process killed in between cannot leave a journaled mutation unaudited.
    async fn finish_step(&self, step: &StepRow, audit: &AuditEntry) -> Result<(), StoreError>;

    /// The steps of an incident, in order.
    async fn steps(&self, incident_id: &str) -> Result<Vec<StepRow>, StoreError>;

    /// Saves one object taken before the first mutating step of an incident.
    async fn save_backup(
        &self,
        incident_id: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        object: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The backups of an incident, in the order they were saved.
    async fn backups(&self, incident_id: &str) -> Result<Vec<Backup>, StoreError>;

    // the outbox and threads

    /// Queues notifications for an incident outside a transition, in one transaction.
    async fn enqueue(
        &self,
        incident_id: &str,
        items: &[NewOutbox],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Queues the notifications of a notice: a decision that only tells people (no data,
    /// inconclusive, a guard) and opens no incident. `notice` carries the id its rows are
    /// filed under and what they are about; it is never listed, counted or resumed as an
    /// incident, and `incident(notice.id)` finds nothing.
    async fn enqueue_notice(
        &self,
        notice: &Incident,
        items: &[NewOutbox],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Pending rows whose time has come, oldest first; only the oldest pending row of each
    /// (incident, target) is returned, so a target sees an incident's messages in order.
    async fn outbox_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError>;

    /// Every outbox row of an incident, in order, as the API may show it (no webhook URL).
    async fn outbox_for(&self, incident_id: &str) -> Result<Vec<OutboxRow>, StoreError>;

    /// A row was delivered.
    async fn outbox_sent(
        &self,
        id: i64,
        at: DateTime<Utc>,
        thread: Option<(&str, &serde_json::Value)>,
    ) -> Result<(), StoreError>;

    /// A delivery attempt of a pending row starts at `at`: recorded before the message
    /// leaves, so that a row found pending with it set later is known to be in doubt.
    async fn outbox_attempt(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// A delivery failed and will be retried at `next`; unless `in_doubt` (the failure may
    /// hide a delivery), the row's attempt mark is cleared.
    async fn outbox_retry(
        &self,
        id: i64,
        attempts: u32,
        next: DateTime<Utc>,
        error: &str,
        in_doubt: bool,
    ) -> Result<(), StoreError>;

    /// Delivery was given up.
    async fn outbox_failed(&self, id: i64, attempts: u32, error: &str) -> Result<(), StoreError>;

    /// Rows by delivery state (`pending`, `sent`, `failed`), for `/metrics`.
    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// A target's thread for an incident (Slack channel id + ts, Statuspage incident id).
    async fn thread(
        &self,
        incident_id: &str,
        target_key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError>;

    /// Remembers a target's thread (replacing an older one).
    async fn save_thread(
        &self,
        incident_id: &str,
        target_key: &str,
        data: &serde_json::Value,
    ) -> Result<(), StoreError>;

    // pauses

    /// Pauses a scope (idempotent: the first pause's record is kept).
    async fn pause(&self, pause: &Pause) -> Result<(), StoreError>;

    /// Resumes a scope; returns whether it was paused.
    async fn resume(&self, scope: &str) -> Result<bool, StoreError>;

    /// Every active pause, by scope.
    async fn pauses(&self) -> Result<Vec<Pause>, StoreError>;

    /// The pause that applies to `agent` (global first), if any.
    async fn paused(&self, agent: &str) -> Result<Option<Pause>, StoreError> {
        let pauses = self.pauses().await?;
        Ok(pauses
            .iter()
            .find(|p| p.scope == GLOBAL)
            .or_else(|| pauses.iter().find(|p| p.scope == agent))
            .cloned())
    }

    // audit

    /// Appends to the audit log.
    async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// Audit entries about `target` (or all when `None`), oldest first.
    async fn audit_log(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    // alerts

    /// Records several requests' alerts in one transaction (group commit): all or none.
    /// Returns, per group and alert, whether it was new (a redelivery of the same
    /// fingerprint, status and start is not).
    async fn record_alert_groups(
        &self,
        groups: &[Vec<AlertRecord>],
        at: DateTime<Utc>,
    ) -> Result<Vec<Vec<bool>>, StoreError>;

    /// Records a batch of alerts in one transaction; returns, per alert, whether it was new.
    async fn record_alerts(
        &self,
        alerts: &[AlertRecord],
        at: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut fresh = self.record_alert_groups(&[alerts.to_vec()], at).await?;
        Ok(fresh.pop().unwrap_or_default())
    }

    /// Alerts received since `since`, for one agent, for none (`Some(None)`: unmatched), or
    /// all, in the order they were recorded.
    async fn alerts_since(
        &self,
        agent: Option<Option<&str>>,
        since: DateTime<Utc>,
    ) -> Result<Vec<RecordedAlert>, StoreError>;

    // retention

    /// Deletes what is older than `cutoff` in one transaction: finished incidents with
    /// everything they own, older alerts and audit entries; never an open incident or one
    /// with a notification still pending (see [`Pruned`]).
    async fn prune_older_than(&self, cutoff: DateTime<Utc>) -> Result<Pruned, StoreError>;
}
