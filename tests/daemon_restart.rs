//! The daemon killed (SIGKILL, not a clean stop) in the middle of a rollback and started
//! again: the incident completes exactly once, no step runs twice, and the audit log holds
//! every event. Real processes: `rollbackd sim` and `rollbackd run` against it, once with
//! the SQLite store (the restarted daemon reopens the file) and once with the Kubernetes
//! store (the restarted daemon, a new pod, has nothing of its own: it finds the incident on
//! the API).

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::free_port;
use support::process::{kubectl, spawn, start_sim, with_verification};

const TOKEN: &str = "operator-token-0123456789";

fn wait<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(url: &str) -> Option<Value> {
    let out = Command::new("curl")
        .args(["-sf", "-H", &format!("Authorization: Bearer {TOKEN}"), url])
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn killed_mid_rollback_the_incident_completes_once() {
    killed_mid_rollback_the_incident_completes_once_on("sqlite");
}

#[test]
fn killed_mid_rollback_the_incident_completes_once_from_the_kubernetes_store() {
    killed_mid_rollback_the_incident_completes_once_on("kubernetes");
}

fn killed_mid_rollback_the_incident_completes_once_on(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    // GL-002 as shipped, with a verification this test can pass without agents
    let policy = with_verification(
        &std::fs::read_to_string("policies/gl-002.toml").unwrap(),
        "rollout_timeout = \"1m\"\nready_hold = \"1s\"\nwatch = \"2s\"\n",
    );
    std::fs::write(policies.join("gl-002.toml"), policy).unwrap();

    let (_sim, kubeconfig, _) = start_sim(dir.path(), &policies, &[]);
    wait("v1 to roll out", Duration::from_secs(30), || {
        kubectl(
            &kubeconfig,
            &[
                "-n",
                "greenlang",
                "rollout",
                "status",
                "deployment/gl-002-boiler-efficiency",
                "--timeout=1s",
            ],
        )
        .contains("successfully rolled out")
        .then_some(())
    });
    kubectl(
        &kubeconfig,
        &[
            "-n",
            "greenlang",
            "set",
            "image",
            "deployment/gl-002-boiler-efficiency",
            "boiler-optimizer=registry.local/greenlang/gl-002-boiler-efficiency:v2",
        ],
    );
    wait("v2 to roll out", Duration::from_secs(60), || {
        kubectl(
            &kubeconfig,
            &[
                "-n",
                "greenlang",
                "rollout",
                "status",
                "deployment/gl-002-boiler-efficiency",
                "--timeout=1s",
            ],
        )
        .contains("successfully rolled out")
        .then_some(())
    });

    let store = match backend {
        "sqlite" => format!("path = \"{}\"", dir.path().join("rollbackd.db").display()),
        _ => {
            let out = kubectl(
                &kubeconfig,
                &["apply", "-f", "deploy/crds/rollbackincidents.yaml"],
            );
            assert!(out.contains("created"), "{out}");
            "backend = \"kubernetes\"\nnamespace = \"rollbackd\"".to_string()
        }
    };
    let api_port = free_port();
    let config = dir.path().join("rollbackd.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{api_port}\"\n[store]\n{store}\n[kubernetes]\nmode = \"kubeconfig\"\nkubeconfig = \"{}\"\n[evaluation]\ninterval = \"500ms\"\njitter = \"0s\"\n[policies]\npaths = [\"{}\"]\n[webhook]\nallow_unauthenticated = true\n[[auth.tokens]]\nname = \"oncall\"\nrole = \"operator\"\ntoken = \"{TOKEN}\"\n",
            kubeconfig.display(),
            policies.display()
        ),
    )
    .unwrap();
    let api = format!("http://127.0.0.1:{api_port}");
    let mut daemon = spawn(
        &["run", "--config", config.to_str().unwrap()],
        &dir.path().join("daemon-1.log"),
    );
    wait("the API", Duration::from_secs(20), || {
        get(&format!("{api}/api/v1/agents"))
    });

    // the trigger is refused (fail safe) until the first cycle has read the signals its
    // "always" guard needs; then it is taken
    let trigger = || {
        let out = Command::new("curl")
            .args([
                "-sf",
                "-X",
                "POST",
                "-H",
                &format!("Authorization: Bearer {TOKEN}"),
                "-H",
                "content-type: application/json",
            ])
            .arg("-d")
            .arg(
                json!({"agent": "GL-002", "method": "quick", "reason": "restart test"}).to_string(),
            )
            .arg(format!("{api}/api/v1/rollbacks"))
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).ok()
    };
    let incident: Value = wait("the trigger to be taken", Duration::from_secs(10), trigger);
    let id = incident["id"].as_str().unwrap().to_string();
    let show = format!("{api}/api/v1/rollbacks/{id}");

    // kill -9 once the undo is done and the rollout is being waited for
    wait("the undo step", Duration::from_secs(20), || {
        let v = get(&show)?;
        v["steps"]
            .as_array()?
            .iter()
            .any(|s| s["kind"] == "undo" && s["state"] == "done")
            .then_some(())
    });
    daemon.0.kill().unwrap();
    let _ = daemon.0.wait();
    let before = get_after_kill(&kubeconfig);
    assert!(before.contains("3"), "the undo made revision 3: {before}");

    let _daemon = spawn(
        &["run", "--config", config.to_str().unwrap()],
        &dir.path().join("daemon-2.log"),
    );
    let done = wait(
        "the incident to resolve after the restart",
        Duration::from_secs(60),
        || {
            let v = get(&show)?;
            assert_ne!(v["incident"]["state"], "escalated", "{v:#}");
            (v["incident"]["state"] == "resolved").then_some(v)
        },
    );
    let undo_steps: Vec<&Value> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "undo")
        .collect();
    assert_eq!(undo_steps.len(), 1, "{done:#}");
    let revision = kubectl(
        &kubeconfig,
        &[
            "-n",
            "greenlang",
            "get",
            "deployment",
            "gl-002-boiler-efficiency",
            "-o",
            "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        ],
    );
    assert_eq!(
        revision.trim(),
        "3",
        "one undo only (a second would make revision 4)"
    );
    let history = kubectl(
        &kubeconfig,
        &[
            "-n",
            "greenlang",
            "rollout",
            "history",
            "deployment/gl-002-boiler-efficiency",
        ],
    );
    assert!(
        history.contains('2') && history.contains('3') && !history.contains('4'),
        "{history}"
    );
    let actions: Vec<String> = done["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "rollback.trigger").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "step.undo").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "step.wait_rollout").count(),
        1,
        "{actions:?}"
    );
    let states: Vec<&str> = done["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["rolling_back", "verifying", "monitoring", "resolved"]
    );
    if backend == "kubernetes" {
        let table = kubectl(
            &kubeconfig,
            &["get", "rollbackincidents", "-n", "rollbackd"],
        );
        let row: Vec<&str> = table
            .lines()
            .find(|l| l.starts_with(&id.to_lowercase()))
            .unwrap_or_else(|| panic!("{id} not listed:\n{table}"))
            .split_whitespace()
            .collect();
        assert_eq!(row[1..3], ["GL-002", "resolved"], "{table}");
    }
}

fn get_after_kill(kubeconfig: &Path) -> String {
    kubectl(
        kubeconfig,
        &[
            "-n",
            "greenlang",
            "get",
            "deployment",
            "gl-002-boiler-efficiency",
            "-o",
            "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        ],
    )
}
