//! The Kubernetes backend of [`StateStore`] (`[store] backend = "kubernetes"`): everything
//! the daemon keeps lives on the Kubernetes API, in one namespace (`[store] namespace`,
//! default `rollbackd`), as Argo Rollouts and Flagger keep their state, so it outlives the
//! pod and every replica sees the same incidents.
//!
//! # Where each piece of state lives
//!
//! | state | object |
//! | --- | --- |
//! | an incident: what was decided | `RollbackIncident` (`rollbackd.io/v1alpha1`, `deploy/crds/rollbackincidents.yaml`) named after the incident id in lower case; `spec` (agent, namespace, workload, revision, fromImage, row, severity, method, trigger, requestedBy, reason, decision with its evidence, dryRun, vars, deployAt, openedAt); the id itself in the annotation `rollbackd.io/id`; labels `rollbackd.io/agent`, `rollbackd.io/revision`, `rollbackd.io/trigger` |
//! | its state, transitions, step journal, notifications (outbox rows with their delivery state), Slack/Statuspage threads, audit entries | the same object's `status`, written through the status subresource |
//! | its backups | one ConfigMap each (`<incident>-backup-<n>`, `rollbackd.io/role=backup`), owned by the incident (ownerReferences) |
//! | the id counter of an agent, and an incident being opened | the agent's register, ConfigMap `rollbackd-agent-<agent>` (`rollbackd.io/role=agent`) |
//! | pauses | one ConfigMap per paused scope, `rollbackd-pause-<scope>` (`rollbackd.io/role=pause`) |
//! | audit entries about no stored incident (agents, `global`) | the log `rollbackd-audit-<seq>` (`rollbackd.io/role=audit`) |
//! | received alerts | the log `rollbackd-alerts-<seq>` (`rollbackd.io/role=alerts`) |
//! | rate-limit counts | nothing of their own: counted from the incidents' transitions to `rolling_back`, as SQLite counts them |
//!
//! Every object carries `app.kubernetes.io/managed-by=rollbackd`.
//!
//! # Consistency without transactions
//!
//! - Every write carries the resourceVersion it read (a status replace, a ConfigMap
//!   replace, a delete's precondition); a 409 Conflict re-reads and decides again, never
//!   overwrites blindly. A transition is a compare-and-set on the state, as in SQLite.
//!   Creates need none (a taken name is 409 AlreadyExists); nor do the deletes of backups
//!   (never changed once written) and of a pause by `resume` (whichever pause is there goes).
//! - What SQLite writes in one transaction is written here in one object: a transition
//!   with its notifications and audit entry is one status write; a new incident with its
//!   first transition, notifications and audit entry is one create (a create cannot write
//!   status, so the first status travels in the annotation `rollbackd.io/opening` and is
//!   read from there until the status is written, right after).
//! - Opening goes through the agent's register: the writer that wins it takes the next id
//!   and records the incident as pending, then creates it; whoever reads the register
//!   next creates a pending incident that is not there yet before checking for open ones.
//!   Two concurrent opens for one deploy therefore yield one incident, and ids (built as
//!   SQLite builds them, `<agent>-<UTC time>-<n>`) are never given twice.
//! - An alert batch is one write to the last segment of the alerts log (or the creation
//!   of the next one): all or nothing, deduplicated against every stored alert.
//! - Retention deletes each finished incident at the resourceVersion it judged, then its
//!   backups; a pass is not one transaction, but each incident goes whole or stays.
//!
//! # Size
//!
//! An object stays far below etcd's 1.5 MB: strings in the evidence are cut at 4 KiB,
//! in step outcomes, messages and audit details at 8 KiB, and a status that would grow past
//! 768 KiB has the details of its finished steps, delivered messages and audit entries cut
//! harder (their shapes kept); the opening annotation is kept under 192 KiB the same way;
//! log segments close at 64 KiB (an append rewrites the last one). Backups are stored
//! whole (a ConfigMap holds 1 MiB).
//!
//! # Reads
//!
//! Queries over many incidents (lists, counts, rate limits, the due outbox rows) read a
//! copy kept current by a watch, as client-go's informers keep theirs (`informer`), while
//! that watch is open, and the API otherwise. This replica's writes are in the copy at
//! once; another replica's as soon as the watch shows them (milliseconds). Two reads go
//! to the API whatever the copy says: the incidents in flight (read at start and on
//! taking the Lease over) and, when opening an incident, the open one of the same deploy.
//! One incident is always read from the API, and a write starts from the copy: a stale
//! one costs a 409 and a fresh read, never a lost change. Log segments are read through a
//! cache keyed by resourceVersion: a metadata-only LIST says what changed, and only that is
//! fetched again.

