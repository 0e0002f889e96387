//! A `RollbackIncident` as the store reads and writes it (`deploy/crds/rollbackincidents.yaml`
//! is its schema), its conversions to and from the store's records, and the caps that keep
//! one object far below etcd's 1.5 MB.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::names;
use crate::store::{
    AuditEntry, Incident, NewIncident, NewOutbox, OutboxRow, StepRow, StoreError, TransitionRecord,
};
use rollbackd_core::incident::{State, Trigger};

/// Longest string kept in the decision's evidence.
const DECISION_STRING: usize = 4096;
/// Longest string kept in a step's outcome, a notification's message or an audit detail.
const ITEM_STRING: usize = 8192;
/// Longest note, reason or delivery error.
const LINE: usize = 4096;
/// Above this many bytes of status, older details are cut harder (see [`Status::fit`]).
pub const STATUS_BUDGET: usize = 768 * 1024;
/// Most bytes of the opening annotation (an object's annotations hold 256 KiB in all).
pub const OPENING_BUDGET: usize = 192 * 1024;
/// Above this many bytes of evidence, its strings are cut harder.
const DECISION_BUDGET: usize = 192 * 1024;

/// A time as the store writes it: to the millisecond, as SQLite keeps it.
pub fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

/// Cuts every string inside `v` longer than `max` bytes (on a character boundary, saying
/// how much was cut), keeping the value's shape: a step outcome still reads as one.
pub fn shrink(v: &mut Value, max: usize) {
    match v {
        Value::String(s) if s.len() > max => *s = crate::text::cap(s, max),
        Value::Array(items) => items.iter_mut().for_each(|i| shrink(i, max)),
        Value::Object(map) => map.values_mut().for_each(|i| shrink(i, max)),
        _ => {}
    }
}

fn size(v: &impl Serialize) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What was decided, written once when the incident opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The agent id.
    pub agent: String,
    /// The primary workload's namespace.
    pub namespace: String,
    /// The primary workload's name.
    pub workload: String,
    /// The deploy revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The image running when the incident opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_image: Option<String>,
    /// The matched row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<String>,
    /// The row's severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// The method to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Automatic or manual.
    pub trigger: Trigger,
    /// The human who asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Why.
    pub reason: String,
    /// The decision with its evidence.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub decision: Value,
    /// Plan only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dry_run: bool,
    /// Placeholders for HTTP steps.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// When the revision was deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_at: Option<DateTime<Utc>>,
    /// When the incident opened.
    pub opened_at: DateTime<Utc>,
}

/// One change of state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransitionEntry {
    /// From 1.
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// The state before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<State>,
    /// The lifecycle event.
    pub event: String,
    /// The state after.
    pub to: State,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// One step of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepEntry {
    /// The method it belongs to (the incident's own or verification's recovery method).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// Position in the method.
    pub index: usize,
    /// The workload it acted on.
    pub workload: String,
    /// The step's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its action kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// `started`, `done`, …
    pub state: String,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Its outcome.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Queueing order within the incident, from 1.
    pub seq: u64,
    /// The target's stable key.
    pub target_key: String,
    /// Where it goes.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub target: Value,
    /// What it says.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub message: Value,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    /// When the last delivery attempt started (written before the message left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_at: Option<DateTime<Utc>>,
}

/// A target's thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadEntry {
    /// The target's key.
    pub target_key: String,
    /// Slack channel and ts, Statuspage incident id, …
    #[serde(default)]
    pub data: Value,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// To what.
    pub target: String,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Details.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

impl AuditRecord {
    /// An entry as the store keeps it (times to the millisecond, long details cut).
    pub fn from_entry(e: &AuditEntry) -> Self {
        let mut detail = e.detail.clone();
        shrink(&mut detail, ITEM_STRING);
        Self {
            at: ms(e.at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            reason: crate::text::cap(&e.reason, LINE),
            detail,
        }
    }

    /// The entry.
    pub fn entry(&self) -> AuditEntry {
        AuditEntry {
            at: self.at,
            actor: self.actor.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            reason: self.reason.clone(),
            detail: self.detail.clone(),
        }
    }
}

/// Where the incident is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Its state.
    pub state: State,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Every transition, oldest first.
    #[serde(default)]
    pub transitions: Vec<TransitionEntry>,
    /// The step journal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepEntry>,
    /// The outbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<Notification>,
    /// The targets' threads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threads: Vec<ThreadEntry>,
    /// The incident's audit entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<AuditRecord>,
}

