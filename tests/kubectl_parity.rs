//! rollbackd's undo against `kubectl rollout undo` on identical simulators: same template,
//! same annotations (minus rollbackd's own), same ReplicaSet revisions.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use std::path::Path;

use cluster_support::*;
use rollbackd::cluster::annotate::ActionOutcome;
use rollbackd::cluster::history::{self, load};
use rollbackd::cluster::{Cluster, Kind, undo};
use rollbackd_core::policy::{RevisionRef, WorkloadRole};
use rollbackd_sim::SimHandle;
use serde_json::{Map, Value};

async fn kubectl(sim: &SimHandle, dir: &Path, args: &[&str]) -> (bool, String) {
    let kubeconfig = sim.kubeconfig(dir).unwrap();
    let out = tokio::process::Command::new("timeout")
        .arg("30")
        .arg("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(args)
        .output()
        .await
        .expect("run kubectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn annotations_without_ours(d: &Value) -> Map<String, Value> {
    d.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("rollbackd.io/"))
        .collect()
}

async fn revisions(cluster: &Cluster) -> Vec<(u64, String)> {
    let (_, h) = load(cluster, &workload("x", "x", WorkloadRole::Primary))
        .await
        .unwrap();
    h.revisions
        .iter()
        .map(|r| (r.number, r.images[0].1.clone()))
        .collect()
}

async fn assert_same(a: &Cluster, b: &Cluster) {
    let da = a.get(Kind::Deployment, NS, "x").await.unwrap();
    let db = b.get(Kind::Deployment, NS, "x").await.unwrap();
    // kubectl's Go structs send `"creationTimestamp": null` inside the template, which the
    // simulator stores verbatim; a null is an absent field, so compare with nulls pruned.
    assert_eq!(
        history::comparable_template(&da["spec"]["template"]),
        history::comparable_template(&db["spec"]["template"]),
        "templates"
    );
    assert_eq!(
        annotations_without_ours(&da),
        annotations_without_ours(&db),
        "annotations"
    );
    assert_eq!(
        revisions(a).await,
        revisions(b).await,
        "ReplicaSet revisions"
    );
}

#[tokio::test]
async fn undo_matches_kubectl_rollout_undo() {
    let (sim_k, kube_k) = start().await;
    let (sim_r, kube_r) = start().await;
    for (sim, c) in [(&sim_k, &kube_k), (&sim_r, &kube_r)] {
        deploy_history(sim, c, "x", &["x:1", "x:2", "x:3"], 2).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let w = workload("x", "x", WorkloadRole::Primary);

    // Default: the previous revision.
    let (ok, out) = kubectl(&sim_k, dir.path(), &["rollout", "undo", "deployment/x"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("deployment.apps/x rolled back"), "{out}");
    let (u, _) = undo::undo(&kube_r, &w, RevisionRef::Previous, &meta("INC-P", "undo"))
        .await
        .unwrap();
    assert_eq!((u.from_revision, u.to_revision), (3, 2));
    at_revision(&kube_k, "x", 4).await;
    at_revision(&kube_r, "x", 4).await;
    assert_same(&kube_k, &kube_r).await;
    assert_eq!(
        revisions(&kube_r).await,
        vec![(1, "x:1".into()), (3, "x:3".into()), (4, "x:2".into())]
    );

    // --to-revision=1.
    let (ok, out) = kubectl(
        &sim_k,
        dir.path(),
        &["rollout", "undo", "deployment/x", "--to-revision=1"],
    )
    .await;
    assert!(ok, "{out}");
    undo::undo(
        &kube_r,
        &w,
        RevisionRef::Revision(1),
        &meta("INC-P", "undo"),
    )
    .await
    .unwrap();
    at_revision(&kube_k, "x", 5).await;
    at_revision(&kube_r, "x", 5).await;
    assert_same(&kube_k, &kube_r).await;
    assert_eq!(
        revisions(&kube_r).await,
        vec![(3, "x:3".into()), (4, "x:2".into()), (5, "x:1".into())]
    );

    // Already there: both skip with the same words.
    let (ok, out) = kubectl(
        &sim_k,
        dir.path(),
        &["rollout", "undo", "deployment/x", "--to-revision=5"],
    )
    .await;
    assert!(ok, "{out}");
    let (_, o) = undo::undo(
        &kube_r,
        &w,
        RevisionRef::Revision(5),
        &meta("INC-P", "undo"),
    )
    .await
    .unwrap();
    let ActionOutcome::Skipped { reason, .. } = o else {
        panic!("{o:?}")
    };
    assert!(
        out.contains(&format!("skipped rollback ({reason})")),
        "kubectl: {out} / rollbackd: {reason}"
    );

    // Missing revision: the same message.
    let (ok, out) = kubectl(
        &sim_k,
        dir.path(),
        &["rollout", "undo", "deployment/x", "--to-revision=99"],
    )
    .await;
    assert!(!ok);
    let e = undo::undo(
        &kube_r,
        &w,
        RevisionRef::Revision(99),
        &meta("INC-P", "undo"),
    )
    .await
    .unwrap_err();
    assert!(
        out.contains(&format!("error: {e}")),
        "kubectl: {out} / rollbackd: {e}"
    );

    // kubectl reads the history rollbackd left.
    let (ok, out) = kubectl(&sim_r, dir.path(), &["rollout", "history", "deployment/x"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("REVISION"), "{out}");
    for n in ["3", "4", "5"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(n)),
            "revision {n} listed: {out}"
        );
    }
    let (ok, out) = kubectl(
        &sim_r,
        dir.path(),
        &["rollout", "status", "deployment/x", "--timeout=20s"],
    )
    .await;
    assert!(
        ok && out.contains("deployment \"x\" successfully rolled out"),
        "{out}"
    );
    sim_k.shutdown().await;
    sim_r.shutdown().await;
}

fn status_line(obj: &Value) -> String {
    let d: rollbackd::cluster::views::DeploymentView = serde_json::from_value(obj.clone()).unwrap();
    match rollbackd::cluster::rollout_status::deployment_status(&d) {
        rollbackd::cluster::rollout_status::RolloutStatus::Done(m)
        | rollbackd::cluster::rollout_status::RolloutStatus::Waiting(m) => m,
        rollbackd::cluster::rollout_status::RolloutStatus::Failed(m) => format!("error: {m}"),
    }
}

#[tokio::test]
async fn rollout_status_words_match_kubectl_on_a_stuck_rollout() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "x", &["x:1"], 2).await;
    rolled_out(&cluster, "x").await;
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = kubectl(
        &sim,
        dir.path(),
        &["rollout", "status", "deployment/x", "--watch=false"],
    )
    .await;
    assert!(ok, "{out}");
    let obj = cluster.get(Kind::Deployment, NS, "x").await.unwrap();
    assert_eq!(out.trim(), status_line(&obj));

    sim.inject_fault("x:stuck", rollbackd_sim::Fault::NeverReady);
    set_image(&cluster, "x", "x:stuck").await;
    at_revision(&cluster, "x", 2).await;
    // Let the stuck rollout settle (the surge pod exists and never gets ready).
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let before = cluster.get(Kind::Deployment, NS, "x").await.unwrap();
    let (_, out) = kubectl(
        &sim,
        dir.path(),
        &["rollout", "status", "deployment/x", "--watch=false"],
    )
    .await;
    let after = cluster.get(Kind::Deployment, NS, "x").await.unwrap();
    assert_eq!(status_line(&before), status_line(&after), "state settled");
    assert!(status_line(&before).starts_with("Waiting for deployment \"x\" rollout to finish"));
    assert_eq!(out.trim(), status_line(&before));

    // Past the progress deadline kubectl and rollbackd both fail with the same words.
    cluster
        .patch(
            Kind::Deployment,
            NS,
            "x",
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"progressDeadlineSeconds": 1}})),
            false,
        )
        .await
        .unwrap();
    eventually("deadline exceeded", 15, || async {
        status_line(&cluster.get(Kind::Deployment, NS, "x").await.unwrap()).starts_with("error:")
    })
    .await;
    let (ok, out) = kubectl(
        &sim,
        dir.path(),
        &["rollout", "status", "deployment/x", "--watch=false"],
    )
    .await;
    assert!(!ok);
    let obj = cluster.get(Kind::Deployment, NS, "x").await.unwrap();
    assert_eq!(out.trim(), status_line(&obj));
    assert_eq!(
        out.trim(),
        "error: deployment \"x\" exceeded its progress deadline"
    );
    sim.shutdown().await;
}