mod api;
mod cache;
mod configmaps;
pub mod crd;
mod incidents;
mod informer;
mod log;
mod names;
mod object;
mod records;
mod retention;

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::contract::{Announce, Backup, StateStore};
use super::{
    AlertRecord, AuditEntry, Incident, IncidentFilter, NewIncident, NewOutbox, Opened, OutboxRow,
    Pause, Pruned, RecordedAlert, StepRow, StoreError, Transition, TransitionRecord,
};
use api::ReadFrom;
use rollbackd_core::incident::{Event, State};

pub use api::incident_resource;
pub use names::{GROUP, KIND, PLURAL, VERSION};

/// The store on the Kubernetes API.
#[derive(Debug)]
pub struct KubeStore {
    kube: api::Kube,
    alerts: log::Log,
    audit_log: log::Log,
    /// Outbox row id prefixes (see [`names::outbox_id`]) to incident object names.
    outbox_ids: Mutex<HashMap<i64, String>>,
}

impl KubeStore {
    /// The store in `namespace`, once the API is seen to serve `RollbackIncident`s there.
    pub async fn open(client: kube::Client, namespace: &str) -> Result<Self, StoreError> {
        let store = Self::new(client, namespace);
        store.kube.check_served().await?;
        Ok(store)
    }

    /// The store in `namespace`, without checking the API.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            kube: api::Kube::new(client, namespace),
            alerts: log::Log::new(names::LOG_ALERTS),
            audit_log: log::Log::new(names::LOG_AUDIT),
            outbox_ids: Mutex::new(HashMap::new()),
        }
    }

    /// The namespace it keeps its objects in.
    pub fn namespace(&self) -> &str {
        self.kube.namespace()
    }
}

#[async_trait]
impl StateStore for KubeStore {
    fn shared(&self) -> bool {
        true
    }

    fn fence_writes(&self, fence: crate::cluster::fence::Fence) {
        self.kube.fence_writes(fence);
    }

    async fn create_incident(
        &self,
        new: &NewIncident,
        first: Event,
        at: DateTime<Utc>,
        outbox: &[NewOutbox],
        audit: Option<&AuditEntry>,
    ) -> Result<Incident, StoreError> {
        let outbox = outbox.to_vec();
        let announce = move |_: &Incident| outbox.clone();
        Ok(self
            .open_new(new, first, at, audit, &announce, false)
            .await?
            .into_incident())
    }

    async fn open_incident(
        &self,
        new: &NewIncident,
        first: Event,
        at: DateTime<Utc>,
        audit: Option<&AuditEntry>,
        announce: Announce,
    ) -> Result<Opened, StoreError> {
        self.open_new(new, first, at, audit, &*announce, true).await
    }

    async fn transition(&self, change: &Transition<'_>) -> Result<State, StoreError> {
        self.apply(change).await
    }

