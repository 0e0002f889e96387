//! Incidents and their transitions.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::outbox::{NewOutbox, insert_outbox};
use super::{AuditEntry, Store, StoreError, parse_ts, ts};
use rollbackd_core::incident::{Event, Incident, NewIncident, State, TransitionRecord, next};

/// One requested change of an incident's state.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    /// The incident's id.
    pub id: &'a str,
    /// What happens to it.
    pub event: Event,
    /// The state the caller saw; the change fails if it moved meanwhile.
    pub expected: Option<State>,
    /// When the change happens.
    pub at: DateTime<Utc>,
    /// One line for the timeline: why, or what was found.
    pub note: &'a str,
    /// Notifications queued in the same transaction.
    pub outbox: &'a [NewOutbox],
    /// Audit entry written in the same transaction, if any.
    pub audit: Option<&'a AuditEntry>,
}

impl<'a> Transition<'a> {
    /// A transition with no expectation, notifications or audit entry.
    pub fn new(id: &'a str, event: Event, at: DateTime<Utc>, note: &'a str) -> Self {
        Self {
            id,
            event,
            expected: None,
            at,
            note,
            outbox: &[],
            audit: None,
        }
    }

    /// Fails with [`StoreError::Concurrent`] unless the incident is in `state`.
    pub fn expecting(mut self, state: State) -> Self {
        self.expected = Some(state);
        self
    }

    /// Queues notifications with the transition.
    pub fn notifying(mut self, outbox: &'a [NewOutbox]) -> Self {
        self.outbox = outbox;
        self
    }

    /// Records an audit entry with the transition.
    pub fn audited(mut self, audit: &'a AuditEntry) -> Self {
        self.audit = Some(audit);
        self
    }
}

/// Which incidents to list.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// Only this agent's incidents; `None` = every agent.
    pub agent: Option<String>,
    /// Only incidents in this state; `None` = any state.
    pub state: Option<State>,
    /// At most this many, newest first; `None` = 100.
    pub limit: Option<usize>,
}

fn event_name(event: Event) -> String {
    serde_json::to_value(event)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{event:?}"))
}

const COLUMNS: &str = "id, agent, namespace, workload, revision, from_image, row_id, severity, method, trigger, requested_by, reason, decision, state, dry_run, vars, deploy_at, created_at, updated_at";

fn from_row(r: &Row<'_>) -> Result<Incident, StoreError> {
    let trigger: String = r.get(9)?;
    let state: String = r.get(13)?;
    let decision: String = r.get(12)?;
    let vars: String = r.get(15)?;
    let deploy_at: Option<String> = r.get(16)?;
    Ok(Incident {
        id: r.get(0)?,
        agent: r.get(1)?,
        namespace: r.get(2)?,
        workload: r.get(3)?,
        revision: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
        from_image: r.get(5)?,
        row: r.get(6)?,
        severity: r.get(7)?,
        method: r.get(8)?,
        trigger: serde_json::from_value(serde_json::Value::String(trigger))?,
        requested_by: r.get(10)?,
        reason: r.get(11)?,
        decision: serde_json::from_str(&decision)?,
        state: state.parse().map_err(StoreError::Corrupt)?,
        dry_run: r.get(14)?,
        vars: serde_json::from_str(&vars)?,
        deploy_at: deploy_at.as_deref().map(parse_ts).transpose()?,
        created_at: parse_ts(&r.get::<_, String>(17)?)?,
        updated_at: parse_ts(&r.get::<_, String>(18)?)?,
    })
}

