//! Issue 12 item 14: every mutating step writes with a precondition, and a deploy that lands
//! between a step's read and its write is never overwritten. The simulator lands the
//! competing deploy just before the step's PATCH (`SimHandle::race_next_write`).

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use std::collections::BTreeMap;

use cluster_support::*;
use rollbackd::cluster::annotate::{ActionMeta, LastAction};
use rollbackd::cluster::{ClusterError, Kind, configmap, image, restart, scale, snapshot, undo};
use rollbackd_core::policy::{ImageRef, RevisionRef, WorkloadRole};
use rollbackd_sim::SimHandle;
use serde_json::{Value, json};

/// A human's `kubectl set image deployment/web app=<image>`, as a strategic merge patch.
fn human_deploy(image: &str) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
}

/// The incident's step on revision 2 of `web` (web:1 → web:2, the bad deploy).
fn incident_meta(step: &str) -> ActionMeta {
    let mut m = meta("INC-RACE", step);
    m.expected_revision = Some(2);
    m
}

/// `web` at revision 2 (web:2) with a human's deploy of web:3 queued to land just before
/// rollbackd's next write.
async fn bad_deploy_then_a_racing_fix(replicas: i64) -> (SimHandle, rollbackd::cluster::Cluster) {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], replicas).await;
    sim.race_next_write("apps/v1", "Deployment", NS, "web", human_deploy("web:3"))
        .unwrap();
    (sim, cluster)
}

/// The fresh deploy survived: web:3 rolls out as revision 3 and rollbackd wrote nothing.
async fn fresh_deploy_survives(cluster: &rollbackd::cluster::Cluster) {
    at_revision(cluster, "web", 3).await;
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    assert_eq!(image_of(&d), "web:3", "the fresh deploy was overwritten");
    assert!(
        LastAction::read(&d).is_none(),
        "rollbackd wrote to the fresh deploy"
    );
}

fn assert_superseded(err: &ClusterError) {
    match err {
        ClusterError::Superseded { expected, .. } => assert_eq!(*expected, 2, "{err}"),
        other => panic!("expected Superseded, got {other:?}"),
    }
    assert_eq!(err.metric_label(), "superseded");
}

