//! A synthetic workload exposing Prometheus metrics, for tests and the demo.
//!
//! It serves `/metrics` (text format) with `<prefix>http_requests_total{status="200"|"500"}`
//! counters, a `<prefix>http_request_duration_seconds` histogram and a
//! `<prefix>healthy` gauge; `/health` (200 or 503); and `/control` (`GET` shows
//! the state, `POST {"error_ratio":0.6}` changes it). A background task adds
//! `rps × tick` requests every tick, deterministically: a fraction `error_ratio`
//! of them are 500s, and the latency mix decides which buckets they land in.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::task::JoinHandle;

/// Upper bounds of the latency histogram's finite buckets, in seconds.
pub const BUCKETS: [f64; 9] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Errors of the synthetic agent.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A setting is out of range (negative latency, ratio outside [0, 1], bad prefix, …).
    #[error("invalid setting: {0}")]
    Invalid(String),
}

impl AgentError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            AgentError::Bind { .. } => "bind",
            AgentError::Invalid(_) => "invalid_setting",
        }
    }
}

/// Start-up settings of a synthetic agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Prefix of every metric name, e.g. `gl_002_` (may be empty).
    pub prefix: String,
    /// Simulated requests per second.
    pub rps: f64,
    /// How often the traffic generator adds requests.
    pub tick: Duration,
    /// Fraction of requests answered with status 500, in `[0, 1]`.
    pub error_ratio: f64,
    /// Latency observed by every request, in seconds.
    pub latency_seconds: f64,
}

impl AgentConfig {
    /// 100 rps, a 100 ms tick, no errors, 20 ms latency.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            rps: 100.0,
            tick: Duration::from_millis(100),
            error_ratio: 0.0,
            latency_seconds: 0.02,
        }
    }
}

/// The agent's observable state, as `GET /control` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Current error ratio.
    pub error_ratio: f64,
    /// Current latency mix: `(seconds, fraction)` pairs, fractions summing to 1.
    pub latency_mix: Vec<(f64, f64)>,
    /// Whether `/health` answers 200.
    pub healthy: bool,
    /// Current requests per second.
    pub rps: f64,
    /// Total 200 responses counted since start or the last reset.
    pub requests_ok: f64,
    /// Total 500 responses counted since start or the last reset.
    pub requests_error: f64,
}

/// A `POST /control` body; absent fields are left unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ControlRequest {
    /// New error ratio in `[0, 1]`.
    pub error_ratio: Option<f64>,
    /// New single latency in seconds.
    pub latency_seconds: Option<f64>,
    /// New health.
    pub healthy: Option<bool>,
    /// New requests per second.
    pub rps: Option<f64>,
    /// `true` to zero every counter (simulates a process restart).
    pub reset_counters: Option<bool>,
}

#[derive(Debug)]
struct Inner {
    prefix: String,
    error_ratio: f64,
    latency_mix: Vec<(f64, f64)>,
    healthy: bool,
    rps: f64,
    ok: f64,
    errors: f64,
    /// Non-cumulative counts per bucket; the last entry is `+Inf`.
    buckets: [f64; BUCKETS.len() + 1],
    sum: f64,
}

/// In-process control of a running agent. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AgentHandle(Arc<Mutex<Inner>>);

fn check_ratio(r: f64) -> Result<(), AgentError> {
    if (0.0..=1.0).contains(&r) {
        Ok(())
    } else {
        Err(AgentError::Invalid(format!(
            "error ratio {r} is not in [0, 1]"
        )))
    }
}

fn check_non_negative(what: &str, v: f64) -> Result<(), AgentError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(AgentError::Invalid(format!(
            "{what} {v} must be finite and >= 0"
        )))
    }
}

