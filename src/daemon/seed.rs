//! Seeds a Kubernetes API (the simulator) with the workloads the policies name: a
//! Deployment (or Argo Rollout) per workload, its ConfigMaps, and a Service for each
//! primary workload, each at revision 1 (`v1`). Whoever deploys next (the demo, a test, a
//! human with kubectl) makes the history there is to roll back to.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use rollbackd_core::policy::{Policy, WorkloadKind, WorkloadRole};
use rollbackd_sim::{SimError, SimHandle};

/// The image a seeded workload runs at `version`.
pub fn image(name: &str, version: &str) -> String {
    format!("registry.local/greenlang/{name}:{version}")
}

fn template(name: &str, container: &str, version: &str, configmaps: &[String]) -> Value {
    let volumes: Vec<Value> = configmaps
        .iter()
        .map(|c| json!({"name": c, "configMap": {"name": c}}))
        .collect();
    json!({
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": container, "image": image(name, version)}], "volumes": volumes}
    })
}

/// Creates every workload once (several policies may name the same one).
pub fn seed(
    sim: &SimHandle,
    policies: &[std::sync::Arc<Policy>],
    replicas: u32,
) -> Result<Vec<String>, SimError> {
    let mut done = BTreeSet::new();
    let mut created = Vec::new();
    // primary workloads first: their policy's container name wins over a coordinator's guess
    let mut all: Vec<&rollbackd_core::policy::Workload> =
        policies.iter().flat_map(|p| p.workloads.iter()).collect();
    all.sort_by_key(|w| w.role != WorkloadRole::Primary);
    {
        for w in all {
            if !done.insert((
                w.namespace.clone(),
                w.name.clone(),
                w.kind == WorkloadKind::Rollout,
            )) {
                continue;
            }
            for cm in &w.configmaps {
                sim.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cm, "namespace": w.namespace}, "data": {"version": "v1"}}))?;
            }
            let container = w.container.clone().unwrap_or_else(|| w.name.clone());
            let spec = json!({
                "replicas": replicas,
                "selector": {"matchLabels": {"app": w.name}},
                "template": template(&w.name, &container, "v1", &w.configmaps),
                "progressDeadlineSeconds": 60,
            });
            let (api_version, kind) = match w.kind {
                WorkloadKind::Deployment => ("apps/v1", "Deployment"),
                WorkloadKind::Rollout => ("argoproj.io/v1alpha1", "Rollout"),
            };
            sim.create(json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": w.name, "namespace": w.namespace, "labels": {"app": w.name}}, "spec": spec}))?;
            if w.role == WorkloadRole::Primary && w.kind == WorkloadKind::Deployment {
                sim.create(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": w.name, "namespace": w.namespace},
                    "spec": {"selector": {"app": w.name}, "ports": [{"port": 8000, "targetPort": 8000}]}}))?;
            }
            created.push(format!("{}/{}", w.namespace, w.name));
        }
    }
    Ok(created)
}
