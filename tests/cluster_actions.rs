//! Every step kind against the simulator through a real kube::Client, with failure paths.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cluster_support::*;
use kube::api::Patch;
use rollbackd::cluster::annotate::{ActionOutcome, LastAction, mark_verified};
use rollbackd::cluster::backup::{BackupSink, DirBackupSink, backup_workloads};
use rollbackd::cluster::history::load;
use rollbackd::cluster::retry::{RetryPolicy, on_conflict, transient};
use rollbackd::cluster::{ClusterError, Kind, argo, configmap, http_step, image, job, restart};
use rollbackd::cluster::{scale, service, snapshot, undo};
use rollbackd_core::policy::{ImageRef, RevisionRef, WorkloadKind, WorkloadRole};
use rollbackd_sim::Fault;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn last_action(obj: &Value) -> LastAction {
    LastAction::read(obj).expect("rollbackd's last-action annotation")
}

#[tokio::test]
async fn undo_previous_is_one_json_patch_with_field_manager_and_annotation() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], 2).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    let (u, o) = undo::undo(&cluster, &w, RevisionRef::Previous, &meta("INC-1", "undo"))
        .await
        .unwrap();
    assert_eq!((u.from_revision, u.to_revision), (2, 1));
    assert_eq!(u.images, vec![("app".to_string(), "web:1".to_string())]);
    assert!(matches!(o, ActionOutcome::Done { .. }));
    let patches: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/deployments/web"))
        .collect();
    let p = patches.last().unwrap();
    assert_eq!(p.content_type, "application/json-patch+json");
    assert!(p.query.contains("fieldManager=rollbackd"), "{}", p.query);
    let body: Value = serde_json::from_str(&p.body).unwrap();
    assert_eq!(body[0]["op"], "replace");
    assert_eq!(body[0]["path"], "/spec/template");
    assert!(
        body[0]["value"]["metadata"]["labels"]
            .get("pod-template-hash")
            .is_none()
    );
    assert_eq!(body[1]["path"], "/metadata/annotations");
    at_revision(&cluster, "web", 3).await;
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    assert_eq!(image_of(&d), "web:1");
    assert_eq!(
        d["metadata"]["annotations"]["team"], "heat",
        "other annotations kept"
    );
    let rec = last_action(&d);
    assert_eq!(
        (rec.incident.as_str(), rec.kind.as_str()),
        ("INC-1", "undo")
    );
    assert_eq!((rec.from_revision, rec.to_revision), (Some(2), Some(1)));
    // History: the restored ReplicaSet is renumbered 3, revision 1 is gone.
    let (_, h) = load(&cluster, &w).await.unwrap();
    let nums: Vec<u64> = h.revisions.iter().map(|r| r.number).collect();
    assert_eq!(nums, vec![2, 3]);
    sim.shutdown().await;
}

#[tokio::test]
async fn undo_failure_paths_missing_revision_paused_and_already_current() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], 1).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    let m = meta("INC-2", "undo");
    let before = count_requests(&sim, "PATCH", "/deployments/web");

    let e = undo::undo(&cluster, &w, RevisionRef::Revision(99), &m)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "unable to find specified revision 99 in history"
    );

    // Already at revision 2's template: skipped, nothing sent.
    let (_, o) = undo::undo(&cluster, &w, RevisionRef::Revision(2), &m)
        .await
        .unwrap();
    match o {
        ActionOutcome::Skipped { reason, .. } => {
            assert_eq!(reason, "current template already matches revision 2")
        }
        other => panic!("expected skip, got {other:?}"),
    }
    assert_eq!(count_requests(&sim, "PATCH", "/deployments/web"), before);

    // last_known_good without a verified revision is an error, never "previous".
    let e = undo::undo(&cluster, &w, RevisionRef::LastKnownGood, &m)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClusterError::NoLastKnownGood { current: 2, .. }),
        "{e}"
    );
    let (_, h) = load(&cluster, &w).await.unwrap();
    mark_verified(&cluster, NS, &h.find(1).unwrap().replicaset)
        .await
        .unwrap();
    let (_, h) = load(&cluster, &w).await.unwrap();
    assert_eq!(h.last_known_good().unwrap().number, 1);

    // Paused: refused after the lookup, nothing sent.
    cluster
        .patch(
            Kind::Deployment,
            NS,
            "web",
            &Patch::Merge(json!({"spec": {"paused": true}})),
            false,
        )
        .await
        .unwrap();
    let before = count_requests(&sim, "PATCH", "/deployments/web");
    let e = undo::undo(&cluster, &w, RevisionRef::Previous, &m)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot undo a paused deployment; resume it first"
    );
    assert_eq!(e.metric_label(), "paused");
    let e = undo::undo(&cluster, &w, RevisionRef::Revision(99), &m)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClusterError::RevisionNotFound(99)),
        "lookup comes first"
    );
    assert_eq!(count_requests(&sim, "PATCH", "/deployments/web"), before);
    sim.shutdown().await;
}

