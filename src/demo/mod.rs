//! `rollbackd demo`: everything in one process on a compressed clock — the Kubernetes
//! simulator with the five agents' workloads, a synthetic agent per policy serving
//! `/metrics`, local Slack, Statuspage and PagerDuty sinks, and rollbackd itself (SQLite,
//! direct scrape) — playing the runbooks' scenarios and printing the timeline.

mod sinks;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use chrono::TimeDelta;
use serde_json::json;

use crate::api::Auth;
use crate::config::{ApiToken, Role};
use crate::daemon::collect::MetricSource;
use crate::daemon::evaluate::Limits;
use crate::daemon::{DaemonHandle, DaemonOptions, seed, start};
use crate::lifecycle::announce::Channels;
use crate::notify::{NotifierConfig, RetryConfig};
use crate::signals::scrape::Scraper;
use crate::store::{IncidentFilter, SqliteStore};
use crate::synthetic_agent::{AgentConfig, SyntheticAgent};
use rollbackd_core::incident::State;
use rollbackd_core::policy::{
    HealthCheck, Policy, PolicyErrors, ScrapeSpec, SignalSource, parse_policy,
};
use rollbackd_sim::{SimConfig, SimHandle, Simulator};

const TOKEN: &str = "demo-operator-token-0123";
/// The demo's read-only token: the console shows it no action buttons.
const VIEWER_TOKEN: &str = "demo-viewer-token-4567";

/// The embedded policies, with the metric prefix their synthetic agent uses.
const POLICIES: [(&str, &str, &str); 5] = [
    (
        "gl-001",
        "gl001_",
        include_str!("../../policies/gl-001.toml"),
    ),
    (
        "gl-002",
        "gl_002_",
        include_str!("../../policies/gl-002.toml"),
    ),
    (
        "gl-006",
        "gl006_",
        include_str!("../../policies/gl-006.toml"),
    ),
    (
        "gl-008",
        "gl008_",
        include_str!("../../policies/gl-008.toml"),
    ),
    (
        "gl-009",
        "thermaliq_",
        include_str!("../../policies/gl-009.toml"),
    ),
];

/// A policy pointed at its synthetic agent, with the verification shortened for the demo.
fn demo_policy(
    text: &str,
    file: &str,
    prefix: &str,
    agent: &SyntheticAgent,
) -> anyhow::Result<Policy> {
    let mut p = parse_policy(Path::new(file), text).map_err(PolicyErrors)?;
    for w in p
        .workloads
        .iter_mut()
        .filter(|w| w.role == rollbackd_core::policy::WorkloadRole::Primary)
    {
        w.metrics_url = Some(agent.metrics_url());
    }
    for (name, s) in Arc::make_mut(&mut p.signals).iter_mut() {
        let SignalSource::Metric { scrape, .. } = &mut s.source else {
            continue;
        };
        *scrape = match name.as_str() {
            "error_rate" => Some(ScrapeSpec::Ratio {
                numerator: format!("{prefix}http_requests_total{{status=~\"5..\"}}"),
                denominator: format!("{prefix}http_requests_total"),
            }),
            "latency_p95" => Some(ScrapeSpec::Quantile {
                histogram: format!("{prefix}http_request_duration_seconds"),
                quantile: 0.95,
            }),
            "latency_p99" => Some(ScrapeSpec::Quantile {
                histogram: format!("{prefix}http_request_duration_seconds"),
                quantile: 0.99,
            }),
            // the demo's backup-heat sensor is the agent's own health gauge
            "backup_heat_available" => Some(ScrapeSpec::Gauge(format!("{prefix}healthy"))),
            // the synthetic agent has one error counter: other ratios (GL-008's database and
            // false-positive rates) read it too
            _ => Some(ScrapeSpec::Ratio {
                numerator: format!("{prefix}http_requests_total{{status=~\"5..\"}}"),
                denominator: format!("{prefix}http_requests_total"),
            }),
        };
    }
    // HTTP steps talk to the synthetic agent (same path), never to the runbooks' real hosts
    for m in Arc::make_mut(&mut p.methods).values_mut() {
        for step in &mut m.steps {
            if let rollbackd_core::policy::StepAction::Http { url, .. } = &mut step.action {
                let path = url.splitn(4, '/').nth(3).unwrap_or("health");
                let path = if path.ends_with("health") {
                    "health"
                } else {
                    path
                };
                *url = format!("http://{}/{path}", agent.addr());
            }
        }
    }
    let verification = Arc::make_mut(&mut p.verification);
    verification.health = Some(HealthCheck {
        url: format!("http://{}/health", agent.addr()),
        expect_status: 200,
    });
    verification.ready_hold = TimeDelta::seconds(1);
    verification.watch = TimeDelta::seconds(3);
    verification.rollout_timeout = TimeDelta::seconds(30);
    Ok(p)
}

