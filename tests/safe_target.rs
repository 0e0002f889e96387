//! Issue 12 item 4: rollbackd never "rolls back" to a revision it already rolled back as
//! bad (Flagger #1931), "previous" skips such revisions and says so, and a revision that
//! lived through its window is marked verified so `last_known_good` works without a
//! previous rollback.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use cluster_support::*;
use kube::api::Patch;
use rollbackd::cluster::annotate::{ActionMeta, mark_revision_verified};
use rollbackd::cluster::history::load;
use rollbackd::cluster::{ClusterError, Kind, image, undo};
use rollbackd_core::policy::{ImageRef, RevisionRef, WorkloadRole};
use serde_json::json;

fn incident(id: &str, revision: u64) -> ActionMeta {
    let mut m = meta(id, "undo");
    m.expected_revision = Some(revision);
    m
}

fn no_safe_target(err: &ClusterError) -> String {
    match err {
        ClusterError::NoSafeTarget { reason, .. } => reason.clone(),
        other => panic!("expected NoSafeTarget, got {other:?}"),
    }
}

#[tokio::test]
async fn previous_is_never_a_revision_rollbackd_rolled_back_as_bad() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], 1).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    // INC-A: revision 2 (web:2) is bad; rollbackd restores web:1 as revision 3.
    undo::undo(&cluster, &w, RevisionRef::Previous, &incident("INC-A", 2))
        .await
        .unwrap();
    at_revision(&cluster, "web", 3).await;
    let (_, h) = load(&cluster, &w).await.unwrap();
    assert_eq!(
        h.find(2).unwrap().rolled_back_as_bad.as_deref(),
        Some("INC-A"),
        "the bad revision's ReplicaSet is marked"
    );
    // INC-B: revision 3 breaks too. kubectl's "previous" is revision 2, the broken web:2:
    // rollbackd refuses instead of rolling back to it, and sends nothing.
    let before = count_requests(&sim, "PATCH", "/deployments/web");
    let err = undo::undo(&cluster, &w, RevisionRef::Previous, &incident("INC-B", 3))
        .await
        .unwrap_err();
    let reason = no_safe_target(&err);
    assert!(
        reason.contains("revision 2") && reason.contains("INC-A"),
        "{reason}"
    );
    assert_eq!(err.metric_label(), "no_safe_target");
    let err = image::set_image(
        &cluster,
        &w,
        None,
        &ImageRef::Previous,
        &incident("INC-B", 3),
    )
    .await
    .unwrap_err();
    no_safe_target(&err);
    let err = undo::undo(
        &cluster,
        &w,
        RevisionRef::Revision(2),
        &incident("INC-B", 3),
    )
    .await
    .unwrap_err();
    no_safe_target(&err);
    assert_eq!(count_requests(&sim, "PATCH", "/deployments/web"), before);
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    assert_eq!(image_of(&d), "web:1");
    sim.shutdown().await;
}

