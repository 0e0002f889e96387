//! HTTP plumbing shared by the notifiers: the client, error mapping, `Retry-After`.

use std::time::Duration;

use chrono::Utc;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::error::NotifyError;
use super::retry::parse_retry_after;

/// Most bytes of an answer body read; the APIs answer far less.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// Longest piece of an answer body kept in an error.
const DETAIL_LIMIT: usize = 200;

/// A client with the per-request timeout.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, NotifyError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("rollbackd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| NotifyError::Config(e.to_string()))
}

/// Maps a failed send or read; the URL is dropped (webhook URLs are secrets).
pub(crate) fn transport(target: &'static str, e: reqwest::Error) -> NotifyError {
    if e.is_timeout() {
        NotifyError::Timeout { target }
    } else {
        NotifyError::Transport {
            target,
            detail: e.without_url().to_string(),
        }
    }
}

/// The `Retry-After` header, if present and readable.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, Utc::now())
}

/// Maps a non-success status: 429 (and 420 when `enhance_your_calm`) are rate limits,
/// the rest [`NotifyError::Http`].
pub(crate) fn status_error(
    target: &'static str,
    status: u16,
    headers: &HeaderMap,
    body: &str,
) -> NotifyError {
    if status == 429 || status == 420 {
        NotifyError::RateLimited {
            target,
            status,
            retry_after: retry_after(headers),
        }
    } else {
        NotifyError::Http {
            target,
            status,
            detail: truncate(body),
        }
    }
}

/// The beginning of a body, for error messages.
pub(crate) fn truncate(body: &str) -> String {
    let trimmed = body.trim();
    match trimmed.char_indices().nth(DETAIL_LIMIT) {
        Some((end, _)) => format!("{}…", &trimmed[..end]),
        None => trimmed.to_string(),
    }
}

/// Sends a request and returns status, headers and body text (at most [`BODY_LIMIT`]
/// bytes are read; the rest is ignored).
pub(crate) async fn send(
    target: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<(u16, HeaderMap, String), NotifyError> {
    let mut response = request.send().await.map_err(|e| transport(target, e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while body.len() < BODY_LIMIT {
        match response.chunk().await.map_err(|e| transport(target, e))? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    body.truncate(BODY_LIMIT);
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_rate_limits_and_truncates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "2".parse().unwrap());
        let err = status_error("statuspage", 420, &headers, "calm down");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
        assert!(err.is_transient());
        let err = status_error("webhook", 400, &HeaderMap::new(), &"x".repeat(500));
        assert!(!err.is_transient());
        assert!(err.to_string().len() < 300);
    }
}