impl AgentHandle {
    fn new(config: &AgentConfig) -> Result<Self, AgentError> {
        let valid_prefix = config.prefix.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
        if !valid_prefix {
            return Err(AgentError::Invalid(format!(
                "metric prefix {:?} is not a valid metric name start",
                config.prefix
            )));
        }
        check_ratio(config.error_ratio)?;
        check_non_negative("latency", config.latency_seconds)?;
        check_non_negative("rps", config.rps)?;
        Ok(Self(Arc::new(Mutex::new(Inner {
            prefix: config.prefix.clone(),
            error_ratio: config.error_ratio,
            latency_mix: vec![(config.latency_seconds, 1.0)],
            healthy: true,
            rps: config.rps,
            ok: 0.0,
            errors: 0.0,
            buckets: [0.0; BUCKETS.len() + 1],
            sum: 0.0,
        }))))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters invalid.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the fraction of requests that fail with 500 (`[0, 1]`).
    pub fn set_error_ratio(&self, ratio: f64) -> Result<(), AgentError> {
        check_ratio(ratio)?;
        self.lock().error_ratio = ratio;
        Ok(())
    }

    /// Makes every request take `seconds`.
    pub fn set_latency(&self, seconds: f64) -> Result<(), AgentError> {
        self.set_latency_mix(&[(seconds, 1.0)])
    }

    /// Sets a latency distribution: `(seconds, weight)` pairs; weights are normalised.
    pub fn set_latency_mix(&self, mix: &[(f64, f64)]) -> Result<(), AgentError> {
        let mut total = 0.0;
        for &(seconds, weight) in mix {
            check_non_negative("latency", seconds)?;
            check_non_negative("weight", weight)?;
            total += weight;
        }
        if total <= 0.0 {
            return Err(AgentError::Invalid(
                "latency mix has no positive weight".into(),
            ));
        }
        self.lock().latency_mix = mix.iter().map(|&(s, w)| (s, w / total)).collect();
        Ok(())
    }

    /// Sets the simulated requests per second.
    pub fn set_rps(&self, rps: f64) -> Result<(), AgentError> {
        check_non_negative("rps", rps)?;
        self.lock().rps = rps;
        Ok(())
    }

    /// Makes `/health` answer 200 (`true`) or 503 (`false`).
    pub fn set_healthy(&self, healthy: bool) {
        self.lock().healthy = healthy;
    }

    /// Zeroes every counter and the histogram, as a restarted process would.
    pub fn reset_counters(&self) {
        let mut s = self.lock();
        s.ok = 0.0;
        s.errors = 0.0;
        s.buckets = [0.0; BUCKETS.len() + 1];
        s.sum = 0.0;
    }

    /// Adds the traffic of `seconds` at the current settings (the background
    /// task calls this every tick; tests may call it directly).
    pub fn advance(&self, seconds: f64) {
        let mut s = self.lock();
        let n = s.rps * seconds.max(0.0);
        let errors = n * s.error_ratio;
        s.errors += errors;
        s.ok += n - errors;
        let mix = s.latency_mix.clone();
        for (latency, fraction) in mix {
            let count = n * fraction;
            let idx = BUCKETS
                .iter()
                .position(|&le| latency <= le)
                .unwrap_or(BUCKETS.len());
            if let Some(bucket) = s.buckets.get_mut(idx) {
                *bucket += count;
            }
            s.sum += latency * count;
        }
    }

    /// The current state.
    pub fn status(&self) -> AgentStatus {
        let s = self.lock();
        AgentStatus {
            error_ratio: s.error_ratio,
            latency_mix: s.latency_mix.clone(),
            healthy: s.healthy,
            rps: s.rps,
            requests_ok: s.ok,
            requests_error: s.errors,
        }
    }

    /// Applies a control request; all fields are validated before any is applied.
    pub fn apply(&self, req: &ControlRequest) -> Result<AgentStatus, AgentError> {
        if let Some(r) = req.error_ratio {
            check_ratio(r)?;
        }
        if let Some(l) = req.latency_seconds {
            check_non_negative("latency", l)?;
        }
        if let Some(rps) = req.rps {
            check_non_negative("rps", rps)?;
        }
        if let Some(r) = req.error_ratio {
            self.set_error_ratio(r)?;
        }
        if let Some(l) = req.latency_seconds {
            self.set_latency(l)?;
        }
        if let Some(rps) = req.rps {
            self.set_rps(rps)?;
        }
        if let Some(h) = req.healthy {
            self.set_healthy(h);
        }
        if req.reset_counters == Some(true) {
            self.reset_counters();
        }
        Ok(self.status())
    }

    /// The `/metrics` page in the text exposition format.
    pub fn render(&self) -> String {
        let s = self.lock();
        let p = &s.prefix;
        let mut out = String::with_capacity(2048);
        out.push_str(&format!(
            "# HELP {p}http_requests_total Synthetic HTTP requests by status.\n\
             # TYPE {p}http_requests_total counter\n\
             {p}http_requests_total{{status=\"200\"}} {}\n\
             {p}http_requests_total{{status=\"500\"}} {}\n",
            s.ok, s.errors
        ));
        out.push_str(&format!(
            "# HELP {p}http_request_duration_seconds Synthetic request latency.\n\
             # TYPE {p}http_request_duration_seconds histogram\n"
        ));
        let mut cumulative = 0.0;
        for (i, count) in s.buckets.iter().enumerate() {
            cumulative += count;
            let le = BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| format!("{b}"));
            out.push_str(&format!(
                "{p}http_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}\n"
            ));
        }
        out.push_str(&format!(
            "{p}http_request_duration_seconds_sum {}\n{p}http_request_duration_seconds_count {cumulative}\n",
            s.sum
        ));
        out.push_str(&format!(
            "# HELP {p}healthy Whether the synthetic agent reports healthy.\n\
             # TYPE {p}healthy gauge\n{p}healthy {}\n",
            u8::from(s.healthy)
        ));
        out
    }
}

