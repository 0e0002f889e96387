//! Dispatch of one outbox item to its target's notifier.

use super::config::NotifierConfig;
use super::error::NotifyError;
use super::message::{OutboxItem, Target, ThreadRef};
use super::pagerduty::PagerDutyApi;
use super::slack::SlackApi;
use super::statuspage::StatuspageApi;
use super::{http, kube_event, slack_webhook, webhook};
use crate::events::correlator::Regarding;
use crate::events::recorder::EventRecorder;

/// Every notifier, built from one [`NotifierConfig`]; cheap to clone (one shared HTTP
/// connection pool).
#[derive(Clone)]
pub struct Notifiers {
    config: NotifierConfig,
    client: reqwest::Client,
    slack: SlackApi,
    statuspage: StatuspageApi,
    pagerduty: PagerDutyApi,
    events: EventRecorder,
}

impl Notifiers {
    /// Builds the HTTP client (with `request_timeout` on every request) and the notifiers.
    pub fn new(config: NotifierConfig) -> Result<Self, NotifyError> {
        let client = http::client(config.request_timeout)?;
        Ok(Notifiers {
            slack: SlackApi::new(
                client.clone(),
                &config.slack_api_url,
                config.slack_token.clone(),
            )
            .with_buttons(config.slack_signing_secret.is_some()),
            statuspage: StatuspageApi::new(
                client.clone(),
                &config.statuspage_api_url,
                config.statuspage_api_key.clone(),
                config.statuspage_min_interval,
            ),
            pagerduty: PagerDutyApi::new(
                client.clone(),
                &config.pagerduty_api_url,
                config.pagerduty_routing_keys.clone(),
                config.rollbackd_url.clone(),
            ),
            client,
            config,
            events: EventRecorder::off(),
        })
    }

    /// Delivers [`Target::KubeEvent`] items to `events` (without it they are dropped as
    /// delivered: events are best effort, as client-go's are).
    pub fn with_events(mut self, events: EventRecorder) -> Self {
        self.events = events;
        self
    }

    /// The configuration they were built from.
    pub fn config(&self) -> &NotifierConfig {
        &self.config
    }

    /// Sends one item. `thread` is what earlier messages of the incident left for this
    /// target; the answer is a new thread to save (after a first Slack post, a Statuspage
    /// create or a PagerDuty event), or `None` when nothing changed.
    pub async fn send(
        &self,
        item: &OutboxItem,
        thread: Option<ThreadRef>,
    ) -> Result<Option<ThreadRef>, NotifyError> {
        let message = &item.message;
        match &item.target {
            Target::Slack { channel } => {
                self.slack
                    .send(
                        channel,
                        (item.target.key(), item.id),
                        message,
                        thread.as_ref(),
                    )
                    .await
            }
            Target::SlackWebhook { name } => {
                let url = self.webhook_url("slack_webhook", name)?;
                slack_webhook::send(&self.client, url, message).await?;
                Ok(None)
            }
            Target::Statuspage {
                page_id,
                component_id,
            } => {
                self.statuspage
                    .send(
                        page_id,
                        component_id,
                        (item.target.key(), item.id),
                        message,
                        thread.as_ref(),
                    )
                    .await
            }
            Target::PagerDuty {
                service,
                severity,
                action,
            } => {
                self.pagerduty
                    .send(
                        service,
                        (*action, *severity),
                        item.target.key(),
                        message,
                        thread.as_ref(),
                    )
                    .await
            }
            Target::Webhook { name } => {
                let url = self.webhook_url("webhook", name)?;
                webhook::send(&self.client, url, message).await?;
                Ok(None)
            }
            Target::KubeEvent {
                api_version,
                workload_kind,
                namespace,
                name,
            } => {
                let regarding = Regarding {
                    api_version: api_version.clone(),
                    kind: workload_kind.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                };
                // queued with the transition, and never retried (recording cannot fail): the
                // first attempt's time is when the stage happened
                let at = item.next_attempt_at.min(chrono::Utc::now());
                self.events
                    .record(kube_event::stage_event(message, regarding, at));
                Ok(None)
            }
        }
    }

    /// Whether a delivery to this target is recorded before it starts and, when its
    /// outcome is unknown, looked up at the target before it is sent again ([`find`]):
    /// Slack's Web API and Statuspage, whose repeats people would see. PagerDuty
    /// deduplicates by `dedup_key` and Kubernetes Events aggregate by themselves; webhooks
    /// cannot be asked, so they stay at-least-once.
    ///
    /// [`find`]: Self::find
    pub fn looks_up(target: &Target) -> bool {
        matches!(target, Target::Slack { .. } | Target::Statuspage { .. })
    }

    /// Whether the target already has `item`, from an attempt started at `since` whose
    /// outcome is unknown: `Some(thread)` when it does (with the thread that attempt
    /// opened, if it was the first message), `None` when it must be sent.
    pub async fn find(
        &self,
        item: &OutboxItem,
        thread: Option<ThreadRef>,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Option<ThreadRef>>, NotifyError> {
        let ids = (item.target.key(), item.id);
        match &item.target {
            Target::Slack { channel } => {
                self.slack.find(channel, ids, thread.as_ref(), since).await
            }
            Target::Statuspage { page_id, .. } => {
                self.statuspage
                    .find(page_id, ids, &item.message, thread.as_ref())
                    .await
            }
            _ => Ok(None),
        }
    }

    /// The URL configured for a webhook target's name.
    fn webhook_url(&self, target: &'static str, name: &str) -> Result<&str, NotifyError> {
        self.config
            .webhook_urls
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| NotifyError::NotConfigured {
                target,
                detail: format!("no URL for webhook {name:?}"),
            })
    }
}
