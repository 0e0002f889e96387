//! Alertmanager's API (`GET /api/v2/alerts`): the alerts firing now. The webhook tells
//! rollbackd of changes; after a restart or a take-over it asks for what is already firing,
//! because Alertmanager only repeats a notification after its `repeat_interval` (hours).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Talking to Alertmanager failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertmanagerError {
    /// The configured URL cannot be used.
    #[error("alertmanager URL {url:?}: {reason}")]
    Config {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request failed (connection, timeout, or a non-2xx answer).
    #[error("alertmanager {url}: {reason}")]
    Request {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// One alert as `GET /api/v2/alerts` returns it (the fields rollbackd reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveAlert {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When the condition began.
    pub starts_at: DateTime<Utc>,
    /// Alertmanager's identity of the alert.
    pub fingerprint: String,
    /// `active`, `suppressed` or `unprocessed` (in `status.state`).
    pub status: AlertStatus,
}

/// The `status` object of an alert.
#[derive(Debug, Clone, Deserialize)]
pub struct AlertStatus {
    /// `active`, `suppressed` or `unprocessed`.
    pub state: String,
}

/// A client for one Alertmanager.
#[derive(Debug, Clone)]
pub struct AlertmanagerClient {
    http: reqwest::Client,
    alerts_url: reqwest::Url,
}

impl AlertmanagerClient {
    /// A client for the Alertmanager at `base_url`, asking only for alerts routed to
    /// `receiver` (a regular expression, as Alertmanager takes it) when given.
    pub fn new(
        base_url: &str,
        receiver: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, AlertmanagerError> {
        let config = |reason: String| AlertmanagerError::Config {
            url: base_url.to_string(),
            reason,
        };
        let mut alerts_url =
            reqwest::Url::parse(&format!("{}/api/v2/alerts", base_url.trim_end_matches('/')))
                .map_err(|e| config(e.to_string()))?;
        if !matches!(alerts_url.scheme(), "http" | "https") {
            return Err(config("must be http or https".into()));
        }
        {
            let mut query = alerts_url.query_pairs_mut();
            query
                .append_pair("active", "true")
                .append_pair("silenced", "false")
                .append_pair("inhibited", "false")
                .append_pair("unprocessed", "false");
            if let Some(r) = receiver {
                query.append_pair("receiver", r);
            }
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| config(e.to_string()))?;
        Ok(Self { http, alerts_url })
    }

    /// The alerts firing now (active: not silenced, not inhibited).
    pub async fn active_alerts(&self) -> Result<Vec<ActiveAlert>, AlertmanagerError> {
        let url = self.alerts_url.to_string();
        let failed = |reason: String| AlertmanagerError::Request {
            url: url.clone(),
            reason,
        };
        let response = self
            .http
            .get(self.alerts_url.clone())
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(failed(format!(
                "HTTP {status}: {}",
                crate::text::cap(&body, 200)
            )));
        }
        let alerts: Vec<ActiveAlert> = response
            .json()
            .await
            .map_err(|e| failed(format!("unexpected answer: {e}")))?;
        Ok(alerts
            .into_iter()
            .filter(|a| a.status.state == "active")
            .collect())
    }
}
