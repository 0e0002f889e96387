//! Incidents as `RollbackIncident` objects: opening one (through its agent's register),
//! compare-and-set transitions, every read-modify-write of a status, and the queries.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::KubeStore;
use super::api::{ReadFrom, WriteError};
use super::cache::ReadObject;
use super::configmaps::{self, Register};
use super::names;
use super::object::{AuditRecord, IncidentObject, Status, TransitionEntry, ms, trigger_name};
use crate::store::{
    AuditEntry, Incident, IncidentFilter, NewIncident, NewOutbox, Opened, StoreError, Transition,
};
use rollbackd_core::incident::{Event, State, next};

/// How many times a write that lost a race is decided again before giving up.
pub const ATTEMPTS: usize = 50;

/// The lifecycle event's name as stored (`start`, `steps_done`, …).
pub fn event_name(event: Event) -> String {
    serde_json::to_value(event)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{event:?}"))
}

/// Newest first: by opening time, then id.
fn newest_first(a: &Incident, b: &Incident) -> std::cmp::Ordering {
    (b.created_at, &b.id).cmp(&(a.created_at, &a.id))
}

impl KubeStore {
    /// The object of incident `id`, read now; `None` when there is none.
    pub(super) async fn object(&self, id: &str) -> Result<Option<Arc<ReadObject>>, StoreError> {
        let Some(obj) = self.kube.get(&names::incident_name(id)).await? else {
            return Ok(None);
        };
        Ok((obj.id()? == id).then_some(obj))
    }

    /// Reads incident `id`, lets `change` edit its status, and writes it back at the
    /// resourceVersion it was read at; on 409 Conflict reads it again and lets `change`
    /// decide again (never a blind overwrite). `change` answers what to return and whether
    /// it changed anything (nothing is written otherwise). `None`: no such incident.
    ///
    /// The first attempt starts from the copy kept in the cache, if any: a stale copy
    /// costs a 409, and an answer given without a write (`change` refused or changed
    /// nothing) is given only from a fresh read.
    pub(super) async fn update<R>(
        &self,
        id: &str,
        mut change: impl FnMut(&IncidentObject, &mut Status) -> Result<(R, bool), StoreError>,
    ) -> Result<Option<R>, StoreError> {
        let mut kept = self
            .kube
            .cached(&names::incident_name(id))
            .filter(|o| o.id().is_ok_and(|i| i == id));
        for _ in 0..ATTEMPTS {
            let (obj, fresh) = match kept.take() {
                Some(obj) => (obj, false),
                None => match self.object(id).await? {
                    Some(obj) => (obj, true),
                    None => return Ok(None),
                },
            };
            let mut status = obj.effective_status()?;
            let (answer, changed) = match change(&obj, &mut status) {
                Ok(decided) => decided,
                Err(_) if !fresh => continue,
                Err(e) => return Err(e),
            };
            if !changed {
                if fresh {
                    return Ok(Some(answer));
                }
                continue;
            }
            status.fit()?;
            let mut next = obj.object().clone();
            next.status = Some(status);
            match self.kube.replace_status(&next).await {
                Ok(_) => return Ok(Some(answer)),
                Err(WriteError::Conflict) => continue,
                Err(WriteError::NotFound) => return Ok(None),
                Err(e) => return Err(e.into_store("writing an incident's status")),
            }
        }
        Err(StoreError::Kube(format!(
            "incident {id} kept changing: gave up after {ATTEMPTS} attempts"
        )))
    }

