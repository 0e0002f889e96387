//! The HTTP API (axum): the Alertmanager webhook receiver, the manual override API,
//! health, readiness, metrics, the OpenAPI document, and the presses of Slack buttons
//! ([`slack`]). Handlers only record (store,
//! audit) and wake the daemon; the daemon is the single writer that acts. On a standby,
//! writes are handed to the leader ([`forward`]).

mod agents;
mod alerts;
mod auth;
mod error;
pub mod forward;
mod health;
mod ingest;
pub mod openapi;
mod rollbacks;
pub mod slack;
mod views;
mod whoami;

pub use agents::AgentStatus;
pub use alerts::{AgentIndex, WebhookAlert, WebhookPayload, active_records};
pub use auth::{Auth, Caller};
pub use error::{ApiError, RETRY_AFTER_SECONDS};
pub use forward::{ForwardError, Forwarder, LeaderAddr};
pub use ingest::AlertIngest;
pub use rollbacks::incident_baselines;
pub use slack::SlackInteractions;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::sync::watch;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::channel::BoundedTx;

use crate::metrics::Metrics;
use crate::store::StateStore;
use rollbackd_core::engine::AlertTransition;
use rollbackd_core::policy::Policy;

/// A new state of an alert an agent claims, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentAlert {
    /// The id of the agent whose policy claims the alert.
    pub agent: String,
    /// The alert's new state.
    pub transition: AlertTransition,
}

/// What the API tells the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// New alert states were recorded, in this order (alerts no agent claims are not here).
    Alerts(Vec<AgentAlert>),
    /// An incident was created or changed by a human.
    Incident(String),
    /// A pause or resume changed.
    Pauses,
}

/// Everything the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The daemon's store.
    pub store: Arc<dyn StateStore>,
    /// Every loaded policy.
    pub policies: Arc<Vec<Arc<Policy>>>,
    /// API tokens and the webhook's credentials.
    pub auth: Arc<Auth>,
    /// Alert label naming the agent (`webhook.agent_label`).
    pub agent_label: String,
    /// rollbackd's own metrics, as `/metrics` serves them.
    pub metrics: Arc<Metrics>,
    /// Each agent's window and current decision, written by the evaluation loop.
    pub status: Arc<RwLock<BTreeMap<String, AgentStatus>>>,
    /// Bounded: a full channel drops the wake and counts it (the store has the change;
    /// the next wake or evaluation picks it up).
    pub wake: BoundedTx<Wake>,
    /// Which agent an alert is about (built from `policies`).
    pub agents: Arc<AgentIndex>,
    /// Records the webhook's alerts (group commit) and wakes the daemon with them.
    pub alerts: AlertIngest,
    /// Set once the daemon has loaded its state and reached the cluster.
    pub ready: Arc<AtomicBool>,
    /// The daemon's critical tasks: `/healthz` fails once one has stopped.
    pub tasks: Arc<crate::health::TaskHealth>,
    /// Dry-run mode for the whole daemon.
    pub dry_run: bool,
    /// Whether this replica leads (always `true` without leader election). Only the leader
    /// records the webhook's alerts and the operator's writes (trigger, approve, cancel,
    /// pause, resume): a standby forwards them to it (`forward`), or answers 503; reads,
    /// `/healthz` and `/readyz` answer as usual on both.
    pub leading: watch::Receiver<bool>,
    /// Hands a standby's writes to the leader; `None` without leader election.
    pub forward: Option<Forwarder>,
    /// The latest reading of every signal (written by the evaluation loop): an approval
    /// re-evaluates the incident's guards against it.
    pub latest: crate::signals::latest::Latest,
    /// Which notifiers are configured: an incident the API ends (superseded) is announced.
    pub channels: crate::lifecycle::announce::Channels,
    /// Slack interactivity (`notify.slack_signing_secret`); `None` = the interactions
    /// endpoint refuses every request.
    pub slack: Option<Arc<SlackInteractions>>,
}

impl ApiState {
    /// The policy of an agent id (case-insensitive).
    pub fn policy(&self, agent: &str) -> Option<&Arc<Policy>> {
        self.policies
            .iter()
            .find(|p| p.agent.id.eq_ignore_ascii_case(agent))
    }

    /// `Err(NotLeader)` (503) on a replica that does not lead (one whose write could not be
    /// forwarded, or that lost the lead since): the caller retries and reaches the leader.
    pub fn require_leader(&self) -> Result<(), ApiError> {
        if *self.leading.borrow() {
            Ok(())
        } else {
            Err(ApiError::NotLeader)
        }
    }
}

/// Runs a handler's writes in their own task, to the end: a client that hangs up cannot
/// stop them between a commit and what must follow it (an audit entry, the daemon's wake).
async fn to_the_end<T: Send + 'static>(
    work: impl Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(work)
        .await
        .map_err(|e| ApiError::Unavailable(format!("the request's task failed: {e}")))?
}

/// Every API route, each documented by its handler's `#[utoipa::path]`: adding a route is
/// one `.routes(routes!(handler))` line here, and the OpenAPI document follows.
/// `tests/openapi.rs` fails on a route under `/api/` served without being documented.
fn documented() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(alerts::receive))
        .routes(routes!(rollbacks::trigger, rollbacks::list))
        .routes(routes!(rollbacks::show))
        .routes(routes!(rollbacks::approve))
        .routes(routes!(rollbacks::cancel))
        .routes(routes!(agents::list))
        .routes(routes!(agents::pause))
        .routes(routes!(agents::resume))
        .routes(routes!(agents::pause_all))
        .routes(routes!(agents::resume_all))
        .routes(routes!(slack::interactions))
        .routes(routes!(whoami::whoami))
        .routes(routes!(openapi::serve))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
}

/// The API router; `max_body_bytes` larger bodies are answered 413. Writes reaching a
/// standby go through [`forward::standby_writes`].
pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    let standby = axum::middleware::from_fn_with_state(
        (state.clone(), max_body_bytes),
        forward::standby_writes,
    );
    let (routes, _document) = documented().split_for_parts();
    routes
        .route_layer(standby)
        // the web console's page and assets (not part of the API document)
        .merge(crate::console::router())
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
