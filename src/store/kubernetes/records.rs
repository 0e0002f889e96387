//! What an incident's status holds besides its state (steps, the outbox, threads, its audit
//! entries), and the two logs: audit entries about no stored incident, received alerts.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::KubeStore;
use super::names;
use super::object::{AuditRecord, error_line, ms, outbox_row, step_row};
use crate::store::{
    AlertRecord, AuditEntry, NewOutbox, OutboxRow, RecordedAlert, StepRow, StoreError, parse_ts, ts,
};

fn alert_json(a: &AlertRecord, at: DateTime<Utc>) -> Value {
    json!({
        "fingerprint": a.fingerprint,
        "status": a.status,
        "startsAt": ts(a.starts_at),
        "endsAt": a.ends_at.map(ts),
        "agent": a.agent,
        "labels": a.labels,
        "annotations": a.annotations,
        "receivedAt": ts(at),
    })
}

fn alert_key(v: &Value) -> (String, String, String) {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    (s("fingerprint"), s("status"), s("startsAt"))
}

fn alert_of(v: &Value) -> Result<RecordedAlert, StoreError> {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    Ok(RecordedAlert {
        alert: AlertRecord {
            fingerprint: s("fingerprint"),
            status: s("status"),
            starts_at: parse_ts(&s("startsAt"))?,
            ends_at: v["endsAt"].as_str().map(parse_ts).transpose()?,
            agent: v["agent"].as_str().map(str::to_string),
            labels: serde_json::from_value(v["labels"].clone())?,
            annotations: serde_json::from_value(v["annotations"].clone())?,
        },
        received_at: parse_ts(&s("receivedAt"))?,
    })
}

/// When a log entry happened (its `at` or `receivedAt`), for retention.
pub fn entry_time(v: &Value) -> Option<DateTime<Utc>> {
    v["at"]
        .as_str()
        .or_else(|| v["receivedAt"].as_str())
        .and_then(|t| parse_ts(t).ok())
}

impl KubeStore {
    /// Inserts or replaces a step's record.
    pub(super) async fn put_step(&self, step: &StepRow) -> Result<(), StoreError> {
        self.update_existing(&step.incident_id, |_, status| {
            status.save_step(step);
            Ok(((), true))
        })
        .await
    }

    /// Saves a finished step and the audit entry of what it did in one write of the
    /// incident's object (the entry is about the incident, so it lives there too).
    pub(super) async fn put_step_audited(
        &self,
        step: &StepRow,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let record = AuditRecord::from_entry(entry);
        self.update_existing(&step.incident_id, |_, status| {
            status.save_step(step);
            status.audit.push(record.clone());
            Ok(((), true))
        })
        .await
    }

    /// An incident's steps, in order.
    pub(super) async fn steps_of(&self, id: &str) -> Result<Vec<StepRow>, StoreError> {
        let Some(obj) = self.object(id).await? else {
            return Ok(Vec::new());
        };
        Ok(obj
            .status()?
            .steps
            .iter()
            .map(|s| step_row(id, s))
            .collect())
    }

    /// Queues notifications outside a transition.
    pub(super) async fn queue(
        &self,
        id: &str,
        items: &[NewOutbox],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.update_existing(id, |_, status| {
            status.enqueue(items, at);
            Ok(((), !items.is_empty()))
        })
        .await
    }

