//! End to end with a real Prometheus and Alertmanager (Debian packages, on 127.0.0.1 with
//! temporary directories): the synthetic agent's error rate jumps to 60 % and rollbackd
//! rolls GL-002 back in the Kubernetes simulator, once through Alertmanager's webhook and
//! once from its own PromQL evaluation; with Prometheus stopped mid-window the decision is
//! inconclusive, a human is told, and nothing is rolled back; a fix deployed while the error
//! rate is already high is not blamed for it (told, never rolled back), and the next bad
//! deploy on the healthy service is rolled back as fast as ever.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use rollbackd::daemon::collect::MetricSource;
use rollbackd::signals::prometheus::{PromClient, PromClientConfig};
use rollbackd::store::IncidentFilter;
use rollbackd_core::engine::DecisionKind;
use rollbackd_core::policy::{Policy, SignalSource};
use support::alertmanager::AlertmanagerProcess;
use support::prometheus::{PrometheusProcess, ScrapeTarget};
use support::world::{
    World, agent, deploy_image, deploy_v2, set_image, undo_patches, wait_available, wait_for,
    wait_resolved, world,
};

/// The error ratio over a 5 s window, grouped like the policy's own query.
const FAST_ERROR_RATE: &str = r#"sum by (namespace, deployment) (rate(gl_002_http_requests_total{status=~"5.."}[5s])) / sum by (namespace, deployment) (rate(gl_002_http_requests_total[5s]))"#;

const RULES: &str = r#"
groups:
  - name: gl-002
    rules:
      - alert: GL002ServiceOutage
        expr: sum(rate(gl_002_http_requests_total{status=~"5.."}[5s])) / sum(rate(gl_002_http_requests_total[5s])) > 0.5
        for: 0s
        labels:
          agent: GL-002
          condition: service_outage
        annotations:
          summary: more than half of GL-002's requests fail
"#;

fn prometheus_source(url: &str) -> MetricSource {
    let mut c = PromClientConfig::new(url);
    c.timeout = Duration::from_secs(2);
    MetricSource::Prometheus(PromClient::new(c).unwrap())
}

fn fast_error_rate(p: &mut Policy) {
    if let Some(s) = std::sync::Arc::make_mut(&mut p.signals).get_mut("error_rate")
        && let SignalSource::Metric { promql, .. } = &mut s.source
    {
        *promql = Some(FAST_ERROR_RATE.into());
    }
}

