//! The deploy watcher against the simulator.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use std::time::Duration;

use cluster_support::*;
use rollbackd::cluster::Kind;
use rollbackd::cluster::annotate::ActionMeta;
use rollbackd::cluster::history::load;
use rollbackd::cluster::undo;
use rollbackd::watcher::{DeployObserved, DeployWatcher};
use rollbackd_core::policy::{RevisionRef, WorkloadRole};
use rollbackd_sim::Fault;
use serde_json::json;
use tokio::sync::mpsc;

async fn next(rx: &mut mpsc::Receiver<DeployObserved>) -> DeployObserved {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("channel open")
}

async fn quiet(rx: &mut mpsc::Receiver<DeployObserved>, ms: u64) {
    if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(ms), rx.recv()).await {
        panic!("unexpected event {ev:?}");
    }
}

#[tokio::test]
async fn new_revisions_snapshots_own_undo_flag_and_initial_rebuild() {
    let (sim, cluster) = start().await;
    sim.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web-config", "namespace": NS}, "data": {"mode": "v1"}}))
        .unwrap();
    deploy_history(&sim, &cluster, "web", &["web:1"], 2).await;
    let mut w = workload("web", "web", WorkloadRole::Primary);
    w.configmaps = vec!["web-config".into()];
    let p = policy(vec![w.clone()], vec![], verification());
    let (tx, mut rx) = mpsc::channel(16);
    let watcher = DeployWatcher::start(cluster.clone(), std::slice::from_ref(&p), tx)
        .await
        .unwrap();

    let ev = next(&mut rx).await;
    assert!(
        ev.initial && ev.revision == 1 && !ev.rolled_back_by_rollbackd,
        "{ev:?}"
    );
    assert_eq!(ev.agent, "GL-TEST");

    // The new release ships a new config.
    cluster
        .patch(
            Kind::ConfigMap,
            NS,
            "web-config",
            &kube::api::Patch::Merge(json!({"data": {"mode": "v2"}})),
            false,
        )
        .await
        .unwrap();
    set_image(&cluster, "web", "web:2").await;
    let ev = next(&mut rx).await;
    assert_eq!(
        (ev.revision, ev.initial, ev.rolled_back_by_rollbackd),
        (2, false, false),
        "{ev:?}"
    );
    assert_eq!(ev.images, vec![("app".to_string(), "web:2".to_string())]);
    let (_, h) = load(&cluster, &w).await.unwrap();
    assert_eq!(
        ev.at,
        h.find(2).unwrap().created,
        "the ReplicaSet's creation time"
    );
    assert_eq!(ev.snapshots, vec!["web-config.rollbackd-rev-2"]);
    assert!(
        cluster
            .get_opt(Kind::ConfigMap, NS, "web-config.rollbackd-rev-2")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        cluster
            .get_opt(Kind::ConfigMap, NS, "web-config.rollbackd-rev-1")
            .await
            .unwrap()
            .is_some()
    );
    quiet(&mut rx, 500).await; // exactly one event for the deploy

    let meta = ActionMeta {
        incident: "INC-W".into(),
        method: "quick".into(),
        step: "undo".into(),
        step_index: 0,
        reason: "test".into(),
        dry_run: false,
        expected_revision: None,
    };
    undo::undo(&cluster, &w, RevisionRef::Previous, &meta)
        .await
        .unwrap();
    let ev = next(&mut rx).await;
    assert_eq!(
        (ev.revision, ev.rolled_back_by_rollbackd),
        (3, true),
        "{ev:?}"
    );
    assert_eq!(ev.images[0].1, "web:1");

    // A human deploy after the rollback is a new deploy again.
    set_image(&cluster, "web", "web:4").await;
    let ev = next(&mut rx).await;
    assert_eq!(
        (ev.revision, ev.rolled_back_by_rollbackd),
        (4, false),
        "{ev:?}"
    );
    drop(watcher);

    // A new watcher rebuilds the current revision from the cluster.
    let (tx, mut rx) = mpsc::channel(16);
    let _watcher = DeployWatcher::start(cluster.clone(), std::slice::from_ref(&p), tx)
        .await
        .unwrap();
    let ev = next(&mut rx).await;
    assert!(ev.initial && ev.revision == 4, "{ev:?}");
    quiet(&mut rx, 300).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn kube_signals_count_restarts_oom_and_crashloop_from_the_cache() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1"], 2).await;
    deploy_history(&sim, &cluster, "api", &["api:1"], 2).await;
    rolled_out(&cluster, "web").await;
    let p = policy(
        vec![
            workload("web", "web", WorkloadRole::Primary),
            workload("api", "api", WorkloadRole::Coordinated),
        ],
        vec![],
        verification(),
    );
    let (tx, mut rx) = mpsc::channel(16);
    let watcher = DeployWatcher::start(cluster.clone(), std::slice::from_ref(&p), tx)
        .await
        .unwrap();
    next(&mut rx).await;
    next(&mut rx).await;
    eventually("healthy signals", 10, || async {
        watcher
            .kube_signals("web")
            .is_some_and(|s| s.available_replicas == 2 && s.restarts == 0)
    })
    .await;
    assert!(watcher.kube_signals("nope").is_none());
    // the evaluation cycle's snapshot (which keeps signals while a workload's objects keep
    // their resourceVersions) must follow every change below
    let agent = p.agent.id.clone();
    let snap = |id: &str| watcher.kube_snapshot().of(&agent, id);
    assert_eq!(snap("web"), watcher.kube_signals("web"));

    sim.inject_fault("web:oom", Fault::OomKilled);
    set_image(&cluster, "web", "web:oom").await;
    sim.inject_fault("api:crash", Fault::CrashLoop);
    set_image(&cluster, "api", "api:crash").await;
    eventually("oom and crashloop counted", 10, || async {
        let w = snap("web").unwrap();
        let a = snap("api").unwrap();
        w.oom_kills >= 1
            && w.restarts >= 1
            && w.crashlooping_pods >= 1
            && a.crashlooping_pods >= 1
            && a.restarts >= 1
            && a.oom_kills == 0
    })
    .await;
    let w = snap("web").unwrap();
    assert_eq!(Some(&w), watcher.kube_signals("web").as_ref());
    assert_eq!(w.image_pull_backoff, 0);
    assert_eq!(w.rollout_stalled, 0);

    // An un-pullable image with a 1 s progress deadline: ImagePullBackOff and stalled.
    sim.inject_fault("api:pull", Fault::ImagePullBackOff);
    cluster
        .patch(
            Kind::Deployment,
            NS,
            "api",
            &kube::api::Patch::Strategic(json!({"spec": {"progressDeadlineSeconds": 1,
                "template": {"spec": {"containers": [{"name": "app", "image": "api:pull"}]}}}})),
            false,
        )
        .await
        .unwrap();
    eventually("image pull backoff and stalled", 15, || async {
        let a = snap("api").unwrap();
        a.image_pull_backoff >= 1 && a.rollout_stalled == 1
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn argo_rollouts_are_watched_by_their_own_revision_annotation() {
    let (sim, cluster) = start().await;
    sim.create(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "shop", "namespace": NS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "shop"}},
                 "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
                 "template": {"metadata": {"labels": {"app": "shop"}},
                              "spec": {"containers": [{"name": "app", "image": "shop:1"}]}}}
    }))
    .unwrap();
    let mut w = workload("shop", "shop", WorkloadRole::Primary);
    w.kind = rollbackd_core::policy::WorkloadKind::Rollout;
    eventually("revision 1", 10, || async {
        load(&cluster, &w)
            .await
            .is_ok_and(|(_, h)| h.current().is_some())
    })
    .await;
    let p = policy(vec![w.clone()], vec![], verification());
    let (tx, mut rx) = mpsc::channel(16);
    let watcher = DeployWatcher::start(cluster.clone(), std::slice::from_ref(&p), tx)
        .await
        .unwrap();
    let ev = next(&mut rx).await;
    assert!(ev.initial && ev.revision == 1, "{ev:?}");
    cluster
        .patch(Kind::Rollout, NS, "shop",
            &kube::api::Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop:2"}]}}}})),
            false)
        .await
        .unwrap();
    let ev = next(&mut rx).await;
    assert_eq!(
        (ev.revision, ev.initial, ev.images[0].1.as_str()),
        (2, false, "shop:2"),
        "{ev:?}"
    );
    eventually("signals from the Rollout's pods", 10, || async {
        watcher
            .kube_signals("shop")
            .is_some_and(|s| s.available_replicas >= 1)
    })
    .await;
    sim.shutdown().await;
}