impl Status {
    /// Appends a transition.
    pub fn push_transition(
        &mut self,
        at: DateTime<Utc>,
        from: State,
        event: String,
        to: State,
        note: &str,
    ) {
        let seq = self.transitions.last().map_or(0, |t| t.seq) + 1;
        self.transitions.push(TransitionEntry {
            seq,
            at: ms(at),
            from: Some(from),
            event,
            to,
            note: crate::text::cap(note, LINE),
        });
        self.state = to;
        self.updated_at = ms(at);
    }

    /// Queues notifications (pending, due at `at`).
    pub fn enqueue(&mut self, items: &[NewOutbox], at: DateTime<Utc>) {
        for item in items {
            let seq = self.notifications.last().map_or(0, |n| n.seq) + 1;
            let mut message = item.message.clone();
            shrink(&mut message, ITEM_STRING);
            self.notifications.push(Notification {
                seq,
                target_key: item.target_key.clone(),
                target: item.target.clone(),
                message,
                state: "pending".into(),
                attempts: 0,
                next_attempt_at: ms(at),
                last_error: None,
                created_at: ms(at),
                sent_at: None,
                attempted_at: None,
            });
        }
    }

    /// Inserts or replaces a step (its first start time is kept), in journal order.
    pub fn save_step(&mut self, step: &StepRow) {
        let mut detail = step.detail.clone();
        shrink(&mut detail, ITEM_STRING);
        let entry = StepEntry {
            method: step.method.clone(),
            index: step.index,
            workload: step.workload.clone(),
            name: step.name.clone(),
            kind: step.kind.clone(),
            state: step.state.clone(),
            started_at: step.started_at.map(ms),
            finished_at: step.finished_at.map(ms),
            detail,
        };
        match self.steps.iter_mut().find(|s| {
            s.method == step.method && s.index == step.index && s.workload == step.workload
        }) {
            Some(old) => {
                let started = old.started_at.or(entry.started_at);
                *old = StepEntry {
                    started_at: started,
                    ..entry
                };
            }
            None => self.steps.push(entry),
        }
        // method by method, in the order they first appear, then by position and workload
        let mut methods: Vec<String> = Vec::new();
        for s in &self.steps {
            if !methods.contains(&s.method) {
                methods.push(s.method.clone());
            }
        }
        let rank = |m: &str| methods.iter().position(|x| x == m).unwrap_or(usize::MAX);
        self.steps.sort_by(|a, b| {
            (rank(&a.method), a.index, &a.workload).cmp(&(rank(&b.method), b.index, &b.workload))
        });
    }

    /// Remembers a target's thread.
    pub fn save_thread(&mut self, target_key: &str, data: &Value) {
        match self.threads.iter_mut().find(|t| t.target_key == target_key) {
            Some(t) => t.data = data.clone(),
            None => self.threads.push(ThreadEntry {
                target_key: target_key.to_string(),
                data: data.clone(),
            }),
        }
    }

    /// Whether a notification is still to be delivered.
    pub fn has_pending(&self) -> bool {
        self.notifications.iter().any(|n| n.state == "pending")
    }

    /// Keeps the status under [`STATUS_BUDGET`]: when it grows past it (hundreds of steps
    /// with long outputs), the strings of audit details, finished steps' outcomes and
    /// delivered messages are cut harder, oldest first, their shapes kept. A status that
    /// still does not fit is refused rather than written.
    pub fn fit(&mut self) -> Result<(), StoreError> {
        for max in [1024, 256, 64] {
            if size(self) <= STATUS_BUDGET {
                return Ok(());
            }
            for a in &mut self.audit {
                shrink(&mut a.detail, max);
            }
            for s in self.steps.iter_mut().filter(|s| s.finished_at.is_some()) {
                shrink(&mut s.detail, max);
            }
            for n in self
                .notifications
                .iter_mut()
                .filter(|n| n.state != "pending")
            {
                shrink(&mut n.message, max);
            }
        }
        let bytes = size(self);
        if bytes <= STATUS_BUDGET {
            Ok(())
        } else {
            Err(StoreError::Kube(format!(
                "incident status would be {bytes} bytes, over the store's {STATUS_BUDGET}"
            )))
        }
    }
}

