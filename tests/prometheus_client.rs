//! The Prometheus client against a real Prometheus (and Alertmanager) scraping
//! synthetic agents every second.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use chrono::Utc;
use rollbackd::signals::prometheus::{
    PromClient, PromClientConfig, PromError, QueryMethod, QueryResult, ResultType, batched,
    group_by,
};
use rollbackd::synthetic_agent::{AgentConfig, SyntheticAgent};
use support::alertmanager::AlertmanagerProcess;
use support::prometheus::{PrometheusProcess, ScrapeTarget};
use tokio::sync::mpsc;

async fn agent(prefix: &str) -> SyntheticAgent {
    SyntheticAgent::start(
        "127.0.0.1:0".parse().expect("addr"),
        AgentConfig::new(prefix),
    )
    .await
    .expect("agent starts")
}

fn client(url: &str) -> PromClient {
    let mut config = PromClientConfig::new(url);
    config.timeout = Duration::from_secs(3);
    PromClient::new(config).expect("client")
}

fn error_ratio(prefix: &str) -> String {
    format!(
        "sum(rate({prefix}http_requests_total{{status=~\"5..\"}}[5s])) / \
         sum(rate({prefix}http_requests_total[5s]))"
    )
}

/// The single value of an instant query, if it has exactly one series.
fn single(r: &QueryResult) -> Option<f64> {
    match r.series.as_slice() {
        [s] => Some(s.value),
        _ => None,
    }
}