/// A running synthetic agent; stops its server and traffic when dropped.
#[derive(Debug)]
pub struct SyntheticAgent {
    addr: SocketAddr,
    handle: AgentHandle,
    server: JoinHandle<()>,
    traffic: JoinHandle<()>,
}

impl SyntheticAgent {
    /// Binds `addr` (port 0 picks a free port) and starts serving and generating traffic.
    pub async fn start(addr: SocketAddr, config: AgentConfig) -> Result<Self, AgentError> {
        if config.tick.is_zero() {
            return Err(AgentError::Invalid("tick must be positive".into()));
        }
        let handle = AgentHandle::new(&config)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AgentError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| AgentError::Bind { addr, source })?;
        let app = router(handle.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "synthetic agent server stopped");
            }
        });
        let traffic_handle = handle.clone();
        let tick = config.tick;
        let traffic = tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            loop {
                interval.tick().await;
                traffic_handle.advance(tick.as_secs_f64());
            }
        });
        Ok(Self {
            addr: bound,
            handle,
            server,
            traffic,
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// In-process control.
    pub fn handle(&self) -> AgentHandle {
        self.handle.clone()
    }
}

impl Drop for SyntheticAgent {
    fn drop(&mut self) {
        self.traffic.abort();
        self.server.abort();
    }
}

/// The agent's HTTP routes over a handle (for embedding in another server).
pub fn router(handle: AgentHandle) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/control", get(get_control).post(post_control))
        .with_state(handle)
}

async fn metrics(State(h): State<AgentHandle>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        h.render(),
    )
        .into_response()
}

async fn health(State(h): State<AgentHandle>) -> Response {
    if h.status().healthy {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n").into_response()
    }
}

async fn get_control(State(h): State<AgentHandle>) -> Json<AgentStatus> {
    Json(h.status())
}

async fn post_control(State(h): State<AgentHandle>, Json(req): Json<ControlRequest>) -> Response {
    match h.apply(&req) {
        Ok(status) => Json(status).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_is_deterministic() {
        let h = AgentHandle::new(&AgentConfig::new("x_")).unwrap();
        h.set_error_ratio(0.25).unwrap();
        h.set_latency_mix(&[(0.07, 1.0), (0.3, 3.0)]).unwrap();
        h.advance(1.0);
        let s = h.status();
        assert_eq!(s.requests_ok, 75.0);
        assert_eq!(s.requests_error, 25.0);
        let text = h.render();
        assert!(
            text.contains("x_http_requests_total{status=\"500\"} 25\n"),
            "{text}"
        );
        assert!(text.contains("x_http_request_duration_seconds_bucket{le=\"0.05\"} 0\n"));
        assert!(text.contains("x_http_request_duration_seconds_bucket{le=\"0.1\"} 25\n"));
        assert!(text.contains("x_http_request_duration_seconds_bucket{le=\"0.5\"} 100\n"));
        assert!(text.contains("x_http_request_duration_seconds_bucket{le=\"+Inf\"} 100\n"));
        assert!(text.contains("x_http_request_duration_seconds_count 100\n"));
        h.reset_counters();
        assert_eq!(h.status().requests_ok, 0.0);
    }

    #[test]
    fn invalid_settings_are_errors() {
        assert!(AgentHandle::new(&AgentConfig::new("9x")).is_err());
        let h = AgentHandle::new(&AgentConfig::new("")).unwrap();
        assert!(h.set_error_ratio(1.5).is_err());
        assert!(h.set_error_ratio(f64::NAN).is_err());
        assert!(h.set_latency(-1.0).is_err());
        assert!(h.set_latency_mix(&[]).is_err());
        let bad = ControlRequest {
            error_ratio: Some(0.5),
            rps: Some(-1.0),
            ..ControlRequest::default()
        };
        assert!(h.apply(&bad).is_err());
        assert_eq!(h.status().error_ratio, 0.0, "nothing applied on error");
    }

    #[test]
    fn slow_requests_land_in_inf() {
        let h = AgentHandle::new(&AgentConfig::new("")).unwrap();
        h.set_latency(60.0).unwrap();
        h.advance(0.1);
        let text = h.render();
        assert!(text.contains("http_request_duration_seconds_bucket{le=\"30\"} 0\n"));
        assert!(text.contains("http_request_duration_seconds_bucket{le=\"+Inf\"} 10\n"));
    }
}
