//! A client for the Prometheus HTTP query API (`/api/v1/query`,
//! `/api/v1/query_range`), usable against any compatible endpoint
//! (Prometheus, Thanos, Mimir, VictoriaMetrics).
//!
//! Retries are not done here: callers wrap calls with `backon`.

mod batch;
mod error;
mod response;

pub use batch::{BatchError, batched, group_by};
pub use error::PromError;
pub use response::{Point, QueryResult, ResultType, Series, parse_sample_value};

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

/// How query parameters are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryMethod {
    /// `POST` with a form-encoded body (what Grafana does; no URL length limit).
    #[default]
    Post,
    /// `GET` with URL query parameters (for caches that only cache GETs).
    Get,
}

/// How to reach a Prometheus-compatible API.
#[derive(Debug, Clone)]
pub struct PromClientConfig {
    /// Base URL, optionally with a path prefix, e.g. `http://thanos:9090` or
    /// `https://mimir.example/prometheus`. `/api/v1/…` is appended to it.
    pub base_url: String,
    /// Timeout for each whole request (connect, send, and read the answer).
    pub timeout: Duration,
    /// Optional bearer token sent as `Authorization: Bearer …`.
    pub bearer_token: Option<String>,
    /// Extra headers sent with every request, e.g. `X-Scope-OrgID`.
    pub headers: Vec<(String, String)>,
    /// `POST` (default) or `GET`.
    pub method: QueryMethod,
}

impl PromClientConfig {
    /// A configuration with a 10 s timeout, no token and no extra headers.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            timeout: Duration::from_secs(10),
            bearer_token: None,
            headers: Vec::new(),
            method: QueryMethod::Post,
        }
    }
}

/// A Prometheus HTTP API client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PromClient {
    http: reqwest::Client,
    query_url: reqwest::Url,
    query_range_url: reqwest::Url,
    timeout: Duration,
    method: QueryMethod,
}

impl PromClient {
    /// Builds a client; fails on an unusable URL or header.
    pub fn new(config: PromClientConfig) -> Result<Self, PromError> {
        let base = config.base_url.trim_end_matches('/');
        let url = |suffix: &str| {
            reqwest::Url::parse(&format!("{base}{suffix}"))
                .map_err(|e| PromError::Config(format!("base URL {base:?}: {e}")))
        };
        let query_url = url("/api/v1/query")?;
        let query_range_url = url("/api/v1/query_range")?;
        if !matches!(query_url.scheme(), "http" | "https") {
            return Err(PromError::Config(format!(
                "base URL {base:?} must be http or https"
            )));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| PromError::Config(format!("header name {name:?}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| PromError::Config(format!("header {name} value: {e}")))?;
            headers.insert(name, value);
        }
        if let Some(token) = &config.bearer_token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| PromError::Config("bearer token is not a valid header".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .default_headers(headers)
            .build()
            .map_err(|e| PromError::Config(e.to_string()))?;
        Ok(Self {
            http,
            query_url,
            query_range_url,
            timeout: config.timeout,
            method: config.method,
        })
    }

    /// Evaluates an instant query at `at` (server time "now" when `None`).
    pub async fn query(
        &self,
        promql: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<QueryResult, PromError> {
        let mut form = vec![("query", promql.to_string())];
        if let Some(at) = at {
            form.push(("time", format_time(at)));
        }
        self.send(self.query_url.clone(), &form).await
    }

    /// Evaluates a range query from `start` to `end` every `step`.
    pub async fn query_range(
        &self,
        promql: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<QueryResult, PromError> {
        if step.is_zero() {
            return Err(PromError::Config(
                "query_range step must be positive".into(),
            ));
        }
        let form = vec![
            ("query", promql.to_string()),
            ("start", format_time(start)),
            ("end", format_time(end)),
            ("step", format!("{}", step.as_secs_f64())),
        ];
        self.send(self.query_range_url.clone(), &form).await
    }

    async fn send(
        &self,
        url: reqwest::Url,
        form: &[(&str, String)],
    ) -> Result<QueryResult, PromError> {
        let request = match self.method {
            QueryMethod::Post => self.http.post(url).form(form),
            QueryMethod::Get => self.http.get(url).query(form),
        };
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| self.transport(e))?;
        response::decode(status, &body)
    }

    fn transport(&self, e: reqwest::Error) -> PromError {
        if e.is_timeout() {
            PromError::Timeout {
                timeout_ms: self.timeout.as_millis(),
            }
        } else {
            // Include the source chain: reqwest's top-level text is terse.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            PromError::Transport(text)
        }
    }
}

/// Formats a time as Unix seconds with millisecond precision, as the API accepts.
fn format_time(at: DateTime<Utc>) -> String {
    let millis = at.timestamp_millis();
    format!("{}.{:03}", millis.div_euclid(1000), millis.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn time_format() {
        let t = Utc.timestamp_millis_opt(1_700_000_000_042).unwrap();
        assert_eq!(format_time(t), "1700000000.042");
    }

    #[test]
    fn bad_config_is_an_error_not_a_panic() {
        assert!(matches!(
            PromClient::new(PromClientConfig::new("not a url")),
            Err(PromError::Config(_))
        ));
        assert!(matches!(
            PromClient::new(PromClientConfig::new("ftp://x")),
            Err(PromError::Config(_))
        ));
        let mut c = PromClientConfig::new("http://127.0.0.1:9/prefix/");
        c.headers.push(("X-Scope-OrgID".into(), "tenant\n".into()));
        assert!(matches!(PromClient::new(c), Err(PromError::Config(_))));
    }

    #[test]
    fn prefix_is_kept() {
        let c = PromClient::new(PromClientConfig::new("http://127.0.0.1:9/prometheus/")).unwrap();
        assert_eq!(
            c.query_url.as_str(),
            "http://127.0.0.1:9/prometheus/api/v1/query"
        );
    }
}
