//! The generic JSON webhook: `POST url` with the message as a structured object.

use serde_json::{Value, json};

use super::error::NotifyError;
use super::http;
use super::message::{Message, stage_name};

const TARGET: &str = "webhook";

/// The JSON body posted for a message.
pub fn payload(message: &Message) -> Value {
    json!({
        "incident_id": message.incident_id,
        "agent_id": message.agent_id,
        "stage": stage_name(message.stage),
        "severity": message.severity,
        "text": message.text,
        "fields": message.fields,
    })
}

/// Posts one message; any 2xx is success.
pub(crate) async fn send(
    client: &reqwest::Client,
    url: &str,
    message: &Message,
) -> Result<(), NotifyError> {
    let request = client.post(url).json(&payload(message));
    let (status, headers, body) = http::send(TARGET, request).await?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(http::status_error(TARGET, status, &headers, &body))
    }
}
