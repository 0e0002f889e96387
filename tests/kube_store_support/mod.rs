//! A simulator given the `RollbackIncident` CRD by the real kubectl, and the incidents the
//! Kubernetes store's tests open (`tests/kube_store.rs`, `tests/kube_store_reads.rs`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use rollbackd::store::*;
use rollbackd_sim::{SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const NS: &str = "rollbackd";

/// A simulator with the CRD applied, and kubectl pointed at it.
pub struct Cluster {
    pub sim: SimHandle,
    pub dir: TempDir,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    /// A simulator given the CRD by `kubectl apply -f deploy/crds/rollbackincidents.yaml`.
    pub async fn start() -> Self {
        let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), SimConfig::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = sim.kubeconfig(dir.path()).unwrap();
        let c = Self {
            sim,
            dir,
            kubeconfig,
        };
        let crd =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/crds/rollbackincidents.yaml");
        let out = c.kubectl(&["apply", "-f", crd.to_str().unwrap()]).await;
        assert!(
            out.contains("customresourcedefinition.apiextensions.k8s.io/rollbackincidents.rollbackd.io created"),
            "{out}"
        );
        c
    }

    pub async fn kubectl(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new("timeout")
            .arg("30")
            .arg("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .output()
            .await
            .expect("kubectl and timeout on the PATH");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(kube::Config::new(self.sim.url().parse().unwrap())).unwrap()
    }

    pub async fn store(&self) -> Arc<dyn StateStore> {
        Arc::new(KubeStore::open(self.client(), NS).await.unwrap())
    }

    /// Every object of a kind in the store's namespace, as stored.
    pub async fn objects(&self, path: &str) -> Vec<Value> {
        let url = format!("{}{path}", self.sim.url());
        let list: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        list["items"].as_array().unwrap().clone()
    }

    pub async fn incidents(&self) -> Vec<Value> {
        self.objects(&format!(
            "/apis/rollbackd.io/v1alpha1/namespaces/{NS}/rollbackincidents"
        ))
        .await
    }

    pub async fn configmaps(&self) -> Vec<Value> {
        self.objects(&format!("/api/v1/namespaces/{NS}/configmaps"))
            .await
    }
}

/// A GL-style automatic incident of `agent` at `revision`.
pub fn new_incident(agent: &str, revision: u64) -> NewIncident {
    NewIncident {
        agent: agent.into(),
        namespace: "greenlang".into(),
        workload: "gl-002-boiler-efficiency".into(),
        revision: Some(revision),
        from_image: Some("ghcr.io/greenlang/gl-002:v1.2.5".into()),
        row: Some("p0-error-rate".into()),
        severity: Some("P0".into()),
        method: Some("quick".into()),
        trigger: Trigger::Automatic,
        requested_by: None,
        reason: "P0 p0-error-rate: error_rate=0.6 > 0.5".into(),
        decision: json!({"decision": "rollback", "evidence": {"conditions": [{"signal": "error_rate", "value": 0.6}]}}),
        dry_run: false,
        vars: BTreeMap::from([("plant".to_string(), "north".to_string())]),
        deploy_at: Some(Utc::now() - TimeDelta::minutes(10)),
    }
}

/// A Slack message of `stage`.
pub fn outbox(stage: &str) -> NewOutbox {
    NewOutbox {
        target_key: "slack:#gl-002-incidents".into(),
        target: json!({"kind": "slack", "channel": "#gl-002-incidents"}),
        message: json!({"stage": stage, "text": "rolling back"}),
    }
}
