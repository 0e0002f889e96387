//! `rollbackd run --sim` with `store.backend = "kubernetes"`, as a real process: the
//! built-in simulator serves the shipped `RollbackIncident` CRD, so the store opens on it,
//! the real kubectl lists rollbackd's incidents, and what the API records (a pause) lands
//! on the simulator's API as the store's own object.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use support::process::{kubectl, spawn, wait_for};
use support::{free_port, log_tail, wait_ready};

const TOKEN: &str = "run-sim-operator-token";

/// The simulator's URL, from the line `run --sim` logs when it is up.
fn sim_url(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let at = text.find("kubectl --server ")? + "kubectl --server ".len();
    let url: String = text[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ')' && *c != '"')
        .collect();
    url.starts_with("http://").then_some(url)
}

/// A kubeconfig for a server without credentials.
fn kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {server}\n\
             contexts:\n- name: sim\n  context:\n    cluster: sim\n    user: sim\n\
             current-context: sim\nusers:\n- name: sim\n  user: {{}}\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_sim_keeps_its_state_on_the_simulators_api() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    let config = dir.path().join("rollbackd.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:{port}"
[store]
backend = "kubernetes"
namespace = "rollbackd"
[evaluation]
interval = "500ms"
[policies]
paths = ["{policies}"]
[webhook]
allow_unauthenticated = true
[[auth.tokens]]
name = "oncall"
role = "operator"
token = "{TOKEN}"
"#,
            policies = policies.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("rollbackd.log");
    let mut daemon = spawn(
        &["run", "--sim", "--config", config.to_str().unwrap()],
        &log,
    );
    let api = format!("http://127.0.0.1:{port}");
    wait_ready(
        &format!("{api}/readyz"),
        &mut daemon,
        &log,
        Duration::from_secs(60),
    )
    .await;
    let server = sim_url(&log).unwrap_or_else(|| panic!("no simulator URL:\n{}", log_tail(&log)));
    let kubeconfig = kubeconfig(dir.path(), &server);

    // the CRD is served: kubectl knows the kind and lists (none yet, or notices only)
    let crds = kubectl(&kubeconfig, &["get", "crd"]);
    assert!(crds.contains("rollbackincidents.rollbackd.io"), "{crds}");
    let listed = kubectl(
        &kubeconfig,
        &["get", "rollbackincidents", "-n", "rollbackd"],
    );
    assert!(
        !listed.contains("error") && !listed.contains("the server doesn't have a resource type"),
        "{listed}"
    );

    // a pause through the API is the store's ConfigMap on the simulator
    let answer = reqwest::Client::new()
        .post(format!("{api}/api/v1/agents/GL-002/pause"))
        .bearer_auth(TOKEN)
        .json(&json!({"reason": "boiler maintenance"}))
        .send()
        .await
        .unwrap();
    assert!(
        answer.status().is_success(),
        "{}: {}",
        answer.status(),
        answer.text().await.unwrap()
    );
    let configmaps = wait_for(
        "the pause on the API",
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            let out = kubectl(
                &kubeconfig,
                &[
                    "get",
                    "configmaps",
                    "-n",
                    "rollbackd",
                    "-l",
                    "rollbackd.io/role=pause",
                ],
            );
            out.contains("rollbackd-pause-gl-002").then_some(out)
        },
    )
    .await;
    assert!(
        configmaps.contains("rollbackd-pause-gl-002"),
        "{configmaps}"
    );
    daemon.kill();
}
