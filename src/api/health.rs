//! `/healthz`, `/readyz` and `/metrics`.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::ApiState;
use rollbackd_core::incident::State as IncidentState;

/// Alive: the process answers and every critical task still runs. A stopped task
/// (evaluation loop, incident runner, watcher, outbox worker) answers 503 naming it, so
/// Kubernetes restarts the pod.
#[utoipa::path(get, path = "/healthz", tag = "health",
    summary = "Liveness: the process answers and every critical task still runs",
    responses(
        (status = 200, description = "ok", body = String, content_type = "text/plain"),
        (status = 503, description = "a critical task stopped; one line per stopped task names it",
            body = String, content_type = "text/plain"),
    ))]
pub async fn healthz(State(state): State<ApiState>) -> (StatusCode, String) {
    let failures = state.tasks.failures();
    if failures.is_empty() {
        return (StatusCode::OK, "ok".into());
    }
    let lines: Vec<String> = failures
        .iter()
        .map(|(task, why)| format!("task {task} stopped: {why}"))
        .collect();
    (StatusCode::SERVICE_UNAVAILABLE, lines.join("\n"))
}

/// Ready: state loaded, store answering.
#[utoipa::path(get, path = "/readyz", tag = "health",
    summary = "Readiness: state loaded and the store answering",
    responses(
        (status = 200, description = "ready", body = String, content_type = "text/plain"),
        (status = 503, description = "starting, or the store is unavailable", body = String,
            content_type = "text/plain"),
    ))]
pub async fn readyz(State(state): State<ApiState>) -> (StatusCode, &'static str) {
    if !state.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting");
    }
    match state.store.pauses().await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable"),
    }
}

/// rollbackd's own metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    summary = "rollbackd's own metrics (OpenMetrics 1.0 text format, ending in `# EOF`)",
    responses(
        (status = 200, description = "the metrics", body = String,
            content_type = "application/openmetrics-text"),
    ))]
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    if let Ok(counts) = state.store.incident_counts().await {
        for s in IncidentState::ALL {
            let n = counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
            state
                .metrics
                .set("rollbackd_incidents", &[s.as_str()], n as f64);
        }
    }
    if let Ok(counts) = state.store.outbox_counts().await {
        for (s, n) in counts {
            state.metrics.set("rollbackd_outbox", &[&s], n as f64);
        }
    }
    (
        [("content-type", crate::metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
}
