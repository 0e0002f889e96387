//! rollbackd's `/metrics` in the OpenMetrics text format, scraped by a real Prometheus (the
//! Debian package) on 127.0.0.1: the target is up with no scrape error, and counters,
//! gauges and histograms are queryable under the names the README and alert rules use.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_support;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use api_support::*;
use serde_json::Value;
use support::prometheus::{PrometheusProcess, ScrapeTarget};

/// The result of an instant query, as `(labels, value)` pairs.
async fn query(http: &reqwest::Client, prom: &PrometheusProcess, expr: &str) -> Vec<(Value, f64)> {
    let body: Value = http
        .get(format!("{}/api/v1/query", prom.url()))
        .query(&[("query", expr)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "success", "{expr}: {body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let value = r["value"][1].as_str().unwrap().parse().unwrap();
            (r["metric"].clone(), value)
        })
        .collect()
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_openmetrics_exposition() {
    let api = start().await;
    let (code, _) = api
        .post(
            "/api/v1/alerts",
            Some(HOOK),
            payload(vec![alert("GL-002", "firing", "fp1")]),
        )
        .await;
    assert_eq!(code, 200);
    api.metrics
        .observe("rollbackd_step_duration_seconds", &["undo", "done"], 0.02);
    let res = api
        .http
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = res.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");

    let addr: SocketAddr = api.url.trim_start_matches("http://").parse().unwrap();
    let prom = PrometheusProcess::start(&[ScrapeTarget::new(addr)], &[]).await;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = query(&http, &prom, "up").await;
        if up.iter().any(|(_, v)| *v == 1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "rollbackd never scraped: {up:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let targets: Value = http
        .get(format!("{}/api/v1/targets", prom.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let target = &targets["data"]["activeTargets"][0];
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["lastError"], "", "{target}");

    let requests = query(
        &http,
        &prom,
        r#"rollbackd_webhook_requests_total{code="200"}"#,
    )
    .await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].1, 1.0);
    let alerts = query(
        &http,
        &prom,
        r#"rollbackd_webhook_alerts_total{result="new"}"#,
    )
    .await;
    assert_eq!(alerts.first().map(|a| a.1), Some(1.0), "{alerts:?}");
    let incidents = query(&http, &prom, "rollbackd_incidents").await;
    assert_eq!(incidents.len(), 11, "one series per state: {incidents:?}");
    let p50 = query(
        &http,
        &prom,
        "histogram_quantile(0.5, rollbackd_step_duration_seconds_bucket)",
    )
    .await;
    assert_eq!(p50.len(), 1, "{p50:?}");
    assert!(p50[0].1 > 0.01 && p50[0].1 <= 0.025, "{p50:?}");
}
