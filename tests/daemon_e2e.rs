//! The daemon end to end with no Prometheus: the Kubernetes simulator, a synthetic agent
//! serving `/metrics`, and rollbackd scraping it directly. The agent's error rate jumps to
//! 60 %; rollbackd rolls the deployment back, verifies, watches, resolves, and announces
//! every stage to a webhook receiver.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use chrono::TimeDelta;
use rollbackd::api::Auth;
use rollbackd::config::{ApiToken, Role};
use rollbackd::daemon::announce::Channels;
use rollbackd::daemon::collect::MetricSource;
use rollbackd::daemon::evaluate::Limits;
use rollbackd::daemon::{DaemonHandle, DaemonOptions, seed, start};
use rollbackd::incident::State;
use rollbackd::notify::{NotifierConfig, RetryConfig};
use rollbackd::policy::{HealthCheck, Policy, load_file};
use rollbackd::signals::scrape::Scraper;
use rollbackd::sim::{SimConfig, SimHandle, Simulator};
use rollbackd::store::{IncidentFilter, Store};
use rollbackd::synthetic_agent::{AgentConfig, SyntheticAgent};
use serde_json::{Value, json};

const TOKEN: &str = "operator-token-0123456789";

/// A local receiver for the generic webhook notifier.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
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

fn gl002(agent: &SyntheticAgent) -> Policy {
    let mut p = load_file(std::path::Path::new("policies/gl-002.toml")).unwrap();
    p.workloads[0].metrics_url = Some(agent.metrics_url());
    p.verification.health = Some(HealthCheck {
        url: format!("http://{}/health", agent.addr()),
        expect_status: 200,
    });
    p.verification.ready_hold = TimeDelta::seconds(1);
    p.verification.watch = TimeDelta::seconds(3);
    p
}

struct World {
    sim: SimHandle,
    agent: SyntheticAgent,
    daemon: DaemonHandle,
    hook: Arc<Mutex<Vec<Value>>>,
    client: kube::Client,
}

async fn world() -> World {
    let sim = Simulator::start(
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        SimConfig::default(),
    )
    .await
    .unwrap();
    let agent = SyntheticAgent::start(
        "127.0.0.1:0".parse().unwrap(),
        AgentConfig {
            tick: Duration::from_millis(50),
            rps: 400.0,
            ..AgentConfig::new("gl_002_")
        },
    )
    .await
    .unwrap();
    let policy = Arc::new(gl002(&agent));
    seed::seed(&sim, std::slice::from_ref(&policy), 3).unwrap();
    let client = kube::Client::try_from(kube::Config::new(sim.url().parse().unwrap())).unwrap();
    let (hook_url, hook) = receiver().await;
    let daemon = start(DaemonOptions {
        policies: vec![policy],
        store: Arc::new(Store::in_memory().unwrap()),
        client: client.clone(),
        source: MetricSource::scrape(Scraper::new(Duration::from_secs(1)).unwrap()),
        listen: "127.0.0.1:0".parse().unwrap(),
        max_body_bytes: 1 << 20,
        auth: Auth {
            tokens: vec![ApiToken {
                name: "oncall".into(),
                role: Role::Operator,
                secret: TOKEN.into(),
            }],
            webhook: Default::default(),
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
    })
    .await
    .unwrap();
    World {
        sim,
        agent,
        daemon,
        hook,
        client,
    }
}

async fn set_image(client: &kube::Client, image: &str) {
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

async fn wait_for<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn undo_patches(sim: &SimHandle) -> Vec<Instant> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_spike_is_rolled_back_verified_and_resolved_from_direct_scrape() {
    let w = world().await;
    set_image(
        &w.client,
        "registry.local/greenlang/gl-002-boiler-efficiency:v2",
    )
    .await;
    let status = w.daemon.status.clone();
    wait_for(
        "the v2 window to open with a healthy decision",
        Duration::from_secs(20),
        async || {
            let s = status.read().unwrap().get("GL-002").cloned()?;
            (s.revision == Some(2)
                && s.window_open
                && s.decision.as_ref()?.decision == rollbackd::engine::DecisionKind::None)
                .then_some(())
        },
    )
    .await;

    w.agent.handle().set_error_ratio(0.6).unwrap();
    let jump = Instant::now();
    let patched = wait_for("the rollback patch", Duration::from_secs(10), async || {
        undo_patches(&w.sim).first().copied()
    })
    .await;
    let took = patched - jump;
    println!(
        "direct scrape: error jump → rollback patch in {:.2} s",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(5), "jump → patch took {took:?}");
    w.agent.handle().set_error_ratio(0.0).unwrap(); // the previous version is healthy

    let store = w.daemon.store.clone();
    let incident = wait_for(
        "the incident to resolve",
        Duration::from_secs(40),
        async || {
            let inc = store
                .incidents(&IncidentFilter::default())
                .unwrap()
                .into_iter()
                .next()?;
            assert!(
                !matches!(inc.state, State::Failed | State::Escalated),
                "incident failed: {:?}",
                store.transitions(&inc.id).unwrap()
            );
            (inc.state == State::Resolved).then_some(inc)
        },
    )
    .await;
    assert_eq!(incident.row.as_deref(), Some("p0-error-rate"));
    assert_eq!(incident.revision, Some(2));
    let path: Vec<State> = store
        .transitions(&incident.id)
        .unwrap()
        .iter()
        .map(|t| t.to)
        .collect();
    assert_eq!(
        path,
        [
            State::RollingBack,
            State::Verifying,
            State::Monitoring,
            State::Resolved
        ]
    );
    assert_eq!(undo_patches(&w.sim).len(), 1, "exactly one undo");
    let deploy = w
        .sim
        .get(
            "apps/v1",
            "Deployment",
            "greenlang",
            "gl-002-boiler-efficiency",
        )
        .unwrap();
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/greenlang/gl-002-boiler-efficiency:v1"
    );
    assert_eq!(
        deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3",
        "v1 renumbered to 3"
    );
    assert!(
        !store.backups(&incident.id).unwrap().is_empty(),
        "pre-rollback backup kept"
    );

    // every stage announced once, in order, with the evidence
    let stages = wait_for("the notifications", Duration::from_secs(10), async || {
        let got = w.hook.lock().unwrap().clone();
        let stages: Vec<String> = got
            .iter()
            .filter(|m| m["incident_id"] == incident.id.as_str())
            .map(|m| m["stage"].as_str().unwrap_or("").to_string())
            .collect();
        (stages.len() >= 4).then_some((stages, got))
    })
    .await;
    assert_eq!(
        stages.0,
        ["initiated", "in_progress", "complete", "resolved"]
    );
    let initiated = stages.1.iter().find(|m| m["stage"] == "initiated").unwrap();
    assert!(
        initiated["text"].as_str().unwrap().contains("error_rate"),
        "{initiated}"
    );

    // the window is closed: no second rollback while the signals settle
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        store.incidents(&IncidentFilter::default()).unwrap().len(),
        1
    );
    let metrics = w.daemon.metrics.render();
    assert!(
        metrics.contains(
            "rollbackd_rollbacks_total{agent=\"GL-002\",method=\"quick\",outcome=\"verified\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("rollbackd_decisions_total{agent=\"GL-002\",decision=\"rollback\"} 1"),
        "{metrics}"
    );
    w.daemon.shutdown().await;
    w.sim.shutdown().await;
}