/// A `RollbackIncident` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentObject {
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// What was decided.
    pub spec: Spec,
    /// Where it is; `None` until the first status write (see [`names::OPENING`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl IncidentObject {
    /// Whether this object holds a notice's notifications, not an incident.
    pub fn is_notice(&self) -> bool {
        self.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(names::NOTICE))
            .is_some_and(|v| v == "true")
    }

    /// A new incident's object, its first status in the [`names::OPENING`] annotation (a
    /// create cannot write status): `opening` is called with the incident as written to
    /// add its notifications and audit entry.
    pub fn opening(
        id: &str,
        new: &NewIncident,
        opening: Status,
        at: DateTime<Utc>,
    ) -> Result<Self, StoreError> {
        let mut decision = new.decision.clone();
        shrink(&mut decision, DECISION_STRING);
        if size(&decision) > DECISION_BUDGET {
            shrink(&mut decision, 256);
        }
        let name = names::incident_name(id);
        let labels = [
            (names::MANAGED_BY.0, names::MANAGED_BY.1.to_string()),
            (names::AGENT, names::label_value(&new.agent)),
            (names::REVISION, names::revision_label(new.revision)),
            (names::TRIGGER, trigger_name(new.trigger).to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut obj = Self {
            metadata: ObjectMeta {
                name: Some(name),
                labels: Some(labels),
                annotations: Some([(names::ID.to_string(), id.to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Spec {
                agent: new.agent.clone(),
                namespace: new.namespace.clone(),
                workload: new.workload.clone(),
                revision: new.revision,
                from_image: new.from_image.clone(),
                row: new.row.clone(),
                severity: new.severity.clone(),
                method: new.method.clone(),
                trigger: new.trigger,
                requested_by: new.requested_by.clone(),
                reason: new.reason.clone(),
                decision,
                dry_run: new.dry_run,
                vars: new.vars.clone(),
                deploy_at: new.deploy_at.map(ms),
                opened_at: ms(at),
            },
            status: None,
        };
        obj.set_opening(&opening)?;
        Ok(obj)
    }

    /// Writes the opening status into its annotation (an object's annotations may hold
    /// 256 KiB in all: past [`OPENING_BUDGET`], its strings are cut harder).
    pub fn set_opening(&mut self, status: &Status) -> Result<(), StoreError> {
        let mut text = serde_json::to_string(status)?;
        let mut max = 1024;
        while text.len() > OPENING_BUDGET && max >= 64 {
            let mut smaller = status.clone();
            for n in &mut smaller.notifications {
                shrink(&mut n.message, max);
            }
            for a in &mut smaller.audit {
                shrink(&mut a.detail, max);
            }
            text = serde_json::to_string(&smaller)?;
            max /= 4;
        }
        if text.len() > OPENING_BUDGET {
            return Err(StoreError::Kube(format!(
                "the opening of RollbackIncident {} would be {} bytes, over the {OPENING_BUDGET} an annotation may hold here",
                self.name(),
                text.len()
            )));
        }
        self.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(names::OPENING.to_string(), text);
        Ok(())
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The resourceVersion it was read at.
    pub fn resource_version(&self) -> Option<&str> {
        self.metadata.resource_version.as_deref()
    }

    /// The incident id (annotation [`names::ID`]).
    pub fn id(&self) -> Result<&str, StoreError> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(names::ID))
            .map(String::as_str)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "RollbackIncident {} has no {} annotation",
                    self.name(),
                    names::ID
                ))
            })
    }

    /// The status, or the opening written with the object while no status was written.
    pub fn effective_status(&self) -> Result<Status, StoreError> {
        if let Some(s) = &self.status {
            return Ok(s.clone());
        }
        let text = self
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(names::OPENING))
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "RollbackIncident {} has neither a status nor an opening",
                    self.name()
                ))
            })?;
        Ok(serde_json::from_str(text)?)
    }

    /// The incident record.
    pub fn incident(&self) -> Result<Incident, StoreError> {
        let status = self.effective_status()?;
        self.incident_with(&status)
    }

    /// The incident record, with `status`.
    pub fn incident_with(&self, status: &Status) -> Result<Incident, StoreError> {
        let s = &self.spec;
        Ok(Incident {
            id: self.id()?.to_string(),
            agent: s.agent.clone(),
            namespace: s.namespace.clone(),
            workload: s.workload.clone(),
            revision: s.revision,
            from_image: s.from_image.clone(),
            row: s.row.clone(),
            severity: s.severity.clone(),
            method: s.method.clone(),
            trigger: s.trigger,
            requested_by: s.requested_by.clone(),
            reason: s.reason.clone(),
            decision: s.decision.clone(),
            state: status.state,
            dry_run: s.dry_run,
            vars: s.vars.clone(),
            deploy_at: s.deploy_at,
            created_at: s.opened_at,
            updated_at: status.updated_at,
        })
    }

    /// The object as JSON with its apiVersion and kind.
    pub fn to_json(&self) -> Result<Value, StoreError> {
        let mut v = serde_json::to_value(self)?;
        if let Some(m) = v.as_object_mut() {
            m.insert(
                "apiVersion".into(),
                Value::String(format!("{}/{}", names::GROUP, names::VERSION)),
            );
            m.insert("kind".into(), Value::String(names::KIND.into()));
        }
        Ok(v)
    }
}