/// Polls `f` every 100 ms until it yields `Some`, or panics after `limit`.
async fn poll<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = f().await {
            return (v, started.elapsed());
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_ratio_follows_the_agent() {
    let agent = agent("gl_002_").await;
    agent.handle().set_error_ratio(0.2).expect("ratio");
    let prom = PrometheusProcess::start(&[ScrapeTarget::new(agent.addr())], &[]).await;
    println!("prometheus ready after {:?}", prom.ready_after);
    let c = client(&prom.url());
    let q = error_ratio("gl_002_");
    let (v, took) = poll("ratio ≈ 0.2", Duration::from_secs(30), || async {
        let r = c.query(&q, None).await.ok()?;
        single(&r).filter(|v| (v - 0.2).abs() < 0.01)
    })
    .await;
    println!("first ≈0.2 answer ({v}) after {took:?}");

    agent.handle().set_error_ratio(0.6).expect("ratio");
    let jump = Instant::now();
    let (v, _) = poll("ratio > 0.5", Duration::from_secs(30), || async {
        let r = c.query(&q, None).await.ok()?;
        single(&r).filter(|v| *v > 0.5)
    })
    .await;
    println!(
        "error ratio 0.2 -> 0.6: crossed 0.5 ({v:.3}) {:?} after the jump",
        jump.elapsed()
    );
    let (v, _) = poll("ratio ≈ 0.6", Duration::from_secs(30), || async {
        let r = c.query(&q, None).await.ok()?;
        single(&r).filter(|v| (v - 0.6).abs() < 0.01)
    })
    .await;
    println!("settled at {v:.4} {:?} after the jump", jump.elapsed());

    // The same signal as a range: a matrix with one point per second.
    let end = Utc::now();
    let start = end - chrono::Duration::seconds(10);
    let r = c
        .query_range(&q, start, end, Duration::from_secs(1))
        .await
        .expect("range query");
    assert_eq!(r.result_type, ResultType::Matrix);
    assert_eq!(r.series.len(), 1);
    assert!(r.series[0].points.len() >= 5, "{:?}", r.series[0].points);
    // the 5 s rate window still moves with scrape timing: settled means within 0.02
    assert!(
        (r.series[0].value - 0.6).abs() < 0.02,
        "range query's last value {} is not ≈ 0.6",
        r.series[0].value
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_quantile() {
    let agent = agent("lat_").await;
    agent.handle().set_latency(0.3).expect("latency");
    let prom = PrometheusProcess::start(&[ScrapeTarget::new(agent.addr())], &[]).await;
    let c = client(&prom.url());
    let q = "histogram_quantile(0.95, sum by (le) (rate(lat_http_request_duration_seconds_bucket[5s])))";
    // All observations in (0.25, 0.5]: 0.25 + 0.25 × 0.95 = 0.4875.
    let (v, took) = poll("p95", Duration::from_secs(30), || async {
        let r = c.query(q, None).await.ok()?;
        single(&r).filter(|v| !v.is_nan())
    })
    .await;
    println!("p95 = {v} after {took:?}");
    assert!((v - 0.4875).abs() < 1e-6, "p95 {v}");
    assert!(
        v > 0.25 && v <= 0.5,
        "inside the configured latency's bucket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_empty_results_and_special_values() {
    let prom = PrometheusProcess::start(&[], &[]).await;
    // A path-less base URL with a trailing slash, a bearer token and a tenant
    // header: Prometheus ignores the last two, compatible servers need them.
    let mut config = PromClientConfig::new(format!("{}/", prom.url()));
    config.bearer_token = Some("secret".into());
    config
        .headers
        .push(("X-Scope-OrgID".into(), "tenant-1".into()));
    let c = PromClient::new(config).expect("client");

    match c.query("sum(rate(x[5m]", None).await {
        Err(PromError::Api {
            error_type,
            status,
            message,
        }) => {
            assert_eq!(error_type, "bad_data");
            assert_eq!(status, 400);
            assert!(!message.is_empty());
        }
        other => panic!("expected bad_data, got {other:?}"),
    }
    let err = c.query("sum(rate(x[5m]", None).await.expect_err("bad");
    assert_eq!(err.metric_label(), "bad_data");

    let r = c.query("no_such_metric_total", None).await.expect("query");
    assert_eq!(r.result_type, ResultType::Vector);
    assert!(r.series.is_empty());
    assert!(r.warnings.is_empty());

    let r = c.query("0/0", Some(Utc::now())).await.expect("0/0");
    assert_eq!(r.result_type, ResultType::Scalar);
    assert!(single(&r).expect("one value").is_nan());
    let r = c.query("vector(0)/0", None).await.expect("vector NaN");
    assert_eq!(r.result_type, ResultType::Vector);
    assert!(single(&r).expect("one value").is_nan());
    let r = c.query("1/0", None).await.expect("+Inf");
    assert_eq!(single(&r), Some(f64::INFINITY));
    let r = c.query("-1/0", None).await.expect("-Inf");
    assert_eq!(single(&r), Some(f64::NEG_INFINITY));

    let now = Utc::now();
    let err = c
        .query_range(
            "1",
            now,
            now - chrono::Duration::seconds(60),
            Duration::from_secs(1),
        )
        .await
        .expect_err("end before start");
    assert!(
        matches!(&err, PromError::Api { error_type, status: 400, .. } if error_type == "bad_data"),
        "{err:?}"
    );

    // GET works the same as POST against a real server.
    let mut get = PromClientConfig::new(prom.url());
    get.method = QueryMethod::Get;
    let get = PromClient::new(get).expect("client");
    assert_eq!(single(&get.query("2", None).await.expect("GET")), Some(2.0));
    let err = get.query("sum(", None).await.expect_err("GET bad_data");
    assert!(matches!(err, PromError::Api { status: 400, .. }), "{err:?}");

    // A wrong path prefix is an HTTP error, not a decode panic.
    let wrong = client(&format!("{}/prefix", prom.url()));
    let err = wrong.query("1", None).await.expect_err("404");
    assert!(
        matches!(err, PromError::Http { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Accept connections and hold them open without ever answering.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut config = PromClientConfig::new(format!("http://{addr}"));
    config.timeout = Duration::from_millis(500);
    let c = PromClient::new(config).expect("client");
    let started = Instant::now();
    let err = c.query("up", None).await.expect_err("must time out");
    let took = started.elapsed();
    println!("timed out after {took:?}");
    assert!(
        matches!(err, PromError::Timeout { timeout_ms: 500 }),
        "{err:?}"
    );
    assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(2));
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_prometheus_is_a_transport_error() {
    let mut prom = PrometheusProcess::start(&[], &[]).await;
    let c = client(&prom.url());
    c.query("1", None).await.expect("alive");
    prom.kill();
    let started = Instant::now();
    let err = c.query("1", None).await.expect_err("dead");
    assert!(matches!(err, PromError::Transport(_)), "{err:?}");
    assert_eq!(err.metric_label(), "transport");
    assert!(started.elapsed() < Duration::from_secs(2), "no hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_query_serves_many_workloads() {
    let a = agent("shop_").await;
    let b = agent("shop_").await;
    a.handle().set_error_ratio(0.1).expect("ratio");
    b.handle().set_error_ratio(0.7).expect("ratio");
    let targets = [
        ScrapeTarget::new(a.addr())
            .label("namespace", "prod")
            .label("deployment", "a"),
        ScrapeTarget::new(b.addr())
            .label("namespace", "prod")
            .label("deployment", "b"),
    ];
    let prom = PrometheusProcess::start(&targets, &[]).await;
    let c = client(&prom.url());
    let by = ["namespace", "deployment"];
    let q = batched(
        "sum by ($by) (rate(shop_http_requests_total{status=~\"5..\"}[5s])) \
         / sum by ($by) (rate(shop_http_requests_total[5s]))",
        &by,
    )
    .expect("batched query");
    let key = |d: &str| vec!["prod".to_string(), d.to_string()];
    let (groups, took): (HashMap<Vec<String>, f64>, _) =
        poll("both workloads", Duration::from_secs(30), || async {
            let r = c.query(&q, None).await.ok()?;
            let g = group_by(&r, &by).ok()?;
            let ok = |d: &str, want: f64| g.get(&key(d)).is_some_and(|v| (v - want).abs() < 0.01);
            (ok("a", 0.1) && ok("b", 0.7)).then_some(g)
        })
        .await;
    println!("batched answer after {took:?}: {groups:?}");
    assert_eq!(groups.len(), 2);
    assert!(batched("sum(rate(shop_http_requests_total[5s]))", &by).is_err());
}

type Hooks = mpsc::UnboundedSender<(Instant, serde_json::Value)>;

async fn hook(State(tx): State<Hooks>, Json(body): Json<serde_json::Value>) -> &'static str {
    let _ = tx.send((Instant::now(), body));
    "ok"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_fires_and_alertmanager_posts_the_webhook() {
    // The webhook receiver.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook_addr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(tx);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let am = AlertmanagerProcess::start(&format!("http://{hook_addr}/hook")).await;
    println!("alertmanager ready after {:?}", am.ready_after);
    let agent = agent("gl_002_").await;
    let rules = format!(
        "groups:\n  - name: rollbackd\n    rules:\n      - alert: RollbackdErrorRate\n        \
         expr: '{} > 0.5'\n        for: 0s\n        labels:\n          agent: GL-002\n          \
         condition: error_ratio_above_0.5\n",
        error_ratio("gl_002_")
    );
    let prom = PrometheusProcess::start_with_alertmanager(
        &[ScrapeTarget::new(agent.addr())],
        &[&rules],
        Some(&am.host_port()),
    )
    .await;
    println!("prometheus ready after {:?}", prom.ready_after);
    let c = client(&prom.url());
    let q = error_ratio("gl_002_");
    poll("healthy data", Duration::from_secs(30), || async {
        let r = c.query(&q, None).await.ok()?;
        single(&r).filter(|v| *v == 0.0)
    })
    .await;

    agent.handle().set_error_ratio(0.6).expect("ratio");
    let jump = Instant::now();
    let (_, crossed) = poll("ratio > 0.5", Duration::from_secs(30), || async {
        let r = c.query(&q, None).await.ok()?;
        single(&r).filter(|v| *v > 0.5)
    })
    .await;
    let (arrived, body) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("webhook within 30 s")
        .expect("channel open");
    println!(
        "jump -> query crosses 0.5: {crossed:?}; jump -> webhook: {:?}",
        arrived - jump
    );
    println!("webhook body: {body}");
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    let alert = &body["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "RollbackdErrorRate");
    assert_eq!(alert["labels"]["agent"], "GL-002");
    assert_eq!(alert["labels"]["condition"], "error_ratio_above_0.5");
    assert_eq!(alert["status"], "firing");
    assert!(
        alert["fingerprint"].as_str().is_some_and(|f| !f.is_empty()),
        "fingerprint present"
    );

    // Recovery: send_resolved delivers a "resolved" notification.
    agent.handle().set_error_ratio(0.0).expect("ratio");
    let recovery = Instant::now();
    let resolved = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some((at, body)) = rx.recv().await {
            if body["status"] == "resolved" {
                return Some((at, body));
            }
        }
        None
    })
    .await
    .expect("resolved webhook within 30 s")
    .expect("channel open");
    println!("recovery -> resolved webhook: {:?}", resolved.0 - recovery);
    assert_eq!(resolved.1["alerts"][0]["status"], "resolved");
    assert_eq!(resolved.1["alerts"][0]["fingerprint"], alert["fingerprint"]);
    assert_ne!(resolved.1["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    server.abort();
}

/// What the fake compatible endpoint saw.
#[derive(Debug, Clone, Default)]
struct Seen {
    method: String,
    authorization: String,
    tenant: String,
    params: Vec<(String, String)>,
}

type SeenLog = std::sync::Arc<std::sync::Mutex<Vec<Seen>>>;

async fn fake_api(
    State(log): State<SeenLog>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let encoded = raw.unwrap_or(body);
    let url = reqwest::Url::parse(&format!("http://x/?{encoded}")).expect("params");
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let query = params
        .iter()
        .find(|(k, _)| k == "query")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    log.lock().expect("log").push(Seen {
        method: method.to_string(),
        authorization: header("authorization"),
        tenant: header("x-scope-orgid"),
        params,
    });
    let json = |status: u16, body: &str| {
        (
            axum::http::StatusCode::from_u16(status).expect("status"),
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response()
    };
    match query.as_str() {
        "exec" => json(
            422,
            r#"{"status":"error","errorType":"execution","error":"too many samples"}"#,
        ),
        "html" => (
            axum::http::StatusCode::BAD_GATEWAY,
            "<html>bad gateway</html>",
        )
            .into_response(),
        _ => json(
            200,
            r#"{"status":"success","warnings":["partial response: store 2 down"],
               "data":{"resultType":"vector","result":[
               {"metric":{"deployment":"a"},"value":[1700000000,"0.5"]},
               {"metric":{"deployment":"b"},"value":[1700000000,"+Inf"]}]}}"#,
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compatible_endpoint_prefix_auth_tenant_and_warnings() {
    let log: SeenLog = Default::default();
    let app = axum::Router::new()
        .route(
            "/prometheus/api/v1/query",
            axum::routing::get(fake_api).post(fake_api),
        )
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    for method in [QueryMethod::Post, QueryMethod::Get] {
        let mut config = PromClientConfig::new(format!("http://{addr}/prometheus/"));
        config.bearer_token = Some("s3cret".into());
        config
            .headers
            .push(("X-Scope-OrgID".into(), "tenant-1".into()));
        config.method = method;
        let c = PromClient::new(config).expect("client");
        let at = chrono::DateTime::from_timestamp_millis(1_700_000_000_250).expect("time");
        let r = c
            .query("sum by (deployment) (x)", Some(at))
            .await
            .expect("query");
        assert_eq!(r.warnings, vec!["partial response: store 2 down"]);
        let g = group_by(&r, &["deployment"]).expect("groups");
        assert_eq!(g[&vec!["a".to_string()]], 0.5);
        assert_eq!(g[&vec!["b".to_string()]], f64::INFINITY);
        let seen = log.lock().expect("log").pop().expect("request seen");
        assert_eq!(
            seen.method,
            if method == QueryMethod::Post {
                "POST"
            } else {
                "GET"
            }
        );
        assert_eq!(seen.authorization, "Bearer s3cret");
        assert_eq!(seen.tenant, "tenant-1");
        assert!(
            seen.params
                .contains(&("query".into(), "sum by (deployment) (x)".into()))
        );
        assert!(
            seen.params
                .contains(&("time".into(), "1700000000.250".into()))
        );

        match c.query("exec", None).await {
            Err(PromError::Api {
                error_type, status, ..
            }) => {
                assert_eq!(error_type, "execution");
                assert_eq!(status, 422);
            }
            other => panic!("expected execution error, got {other:?}"),
        }
        let err = c.query("html", None).await.expect_err("502");
        assert_eq!(err.metric_label(), "http_5xx");
    }
    server.abort();
}
