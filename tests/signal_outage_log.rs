//! Issue 12 item 13: during a Prometheus outage the log says once that each query fails
//! and once that it recovered (with how long it was down), not one WARN per query per
//! cycle; every failure is still counted.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::routing::post;
use chrono::{TimeDelta, Utc};
use rollbackd::daemon::collect::{MetricSource, ReadOutages};
use rollbackd::signals::prometheus::{PromClient, PromClientConfig};
use rollbackd_core::policy::load_file;

/// Log lines written while a test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[tokio::test]
async fn a_prometheus_outage_is_logged_when_it_starts_and_ends_not_every_cycle() {
    let down = Arc::new(AtomicBool::new(true));
    let d = down.clone();
    let app = axum::Router::new().route(
        "/api/v1/query",
        post(move || {
            let down = d.load(Ordering::SeqCst);
            async move {
                if down {
                    (StatusCode::SERVICE_UNAVAILABLE, String::from("unavailable"))
                } else {
                    (
                        StatusCode::OK,
                        String::from(
                            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
                        ),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let source = MetricSource::Prometheus(PromClient::new(PromClientConfig::new(url)).unwrap());
    let policies = vec![Arc::new(
        load_file(std::path::Path::new("policies/gl-002.toml")).unwrap(),
    )];

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let start = Utc::now();
    let mut outages = ReadOutages::default();
    let mut failures = 0;
    for cycle in 0..5 {
        let at = start + TimeDelta::seconds(15 * cycle);
        let readings = source.read(&policies, at).await;
        failures += readings.errors.len();
        outages.report(&readings, at);
    }
    down.store(false, Ordering::SeqCst);
    let at = start + TimeDelta::seconds(75);
    let readings = source.read(&policies, at).await;
    assert!(readings.errors.is_empty(), "{:?}", readings.errors);
    outages.report(&readings, at);

    let queries = readings.requests;
    assert!(queries >= 1);
    assert_eq!(
        failures,
        5 * queries,
        "every failure is still reported for counting"
    );
    let lines = captured.lines();
    let warns: Vec<&String> = lines.iter().filter(|l| l.contains("WARN")).collect();
    assert_eq!(
        warns.len(),
        queries,
        "one WARN per failing query: {lines:#?}"
    );
    let recovered: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("recovered after 1m15s"))
        .collect();
    assert_eq!(recovered.len(), queries, "{lines:#?}");
}