fn api_error(code: u16) -> ClusterError {
    ClusterError::Api {
        context: "test".into(),
        source: kube::Error::Api(Box::new(
            kube::core::Status::failure("x", "y").with_code(code),
        )),
    }
}

#[tokio::test]
async fn conflicts_are_reread_and_transient_errors_backed_off_but_4xx_fail_at_once() {
    let fast = RetryPolicy {
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        ..RetryPolicy::default()
    };
    let calls = AtomicUsize::new(0);
    let r = on_conflict(&fast, || async {
        if calls.fetch_add(1, Ordering::SeqCst) < 2 {
            Err(api_error(409))
        } else {
            Ok(7)
        }
    })
    .await
    .unwrap();
    assert_eq!((r, calls.load(Ordering::SeqCst)), (7, 3));
    let calls = AtomicUsize::new(0);
    let e = on_conflict(&fast, || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(api_error(409))
    })
    .await
    .unwrap_err();
    assert!(e.is_conflict());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        fast.conflict_attempts,
        "bounded"
    );

    let calls = AtomicUsize::new(0);
    transient(&fast, || async {
        if calls.fetch_add(1, Ordering::SeqCst) < 2 {
            Err(api_error(503))
        } else {
            Ok(())
        }
    })
    .await
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let calls = AtomicUsize::new(0);
    transient(&fast, || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(api_error(403))
    })
    .await
    .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "4xx fails at once");
    let calls = AtomicUsize::new(0);
    transient(&fast, || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(api_error(500))
    })
    .await
    .unwrap_err();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        fast.transient_retries + 1,
        "bounded"
    );
}

#[tokio::test]
async fn scale_with_a_stale_resource_version_conflicts_and_is_retried() {
    // A real 409 from the simulator: a writer changes the object between our read and patch.
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1"], 2).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    let o = scale::scale(&cluster, &w, Some(3), &meta("INC-S", "scale"))
        .await
        .unwrap();
    assert!(matches!(o, ActionOutcome::Done { .. }));
    let patch = sim
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PATCH" && r.path.ends_with("/deployments/web"))
        .unwrap();
    let body: Value = serde_json::from_str(&patch.body).unwrap();
    assert!(
        body["metadata"]["resourceVersion"].is_string(),
        "optimistic concurrency: {body}"
    );
    // The stale-RV write is rejected by the sim with 409, which is what on_conflict retries.
    let stale = json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 4}});
    let e = cluster
        .patch(Kind::Deployment, NS, "web", &Patch::Merge(stale), false)
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    sim.shutdown().await;
}

