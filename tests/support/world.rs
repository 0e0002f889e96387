//! A whole rollbackd for end-to-end tests: the Kubernetes simulator seeded with GL-002, a
//! synthetic agent, a webhook receiver for notifications, and the daemon itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use chrono::TimeDelta;
use rollbackd::api::{AgentStatus, Auth};
use rollbackd::config::{ApiToken, Role};
use rollbackd::daemon::collect::MetricSource;
use rollbackd::daemon::evaluate::Limits;
use rollbackd::daemon::{DaemonHandle, DaemonOptions, seed, start};
use rollbackd::lifecycle::announce::Channels;
use rollbackd::notify::{NotifierConfig, RetryConfig};
use rollbackd::store::{SqliteStore, StateStore, Store};
use rollbackd::synthetic_agent::{AgentConfig, SyntheticAgent};
use rollbackd_core::policy::{HealthCheck, Policy, load_file};
use rollbackd_sim::{SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};

pub const TOKEN: &str = "operator-token-0123456789";

/// A local receiver for the generic webhook notifier.
pub async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |Json(body): Json<Value>| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

pub fn gl002(agent: &SyntheticAgent) -> Policy {
    let mut p = load_file(std::path::Path::new("policies/gl-002.toml")).unwrap();
    p.workloads[0].metrics_url = Some(agent.metrics_url());
    let verification = std::sync::Arc::make_mut(&mut p.verification);
    verification.health = Some(HealthCheck {
        url: format!("http://{}/health", agent.addr()),
        expect_status: 200,
    });
    verification.ready_hold = TimeDelta::seconds(1);
    verification.watch = TimeDelta::seconds(3);
    p
}

pub struct World {
    pub sim: SimHandle,
    pub agent: SyntheticAgent,
    pub daemon: DaemonHandle,
    pub hook: Arc<Mutex<Vec<Value>>>,
    pub client: kube::Client,
    /// The GL-002 policy the daemon runs.
    pub policy: Arc<Policy>,
    /// Where the notification receiver listens.
    pub hook_url: String,
}

/// A synthetic GL-002 agent: 400 requests/s, ticking every 50 ms.
pub async fn agent() -> SyntheticAgent {
    SyntheticAgent::start(
        "127.0.0.1:0".parse().unwrap(),
        AgentConfig {
            tick: Duration::from_millis(50),
            rps: 400.0,
            ..AgentConfig::new("gl_002_")
        },
    )
    .await
    .unwrap()
}

/// Starts the simulator (seeded with GL-002 at v1), a notification receiver and the daemon
/// reading signals from `source`; `adjust` edits the GL-002 policy first.
pub async fn world(
    agent: SyntheticAgent,
    source: MetricSource,
    adjust: impl FnOnce(&mut Policy),
) -> World {
    world_custom(agent, source, adjust, |_| {}).await
}

/// As [`world`], with a last say on the daemon's options (notifiers, limits…).
pub async fn world_custom(
    agent: SyntheticAgent,
    source: MetricSource,
    adjust: impl FnOnce(&mut Policy),
    configure: impl FnOnce(&mut DaemonOptions),
) -> World {
    world_prepared(agent, source, adjust, |_| {}, configure).await
}

/// As [`world_custom`], with `prepare` given the seeded simulator before the daemon starts
/// (a CRD its store needs…).
pub async fn world_prepared(
    agent: SyntheticAgent,
    source: MetricSource,
    adjust: impl FnOnce(&mut Policy),
    prepare: impl FnOnce(&SimHandle),
    configure: impl FnOnce(&mut DaemonOptions),
) -> World {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("rollbackd=info")
        .try_init();
    let sim = Simulator::start(
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        SimConfig::default(),
    )
    .await
    .unwrap();
    let mut policy = gl002(&agent);
    adjust(&mut policy);
    let policy = Arc::new(policy);
    seed::seed(&sim, std::slice::from_ref(&policy), 3).unwrap();
    prepare(&sim);
    let client = sim_client(&sim);
    let (hook_url, hook) = receiver().await;
    let mut options = daemon_options(policy.clone(), client.clone(), source, hook_url.clone());
    configure(&mut options);
    let daemon = start(options).await.unwrap();
    World {
        sim,
        agent,
        daemon,
        hook,
        client,
        policy,
        hook_url,
    }
}

/// A kube client of the simulator (its connection tasks run on the current runtime).
pub fn sim_client(sim: &SimHandle) -> kube::Client {
    kube::Client::try_from(kube::Config::new(sim.url().parse().unwrap())).unwrap()
}

