//! Errors returned by the Prometheus HTTP API client.

use thiserror::Error;

/// Everything that can go wrong when asking a Prometheus-compatible API.
#[derive(Debug, Error)]
pub enum PromError {
    /// The client configuration is unusable (bad URL, bad header, bad TLS setup).
    #[error("invalid Prometheus client configuration: {0}")]
    Config(String),
    /// No complete answer arrived within the configured per-request timeout.
    #[error("Prometheus request timed out after {timeout_ms} ms")]
    Timeout {
        /// The timeout that was exceeded, in milliseconds.
        timeout_ms: u128,
    },
    /// The request could not be sent or the answer could not be read
    /// (connection refused, reset, DNS failure, …).
    #[error("Prometheus transport error: {0}")]
    Transport(String),
    /// The API answered with its error envelope
    /// (`{"status":"error","errorType":"bad_data","error":"…"}`).
    #[error("Prometheus API error {error_type} (HTTP {status}): {message}")]
    Api {
        /// The envelope's `errorType`, e.g. `bad_data`, `execution`, `timeout`.
        error_type: String,
        /// The envelope's `error` text.
        message: String,
        /// The HTTP status code of the answer.
        status: u16,
    },
    /// A non-success HTTP status without a parseable API error envelope
    /// (e.g. a proxy in front of Prometheus answering 502 with HTML).
    #[error("Prometheus answered HTTP {status}: {body}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The beginning of the body, for diagnosis.
        body: String,
    },
    /// The answer was not the JSON shape the API documents.
    #[error("Prometheus answer could not be decoded: {0}")]
    Decode(String),
}

impl PromError {
    /// A short, stable label for metrics (`signal_errors_total{kind=…}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            PromError::Config(_) => "config",
            PromError::Timeout { .. } => "timeout",
            PromError::Transport(_) => "transport",
            PromError::Api { error_type, .. } => match error_type.as_str() {
                "bad_data" => "bad_data",
                "execution" => "execution",
                "timeout" => "query_timeout",
                "canceled" => "canceled",
                "unavailable" => "unavailable",
                "not_found" => "not_found",
                "internal" => "internal",
                _ => "api_other",
            },
            PromError::Http { status, .. } if *status >= 500 => "http_5xx",
            PromError::Http { .. } => "http_4xx",
            PromError::Decode(_) => "decode",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_labels_are_stable() {
        let api = PromError::Api {
            error_type: "bad_data".into(),
            message: "x".into(),
            status: 400,
        };
        assert_eq!(api.metric_label(), "bad_data");
        let odd = PromError::Api {
            error_type: "weird".into(),
            message: "x".into(),
            status: 422,
        };
        assert_eq!(odd.metric_label(), "api_other");
        let http = PromError::Http {
            status: 502,
            body: String::new(),
        };
        assert_eq!(http.metric_label(), "http_5xx");
        assert_eq!(
            PromError::Timeout { timeout_ms: 5 }.metric_label(),
            "timeout"
        );
    }
}
