//! Kubernetes Events as an operator reads them: the whole daemon rolls GL-002 back in the
//! simulator, and the real `kubectl describe deployment` shows rollbackd's decision, each
//! step and the outcome, with the row and the values that made it act.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use rollbackd::daemon::collect::MetricSource;
use rollbackd::signals::scrape::Scraper;
use support::world::{agent, deploy_v2, wait_for, wait_resolved, world_custom};

fn describe(kubeconfig: &std::path::Path) -> String {
    let out = Command::new("timeout")
        .args(["30", "kubectl", "--kubeconfig"])
        .arg(kubeconfig)
        .args([
            "-n",
            "greenlang",
            "describe",
            "deployment",
            "gl-002-boiler-efficiency",
        ])
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl describe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describe_tells_the_rollback_story() {
    let w = world_custom(
        agent().await,
        MetricSource::scrape(Scraper::new(Duration::from_secs(1)).unwrap()),
        |_| {},
        |o| o.channels.kube_events = true,
    )
    .await;
    deploy_v2(&w, rollbackd_core::engine::DecisionKind::None).await;
    w.agent.handle().set_error_ratio(0.6).unwrap();
    wait_for(
        "the rollback to start",
        Duration::from_secs(10),
        async || (!support::world::undo_patches(&w.sim).is_empty()).then_some(()),
    )
    .await;
    w.agent.handle().set_error_ratio(0.0).unwrap();
    let incident = wait_resolved(&w, "the incident to resolve", Duration::from_secs(40)).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = w.sim.kubeconfig(dir.path()).unwrap();
    // events are written beside the outbox: wait for the last one
    let text = wait_for(
        "the resolution event",
        Duration::from_secs(10),
        async || {
            let text = describe(&kubeconfig);
            text.contains("RollbackResolved").then_some(text)
        },
    )
    .await;
    println!("{text}");
    let events = &text[text.find("Events:").expect("an Events section")..];
    for reason in [
        "RollbackStarted",
        "RollbackStepDone",
        "RollbackVerifying",
        "RollbackResolved",
    ] {
        assert!(events.contains(reason), "no {reason} in:\n{events}");
    }
    let started = events
        .lines()
        .find(|l| l.contains("RollbackStarted"))
        .expect("started line");
    assert!(started.contains("Warning"), "{started}");
    assert!(started.contains("rollbackd.io/rollbackd"), "{started}");
    assert!(started.contains("p0-error-rate (P0)"), "{started}");
    assert!(started.contains(&incident.id), "{started}");
    // the deployment controller's own events are still there beside them
    assert!(events.contains("ScalingReplicaSet"), "{events}");
}
