//! Spacing of requests to a rate-limited API: each caller gets the next free slot.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Hands out start times at least `interval` apart.
#[derive(Debug)]
pub(crate) struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer; a zero interval never waits.
    pub(crate) fn new(interval: Duration) -> Self {
        Pacer {
            interval,
            next: Mutex::new(None),
        }
    }

    /// Waits for this caller's slot. A caller that is cancelled while waiting leaves its
    /// slot unused (the next callers wait a little longer than needed, never too little).
    pub(crate) async fn wait_turn(&self) {
        if self.interval.is_zero() {
            return;
        }
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spaces_callers() {
        let interval = Duration::from_millis(50);
        let pacer = Pacer::new(interval);
        let start = Instant::now();
        pacer.wait_turn().await;
        pacer.wait_turn().await;
        pacer.wait_turn().await;
        assert!(start.elapsed() >= 2 * interval, "{:?}", start.elapsed());
        tokio::time::sleep(3 * interval).await;
        let later = Instant::now();
        pacer.wait_turn().await;
        assert!(later.elapsed() < interval, "{:?}", later.elapsed());
    }

    #[tokio::test]
    async fn zero_interval_never_waits() {
        let pacer = Pacer::new(Duration::ZERO);
        let start = Instant::now();
        for _ in 0..100 {
            pacer.wait_turn().await;
        }
        assert!(start.elapsed() < Duration::from_millis(100));
    }
}