    /// Due rows: of each (incident, target) the oldest pending row, if its time has come;
    /// oldest first.
    pub(super) async fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut due = Vec::new();
        for obj in self.objects(None).await? {
            let Ok(id) = obj.id() else { continue };
            let status = obj.status()?;
            let mut seen = HashSet::new();
            for n in status.notifications.iter().filter(|n| n.state == "pending") {
                if seen.insert(n.target_key.as_str()) && n.next_attempt_at <= now {
                    due.push((
                        (
                            n.created_at,
                            obj.spec.opened_at,
                            obj.name().to_string(),
                            n.seq,
                        ),
                        outbox_row(obj.name(), id, n),
                    ));
                }
            }
            self.remember_outbox(obj.name());
        }
        due.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(due.into_iter().take(limit).map(|(_, r)| r).collect())
    }

    /// Every row of an incident, as the API may show it.
    pub(super) async fn rows_of(&self, id: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let Some(obj) = self.object(id).await? else {
            return Ok(Vec::new());
        };
        self.remember_outbox(obj.name());
        Ok(obj
            .status()?
            .notifications
            .iter()
            .map(|n| crate::store::outbox::redacted(outbox_row(obj.name(), id, n)))
            .collect())
    }

    fn remember_outbox(&self, name: &str) {
        if let Ok(mut ids) = self.outbox_ids.lock() {
            ids.insert(names::outbox_prefix(name), name.to_string());
        }
    }

    /// The incident id an outbox row id belongs to.
    async fn incident_of_row(&self, row: i64) -> Result<Option<String>, StoreError> {
        let (prefix, _) = names::split_outbox_id(row);
        let known = self
            .outbox_ids
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .get(&prefix)
            .cloned();
        let name = match known {
            Some(name) => Some(name),
            None => {
                for obj in self.objects(None).await? {
                    self.remember_outbox(obj.name());
                }
                self.outbox_ids
                    .lock()
                    .map_err(|_| StoreError::Poisoned)?
                    .get(&prefix)
                    .cloned()
            }
        };
        let Some(name) = name else { return Ok(None) };
        Ok(match self.kube.get(&name).await? {
            Some(obj) => Some(obj.id()?.to_string()),
            None => None,
        })
    }

    /// Changes one outbox row (nothing when there is no such row, as an SQL UPDATE), and
    /// saves `thread` (target key, data) for its incident in the same write.
    pub(super) async fn mark(
        &self,
        row: i64,
        thread: Option<(&str, &Value)>,
        change: impl Fn(&mut super::object::Notification),
    ) -> Result<(), StoreError> {
        let Some(id) = self.incident_of_row(row).await? else {
            return Ok(());
        };
        let (_, seq) = names::split_outbox_id(row);
        self.update(&id, |_, status| {
            let Some(n) = status.notifications.iter_mut().find(|n| n.seq == seq) else {
                return Ok(((), false));
            };
            change(n);
            if let Some((key, data)) = thread {
                status.save_thread(key, data);
            }
            Ok(((), true))
        })
        .await?;
        Ok(())
    }

    /// A row was delivered; the thread its delivery opened is saved in the same write.
    pub(super) async fn sent(
        &self,
        row: i64,
        at: DateTime<Utc>,
        thread: Option<(&str, &Value)>,
    ) -> Result<(), StoreError> {
        self.mark(row, thread, |n| {
            n.state = "sent".into();
            n.sent_at = Some(ms(at));
            n.attempts += 1;
        })
        .await
    }

    /// A delivery attempt of a pending row starts at `at`.
    pub(super) async fn attempt(&self, row: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.mark(row, None, |n| {
            if n.state == "pending" {
                n.attempted_at = Some(ms(at));
            }
        })
        .await
    }

    /// A delivery failed and will be retried at `next`.
    pub(super) async fn retry(
        &self,
        row: i64,
        attempts: u32,
        next: DateTime<Utc>,
        error: &str,
        in_doubt: bool,
    ) -> Result<(), StoreError> {
        let error = error_line(error);
        self.mark(row, None, |n| {
            n.attempts = attempts;
            n.next_attempt_at = ms(next);
            if !in_doubt {
                n.attempted_at = None;
            }
            n.last_error = Some(error.clone());
        })
        .await
    }

    /// Delivery was given up.
    pub(super) async fn failed(
        &self,
        row: i64,
        attempts: u32,
        error: &str,
    ) -> Result<(), StoreError> {
        let error = error_line(error);
        self.mark(row, None, |n| {
            n.state = "failed".into();
            n.attempts = attempts;
            n.last_error = Some(error.clone());
        })
        .await
    }

    /// Rows by delivery state.
    pub(super) async fn delivery_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for obj in self.objects(None).await? {
            for n in &obj.status()?.notifications {
                *counts.entry(n.state.clone()).or_default() += 1;
            }
        }
        Ok(counts.into_iter().collect())
    }

    /// A target's thread for an incident.
    pub(super) async fn thread_of(
        &self,
        id: &str,
        target_key: &str,
    ) -> Result<Option<Value>, StoreError> {
        let Some(obj) = self.object(id).await? else {
            return Ok(None);
        };
        Ok(obj
            .status()?
            .threads
            .iter()
            .find(|t| t.target_key == target_key)
            .map(|t| t.data.clone()))
    }

    /// Remembers a target's thread.
    pub(super) async fn put_thread(
        &self,
        id: &str,
        target_key: &str,
        data: &Value,
    ) -> Result<(), StoreError> {
        self.update_existing(id, |_, status| {
            status.save_thread(target_key, data);
            Ok(((), true))
        })
        .await
    }

    /// Appends to the audit log: to the incident it is about, else to the log of entries
    /// about no stored incident.
    pub(super) async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let record = AuditRecord::from_entry(entry);
        let filed = self
            .update(&entry.target, |_, status| {
                status.audit.push(record.clone());
                Ok(((), true))
            })
            .await?;
        if filed.is_some() {
            return Ok(());
        }
        let value = serde_json::to_value(&record)?;
        self.audit_log
            .append_with(&self.kube, |_| (vec![value.clone()], ()))
            .await
    }

    /// Audit entries about `target` (all when `None`), oldest first, at most `limit`.
    pub(super) async fn audit_entries(
        &self,
        target: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut records: Vec<AuditRecord> = Vec::new();
        for v in self.audit_log.entries(&self.kube).await? {
            records.push(serde_json::from_value(v)?);
        }
        for obj in self.objects(None).await? {
            records.extend(obj.status()?.audit.iter().cloned());
        }
        records.retain(|r| target.is_none_or(|t| r.target == t));
        records.sort_by_key(|r| r.at);
        Ok(records.iter().take(limit).map(AuditRecord::entry).collect())
    }

    /// Records alert groups in one write (see the contract).
    pub(super) async fn record_groups(
        &self,
        groups: &[Vec<AlertRecord>],
        at: DateTime<Utc>,
    ) -> Result<Vec<Vec<bool>>, StoreError> {
        let at = ms(at);
        self.alerts
            .append_with(&self.kube, |existing| {
                let mut seen: HashSet<(String, String, String)> =
                    existing.iter().map(|v| alert_key(v)).collect();
                let mut new = Vec::new();
                let fresh = groups
                    .iter()
                    .map(|group| {
                        group
                            .iter()
                            .map(|a| {
                                let v = alert_json(a, at);
                                let is_new = seen.insert(alert_key(&v));
                                if is_new {
                                    new.push(v);
                                }
                                is_new
                            })
                            .collect()
                    })
                    .collect();
                (new, fresh)
            })
            .await
    }

    /// Alerts received since `since` (see the contract).
    pub(super) async fn alerts_received(
        &self,
        agent: Option<Option<&str>>,
        since: DateTime<Utc>,
    ) -> Result<Vec<RecordedAlert>, StoreError> {
        let mut out = Vec::new();
        for v in self.alerts.entries(&self.kube).await? {
            let a = alert_of(&v)?;
            let wanted = match agent {
                None => true,
                Some(want) => a.alert.agent.as_deref() == want,
            };
            if wanted && a.received_at >= since {
                out.push(a);
            }
        }
        Ok(out)
    }
}