#[tokio::test]
async fn undo_never_overwrites_a_deploy_that_lands_between_its_read_and_its_write() {
    let (sim, cluster) = bad_deploy_then_a_racing_fix(1).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    let err = undo::undo(&cluster, &w, RevisionRef::Previous, &incident_meta("undo"))
        .await
        .unwrap_err();
    assert_superseded(&err);
    assert!(err.to_string().contains("web:3"), "{err}");
    fresh_deploy_survives(&cluster).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn set_image_never_overwrites_a_racing_deploy() {
    let (sim, cluster) = bad_deploy_then_a_racing_fix(1).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    let err = image::set_image(
        &cluster,
        &w,
        None,
        &ImageRef::Previous,
        &incident_meta("image"),
    )
    .await
    .unwrap_err();
    assert_superseded(&err);
    fresh_deploy_survives(&cluster).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn restart_and_scale_never_act_on_a_racing_deploy() {
    let (sim, cluster) = bad_deploy_then_a_racing_fix(2).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    let err = restart::restart(&cluster, &w, &incident_meta("restart"))
        .await
        .unwrap_err();
    assert_superseded(&err);
    fresh_deploy_survives(&cluster).await;
    // The workload runs revision 3 now: scaling it for the incident on revision 2 is refused
    // before any write.
    let err = scale::scale(&cluster, &w, Some(0), &incident_meta("scale"))
        .await
        .unwrap_err();
    assert_superseded(&err);
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    assert_eq!(d["spec"]["replicas"], 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn without_an_incident_revision_the_revision_read_first_is_the_one_protected() {
    let (sim, cluster) = bad_deploy_then_a_racing_fix(1).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    let err = undo::undo(
        &cluster,
        &w,
        RevisionRef::Previous,
        &meta("INC-RACE", "undo"),
    )
    .await
    .unwrap_err();
    match &err {
        ClusterError::Superseded { expected, .. } => assert_eq!(*expected, 2),
        other => panic!("expected Superseded, got {other:?}"),
    }
    fresh_deploy_survives(&cluster).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_step_after_the_incidents_own_undo_is_not_superseded() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], 2).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    undo::undo(&cluster, &w, RevisionRef::Previous, &incident_meta("undo"))
        .await
        .unwrap();
    at_revision(&cluster, "web", 3).await;
    // Revision 3 is rollbackd's own undo for this incident: later steps still act.
    restart::restart(&cluster, &w, &incident_meta("restart"))
        .await
        .unwrap();
    at_revision(&cluster, "web", 4).await;
    scale::scale(&cluster, &w, Some(3), &incident_meta("scale"))
        .await
        .unwrap();
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    assert_eq!(
        (image_of(&d).as_str(), &d["spec"]["replicas"]),
        ("web:1", &json!(3))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_configmap_restore_rereads_after_a_racing_write_and_still_matches_its_snapshot() {
    let (sim, cluster) = start().await;
    sim.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": NS}, "data": {"mode": "safe"}}))
        .unwrap();
    let mut w = workload("web", "web", WorkloadRole::Primary);
    w.configmaps = vec!["cfg".into()];
    snapshot::snapshot_configmaps(&cluster, &w, 1)
        .await
        .unwrap();
    let data: BTreeMap<String, String> = [("mode".to_string(), "fast".to_string())].into();
    configmap::patch_configmap(&cluster, NS, "cfg", &data, &meta("INC-CM", "patch"))
        .await
        .unwrap();
    // Someone adds a key between rollbackd's read and its write.
    sim.race_next_write("v1", "ConfigMap", NS, "cfg", json!({"data": {"late": "x"}}))
        .unwrap();
    configmap::restore_configmap(&cluster, NS, "cfg", 1, &meta("INC-CM", "restore"))
        .await
        .unwrap();
    let cm = cluster.get(Kind::ConfigMap, NS, "cfg").await.unwrap();
    assert_eq!(
        cm["data"],
        json!({"mode": "safe"}),
        "restored from a stale read"
    );
    sim.shutdown().await;
}

/// The record rollbackd writes with a template change names the template the API server
/// stored, so the watcher can recognise rollbackd's own revision (issue 12 item 4).
#[tokio::test]
async fn the_record_of_a_template_change_names_the_stored_template() {
    use rollbackd::cluster::annotate::template_digest;
    use rollbackd::watcher::created_by_rollbackd;
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], 1).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    let recorded = |d: &Value| LastAction::read(d).and_then(|r| r.template_digest);
    image::set_image(
        &cluster,
        &w,
        None,
        &ImageRef::Literal("web:3".into()),
        &meta("INC-T", "img"),
    )
    .await
    .unwrap();
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    assert_eq!(recorded(&d), Some(template_digest(&d["spec"]["template"])));
    assert!(created_by_rollbackd(&d, None));
    at_revision(&cluster, "web", 3).await;
    restart::restart(&cluster, &w, &meta("INC-T", "restart"))
        .await
        .unwrap();
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    assert_eq!(recorded(&d), Some(template_digest(&d["spec"]["template"])));
    sim.shutdown().await;
}

/// An abort meant for the incident's canary must not abort someone's newer rollout.
#[tokio::test]
async fn argo_abort_never_aborts_a_racing_rollout() {
    use rollbackd::cluster::argo;
    use rollbackd_core::policy::WorkloadKind;
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
    let rev = |v: &Value| {
        v.pointer("/metadata/annotations/rollout.argoproj.io~1revision")
            .and_then(Value::as_str)
            .unwrap_or("0")
            .to_string()
    };
    eventually("revision 1", 10, || async {
        rev(&cluster.get(Kind::Rollout, NS, "shop").await.unwrap()) == "1"
    })
    .await;
    let mut w = workload("shop", "shop", WorkloadRole::Primary);
    w.kind = WorkloadKind::Rollout;
    sim.race_next_write(
        "argoproj.io/v1alpha1",
        "Rollout",
        NS,
        "shop",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop:2"}]}}}}),
    )
    .unwrap();
    let mut m = meta("INC-ARGO", "abort");
    m.expected_revision = Some(1);
    let err = argo::argo_abort(&cluster, &w, &m).await.unwrap_err();
    assert!(
        matches!(err, ClusterError::Superseded { expected: 1, .. }),
        "{err}"
    );
    let ro = cluster.get(Kind::Rollout, NS, "shop").await.unwrap();
    assert_ne!(
        ro["status"]["abort"],
        json!(true),
        "the newer rollout was aborted"
    );
    assert!(LastAction::read(&ro).is_none());
    sim.shutdown().await;
}