/// The in-flight states as an SQL list (`'rolling_back', …`).
fn in_flight_states() -> String {
    State::ALL
        .iter()
        .filter(|s| s.is_in_flight())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Opens an incident in `detected`, applies `first` (start, request approval or block),
    /// and queues its notifications and audit entry, all in one transaction. An audit entry
    /// with an empty target is filed under the new incident's id.
    pub fn create_incident(
        &self,
        new: &NewIncident,
        first: Event,
        at: DateTime<Utc>,
        outbox: &[NewOutbox],
        audit: Option<&AuditEntry>,
    ) -> Result<Incident, StoreError> {
        let opened = self.insert_incident(new, first, at, audit, false, |_| outbox.to_vec())?;
        Ok(opened.into_incident())
    }

    /// Opens an incident unless one is already open for the same agent and revision, in
    /// one transaction: the check, the incident, its first transition, the notifications
    /// `announce` builds from the new incident, and the audit entry. Either everything is
    /// written or nothing is (a crash cannot leave an approval nobody was asked for), and
    /// two concurrent opens for one deploy yield one incident.
    pub fn open_incident(
        &self,
        new: &NewIncident,
        first: Event,
        at: DateTime<Utc>,
        audit: Option<&AuditEntry>,
        announce: impl FnOnce(&Incident) -> Vec<NewOutbox>,
    ) -> Result<Opened, StoreError> {
        self.insert_incident(new, first, at, audit, true, announce)
    }

    fn insert_incident(
        &self,
        new: &NewIncident,
        first: Event,
        at: DateTime<Utc>,
        audit: Option<&AuditEntry>,
        one_per_revision: bool,
        announce: impl FnOnce(&Incident) -> Vec<NewOutbox>,
    ) -> Result<Opened, StoreError> {
        let to = next(State::Detected, first)?;
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if one_per_revision && let Some(open) = open_in(&tx, &new.agent, new.revision)? {
            return Ok(Opened::AlreadyOpen(open));
        }
        let n: i64 = tx.query_row(
            "SELECT COUNT(*) FROM incidents WHERE agent = ?1",
            [&new.agent],
            |r| r.get(0),
        )?;
        let id = format!(
            "{}-{}-{}",
            new.agent.to_lowercase(),
            at.format("%Y%m%dT%H%M%SZ"),
            n + 1
        );
        let trigger = serde_json::to_value(new.trigger)?;
        tx.execute(
            &format!("INSERT INTO incidents ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?18)"),
            params![
                id,
                new.agent,
                new.namespace,
                new.workload,
                new.revision.map(|v| v as i64),
                new.from_image,
                new.row,
                new.severity,
                new.method,
                trigger.as_str().unwrap_or("automatic"),
                new.requested_by,
                new.reason,
                serde_json::to_string(&new.decision)?,
                to.as_str(),
                new.dry_run,
                serde_json::to_string(&new.vars)?,
                new.deploy_at.map(ts),
                ts(at),
            ],
        )?;
        tx.execute(
            "INSERT INTO transitions (incident_id, seq, at, from_state, event, to_state, note) VALUES (?1, 1, ?2, 'detected', ?3, ?4, ?5)",
            params![id, ts(at), event_name(first), to.as_str(), new.reason],
        )?;
        if let Some(entry) = audit {
            let mut entry = entry.clone();
            if entry.target.is_empty() {
                entry.target = id.clone();
            }
            super::audit::insert_audit(&tx, &entry)?;
        }
        let incident = by_id(&tx, &id)?.ok_or_else(|| StoreError::NotFound(id.clone()))?;
        for item in announce(&incident) {
            insert_outbox(&tx, &id, &item, at)?;
        }
        tx.commit()?;
        Ok(Opened::New(incident))
    }

    /// Applies a [`Transition`] if the incident is still in the state the caller saw
    /// (`expected`, when given), queuing its notifications and audit entry in the same
    /// transaction.
    pub fn transition(&self, change: &Transition<'_>) -> Result<State, StoreError> {
        let Transition {
            id,
            event,
            expected,
            at,
            note,
            outbox,
            audit,
        } = *change;
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let current: String = tx
            .query_row("SELECT state FROM incidents WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let from: State = current.parse().map_err(StoreError::Corrupt)?;
        if let Some(expected) = expected
            && expected != from
        {
            return Err(StoreError::Concurrent {
                id: id.to_string(),
                expected: expected.to_string(),
            });
        }
        let to = next(from, event)?;
        tx.execute(
            "UPDATE incidents SET state = ?1, updated_at = ?2 WHERE id = ?3 AND state = ?4",
            params![to.as_str(), ts(at), id, from.as_str()],
        )?;
        tx.execute(
            "INSERT INTO transitions (incident_id, seq, at, from_state, event, to_state, note)
             VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM transitions WHERE incident_id = ?1), ?2, ?3, ?4, ?5, ?6)",
            params![id, ts(at), from.as_str(), event_name(event), to.as_str(), note],
        )?;
        for item in outbox {
            insert_outbox(&tx, id, item, at)?;
        }
        if let Some(entry) = audit {
            super::audit::insert_audit(&tx, entry)?;
        }
        tx.commit()?;
        Ok(to)
    }

    /// One incident.
    pub fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        by_id(&*self.conn()?, id)
    }

    /// Incidents, newest first.
    pub fn incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM incidents
             WHERE (?1 IS NULL OR agent = ?1) AND (?2 IS NULL OR state = ?2)
             ORDER BY created_at DESC, id DESC LIMIT ?3"
        ))?;
        let limit = filter.limit.unwrap_or(100) as i64;
        let mut rows = stmt.query(params![
            filter.agent,
            filter.state.map(State::as_str),
            limit
        ])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(from_row(r)?);
        }
        Ok(out)
    }

    /// How many incidents are in flight, counted in the `state` index.
    pub fn in_flight_count(&self) -> Result<usize, StoreError> {
        let conn = self.conn()?;
        let n: i64 = conn
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM incidents WHERE state IN ({})",
                in_flight_states()
            ))?
            .query_row([], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// How many incidents are in each state (states with none are left out), counted in the
    /// `state` index without reading a row.
    pub fn incident_counts(&self) -> Result<Vec<(State, usize)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare_cached("SELECT state, COUNT(*) FROM incidents GROUP BY state")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let state: String = r.get(0)?;
            let n: i64 = r.get(1)?;
            out.push((
                state.parse().map_err(StoreError::Corrupt)?,
                usize::try_from(n).unwrap_or(0),
            ));
        }
        Ok(out)
    }

    /// Incidents the daemon must pick up again after a restart.
    /// Oldest first; only their rows are read (through the index on `state`), however
    /// many finished incidents the store holds.
    pub fn in_flight(&self) -> Result<Vec<Incident>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM incidents WHERE state IN ({}) ORDER BY created_at, id",
            in_flight_states()
        ))?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(from_row(r)?);
        }
        Ok(out)
    }

    /// The transitions of an incident, oldest first.
    pub fn transitions(&self, id: &str) -> Result<Vec<TransitionRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, at, from_state, event, to_state, note FROM transitions WHERE incident_id = ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query([id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let from: Option<String> = r.get(2)?;
            out.push(TransitionRecord {
                seq: r.get(0)?,
                at: parse_ts(&r.get::<_, String>(1)?)?,
                from: from
                    .map(|f| f.parse())
                    .transpose()
                    .map_err(StoreError::Corrupt)?,
                event: r.get(3)?,
                to: r
                    .get::<_, String>(4)?
                    .parse()
                    .map_err(StoreError::Corrupt)?,
                note: r.get(5)?,
            });
        }
        Ok(out)
    }

    /// Rollbacks (incidents that reached `rolling_back`) started since `since`, for
    /// `agent` or for every agent.
    pub fn rollbacks_since(
        &self,
        agent: Option<&str>,
        since: DateTime<Utc>,
        unattended_only: bool,
    ) -> Result<usize, StoreError> {
        let conn = self.conn()?;
        let n: i64 = conn.query_row(
            "SELECT COUNT(DISTINCT t.incident_id) FROM transitions t JOIN incidents i ON i.id = t.incident_id
             WHERE t.to_state = 'rolling_back' AND t.at >= ?1 AND (?2 IS NULL OR i.agent = ?2)
               AND (?3 = 0 OR i.trigger = 'automatic') AND i.dry_run = 0",
            params![ts(since), agent, unattended_only],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// The open (not terminal) incident for a workload revision, if any.
    /// Looks at every open incident of the agent, however many it has.
    pub fn open_incident_for(
        &self,
        agent: &str,
        revision: Option<u64>,
    ) -> Result<Option<Incident>, StoreError> {
        open_in(&*self.conn()?, agent, revision)
    }

    /// Every incident of an agent waiting for a human (awaiting approval or blocked),
    /// oldest first, however many there are.
    pub fn waiting_for_human(&self, agent: &str) -> Result<Vec<Incident>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM incidents
             WHERE agent = ?1 AND state IN ('awaiting_approval', 'blocked')
             ORDER BY created_at, id"
        ))?;
        let mut rows = stmt.query(params![agent])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(from_row(r)?);
        }
        Ok(out)
    }

    /// The newest incident the evaluation loop opened for an agent's revision, in any state
    /// (however many incidents the agent has): one automatic incident per deploy.
    pub fn automatic_incident_for(
        &self,
        agent: &str,
        revision: Option<u64>,
    ) -> Result<Option<Incident>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM incidents
             WHERE agent = ?1 AND revision IS ?2 AND trigger = 'automatic'
             ORDER BY created_at DESC, id DESC LIMIT 1"
        ))?;
        let mut rows = stmt.query(params![agent, revision.map(|v| v as i64)])?;
        match rows.next()? {
            Some(r) => Ok(Some(from_row(r)?)),
            None => Ok(None),
        }
    }
}

