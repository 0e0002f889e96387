//! Pre-rollback backups of workload specs and ConfigMaps.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Store, StoreError, ts};

impl Store {
    /// Saves one object taken before the first mutating step of an incident.
    pub fn save_backup(
        &self,
        incident_id: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        object: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO backups (incident_id, kind, namespace, name, object, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![incident_id, kind, namespace, name, serde_json::to_string(object)?, ts(at)],
        )?;
        Ok(())
    }

    /// The backups of an incident: (kind, namespace, name, object).
    pub fn backups(
        &self,
        incident_id: &str,
    ) -> Result<Vec<(String, String, String, serde_json::Value)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT kind, namespace, name, object FROM backups WHERE incident_id = ?1 ORDER BY id",
        )?;
        let mut rows = stmt.query([incident_id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                serde_json::from_str(&r.get::<_, String>(3)?)?,
            ));
        }
        Ok(out)
    }
}