struct Demo {
    sim: SimHandle,
    agents: BTreeMap<String, SyntheticAgent>,
    daemon: DaemonHandle,
    http: reqwest::Client,
    started: Instant,
    printed: BTreeSet<String>,
    received: sinks::Received,
    shown_received: usize,
}

impl Demo {
    fn t(&self) -> String {
        format!("+{:>5.1}s", self.started.elapsed().as_secs_f64())
    }

    fn say(&self, text: &str) {
        println!("{} {text}", self.t());
    }

    /// Prints what changed in the store and the sinks since the last call.
    async fn timeline(&mut self) {
        let store = self.daemon.store.clone();
        let Ok(incidents) = store
            .incidents(&IncidentFilter {
                limit: Some(100),
                ..Default::default()
            })
            .await
        else {
            return;
        };
        let mut lines = Vec::new();
        for inc in incidents.iter().rev() {
            if self.printed.insert(format!("{}/open", inc.id)) {
                lines.push(format!(
                    "  DECISION {} {}: {}",
                    inc.agent,
                    inc.severity.as_deref().unwrap_or(""),
                    inc.reason
                ));
                lines.push(format!(
                    "           evidence: {}",
                    crate::lifecycle::announce::evidence_summary(&inc.decision)
                ));
            }
            for t in store.transitions(&inc.id).await.unwrap_or_default() {
                if self.printed.insert(format!("{}/t{}", inc.id, t.seq)) {
                    lines.push(format!(
                        "  {:<10} {} → {} ({})",
                        inc.agent,
                        t.event,
                        t.to,
                        short(&t.note, 110)
                    ));
                }
            }
            for s in store.steps(&inc.id).await.unwrap_or_default() {
                if s.state != "started"
                    && self
                        .printed
                        .insert(format!("{}/s{}/{}/{}", inc.id, s.index, s.workload, s.kind))
                {
                    lines.push(format!(
                        "  {:<10}   step {} {} on {}: {}",
                        inc.agent,
                        s.index + 1,
                        s.kind,
                        s.workload,
                        s.state
                    ));
                }
            }
        }
        if let Ok(received) = self.received.lock() {
            for (service, target, text) in received.iter().skip(self.shown_received) {
                lines.push(format!(
                    "  NOTIFY   {service} {target}: {}",
                    short(text.lines().next().unwrap_or(""), 100)
                ));
            }
            self.shown_received = received.len();
        }
        for l in lines {
            println!("{} {l}", self.t());
        }
    }