/// Workload ids are unique per policy only: two agents naming different Deployments with
/// the same id get each its own kube signals.
#[tokio::test]
async fn kube_signals_are_per_agent_when_workload_ids_collide() {
    let (sim, cluster) = start().await;
    sim.create(deployment("waste-heat", "img:1", 1)).unwrap();
    sim.create(deployment("heatreclaim", "img:1", 3)).unwrap();
    rolled_out(&cluster, "waste-heat").await;
    rolled_out(&cluster, "heatreclaim").await;
    let mut a = (*policy(
        vec![
            workload("gl-006", "waste-heat", WorkloadRole::Coordinated),
            workload("gl-001", "heatreclaim", WorkloadRole::Primary),
        ],
        vec![],
        verification(),
    ))
    .clone();
    a.agent.id = "GL-001".into();
    let mut b = (*policy(
        vec![workload("gl-006", "heatreclaim", WorkloadRole::Primary)],
        vec![],
        verification(),
    ))
    .clone();
    b.agent.id = "GL-006".into();
    let (tx, _rx) = mpsc::channel(64);
    let watcher = DeployWatcher::start(
        cluster.clone(),
        &[std::sync::Arc::new(a), std::sync::Arc::new(b)],
        tx,
    )
    .await
    .unwrap();
    eventually("both caches", 10, || async {
        watcher
            .kube_signals_of("GL-006", "gl-006")
            .is_some_and(|s| s.available_replicas == 3)
            && watcher
                .kube_signals_of("GL-001", "gl-006")
                .is_some_and(|s| s.available_replicas == 1)
    })
    .await;
    assert!(watcher.kube_signals_of("GL-009", "gl-006").is_none());
}

