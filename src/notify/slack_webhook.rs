//! Slack incoming webhooks: `POST url {"text": …}`, answered `200 ok`; errors are 4xx with
//! plain text (`invalid_payload`, `no_text`, `channel_not_found`).

use serde_json::json;

use super::error::NotifyError;
use super::http;
use super::message::Message;
use super::mrkdwn::slack_text;

const TARGET: &str = "slack_webhook";

/// Posts one message to an incoming webhook. There is no thread: each stage is a new post.
pub(crate) async fn send(
    client: &reqwest::Client,
    url: &str,
    message: &Message,
) -> Result<(), NotifyError> {
    let request = client
        .post(url)
        .json(&json!({"text": slack_text(&message.text)}));
    let (status, headers, body) = http::send(TARGET, request).await?;
    if !(200..300).contains(&status) {
        return Err(http::status_error(TARGET, status, &headers, &body));
    }
    if body.trim() != "ok" {
        return Err(NotifyError::BadResponse {
            target: TARGET,
            detail: format!("expected \"ok\", got {:?}", http::truncate(&body)),
        });
    }
    Ok(())
}
