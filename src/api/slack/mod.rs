//! `POST /api/v1/slack/interactions`: the presses of the incident messages' buttons.
//!
//! The raw body is verified against Slack's signature before anything reads it
//! ([`signature`]); a press is then acknowledged at once with an empty 200 (Slack gives
//! three seconds) and applied in its own task (`apply.rs`): who pressed is checked against
//! the policy's `slack_approvers`, the action goes through the same code as the API's
//! approve, cancel, pause and resume, the root message is updated in place, and refusals
//! reach the presser as ephemeral messages. A press Slack re-sends is recognised by its
//! identity and acknowledged without being applied again (`seen.rs`).
//!
//! Without `notify.slack_signing_secret` the endpoint answers 404 saying so: a press that
//! cannot be verified is never applied. Not behind the API's bearer tokens: the signature is
//! the credential.

mod apply;
mod members;
pub mod press;
mod seen;
pub mod signature;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::{ApiError, ApiState};
use crate::notify::{NotifierConfig, NotifyError, SlackApi};
use members::Members;
use press::Press;
use seen::Seen;

/// The header Slack sets on a re-sent request (1, 2, 3).
pub const RETRY_NUM: &str = "x-slack-retry-num";

/// What the interactions endpoint needs: the signing secret, a Slack client for its
/// answers, and the presses seen.
pub struct SlackInteractions {
    secret: String,
    api: SlackApi,
    members: Members,
    seen: Mutex<Seen>,
}

impl std::fmt::Debug for SlackInteractions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackInteractions")
            .field("secret", &"<redacted>")
            .field("api", &self.api.base())
            .finish()
    }
}

impl SlackInteractions {
    /// Interactivity of `config`: `None` without a signing secret (no buttons are drawn
    /// then, and the endpoint refuses every request).
    pub fn from_config(config: &NotifierConfig) -> Result<Option<Arc<Self>>, NotifyError> {
        let Some(secret) = config.slack_signing_secret.clone() else {
            return Ok(None);
        };
        let api = SlackApi::from_config(config)?;
        Ok(Some(Arc::new(SlackInteractions {
            secret,
            members: Members::new(api.clone()),
            api,
            seen: Mutex::default(),
        })))
    }

    /// Checks Slack's signature of `body` at the current time.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), signature::SignatureError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        signature::verify(
            self.secret.as_bytes(),
            header(signature::TIMESTAMP),
            header(signature::SIGNATURE),
            body,
            Utc::now().timestamp(),
        )
    }

    /// `true` the first time a press is offered.
    fn first_time(&self, press: &Press) -> bool {
        match self.seen.lock() {
            Ok(mut seen) => seen.first(&press.identity(), Instant::now()),
            // a poisoned lock: refuse rather than risk applying twice
            Err(_) => false,
        }
    }
}

/// The handler: verify, read, acknowledge, and apply after the acknowledgement.
#[utoipa::path(post, path = "/api/v1/slack/interactions", tag = "slack",
    summary = "Slack button presses (interaction payloads), verified by Slack's request signature",
    description = "Not behind an API token: the `v0` HMAC-SHA256 signature of `v0:{X-Slack-Request-Timestamp}:{raw body}` with `[notify] slack_signing_secret` is the credential; timestamps more than 5 minutes off are refused. The answer (empty 200) comes at once; the press is applied after it, and a retry of a press already taken (`X-Slack-Retry-Num`) is acknowledged without being applied again. Who may press what comes from the policy's `slack_approvers`.",
    params(
        ("X-Slack-Signature" = String, Header, description = "`v0=` and the hex HMAC-SHA256"),
        ("X-Slack-Request-Timestamp" = String, Header, description = "Unix seconds when Slack sent it"),
        ("X-Slack-Retry-Num" = Option<u32>, Header, description = "set on Slack's retries"),
    ),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`payload=` and the interaction's JSON (Block Kit `block_actions`)"),
    responses(
        (status = 200, description = "acknowledged (the press is applied after the answer, or was already taken)"),
        (status = 400, description = "no readable `payload`", body = super::error::ErrorBody),
        (status = 401, description = "unsigned, stale or badly signed", body = super::error::ErrorBody),
        (status = 404, description = "Slack interactivity is off (no signing secret)", body = super::error::ErrorBody),
        (status = 503, description = super::openapi::UNAVAILABLE, body = super::error::ErrorBody, headers(
            ("Retry-After" = u32, description = "seconds to wait before retrying"))),
    ))]
pub async fn interactions(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let count = |outcome: &str| {
        state
            .metrics
            .inc("rollbackd_slack_interactions_total", &[outcome]);
    };
    let Some(slack) = state.slack.clone() else {
        count("not_configured");
        return ApiError::NotFound(
            "Slack interactivity is off: set [notify] slack_signing_secret (or _file) so rollbackd can verify Slack's requests".into(),
        )
        .into_response();
    };
    if let Err(e) = slack.verify(&headers, &body) {
        count(e.metric_label());
        tracing::warn!(error = %e, "slack: interaction refused");
        let answer = Json(json!({"error": e.to_string()}));
        return (StatusCode::UNAUTHORIZED, answer).into_response();
    }
    let press = match Press::parse(&body) {
        Ok(press) => press,
        Err(e) => {
            count("malformed");
            return ApiError::BadRequest {
                field: Some("payload".into()),
                message: e.to_string(),
            }
            .into_response();
        }
    };
    if let Err(e) = state.require_leader() {
        count("not_leader");
        return e.into_response();
    }
    let retry = headers.get(RETRY_NUM).and_then(|v| v.to_str().ok());
    if !slack.first_time(&press) {
        count("repeat_ignored");
        tracing::info!(press = %press.identity(), retry, "slack: press already taken, not applied again");
        return StatusCode::OK.into_response();
    }
    count("accepted");
    tracing::info!(press = %press.identity(), retry, "slack: press accepted");
    tokio::spawn(apply::apply(state, slack, press));
    StatusCode::OK.into_response()
}