    async fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Demo) -> bool,
    ) -> anyhow::Result<()> {
        let until = Instant::now() + timeout;
        while !done(self) {
            self.timeline().await;
            if Instant::now() > until {
                return Err(anyhow!("timed out waiting for {what}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.timeline().await;
        Ok(())
    }

    fn agent(&self, id: &str) -> anyhow::Result<&SyntheticAgent> {
        self.agents.get(id).ok_or_else(|| anyhow!("no agent {id}"))
    }

    async fn incident_state(&self, agent: &str) -> Option<(String, State)> {
        let incs = self
            .daemon
            .store
            .incidents(&IncidentFilter {
                agent: Some(agent.into()),
                limit: Some(1),
                ..Default::default()
            })
            .await
            .ok()?;
        incs.into_iter().next().map(|i| (i.id, i.state))
    }

    /// Waits until `agent`'s newest incident is in one of `states`; returns its id.
    async fn settle(&mut self, agent: &str, states: &[State]) -> anyhow::Result<String> {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let settled = self
                .incident_state(agent)
                .await
                .filter(|(_, s)| states.contains(s));
            self.timeline().await;
            if let Some((id, _)) = settled {
                return Ok(id);
            }
            if Instant::now() > until {
                return Err(anyhow!("timed out waiting for {agent}'s incident"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let url = format!("http://{}{path}", self.daemon.api_addr);
        let res = self
            .http
            .post(&url)
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?;
        let status = res.status();
        let v: serde_json::Value = res.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(anyhow!("POST {path}: {status}: {v}"));
        }
        Ok(v)
    }

    async fn alert(
        &self,
        agent: &str,
        condition: &str,
        status: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let mut labels = json!({"alertname": format!("{agent}-{condition}"), "agent": agent, "condition": condition});
        for (k, v) in extra {
            labels[*k] = json!(v);
        }
        let body = json!({"version": "4", "status": status, "receiver": "rollbackd", "groupKey": "{}", "alerts": [
            {"status": status, "labels": labels, "annotations": {}, "startsAt": chrono::Utc::now().to_rfc3339(), "fingerprint": format!("{agent}-{condition}")}]});
        self.post("/api/v1/alerts", body).await.map(|_| ())
    }
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

async fn deploy(
    sim: &SimHandle,
    client: &kube::Client,
    p: &Policy,
    version: &str,
) -> anyhow::Result<()> {
    let mut done = BTreeSet::new();
    for w in p
        .workloads
        .iter()
        .filter(|w| w.kind == rollbackd_core::policy::WorkloadKind::Deployment)
    {
        if !done.insert(w.name.clone())
            || sim
                .get("apps/v1", "Deployment", &w.namespace, &w.name)
                .is_none()
        {
            continue;
        }
        let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
            kube::Api::namespaced(client.clone(), &w.namespace);
        // the container as it runs (several policies may name the same workload)
        let live = sim
            .get("apps/v1", "Deployment", &w.namespace, &w.name)
            .unwrap_or_default();
        let container = live["spec"]["template"]["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or(&w.name)
            .to_string();
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": container, "image": seed::image(&w.name, version)}]}}}});
        api.patch(
            &w.name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(patch),
        )
        .await
        .with_context(|| format!("deploying {version} of {}", w.name))?;
    }
    Ok(())
}

/// Plays every scenario; with `keep_running` leaves the API and the simulator up afterwards.
pub async fn run(keep_running: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    crate::process::init_tracing(
        crate::config::LogFormat::Text,
        &std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
    );
    println!(
        "rollbackd demo: simulator + synthetic agents + rollbackd (SQLite, direct scrape) + local Slack/Statuspage/PagerDuty\n"
    );
    let sim = Simulator::start(
        "127.0.0.1:0".parse()?,
        SimConfig {
            pod_ready_after: Duration::from_millis(300),
            ..SimConfig::default()
        },
    )
    .await?;
    let mut agents = BTreeMap::new();
    let mut policies = Vec::new();
    for (file, prefix, text) in POLICIES {
        let agent = SyntheticAgent::start(
            "127.0.0.1:0".parse()?,
            AgentConfig {
                rps: 200.0,
                latency_seconds: 0.07,
                ..AgentConfig::new(prefix)
            },
        )
        .await?;
        let p = demo_policy(text, &format!("policies/{file}.toml"), prefix, &agent)?;
        agents.insert(p.agent.id.clone(), agent);
        policies.push(Arc::new(p));
    }
    let seeded = seed::seed(&sim, &policies, 3)?;
    println!(
        "simulator {} seeded with {} workloads at v1",
        sim.url(),
        seeded.len()
    );
    let (sinks, received) = sinks::start().await?;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(
        SqliteStore::open(
            &dir.path().join("rollbackd.db"),
            crate::store::Synchronous::Normal,
        )
        .await?,
    );
    let client = kube::Client::try_from(kube::Config::new(sim.url().parse()?))?;
    let daemon = start(DaemonOptions {
        policies: policies.clone(),
        store,
        client: client.clone(),
        source: MetricSource::scrape(Scraper::new(Duration::from_secs(1)).context("scraper")?),
        listen: "127.0.0.1:0".parse()?,
        max_body_bytes: 1 << 20,
        auth: Auth {
            tokens: vec![
                ApiToken {
                    name: "demo".into(),
                    role: Role::Operator,
                    secret: TOKEN.into(),
                },
                ApiToken {
                    name: "demo-viewer".into(),
                    role: Role::Viewer,
                    secret: VIEWER_TOKEN.into(),
                },
            ],
            // the demo posts its alerts from this process, without credentials
            webhook: crate::config::WebhookAuth {
                allow_unauthenticated: true,
                ..Default::default()
            },
        },
        agent_label: "agent".into(),
        interval: Duration::from_millis(300),
        jitter: Duration::ZERO,
        limits: Limits {
            dry_run: false,
            max_per_agent_per_window: 1,
            max_per_hour: 10,
        },
        notifier: NotifierConfig {
            slack_api_url: sinks.slack,
            slack_token: Some("xoxb-demo".into()),
            // the incident messages carry their buttons; a press must be signed with this
            slack_signing_secret: Some("demo-signing-secret".into()),
            statuspage_api_url: sinks.statuspage,
            statuspage_api_key: Some("demo".into()),
            pagerduty_api_url: sinks.pagerduty,
            pagerduty_routing_keys: [("default".to_string(), "demo".to_string())].into(),
            statuspage_min_interval: Duration::from_millis(20),
            poll_interval: Duration::from_millis(100),
            retry: RetryConfig {
                min_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
                max_attempts: 5,
            },
            ..NotifierConfig::default()
        },
        channels: Channels {
            slack_api: true,
            statuspage: true,
            pagerduty_services: ["default".to_string()].into(),
            // `kubectl describe deployment …` against the simulator tells the same story
            kube_events: true,
            ..Channels::default()
        },
        watch_interval: Duration::from_millis(300),
        leader: None,
        retention: None,
        alertmanager: None,
    })
    .await?;
    println!(
        "rollbackd API on http://{} (token {TOKEN})\n",
        daemon.api_addr
    );
    let mut demo = Demo {
        sim,
        agents,
        daemon,
        http: reqwest::Client::new(),
        started,
        printed: BTreeSet::new(),
        received,
        shown_received: 0,
    };
    // baselines: a few healthy scrapes before the deploys; v1 has been running fine, so it is
    // the "last known good" revision the runbooks' set-image methods go back to
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cluster = crate::cluster::Cluster::new(client.clone());
    for p in &policies {
        for w in p
            .workloads
            .iter()
            .filter(|w| w.kind == rollbackd_core::policy::WorkloadKind::Deployment)
        {
            if let Ok((_, history)) = crate::cluster::history::load(&cluster, w).await
                && let Some(current) = history.current()
            {
                let _ = crate::cluster::annotate::mark_verified(
                    &cluster,
                    &w.namespace,
                    &current.replicaset,
                )
                .await;
            }
        }
    }
    demo.say("deploying v2 of every workload (opens each agent's post-deploy window)");
    for p in &policies {
        deploy(&demo.sim, &client, p, "v2").await?;
    }
    let ids: Vec<String> = policies.iter().map(|p| p.agent.id.clone()).collect();
    demo.wait("every window to open", Duration::from_secs(30), |d| {
        let status = d
            .daemon
            .status
            .read()
            .map(|s| s.clone())
            .unwrap_or_default();
        ids.iter().all(|id| {
            status
                .get(id)
                .is_some_and(|s| s.window_open && s.revision == Some(2))
        })
    })
    .await?;
    let mut summary: Vec<(String, String)> = Vec::new();

    demo.say("\n=== GL-002 P0: error rate jumps to 60 % (unattended undo)");
    demo.agent("GL-002")?.handle().set_error_ratio(0.6)?;
    let id = demo
        .settle(
            "GL-002",
            &[
                State::Verifying,
                State::Monitoring,
                State::Resolved,
                State::Escalated,
            ],
        )
        .await?;
    demo.agent("GL-002")?.handle().set_error_ratio(0.0)?;
    let id2 = demo
        .settle("GL-002", &[State::Resolved, State::Escalated])
        .await?;
    summary.push((
        "GL-002 P0 error spike → unattended undo".into(),
        outcome(&demo, &id2).await,
    ));
    let _ = id;

    demo.say("\n=== GL-009: error 12 % with p95 at ~2.3x its pre-deploy baseline");
    demo.agent("GL-009")?.handle().set_error_ratio(0.12)?;
    demo.agent("GL-009")?.handle().set_latency(0.2)?;
    demo.settle(
        "GL-009",
        &[
            State::Verifying,
            State::Monitoring,
            State::Resolved,
            State::Escalated,
        ],
    )
    .await?;
    demo.agent("GL-009")?.handle().set_error_ratio(0.0)?;
    demo.agent("GL-009")?.handle().set_latency(0.07)?;
    let id = demo
        .settle("GL-009", &[State::Resolved, State::Escalated])
        .await?;
    summary.push((
        "GL-009 p95 ~2.3x baseline + 12 % errors → rollback".into(),
        outcome(&demo, &id).await,
    ));

    demo.say("\n=== GL-008: error rate climbs to 30 % (Severity 3, then 2: approval needed)");
    // the agent's 100 ms ticks make the first reading after the jump a partial interval
    // (10 % errors: Severity 3); GL-008's automation is held until the reading is the full
    // 30 %, so the incident that opens is the Severity 2 one the runbook's story is about
    demo.post(
        "/api/v1/agents/GL-008/pause",
        json!({"reason": "demo: hold GL-008 while its error rate settles at 30 %"}),
    )
    .await?;
    demo.agent("GL-008")?.handle().set_error_ratio(0.3)?;
    demo.wait(
        "GL-008's Severity 2 reading",
        Duration::from_secs(20),
        |d| {
            d.daemon.status.read().ok().is_some_and(|s| {
                s.get("GL-008")
                    .and_then(|s| s.decision.as_ref())
                    .is_some_and(|d| d.row.as_deref() == Some("sev2-error-rate"))
            })
        },
    )
    .await?;
    demo.post(
        "/api/v1/agents/GL-008/resume",
        json!({"reason": "demo: error rate at 30 %"}),
    )
    .await?;
    let id = demo.settle("GL-008", &[State::AwaitingApproval]).await?;
    if keep_running {
        // left for a human to approve from the console; once the rollback starts, the
        // revision it restores is healthy again
        heal_once_rolling_back(&demo, "GL-008", &id)?;
        demo.say(&format!(
            "{id} is left awaiting approval: approve it from the console (URL below)"
        ));
        summary.push((
            "GL-008 error 30 % → awaiting approval in the console".into(),
            outcome(&demo, &id).await,
        ));
    } else {
        tokio::time::sleep(Duration::from_secs(1)).await;
        demo.say(&format!(
            "operator approves: POST /api/v1/rollbacks/{id}/approve"
        ));
        demo.post(
            &format!("/api/v1/rollbacks/{id}/approve"),
            json!({"reason": "engineering manager approved in #incident-gl008"}),
        )
        .await?;
        demo.settle(
            "GL-008",
            &[
                State::Verifying,
                State::Monitoring,
                State::Resolved,
                State::Escalated,
            ],
        )
        .await?;
        demo.agent("GL-008")?.handle().set_error_ratio(0.0)?;
        let id = demo
            .settle("GL-008", &[State::Resolved, State::Escalated])
            .await?;
        summary.push((
            "GL-008 error 30 % → approval via the API → rollback".into(),
            outcome(&demo, &id).await,
        ));
    }

    demo.say("\n=== GL-001: heat optimization errors while backup heat is NOT available");
    demo.agent("GL-001")?.handle().set_healthy(false); // the demo's backup-heat gauge reads 0
    tokio::time::sleep(Duration::from_secs(1)).await;
    demo.alert("GL-001", "heat_optimization_errors", "firing", &[])
        .await?;
    let id = demo
        .settle("GL-001", &[State::Blocked, State::Escalated])
        .await?;
    summary.push((
        "GL-001 life-safety guard (no backup heat) → blocked".into(),
        outcome(&demo, &id).await,
    ));
    demo.alert("GL-001", "heat_optimization_errors", "resolved", &[])
        .await?;
    demo.agent("GL-001")?.handle().set_healthy(true);

    demo.say("\n=== GL-001: a new release (v3) then a multi-plant cascade failure → coordinated rollback");
    if let Some(p) = policies.iter().find(|p| p.agent.id == "GL-001") {
        let mut master = (**p).clone();
        master
            .workloads
            .retain(|w| w.role == rollbackd_core::policy::WorkloadRole::Primary);
        deploy(&demo.sim, &client, &master, "v3").await?;
    }
    demo.wait("GL-001's v3 window", Duration::from_secs(20), |d| {
        d.daemon
            .status
            .read()
            .ok()
            .and_then(|s| {
                s.get("GL-001")
                    .map(|s| s.window_open && s.revision == Some(3))
            })
            .unwrap_or(false)
    })
    .await?;
    demo.alert("GL-001", "cascade_failure", "firing", &[])
        .await?;
    demo.settle(
        "GL-001",
        &[
            State::Verifying,
            State::Monitoring,
            State::Resolved,
            State::Escalated,
        ],
    )
    .await?;
    demo.alert("GL-001", "cascade_failure", "resolved", &[])
        .await?;
    let id = demo
        .settle("GL-001", &[State::Resolved, State::Escalated])
        .await?;
    summary.push((
        "GL-001 coordinated multi-agent rollback (runbook order)".into(),
        outcome(&demo, &id).await,
    ));

    demo.say("\n=== GL-006: a configuration change breaks it → config-only rollback");
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), "greenlang");
    cms.patch(
        "gl-006-heatreclaim-config",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"data": {"version": "v2-broken"}})),
    )
    .await?;
    demo.say("ConfigMap gl-006-heatreclaim-config patched to version=v2-broken; alert config_regression fires");
    demo.alert("GL-006", "config_regression", "firing", &[])
        .await?;
    demo.settle(
        "GL-006",
        &[
            State::Verifying,
            State::Monitoring,
            State::Resolved,
            State::Escalated,
        ],
    )
    .await?;
    demo.alert("GL-006", "config_regression", "resolved", &[])
        .await?;
    let id = demo
        .settle("GL-006", &[State::Resolved, State::Escalated])
        .await?;
    let restored = demo
        .sim
        .get("v1", "ConfigMap", "greenlang", "gl-006-heatreclaim-config")
        .map(|c| c["data"]["version"].clone());
    demo.say(&format!(
        "gl-006-heatreclaim-config version is now {}",
        restored.unwrap_or_default()
    ));
    summary.push((
        "GL-006 config-only rollback (ConfigMap restore)".into(),
        outcome(&demo, &id).await,
    ));

    tokio::time::sleep(Duration::from_millis(800)).await;
    demo.timeline().await;
    println!("\n{:<58} OUTCOME", "SCENARIO");
    for (s, o) in &summary {
        println!("{s:<58} {o}");
    }
    println!("\nfinished in {:.1} s", started.elapsed().as_secs_f64());
    if keep_running {
        let kubeconfig = demo.sim.kubeconfig(dir.path())?;
        println!(
            "\n--keep-running: console http://{}/ (sign in with operator token {TOKEN} or viewer token {VIEWER_TOKEN})",
            demo.daemon.api_addr
        );
        println!(
            "  API http://{} (Authorization: Bearer {TOKEN})",
            demo.daemon.api_addr
        );
        println!(
            "  curl -H 'Authorization: Bearer {TOKEN}' http://{}/api/v1/rollbacks",
            demo.daemon.api_addr
        );
        println!(
            "  kubectl --kubeconfig {} get deployments -A",
            kubeconfig.display()
        );
        println!(
            "  kubectl --kubeconfig {} -n greenlang describe deployment gl-002-boiler-efficiency",
            kubeconfig.display()
        );
        println!("Ctrl-C to stop.");
        // what people do from the console shows up here too
        tokio::select! {
            () = crate::process::shutdown_signal() => {}
            () = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    demo.timeline().await;
                }
            } => {}
        }
    }
    demo.daemon.shutdown().await;
    demo.sim.shutdown().await;
    Ok(())
}

