//! The daemon end to end with no Prometheus: the Kubernetes simulator, a synthetic agent
//! serving `/metrics`, and rollbackd scraping it directly. The agent's error rate jumps to
//! 60 %; rollbackd rolls the deployment back, verifies, watches, resolves, and announces
//! every stage to a webhook receiver.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use rollbackd::daemon::collect::MetricSource;
use rollbackd::signals::scrape::Scraper;
use rollbackd::store::IncidentFilter;
use rollbackd_core::incident::State;
use support::world::{agent, deploy_v2, undo_patches, wait_for, wait_resolved, world};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_spike_is_rolled_back_verified_and_resolved_from_direct_scrape() {
    let w = world(
        agent().await,
        MetricSource::scrape(Scraper::new(Duration::from_secs(1)).unwrap()),
        |_| {},
    )
    .await;
    deploy_v2(&w, rollbackd_core::engine::DecisionKind::None).await;

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
    let incident = wait_resolved(&w, "the incident to resolve", Duration::from_secs(40)).await;
    assert_eq!(incident.row.as_deref(), Some("p0-error-rate"));
    assert_eq!(incident.revision, Some(2));
    let path: Vec<State> = store
        .transitions(&incident.id)
        .await
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
        !store.backups(&incident.id).await.unwrap().is_empty(),
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
        store
            .incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .len(),
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

/// A Slack API that always fails (500) and a Statuspage that always rate-limits (429).
async fn failing_notifiers() -> (
    String,
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let (h1, h2) = (hits.clone(), hits.clone());
    let slack = axum::Router::new().fallback(move || {
        let h = h1.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom")
        }
    });
    let statuspage = axum::Router::new().fallback(move || {
        let h = h2.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "slow down",
            )
        }
    });
    let mut urls = Vec::new();
    for app in [slack, statuspage] {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!("http://{}", l.local_addr().unwrap()));
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    }
    (urls.remove(0), urls.remove(0), hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifiers_down_never_delay_the_rollback() {
    let (slack, statuspage, hits) = failing_notifiers().await;
    let w = support::world::world_custom(
        agent().await,
        MetricSource::scrape(Scraper::new(Duration::from_secs(1)).unwrap()),
        |_| {},
        |o| {
            o.channels.slack_api = true;
            o.channels.statuspage = true;
            o.notifier.slack_api_url = slack;
            o.notifier.slack_token = Some("xoxb-test".into());
            o.notifier.statuspage_api_url = statuspage;
            o.notifier.statuspage_api_key = Some("key".into());
            o.notifier.retry.max_delay = Duration::from_secs(2);
        },
    )
    .await;
    deploy_v2(&w, rollbackd_core::engine::DecisionKind::None).await;
    w.agent.handle().set_error_ratio(0.6).unwrap();
    let jump = Instant::now();
    let patched = wait_for("the rollback patch", Duration::from_secs(10), async || {
        undo_patches(&w.sim).first().copied()
    })
    .await;
    println!(
        "notifiers down: error jump → rollback patch in {:.2} s",
        (patched - jump).as_secs_f64()
    );
    assert!(patched - jump < Duration::from_secs(5));
    w.agent.handle().set_error_ratio(0.0).unwrap();
    let store = w.daemon.store.clone();
    let inc = wait_resolved(&w, "the incident to resolve", Duration::from_secs(30)).await;
    println!(
        "notifiers down: jump → resolved in {:.2} s",
        jump.elapsed().as_secs_f64()
    );
    assert!(
        hits.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the notifiers were tried"
    );
    let rows = store.outbox_for(&inc.id).await.unwrap();
    let down: Vec<_> = rows
        .iter()
        .filter(|r| !r.target_key.starts_with("webhook:"))
        .collect();
    assert!(
        down.len() >= 2 && down.iter().all(|r| r.state != "sent"),
        "nothing reached Slack or Statuspage: {down:?}"
    );
    assert!(
        down.iter()
            .any(|r| r.attempts >= 1 && r.last_error.is_some()),
        "failures recorded on the incident's notifications"
    );
    assert!(
        rows.iter()
            .any(|r| r.target_key.starts_with("webhook:") && r.state == "sent"),
        "the working notifier was not held up"
    );
    let shown = w.daemon.metrics.render();
    assert!(
        shown.contains("rollbackd_notifications_total{target=\"slack\",outcome=\"retry\"}"),
        "{shown}"
    );
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_decides_and_notifies_but_never_mutates() {
    let w = support::world::world_custom(
        agent().await,
        MetricSource::scrape(Scraper::new(Duration::from_secs(1)).unwrap()),
        |_| {},
        |o| o.limits.dry_run = true,
    )
    .await;
    deploy_v2(&w, rollbackd_core::engine::DecisionKind::None).await;
    let writes_before = w.sim.requests().len();
    w.agent.handle().set_error_ratio(0.6).unwrap();
    let store = w.daemon.store.clone();
    let inc = wait_resolved(
        &w,
        "the dry-run incident to resolve",
        Duration::from_secs(30),
    )
    .await;
    assert!(inc.dry_run);
    let writes: Vec<_> = w
        .sim
        .requests()
        .into_iter()
        .skip(writes_before)
        .filter(|r| r.path.contains("gl-002-boiler-efficiency"))
        .collect();
    assert!(
        writes.is_empty(),
        "a dry run mutated the cluster: {writes:?}"
    );
    let steps = store.steps(&inc.id).await.unwrap();
    assert!(
        !steps.is_empty() && steps.iter().all(|s| s.state == "dry_run"),
        "{steps:?}"
    );
    let hook = w.hook.clone();
    wait_for(
        "the initiated notification",
        Duration::from_secs(10),
        async || {
            hook.lock()
                .unwrap()
                .iter()
                .any(|m| m["incident_id"] == inc.id.as_str() && m["stage"] == "initiated")
                .then_some(())
        },
    )
    .await;
    w.daemon.shutdown().await;
}
