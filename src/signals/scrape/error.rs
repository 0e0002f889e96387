//! Errors of the direct `/metrics` scraper.

use thiserror::Error;

/// Everything that can go wrong when scraping a `/metrics` endpoint.
#[derive(Debug, Error)]
pub enum ScrapeError {
    /// The scraper could not be built or the URL is unusable.
    #[error("invalid scrape configuration: {0}")]
    Config(String),
    /// No complete answer arrived within the timeout.
    #[error("scrape timed out after {timeout_ms} ms")]
    Timeout {
        /// The timeout that was exceeded, in milliseconds.
        timeout_ms: u128,
    },
    /// The request could not be sent or the answer could not be read.
    #[error("scrape transport error: {0}")]
    Transport(String),
    /// The target answered with a non-200 status.
    #[error("scrape target answered HTTP {status}")]
    Http {
        /// The HTTP status code.
        status: u16,
    },
    /// The body exceeded the configured size cap.
    #[error("scrape body larger than {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The body is not the text exposition format.
    #[error("scrape body could not be parsed: {0}")]
    Parse(String),
}

impl ScrapeError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ScrapeError::Config(_) => "config",
            ScrapeError::Timeout { .. } => "timeout",
            ScrapeError::Transport(_) => "transport",
            ScrapeError::Http { status } if *status >= 500 => "http_5xx",
            ScrapeError::Http { .. } => "http_4xx",
            ScrapeError::TooLarge { .. } => "too_large",
            ScrapeError::Parse(_) => "bad_data",
        }
    }
}