/// Sets `agent`'s error ratio back to 0 once incident `id` has left awaiting approval for
/// the rollback (the demo's stand-in for "the restored revision is healthy"); a rejected
/// incident leaves the errors as they are.
fn heal_once_rolling_back(demo: &Demo, agent: &str, id: &str) -> anyhow::Result<()> {
    let handle = demo.agent(agent)?.handle();
    let (store, id) = (demo.daemon.store.clone(), id.to_string());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            match store.incident(&id).await {
                Ok(Some(i)) if i.state == State::AwaitingApproval => continue,
                Ok(Some(i)) if i.state == State::RollingBack || i.state == State::Verifying => {
                    let _ = handle.set_error_ratio(0.0);
                    return;
                }
                Ok(Some(_)) => return,
                _ => continue,
            }
        }
    });
    Ok(())
}

async fn outcome(demo: &Demo, id: &str) -> String {
    let store = &demo.daemon.store;
    let Ok(Some(inc)) = store.incident(id).await else {
        return "no incident".into();
    };
    let steps = store
        .steps(id)
        .await
        .map(|s| s.iter().filter(|s| s.state == "done").count())
        .unwrap_or(0);
    let rows = store.outbox_for(id).await.unwrap_or_default();
    let sent = rows.iter().filter(|r| r.state == "sent").count();
    let queued = rows.len();
    format!(
        "{} (row {}, method {}, {steps} steps, {sent}/{queued} notifications sent)",
        inc.state,
        inc.row.as_deref().unwrap_or("-"),
        inc.method.as_deref().unwrap_or("-")
    )
}
