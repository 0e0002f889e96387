//! Who is in a Slack user group, asked of Slack (`usergroups.users.list`) and kept briefly:
//! a press by a group approver costs one call a minute at most, and a member removed from a
//! group loses the right within a minute.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::notify::SlackApi;
use rollbackd_core::policy::SlackApprovers;

/// How long an answer is kept.
pub const KEEP: Duration = Duration::from_secs(60);

/// Group members, cached.
pub struct Members {
    api: SlackApi,
    groups: Mutex<HashMap<String, (Instant, Vec<String>)>>,
}

impl Members {
    /// Asks through `api`.
    pub fn new(api: SlackApi) -> Self {
        Members {
            api,
            groups: Mutex::default(),
        }
    }

    /// Whether `user` is named in `approvers`, directly or through a group. `Err` says why
    /// a group could not be asked (the press is then refused: fail safe).
    pub async fn approves(&self, approvers: &SlackApprovers, user: &str) -> Result<bool, String> {
        if approvers.users.iter().any(|u| u == user) {
            return Ok(true);
        }
        for group in &approvers.groups {
            if self.members(group).await?.iter().any(|u| u == user) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn members(&self, group: &str) -> Result<Vec<String>, String> {
        let now = Instant::now();
        if let Some((at, users)) = self.groups.lock().await.get(group)
            && now.saturating_duration_since(*at) < KEEP
        {
            return Ok(users.clone());
        }
        let users = self
            .api
            .group_members(group)
            .await
            .map_err(|e| format!("Slack did not say who is in user group {group}: {e}"))?;
        self.groups
            .lock()
            .await
            .insert(group.to_string(), (now, users.clone()));
        Ok(users)
    }
}
