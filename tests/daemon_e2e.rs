//! The daemon end to end with no Prometheus: the Kubernetes simulator, a synthetic agent
//! serving `/metrics`, and rollbackd scraping it directly. The agent's error rate jumps to
//! 60 %; rollbackd rolls the deployment back, verifies, watches, resolves, and announces
//! every stage to a webhook receiver.

mod support;

use std::time::{Duration, Instant};

use rollbackd::daemon::collect::MetricSource;
use rollbackd::incident::State;
use rollbackd::signals::scrape::Scraper;
use rollbackd::store::IncidentFilter;
use support::world::{agent, set_image, undo_patches, wait_available, wait_for, world};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_spike_is_rolled_back_verified_and_resolved_from_direct_scrape() {
    let w = world(
        agent().await,
        MetricSource::scrape(Scraper::new(Duration::from_secs(1)).unwrap()),
        |_| {},
    )
    .await;
    wait_available(&w, 3).await;
    set_image(
        &w.client,
        "registry.local/greenlang/gl-002-boiler-efficiency:v2",
    )
    .await;
    let status = w.daemon.status.clone();
    wait_for(
        "the v2 window to open with a healthy decision",
        Duration::from_secs(20),
        async || {
            let s = status.read().unwrap().get("GL-002").cloned()?;
            (s.revision == Some(2)
                && s.window_open
                && s.decision.as_ref()?.decision == rollbackd::engine::DecisionKind::None)
                .then_some(())
        },
    )
    .await;

    w.agent.handle().set_error_ratio(0.6).unwrap();
    let jump = Instant::now();
    let patched = wait_for("the rollback patch", Duration::from_secs(10), async || {
        undo_patches(&w.sim).first().copied()
    })
    .await;
    let took = patched - jump;
    println!(
        "direct scrape: error jump → rollback patch in {:.2} s",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(5), "jump → patch took {took:?}");
    w.agent.handle().set_error_ratio(0.0).unwrap(); // the previous version is healthy

    let store = w.daemon.store.clone();
    let incident = wait_for(
        "the incident to resolve",
        Duration::from_secs(40),
        async || {
            let inc = store
                .incidents(&IncidentFilter::default())
                .unwrap()
                .into_iter()
                .next()?;
            assert!(
                !matches!(inc.state, State::Failed | State::Escalated),
                "incident failed: {:?}",
                store.transitions(&inc.id).unwrap()
            );
            (inc.state == State::Resolved).then_some(inc)
        },
    )
    .await;
    assert_eq!(incident.row.as_deref(), Some("p0-error-rate"));
    assert_eq!(incident.revision, Some(2));
    let path: Vec<State> = store
        .transitions(&incident.id)
        .unwrap()
        .iter()
        .map(|t| t.to)
        .collect();
    assert_eq!(
        path,
        [
            State::RollingBack,
            State::Verifying,
            State::Monitoring,
            State::Resolved
        ]
    );
    assert_eq!(undo_patches(&w.sim).len(), 1, "exactly one undo");
    let deploy = w
        .sim
        .get(
            "apps/v1",
            "Deployment",
            "greenlang",
            "gl-002-boiler-efficiency",
        )
        .unwrap();
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/greenlang/gl-002-boiler-efficiency:v1"
    );
    assert_eq!(
        deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3",
        "v1 renumbered to 3"
    );
    assert!(
        !store.backups(&incident.id).unwrap().is_empty(),
        "pre-rollback backup kept"
    );

    // every stage announced once, in order, with the evidence
    let stages = wait_for("the notifications", Duration::from_secs(10), async || {
        let got = w.hook.lock().unwrap().clone();
        let stages: Vec<String> = got
            .iter()
            .filter(|m| m["incident_id"] == incident.id.as_str())
            .map(|m| m["stage"].as_str().unwrap_or("").to_string())
            .collect();
        (stages.len() >= 4).then_some((stages, got))
    })
    .await;
    assert_eq!(
        stages.0,
        ["initiated", "in_progress", "complete", "resolved"]
    );
    let initiated = stages.1.iter().find(|m| m["stage"] == "initiated").unwrap();
    assert!(
        initiated["text"].as_str().unwrap().contains("error_rate"),
        "{initiated}"
    );

    // the window is closed: no second rollback while the signals settle
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        store.incidents(&IncidentFilter::default()).unwrap().len(),
        1
    );
    let metrics = w.daemon.metrics.render();
    assert!(
        metrics.contains(
            "rollbackd_rollbacks_total{agent=\"GL-002\",method=\"quick\",outcome=\"verified\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("rollbackd_decisions_total{agent=\"GL-002\",decision=\"rollback\"} 1"),
        "{metrics}"
    );
    w.daemon.shutdown().await;
    w.sim.shutdown().await;
}
