//! Direct scraping of a `/metrics` endpoint (the embedded default when no
//! Prometheus is configured) and PromQL-like maths between two scrapes.

mod error;
mod ops;
mod snapshot;

pub use error::ScrapeError;
pub use ops::{quantile_between, rate_between, ratio_between, value};
pub use snapshot::{Sample, Snapshot};

use std::time::Duration;

use chrono::Utc;

/// Default cap on a `/metrics` body: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Fetches and parses `/metrics` pages. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Scraper {
    http: reqwest::Client,
    timeout: Duration,
    max_body_bytes: usize,
}

impl Scraper {
    /// A scraper whose every request (connect, send, read) must finish within
    /// `timeout`, reading at most [`DEFAULT_MAX_BODY_BYTES`].
    pub fn new(timeout: Duration) -> Result<Self, ScrapeError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ScrapeError::Config(e.to_string()))?;
        Ok(Self {
            http,
            timeout,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        })
    }

    /// Changes the cap on the body size; bigger bodies fail with [`ScrapeError::TooLarge`].
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// Fetches `url` and parses the text exposition format.
    pub async fn scrape(&self, url: &str) -> Result<Snapshot, ScrapeError> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| ScrapeError::Config(format!("scrape URL {url:?}: {e}")))?;
        let response = self
            .http
            .get(url)
            .header(
                reqwest::header::ACCEPT,
                "text/plain;version=0.0.4;q=1,*/*;q=0.1",
            )
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(ScrapeError::Http { status });
        }
        let mut response = response;
        let mut body: Vec<u8> = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(ScrapeError::TooLarge {
                    limit: self.max_body_bytes,
                });
            }
            body.extend_from_slice(&chunk);
        }
        let at = Utc::now();
        let text = String::from_utf8(body)
            .map_err(|e| ScrapeError::Parse(format!("body is not UTF-8: {e}")))?;
        Snapshot::from_text(&text, at)
    }

    fn transport(&self, e: reqwest::Error) -> ScrapeError {
        if e.is_timeout() {
            ScrapeError::Timeout {
                timeout_ms: self.timeout.as_millis(),
            }
        } else {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            ScrapeError::Transport(text)
        }
    }
}
