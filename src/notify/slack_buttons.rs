//! The Block Kit buttons of an incident's root Slack message: which fit each stage, and
//! how they are drawn. A press comes back to `POST /api/v1/slack/interactions` carrying the
//! button's `action_id` and its `value` (the incident and the agent); the daemon only draws
//! buttons when it can receive and verify presses (`notify.slack_signing_secret`).

use rollbackd_core::policy::Stage;
use serde_json::{Value, json};

use crate::text::truncate_chars;

/// The `block_id` of the buttons' `actions` block, so a press's handler can remove it.
pub const ACTIONS_BLOCK_ID: &str = "rollbackd_actions";

/// Slack's limit on a section block's text (bytes are counted as characters here).
const SECTION_TEXT_MAX: usize = 3000;

/// One button of an incident message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlackButton {
    /// Approve a rollback awaiting approval.
    Approve,
    /// Refuse it: the incident is cancelled.
    Reject,
    /// Stop a rollback in flight at its next step boundary.
    Cancel,
    /// Pause the agent's automation.
    Pause,
    /// Resume it.
    Resume,
}

impl SlackButton {
    /// Every button, for parsing.
    pub const ALL: [SlackButton; 5] = [
        SlackButton::Approve,
        SlackButton::Reject,
        SlackButton::Cancel,
        SlackButton::Pause,
        SlackButton::Resume,
    ];

    /// The `action_id` Slack sends back.
    pub fn action_id(self) -> &'static str {
        match self {
            SlackButton::Approve => "rollbackd_approve",
            SlackButton::Reject => "rollbackd_reject",
            SlackButton::Cancel => "rollbackd_cancel",
            SlackButton::Pause => "rollbackd_pause",
            SlackButton::Resume => "rollbackd_resume",
        }
    }

    /// The button with this `action_id`.
    pub fn from_action_id(id: &str) -> Option<SlackButton> {
        Self::ALL.into_iter().find(|b| b.action_id() == id)
    }

    /// The label people see.
    fn label(self) -> &'static str {
        match self {
            SlackButton::Approve => "Approve rollback",
            SlackButton::Reject => "Reject",
            SlackButton::Cancel => "Cancel rollback",
            SlackButton::Pause => "Pause agent",
            SlackButton::Resume => "Resume agent",
        }
    }

    /// Slack's `style`: green for going ahead, red for stopping.
    fn style(self) -> Option<&'static str> {
        match self {
            SlackButton::Approve | SlackButton::Resume => Some("primary"),
            SlackButton::Reject | SlackButton::Cancel => Some("danger"),
            SlackButton::Pause => None,
        }
    }

    /// The confirmation dialog of a button that changes an incident: what will happen.
    fn confirm(self, agent: &str) -> Option<Value> {
        let (title, text, go) = match self {
            SlackButton::Approve => (
                "Approve the rollback?",
                format!("rollbackd will roll {agent} back now, as its runbook's method says."),
                "Roll back",
            ),
            SlackButton::Reject => (
                "Reject the rollback?",
                format!("The incident is cancelled: {agent} is not rolled back."),
                "Reject",
            ),
            SlackButton::Cancel => (
                "Cancel the rollback?",
                format!(
                    "rollbackd stops rolling {agent} back after the step under way; what is done stays done."
                ),
                "Cancel it",
            ),
            SlackButton::Pause | SlackButton::Resume => return None,
        };
        Some(json!({
            "title": {"type": "plain_text", "text": title},
            "text": {"type": "mrkdwn", "text": text},
            "confirm": {"type": "plain_text", "text": go},
            "deny": {"type": "plain_text", "text": "Back"},
        }))
    }

    /// The Block Kit button element.
    fn element(self, incident: &str, agent: &str) -> Value {
        let mut button = json!({
            "type": "button",
            "action_id": self.action_id(),
            "text": {"type": "plain_text", "text": self.label()},
            "value": json!({"incident": incident, "agent": agent}).to_string(),
        });
        if let Some(style) = self.style() {
            button["style"] = style.into();
        }
        if let Some(confirm) = self.confirm(agent) {
            button["confirm"] = confirm;
        }
        button
    }
}

/// The buttons fitting an incident at `stage`: approve or reject while it awaits approval,
/// cancel while a rollback can still be stopped, pause while automation is at work on it.
pub fn buttons_for(stage: Stage) -> &'static [SlackButton] {
    match stage {
        Stage::AwaitingApproval => &[
            SlackButton::Approve,
            SlackButton::Reject,
            SlackButton::Pause,
        ],
        Stage::Initiated | Stage::InProgress | Stage::Continued => {
            &[SlackButton::Cancel, SlackButton::Pause]
        }
        Stage::Complete => &[SlackButton::Cancel],
        _ => &[],
    }
}

/// The blocks of a root message: its text as a section, then `buttons` (none: no actions
/// block).
pub fn message_blocks(text: &str, incident: &str, agent: &str, buttons: &[SlackButton]) -> Value {
    let mut blocks = vec![section(text)];
    if !buttons.is_empty() {
        blocks.push(json!({
            "type": "actions",
            "block_id": ACTIONS_BLOCK_ID,
            "elements": buttons.iter().map(|b| b.element(incident, agent)).collect::<Vec<_>>(),
        }));
    }
    Value::Array(blocks)
}

/// A `mrkdwn` section block, cut to Slack's limit.
pub fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate_chars(text, SECTION_TEXT_MAX)}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awaiting_approval_offers_approve_reject_and_pause_with_confirmations() {
        let blocks = message_blocks(
            "*GL-008* needs approval",
            "inc-1",
            "GL-008",
            buttons_for(Stage::AwaitingApproval),
        );
        assert_eq!(blocks[0]["text"]["text"], "*GL-008* needs approval");
        let actions = &blocks[1];
        assert_eq!(actions["block_id"], ACTIONS_BLOCK_ID);
        let ids: Vec<&str> = actions["elements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            ["rollbackd_approve", "rollbackd_reject", "rollbackd_pause"]
        );
        let approve = &actions["elements"][0];
        assert_eq!(approve["style"], "primary");
        assert!(
            approve["confirm"]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("GL-008")
        );
        let value: Value = serde_json::from_str(approve["value"].as_str().unwrap()).unwrap();
        assert_eq!(value, json!({"incident": "inc-1", "agent": "GL-008"}));
        assert!(actions["elements"][2].get("confirm").is_none());
    }

    #[test]
    fn finished_incidents_have_no_buttons_and_ids_round_trip() {
        for stage in [
            Stage::Resolved,
            Stage::Failed,
            Stage::Stopped,
            Stage::Superseded,
        ] {
            assert!(buttons_for(stage).is_empty(), "{stage:?}");
            assert_eq!(
                message_blocks("x", "i", "a", buttons_for(stage))
                    .as_array()
                    .unwrap()
                    .len(),
                1
            );
        }
        assert_eq!(
            buttons_for(Stage::InProgress),
            [SlackButton::Cancel, SlackButton::Pause]
        );
        for b in SlackButton::ALL {
            assert_eq!(SlackButton::from_action_id(b.action_id()), Some(b));
        }
        assert_eq!(SlackButton::from_action_id("rollbackd_nuke"), None);
    }

    #[test]
    fn a_long_text_is_cut_to_the_section_limit() {
        let long = "é".repeat(2000);
        let blocks = message_blocks(&long, "i", "a", &[]);
        assert!(blocks[0]["text"]["text"].as_str().unwrap().len() <= SECTION_TEXT_MAX);
    }
}
