//! Retry rules: transient errors back off exponentially with jitter (bounded); 409
//! Conflict re-reads and re-applies (bounded); other 4xx fail at once.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::error::ClusterError;

/// How hard to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after the first for transient errors.
    pub transient_retries: usize,
    /// First backoff delay.
    pub min_delay: Duration,
    /// Largest backoff delay.
    pub max_delay: Duration,
    /// Total attempts for read-modify-write cycles that hit 409 Conflict.
    pub conflict_attempts: usize,
}

impl Default for RetryPolicy {
    /// 4 transient retries from 100 ms to 2 s; 5 conflict attempts.
    fn default() -> Self {
        RetryPolicy {
            transient_retries: 4,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            conflict_attempts: 5,
        }
    }
}

/// Whether an error is worth retrying as is: 5xx, 429, call timeouts, connection failures.
pub fn is_transient(err: &ClusterError) -> bool {
    match err {
        ClusterError::CallTimeout { .. } => true,
        ClusterError::Api { source, .. } => match source {
            kube::Error::Api(s) => s.code == 429 || s.code >= 500,
            kube::Error::HyperError(_) | kube::Error::Service(_) => true,
            _ => false,
        },
        _ => false,
    }
}

/// Runs `op` again on transient errors, with exponential backoff and jitter.
pub async fn transient<T, F, Fut>(policy: &RetryPolicy, op: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClusterError>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.transient_retries)
        .with_jitter();
    op.retry(backoff)
        .sleep(tokio::time::sleep)
        .when(is_transient)
        .notify(
            |e, d| tracing::warn!(error = %e, delay = ?d, "transient kubernetes error, retrying"),
        )
        .await
}

/// Runs a read-modify-write cycle again (from the read) when it ends in 409 Conflict or a
/// failed JSON patch precondition, at most `policy.conflict_attempts` times in all.
pub async fn on_conflict<T, F, Fut>(policy: &RetryPolicy, mut op: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClusterError>>,
{
    let attempts = policy.conflict_attempts.max(1);
    let mut n = 0;
    loop {
        n += 1;
        match op().await {
            Err(e) if e.is_write_race() && n < attempts => {
                tracing::info!(attempt = n, error = %e, "conflict, re-reading and re-applying");
            }
            other => return other,
        }
    }
}
