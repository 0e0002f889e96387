//! The retention task: every hour, the store deletes what is older than the configured age
//! (finished incidents with everything they own, alerts, audit entries); the SQLite backend
//! runs it on a blocking thread, as every store call. A failed pass is logged and retried
//! at the next one; it never stops the daemon. Only the leader prunes: a standby's pass is
//! skipped (its writes to a shared store would be fenced anyway).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::store::StateStore;

/// How often retention runs.
pub const EVERY: Duration = Duration::from_secs(3600);

/// Runs a pass at start and every `every` until `cancel`, deleting what is older than
/// `keep`, whenever `leading` says this replica leads.
pub async fn run(
    store: Arc<dyn StateStore>,
    keep: Duration,
    every: Duration,
    leading: tokio::sync::watch::Receiver<bool>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !*leading.borrow() {
            tracing::debug!("retention: skipped, this replica does not lead");
            continue;
        }
        let Ok(keep) = chrono::TimeDelta::from_std(keep) else {
            tracing::error!(?keep, "retention: age out of range, nothing deleted");
            return;
        };
        let cutoff = Utc::now() - keep;
        match store.prune_older_than(cutoff).await {
            Ok(pruned) if pruned.total() > 0 => tracing::info!(
                cutoff = %cutoff.to_rfc3339(),
                incidents = pruned.incidents,
                backups = pruned.backups,
                outbox = pruned.outbox,
                audit = pruned.audit,
                alerts = pruned.alerts,
                "retention: deleted what is older than the configured age"
            ),
            Ok(_) => {
                tracing::debug!(cutoff = %cutoff.to_rfc3339(), "retention: nothing to delete")
            }
            Err(e) => tracing::warn!(error = %e, "retention pass failed; retried in an hour"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rollbackd_core::incident::{Event, NewIncident, State, Trigger};

    use super::*;
    use crate::store::{SqliteStore, Transition};

    /// An incident of `GL-<age_days>` opened and resolved `age_days` ago.
    async fn resolved(store: &dyn StateStore, age_days: i64) -> String {
        let at = Utc::now() - chrono::TimeDelta::days(age_days);
        let new = NewIncident {
            agent: format!("GL-{age_days:03}"),
            namespace: "greenlang".into(),
            workload: "w".into(),
            revision: Some(2),
            from_image: None,
            row: Some("p0".into()),
            severity: Some("P0".into()),
            method: Some("quick".into()),
            trigger: Trigger::Automatic,
            requested_by: None,
            reason: "test".into(),
            decision: serde_json::Value::Null,
            dry_run: false,
            vars: BTreeMap::new(),
            deploy_at: Some(at),
        };
        let inc = store
            .create_incident(&new, Event::Start, at, &[], None)
            .await
            .expect("open");
        for event in [Event::StepsDone, Event::Verified, Event::WatchElapsed] {
            store
                .transition(&Transition::new(&inc.id, event, at, ""))
                .await
                .expect("transition");
        }
        inc.id
    }

    #[tokio::test]
    async fn the_leaders_task_deletes_old_finished_incidents_and_stops_when_cancelled() {
        let store: Arc<dyn StateStore> = Arc::new(SqliteStore::in_memory().await.expect("store"));
        let (old, recent) = (
            resolved(store.as_ref(), 40).await,
            resolved(store.as_ref(), 2).await,
        );
        let cancel = CancellationToken::new();
        let (leading_tx, leading) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run(
            store.clone(),
            Duration::from_secs(30 * 24 * 3600),
            Duration::from_millis(20),
            leading,
            cancel.clone(),
        ));
        // a standby's passes delete nothing
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            store.incident(&old).await.expect("read").is_some(),
            "a standby pruned"
        );
        leading_tx.send_replace(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while store.incident(&old).await.expect("read").is_some() {
            assert!(tokio::time::Instant::now() < deadline, "not deleted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let kept = store.incident(&recent).await.expect("read").expect("kept");
        assert_eq!(kept.state, State::Resolved);
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("stops when cancelled")
            .expect("no panic");
    }
}
