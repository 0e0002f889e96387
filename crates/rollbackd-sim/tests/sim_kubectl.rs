//! The simulator judged by the real `/usr/bin/kubectl`: every test starts its own simulator on
//! 127.0.0.1:0, writes a kubeconfig into a temp dir and runs kubectl as a subprocess (under
//! `timeout 30`, so a hang fails the test instead of freezing CI).

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rollbackd_sim::Fault;

mod kubectl;

use kubectl::{Cluster, cluster};

impl Cluster {
    async fn rolled_out(&self, deploy: &str) {
        let out = self
            .ok(&["rollout", "status", &format!("deployment/{deploy}")])
            .await;
        assert!(
            out.contains(&format!("deployment \"{deploy}\" successfully rolled out")),
            "{out}"
        );
    }

    async fn image(&self, deploy: &str) -> String {
        self.ok(&[
            "get",
            "deployment",
            deploy,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .await
    }

    async fn revisions(&self, deploy: &str) -> Vec<u32> {
        let out = self
            .ok(&["rollout", "history", &format!("deployment/{deploy}")])
            .await;
        out.lines()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect()
    }

    /// A deployment `web` with three replicas of nginx:1.1, rolled out.
    async fn web(&self) {
        let out = self
            .ok(&[
                "create",
                "deployment",
                "web",
                "--image=nginx:1.1",
                "--replicas=3",
            ])
            .await;
        assert!(out.contains("deployment.apps/web created"), "{out}");
        self.rolled_out("web").await;
    }

    async fn stop(self) {
        self.sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_and_rollout_status() {
    let c = cluster().await;
    c.web().await;

    let yaml = c.ok(&["get", "deploy", "web", "-o", "yaml"]).await;
    for needle in [
        "kind: Deployment",
        "name: web",
        "image: nginx:1.1",
        "replicas: 3",
        "deployment.kubernetes.io/revision: \"1\"",
        "reason: NewReplicaSetAvailable",
        "observedGeneration: 1",
    ] {
        assert!(yaml.contains(needle), "missing {needle:?} in\n{yaml}");
    }

    let table = c.ok(&["get", "deploy,rs,pods"]).await;
    assert!(table.contains("deployment.apps/web"), "{table}");
    assert!(table.contains("3/3"), "{table}");
    assert!(table.contains("replicaset.apps/web-"), "{table}");
    assert_eq!(
        table.lines().filter(|l| l.starts_with("pod/web-")).count(),
        3,
        "{table}"
    );
    assert!(table.contains("Running"), "{table}");

    // kubectl create sent the Deployment as protobuf; the sim recorded it.
    let posts: Vec<_> = c
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/deployments"))
        .collect();
    assert_eq!(posts.len(), 1);
    assert!(posts[0].query.contains("fieldManager=kubectl-create"));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_image_history_and_undo_with_revision_renumbering() {
    let c = cluster().await;
    c.web().await;
    for tag in ["1.2", "1.3"] {
        let out = c
            .ok(&[
                "set",
                "image",
                "deployment/web",
                &format!("nginx=nginx:{tag}"),
            ])
            .await;
        assert!(out.contains("deployment.apps/web image updated"), "{out}");
        c.rolled_out("web").await;
    }
    assert_eq!(c.revisions("web").await, vec![1, 2, 3]);
    let patches: Vec<_> = c
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert!(
        patches[0]
            .content_type
            .starts_with("application/strategic-merge-patch+json")
    );
    assert!(patches[0].query.contains("fieldManager=kubectl-set"));
    assert!(patches[0].body.contains("$setElementOrder/containers"));

    let out = c.ok(&["rollout", "undo", "deployment/web"]).await;
    assert!(out.contains("deployment.apps/web rolled back"), "{out}");
    c.rolled_out("web").await;
    assert_eq!(c.image("web").await, "nginx:1.2");
    // Revision 2 came back as revision 4.
    assert_eq!(c.revisions("web").await, vec![1, 3, 4]);
    let undo = c.sim.requests().into_iter().last().unwrap();
    assert!(undo.content_type.starts_with("application/json-patch+json"));
    assert!(undo.body.contains("/spec/template"));

    let out = c
        .ok(&["rollout", "undo", "deployment/web", "--to-revision=1"])
        .await;
    assert!(out.contains("deployment.apps/web rolled back"), "{out}");
    c.rolled_out("web").await;
    assert_eq!(c.image("web").await, "nginx:1.1");
    assert_eq!(c.revisions("web").await, vec![3, 4, 5]);

    let run = c
        .kubectl(&["rollout", "undo", "deployment/web", "--to-revision=99"])
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("error: unable to find specified revision 99 in history"),
        "{}",
        run.text()
    );

    let out = c
        .ok(&["rollout", "undo", "deployment/web", "--to-revision=5"])
        .await;
    assert!(
        out.contains("skipped rollback (current template already matches revision 5)"),
        "{out}"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_restart_creates_a_new_revision() {
    let c = cluster().await;
    c.web().await;
    let out = c.ok(&["rollout", "restart", "deployment/web"]).await;
    assert!(out.contains("deployment.apps/web restarted"), "{out}");
    c.rolled_out("web").await;
    let restarted_at = c
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
        ])
        .await;
    assert!(restarted_at.starts_with("20"), "{restarted_at:?}");
    assert_eq!(c.revisions("web").await, vec![1, 2]);
    let restart = c
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert!(restart.query.contains("fieldManager=kubectl-rollout"));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_and_label_selectors() {
    let c = cluster().await;
    c.web().await;
    let rs = c.ok(&["get", "replicasets", "-l", "app=web"]).await;
    assert!(rs.contains("web-"), "{rs}");
    assert!(
        c.ok(&["get", "replicasets", "-l", "app=other"])
            .await
            .is_empty()
    );
    let out = c.ok(&["scale", "deployment", "web", "--replicas=5"]).await;
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    c.rolled_out("web").await;
    let pods = c.ok(&["get", "pods", "-l", "app=web"]).await;
    assert_eq!(
        pods.lines().filter(|l| l.starts_with("web-")).count(),
        5,
        "{pods}"
    );
    let pods = c
        .ok(&["get", "pods", "-l", "app in (web,api),!nope", "-o", "name"])
        .await;
    assert_eq!(pods.lines().count(), 5, "{pods}");
    // kubectl lists in chunks (--chunk-size, 500 by default) and follows `continue`
    for out in ["wide", "name"] {
        let args = [
            "get",
            "pods",
            "-l",
            "app=web",
            "--chunk-size=2",
            "-o",
            out,
            "-v=6",
        ];
        let run = c.kubectl(&args).await;
        assert!(run.ok, "kubectl {args:?} failed:\n{}", run.text());
        assert_eq!(
            run.stdout.lines().filter(|l| l.contains("web-")).count(),
            5,
            "-o {out}: {}",
            run.stdout
        );
        // kubectl -v=6 logs each request: three chunks, the last two with a token
        let lists: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains("GET") && l.contains("/pods?"))
            .collect();
        assert_eq!(lists.len(), 3, "-o {out}: {lists:#?}");
        assert!(lists.iter().all(|l| l.contains("limit=2")), "{lists:#?}");
        assert_eq!(
            lists.iter().filter(|l| l.contains("continue=")).count(),
            2,
            "{lists:#?}"
        );
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashlooping_image_exceeds_progress_deadline() {
    let c = cluster().await;
    c.sim.inject_fault("bad", Fault::CrashLoop);
    let manifest = c.dir.path().join("web.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  progressDeadlineSeconds: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: nginx\n        image: nginx:1.1\n",
    )
    .unwrap();
    let path = manifest.to_string_lossy().into_owned();
    // Plain `apply -f`: validation is delegated to the server through the minimal OpenAPI v3.
    let out = c.ok(&["apply", "-f", &path]).await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    c.rolled_out("web").await;

    c.ok(&["set", "image", "deployment/web", "nginx=bad:1"])
        .await;
    let started = std::time::Instant::now();
    let run = c.kubectl(&["rollout", "status", "deployment/web"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("error: deployment \"web\" exceeded its progress deadline"),
        "{}",
        run.text()
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let pods = c.ok(&["get", "pods"]).await;
    assert!(pods.contains("CrashLoopBackOff"), "{pods}");
    // The old pods kept serving.
    assert_eq!(pods.matches("Running").count(), 2, "{pods}");

    // Undo recovers.
    c.ok(&["rollout", "undo", "deployment/web"]).await;
    c.rolled_out("web").await;
    assert_eq!(c.image("web").await, "nginx:1.1");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_deployment_cannot_be_undone() {
    let c = cluster().await;
    c.web().await;
    c.ok(&["set", "image", "deployment/web", "nginx=nginx:1.2"])
        .await;
    c.rolled_out("web").await;
    let out = c.ok(&["rollout", "pause", "deployment/web"]).await;
    assert!(out.contains("deployment.apps/web paused"), "{out}");
    let run = c.kubectl(&["rollout", "undo", "deployment/web"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("you cannot rollback a paused deployment"),
        "{}",
        run.text()
    );
    c.ok(&["rollout", "resume", "deployment/web"]).await;
    c.ok(&["rollout", "undo", "deployment/web"]).await;
    c.rolled_out("web").await;
    assert_eq!(c.image("web").await, "nginx:1.1");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_objects_and_bad_input_give_status_errors() {
    let c = cluster().await;
    let run = c.kubectl(&["get", "deploy", "nope"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("Error from server (NotFound): deployments.apps \"nope\" not found"),
        "{}",
        run.text()
    );
    c.web().await;
    let run = c
        .kubectl(&["patch", "deploy", "web", "--type=merge", "-p", "{not json"])
        .await;
    assert!(!run.ok, "{}", run.text());
    let out = c
        .ok(&["label", "deploy", "web", "tier=front", "--dry-run=server"])
        .await;
    assert!(out.contains("deployment.apps/web labeled"), "{out}");
    let labels = c
        .ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.labels}"])
        .await;
    assert!(!labels.contains("tier"), "dry run persisted: {labels}");
    let dry = c.sim.requests().into_iter().last().unwrap();
    assert!(dry.query.contains("dryRun=All"), "{dry:?}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_objects_and_server_side_apply() {
    let c = cluster().await;
    let seeded = c
        .sim
        .create(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "api"}},
                "template": {"metadata": {"labels": {"app": "api"}},
                             "spec": {"containers": [{"name": "api", "image": "api:1"}]}}
            }
        }))
        .unwrap();
    assert_eq!(seeded["metadata"]["generation"], 1);
    let out = c
        .ok(&["-n", "shop", "rollout", "status", "deployment/api"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let ns = c.ok(&["get", "namespaces", "-o", "name"]).await;
    assert!(ns.contains("namespace/shop"), "{ns}");

    let manifest = c.dir.path().join("api.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: shop\nspec:\n  template:\n    spec:\n      containers:\n      - name: api\n        image: api:2\n",
    )
    .unwrap();
    let path = manifest.to_string_lossy().into_owned();
    let out = c.ok(&["apply", "--server-side", "-f", &path]).await;
    assert!(
        out.contains("deployment.apps/api serverside-applied"),
        "{out}"
    );
    c.ok(&["-n", "shop", "rollout", "status", "deployment/api"])
        .await;
    let d = c.sim.get("apps/v1", "Deployment", "shop", "api").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "api:2"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    c.stop().await;
}

/// Optimistic concurrency as the real API server answers it (issue 12 item 14): a patch whose
/// body carries a stale `metadata.resourceVersion` is a 409 Conflict; a JSON patch whose
/// `test` op fails is a 422 whose message keeps none of the patch library's words; a patch
/// carrying the current resourceVersion, or a passing `test`, is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_resource_versions_and_failed_json_patch_tests_are_refused() {
    let c = cluster().await;
    c.web().await;
    let rv = || async {
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await
    };
    let stale = rv().await;
    c.ok(&["set", "image", "deployment/web", "nginx=nginx:1.2"])
        .await;
    let merge =
        format!(r#"{{"metadata":{{"resourceVersion":"{stale}"}},"spec":{{"replicas":5}}}}"#);
    let run = c
        .kubectl(&["patch", "deploy", "web", "--type=merge", "-p", &merge])
        .await;
    assert!(!run.ok, "{}", run.text());
    assert!(
        run.stderr.contains(
            "Error from server (Conflict): Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
        ),
        "{}",
        run.text()
    );
    let test = format!(
        r#"[{{"op":"test","path":"/metadata/resourceVersion","value":"{stale}"}},{{"op":"replace","path":"/spec/replicas","value":5}}]"#
    );
    let run = c
        .kubectl(&["patch", "deploy", "web", "--type=json", "-p", &test])
        .await;
    assert!(!run.ok, "{}", run.text());
    assert!(
        run.stderr.contains(
            "The request is invalid: the server rejected our request due to an error in our request"
        ),
        "{}",
        run.text()
    );
    let replicas = || async {
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
            .await
    };
    assert_eq!(replicas().await, "3", "a refused patch changed nothing");
    c.rolled_out("web").await; // the controllers are quiet: the version read stays current
    let fresh = rv().await;
    let test = test.replace(&stale, &fresh);
    c.ok(&["patch", "deploy", "web", "--type=json", "-p", &test])
        .await;
    assert_eq!(replicas().await, "5");
    c.stop().await;
}