    async fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        self.object(id)
            .await?
            .filter(|o| !o.is_notice())
            .map(|o| o.incident())
            .transpose()
    }

    async fn enqueue_notice(
        &self,
        notice: &Incident,
        items: &[NewOutbox],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.queue_notice(notice, items, at).await
    }

    async fn incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>, StoreError> {
        self.list(filter).await
    }

    async fn in_flight_count(&self) -> Result<usize, StoreError> {
        Ok(self.in_flight_incidents(ReadFrom::Cache).await?.len())
    }

    async fn incident_counts(&self) -> Result<Vec<(State, usize)>, StoreError> {
        self.counts().await
    }

    async fn in_flight(&self) -> Result<Vec<Incident>, StoreError> {
        // read at start and on taking the Lease over: every replica's writes so far
        self.in_flight_incidents(ReadFrom::Api).await
    }

    async fn transitions(&self, id: &str) -> Result<Vec<TransitionRecord>, StoreError> {
        let Some(obj) = self.object(id).await? else {
            return Ok(Vec::new());
        };
        Ok(obj
            .status()?
            .transitions
            .iter()
            .map(object::transition_record)
            .collect())
    }

    async fn rollbacks_since(
        &self,
        agent: Option<&str>,
        since: DateTime<Utc>,
        unattended_only: bool,
    ) -> Result<usize, StoreError> {
        self.rollbacks(agent, since, unattended_only).await
    }

    async fn open_incident_for(
        &self,
        agent: &str,
        revision: Option<u64>,
    ) -> Result<Option<Incident>, StoreError> {
        self.open_for(agent, revision, ReadFrom::Cache).await
    }

    async fn waiting_for_human(&self, agent: &str) -> Result<Vec<Incident>, StoreError> {
        let waiting = |s: State| matches!(s, State::AwaitingApproval | State::Blocked);
        let mut v = self
            .of(Some(agent), None, false, waiting, ReadFrom::Cache)
            .await?;
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(v)
    }

    async fn automatic_incident_for(
        &self,
        agent: &str,
        revision: Option<u64>,
    ) -> Result<Option<Incident>, StoreError> {
        let mut v = self
            .of(Some(agent), Some(revision), true, |_| true, ReadFrom::Cache)
            .await?;
        v.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(v.into_iter().next())
    }

    async fn save_step(&self, step: &StepRow) -> Result<(), StoreError> {
        self.put_step(step).await
    }

    async fn finish_step(&self, step: &StepRow, audit: &AuditEntry) -> Result<(), StoreError> {
        self.put_step_audited(step, audit).await
    }

    async fn steps(&self, incident_id: &str) -> Result<Vec<StepRow>, StoreError> {
        self.steps_of(incident_id).await
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
        let owner = self
            .object(incident_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(incident_id.to_string()))?;
        configmaps::save_backup(&self.kube, &owner, kind, namespace, name, object, at).await
    }

    async fn backups(&self, incident_id: &str) -> Result<Vec<Backup>, StoreError> {
        configmaps::backups(&self.kube, &names::incident_name(incident_id)).await
    }

    async fn enqueue(
        &self,
        incident_id: &str,
        items: &[NewOutbox],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.queue(incident_id, items, at).await
    }

    async fn outbox_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.due(now, limit).await
    }

    async fn outbox_for(&self, incident_id: &str) -> Result<Vec<OutboxRow>, StoreError> {
        self.rows_of(incident_id).await
    }

    async fn outbox_sent(
        &self,
        id: i64,
        at: DateTime<Utc>,
        thread: Option<(&str, &serde_json::Value)>,
    ) -> Result<(), StoreError> {
        self.sent(id, at, thread).await
    }

    async fn outbox_attempt(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.attempt(id, at).await
    }

    async fn outbox_retry(
        &self,
        id: i64,
        attempts: u32,
        next: DateTime<Utc>,
        error: &str,
        in_doubt: bool,
    ) -> Result<(), StoreError> {
        self.retry(id, attempts, next, error, in_doubt).await
    }

    async fn outbox_failed(&self, id: i64, attempts: u32, error: &str) -> Result<(), StoreError> {
        self.failed(id, attempts, error).await
    }

    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.delivery_counts().await
    }

    async fn thread(
        &self,
        incident_id: &str,
        target_key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.thread_of(incident_id, target_key).await
    }

    async fn save_thread(
        &self,
        incident_id: &str,
        target_key: &str,
        data: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.put_thread(incident_id, target_key, data).await
    }

    async fn pause(&self, pause: &Pause) -> Result<(), StoreError> {
        configmaps::pause(&self.kube, pause).await
    }

    async fn resume(&self, scope: &str) -> Result<bool, StoreError> {
        configmaps::resume(&self.kube, scope).await
    }

    async fn pauses(&self) -> Result<Vec<Pause>, StoreError> {
        configmaps::pauses(&self.kube).await
    }

    async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.append_audit(entry).await
    }

    async fn audit_log(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_entries(target, limit).await
    }

    async fn record_alert_groups(
        &self,
        groups: &[Vec<AlertRecord>],
        at: DateTime<Utc>,
    ) -> Result<Vec<Vec<bool>>, StoreError> {
        self.record_groups(groups, at).await
    }

    async fn alerts_since(
        &self,
        agent: Option<Option<&str>>,
        since: DateTime<Utc>,
    ) -> Result<Vec<RecordedAlert>, StoreError> {
        self.alerts_received(agent, since).await
    }

    async fn prune_older_than(&self, cutoff: DateTime<Utc>) -> Result<Pruned, StoreError> {
        self.prune(cutoff).await
    }
}
