//! Retention on the Kubernetes API: finished incidents last changed before the cutoff go
//! with their backups; the logs lose their older entries.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::KubeStore;
use super::api::WriteError;
use super::configmaps;
use super::records::entry_time;
use crate::store::{Pruned, StoreError};
use rollbackd_core::incident::State;

/// The states retention may delete: the daemon has nothing left to do.
fn finished(s: State) -> bool {
    matches!(
        s,
        State::Resolved | State::Escalated | State::Cancelled | State::Superseded
    )
}

impl KubeStore {
    /// Makes sure `agent`'s register does not hold the incident named `name` as pending
    /// (a later open would create it again).
    async fn release_pending(&self, agent: &str, name: &str) -> Result<(), StoreError> {
        for _ in 0..super::incidents::ATTEMPTS {
            let register = configmaps::register(&self.kube, agent).await?;
            if register.pending.as_ref().is_none_or(|p| p.name() != name) {
                return Ok(());
            }
            match configmaps::write_register(&self.kube, agent, &register, register.count, None)
                .await
            {
                Ok(_) => return Ok(()),
                Err(WriteError::Conflict | WriteError::NotFound) => continue,
                Err(e) => return Err(e.into_store("releasing a register")),
            }
        }
        Err(StoreError::Kube(format!(
            "the register of agent {agent} kept changing"
        )))
    }

    /// Deletes what is older than `cutoff` (see [`crate::store::StateStore::prune_older_than`]).
    /// Each incident goes in one delete at the resourceVersion it was judged at (one that
    /// changed meanwhile waits for the next pass); its backups are listed first and deleted
    /// after it (the garbage collector, following their owner reference, may be first).
    pub(super) async fn prune(&self, cutoff: DateTime<Utc>) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        let mut kept = HashSet::new();
        for obj in self.objects(None).await? {
            let id = obj.id()?.to_string();
            let status = obj.status()?;
            // a notice is done once its notifications are
            let done = obj.is_notice() || finished(status.state);
            if !done || status.updated_at >= cutoff || status.has_pending() {
                kept.insert(id);
                continue;
            }
            self.release_pending(&obj.spec.agent, obj.name()).await?;
            let backups = configmaps::backups(&self.kube, obj.name()).await?.len();
            let rv = obj.resource_version().unwrap_or_default().to_string();
            match self.kube.delete(obj.name(), &rv).await {
                Ok(()) => {}
                Err(WriteError::Conflict | WriteError::NotFound) => {
                    kept.insert(id);
                    continue;
                }
                Err(e) => return Err(e.into_store("deleting an incident")),
            }
            configmaps::delete_backups(&self.kube, obj.name()).await?;
            pruned.incidents += 1;
            pruned.backups += backups;
            pruned.outbox += status.notifications.len();
            pruned.audit += status.audit.len();
        }
        pruned.audit += self
            .audit_log
            .prune(&self.kube, |v| {
                entry_time(v).is_some_and(|t| t >= cutoff)
                    || v["target"].as_str().is_some_and(|t| kept.contains(t))
            })
            .await?;
        pruned.alerts += self
            .alerts
            .prune(&self.kube, |v| entry_time(v).is_some_and(|t| t >= cutoff))
            .await?;
        Ok(pruned)
    }
}