/// Issue 12 item 4: rollbackd's own revisions are recognised by what its annotation says
/// it wrote, not by "the revision after the one it acted on". Here a human deploys right
/// after rollbackd's undo, before the deployment controller syncs: the controller makes ONE
/// new revision (3) from the human's template. Revision 3 is the human's deploy, although
/// it is "rollbackd's from_revision + 1".
#[tokio::test]
async fn a_human_deploy_landing_right_after_rollbackds_undo_is_not_rollbackds() {
    use rollbackd_sim::{SimConfig, Simulator};
    let config = SimConfig {
        tick: Duration::from_millis(400),
        ..SimConfig::default()
    };
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let cluster = rollbackd::cluster::Cluster::new(client_for(&sim))
        .with_call_timeout(Duration::from_secs(5));
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], 1).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    let p = policy(vec![w.clone()], vec![], verification());
    let (tx, mut rx) = mpsc::channel(16);
    let _watcher = DeployWatcher::start(cluster.clone(), std::slice::from_ref(&p), tx)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await.revision, 2);
    let mut meta = meta("INC-H", "undo");
    meta.expected_revision = Some(2);
    undo::undo(&cluster, &w, RevisionRef::Previous, &meta)
        .await
        .unwrap();
    set_image(&cluster, "web", "web:4").await;
    let ev = next(&mut rx).await;
    assert_eq!(ev.images[0].1, "web:4", "one revision, the human's: {ev:?}");
    assert!(
        !ev.rolled_back_by_rollbackd,
        "the human's deploy taken for rollbackd's rollback: {ev:?}"
    );
    sim.shutdown().await;
}