/// The options of a world's daemon: `policy`, an in-memory store, 250 ms evaluations, fast
/// notifier retries to the receiver at `hook_url`, no leader election.
pub fn daemon_options(
    policy: Arc<Policy>,
    client: kube::Client,
    source: MetricSource,
    hook_url: String,
) -> DaemonOptions {
    DaemonOptions {
        policies: vec![policy],
        store: Arc::new(SqliteStore::new(Store::in_memory().unwrap())),
        client,
        source,
        listen: "127.0.0.1:0".parse().unwrap(),
        max_body_bytes: 1 << 20,
        auth: Auth {
            tokens: vec![ApiToken {
                name: "oncall".into(),
                role: Role::Operator,
                secret: TOKEN.into(),
            }],
            // the tests' Alertmanager posts without credentials
            webhook: rollbackd::config::WebhookAuth {
                allow_unauthenticated: true,
                ..Default::default()
            },
        },
        agent_label: "agent".into(),
        interval: Duration::from_millis(250),
        jitter: Duration::ZERO,
        limits: Limits {
            dry_run: false,
            max_per_agent_per_window: 1,
            max_per_hour: 3,
        },
        notifier: NotifierConfig {
            retry: RetryConfig {
                min_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(200),
                max_attempts: 5,
            },
            poll_interval: Duration::from_millis(50),
            ..NotifierConfig::default()
        },
        channels: Channels {
            webhook_url: Some(hook_url),
            ..Channels::default()
        },
        watch_interval: Duration::from_millis(250),
        leader: None,
        retention: None,
        alertmanager: None,
    }
}

pub async fn set_image(client: &kube::Client, image: &str) {
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client.clone(), "greenlang");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "boiler-optimizer", "image": image}]}}}});
    api.patch(
        "gl-002-boiler-efficiency",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Strategic(patch),
    )
    .await
    .unwrap();
}

pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn undo_patches(sim: &SimHandle) -> Vec<Instant> {
    sim.requests()
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.path.ends_with("/deployments/gl-002-boiler-efficiency")
                && r.content_type.contains("json-patch")
        })
        .map(|_| Instant::now())
        .collect()
}

/// Waits until GL-002's Deployment has `n` available replicas (v1 rolled out).
pub async fn wait_available(w: &World, n: u64) {
    wait_available_in(&w.sim, n).await;
}

/// Waits until GL-002's Deployment in `sim` has `n` available replicas.
pub async fn wait_available_in(sim: &SimHandle, n: u64) {
    wait_for(
        "the deployment to be available",
        Duration::from_secs(20),
        async || {
            let d = sim.get(
                "apps/v1",
                "Deployment",
                "greenlang",
                "gl-002-boiler-efficiency",
            )?;
            (d["status"]["availableReplicas"].as_u64() == Some(n)).then_some(())
        },
    )
    .await;
}

/// Deploys v2 and waits for its window to open with a healthy decision.
pub async fn deploy_v2(w: &World, healthy: rollbackd_core::engine::DecisionKind) {
    wait_available(w, 3).await;
    deploy_image(
        &w.client,
        &w.daemon.status,
        "registry.local/greenlang/gl-002-boiler-efficiency:v2",
        2,
        healthy,
    )
    .await;
}

/// Deploys `image` and waits until `status` (the acting daemon's) shows the window of
/// `revision` open with a `healthy` decision.
pub async fn deploy_image(
    client: &kube::Client,
    status: &Arc<std::sync::RwLock<BTreeMap<String, AgentStatus>>>,
    image: &str,
    revision: u64,
    healthy: rollbackd_core::engine::DecisionKind,
) {
    set_image(client, image).await;
    wait_for(
        &format!("a healthy window of revision {revision}"),
        Duration::from_secs(30),
        async || {
            let s = status.read().unwrap().get("GL-002").cloned()?;
            (s.revision == Some(revision)
                && s.window_open
                && s.decision.as_ref()?.decision == healthy)
                .then_some(())
        },
    )
    .await;
}

/// Waits for the (only) incident to resolve; one that fails or escalates stops the test at
/// once with its transitions.
pub async fn wait_resolved(w: &World, what: &str, timeout: Duration) -> rollbackd::store::Incident {
    wait_resolved_in(&w.daemon.store, what, timeout).await
}

/// As [`wait_resolved`], for the (only) incident of `store`.
pub async fn wait_resolved_in(
    store: &Arc<dyn StateStore>,
    what: &str,
    timeout: Duration,
) -> rollbackd::store::Incident {
    wait_for(what, timeout, async || {
        let inc = store
            .incidents(&rollbackd::store::IncidentFilter::default())
            .await
            .unwrap()
            .into_iter()
            .next()?;
        assert!(
            !matches!(
                inc.state,
                rollbackd_core::incident::State::Failed
                    | rollbackd_core::incident::State::Escalated
            ),
            "incident {} failed: {:?}",
            inc.id,
            store.transitions(&inc.id).await.unwrap()
        );
        (inc.state == rollbackd_core::incident::State::Resolved).then_some(inc)
    })
    .await
}
