//! The executor on a GL-001-style coordinated method against the simulator.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use cluster_support::*;
use futures::future::join_all;
use rollbackd::cluster::Kind;
use rollbackd::cluster::annotate::ActionMeta;
use rollbackd::cluster::backup::DirBackupSink;
use rollbackd::cluster::undo;
use rollbackd::executor::{Executor, MemoryJournal, RunContext, StepJournal, StepState};
use rollbackd_core::policy::{Method, Policy, RevisionRef, StepAction, WorkloadRole};
use rollbackd_sim::SimHandle;

const GROUPS: [&[&str]; 4] = [
    &["master"],
    &["b1", "b2", "b3", "b4"],
    &["c1", "c2"],
    &["h1", "h2"],
];

fn all_names() -> Vec<&'static str> {
    GROUPS.iter().flat_map(|g| g.iter().copied()).collect()
}

/// Every workload with two revisions (`<name>:1`, `<name>:2`), except those in `fresh`
/// which only have one.
async fn setup(sim: &SimHandle, cluster: &rollbackd::cluster::Cluster, fresh: &[&str]) {
    join_all(all_names().into_iter().map(|n| async move {
        let i1 = format!("{n}:1");
        let i2 = format!("{n}:2");
        if fresh.contains(&n) {
            deploy_history(sim, cluster, n, &[&i1], 1).await;
        } else {
            deploy_history(sim, cluster, n, &[&i1, &i2], 1).await;
        }
    }))
    .await;
}

fn coordinated(extra_wait_after_group2: bool) -> (Arc<Policy>, Method) {
    let workloads = all_names()
        .into_iter()
        .map(|n| {
            let role = if n == "master" {
                WorkloadRole::Primary
            } else {
                WorkloadRole::Coordinated
            };
            workload(n, n, role)
        })
        .collect();
    let mut steps = Vec::new();
    for (i, g) in GROUPS.iter().enumerate() {
        steps.push(step(
            &format!("{}/4 undo", i + 1),
            g,
            StepAction::Undo(RevisionRef::Previous),
        ));
        if i == 1 && extra_wait_after_group2 {
            steps.push(step(
                "pause",
                &["master"],
                StepAction::Wait(TimeDelta::seconds(3)),
            ));
        }
    }
    let m = method("coordinated", steps);
    (policy(workloads, vec![m.clone()], verification()), m)
}

fn executor(cluster: &rollbackd::cluster::Cluster, dir: &std::path::Path) -> Executor {
    Executor::new(cluster.clone(), Arc::new(DirBackupSink::new(dir)))
}

/// rollbackd's PATCHes of one Deployment (test set-ups patch with the default manager).
fn patch_times(sim: &SimHandle, name: &str) -> Vec<std::time::SystemTime> {
    sim.requests()
        .into_iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.query.contains("fieldManager=rollbackd")
                && r.path.ends_with(&format!("/deployments/{name}"))
        })
        .map(|r| r.at)
        .collect()
}

