//! Whether each watch (resource × namespace) is in sync. A watch that errors keeps
//! retrying with backoff while its cache keeps the last view; once it has been failing for
//! longer than a policy's `stale_after`, signals derived from that cache are no data.
//! Errors are logged on state changes only (first failure, recovery with the outage's
//! length) and every one is counted in `rollbackd_watch_errors_total{resource}`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

use crate::metrics::Metrics;
use rollbackd_core::policy::duration::format_duration;

/// One watch's failure, while it lasts.
#[derive(Debug, Clone, Copy)]
struct Outage {
    /// The first error after the watch was last in sync.
    since: DateTime<Utc>,
    /// Errors since then.
    errors: u64,
}

/// What an event changed, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchChange {
    /// The watch was in sync and failed.
    Failed,
    /// Still failing: counted, not logged.
    StillFailing,
    /// Back in sync.
    Recovered {
        /// How long the watch was failing.
        after: TimeDelta,
        /// Errors during the outage.
        errors: u64,
    },
    /// In sync, as before.
    InSync,
}

/// The failing watches, by (resource, namespace).
#[derive(Debug, Default)]
pub struct WatchHealth {
    outages: Mutex<HashMap<(&'static str, String), Outage>>,
    /// How many watches are failing: an in-sync event with none failing takes no lock.
    failing: AtomicUsize,
}

impl WatchHealth {
    /// Every watch in sync.
    pub fn new() -> Self {
        Self::default()
    }

    /// A watch event arrived at `now`; `Ok` is any object or list event, `Err` an error.
    pub fn record(
        &self,
        resource: &'static str,
        namespace: &str,
        ok: bool,
        now: DateTime<Utc>,
    ) -> WatchChange {
        if ok && self.failing.load(Ordering::Relaxed) == 0 {
            return WatchChange::InSync;
        }
        let mut outages = self.outages.lock().unwrap_or_else(|e| e.into_inner());
        let key = (resource, namespace.to_string());
        match (ok, outages.get_mut(&key)) {
            (true, None) => WatchChange::InSync,
            (true, Some(_)) => {
                let outage = outages.remove(&key);
                self.failing.fetch_sub(1, Ordering::Relaxed);
                outage.map_or(WatchChange::InSync, |o| WatchChange::Recovered {
                    after: now - o.since,
                    errors: o.errors,
                })
            }
            (false, Some(o)) => {
                o.errors += 1;
                WatchChange::StillFailing
            }
            (false, None) => {
                outages.insert(
                    key,
                    Outage {
                        since: now,
                        errors: 1,
                    },
                );
                self.failing.fetch_add(1, Ordering::Relaxed);
                WatchChange::Failed
            }
        }
    }

    /// Whether any watch of `namespace` has been failing for longer than `stale_after` at
    /// `now`: its cache no longer says what the cluster looks like.
    pub fn stale(&self, namespace: &str, now: DateTime<Utc>, stale_after: TimeDelta) -> bool {
        if self.failing.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let outages = self.outages.lock().unwrap_or_else(|e| e.into_inner());
        outages
            .iter()
            .any(|((_, ns), o)| ns == namespace && now - o.since > stale_after)
    }

    /// [`WatchHealth::record`], then the log line (on a change) and the error counter.
    pub fn observe(
        &self,
        resource: &'static str,
        namespace: &str,
        error: Option<&dyn std::fmt::Display>,
        now: DateTime<Utc>,
        metrics: &Metrics,
    ) {
        let change = self.record(resource, namespace, error.is_none(), now);
        if error.is_some() {
            metrics.inc("rollbackd_watch_errors_total", &[resource]);
        }
        match (change, error) {
            (WatchChange::Failed, Some(e)) => tracing::warn!(
                resource,
                namespace,
                error = %e,
                "watch failing: retrying; its cached objects count until the policy's stale_after"
            ),
            (WatchChange::Recovered { after, errors }, _) => tracing::info!(
                resource,
                namespace,
                errors,
                "watch recovered after {}",
                format_duration(after)
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn an_outage_is_reported_once_and_its_recovery_with_its_length() {
        let h = WatchHealth::new();
        assert_eq!(h.record("pods", "ns", true, at(0)), WatchChange::InSync);
        assert_eq!(h.record("pods", "ns", false, at(10)), WatchChange::Failed);
        assert_eq!(
            h.record("pods", "ns", false, at(20)),
            WatchChange::StillFailing
        );
        assert_eq!(
            h.record("pods", "ns", false, at(30)),
            WatchChange::StillFailing
        );
        assert_eq!(
            h.record("pods", "ns", true, at(70)),
            WatchChange::Recovered {
                after: TimeDelta::seconds(60),
                errors: 3
            }
        );
        assert_eq!(h.record("pods", "ns", true, at(80)), WatchChange::InSync);
    }

    #[test]
    fn a_namespace_is_stale_once_a_watch_failed_longer_than_stale_after() {
        let h = WatchHealth::new();
        let five_min = TimeDelta::minutes(5);
        h.record("replicasets", "a", false, at(0));
        assert!(
            !h.stale("a", at(300), five_min),
            "exactly stale_after is not older"
        );
        assert!(h.stale("a", at(301), five_min));
        assert!(
            !h.stale("b", at(301), five_min),
            "other namespaces are in sync"
        );
        h.record("replicasets", "a", true, at(302));
        assert!(!h.stale("a", at(1000), five_min), "recovered");
    }

    #[test]
    fn every_error_is_counted() {
        let h = WatchHealth::new();
        let m = Metrics::new();
        let e = "connection refused";
        for s in 0..3 {
            h.observe("pods", "ns", Some(&e), at(s), &m);
        }
        h.observe("pods", "ns", None, at(5), &m);
        assert_eq!(m.counter("rollbackd_watch_errors_total", &["pods"]), 3.0);
    }
}