#[tokio::test]
async fn set_image_literal_and_previous_via_target_history() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2", "web:3"], 1).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    let o = image::set_image(
        &cluster,
        &w,
        None,
        &ImageRef::Previous,
        &meta("INC-3", "img"),
    )
    .await
    .unwrap();
    assert_eq!(o.detail()["image"], "web:2");
    assert_eq!(o.detail()["to_revision"], 2);
    let p = sim
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PATCH" && r.path.ends_with("/deployments/web"))
        .unwrap();
    assert_eq!(p.content_type, "application/strategic-merge-patch+json");
    assert!(p.query.contains("fieldManager=rollbackd"));
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    assert_eq!(image_of(&d), "web:2");
    assert_eq!(last_action(&d).kind, "set_image");
    // Literal, and an unknown container fails without a request.
    image::set_image(
        &cluster,
        &w,
        None,
        &ImageRef::Literal("web:9".into()),
        &meta("INC-3", "img"),
    )
    .await
    .unwrap();
    assert_eq!(
        image_of(&cluster.get(Kind::Deployment, NS, "web").await.unwrap()),
        "web:9"
    );
    let n = count_requests(&sim, "PATCH", "/deployments/web");
    let e = image::set_image(
        &cluster,
        &w,
        Some("nope"),
        &ImageRef::Literal("x".into()),
        &meta("I", "s"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.metric_label(), "invalid_step");
    assert_eq!(count_requests(&sim, "PATCH", "/deployments/web"), n);
    sim.shutdown().await;
}

#[tokio::test]
async fn restart_sets_restarted_at_and_makes_a_new_revision() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1"], 1).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    restart::restart(&cluster, &w, &meta("INC-4", "restart"))
        .await
        .unwrap();
    at_revision(&cluster, "web", 2).await;
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    let at = d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    assert_eq!(last_action(&d).kind, "restart");
    sim.shutdown().await;
}

#[tokio::test]
async fn scale_then_restore_uses_the_remembered_count() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1"], 3).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    scale::scale(&cluster, &w, Some(0), &meta("INC-5", "down"))
        .await
        .unwrap();
    scale::scale(&cluster, &w, Some(1), &meta("INC-5", "down again"))
        .await
        .unwrap();
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["metadata"]["annotations"]["rollbackd.io/replicas-before-scale"],
        "3"
    );
    // A new Cluster handle (as after a daemon restart) restores from the annotation.
    let (_, fresh) = (0, rollbackd::cluster::Cluster::new(client_for(&sim)));
    scale::scale(&fresh, &w, None, &meta("INC-5", "restore"))
        .await
        .unwrap();
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    assert_eq!(d["spec"]["replicas"], 3);
    assert!(
        d["metadata"]["annotations"]
            .get("rollbackd.io/replicas-before-scale")
            .is_none()
    );
    let e = scale::scale(&cluster, &w, None, &meta("INC-5", "restore"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nothing to restore"), "{e}");
    sim.shutdown().await;
}

#[tokio::test]
async fn switch_service_sets_and_removes_selector_keys_in_one_patch() {
    let (sim, cluster) = start().await;
    sim.create(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"selector": {"app": "web", "color": "blue", "canary": "true"},
                 "ports": [{"port": 80}]}}))
        .unwrap();
    let sel: BTreeMap<String, String> = [("color".to_string(), "green".to_string())].into();
    let o = service::switch_service(
        &cluster,
        NS,
        "web",
        &sel,
        &["canary".into()],
        &meta("INC-6", "switch"),
    )
    .await
    .unwrap();
    assert!(matches!(o, ActionOutcome::Done { .. }));
    let s = cluster.get(Kind::Service, NS, "web").await.unwrap();
    assert_eq!(
        s["spec"]["selector"],
        json!({"app": "web", "color": "green"})
    );
    assert_eq!(last_action(&s).kind, "switch_service");
    assert_eq!(count_requests(&sim, "PATCH", "/services/web"), 1);
    let o = service::switch_service(
        &cluster,
        NS,
        "web",
        &sel,
        &["canary".into()],
        &meta("INC-6", "switch"),
    )
    .await
    .unwrap();
    assert!(matches!(o, ActionOutcome::Skipped { .. }));
    sim.shutdown().await;
}

