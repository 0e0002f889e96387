//! Notifier settings: endpoints, credentials, timeouts, retry and worker pacing.

use std::collections::BTreeMap;
use std::time::Duration;

use super::retry::RetryConfig;

/// Settings for [`super::Notifiers`] and [`super::run_outbox`].
#[derive(Clone, PartialEq, Eq)]
pub struct NotifierConfig {
    /// Slack Web API base URL.
    pub slack_api_url: String,
    /// Slack bot token (`xoxb-…`); Slack Web API targets fail permanently without it.
    pub slack_token: Option<String>,
    /// Slack signing secret (`notify.slack_signing_secret(_file)`): with it, root messages
    /// carry buttons and the API verifies their presses; a secret.
    pub slack_signing_secret: Option<String>,
    /// Webhook URLs by target name (`slack-webhook`, `webhook`): secrets, so outbox rows
    /// name the target and only the notifiers know the URL. A target whose name is not
    /// here fails permanently.
    pub webhook_urls: BTreeMap<String, String>,
    /// Statuspage API base URL.
    pub statuspage_api_url: String,
    /// Statuspage API key; Statuspage targets fail permanently without it.
    pub statuspage_api_key: Option<String>,
    /// PagerDuty Events API v2 endpoint.
    pub pagerduty_api_url: String,
    /// PagerDuty routing keys by service name (`default`, or a policy's
    /// `pagerduty.service`): secrets, so outbox rows name the service and only the
    /// notifiers know the key. A service whose name is not here fails permanently.
    pub pagerduty_routing_keys: BTreeMap<String, String>,
    /// The URL people reach rollbackd's API at, for links to an incident (PagerDuty
    /// `links`); `None` = no links.
    pub rollbackd_url: Option<String>,
    /// Least time between two Statuspage requests (it allows about 1 request/s per key);
    /// zero disables the pacing.
    pub statuspage_min_interval: Duration,
    /// Timeout of every single HTTP request (connect to last byte).
    pub request_timeout: Duration,
    /// Backoff and attempt limit.
    pub retry: RetryConfig,
    /// How often the worker looks for due items when nothing else wakes it.
    pub poll_interval: Duration,
    /// Most items taken from the store per look.
    pub batch_size: usize,
    /// Most deliveries in flight at once (each incident+target has at most one).
    pub max_in_flight: usize,
    /// How long the final flush at shutdown may take.
    pub shutdown_grace: Duration,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            slack_api_url: "https://slack.com/api".into(),
            slack_token: None,
            slack_signing_secret: None,
            webhook_urls: BTreeMap::new(),
            statuspage_api_url: "https://api.statuspage.io/v1".into(),
            statuspage_api_key: None,
            pagerduty_api_url: "https://events.pagerduty.com/v2/enqueue".into(),
            pagerduty_routing_keys: BTreeMap::new(),
            rollbackd_url: None,
            statuspage_min_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            retry: RetryConfig::default(),
            poll_interval: Duration::from_millis(500),
            batch_size: 100,
            max_in_flight: 16,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Secrets are not printed.
impl std::fmt::Debug for NotifierConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("NotifierConfig")
            .field("slack_api_url", &self.slack_api_url)
            .field("slack_token", &redact(&self.slack_token))
            .field("slack_signing_secret", &redact(&self.slack_signing_secret))
            .field(
                "webhook_urls",
                &self.webhook_urls.keys().collect::<Vec<_>>(),
            )
            .field("statuspage_api_url", &self.statuspage_api_url)
            .field("statuspage_api_key", &redact(&self.statuspage_api_key))
            .field("pagerduty_api_url", &self.pagerduty_api_url)
            .field(
                "pagerduty_routing_keys",
                &self.pagerduty_routing_keys.keys().collect::<Vec<_>>(),
            )
            .field("rollbackd_url", &self.rollbackd_url)
            .field("statuspage_min_interval", &self.statuspage_min_interval)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("poll_interval", &self.poll_interval)
            .field("batch_size", &self.batch_size)
            .field("max_in_flight", &self.max_in_flight)
            .field("shutdown_grace", &self.shutdown_grace)
            .finish()
    }
}
