//! Retry timing: exponential backoff with jitter (computed with `backon`) and `Retry-After`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};

/// The longest `Retry-After` honoured; a larger value is treated as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Delay before the first retry.
    pub min_delay: Duration,
    /// Largest backoff delay (a longer `Retry-After` still wins).
    pub max_delay: Duration,
    /// Attempts in all, the first included; then the item is marked failed.
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            min_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(300),
            max_attempts: 10,
        }
    }
}

impl RetryConfig {
    /// The backoff after `attempts` failed attempts (1 = after the first): doubling from
    /// `min_delay` with up to 100 % jitter, capped at `max_delay`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        // Past 32 doublings every delay is capped anyway; keeps this O(1) for huge counts.
        let times = usize::try_from(attempts.clamp(1, 32)).unwrap_or(32);
        let delay = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(times)
            .build()
            .last()
            .unwrap_or(self.max_delay);
        delay.min(self.max_delay)
    }

    /// The wait before the next attempt: the backoff, but at least what the service asked
    /// for in `Retry-After` (itself capped at [`MAX_RETRY_AFTER`]).
    pub fn delay(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.backoff(attempts);
        match retry_after {
            Some(asked) => backoff.max(asked.min(MAX_RETRY_AFTER)),
            None => backoff,
        }
    }
}

/// Parses a `Retry-After` value: delay-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, relative to `now`; a past date is zero).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let cfg = RetryConfig {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_attempts: 5,
        };
        for _ in 0..50 {
            let first = cfg.backoff(1);
            assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
            let third = cfg.backoff(3);
            assert!(third >= Duration::from_millis(400) && third <= Duration::from_millis(800));
            assert!(cfg.backoff(30) <= Duration::from_millis(1000));
            assert!(cfg.backoff(u32::MAX) <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn retry_after_is_a_minimum() {
        let cfg = RetryConfig {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            max_attempts: 5,
        };
        assert!(cfg.delay(1, Some(Duration::from_secs(1))) >= Duration::from_secs(1));
        assert!(cfg.delay(1, None) <= Duration::from_millis(20));
        assert_eq!(
            cfg.delay(1, Some(Duration::from_secs(1_000_000))),
            MAX_RETRY_AFTER
        );
    }
}