/// `created_by_rollbackd` reads what rollbackd's record says it wrote: the template (its
/// digest) and, for an undo, the restored ReplicaSet's hash. "from_revision + 1" alone
/// (an older record, or any record whose template is no longer the workload's) is not proof.
#[test]
fn rollbackds_revision_is_the_template_its_record_names() {
    use rollbackd::cluster::annotate::{LAST_ACTION, LastAction, template_digest};
    use rollbackd::watcher::created_by_rollbackd;
    let template = json!({"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "app", "image": "web:1"}]}});
    let owner = |record: &LastAction, image: &str| {
        let mut t = template.clone();
        t["spec"]["containers"][0]["image"] = json!(image);
        json!({"metadata": {"annotations": {LAST_ACTION: record.to_annotation()}},
               "spec": {"template": t}})
    };
    let mut record = LastAction::new(&meta("INC-1", "undo"), "undo");
    record.from_revision = Some(2);
    record.to_revision = Some(1);
    // An older record (no digest): not recognised.
    assert!(!created_by_rollbackd(&owner(&record, "web:1"), Some("h1")));
    record.template_digest = Some(template_digest(&template));
    record.template_hash = Some("h1".into());
    assert!(created_by_rollbackd(&owner(&record, "web:1"), Some("h1")));
    // The current ReplicaSet is another one, or the workload runs someone else's template.
    assert!(!created_by_rollbackd(&owner(&record, "web:1"), Some("h4")));
    assert!(!created_by_rollbackd(&owner(&record, "web:4"), Some("h1")));
    // A scale writes no template: never a revision of rollbackd's.
    let mut scale = LastAction::new(&meta("INC-1", "scale"), "scale");
    scale.template_digest = Some(template_digest(&template));
    assert!(!created_by_rollbackd(&owner(&scale, "web:1"), None));
}

/// Issue 12 item 9: with the API server gone every watch fails; the errors are counted,
/// and once the watches have failed for longer than the policy's `stale_after` the cached
/// objects give no kube signals (no data) instead of their last values.
#[tokio::test]
async fn failing_watches_are_counted_and_their_signals_go_stale() {
    use rollbackd::health::Supervisor;
    use rollbackd::metrics::Metrics;
    use std::sync::Arc;

    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1"], 2).await;
    rolled_out(&cluster, "web").await;
    let p = policy(
        vec![workload("web", "web", WorkloadRole::Primary)],
        vec![],
        verification(),
    );
    let stale_after = p.window.stale_after;
    let metrics = Arc::new(Metrics::new());
    let supervisor = Supervisor {
        metrics: metrics.clone(),
        ..Supervisor::default()
    };
    let (tx, mut rx) = mpsc::channel(16);
    let watcher = DeployWatcher::start_supervised(
        cluster.clone(),
        std::slice::from_ref(&p),
        tx,
        supervisor.clone(),
    )
    .await
    .unwrap();
    next(&mut rx).await;
    let agent = p.agent.id.clone();
    eventually("signals from the caches", 10, || async {
        watcher
            .kube_snapshot()
            .of(&agent, "web")
            .is_some_and(|s| s.available_replicas == 2)
    })
    .await;

    sim.shutdown().await;
    eventually("watch errors counted", 20, || async {
        ["pods", "replicasets", "deployments"]
            .iter()
            .all(|r| metrics.counter("rollbackd_watch_errors_total", &[r]) >= 1.0)
    })
    .await;
    let now = chrono::Utc::now();
    assert!(
        watcher.kube_snapshot_at(now).of(&agent, "web").is_some(),
        "within stale_after the cached view still counts"
    );
    let later = now + stale_after + chrono::TimeDelta::seconds(1);
    assert_eq!(
        watcher.kube_snapshot_at(later).of(&agent, "web"),
        None,
        "past stale_after a failing watch's cache is no data"
    );
    assert!(
        supervisor.health.is_healthy(),
        "a failing watch retries; its task runs on"
    );
}
