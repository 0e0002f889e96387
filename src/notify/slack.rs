//! Slack Web API: the first message of an incident is a `chat.postMessage` to the channel;
//! later ones `chat.update` that parent (so it shows the current state) and add a threaded
//! reply (so the timeline stays in one thread). The thread remembers the channel **ID** and
//! `ts` from the first answer.
//!
//! Every `chat.postMessage` carries message metadata (`event_type`
//! `rollbackd_notification`, the incident and outbox row ids). A delivery in doubt (its
//! process died, or its answer was lost) is looked up before it is sent again
//! (`SlackApi::find`): a first message in the channel's history, a later one among the
//! thread's replies, both read with `include_all_metadata`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};

use super::config::NotifierConfig;
use super::error::NotifyError;
use super::http;
use super::message::{Message, ThreadRef};
use super::mrkdwn::slack_text;
use super::slack_buttons::{buttons_for, message_blocks};

const TARGET: &str = "slack";

/// Slack error codes worth retrying; every other code is permanent.
const TRANSIENT_CODES: &[&str] = &[
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// `chat.update` errors after which the threaded reply is still posted.
const UNEDITABLE_CODES: &[&str] = &["cant_update_message", "edit_window_closed"];

/// Whether a Slack `error` code may go away on retry.
pub(crate) fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

/// The metadata `event_type` of rollbackd's messages.
pub const EVENT_TYPE: &str = "rollbackd_notification";

/// How far before an attempt in doubt started its message is looked for (clock skew
/// between this host and Slack).
const LOOKBACK: TimeDelta = TimeDelta::minutes(2);

/// The metadata of the message delivering outbox row `outbox_id` of `incident_id`.
pub fn metadata(incident_id: &str, outbox_id: i64) -> Value {
    json!({
        "event_type": EVENT_TYPE,
        "event_payload": {"incident_id": incident_id, "outbox_id": outbox_id.to_string()}
    })
}

/// Whether a message from `conversations.history`/`replies` delivers outbox row `outbox_id`.
fn delivers(message: &Value, outbox_id: i64) -> bool {
    let Some(meta) = message.get("metadata") else {
        return false;
    };
    meta.get("event_type").and_then(Value::as_str) == Some(EVENT_TYPE)
        && meta
            .pointer("/event_payload/outbox_id")
            .and_then(Value::as_str)
            == Some(outbox_id.to_string().as_str())
}

/// Whether a configured channel is already an ID (`C…`, `G…`), not a name.
fn is_channel_id(channel: &str) -> bool {
    channel.len() >= 9
        && channel.starts_with(['C', 'G'])
        && channel
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Slack's `oldest`/`latest` form of a time: seconds with microseconds.
fn slack_ts(at: DateTime<Utc>) -> String {
    format!("{}.{:06}", at.timestamp(), at.timestamp_subsec_micros())
}

/// A Slack Web API client.
#[derive(Clone)]
pub(crate) struct SlackApi {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
    /// Channel names to IDs, as `conversations.list` answered.
    channel_ids: Arc<Mutex<HashMap<String, String>>>,
    /// Root messages carry the buttons fitting their stage (presses can be received).
    buttons: bool,
}

/// Channel ID and `ts` of an incident's parent message.
struct Parent {
    channel: String,
    ts: String,
}

impl Parent {
    fn from_thread(thread: Option<&ThreadRef>) -> Option<Parent> {
        let data = &thread?.data;
        Some(Parent {
            channel: data.get("channel")?.as_str()?.to_string(),
            ts: data.get("ts")?.as_str()?.to_string(),
        })
    }
}

impl SlackApi {
    /// A client for `base` (e.g. `https://slack.com/api`).
    pub(crate) fn new(client: reqwest::Client, base: &str, token: Option<String>) -> Self {
        SlackApi {
            client,
            base: base.trim_end_matches('/').to_string(),
            token,
            channel_ids: Arc::default(),
            buttons: false,
        }
    }

    /// A client of `config`'s Slack API (URL, token, request timeout), for the API's
    /// answers to button presses.
    pub(crate) fn from_config(config: &NotifierConfig) -> Result<Self, NotifyError> {
        let client = http::client(config.request_timeout)?;
        Ok(SlackApi::new(
            client,
            &config.slack_api_url,
            config.slack_token.clone(),
        ))
    }

    /// The same client, drawing buttons on root messages when `buttons`.
    pub(crate) fn with_buttons(mut self, buttons: bool) -> Self {
        self.buttons = buttons;
        self
    }

    /// The Web API base URL (`https://slack.com/api`).
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// A root message's body fields: its text, and its blocks when buttons are on.
    fn root(&self, text: &str, message: &Message) -> Value {
        let mut body = json!({"text": text});
        if self.buttons {
            let buttons = buttons_for(message.stage);
            body["blocks"] = message_blocks(text, &message.incident_id, &message.agent_id, buttons);
        }
        body
    }

    /// Posts (first message) or updates and replies in the thread (later ones). Returns the
    /// new thread after a first post.
    pub(crate) async fn send(
        &self,
        channel: &str,
        (key, outbox_id): (String, i64),
        message: &Message,
        thread: Option<&ThreadRef>,
    ) -> Result<Option<ThreadRef>, NotifyError> {
        let text = slack_text(&message.text);
        let metadata = metadata(&message.incident_id, outbox_id);
        match Parent::from_thread(thread) {
            None => {
                let mut body = self.root(&text, message);
                body["channel"] = channel.into();
                body["metadata"] = metadata.clone();
                let answer = self.call("chat.postMessage", &body).await?;
                let (Some(id), Some(ts)) = (
                    answer.get("channel").and_then(Value::as_str),
                    answer.get("ts").and_then(Value::as_str),
                ) else {
                    return Err(NotifyError::BadResponse {
                        target: TARGET,
                        detail: "chat.postMessage answer lacks channel or ts".into(),
                    });
                };
                Ok(Some(ThreadRef {
                    key,
                    data: json!({"channel": id, "ts": ts}),
                }))
            }
            Some(parent) => {
                let mut body = self.root(&text, message);
                body["channel"] = parent.channel.as_str().into();
                body["ts"] = parent.ts.as_str().into();
                let updated = self.call("chat.update", &body).await;
                match updated {
                    // A parent that can no longer be edited still gets the threaded reply.
                    Err(NotifyError::Api { code, .. }) if UNEDITABLE_CODES.contains(&&*code) => {
                        tracing::info!(code, "slack: parent message not updated");
                    }
                    other => {
                        other?;
                    }
                }
                self.call(
                    "chat.postMessage",
                    &json!({"channel": parent.channel, "thread_ts": parent.ts, "text": text, "metadata": metadata}),
                )
                .await?;
                Ok(None)
            }
        }
    }

    /// Whether Slack already has outbox row `outbox_id`, from an attempt started at `since`
    /// whose outcome is unknown: `Some(thread)` when it does (the thread to save when that
    /// attempt posted the first message), `None` when it must be sent. A first message is
    /// looked for in the channel's history, a later one among the thread's replies.
    pub(crate) async fn find(
        &self,
        channel: &str,
        (key, outbox_id): (String, i64),
        thread: Option<&ThreadRef>,
        since: DateTime<Utc>,
    ) -> Result<Option<Option<ThreadRef>>, NotifyError> {
        let oldest = slack_ts(since - LOOKBACK);
        match Parent::from_thread(thread) {
            None => {
                let id = self.channel_id(channel).await?;
                let answer = self
                    .call_get(
                        "conversations.history",
                        &[
                            ("channel", id.as_str()),
                            ("oldest", &oldest),
                            ("include_all_metadata", "true"),
                            ("limit", "200"),
                        ],
                    )
                    .await?;
                Ok(messages(&answer)
                    .find(|m| delivers(m, outbox_id))
                    .and_then(|m| m.get("ts").and_then(Value::as_str))
                    .map(|ts| {
                        Some(ThreadRef {
                            key,
                            data: json!({"channel": id, "ts": ts}),
                        })
                    }))
            }
            Some(parent) => {
                let answer = self
                    .call_get(
                        "conversations.replies",
                        &[
                            ("channel", parent.channel.as_str()),
                            ("ts", &parent.ts),
                            ("oldest", &oldest),
                            ("include_all_metadata", "true"),
                            ("limit", "200"),
                        ],
                    )
                    .await?;
                Ok(messages(&answer)
                    .any(|m| delivers(m, outbox_id))
                    .then_some(None))
            }
        }
    }

    /// The ID of a channel given by name (`#gl-002-incidents`) or by ID, from
    /// `conversations.list` (public and private channels the app can see), remembered.
    async fn channel_id(&self, channel: &str) -> Result<String, NotifyError> {
        if is_channel_id(channel) {
            return Ok(channel.to_string());
        }
        let name = channel.trim_start_matches('#');
        if let Some(id) = self
            .channel_ids
            .lock()
            .ok()
            .and_then(|ids| ids.get(name).cloned())
        {
            return Ok(id);
        }
        let mut cursor = String::new();
        loop {
            let answer = self
                .call_get(
                    "conversations.list",
                    &[
                        ("types", "public_channel,private_channel"),
                        ("exclude_archived", "true"),
                        ("limit", "1000"),
                        ("cursor", &cursor),
                    ],
                )
                .await?;
            let found = answer
                .get("channels")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
                .and_then(|c| c.get("id").and_then(Value::as_str).map(str::to_string));
            if let Some(id) = found {
                if let Ok(mut ids) = self.channel_ids.lock() {
                    ids.insert(name.to_string(), id.clone());
                }
                return Ok(id);
            }
            cursor = answer
                .pointer("/response_metadata/next_cursor")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if cursor.is_empty() {
                return Err(NotifyError::Api {
                    target: TARGET,
                    code: "channel_not_found".into(),
                    transient: false,
                });
            }
        }
    }

    /// Calls a read method (`GET`, query parameters); `{"ok":false}` answers become
    /// [`NotifyError::Api`].
    async fn call_get(&self, method: &str, query: &[(&str, &str)]) -> Result<Value, NotifyError> {
        let token = self.token()?;
        let request = self
            .client
            .get(format!("{}/{method}", self.base))
            .query(query)
            .header(AUTHORIZATION, format!("Bearer {token}"));
        self.answer(method, request).await
    }

    fn token(&self) -> Result<&str, NotifyError> {
        self.token.as_deref().ok_or(NotifyError::NotConfigured {
            target: TARGET,
            detail: "no Slack token".into(),
        })
    }

    /// Calls one method with a JSON body; `{"ok":false}` answers become
    /// [`NotifyError::Api`].
    pub(crate) async fn call(&self, method: &str, body: &Value) -> Result<Value, NotifyError> {
        self.call_with(method, "application/json; charset=utf-8", body.to_string())
            .await
    }

    /// Calls a read method that takes form arguments (`usergroups.users.list`).
    pub(crate) async fn call_form(
        &self,
        method: &str,
        args: &[(&str, &str)],
    ) -> Result<Value, NotifyError> {
        let body = serde_urlencoded::to_string(args).map_err(|e| NotifyError::BadResponse {
            target: TARGET,
            detail: format!("{method}: arguments not encodable: {e}"),
        })?;
        self.call_with(method, "application/x-www-form-urlencoded", body)
            .await
    }

    /// The members of a user group (`usergroups.users.list`).
    pub(crate) async fn group_members(&self, group: &str) -> Result<Vec<String>, NotifyError> {
        let answer = self
            .call_form("usergroups.users.list", &[("usergroup", group)])
            .await?;
        let Some(users) = answer.get("users").and_then(Value::as_array) else {
            return Err(NotifyError::BadResponse {
                target: TARGET,
                detail: "usergroups.users.list answer lacks users".into(),
            });
        };
        Ok(users
            .iter()
            .filter_map(|u| u.as_str().map(String::from))
            .collect())
    }

    /// Posts `body` to an interaction's `response_url` (no token: the URL is the
    /// credential). Slack answers `ok` as text or `{"ok":true}`.
    pub(crate) async fn respond(&self, url: &str, body: &Value) -> Result<(), NotifyError> {
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string());
        let (status, headers, text) = http::send(TARGET, request).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(http::status_error(TARGET, status, &headers, &text))
        }
    }

    async fn call_with(
        &self,
        method: &str,
        content_type: &'static str,
        body: String,
    ) -> Result<Value, NotifyError> {
        let token = self.token()?;
        let request = self
            .client
            .post(format!("{}/{method}", self.base))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, content_type)
            .body(body);
        self.answer(method, request).await
    }

    /// Sends a request and reads Slack's answer.
    async fn answer(
        &self,
        method: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, NotifyError> {
        let (status, headers, text) = http::send(TARGET, request).await?;
        if !(200..300).contains(&status) {
            return Err(http::status_error(TARGET, status, &headers, &text));
        }
        let answer: Value = serde_json::from_str(&text).map_err(|_| NotifyError::BadResponse {
            target: TARGET,
            detail: format!("{method}: not JSON: {}", http::truncate(&text)),
        })?;
        if answer.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(answer);
        }
        let code = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown_error")
            .to_string();
        Err(NotifyError::Api {
            target: TARGET,
            transient: is_transient_code(&code),
            code,
        })
    }
}

/// The `messages` of a `conversations.history`/`replies` answer.
fn messages(answer: &Value) -> impl Iterator<Item = &Value> {
    answer
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_slack_error_codes() {
        for code in [
            "ratelimited",
            "internal_error",
            "fatal_error",
            "service_unavailable",
        ] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in [
            "invalid_auth",
            "channel_not_found",
            "not_in_channel",
            "msg_too_long",
            "no_text",
            "",
        ] {
            assert!(!is_transient_code(code), "{code}");
        }
    }

    #[test]
    fn reads_parent_from_thread() {
        let thread = ThreadRef {
            key: "slack:#x".into(),
            data: json!({"channel": "C123", "ts": "1700000000.000100"}),
        };
        let parent = Parent::from_thread(Some(&thread)).unwrap();
        assert_eq!(parent.channel, "C123");
        assert_eq!(parent.ts, "1700000000.000100");
        let numeric = ThreadRef {
            key: "slack:#x".into(),
            data: json!({"channel": "C123", "ts": 1700000000.0001}),
        };
        assert!(Parent::from_thread(Some(&numeric)).is_none());
        assert!(Parent::from_thread(None).is_none());
    }
}
