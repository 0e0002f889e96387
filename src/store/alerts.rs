//! Alerts received from Alertmanager, recorded before they are acknowledged.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError, parse_ts, ts};
use rollbackd_core::engine::AlertTransition;

/// One alert state as delivered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRecord {
    /// The alert's identity across deliveries: Alertmanager's, else its sorted labels.
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// When the condition began (Alertmanager's `startsAt`).
    pub starts_at: DateTime<Utc>,
    /// When it ended (`endsAt`); `None` while firing.
    pub ends_at: Option<DateTime<Utc>>,
    /// The agent it maps to; `None` when no policy claims it.
    pub agent: Option<String>,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// The alert's annotations.
    pub annotations: BTreeMap<String, String>,
}

impl AlertRecord {
    /// The alert state as the engine sees it, received at `at`.
    pub fn transition(&self, at: DateTime<Utc>) -> AlertTransition {
        AlertTransition {
            at,
            started_at: Some(self.starts_at),
            firing: self.status == "firing",
            fingerprint: self.fingerprint.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// A stored alert with the time it arrived.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedAlert {
    /// The alert state as delivered.
    #[serde(flatten)]
    pub alert: AlertRecord,
    /// When rollbackd received it.
    pub received_at: DateTime<Utc>,
}

impl Store {
    /// Records a batch of alerts in one transaction; returns, per alert, whether it was new
    /// (a redelivery of the same fingerprint, status and start is not).
    pub fn record_alerts(
        &self,
        alerts: &[AlertRecord],
        at: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut fresh = self.record_alert_groups(std::slice::from_ref(&alerts), at)?;
        Ok(fresh.pop().unwrap_or_default())
    }

    /// Records several requests' alerts in one transaction (group commit): all or none.
    /// Returns, per group and alert, whether it was new.
    pub fn record_alert_groups<A: AsRef<[AlertRecord]>>(
        &self,
        groups: &[A],
        at: DateTime<Utc>,
    ) -> Result<Vec<Vec<bool>>, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let mut fresh = Vec::with_capacity(groups.len());
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO alerts (fingerprint, status, starts_at, ends_at, agent, labels, annotations, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
            )?;
            let received = ts(at);
            for group in groups {
                let group = group.as_ref();
                let mut new = Vec::with_capacity(group.len());
                for a in group {
                    let n = stmt.execute(params![
                        a.fingerprint,
                        a.status,
                        ts(a.starts_at),
                        a.ends_at.map(ts),
                        a.agent,
                        serde_json::to_string(&a.labels)?,
                        serde_json::to_string(&a.annotations)?,
                        received
                    ])?;
                    new.push(n == 1);
                }
                fresh.push(new);
            }
        }
        tx.commit()?;
        Ok(fresh)
    }

    /// Alerts received since `since`, for one agent, for none (`Some(None)`: unmatched), or all.
    pub fn alerts_since(
        &self,
        agent: Option<Option<&str>>,
        since: DateTime<Utc>,
    ) -> Result<Vec<RecordedAlert>, StoreError> {
        let conn = self.conn()?;
        let (filter, value): (&str, Option<&str>) = match agent {
            None => ("1 = 1 OR ?2 IS NULL", None),
            Some(None) => ("agent IS NULL AND ?2 IS NULL", None),
            Some(Some(a)) => ("agent = ?2", Some(a)),
        };
        let mut stmt = conn.prepare(&format!(
            "SELECT fingerprint, status, starts_at, ends_at, agent, labels, annotations, received_at
             FROM alerts WHERE received_at >= ?1 AND ({filter}) ORDER BY id"
        ))?;
        let mut rows = stmt.query(params![ts(since), value])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let ends: Option<String> = r.get(3)?;
            out.push(RecordedAlert {
                alert: AlertRecord {
                    fingerprint: r.get(0)?,
                    status: r.get(1)?,
                    starts_at: parse_ts(&r.get::<_, String>(2)?)?,
                    ends_at: ends.as_deref().map(parse_ts).transpose()?,
                    agent: r.get(4)?,
                    labels: serde_json::from_str(&r.get::<_, String>(5)?)?,
                    annotations: serde_json::from_str(&r.get::<_, String>(6)?)?,
                },
                received_at: parse_ts(&r.get::<_, String>(7)?)?,
            });
        }
        Ok(out)
    }
}
