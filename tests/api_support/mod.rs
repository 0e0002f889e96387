//! One in-process API server for the tests that speak HTTP to it (`tests/api.rs`,
//! `tests/openapi.rs`): the real router and policies, a SQLite store, two API tokens and a
//! webhook secret, on 127.0.0.1 and a free port.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use chrono::Utc;
use rollbackd::api::{AgentIndex, AgentStatus, AlertIngest, ApiState, Auth, Wake, router};
use rollbackd::config::{ApiToken, Role, WebhookAuth};
use rollbackd::health::TaskHealth;
use rollbackd::metrics::Metrics;
use rollbackd::signals::latest::Latest;
use rollbackd::store::{SqliteStore, StateStore};
use rollbackd_core::policy::load_all;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

pub const OPERATOR: &str = "operator-token-0123456789";
pub const VIEWER: &str = "viewer-token-0123456789ab";
pub const HOOK: &str = "alertmanager-secret-token";
/// The wake channel's capacity in these tests.
pub const WAKE_CAPACITY: usize = 64;

pub struct Api {
    pub url: String,
    pub store: Arc<dyn StateStore>,
    pub status: Arc<RwLock<BTreeMap<String, AgentStatus>>>,
    pub latest: Latest,
    pub wake: mpsc::Receiver<Wake>,
    pub http: reqwest::Client,
    /// The daemon's critical tasks, as `/healthz` reads them.
    pub tasks: Arc<TaskHealth>,
    /// Set once the daemon has loaded its state: `/readyz` answers 503 while it is unset.
    pub ready: Arc<AtomicBool>,
    /// Whether this replica leads: a standby (without a forwarder) answers writes 503.
    pub leading: watch::Sender<bool>,
    /// rollbackd's own metrics, as `/metrics` serves them.
    pub metrics: Arc<Metrics>,
    /// The router being served (`tests/openapi.rs` lists its routes).
    pub app: axum::Router,
    _server: tokio::task::JoinHandle<()>,
}

pub async fn start_with(webhook: WebhookAuth) -> Api {
    let store: Arc<dyn StateStore> = Arc::new(SqliteStore::in_memory().await.unwrap());
    start_on(webhook, store).await
}

/// A server on `store`.
pub async fn start_on(webhook: WebhookAuth, store: Arc<dyn StateStore>) -> Api {
    start_full(webhook, store, None).await
}

/// A server on `store` that takes Slack's button presses when `slack` is given.
pub async fn start_full(
    webhook: WebhookAuth,
    store: Arc<dyn StateStore>,
    slack: Option<Arc<rollbackd::api::SlackInteractions>>,
) -> Api {
    let policies: Vec<_> = load_all(&[PathBuf::from("policies")])
        .unwrap()
        .into_iter()
        .map(Arc::new)
        .collect();
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = rollbackd::channel::bounded("wake", WAKE_CAPACITY, metrics.clone());
    let tasks = Arc::new(TaskHealth::new());
    let status: Arc<RwLock<BTreeMap<String, AgentStatus>>> = Arc::default();
    let latest: Latest = Arc::default();
    // as the evaluation loop does each cycle: an alert-borne signal reads 0 while no alert
    // fires (metric signals stay unread: guards on them cannot be evaluated)
    for p in &policies {
        for (name, s) in p.signals.iter() {
            if matches!(s.source, rollbackd_core::policy::SignalSource::Alert { .. }) {
                latest
                    .write()
                    .unwrap()
                    .set(&p.agent.id, name, Utc::now(), Some(0.0));
            }
        }
    }
    let ready = Arc::new(AtomicBool::new(true));
    let (leading, leading_rx) = watch::channel(true);
    let state = ApiState {
        tasks: tasks.clone(),
        agents: Arc::new(AgentIndex::new(&policies)),
        alerts: AlertIngest::start(store.clone(), tx.clone()),
        store: store.clone(),
        policies: Arc::new(policies),
        auth: Arc::new(Auth {
            tokens: vec![
                ApiToken {
                    name: "alice".into(),
                    role: Role::Operator,
                    secret: OPERATOR.into(),
                },
                ApiToken {
                    name: "grafana".into(),
                    role: Role::Viewer,
                    secret: VIEWER.into(),
                },
            ],
            webhook,
        }),
        agent_label: "agent".into(),
        metrics: metrics.clone(),
        status: status.clone(),
        wake: tx,
        ready: ready.clone(),
        dry_run: false,
        leading: leading_rx,
        forward: None,
        latest: latest.clone(),
        // a generic webhook target, so announcements are queued (nothing delivers them here)
        channels: rollbackd::lifecycle::announce::Channels {
            webhook_url: Some("http://127.0.0.1:9/hook".into()),
            ..Default::default()
        },
        slack,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = router(state, 64 * 1024);
    let served = app.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, served).await.unwrap();
    });
    Api {
        url,
        store,
        status,
        latest,
        wake: rx,
        http: reqwest::Client::new(),
        tasks,
        ready,
        leading,
        metrics,
        app,
        _server: server,
    }
}

pub async fn start() -> Api {
    start_with(WebhookAuth {
        bearer_token: Some(HOOK.into()),
        ..WebhookAuth::default()
    })
    .await
}

pub fn alert(agent: &str, status: &str, fp: &str) -> Value {
    json!({"status": status, "labels": {"alertname": "GL002ErrorRate", "agent": agent, "condition": "service_outage"},
           "annotations": {"summary": "x"}, "startsAt": "2025-11-17T14:30:00Z",
           "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus/graph", "fingerprint": fp})
}

pub fn payload(alerts: Vec<Value>) -> Value {
    json!({"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing", "receiver": "rollbackd",
           "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am", "alerts": alerts})
}

impl Api {
    /// Publishes what the evaluation loop would: `agent` runs `revision`, deployed at `at`.
    pub fn runs(&self, agent: &str, revision: u64, at: chrono::DateTime<Utc>) {
        self.status.write().unwrap().insert(
            agent.to_string(),
            AgentStatus {
                revision: Some(revision),
                image: None,
                deployed_at: Some(at),
                window_open: true,
                window_ends_at: None,
                decision: None,
                evaluated_at: Some(Utc::now()),
            },
        );
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let code = res.status().as_u16();
        (code, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let code = res.status().as_u16();
        (code, res.json().await.unwrap_or(Value::Null))
    }
}
