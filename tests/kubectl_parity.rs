//! rollbackd's undo against `kubectl rollout undo` on identical simulators: same template,
//! same annotations (minus rollbackd's own), same ReplicaSet revisions.

mod cluster_support;

use std::path::Path;

use cluster_support::*;
use rollbackd::cluster::annotate::ActionOutcome;
use rollbackd::cluster::history::load;
use rollbackd::cluster::{Cluster, Kind, undo};
use rollbackd::policy::{RevisionRef, WorkloadRole};
use rollbackd::sim::SimHandle;
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
        undo::comparable_template(&da["spec"]["template"]),
        undo::comparable_template(&db["spec"]["template"]),
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