#[tokio::test]
async fn configmap_snapshot_then_restore_and_patch() {
    let (sim, cluster) = start().await;
    sim.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": NS}, "data": {"mode": "safe", "level": "1"}}))
        .unwrap();
    let mut w = workload("web", "web", WorkloadRole::Primary);
    w.configmaps = vec!["cfg".into(), "absent".into()];
    let names = snapshot::snapshot_configmaps(&cluster, &w, 4)
        .await
        .unwrap();
    assert_eq!(names, vec!["cfg.rollbackd-rev-4"]);
    let snap = cluster
        .get(Kind::ConfigMap, NS, "cfg.rollbackd-rev-4")
        .await
        .unwrap();
    assert_eq!(snap["data"], json!({"mode": "safe", "level": "1"}));
    assert_eq!(
        snap["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "rollbackd"
    );
    assert_eq!(snap["metadata"]["labels"]["rollbackd.io/source"], "cfg");
    assert_eq!(snap["metadata"]["labels"]["rollbackd.io/revision"], "4");

    let data: BTreeMap<String, String> = [
        ("mode".to_string(), "fast".to_string()),
        ("extra".to_string(), "x".to_string()),
    ]
    .into();
    configmap::patch_configmap(&cluster, NS, "cfg", &data, &meta("INC-7", "patch"))
        .await
        .unwrap();
    // Idempotent: the existing snapshot is kept, not overwritten with the patched data.
    snapshot::snapshot_configmaps(&cluster, &w, 4)
        .await
        .unwrap();
    let snap = cluster
        .get(Kind::ConfigMap, NS, "cfg.rollbackd-rev-4")
        .await
        .unwrap();
    assert_eq!(snap["data"]["mode"], "safe");

    configmap::restore_configmap(&cluster, NS, "cfg", 4, &meta("INC-7", "restore"))
        .await
        .unwrap();
    let cm = cluster.get(Kind::ConfigMap, NS, "cfg").await.unwrap();
    assert_eq!(
        cm["data"],
        json!({"mode": "safe", "level": "1"}),
        "extra key removed"
    );
    assert_eq!(last_action(&cm).kind, "restore_configmap");
    let e = configmap::restore_configmap(&cluster, NS, "cfg", 9, &meta("INC-7", "restore"))
        .await
        .unwrap_err();
    assert_eq!(e.metric_label(), "snapshot_missing");
    sim.shutdown().await;
}

#[tokio::test]
async fn backup_writes_workload_and_configmaps_and_keeps_the_first_copy() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1"], 1).await;
    sim.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": NS}, "data": {"a": "1"}}))
        .unwrap();
    let mut w = workload("web", "web", WorkloadRole::Primary);
    w.configmaps = vec!["cfg".into()];
    let dir = tempfile::tempdir().unwrap();
    let sink = DirBackupSink::new(dir.path());
    assert_eq!(
        backup_workloads(&cluster, &sink, "INC-8", &[&w])
            .await
            .unwrap(),
        2
    );
    let path = sink.path("INC-8", "Deployment", NS, "web");
    assert!(path.ends_with("INC-8/Deployment-default-web.json"));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(image_of(&saved), "web:1");
    assert!(sink.path("INC-8", "ConfigMap", NS, "cfg").exists());
    sink.save("INC-8", "Deployment", NS, "web", &json!({"changed": true}))
        .await
        .unwrap();
    let again: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(again, saved, "first save wins");
    sim.shutdown().await;
}

