//! Catching up with Alertmanager: whenever this replica starts leading (at start without
//! leader election), it asks Alertmanager for the alerts firing now and records them as the
//! webhook would have (already-seen ones are recognised and change nothing), so an alert
//! that fired while no rollbackd was leading is not missed until Alertmanager repeats it.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::{AgentIndex, AlertIngest, active_records};
use crate::signals::alertmanager::AlertmanagerClient;

/// What one catch-up found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caught {
    /// Alerts about known agents that Alertmanager reports firing.
    pub firing: usize,
    /// Of those, the ones rollbackd had not recorded (they wake the evaluation loop).
    pub new: usize,
}

/// Everything a catch-up needs.
#[derive(Clone)]
pub struct AlertSync {
    /// The Alertmanager to ask.
    pub client: AlertmanagerClient,
    /// Where alerts are recorded (the webhook's group commit).
    pub ingest: AlertIngest,
    /// Which agent an alert is about.
    pub agents: Arc<AgentIndex>,
    /// The label naming the agent (`webhook.agent_label`).
    pub agent_label: String,
}

impl AlertSync {
    /// Asks once and records what is firing.
    pub async fn catch_up(&self) -> Result<Caught, String> {
        let alerts = self
            .client
            .active_alerts()
            .await
            .map_err(|e| e.to_string())?;
        let records = active_records(&alerts, &self.agents, &self.agent_label);
        if records.is_empty() {
            return Ok(Caught { firing: 0, new: 0 });
        }
        let firing = records.len();
        let (_, fresh) = self
            .ingest
            .record(records)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Caught {
            firing,
            new: fresh.iter().filter(|f| **f).count(),
        })
    }

    /// Catches up each time `leading` turns true, retrying (1 s doubling to 30 s) while
    /// Alertmanager cannot be reached and this replica still leads, until `cancel`.
    pub async fn run(self, mut leading: watch::Receiver<bool>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                led = leading.wait_for(|l| *l) => if led.is_err() { return },
            }
            let retry = ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(1))
                .with_max_delay(Duration::from_secs(30))
                .without_max_times();
            let attempt = || self.catch_up();
            let still_leading = leading.clone();
            let caught = tokio::select! {
                _ = cancel.cancelled() => return,
                r = attempt
                    .retry(retry)
                    .when(|_| *still_leading.borrow())
                    .notify(|e, after| tracing::warn!(
                        error = %e, retry_in = ?after,
                        "cannot read the firing alerts from Alertmanager"
                    )) => r,
            };
            match caught {
                Ok(c) => tracing::info!(
                    firing = c.firing,
                    new = c.new,
                    "caught up with Alertmanager's firing alerts"
                ),
                Err(e) => tracing::warn!(error = %e, "gave up catching up with Alertmanager"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                lost = leading.wait_for(|l| !*l) => if lost.is_err() { return },
            }
        }
    }
}
