//! One PromQL query per distinct signal query per cycle, however many workloads share it:
//! a fake Prometheus-compatible endpoint counts the queries while 1, 50 and 500 workloads
//! sharing GL-002's three queries are read, and each workload gets its own series' value.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::routing::post;
use rollbackd::daemon::collect::MetricSource;
use rollbackd::signals::prometheus::{PromClient, PromClientConfig};
use rollbackd_core::policy::{Policy, load_file};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Fake {
    queries: Arc<AtomicUsize>,
    workloads: Arc<Mutex<Vec<String>>>,
}

/// Answers any query with one series per workload, `value = index / 1000`.
async fn query(
    State(fake): State<Fake>,
    Form(form): Form<Vec<(String, String)>>,
) -> axum::Json<Value> {
    fake.queries.fetch_add(1, Ordering::SeqCst);
    assert!(form.iter().any(|(k, _)| k == "query"));
    let result: Vec<Value> = fake
        .workloads
        .lock()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, w)| json!({"metric": {"namespace": "greenlang", "deployment": w}, "value": [1700000000.0, format!("{}", i as f64 / 1000.0)]}))
        .collect();
    axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
}

fn policies(n: usize) -> Vec<Arc<Policy>> {
    let base = load_file(std::path::Path::new("policies/gl-002.toml")).unwrap();
    (0..n)
        .map(|i| {
            let mut p = base.clone();
            p.agent.id = format!("GL-002-{i}");
            p.workloads[0].name = format!("boiler-{i}");
            Arc::new(p)
        })
        .collect()
}

#[tokio::test]
async fn queries_per_cycle_do_not_grow_with_workloads() {
    let fake = Fake::default();
    let app = axum::Router::new()
        .route("/api/v1/query", post(query))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let source = MetricSource::Prometheus(PromClient::new(PromClientConfig::new(url)).unwrap());
    let distinct = 3; // error_rate, latency_p95, latency_p99
    for n in [1, 50, 500] {
        let ps = policies(n);
        *fake.workloads.lock().unwrap() = ps.iter().map(|p| p.workloads[0].name.clone()).collect();
        fake.queries.store(0, Ordering::SeqCst);
        let readings = source.read(&ps, chrono::Utc::now()).await;
        let made = fake.queries.load(Ordering::SeqCst);
        println!("{n} workloads: {made} PromQL requests");
        assert_eq!(made, distinct, "{n} workloads");
        assert_eq!(readings.requests, distinct);
        let last = ps.last().unwrap();
        let v = readings.values[&(last.agent.id.clone(), "error_rate".to_string())];
        assert_eq!(
            v,
            Some((n - 1) as f64 / 1000.0),
            "each workload gets its own series"
        );
    }
    server.abort();
}
