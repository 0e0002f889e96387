//! What an incident is, as stored and shown: the decision that opened it and where it is now.
//! Plain data; every store backend keeps exactly these fields.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::State;

/// Who or what started an incident.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The evaluation loop's decision (signals, alerts).
    Automatic,
    /// The manual override API.
    Manual,
}

/// What is needed to open an incident.
#[derive(Debug, Clone, Serialize)]
pub struct NewIncident {
    /// The agent (policy) id, e.g. `GL-002`.
    pub agent: String,
    /// The primary workload's namespace.
    pub namespace: String,
    /// The primary workload's name.
    pub workload: String,
    /// The deploy revision the incident is about.
    pub revision: Option<u64>,
    /// The image running when the incident opened.
    pub from_image: Option<String>,
    /// The decision-matrix row that matched.
    pub row: Option<String>,
    /// The row's severity.
    pub severity: Option<String>,
    /// The rollback method to run.
    pub method: Option<String>,
    /// Who or what started it.
    pub trigger: Trigger,
    /// The human who asked for it (manual triggers).
    pub requested_by: Option<String>,
    /// Why, in one sentence.
    pub reason: String,
    /// The engine's decision with its evidence (or the manual request).
    pub decision: serde_json::Value,
    /// Plan only: no mutating step runs.
    pub dry_run: bool,
    /// Placeholders for HTTP steps (e.g. the alert's `plant`).
    pub vars: BTreeMap<String, String>,
    /// When the revision was deployed.
    pub deploy_at: Option<DateTime<Utc>>,
}

/// A stored incident: [`NewIncident`]'s fields, its id, its state and its times.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// Unique id, e.g. `gl-002-1`.
    pub id: String,
    /// The agent (policy) id.
    pub agent: String,
    /// The primary workload's namespace.
    pub namespace: String,
    /// The primary workload's name.
    pub workload: String,
    /// The deploy revision the incident is about.
    pub revision: Option<u64>,
    /// The image running when the incident opened.
    pub from_image: Option<String>,
    /// The decision-matrix row that matched.
    pub row: Option<String>,
    /// The row's severity.
    pub severity: Option<String>,
    /// The rollback method to run.
    pub method: Option<String>,
    /// Who or what started it.
    pub trigger: Trigger,
    /// The human who asked for it (manual triggers).
    pub requested_by: Option<String>,
    /// Why, in one sentence.
    pub reason: String,
    /// The engine's decision with its evidence (or the manual request).
    pub decision: serde_json::Value,
    /// Where the incident is in its life.
    pub state: State,
    /// Plan only: no mutating step runs.
    pub dry_run: bool,
    /// Placeholders for HTTP steps.
    pub vars: BTreeMap<String, String>,
    /// When the revision was deployed.
    pub deploy_at: Option<DateTime<Utc>>,
    /// When the incident opened.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One step of an incident's life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransitionRecord {
    /// Order among the incident's transitions, from 1.
    pub seq: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The state before (none for the opening).
    pub from: Option<State>,
    /// The lifecycle event's name.
    pub event: String,
    /// The state after.
    pub to: State,
    /// Why, in words.
    pub note: String,
}
