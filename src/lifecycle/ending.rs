//! Ending an incident without a rollback (superseded by a newer deploy, blocked by a guard):
//! the transition, its announcement and its audit entry are written in one transaction, as
//! every transition is.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::announce::{Channels, announce};
use crate::store::{AuditEntry, Incident, StateStore, StoreError, Transition};
use rollbackd_core::incident::{Event, State};
use rollbackd_core::policy::{Policy, Stage};

/// How an incident ends without a rollback, and who says so.
pub struct Ending<'a> {
    /// `Supersede` or `Block`.
    pub event: Event,
    /// The announcement's stage (`superseded`, `blocked`); `{error}` is `why`.
    pub stage: Stage,
    /// Who ends it (`rollbackd`, or the person whose approval found it overtaken).
    pub actor: &'a str,
    /// Why, for people (the message's `{error}` and the audit's reason).
    pub why: &'a str,
    /// The transition's note (defaults to `why` when `None`).
    pub note: Option<&'a str>,
    /// Extra detail for the audit entry, beside the state it ended from.
    pub detail: Value,
}

/// Ends `inc` as `ending` says; fails (changing nothing) if it moved on meanwhile.
pub async fn end_without_rollback(
    store: &dyn StateStore,
    channels: &Channels,
    policy: &Policy,
    inc: &Incident,
    ending: &Ending<'_>,
    at: DateTime<Utc>,
) -> Result<State, StoreError> {
    let extra = BTreeMap::from([("error", ending.why.to_string())]);
    let rows = announce(policy, inc, ending.stage, &extra, channels);
    let action = match ending.event {
        Event::Supersede => "rollback.supersede",
        _ => "rollback.block",
    };
    let mut detail = serde_json::json!({"from": inc.state});
    if let (Some(d), Value::Object(more)) = (detail.as_object_mut(), &ending.detail) {
        d.extend(more.clone());
    }
    let entry = AuditEntry {
        at,
        actor: ending.actor.into(),
        action: action.into(),
        target: inc.id.clone(),
        reason: ending.why.to_string(),
        detail,
    };
    store
        .transition(
            &Transition::new(&inc.id, ending.event, at, ending.note.unwrap_or(ending.why))
                .expecting(inc.state)
                .notifying(&rows)
                .audited(&entry),
        )
        .await
}