#[tokio::test]
async fn coordinated_groups_run_in_order_and_in_parallel_within_a_group() {
    let (sim, cluster) = start().await;
    setup(&sim, &cluster, &[]).await;
    let (p, m) = coordinated(false);
    let dir = tempfile::tempdir().unwrap();
    let ex = executor(&cluster, dir.path());
    let journal = MemoryJournal::new();
    let ctx = RunContext::new("INC-C", p, "error rate 40% after deploy");
    let out = ex.run(&ctx, &m, &journal).await.unwrap();
    assert!(out.succeeded(), "{out:#?}");
    assert_eq!(out.steps.len(), 9);
    // Order: every PATCH of group k precedes every PATCH of group k+1.
    let mut last_max = None;
    for g in GROUPS {
        let times: Vec<_> = g
            .iter()
            .map(|n| {
                let t = patch_times(&sim, n);
                assert_eq!(t.len(), 1, "{n} patched once");
                t[0]
            })
            .collect();
        let min = *times.iter().min().unwrap();
        if let Some(prev) = last_max {
            assert!(
                min >= prev,
                "group {g:?} started before the previous group finished"
            );
        }
        last_max = Some(*times.iter().max().unwrap());
    }
    // Parallel: in group 2, all four started before any finished.
    let g2: Vec<_> = out.steps.iter().filter(|s| s.index == 1).collect();
    assert_eq!(g2.len(), 4);
    let latest_start = g2.iter().map(|s| s.started_at.unwrap()).max().unwrap();
    let earliest_end = g2.iter().map(|s| s.finished_at.unwrap()).min().unwrap();
    assert!(
        latest_start <= earliest_end,
        "group 2 ran one after another"
    );
    for n in all_names() {
        let d = cluster.get(Kind::Deployment, NS, n).await.unwrap();
        assert_eq!(image_of(&d), format!("{n}:1"));
    }
    // Backups were taken before the first mutation.
    assert!(
        dir.path()
            .join("INC-C")
            .join("Deployment-default-b3.json")
            .exists()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_failure_in_group_two_stops_groups_three_and_four() {
    let (sim, cluster) = start().await;
    setup(&sim, &cluster, &["b3"]).await;
    let (p, m) = coordinated(false);
    let dir = tempfile::tempdir().unwrap();
    let ex = executor(&cluster, dir.path());
    let out = ex
        .run(
            &RunContext::new("INC-F", p, "test"),
            &m,
            &MemoryJournal::new(),
        )
        .await
        .unwrap();
    assert!(!out.succeeded());
    let f = out.failure().unwrap();
    assert_eq!(
        (f.index, f.workload.as_str(), f.kind.as_str()),
        (1, "b3", "undo")
    );
    assert!(
        matches!(&f.state, StepState::Failed(e) if e.contains("no previous revision")),
        "{f:?}"
    );
    for s in out.steps.iter().filter(|s| s.index >= 2) {
        assert_eq!(s.state, StepState::NotRun, "{s:?}");
    }
    for n in ["c1", "c2", "h1", "h2"] {
        assert!(patch_times(&sim, n).is_empty(), "{n} must not be touched");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn dry_run_mutates_nothing_but_reports_plans() {
    let (sim, cluster) = start().await;
    setup(&sim, &cluster, &[]).await;
    let (p, m) = coordinated(false);
    let before = sim.requests().len();
    let dir = tempfile::tempdir().unwrap();
    let ex = executor(&cluster, dir.path());
    let mut ctx = RunContext::new("INC-D", p, "test");
    ctx.dry_run = true;
    let journal = MemoryJournal::new();
    let out = ex.run(&ctx, &m, &journal).await.unwrap();
    assert_eq!(sim.requests().len(), before, "no mutating request");
    assert!(journal.records().is_empty(), "dry runs are not journaled");
    assert_eq!(out.steps.len(), 9);
    for s in &out.steps {
        let StepState::DryRun(plan) = &s.state else {
            panic!("{s:?}")
        };
        assert_eq!(plan["content_type"], "application/json-patch+json");
        assert_eq!(plan["patch"][0]["path"], "/spec/template");
        assert_eq!(plan["undo"]["to_revision"], 1);
    }
    assert!(!dir.path().join("INC-D").exists(), "no backup on dry run");
    sim.shutdown().await;
}

#[tokio::test]
async fn resume_after_the_executor_is_dropped_mid_method_runs_no_step_twice() {
    let (sim, cluster) = start().await;
    setup(&sim, &cluster, &[]).await;
    let (p, m) = coordinated(true);
    let dir = tempfile::tempdir().unwrap();
    let journal = MemoryJournal::new();
    let ctx = RunContext::new("INC-R", p.clone(), "test");
    {
        let ex = executor(&cluster, dir.path());
        let r = tokio::time::timeout(Duration::from_millis(1500), ex.run(&ctx, &m, &journal)).await;
        assert!(r.is_err(), "the run should still be in the 3 s pause");
    }
    for n in ["c1", "c2", "h1", "h2"] {
        assert!(
            patch_times(&sim, n).is_empty(),
            "{n} not reached before the drop"
        );
    }
    let ex = executor(&cluster, dir.path());
    let out = ex.run(&ctx, &m, &journal).await.unwrap();
    assert!(out.succeeded(), "{out:#?}");
    for n in all_names() {
        assert_eq!(patch_times(&sim, n).len(), 1, "{n} patched exactly once");
        let d = cluster.get(Kind::Deployment, NS, n).await.unwrap();
        assert_eq!(image_of(&d), format!("{n}:1"));
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_step_journaled_as_started_is_rechecked_against_the_annotation() {
    // The daemon died after sending the undo but before journaling its end: running
    // `undo previous` again would roll FORWARD to the bad revision. The annotation says done.
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "master", &["master:1", "master:2"], 1).await;
    let w = workload("master", "master", WorkloadRole::Primary);
    let m = method(
        "emergency",
        vec![step("undo", &[], StepAction::Undo(RevisionRef::Previous))],
    );
    let p = policy(vec![w.clone()], vec![m.clone()], verification());
    let ctx = RunContext::new("INC-S", p, "test");
    let journal = MemoryJournal::new();
    let key = Executor::journal_key(&ctx, &m);
    journal
        .started(&key, 0, "master", chrono::Utc::now())
        .await
        .unwrap();
    let meta = ActionMeta {
        incident: "INC-S".into(),
        method: "emergency".into(),
        step: "undo".into(),
        step_index: 0,
        reason: "test".into(),
        dry_run: false,
        expected_revision: None,
    };
    undo::undo(&cluster, &w, RevisionRef::Previous, &meta)
        .await
        .unwrap();
    at_revision(&cluster, "master", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let out = executor(&cluster, dir.path())
        .run(&ctx, &m, &journal)
        .await
        .unwrap();
    assert_eq!(out.steps[0].state, StepState::Done);
    assert!(
        out.steps[0].detail["resumed"].is_string(),
        "{:?}",
        out.steps[0]
    );
    assert_eq!(patch_times(&sim, "master").len(), 1, "undo not sent twice");
    assert_eq!(
        image_of(&cluster.get(Kind::Deployment, NS, "master").await.unwrap()),
        "master:1"
    );
    // And a finished step is never run again.
    let out = executor(&cluster, dir.path())
        .run(&ctx, &m, &journal)
        .await
        .unwrap();
    assert_eq!(out.steps[0].state, StepState::Done);
    assert_eq!(patch_times(&sim, "master").len(), 1);
    // Even with the journal lost, the annotation stops a second (forward!) undo.
    let out = executor(&cluster, dir.path())
        .run(&ctx, &m, &MemoryJournal::new())
        .await
        .unwrap();
    assert_eq!(out.steps[0].state, StepState::Done);
    assert_eq!(patch_times(&sim, "master").len(), 1);
    assert_eq!(
        image_of(&cluster.get(Kind::Deployment, NS, "master").await.unwrap()),
        "master:1"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn restore_configmap_after_undo_restores_the_target_revisions_snapshot_even_on_resume() {
    use rollbackd::cluster::snapshot::snapshot_configmaps;
    let (sim, cluster) = start().await;
    sim.create(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": NS}, "data": {"mode": "v1"}}))
        .unwrap();
    let mut w = workload("web", "web", WorkloadRole::Primary);
    w.configmaps = vec!["cfg".into()];
    deploy_history(&sim, &cluster, "web", &["web:1"], 1).await;
    snapshot_configmaps(&cluster, &w, 1).await.unwrap();
    cluster
        .patch(
            Kind::ConfigMap,
            NS,
            "cfg",
            &kube::api::Patch::Merge(serde_json::json!({"data": {"mode": "v2", "new": "x"}})),
            false,
        )
        .await
        .unwrap();
    set_image(&cluster, "web", "web:2").await;
    at_revision(&cluster, "web", 2).await;
    snapshot_configmaps(&cluster, &w, 2).await.unwrap();
    let m = method(
        "config",
        vec![
            step("undo", &[], StepAction::Undo(RevisionRef::Previous)),
            step("pause", &[], StepAction::Wait(TimeDelta::seconds(2))),
            step(
                "restore config",
                &[],
                StepAction::RestoreConfigMap("cfg".into()),
            ),
        ],
    );
    let p = policy(vec![w], vec![m.clone()], verification());
    let ctx = RunContext::new("INC-CM", p, "config regression");
    let journal = MemoryJournal::new();
    let dir = tempfile::tempdir().unwrap();
    let r = tokio::time::timeout(
        Duration::from_millis(800),
        executor(&cluster, dir.path()).run(&ctx, &m, &journal),
    )
    .await;
    assert!(r.is_err(), "dropped during the pause");
    // The pre-rollback backup holds the config as it was before the rollback.
    let saved =
        std::fs::read_to_string(dir.path().join("INC-CM/ConfigMap-default-cfg.json")).unwrap();
    assert!(saved.contains("\"v2\""), "{saved}");
    let out = executor(&cluster, dir.path())
        .run(&ctx, &m, &journal)
        .await
        .unwrap();
    assert!(out.succeeded(), "{out:#?}");
    assert_eq!(out.steps[2].detail["revision"], 1, "{:?}", out.steps[2]);
    let cm = cluster.get(Kind::ConfigMap, NS, "cfg").await.unwrap();
    assert_eq!(cm["data"], serde_json::json!({"mode": "v1"}));
    assert_eq!(patch_times(&sim, "web").len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn dry_run_of_every_mutating_kind_sends_nothing() {
    use rollbackd_core::policy::ImageRef;
    use std::collections::BTreeMap;
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], 2).await;
    sim.create(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": NS}, "data": {"mode": "v1"}}))
        .unwrap();
    sim.create(serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": NS}, "spec": {"selector": {"app": "web", "color": "blue"}}}))
        .unwrap();
    let steps = vec![
        step("img", &[], StepAction::SetImage(ImageRef::Previous)),
        step("restart", &[], StepAction::Restart),
        step("scale", &[], StepAction::Scale(Some(0))),
        step(
            "switch",
            &[],
            StepAction::SwitchService {
                service: "web".into(),
                selector: BTreeMap::from([("color".to_string(), "green".to_string())]),
                remove: vec![],
            },
        ),
        step(
            "flags",
            &[],
            StepAction::PatchConfigMap {
                name: "cfg".into(),
                data: BTreeMap::from([("mode".to_string(), "safe".to_string())]),
            },
        ),
        step(
            "isolate",
            &[],
            StepAction::Http {
                method: "POST".into(),
                url: "http://127.0.0.1:9/plants/{plant}/isolate".into(),
                body: None,
                expect_status: 200,
            },
        ),
        step(
            "migrate",
            &[],
            StepAction::Job {
                name: "down".into(),
                image: "m:1".into(),
                command: vec![],
            },
        ),
        step("settle", &[], StepAction::WaitRollout),
    ];
    let m = method("everything", steps);
    let p = policy(
        vec![workload("web", "web", WorkloadRole::Primary)],
        vec![m.clone()],
        verification(),
    );
    let mut ctx = RunContext::new("INC-DRY", p, "test");
    ctx.dry_run = true;
    ctx.vars.insert("plant".into(), "north".into());
    let before = sim.requests().len();
    let dir = tempfile::tempdir().unwrap();
    let out = executor(&cluster, dir.path())
        .run(&ctx, &m, &MemoryJournal::new())
        .await
        .unwrap();
    assert_eq!(sim.requests().len(), before, "nothing sent");
    assert!(out.succeeded(), "{out:#?}");
    assert!(
        out.steps
            .iter()
            .all(|s| matches!(s.state, StepState::DryRun(_))),
        "{out:#?}"
    );
    assert_eq!(
        out.steps[0].detail["patch"]["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:1"
    );
    assert_eq!(out.steps[2].detail["patch"]["spec"]["replicas"], 0);
    assert_eq!(
        out.steps[5].detail["request"],
        "POST http://127.0.0.1:9/plants/north/isolate"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn with_the_journal_lost_no_step_of_a_finished_method_runs_again() {
    // LAST_ACTION only names the restart; the applied-steps list still names the undo.
    let (sim, cluster) = start().await;
    deploy_history(&sim, &cluster, "web", &["web:1", "web:2"], 1).await;
    let m = method(
        "undo-then-restart",
        vec![
            step("undo", &[], StepAction::Undo(RevisionRef::Previous)),
            step("restart", &[], StepAction::Restart),
        ],
    );
    let p = policy(
        vec![workload("web", "web", WorkloadRole::Primary)],
        vec![m.clone()],
        verification(),
    );
    let ctx = RunContext::new("INC-L", p, "test");
    let dir = tempfile::tempdir().unwrap();
    let out = executor(&cluster, dir.path())
        .run(&ctx, &m, &MemoryJournal::new())
        .await
        .unwrap();
    assert!(out.succeeded(), "{out:#?}");
    assert_eq!(patch_times(&sim, "web").len(), 2);
    let d = cluster.get(Kind::Deployment, NS, "web").await.unwrap();
    let steps: Vec<String> = serde_json::from_str(
        d["metadata"]["annotations"]["rollbackd.io/applied-steps"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        steps,
        ["INC-L/undo-then-restart/0", "INC-L/undo-then-restart/1"]
    );
    let out = executor(&cluster, dir.path())
        .run(&ctx, &m, &MemoryJournal::new())
        .await
        .unwrap();
    assert!(
        out.steps.iter().all(|s| s.detail["resumed"].is_string()),
        "{out:#?}"
    );
    assert_eq!(patch_times(&sim, "web").len(), 2, "nothing sent again");
    assert_eq!(
        image_of(&cluster.get(Kind::Deployment, NS, "web").await.unwrap()),
        "web:1"
    );
    sim.shutdown().await;
}