    /// Like [`Self::update`], for an incident that must exist.
    pub(super) async fn update_existing<R>(
        &self,
        id: &str,
        change: impl FnMut(&IncidentObject, &mut Status) -> Result<(R, bool), StoreError>,
    ) -> Result<R, StoreError> {
        self.update(id, change)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    /// Creates `obj` (an incident written with its opening, see [`names::OPENING`]) unless
    /// it exists, then writes its status from the opening so that `kubectl get` shows
    /// the state. Anyone who finds it pending in its agent's register may do this: the
    /// object is the same whoever creates it.
    async fn materialize(&self, obj: &IncidentObject) -> Result<(), StoreError> {
        let created = match self.kube.create(obj).await {
            Ok(created) => created,
            Err(WriteError::AlreadyExists) => {
                match self.kube.get(obj.name()).await? {
                    Some(existing) if existing.id()? == obj.id()? => existing,
                    Some(existing) => {
                        return Err(StoreError::Corrupt(format!(
                            "RollbackIncident {} holds incident {}, not {}",
                            obj.name(),
                            existing.id()?,
                            obj.id()?
                        )));
                    }
                    // created and deleted meanwhile: nothing to write a status to
                    None => return Ok(()),
                }
            }
            Err(e) => return Err(e.into_store("creating an incident")),
        };
        if created.status.is_none() {
            let mut first = created.object().clone();
            first.status = Some(created.effective_status()?);
            // a lost race means someone else wrote a status: the opening is superseded
            if let Err(e) = self.kube.replace_status(&first).await
                && !matches!(e, WriteError::Conflict | WriteError::NotFound)
            {
                tracing::warn!(incident = %obj.name(), error = %e.into_store("first status"), "the incident's first status was not written (readers use its opening annotation)");
            }
        }
        Ok(())
    }

    /// The newest open (not terminal) incident of an agent's revision.
    pub(super) async fn open_for(
        &self,
        agent: &str,
        revision: Option<u64>,
        from: ReadFrom,
    ) -> Result<Option<Incident>, StoreError> {
        let mut open = self
            .of(
                Some(agent),
                Some(revision),
                false,
                |s| !s.is_terminal(),
                from,
            )
            .await?;
        open.sort_by(newest_first);
        Ok(open.into_iter().next())
    }

    /// Opens an incident (see [`crate::store::StateStore::open_incident`]). Every creation
    /// for an agent goes through its register, a ConfigMap replaced at the resourceVersion
    /// it was read at: the writer that wins takes the next id and records the incident as
    /// pending there before creating it, and whoever reads the register next creates a
    /// pending incident that is not there yet before looking for open ones. So two
    /// concurrent opens for one deploy see each other (one incident), ids are never given
    /// twice, and an open interrupted between the two writes is completed by the next.
    pub(super) async fn open_new(
        &self,
        new: &NewIncident,
        first: Event,
        at: DateTime<Utc>,
        audit: Option<&AuditEntry>,
        announce: &(dyn Fn(&Incident) -> Vec<NewOutbox> + Send + Sync),
        one_per_revision: bool,
    ) -> Result<Opened, StoreError> {
        let to = next(State::Detected, first)?;
        let at = ms(at);
        for _ in 0..ATTEMPTS {
            let register = configmaps::register(&self.kube, &new.agent).await?;
            if let Some(pending) = &register.pending {
                self.materialize(pending).await?;
            }
            // read from the API: another replica's open must be seen, not only this one's
            if one_per_revision
                && let Some(open) = self
                    .open_for(&new.agent, new.revision, ReadFrom::Api)
                    .await?
            {
                return Ok(Opened::AlreadyOpen(open));
            }
            let n = register.count + 1;
            let id = format!(
                "{}-{}-{}",
                new.agent.to_lowercase(),
                at.format("%Y%m%dT%H%M%SZ"),
                n
            );
            let obj = opening(&id, new, first, to, at, audit, announce)?;
            let written =
                match configmaps::write_register(&self.kube, &new.agent, &register, n, Some(&obj))
                    .await
                {
                    Ok(rv) => rv,
                    Err(
                        WriteError::Conflict | WriteError::AlreadyExists | WriteError::NotFound,
                    ) => {
                        continue;
                    }
                    Err(WriteError::Other(e)) => return Err(e),
                };
            let done = Register {
                resource_version: Some(written),
                count: n,
                pending: None,
            };
            if let Err(e) = self.materialize(&obj).await {
                // take the pending incident back; if someone created it meanwhile (they
                // read the register first), it is open all the same
                let _ = configmaps::write_register(&self.kube, &new.agent, &done, n, None).await;
                return match self.object(&id).await? {
                    Some(created) => Ok(Opened::New(created.incident()?)),
                    None => Err(e),
                };
            }
            // a lost race here means the next writer already completed it
            let _ = configmaps::write_register(&self.kube, &new.agent, &done, n, None).await;
            return Ok(Opened::New(obj.incident()?));
        }
        Err(StoreError::Kube(format!(
            "the register of agent {} kept changing: gave up after {ATTEMPTS} attempts",
            new.agent
        )))
    }

    /// Keeps a notice's notifications (see [`crate::store::StateStore::enqueue_notice`]) in
    /// an object of their own, labelled [`names::NOTICE`]: the outbox worker finds them like
    /// any incident's, and no incident query lists it. Queueing the same notice again adds
    /// nothing.
    pub(super) async fn queue_notice(
        &self,
        notice: &Incident,
        items: &[NewOutbox],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = ms(at);
        let new = NewIncident {
            agent: notice.agent.clone(),
            namespace: notice.namespace.clone(),
            workload: notice.workload.clone(),
            revision: notice.revision,
            from_image: notice.from_image.clone(),
            row: notice.row.clone(),
            severity: notice.severity.clone(),
            method: notice.method.clone(),
            trigger: notice.trigger,
            requested_by: notice.requested_by.clone(),
            reason: notice.reason.clone(),
            decision: notice.decision.clone(),
            dry_run: notice.dry_run,
            vars: notice.vars.clone(),
            deploy_at: notice.deploy_at,
        };
        let mut status = Status {
            state: State::Detected,
            updated_at: at,
            transitions: Vec::new(),
            steps: Vec::new(),
            notifications: Vec::new(),
            threads: Vec::new(),
            audit: Vec::new(),
        };
        status.enqueue(items, at);
        status.fit()?;
        let mut obj = IncidentObject::opening(&notice.id, &new, status, at)?;
        obj.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(names::NOTICE.to_string(), "true".to_string());
        self.materialize(&obj).await
    }

    /// Applies a [`Transition`] (compare-and-set on the state the caller saw).
    pub(super) async fn apply(&self, change: &Transition<'_>) -> Result<State, StoreError> {
        self.update_existing(change.id, |_, status| {
            let from = status.state;
            if let Some(expected) = change.expected
                && expected != from
            {
                return Err(StoreError::Concurrent {
                    id: change.id.to_string(),
                    expected: expected.to_string(),
                });
            }
            let to = next(from, change.event)?;
            status.push_transition(change.at, from, event_name(change.event), to, change.note);
            status.enqueue(change.outbox, change.at);
            if let Some(entry) = change.audit {
                status.audit.push(AuditRecord::from_entry(entry));
            }
            Ok((to, true))
        })
        .await
    }

    /// Every incident (as records) of `agent` (all agents when `None`), of one revision
    /// when `revision` is given, only automatic ones when `automatic_only`, in a state
    /// `wanted` (the others are not made into records).
    pub(super) async fn of(
        &self,
        agent: Option<&str>,
        revision: Option<Option<u64>>,
        automatic_only: bool,
        wanted: impl Fn(State) -> bool,
        from: ReadFrom,
    ) -> Result<Vec<Incident>, StoreError> {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(a) = agent {
            pairs.push((names::AGENT, names::label_value(a)));
        }
        if let Some(r) = revision {
            pairs.push((names::REVISION, names::revision_label(r)));
        }
        if automatic_only {
            pairs.push((
                names::TRIGGER,
                trigger_name(rollbackd_core::incident::Trigger::Automatic).to_string(),
            ));
        }
        let labels: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut out = Vec::new();
        for obj in self.kube.list(&labels, from).await? {
            if obj.is_notice() || obj.status().is_ok_and(|s| !wanted(s.state)) {
                continue;
            }
            match obj.incident() {
                Ok(i)
                    if agent.is_none_or(|a| i.agent == a)
                        && revision.is_none_or(|r| i.revision == r) =>
                {
                    out.push(i)
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(object = %obj.name(), error = %e, "skipping a RollbackIncident the store cannot read");
                }
            }
        }
        Ok(out)
    }

    /// Incidents, newest first, as filtered.
    pub(super) async fn list(&self, filter: &IncidentFilter) -> Result<Vec<Incident>, StoreError> {
        let wanted = |s: State| filter.state.is_none_or(|f| s == f);
        let mut all = self
            .of(
                filter.agent.as_deref(),
                None,
                false,
                wanted,
                ReadFrom::Cache,
            )
            .await?;
        all.sort_by(newest_first);
        all.truncate(filter.limit.unwrap_or(100));
        Ok(all)
    }

    /// In-flight incidents, oldest first.
    pub(super) async fn in_flight_incidents(
        &self,
        from: ReadFrom,
    ) -> Result<Vec<Incident>, StoreError> {
        let mut v = self
            .of(None, None, false, State::is_in_flight, from)
            .await?;
        v.sort_by(|a, b| newest_first(b, a));
        Ok(v)
    }

    /// How many incidents are in each state.
    pub(super) async fn counts(&self) -> Result<Vec<(State, usize)>, StoreError> {
        let all = self.objects(None).await?;
        let states: Vec<State> = all
            .iter()
            .filter(|o| !o.is_notice())
            .filter_map(|o| o.status().ok().map(|s| s.state))
            .collect();
        Ok(State::ALL
            .iter()
            .map(|s| (*s, states.iter().filter(|t| *t == s).count()))
            .filter(|(_, n)| *n > 0)
            .collect())
    }

    /// Rollbacks started since `since` (see the contract).
    pub(super) async fn rollbacks(
        &self,
        agent: Option<&str>,
        since: DateTime<Utc>,
        unattended_only: bool,
    ) -> Result<usize, StoreError> {
        let objects = self.objects(agent).await?;
        Ok(objects
            .iter()
            .filter(|obj| !obj.spec.dry_run)
            .filter(|obj| agent.is_none_or(|a| obj.spec.agent == a))
            .filter(|obj| {
                !unattended_only || obj.spec.trigger == rollbackd_core::incident::Trigger::Automatic
            })
            .filter(|obj| {
                obj.status().is_ok_and(|status| {
                    status
                        .transitions
                        .iter()
                        .any(|t| t.to == State::RollingBack && t.at >= since)
                })
            })
            .count())
    }

    /// Every incident object of `agent` (all when `None`) whose status reads (from the
    /// cache: see [`ReadFrom::Cache`]).
    pub(super) async fn objects(
        &self,
        agent: Option<&str>,
    ) -> Result<Vec<Arc<ReadObject>>, StoreError> {
        let label = agent.map(names::label_value);
        let pairs: Vec<(&str, &str)> = label
            .as_deref()
            .map(|l| (names::AGENT, l))
            .into_iter()
            .collect();
        let mut out = Vec::new();
        for obj in self.kube.list(&pairs, ReadFrom::Cache).await? {
            match obj.status() {
                Ok(_) => out.push(obj),
                Err(e) => {
                    tracing::warn!(object = %obj.name(), error = %e, "skipping a RollbackIncident the store cannot read");
                }
            }
        }
        Ok(out)
    }
}

/// A new incident's object: spec, and its opening (first transition, audit entry and the
/// notifications `announce` builds from the incident as written).
fn opening(
    id: &str,
    new: &NewIncident,
    first: Event,
    to: State,
    at: DateTime<Utc>,
    audit: Option<&AuditEntry>,
    announce: &(dyn Fn(&Incident) -> Vec<NewOutbox> + Send + Sync),
) -> Result<IncidentObject, StoreError> {
    let mut status = Status {
        state: to,
        updated_at: at,
        transitions: vec![TransitionEntry {
            seq: 1,
            at,
            from: Some(State::Detected),
            event: event_name(first),
            to,
            note: new.reason.clone(),
        }],
        steps: Vec::new(),
        notifications: Vec::new(),
        threads: Vec::new(),
        audit: Vec::new(),
    };
    if let Some(entry) = audit {
        let mut entry = entry.clone();
        if entry.target.is_empty() {
            entry.target = id.to_string();
        }
        status.audit.push(AuditRecord::from_entry(&entry));
    }
    let mut obj = IncidentObject::opening(id, new, status.clone(), at)?;
    let incident = obj.incident()?;
    status.enqueue(&announce(&incident), at);
    status.fit()?;
    obj.set_opening(&status)?;
    Ok(obj)
}