/// The label value of a trigger.
pub fn trigger_name(t: Trigger) -> &'static str {
    match t {
        Trigger::Automatic => "automatic",
        Trigger::Manual => "manual",
    }
}

/// A transition as the store's record.
pub fn transition_record(t: &TransitionEntry) -> TransitionRecord {
    TransitionRecord {
        seq: t.seq,
        at: t.at,
        from: t.from,
        event: t.event.clone(),
        to: t.to,
        note: t.note.clone(),
    }
}

/// A step as the store's record.
pub fn step_row(incident_id: &str, s: &StepEntry) -> StepRow {
    StepRow {
        incident_id: incident_id.to_string(),
        method: s.method.clone(),
        index: s.index,
        workload: s.workload.clone(),
        name: s.name.clone(),
        kind: s.kind.clone(),
        state: s.state.clone(),
        started_at: s.started_at,
        finished_at: s.finished_at,
        detail: s.detail.clone(),
    }
}

/// A notification as an outbox row of the incident named `name`.
pub fn outbox_row(name: &str, incident_id: &str, n: &Notification) -> OutboxRow {
    OutboxRow {
        id: names::outbox_id(name, n.seq),
        incident_id: incident_id.to_string(),
        target_key: n.target_key.clone(),
        target: n.target.clone(),
        message: n.message.clone(),
        state: n.state.clone(),
        attempts: n.attempts,
        next_attempt_at: n.next_attempt_at,
        last_error: n.last_error.clone(),
        sent_at: n.sent_at,
        attempted_at: n.attempted_at,
    }
}

/// A delivery error as kept (one line's worth).
pub fn error_line(e: &str) -> String {
    crate::text::cap(e, LINE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status() -> Status {
        Status {
            state: State::RollingBack,
            updated_at: "2025-11-17T14:30:00Z".parse().unwrap_or_default(),
            transitions: Vec::new(),
            steps: Vec::new(),
            notifications: Vec::new(),
            threads: Vec::new(),
            audit: Vec::new(),
        }
    }

    #[test]
    fn shrink_keeps_the_shape_and_says_what_was_cut() {
        let mut v = json!({"output": "x".repeat(100), "n": 3, "lines": ["y".repeat(50)]});
        shrink(&mut v, 10);
        assert_eq!(v["n"], 3);
        assert!(
            v["output"]
                .as_str()
                .is_some_and(|s| s.starts_with("xxxxxxxxxx…") && s.contains("90 bytes cut")),
            "{v}"
        );
        assert!(v["lines"][0].as_str().is_some_and(|s| s.len() < 50));
    }

    #[test]
    fn an_opening_fits_in_an_annotation() {
        let mut s = status();
        let many: Vec<NewOutbox> = (0..100)
            .map(|i| NewOutbox {
                target_key: format!("webhook:{i}"),
                target: json!({"kind": "webhook", "name": i}),
                message: json!({"text": "m".repeat(7000)}),
            })
            .collect();
        s.enqueue(&many, Utc::now());
        let new = NewIncident {
            agent: "GL-002".into(),
            namespace: "ns".into(),
            workload: "w".into(),
            revision: Some(1),
            from_image: None,
            row: None,
            severity: None,
            method: None,
            trigger: Trigger::Automatic,
            requested_by: None,
            reason: "r".into(),
            decision: json!({}),
            dry_run: false,
            vars: BTreeMap::new(),
            deploy_at: None,
        };
        let obj = IncidentObject::opening("gl-002-x-1", &new, s, Utc::now())
            .unwrap_or_else(|e| panic!("{e}"));
        let opening = &obj
            .metadata
            .annotations
            .as_ref()
            .map(|a| a[names::OPENING].clone());
        let bytes = opening.as_ref().map_or(0, String::len);
        assert!(bytes <= OPENING_BUDGET, "{bytes}");
        let back = obj.effective_status().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.notifications.len(), 100, "every notification kept");
    }

    #[test]
    fn a_status_with_huge_outputs_is_cut_to_fit() {
        let mut s = status();
        for i in 0..200 {
            s.save_step(&StepRow {
                incident_id: "x".into(),
                method: "m".into(),
                index: i,
                workload: "w".into(),
                name: "job".into(),
                kind: "job".into(),
                state: "done".into(),
                started_at: None,
                finished_at: Some(Utc::now()),
                detail: json!({"state": "done", "detail": {"logs": "z".repeat(50_000)}}),
            });
        }
        assert!(size(&s) > STATUS_BUDGET);
        s.fit().unwrap_or_else(|e| panic!("{e}"));
        assert!(size(&s) <= STATUS_BUDGET, "{}", size(&s));
        assert_eq!(s.steps.len(), 200, "every step kept");
        assert_eq!(s.steps[0].detail["state"], "done", "its shape too");
    }
}
