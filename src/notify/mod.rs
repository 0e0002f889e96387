//! Notifications: Slack (Web API and incoming webhooks), Atlassian Statuspage, PagerDuty
//! (Events API v2) and a generic JSON webhook, fed by an outbox.
//!
//! The rollback path only inserts [`OutboxItem`]s into an [`OutboxStore`];
//! [`run_outbox`] delivers them with retries (exponential backoff with jitter, honouring
//! `Retry-After`), keeping each incident's messages to one target in order and
//! remembering per-target threads ([`ThreadRef`]: Slack channel ID + `ts`, Statuspage
//! incident id, PagerDuty alert state) between stages. With a Slack signing secret, an
//! incident's root Slack message carries the buttons fitting its stage ([`slack_buttons`]).

mod config;
mod error;
mod http;
pub mod kube_event;
mod memory;
mod message;
mod mrkdwn;
mod notifiers;
mod outbox;
mod pacer;
pub mod pagerduty;
mod retry;
mod slack;
pub mod slack_buttons;
mod slack_webhook;
pub mod statuspage;
pub mod webhook;
mod worker;

pub use config::NotifierConfig;
pub use error::NotifyError;
pub use memory::{MemoryOutbox, OutboxRecord, OutboxStatus};
pub use message::{
    Message, OutboxItem, SLACK_WEBHOOK_NAME, Target, ThreadRef, WEBHOOK_NAME, stage_from_name,
    stage_name,
};
pub use mrkdwn::slack_text;
pub use notifiers::Notifiers;
pub use outbox::{DeliveryObserver, NoopObserver, OutboxStore};
pub use retry::{MAX_RETRY_AFTER, RetryConfig, parse_retry_after};
pub use worker::run_outbox;

pub(crate) use slack::SlackApi;