#[tokio::test]
async fn argo_abort_and_undo() {
    let (sim, cluster) = start().await;
    sim.create(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "shop", "namespace": NS},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "shop"}},
                 "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
                 "template": {"metadata": {"labels": {"app": "shop"}},
                              "spec": {"containers": [{"name": "app", "image": "shop:1"}]}}}
    }))
    .unwrap();
    let rev = |v: &Value| {
        v.pointer("/metadata/annotations/rollout.argoproj.io~1revision")
            .and_then(Value::as_str)
            .unwrap_or("0")
            .to_string()
    };
    eventually("rollout healthy", 10, || async {
        let r = cluster.get(Kind::Rollout, NS, "shop").await.unwrap();
        r["status"]["phase"] == "Healthy" && rev(&r) == "1"
    })
    .await;
    cluster
        .patch(Kind::Rollout, NS, "shop",
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop:2"}]}}}})),
            false)
        .await
        .unwrap();
    eventually("revision 2", 10, || async {
        rev(&cluster.get(Kind::Rollout, NS, "shop").await.unwrap()) == "2"
    })
    .await;
    let mut w = workload("shop", "shop", WorkloadRole::Primary);
    w.kind = WorkloadKind::Rollout;
    argo::argo_abort(&cluster, &w, &meta("INC-9", "abort"))
        .await
        .unwrap();
    let p = sim
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PATCH" && r.path.ends_with("/status"))
        .unwrap();
    assert!(p.path.ends_with("/rollouts/shop/status"), "{}", p.path);
    assert!(p.query.contains("fieldManager=rollbackd"));
    let body = serde_json::from_str::<Value>(&p.body).unwrap();
    assert_eq!(body["status"], json!({"abort": true}));
    assert!(
        body["metadata"]["resourceVersion"].is_string(),
        "the abort carries the resourceVersion it read: {body}"
    );
    let ro = cluster.get(Kind::Rollout, NS, "shop").await.unwrap();
    assert_eq!(last_action(&ro).kind, "argo_abort");
    eventually("aborted", 10, || async {
        cluster.get(Kind::Rollout, NS, "shop").await.unwrap()["status"]["phase"] == "Degraded"
    })
    .await;
    let (u, _) = argo::argo_undo(&cluster, &w, RevisionRef::Previous, &meta("INC-9", "undo"))
        .await
        .unwrap();
    assert_eq!((u.from_revision, u.to_revision), (2, 1));
    eventually("healthy on shop:1 as revision 3", 10, || async {
        let r = cluster.get(Kind::Rollout, NS, "shop").await.unwrap();
        r["status"]["phase"] == "Healthy" && rev(&r) == "3" && image_of(&r) == "shop:1"
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn job_completes_or_fails_with_logs_kept() {
    let (sim, cluster) = start().await;
    let cancel = CancellationToken::new();
    let o = job::run_job(
        &cluster,
        NS,
        "migrate-down",
        "migrate:1",
        &["down".into()],
        Duration::from_secs(10),
        &cancel,
        &meta("INC-10", "job"),
    )
    .await
    .unwrap();
    let d = o.detail();
    assert!(d["logs"].as_str().unwrap().contains("simulated log"), "{d}");
    assert_eq!(d["job"], "migrate-down-inc-10");
    sim.inject_fault("broken", Fault::CrashLoop);
    let e = job::run_job(
        &cluster,
        NS,
        "migrate-down",
        "broken:1",
        &[],
        Duration::from_secs(10),
        &cancel,
        &meta("INC-11", "job"),
    )
    .await
    .unwrap_err();
    match e {
        ClusterError::JobFailed { name, logs, .. } => {
            assert_eq!(name, "migrate-down-inc-11");
            assert!(logs.contains("==> pod migrate-down-inc-11"), "{logs}");
        }
        other => panic!("expected JobFailed, got {other}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn http_step_checks_status_and_fills_vars_before_any_request() {
    use axum::routing::post;
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/plants/{plant}/isolate",
        post(
            move |axum::extract::Path(p): axum::extract::Path<String>, body: String| {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    if p == "north" && body.contains("north") {
                        (axum::http::StatusCode::ACCEPTED, "ok")
                    } else {
                        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "bad")
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/plants/{{plant}}/isolate");
    let body = json!({"plant": "{plant}"});
    let vars: BTreeMap<String, String> = [("plant".to_string(), "north".to_string())].into();
    let t = Duration::from_secs(5);
    let o = http_step::http_call(
        &client,
        "POST",
        &url,
        Some(&body),
        202,
        &vars,
        t,
        &meta("I", "h"),
    )
    .await
    .unwrap();
    assert_eq!(o.detail()["status"], 202);
    let vars_s: BTreeMap<String, String> = [("plant".to_string(), "south".to_string())].into();
    let e = http_step::http_call(
        &client,
        "POST",
        &url,
        Some(&body),
        202,
        &vars_s,
        t,
        &meta("I", "h"),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("status 500, expected 202"), "{e}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let e = http_step::http_call(
        &client,
        "POST",
        &url,
        Some(&body),
        202,
        &BTreeMap::new(),
        t,
        &meta("I", "h"),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("missing variable {plant}"), "{e}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "no request with a missing variable"
    );
}

#[tokio::test]
async fn wait_rollout_done_and_times_out_on_never_ready() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1"], 2).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    let cancel = CancellationToken::new();
    let v = rollbackd::cluster::rollout_status::wait_rollout(
        &cluster,
        &w,
        Duration::from_secs(10),
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(v["status"], "deployment \"web\" successfully rolled out");
    sim.inject_fault("web:bad", Fault::NeverReady);
    set_image(&cluster, "web", "web:bad").await;
    let e = rollbackd::cluster::rollout_status::wait_rollout(
        &cluster,
        &w,
        Duration::from_secs(1),
        &cancel,
    )
    .await
    .unwrap_err();
    assert_eq!(e.metric_label(), "step_timeout");
    assert!(
        e.to_string()
            .contains("Waiting for deployment \"web\" rollout to finish"),
        "{e}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_verified_mark_copied_onto_a_new_replicaset_does_not_count() {
    // The deployment controller copies Deployment annotations onto new ReplicaSets. A
    // verified mark that reached the Deployment must not make a new revision "known good".
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], 1).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    let (_, h) = load(&cluster, &w).await.unwrap();
    mark_verified(&cluster, NS, &h.find(1).unwrap().replicaset)
        .await
        .unwrap();
    let rs1 = cluster
        .get(Kind::ReplicaSet, NS, &h.find(1).unwrap().replicaset)
        .await
        .unwrap();
    let copied = json!({"metadata": {"annotations": {
        "rollbackd.io/verified": "true",
        "rollbackd.io/verified-template-hash": rs1["metadata"]["annotations"]["rollbackd.io/verified-template-hash"],
    }}});
    cluster
        .patch(Kind::Deployment, NS, "web", &Patch::Merge(copied), false)
        .await
        .unwrap();
    set_image(&cluster, "web", "web:3").await;
    at_revision(&cluster, "web", 3).await;
    set_image(&cluster, "web", "web:4").await;
    at_revision(&cluster, "web", 4).await;
    let (_, h) = load(&cluster, &w).await.unwrap();
    let rs3 = cluster
        .get(Kind::ReplicaSet, NS, &h.find(3).unwrap().replicaset)
        .await
        .unwrap();
    assert_eq!(
        rs3["metadata"]["annotations"]["rollbackd.io/verified"], "true",
        "copied by the controller"
    );
    assert!(!h.find(3).unwrap().verified);
    assert_eq!(
        h.last_known_good().unwrap().number,
        1,
        "revision 3 is not known good"
    );
    // And undo never copies rollbackd's marks from a ReplicaSet onto the Deployment.
    undo::undo(
        &cluster,
        &w,
        RevisionRef::Revision(1),
        &meta("INC-12", "undo"),
    )
    .await
    .unwrap();
    let p = sim
        .requests()
        .into_iter()
        .rfind(|r| r.content_type == "application/json-patch+json")
        .unwrap();
    let body: Value = serde_json::from_str(&p.body).unwrap();
    let ann = body[1]["value"].as_object().unwrap();
    assert!(ann.contains_key("rollbackd.io/last-action"));
    assert!(!ann.contains_key("rollbackd.io/verified"), "{ann:?}");
    assert!(
        !ann.contains_key("rollbackd.io/verified-template-hash"),
        "{ann:?}"
    );
    sim.shutdown().await;
}