/// What [`Store::open_incident`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Opened {
    /// A new incident, with its notifications queued.
    New(Incident),
    /// The deploy already had this open incident: nothing was written.
    AlreadyOpen(Incident),
}

impl Opened {
    /// The new or the already open incident.
    pub fn into_incident(self) -> Incident {
        match self {
            Opened::New(i) | Opened::AlreadyOpen(i) => i,
        }
    }
}

fn by_id(conn: &rusqlite::Connection, id: &str) -> Result<Option<Incident>, StoreError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM incidents WHERE id = ?1"))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(r) => Ok(Some(from_row(r)?)),
        None => Ok(None),
    }
}

/// The open (not terminal) incident of `agent` for `revision`, among all its incidents.
fn open_in(
    conn: &rusqlite::Connection,
    agent: &str,
    revision: Option<u64>,
) -> Result<Option<Incident>, StoreError> {
    let terminal = State::ALL
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM incidents
         WHERE agent = ?1 AND revision IS ?2 AND state NOT IN ({terminal})
         ORDER BY created_at DESC, id DESC LIMIT 1"
    ))?;
    let mut rows = stmt.query(params![agent, revision.map(|v| v as i64)])?;
    match rows.next()? {
        Some(r) => Ok(Some(from_row(r)?)),
        None => Ok(None),
    }
}