#[tokio::test]
async fn previous_skips_bad_revisions_to_the_newest_earlier_one_and_says_so() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2", "web:3"], 1).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    // INC-A rolls the bad web:3 back to web:2 (revision 4); history is now 1, 3 (bad), 4.
    undo::undo(&cluster, &w, RevisionRef::Previous, &incident("INC-A", 3))
        .await
        .unwrap();
    at_revision(&cluster, "web", 4).await;
    // INC-B on revision 4: the newest earlier revision not marked bad is 1 (web:1).
    let (u, o) = undo::undo(&cluster, &w, RevisionRef::Previous, &incident("INC-B", 4))
        .await
        .unwrap();
    assert_eq!((u.from_revision, u.to_revision), (4, 1));
    assert_eq!(u.skipped_bad, vec![3]);
    assert_eq!(
        o.detail()["skipped_bad"],
        json!([3]),
        "the step output says so"
    );
    at_revision(&cluster, "web", 5).await;
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    assert_eq!(image_of(&d), "web:1");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_revision_marked_verified_is_last_known_good_without_a_previous_rollback() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2", "web:3"], 1).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    // Revision 1 lived through its window; revision 2 was never judged.
    let rs = mark_revision_verified(&cluster, &w, 1).await.unwrap();
    let (_, h) = load(&cluster, &w).await.unwrap();
    assert_eq!(rs, h.find(1).unwrap().replicaset);
    assert!(h.find(1).unwrap().verified && !h.find(2).unwrap().verified);
    let (u, _) = undo::undo(
        &cluster,
        &w,
        RevisionRef::LastKnownGood,
        &incident("INC-V", 3),
    )
    .await
    .unwrap();
    assert_eq!(u.to_revision, 1);
    at_revision(&cluster, "web", 4).await;
    assert_eq!(
        image_of(&cluster.get(Kind::Deployment, NS, "web").await.unwrap()),
        "web:1"
    );
    // A revision that is not in the history cannot be marked.
    let err = mark_revision_verified(&cluster, &w, 99).await.unwrap_err();
    assert!(matches!(err, ClusterError::RevisionNotFound(99)), "{err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_verified_revision_later_rolled_back_as_bad_is_not_last_known_good() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2", "web:3"], 1).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    mark_revision_verified(&cluster, &w, 2).await.unwrap();
    // web:3 is rolled back to the verified web:2 (revision 4), and then revision 4 (web:2)
    // is itself rolled back as bad.
    undo::undo(&cluster, &w, RevisionRef::Previous, &incident("INC-1", 3))
        .await
        .unwrap();
    at_revision(&cluster, "web", 4).await;
    undo::undo(
        &cluster,
        &w,
        RevisionRef::Revision(1),
        &incident("INC-2", 4),
    )
    .await
    .unwrap();
    at_revision(&cluster, "web", 5).await;
    let (_, h) = load(&cluster, &w).await.unwrap();
    let four = h.find(4).unwrap();
    assert!(four.verified && four.rolled_back_as_bad.as_deref() == Some("INC-2"));
    set_image(&cluster, "web", "web:6").await;
    at_revision(&cluster, "web", 6).await;
    let err = undo::undo(
        &cluster,
        &w,
        RevisionRef::LastKnownGood,
        &incident("INC-3", 6),
    )
    .await
    .unwrap_err();
    let reason = no_safe_target(&err);
    assert!(
        reason.contains("revision 4") && reason.contains("INC-2"),
        "{reason}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_bad_mark_copied_onto_a_new_replicaset_does_not_count() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], 1).await;
    let w = workload("web", "web", WorkloadRole::Primary);
    undo::undo(&cluster, &w, RevisionRef::Previous, &incident("INC-A", 2))
        .await
        .unwrap();
    at_revision(&cluster, "web", 3).await;
    let (_, h) = load(&cluster, &w).await.unwrap();
    let rs2 = cluster
        .get(Kind::ReplicaSet, NS, &h.find(2).unwrap().replicaset)
        .await
        .unwrap();
    // The mark reaches the Deployment (e.g. a human's `kubectl rollout undo` copies a
    // ReplicaSet's annotations); the controller then copies it onto every new ReplicaSet.
    let ann = rs2["metadata"]["annotations"].as_object().unwrap().clone();
    let copied: serde_json::Map<String, serde_json::Value> = ann
        .into_iter()
        .filter(|(k, _)| k.starts_with("rollbackd.io/rolled-back-as-bad"))
        .collect();
    assert!(!copied.is_empty(), "RS 2 carries the mark: {rs2}");
    cluster
        .patch(
            Kind::Deployment,
            NS,
            "web",
            &Patch::Merge(json!({"metadata": {"annotations": copied}})),
            false,
        )
        .await
        .unwrap();
    set_image(&cluster, "web", "web:4").await;
    at_revision(&cluster, "web", 4).await;
    set_image(&cluster, "web", "web:5").await;
    at_revision(&cluster, "web", 5).await;
    let (_, h) = load(&cluster, &w).await.unwrap();
    assert_eq!(
        h.find(4).unwrap().rolled_back_as_bad,
        None,
        "copied, not earned"
    );
    let (u, _) = undo::undo(&cluster, &w, RevisionRef::Previous, &incident("INC-C", 5))
        .await
        .unwrap();
    assert_eq!(u.to_revision, 4);
    sim.shutdown().await;
}

/// A coordinated method (GL-001's) reaching a workload that rollbackd already rolled back
/// for its own incident leaves it on the revision rollbackd restored: every earlier one was
/// rolled back as bad, and rolling "back" to it would undo the fix. The incident's own
/// workload in that state is an error instead (`previous_is_never_…` above).
#[tokio::test]
async fn a_coordinated_undo_leaves_a_workload_rollbackd_already_restored() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], 1).await;
    let w = workload("web", "web", WorkloadRole::Coordinated);
    undo::undo(&cluster, &w, RevisionRef::Previous, &incident("INC-A", 2))
        .await
        .unwrap();
    at_revision(&cluster, "web", 3).await;
    let before = count_requests(&sim, "PATCH", "/deployments/web");
    // another incident's coordinated step: no expected revision for this workload
    let (outcome, action) = undo::undo(&cluster, &w, RevisionRef::Previous, &meta("INC-C", "undo"))
        .await
        .unwrap();
    match action {
        rollbackd::cluster::annotate::ActionOutcome::Skipped { reason, .. } => assert!(
            reason.contains("already on revision 3, which rollbackd restored"),
            "{reason}"
        ),
        other => panic!("expected a skip, got {other:?}"),
    }
    assert_eq!((outcome.from_revision, outcome.to_revision), (3, 3));
    // set_image "previous" too
    let action = image::set_image(
        &cluster,
        &w,
        None,
        &ImageRef::Previous,
        &meta("INC-C", "set_image"),
    )
    .await
    .unwrap();
    assert!(
        matches!(&action, rollbackd::cluster::annotate::ActionOutcome::Skipped { reason, .. }
            if reason.contains("which rollbackd restored")),
        "{action:?}"
    );
    assert_eq!(count_requests(&sim, "PATCH", "/deployments/web"), before);
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    assert_eq!(image_of(&d), "web:1");
    sim.shutdown().await;
}
