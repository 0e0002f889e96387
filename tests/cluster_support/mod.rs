//! Shared helpers for the cluster, executor, verify and watcher tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use kube::api::Patch;
use rollbackd::cluster::annotate::ActionMeta;
use rollbackd::cluster::{Cluster, Kind};
use rollbackd_core::policy::{
    Agent, Method, Notify, Policy, Step, StepAction, Verification, Window, Workload, WorkloadKind,
    WorkloadRole,
};
use rollbackd_sim::{SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};

pub const NS: &str = "default";

pub async fn start() -> (SimHandle, Cluster) {
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), SimConfig::default())
        .await
        .unwrap();
    let client = client_for(&sim);
    (
        sim,
        Cluster::new(client).with_call_timeout(Duration::from_secs(5)),
    )
}

pub fn client_for(sim: &SimHandle) -> kube::Client {
    let config = kube::Config::new(sim.url().parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

pub fn deployment(name: &str, image: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name},
                     "annotations": {"team": "heat"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    })
}

/// Polls `check` every 50 ms for up to `secs` seconds.
pub async fn eventually<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let n = secs * 20;
    for _ in 0..n {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

pub fn revision(obj: &Value) -> u64 {
    obj.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub fn image_of(obj: &Value) -> String {
    obj.pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Waits until the Deployment's rollout is complete at its current generation.
pub async fn rolled_out(cluster: &Cluster, name: &str) {
    eventually("rollout", 15, || async {
        let d = cluster.get(Kind::Deployment, NS, name).await.unwrap();
        let d: rollbackd::cluster::views::DeploymentView = serde_json::from_value(d).unwrap();
        matches!(
            rollbackd::cluster::rollout_status::deployment_status(&d),
            rollbackd::cluster::rollout_status::RolloutStatus::Done(_)
        )
    })
    .await;
}

/// Waits until the Deployment reports `revision`.
pub async fn at_revision(cluster: &Cluster, name: &str, rev: u64) {
    eventually(&format!("{name} at revision {rev}"), 15, || async {
        revision(&cluster.get(Kind::Deployment, NS, name).await.unwrap()) == rev
    })
    .await;
}

/// Sets the image like `kubectl set image` (strategic merge patch, kubectl's field manager).
pub async fn set_image(cluster: &Cluster, name: &str, image: &str) {
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(cluster.client().clone(), NS);
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})),
    )
    .await
    .unwrap();
}

/// Creates `name` with `images[0]`, then sets each further image, waiting for every revision.
pub async fn deploy_history(
    sim: &SimHandle,
    cluster: &Cluster,
    name: &str,
    images: &[&str],
    replicas: i64,
) {
    sim.create(deployment(name, images[0], replicas)).unwrap();
    at_revision(cluster, name, 1).await;
    for (i, img) in images.iter().enumerate().skip(1) {
        set_image(cluster, name, img).await;
        at_revision(cluster, name, i as u64 + 1).await;
    }
}

pub fn workload(id: &str, name: &str, role: WorkloadRole) -> Workload {
    Workload {
        id: id.to_string(),
        kind: WorkloadKind::Deployment,
        namespace: NS.to_string(),
        name: name.to_string(),
        container: Some("app".to_string()),
        role,
        metrics_url: None,
        configmaps: Vec::new(),
    }
}

pub fn step(name: &str, workloads: &[&str], action: StepAction) -> Step {
    Step {
        name: name.to_string(),
        workloads: workloads.iter().map(|s| s.to_string()).collect(),
        container: None,
        timeout: Some(TimeDelta::seconds(20)),
        action,
    }
}

pub fn method(name: &str, steps: Vec<Step>) -> Method {
    Method {
        name: name.to_string(),
        description: None,
        eta: None,
        steps,
    }
}

pub fn verification() -> Verification {
    Verification {
        rollout_timeout: TimeDelta::seconds(10),
        ready_hold: TimeDelta::milliseconds(600),
        health: None,
        checks: Vec::new(),
        watch: TimeDelta::minutes(30),
        recovery: None,
    }
}

pub fn policy(
    workloads: Vec<Workload>,
    methods: Vec<Method>,
    verification: Verification,
) -> Arc<Policy> {
    Arc::new(Policy {
        source: PathBuf::from("test.toml"),
        agent: Agent {
            id: "GL-TEST".into(),
            name: "Test".into(),
            runbook: None,
            slack_approvers: Default::default(),
        },
        window: Window {
            duration: TimeDelta::hours(2),
            fix_forward_after: None,
            stale_after: TimeDelta::minutes(5),
            alert_grace: TimeDelta::zero(),
            worsened_factor: 2.0,
        },
        workloads,
        signals: Default::default(),
        matrix: Default::default(),
        guards: Default::default(),
        methods: Arc::new(methods.into_iter().map(|m| (m.name.clone(), m)).collect()),
        verification: Arc::new(verification),
        notify: Notify {
            slack_channel: None,
            mention: None,
            status_url: None,
            statuspage: None,
            templates: Default::default(),
            statuspage_templates: Default::default(),
            pagerduty: None,
        },
    })
}

pub fn meta(incident: &str, step: &str) -> ActionMeta {
    ActionMeta {
        incident: incident.to_string(),
        method: "test".to_string(),
        step: step.to_string(),
        step_index: 0,
        reason: "test".to_string(),
        dry_run: false,
        expected_revision: None,
    }
}

/// Mutating requests whose path ends with `suffix` and method is `method`.
pub fn count_requests(sim: &SimHandle, method: &str, suffix: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == method && r.path.ends_with(suffix))
        .count()
}
