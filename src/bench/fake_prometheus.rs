//! A stand-in for the Prometheus HTTP API that answers the fleet's shared queries with one
//! series per workload, from answers serialized once up front, and counts what it was asked.
//! It keeps Prometheus' own query cost out of the figures: what is measured is rollbackd's
//! side of a cycle (requests, decoding, mapping back, evaluating).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Form, Router};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the stand-in answers: per query text, the value every workload's series carries.
#[derive(Debug, Clone)]
pub struct Answers {
    /// The namespace of every series.
    pub namespace: String,
    /// The `deployment` label of each series, one per workload.
    pub deployments: Vec<String>,
    /// Query text → value.
    pub values: Vec<(String, f64)>,
}

struct Shared {
    bodies: HashMap<String, Bytes>,
    empty_vector: Bytes,
    empty_matrix: Bytes,
    queries: AtomicUsize,
    range_queries: AtomicUsize,
}

/// A running stand-in.
pub struct FakePrometheus {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

fn vector(answers: &Answers, value: f64, at: f64) -> Bytes {
    let series: Vec<String> = answers
        .deployments
        .iter()
        .map(|d| {
            format!(
                r#"{{"metric":{{"namespace":"{}","deployment":"{d}"}},"value":[{at},"{value}"]}}"#,
                answers.namespace
            )
        })
        .collect();
    Bytes::from(format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        series.join(",")
    ))
}

async fn instant(
    State(shared): State<Arc<Shared>>,
    Form(form): Form<HashMap<String, String>>,
) -> impl IntoResponse {
    shared.queries.fetch_add(1, Ordering::Relaxed);
    let body = form
        .get("query")
        .and_then(|q| shared.bodies.get(q))
        .cloned()
        .unwrap_or_else(|| shared.empty_vector.clone());
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn range(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared.range_queries.fetch_add(1, Ordering::Relaxed);
    (
        [(header::CONTENT_TYPE, "application/json")],
        shared.empty_matrix.clone(),
    )
}

impl FakePrometheus {
    /// Serves `answers` on a free port of 127.0.0.1.
    pub async fn start(answers: &Answers) -> std::io::Result<Self> {
        let at = chrono::Utc::now().timestamp() as f64;
        let shared = Arc::new(Shared {
            bodies: answers
                .values
                .iter()
                .map(|(q, v)| (q.clone(), vector(answers, *v, at)))
                .collect(),
            empty_vector: Bytes::from_static(
                br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
            ),
            empty_matrix: Bytes::from_static(
                br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
            ),
            queries: AtomicUsize::new(0),
            range_queries: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/api/v1/query", post(instant).get(instant))
            .route("/api/v1/query_range", post(range).get(range))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { c.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "stand-in Prometheus stopped");
            }
        });
        Ok(Self {
            addr,
            shared,
            cancel,
            task,
        })
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Instant queries answered so far.
    pub fn queries(&self) -> usize {
        self.shared.queries.load(Ordering::Relaxed)
    }

    /// Range queries answered so far.
    pub fn range_queries(&self) -> usize {
        self.shared.range_queries.load(Ordering::Relaxed)
    }

    /// Stops serving.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}
