//! The one error type of the notifiers and the outbox worker.

use std::time::Duration;

use thiserror::Error;

/// Everything that can go wrong when delivering a notification.
///
/// [`NotifyError::is_transient`] decides whether the outbox retries the item later or
/// gives up at once.
#[derive(Debug, Error)]
pub enum NotifyError {
    /// A target kind was used without its credentials (e.g. no Slack token).
    #[error("{target}: not configured: {detail}")]
    NotConfigured {
        /// The target kind (`slack`, `statuspage`, …).
        target: &'static str,
        /// What is missing.
        detail: String,
    },
    /// The HTTP client could not be built.
    #[error("invalid notifier configuration: {0}")]
    Config(String),
    /// No answer within the request timeout (transient).
    #[error("{target}: request timed out")]
    Timeout {
        /// The target kind.
        target: &'static str,
    },
    /// The request could not be sent or the answer not read (transient).
    #[error("{target}: transport error: {detail}")]
    Transport {
        /// The target kind.
        target: &'static str,
        /// The client's description (without the URL, which may hold a secret).
        detail: String,
    },
    /// HTTP 429 (or Statuspage's 420): transient; wait at least `retry_after`.
    #[error("{target}: rate limited (HTTP {status})")]
    RateLimited {
        /// The target kind.
        target: &'static str,
        /// The HTTP status.
        status: u16,
        /// How long the service asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// A non-success HTTP status: 5xx and 408 are transient, other 4xx permanent.
    #[error("{target}: HTTP {status}: {detail}")]
    Http {
        /// The target kind.
        target: &'static str,
        /// The HTTP status.
        status: u16,
        /// The beginning of the answer body.
        detail: String,
    },
    /// The service answered with its own error code (Slack's `{"ok":false,"error":…}`).
    #[error("{target}: API error {code}")]
    Api {
        /// The target kind.
        target: &'static str,
        /// The service's error code, e.g. `channel_not_found`.
        code: String,
        /// Whether retrying may help (`ratelimited`, `internal_error`, …).
        transient: bool,
    },
    /// A success status with an answer we cannot use (permanent: the request may have
    /// taken effect, so repeating it could duplicate the message).
    #[error("{target}: unexpected answer: {detail}")]
    BadResponse {
        /// The target kind.
        target: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// The outbox store failed.
    #[error("outbox store: {0}")]
    Store(String),
}

impl NotifyError {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            NotifyError::Timeout { .. }
            | NotifyError::Transport { .. }
            | NotifyError::RateLimited { .. } => true,
            NotifyError::Http { status, .. } => *status >= 500 || *status == 408,
            NotifyError::Api { transient, .. } => *transient,
            NotifyError::NotConfigured { .. }
            | NotifyError::Config(_)
            | NotifyError::BadResponse { .. }
            | NotifyError::Store(_) => false,
        }
    }

    /// Whether the request may have taken effect although it failed: no answer came back
    /// (a timeout, a connection lost) or a gateway answered 5xx for a service that may
    /// have processed it. A rate limit, a 4xx or a service's own error code says it did
    /// not. An item that failed so stays in doubt: its target is asked before the retry.
    pub fn may_have_arrived(&self) -> bool {
        match self {
            NotifyError::Timeout { .. } | NotifyError::Transport { .. } => true,
            NotifyError::Http { status, .. } => *status >= 500,
            NotifyError::RateLimited { .. }
            | NotifyError::Api { .. }
            | NotifyError::NotConfigured { .. }
            | NotifyError::Config(_)
            | NotifyError::BadResponse { .. }
            | NotifyError::Store(_) => false,
        }
    }

    /// The minimum wait the service asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            NotifyError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short, fixed label for metrics (`notify_errors_total{kind=…}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            NotifyError::NotConfigured { .. } => "not_configured",
            NotifyError::Config(_) => "config",
            NotifyError::Timeout { .. } => "timeout",
            NotifyError::Transport { .. } => "transport",
            NotifyError::RateLimited { .. } => "rate_limited",
            NotifyError::Http { status, .. } if *status >= 500 => "http_5xx",
            NotifyError::Http { .. } => "http_4xx",
            NotifyError::Api { .. } => "api_error",
            NotifyError::BadResponse { .. } => "bad_response",
            NotifyError::Store(_) => "store",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_http_statuses() {
        let http = |status| NotifyError::Http {
            target: "webhook",
            status,
            detail: String::new(),
        };
        assert!(http(500).is_transient());
        assert!(http(503).is_transient());
        assert!(http(408).is_transient());
        assert!(!http(400).is_transient());
        assert!(!http(404).is_transient());
        assert_eq!(http(502).metric_label(), "http_5xx");
        assert_eq!(http(403).metric_label(), "http_4xx");
        let limited = NotifyError::RateLimited {
            target: "slack",
            status: 429,
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(limited.is_transient());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
    }
}
