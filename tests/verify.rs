//! kubectl rollout status rules (pure table), verification of a good rollback, and the
//! "Rollback Stuck" path: recovery once, then escalate, never a second undo.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::TimeDelta;
use cluster_support::*;
use rollbackd::cluster::Kind;
use rollbackd::cluster::backup::NoBackup;
use rollbackd::cluster::history::load;
use rollbackd::cluster::rollout_status::{RolloutStatus, deployment_status};
use rollbackd::cluster::views::DeploymentView;
use rollbackd::executor::{Executor, MemoryJournal, RunContext};
use rollbackd::verify::{StaticChecks, Verifier};
use rollbackd_core::policy::{
    Bound, Condition, HealthCheck, RevisionRef, StepAction, WorkloadRole,
};
use rollbackd_sim::{Fault, SimHandle};
use serde_json::json;

fn d(
    generation: i64,
    observed: i64,
    spec_replicas: Option<i64>,
    (replicas, updated, available): (i64, i64, i64),
    progressing_reason: Option<&str>,
) -> DeploymentView {
    let mut v = json!({
        "metadata": {"name": "x", "generation": generation},
        "spec": {"selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}},
        "status": {"observedGeneration": observed, "replicas": replicas,
                   "updatedReplicas": updated, "availableReplicas": available}
    });
    if let Some(r) = spec_replicas {
        v["spec"]["replicas"] = json!(r);
    }
    if let Some(reason) = progressing_reason {
        v["status"]["conditions"] =
            json!([{"type": "Progressing", "status": "False", "reason": reason}]);
    }
    serde_json::from_value(v).unwrap()
}

#[test]
fn rollout_status_follows_kubectl_rule_for_rule() {
    use RolloutStatus::*;
    let w = |s: &str| {
        Waiting(format!(
            "Waiting for deployment \"x\" rollout to finish: {s}"
        ))
    };
    let cases = [
        (
            d(2, 1, Some(3), (3, 3, 3), None),
            Waiting("Waiting for deployment spec update to be observed...".into()),
        ),
        // The deadline counts only once the generation is observed.
        (
            d(2, 1, Some(3), (3, 1, 1), Some("ProgressDeadlineExceeded")),
            Waiting("Waiting for deployment spec update to be observed...".into()),
        ),
        (
            d(2, 2, Some(3), (3, 1, 1), Some("ProgressDeadlineExceeded")),
            Failed("deployment \"x\" exceeded its progress deadline".into()),
        ),
        // Other Progressing reasons are not failures.
        (
            d(2, 2, Some(3), (3, 1, 1), Some("ReplicaSetUpdated")),
            w("1 out of 3 new replicas have been updated..."),
        ),
        (
            d(1, 1, Some(3), (4, 1, 1), None),
            w("1 out of 3 new replicas have been updated..."),
        ),
        (
            d(1, 3, Some(3), (4, 3, 3), None),
            w("1 old replicas are pending termination..."),
        ),
        (
            d(1, 1, Some(3), (3, 3, 2), None),
            w("2 of 3 updated replicas are available..."),
        ),
        (
            d(1, 1, Some(3), (3, 3, 3), None),
            Done("deployment \"x\" successfully rolled out".into()),
        ),
        // No spec.replicas: the first rule is skipped, as kubectl's nil check does.
        (
            d(1, 1, None, (0, 0, 0), None),
            Done("deployment \"x\" successfully rolled out".into()),
        ),
        (
            d(1, 1, None, (2, 1, 1), None),
            w("1 old replicas are pending termination..."),
        ),
        (
            d(1, 1, Some(0), (0, 0, 0), None),
            Done("deployment \"x\" successfully rolled out".into()),
        ),
        // No status at all.
        (
            serde_json::from_value(json!({"metadata": {"name": "x", "generation": 1}})).unwrap(),
            Waiting("Waiting for deployment spec update to be observed...".into()),
        ),
    ];
    for (i, (dep, want)) in cases.into_iter().enumerate() {
        assert_eq!(deployment_status(&dep), want, "case {i}");
    }
}

async fn health_server(status: u16) -> String {
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(
            move || async move { axum::http::StatusCode::from_u16(status).unwrap() },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/health")
}

fn undo_patches(sim: &SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.content_type == "application/json-patch+json")
        .count()
}

fn error_rate_check() -> Condition {
    Condition {
        signal: "error_rate".into(),
        lower: None,
        upper: Some(Bound {
            value: 0.01,
            inclusive: false,
        }),
        equals: None,
        relative_to_baseline: false,
        held_for: None,
    }
}

#[tokio::test]
async fn a_good_rollback_verifies_and_marks_the_revision_verified() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], 2).await;
    let undo = method(
        "quick",
        vec![step("undo", &[], StepAction::Undo(RevisionRef::Previous))],
    );
    let mut v = verification();
    v.health = Some(HealthCheck {
        url: health_server(200).await,
        expect_status: 200,
    });
    v.checks = vec![error_rate_check()];
    let p = policy(
        vec![workload("web", "web", WorkloadRole::Primary)],
        vec![undo.clone()],
        v,
    );
    let ex = Executor::new(cluster.clone(), Arc::new(NoBackup));
    let journal = MemoryJournal::new();
    let ctx = RunContext::new("INC-V", p, "test");
    assert!(ex.run(&ctx, &undo, &journal).await.unwrap().succeeded());
    let hooks = StaticChecks {
        answers: BTreeMap::from([("error_rate".to_string(), true)]),
    };
    let out = Verifier::new(ex).verify(&ctx, &hooks, &journal).await;
    assert!(out.passed && !out.escalate, "{out:#?}");
    let names: Vec<&str> = out.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["rollout", "pods_ready_hold", "health", "error_rate"]
    );
    assert_eq!(
        out.checks[0].detail,
        "deployment \"web\" successfully rolled out"
    );
    assert!(out.recovery.is_none());
    let (_, h) = load(&cluster, &workload("web", "web", WorkloadRole::Primary))
        .await
        .unwrap();
    let cur = h.current().unwrap();
    assert_eq!(cur.number, 3);
    assert!(cur.verified, "current revision annotated verified");
    assert_eq!(
        out.verified_replicaset.as_deref(),
        Some(cur.replicaset.as_str())
    );
    assert!(!h.find(2).unwrap().verified);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_stuck_rollback_runs_recovery_once_then_escalates_without_a_second_undo() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], 2).await;
    sim.inject_fault("web:1", Fault::NeverReady);
    let undo = method(
        "quick",
        vec![step("undo", &[], StepAction::Undo(RevisionRef::Previous))],
    );
    let recover = method(
        "recover-stuck",
        vec![step("restart pods", &[], StepAction::Restart)],
    );
    let mut v = verification();
    v.rollout_timeout = TimeDelta::milliseconds(1500);
    v.recovery = Some("recover-stuck".into());
    let p = policy(
        vec![workload("web", "web", WorkloadRole::Primary)],
        vec![undo.clone(), recover],
        v,
    );
    let ex = Executor::new(cluster.clone(), Arc::new(NoBackup));
    let journal = MemoryJournal::new();
    let ctx = RunContext::new("INC-X", p, "test");
    assert!(ex.run(&ctx, &undo, &journal).await.unwrap().succeeded());
    assert_eq!(undo_patches(&sim), 1);
    let out = Verifier::new(ex)
        .verify(&ctx, &StaticChecks::default(), &journal)
        .await;
    assert!(!out.passed && out.escalate, "{out:#?}");
    let first = out.first_attempt.as_ref().unwrap();
    assert!(
        !first[0].passed && first[0].detail.contains("Waiting for deployment \"web\""),
        "{first:?}"
    );
    assert!(
        !first[1].passed && first[1].detail.contains("is not Ready"),
        "{first:?}"
    );
    let rec = out.recovery.as_ref().unwrap();
    assert_eq!(rec.method, "recover-stuck");
    assert_eq!(rec.steps.len(), 1);
    assert!(
        out.evidence
            .contains("recovery method recover-stuck ran once"),
        "{}",
        out.evidence
    );
    // Exactly one undo (the JSON Patch) and one restart (strategic merge by rollbackd).
    assert_eq!(undo_patches(&sim), 1, "no second undo");
    let restarts = sim
        .requests()
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.content_type == "application/strategic-merge-patch+json"
                && r.query.contains("fieldManager=rollbackd")
        })
        .count();
    assert_eq!(restarts, 1, "recovery ran exactly once");
    let (_, h) = load(&cluster, &workload("web", "web", WorkloadRole::Primary))
        .await
        .unwrap();
    assert!(
        h.revisions.iter().all(|r| !r.verified),
        "nothing marked verified"
    );
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    assert_eq!(image_of(&d), "web:1");
    sim.shutdown().await;
}

#[tokio::test]
async fn failing_health_or_signal_check_fails_verification_and_escalates_without_recovery() {
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1"], 1).await;
    let mut v = verification();
    v.health = Some(HealthCheck {
        url: health_server(503).await,
        expect_status: 200,
    });
    v.checks = vec![error_rate_check()];
    let p = policy(
        vec![workload("web", "web", WorkloadRole::Primary)],
        vec![],
        v,
    );
    let ctx = RunContext::new("INC-H", p, "test");
    let out = Verifier::new(Executor::new(cluster.clone(), Arc::new(NoBackup)))
        .verify(&ctx, &StaticChecks::default(), &MemoryJournal::new())
        .await;
    assert!(!out.passed && out.escalate);
    assert!(out.checks[0].passed && out.checks[1].passed);
    assert!(!out.checks[2].passed && out.checks[2].detail.contains("status 503"));
    assert!(!out.checks[3].passed && out.checks[3].detail.contains("no data"));
    assert!(out.evidence.contains("no recovery method"));
    sim.shutdown().await;
}
