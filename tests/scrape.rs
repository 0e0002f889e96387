//! Direct scrape against the synthetic agent, without Prometheus.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rollbackd::signals::scrape::{
    ScrapeError, Scraper, quantile_between, rate_between, ratio_between, value,
};
use rollbackd::signals::selector::{Selector, SelectorError};
use rollbackd::synthetic_agent::{AgentConfig, SyntheticAgent};

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("valid selector")
}

async fn agent(prefix: &str) -> SyntheticAgent {
    SyntheticAgent::start(
        "127.0.0.1:0".parse().expect("addr"),
        AgentConfig::new(prefix),
    )
    .await
    .expect("agent starts")
}

fn scraper() -> Scraper {
    Scraper::new(Duration::from_secs(2)).expect("scraper")
}

#[tokio::test]
async fn rate_and_error_ratio() {
    let agent = agent("t1_").await;
    agent.handle().set_error_ratio(0.2).expect("ratio");
    let s = scraper();
    let a = s.scrape(&agent.metrics_url()).await.expect("scrape a");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let b = s.scrape(&agent.metrics_url()).await.expect("scrape b");
    let rate = rate_between(&a, &b, &sel("t1_http_requests_total")).expect("rate");
    println!("rate over {:?}: {rate}", b.at - a.at);
    assert!((70.0..=130.0).contains(&rate), "≈100 rps, got {rate}");
    let ratio = ratio_between(
        &a,
        &b,
        &sel(r#"t1_http_requests_total{status=~"5.."}"#),
        &sel("t1_http_requests_total"),
    )
    .expect("ratio");
    assert!((ratio - 0.2).abs() < 1e-9, "ratio {ratio}");
    assert_eq!(value(&b, &sel("t1_healthy")), Some(1.0));
    assert_eq!(rate_between(&a, &b, &sel("t1_nope_total")), None);
}

#[tokio::test]
async fn no_traffic_is_no_data() {
    let agent = agent("t2_").await;
    agent.handle().set_rps(0.0).expect("rps");
    let s = scraper();
    let a = s.scrape(&agent.metrics_url()).await.expect("scrape a");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = s.scrape(&agent.metrics_url()).await.expect("scrape b");
    let ratio = ratio_between(
        &a,
        &b,
        &sel(r#"t2_http_requests_total{status="500"}"#),
        &sel("t2_http_requests_total"),
    );
    assert_eq!(ratio, None);
    assert_eq!(
        quantile_between(&a, &b, 0.95, "t2_http_request_duration_seconds", &[]),
        None
    );
}

#[tokio::test]
async fn counter_reset_is_handled() {
    let agent = agent("t3_").await;
    let s = scraper();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = s.scrape(&agent.metrics_url()).await.expect("scrape a");
    agent.handle().reset_counters();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = s.scrape(&agent.metrics_url()).await.expect("scrape b");
    let before = value(&a, &sel("t3_http_requests_total")).expect("a total");
    let after = value(&b, &sel("t3_http_requests_total")).expect("b total");
    assert!(after < before, "reset happened: {before} -> {after}");
    let secs = (b.at - a.at).num_milliseconds() as f64 / 1000.0;
    let rate = rate_between(&a, &b, &sel("t3_http_requests_total")).expect("rate");
    assert!(rate >= 0.0, "never negative");
    assert!(
        (rate - after / secs).abs() < 1e-9,
        "increase = current value after a reset"
    );
}

#[tokio::test]
async fn histogram_quantile_matches_hand_computation() {
    let agent = agent("t4_").await;
    // Half the requests take 70 ms (bucket 0.05–0.1), half 300 ms (0.25–0.5).
    agent
        .handle()
        .set_latency_mix(&[(0.07, 1.0), (0.3, 1.0)])
        .expect("mix");
    let s = scraper();
    let a = s.scrape(&agent.metrics_url()).await.expect("scrape a");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let b = s.scrape(&agent.metrics_url()).await.expect("scrape b");
    let h = "t4_http_request_duration_seconds";
    // Increase N: buckets 0.05→0, 0.1→N/2, 0.25→N/2, 0.5→N, …, +Inf→N.
    // q=0.95: rank 0.95N in (0.25, 0.5]: 0.25 + 0.25 × (0.95N − 0.5N)/(0.5N) = 0.475.
    let q95 = quantile_between(&a, &b, 0.95, h, &[]).expect("q95");
    assert!((q95 - 0.475).abs() < 1e-9, "q95 {q95}");
    // q=0.25: rank 0.25N in (0.05, 0.1]: 0.05 + 0.05 × 0.25N/(0.5N) = 0.075.
    let q25 = quantile_between(&a, &b, 0.25, h, &[]).expect("q25");
    assert!((q25 - 0.075).abs() < 1e-9, "q25 {q25}");
    // The highest quantile in +Inf returns the top finite bound.
    agent.handle().set_latency(60.0).expect("latency");
    let c = s.scrape(&agent.metrics_url()).await.expect("scrape c");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let d = s.scrape(&agent.metrics_url()).await.expect("scrape d");
    assert_eq!(quantile_between(&c, &d, 0.99, h, &[]), Some(30.0));
    // Label matchers that match no bucket: no data.
    let none = sel(r#"{job="other"}"#);
    assert_eq!(quantile_between(&a, &b, 0.5, h, none.matchers()), None);
}

#[tokio::test]
async fn health_and_http_control() {
    let agent = agent("t5_").await;
    let http = reqwest::Client::new();
    let health = format!("http://{}/health", agent.addr());
    let control = format!("http://{}/control", agent.addr());
    assert_eq!(
        http.get(&health).send().await.expect("health").status(),
        200
    );
    let resp = http
        .post(&control)
        .json(&serde_json::json!({"error_ratio": 0.6, "healthy": false}))
        .send()
        .await
        .expect("control");
    assert_eq!(resp.status(), 200);
    assert_eq!(agent.handle().status().error_ratio, 0.6);
    assert_eq!(
        http.get(&health).send().await.expect("health").status(),
        503
    );
    let bad = http
        .post(&control)
        .json(&serde_json::json!({"error_ratio": 2.0}))
        .send()
        .await
        .expect("control");
    assert_eq!(bad.status(), 400);
    let snap = scraper()
        .scrape(&agent.metrics_url())
        .await
        .expect("scrape");
    assert_eq!(value(&snap, &sel("t5_healthy")), Some(0.0));
}

#[tokio::test]
async fn scrape_errors() {
    let agent = agent("t6_").await;
    let s = scraper();
    let missing = s.scrape(&format!("http://{}/nope", agent.addr())).await;
    assert!(matches!(missing, Err(ScrapeError::Http { status: 404 })));
    // A listener that accepts and never answers: a timeout, not a hang.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/metrics", silent.local_addr().expect("addr"));
    let short = Scraper::new(Duration::from_millis(300)).expect("scraper");
    let started = std::time::Instant::now();
    let err = short.scrape(&url).await.expect_err("must time out");
    assert_eq!(err.metric_label(), "timeout", "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(silent);
    let refused = s.scrape(&url).await.expect_err("refused");
    assert_eq!(refused.metric_label(), "transport", "{refused}");
    assert!(matches!(
        s.scrape("not a url").await,
        Err(ScrapeError::Config(_))
    ));
}

#[test]
fn selector_parse_errors_name_the_position() {
    let err = Selector::parse(r#"x{status=~"5..",code="1"#).expect_err("unterminated");
    assert_eq!(err, SelectorError::UnterminatedString { position: 21 });
    let err = Selector::parse(r#"x{status~"5"}"#).expect_err("bad op");
    assert!(err.to_string().contains("position 8"), "{err}");
    let err = Selector::parse(r#"x{status=~"[5"}"#).expect_err("bad regex");
    assert_eq!(err.metric_label(), "selector_regex");
}
