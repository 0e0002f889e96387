//! A button press as Slack sends it: `application/x-www-form-urlencoded` with one field,
//! `payload`, holding a `block_actions` JSON document. Only what rollbackd needs is read.

use serde::Deserialize;
use serde_json::Value;

use crate::notify::slack_buttons::SlackButton;

/// A press that cannot be read (answered 400; Slack shows the person an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PressError {
    /// The body is not a form with a `payload` field.
    #[error("the body is not form-encoded with a payload field: {0}")]
    NotAForm(String),
    /// `payload` is not the JSON expected; the text names the field.
    #[error("payload: {0}")]
    BadPayload(String),
    /// Something else than a button press (a shortcut, a modal submission…).
    #[error("payload.type {0:?} is not block_actions: rollbackd only has buttons")]
    NotButtons(String),
    /// The press names no action, or one rollbackd did not draw.
    #[error("payload.actions[0].action_id {0:?} is not a rollbackd button")]
    UnknownAction(String),
    /// The button's value is not the `{"incident", "agent"}` rollbackd writes.
    #[error("payload.actions[0].value is not a rollbackd button's value: {0}")]
    BadValue(String),
}

#[derive(Deserialize)]
struct Form {
    payload: String,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    user: User,
    #[serde(default)]
    response_url: Option<String>,
    #[serde(default)]
    container: Option<Container>,
    #[serde(default)]
    channel: Option<Channel>,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    actions: Vec<Action>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Container {
    #[serde(default)]
    message_ts: Option<String>,
    #[serde(default)]
    channel_id: Option<String>,
}

#[derive(Deserialize)]
struct Channel {
    id: String,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    blocks: Option<Value>,
}

#[derive(Deserialize)]
struct Action {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
    action_ts: String,
}

#[derive(Deserialize)]
struct ButtonValue {
    incident: String,
    agent: String,
}

/// One press of one of rollbackd's buttons.
#[derive(Debug, Clone, PartialEq)]
pub struct Press {
    /// The Slack user who pressed (`U…`).
    pub user: String,
    /// Their handle, for people reading the audit trail.
    pub user_name: String,
    /// Which button.
    pub button: SlackButton,
    /// The incident the message is about.
    pub incident: String,
    /// Its agent.
    pub agent: String,
    /// When Slack saw the press (unique per press: with the user and button, the press's
    /// identity, the same in Slack's retries).
    pub action_ts: String,
    /// The message's channel, for `chat.update`.
    pub channel: Option<String>,
    /// The message's `ts`, for `chat.update`.
    pub message_ts: Option<String>,
    /// The message's blocks as Slack shows them (kept, minus the buttons, in the update).
    pub blocks: Option<Value>,
    /// Where ephemeral answers to the presser go.
    pub response_url: Option<String>,
}

impl Press {
    /// Reads a press from the raw form body.
    pub fn parse(body: &[u8]) -> Result<Press, PressError> {
        let form: Form =
            serde_urlencoded::from_bytes(body).map_err(|e| PressError::NotAForm(e.to_string()))?;
        let de = &mut serde_json::Deserializer::from_str(&form.payload);
        let payload: Payload = serde_path_to_error::deserialize(de)
            .map_err(|e| PressError::BadPayload(format!("{}: {}", e.path(), e.inner())))?;
        if payload.kind != "block_actions" {
            return Err(PressError::NotButtons(payload.kind));
        }
        let Some(action) = payload.actions.into_iter().next() else {
            return Err(PressError::UnknownAction(String::new()));
        };
        let button = SlackButton::from_action_id(&action.action_id)
            .ok_or_else(|| PressError::UnknownAction(action.action_id.clone()))?;
        let value: ButtonValue = serde_json::from_str(action.value.as_deref().unwrap_or(""))
            .map_err(|e| PressError::BadValue(e.to_string()))?;
        let container = payload.container.unwrap_or(Container {
            message_ts: None,
            channel_id: None,
        });
        let (message_ts, blocks) = match payload.message {
            Some(m) => (m.ts, m.blocks),
            None => (None, None),
        };
        Ok(Press {
            user_name: payload
                .user
                .username
                .or(payload.user.name)
                .unwrap_or_else(|| payload.user.id.clone()),
            user: payload.user.id,
            button,
            incident: value.incident,
            agent: value.agent,
            action_ts: action.action_ts,
            channel: container.channel_id.or(payload.channel.map(|c| c.id)),
            message_ts: container.message_ts.or(message_ts),
            blocks,
            response_url: payload.response_url,
        })
    }

    /// What identifies this press across Slack's retries.
    pub fn identity(&self) -> String {
        format!(
            "{}:{}:{}",
            self.user,
            self.button.action_id(),
            self.action_ts
        )
    }

    /// How the audit trail names the presser: `slack:U123 (@alice)`.
    pub fn actor(&self) -> String {
        format!("slack:{} (@{})", self.user, self.user_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(payload: &Value) -> Vec<u8> {
        serde_urlencoded::to_string([("payload", payload.to_string())])
            .unwrap()
            .into_bytes()
    }

    fn payload() -> Value {
        json!({
            "type": "block_actions",
            "user": {"id": "U0GL008EM1", "username": "em", "name": "em", "team_id": "T0"},
            "api_app_id": "A0", "token": "legacy", "trigger_id": "1.2.abc",
            "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0GL008", "is_ephemeral": false},
            "channel": {"id": "C0GL008", "name": "gl-008-incidents"},
            "message": {"type": "message", "ts": "1700000000.000100", "text": "x", "blocks": [{"type": "section"}]},
            "response_url": "https://hooks.slack.com/actions/T0/1/abc",
            "actions": [{"type": "button", "action_id": "rollbackd_approve", "block_id": "rollbackd_actions",
                         "value": "{\"incident\":\"inc-1\",\"agent\":\"GL-008\"}", "action_ts": "1700000100.123456"}]
        })
    }

    #[test]
    fn reads_a_block_actions_press() {
        let press = Press::parse(&form(&payload())).unwrap();
        assert_eq!(press.button, SlackButton::Approve);
        assert_eq!(
            (press.incident.as_str(), press.agent.as_str()),
            ("inc-1", "GL-008")
        );
        assert_eq!(press.channel.as_deref(), Some("C0GL008"));
        assert_eq!(press.message_ts.as_deref(), Some("1700000000.000100"));
        assert_eq!(press.actor(), "slack:U0GL008EM1 (@em)");
        assert_eq!(
            press.identity(),
            "U0GL008EM1:rollbackd_approve:1700000100.123456"
        );
    }

    #[test]
    fn names_what_is_wrong() {
        assert!(matches!(
            Press::parse(b"text=hi"),
            Err(PressError::NotAForm(_))
        ));
        let mut p = payload();
        p["user"] = json!({});
        let err = Press::parse(&form(&p)).unwrap_err();
        assert!(err.to_string().contains("user"), "{err}");
        let mut p = payload();
        p["type"] = "view_submission".into();
        assert_eq!(
            Press::parse(&form(&p)),
            Err(PressError::NotButtons("view_submission".into()))
        );
        let mut p = payload();
        p["actions"][0]["action_id"] = "rollbackd_nuke".into();
        assert!(matches!(
            Press::parse(&form(&p)),
            Err(PressError::UnknownAction(_))
        ));
        let mut p = payload();
        p["actions"][0]["value"] = "inc-1".into();
        assert!(matches!(
            Press::parse(&form(&p)),
            Err(PressError::BadValue(_))
        ));
    }
}