async fn rolled_back_and_resolved(w: &World, jump: Instant, how: &str) {
    let patched = wait_for("the rollback patch", Duration::from_secs(20), async || {
        undo_patches(&w.sim).first().copied()
    })
    .await;
    let took = patched - jump;
    println!(
        "{how}: error jump → rollback patch in {:.2} s",
        took.as_secs_f64()
    );
    w.agent.handle().set_error_ratio(0.0).unwrap();
    let inc = wait_resolved(w, "the incident to resolve", Duration::from_secs(60)).await;
    assert_eq!(undo_patches(&w.sim).len(), 1, "exactly one undo");
    assert!(
        took < Duration::from_secs(8),
        "{how}: jump → patch took {took:?}"
    );
    println!("{how}: incident {} resolved via row {:?}", inc.id, inc.row);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_webhook_triggers_the_rollback() {
    let agent = agent().await;
    let target = ScrapeTarget::new(agent.addr())
        .label("namespace", "greenlang")
        .label("deployment", "gl-002-boiler-efficiency");
    // signals from Prometheus only through the alert: the policy's metric rows see no data
    let w = world(
        agent,
        MetricSource::scrape(
            rollbackd::signals::scrape::Scraper::new(Duration::from_secs(1)).unwrap(),
        ),
        |p| {
            std::sync::Arc::make_mut(&mut p.verification).checks.clear();
            for s in std::sync::Arc::make_mut(&mut p.signals).values_mut() {
                if let SignalSource::Metric { promql, scrape } = &mut s.source {
                    *promql = None;
                    *scrape = None;
                }
            }
        },
    )
    .await;
    let am =
        AlertmanagerProcess::start(&format!("http://{}/api/v1/alerts", w.daemon.api_addr)).await;
    let _prom =
        PrometheusProcess::start_with_alertmanager(&[target], &[RULES], Some(&am.host_port()))
            .await;
    // no metric data at all: the window opens inconclusive (told, never acted on)
    deploy_v2(&w, DecisionKind::Inconclusive).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // Prometheus has a few healthy scrapes
    w.agent.handle().set_error_ratio(0.6).unwrap();
    let jump = Instant::now();
    rolled_back_and_resolved(&w, jump, "alertmanager webhook").await;
    let inc = w
        .daemon
        .store
        .incidents(&IncidentFilter::default())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(inc.row.as_deref(), Some("p0-service-outage-alert"));
    let alerts = w
        .daemon
        .store
        .alerts_since(
            Some(Some("GL-002")),
            chrono::Utc::now() - chrono::TimeDelta::minutes(5),
        )
        .await
        .unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a.alert.labels.get("alertname").map(String::as_str)
                == Some("GL002ServiceOutage"))
    );
    let received = alerts
        .iter()
        .filter(|a| a.alert.status == "firing")
        .map(|a| a.received_at)
        .min()
        .unwrap();
    let request = w
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH" && r.content_type.contains("json-patch"))
        .unwrap();
    let patch_at: chrono::DateTime<chrono::Utc> = request.at.into();
    let inside = patch_at - received;
    println!(
        "alertmanager webhook: webhook received → rollback patch in {} ms",
        inside.num_milliseconds()
    );
    assert!(
        inside < chrono::TimeDelta::seconds(1),
        "rollbackd took {inside} from webhook to patch"
    );
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_evaluation_triggers_the_rollback() {
    let agent = agent().await;
    let target = ScrapeTarget::new(agent.addr())
        .label("namespace", "greenlang")
        .label("deployment", "gl-002-boiler-efficiency");
    let prom = PrometheusProcess::start(&[target], &[]).await;
    let w = world(agent, prometheus_source(&prom.url()), fast_error_rate).await;
    deploy_v2(&w, DecisionKind::None).await;
    w.agent.handle().set_error_ratio(0.6).unwrap();
    let jump = Instant::now();
    rolled_back_and_resolved(&w, jump, "rollbackd's PromQL").await;
    let inc = w
        .daemon
        .store
        .incidents(&IncidentFilter::default())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(inc.row.as_deref(), Some("p0-error-rate"));
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_down_mid_window_is_inconclusive_and_never_rolls_back() {
    let agent = agent().await;
    let target = ScrapeTarget::new(agent.addr())
        .label("namespace", "greenlang")
        .label("deployment", "gl-002-boiler-efficiency");
    let mut prom = PrometheusProcess::start(&[target], &[]).await;
    let w = world(agent, prometheus_source(&prom.url()), fast_error_rate).await;
    deploy_v2(&w, DecisionKind::None).await;
    prom.kill();
    w.agent.handle().set_error_ratio(0.9).unwrap(); // bad, but nobody can see it
    let status = w.daemon.status.clone();
    let reason = wait_for(
        "an inconclusive decision",
        Duration::from_secs(20),
        async || {
            let d = status.read().unwrap().get("GL-002")?.decision.clone()?;
            (d.decision == DecisionKind::Inconclusive).then_some(d.reason)
        },
    )
    .await;
    assert!(reason.contains("error_rate"), "{reason}");
    let hook = w.hook.clone();
    let notice = wait_for(
        "the inconclusive notification",
        Duration::from_secs(10),
        async || {
            hook.lock()
                .unwrap()
                .iter()
                .find(|m| m["stage"] == "inconclusive")
                .cloned()
        },
    )
    .await;
    assert!(
        notice["text"].as_str().unwrap().contains("NO DATA"),
        "{notice}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(undo_patches(&w.sim).is_empty(), "no rollback without data");
    assert!(
        w.daemon
            .store
            .incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let metrics = w.daemon.metrics.render();
    assert!(
        metrics.contains("rollbackd_signal_errors_total{source=\"prometheus\""),
        "{metrics}"
    );
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fix_for_a_failing_service_is_not_rolled_back_but_the_next_bad_deploy_is() {
    let agent = agent().await;
    let target = ScrapeTarget::new(agent.addr())
        .label("namespace", "greenlang")
        .label("deployment", "gl-002-boiler-efficiency");
    let prom = PrometheusProcess::start(&[target], &[]).await;
    let w = world(agent, prometheus_source(&prom.url()), fast_error_rate).await;
    wait_available(&w, 3).await;
    // the service is failing before anyone deploys: 60 % errors, as rollbackd reads them
    w.agent.handle().set_error_ratio(0.6).unwrap();
    let status = w.daemon.status.clone();
    let prom_client = PromClient::new(PromClientConfig::new(prom.url())).unwrap();
    wait_for(
        "Prometheus to see 60 % errors",
        Duration::from_secs(20),
        async || {
            let r = prom_client.query(FAST_ERROR_RATE, None).await.ok()?;
            (r.series.first()?.value > 0.5).then_some(())
        },
    )
    .await;
    // rollbackd samples it too, well before the deploy (its time is kept to the second)
    tokio::time::sleep(Duration::from_secs(2)).await;
    // the fix: deployed while the errors are high; they go on until its pods take over
    set_image(
        &w.client,
        "registry.local/greenlang/gl-002-boiler-efficiency:v2-fix",
    )
    .await;
    let told = wait_for(
        "the pre-existing error rate to be told",
        Duration::from_secs(20),
        async || {
            let d = status.read().unwrap().get("GL-002")?.decision.clone()?;
            (d.decision == DecisionKind::Notify && !d.evidence.preexisting.is_empty()).then_some(d)
        },
    )
    .await;
    println!("fix deployed into 60 % errors: {}", told.reason);
    assert!(
        told.reason.contains("not because of this deploy"),
        "{}",
        told.reason
    );
    assert_eq!(told.evidence.preexisting[0].row, "p0-error-rate");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(undo_patches(&w.sim).is_empty(), "the fix was rolled back");
    w.agent.handle().set_error_ratio(0.0).unwrap(); // the fix's pods serve cleanly
    // the old pods' errors age out of the [5s] range; nothing is rolled back meanwhile
    wait_for(
        "the fix to read healthy",
        Duration::from_secs(30),
        async || {
            let d = status.read().unwrap().get("GL-002")?.decision.clone()?;
            (d.decision == DecisionKind::None).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(undo_patches(&w.sim).is_empty(), "the fix was rolled back");
    let incidents = w
        .daemon
        .store
        .incidents(&IncidentFilter::default())
        .await
        .unwrap();
    assert!(incidents.is_empty(), "{incidents:?}");
    // then a bad deploy on the healthy service: rolled back within the usual time
    deploy_image(
        &w.client,
        &w.daemon.status,
        "registry.local/greenlang/gl-002-boiler-efficiency:v3",
        3,
        DecisionKind::None,
    )
    .await;
    w.agent.handle().set_error_ratio(0.6).unwrap();
    let jump = Instant::now();
    rolled_back_and_resolved(&w, jump, "bad deploy after the fix").await;
    w.daemon.shutdown().await;
}
