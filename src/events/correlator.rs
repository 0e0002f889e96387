//! Aggregation and spam filtering of Kubernetes Events, as client-go's recorders do them,
//! pure (time is passed in):
//!
//! - **Series** (client-go `tools/events`): an event *isomorphic* to one recorded in the
//!   last 6 minutes (same regarding object, type, reason and action) is not written again;
//!   the second occurrence patches the first into a series of 2, later ones only count,
//!   and the count is written when the series ends (no occurrence for 6 minutes) or every
//!   30 minutes while it goes on.
//! - **Spam filter** (client-go `tools/record`): each regarding object and type has a token
//!   bucket of 25 events refilled at one per 5 minutes; an event finding it empty is
//!   dropped (and counted by the caller).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

/// An isomorphic event within this long of the last one joins its series.
pub const FINISH_AFTER: TimeDelta = TimeDelta::minutes(6);
/// A running series' count is written at least this often.
pub const REFRESH_EVERY: TimeDelta = TimeDelta::minutes(30);
/// Events an object may get in a burst.
pub const SPAM_BURST: f64 = 25.0;
/// One more event allowed per this long, per object.
pub const SPAM_REFILL: TimeDelta = TimeDelta::minutes(5);

/// The object an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Regarding {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespace (the event is created there).
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// One event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// What it is about.
    pub regarding: Regarding,
    /// `Warning` (a human may need to look) rather than `Normal`.
    pub warning: bool,
    /// UpperCamelCase, machine-readable: why (e.g. `RollbackStarted`).
    pub reason: String,
    /// UpperCamelCase: what was done or is about to be (e.g. `Rollback`, `Undo`).
    pub action: String,
    /// For humans: which row, which values, which thresholds (cut to 1 KiB when written).
    pub note: String,
    /// When it happened.
    pub at: DateTime<Utc>,
}

impl NewEvent {
    /// `Warning` or `Normal`.
    pub fn type_name(&self) -> &'static str {
        if self.warning { "Warning" } else { "Normal" }
    }
}

/// What to write to the API server.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create a new Event object named `name`.
    Create {
        /// The object's name (`<regarding>.<hex nanoseconds>`, as client-go names them).
        name: String,
        /// The event.
        event: NewEvent,
    },
    /// Set the series of the existing Event `name` (created from `event`): recreate it if
    /// it is gone.
    Series {
        /// The Event object to patch.
        name: String,
        /// The first occurrence, to recreate it from.
        event: NewEvent,
        /// Occurrences so far.
        count: u32,
        /// The latest occurrence.
        last_observed: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    regarding: Regarding,
    warning: bool,
    reason: String,
    action: String,
}

#[derive(Debug)]
struct Cached {
    name: String,
    first: NewEvent,
    count: u32,
    last_observed: DateTime<Utc>,
    last_written: DateTime<Utc>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

/// What happened to one [`NewEvent`].
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Write this now.
    Write(Box<Write>),
    /// Counted into a running series; written later by [`Correlator::tick`].
    Counted,
    /// Dropped by the spam filter.
    Spam,
}

/// The recorder's memory: recent events by isomorphic key, and per-object token buckets.
#[derive(Debug, Default)]
pub struct Correlator {
    recent: HashMap<Key, Cached>,
    buckets: HashMap<(Regarding, bool), Bucket>,
}

impl Correlator {
    /// An empty correlator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one event: write it, count it into its series, or drop it as spam.
    pub fn observe(&mut self, event: NewEvent) -> Verdict {
        if !self.take_token(&event) {
            return Verdict::Spam;
        }
        let key = Key {
            regarding: event.regarding.clone(),
            warning: event.warning,
            reason: event.reason.clone(),
            action: event.action.clone(),
        };
        let at = event.at;
        if let Some(c) = self.recent.get_mut(&key)
            && at - c.last_observed < FINISH_AFTER
        {
            c.count += 1;
            c.last_observed = c.last_observed.max(at);
            if c.count > 2 {
                return Verdict::Counted;
            }
            c.last_written = at;
            return Verdict::Write(Box::new(Write::Series {
                name: c.name.clone(),
                event: c.first.clone(),
                count: c.count,
                last_observed: c.last_observed,
            }));
        }
        let name = event_name(&event.regarding.name, at);
        self.recent.insert(
            key,
            Cached {
                name: name.clone(),
                first: event.clone(),
                count: 1,
                last_observed: at,
                last_written: at,
            },
        );
        Verdict::Write(Box::new(Write::Create { name, event }))
    }

    /// The writes time alone makes due at `now`: a series that ended gets its final
    /// count (and is forgotten), a long one its running count every [`REFRESH_EVERY`];
    /// single events are forgotten [`FINISH_AFTER`] after they happened.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Write> {
        let mut writes = Vec::new();
        self.recent.retain(|_, c| {
            let ended = now - c.last_observed >= FINISH_AFTER;
            let unwritten = c.count > 2 && c.last_written < c.last_observed;
            if c.count >= 2 && (ended && unwritten || now - c.last_written >= REFRESH_EVERY) {
                c.last_written = now;
                writes.push(Write::Series {
                    name: c.name.clone(),
                    event: c.first.clone(),
                    count: c.count,
                    last_observed: c.last_observed,
                });
            }
            !ended
        });
        self.buckets
            .retain(|_, b| now - b.at < SPAM_REFILL * SPAM_BURST as i32);
        writes
    }

    fn take_token(&mut self, event: &NewEvent) -> bool {
        let bucket = self
            .buckets
            .entry((event.regarding.clone(), event.warning))
            .or_insert(Bucket {
                tokens: SPAM_BURST,
                at: event.at,
            });
        let refill = (event.at - bucket.at).num_milliseconds().max(0) as f64
            / SPAM_REFILL.num_milliseconds() as f64;
        bucket.tokens = (bucket.tokens + refill).min(SPAM_BURST);
        bucket.at = bucket.at.max(event.at);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// client-go's Event names: the regarding object's name and the time in hex nanoseconds.
pub fn event_name(regarding: &str, at: DateTime<Utc>) -> String {
    format!(
        "{regarding}.{:x}",
        at.timestamp_nanos_opt().unwrap_or_default().max(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        "2026-01-15T03:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("time")
            + TimeDelta::seconds(seconds)
    }

    fn event(name: &str, reason: &str, at: DateTime<Utc>) -> NewEvent {
        NewEvent {
            regarding: Regarding {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: "greenlang".into(),
                name: name.into(),
            },
            warning: true,
            reason: reason.into(),
            action: "Rollback".into(),
            note: format!("{reason} at {at}"),
            at,
        }
    }

    fn is_create(v: Verdict) -> bool {
        matches!(v, Verdict::Write(w) if matches!(*w, Write::Create { .. }))
    }

    fn count_of(w: &Write) -> Option<u32> {
        match w {
            Write::Series { count, .. } => Some(*count),
            Write::Create { .. } => None,
        }
    }

    #[test]
    fn repeats_become_one_series_written_twice_then_at_its_end() {
        let mut c = Correlator::new();
        let Verdict::Write(first) = c.observe(event("gl-002", "Blocked", t(0))) else {
            panic!("first is written")
        };
        let Write::Create { name, .. } = *first else {
            panic!("first is created")
        };
        assert!(name.starts_with("gl-002."), "{name}");
        // the second occurrence patches the first into a series of 2
        let Verdict::Write(second) = c.observe(event("gl-002", "Blocked", t(10))) else {
            panic!("second is written")
        };
        assert_eq!(count_of(&second), Some(2));
        // later ones only count
        for s in 2..10 {
            assert_eq!(
                c.observe(event("gl-002", "Blocked", t(s * 10))),
                Verdict::Counted
            );
        }
        assert!(c.tick(t(200)).is_empty(), "the series goes on");
        // 6 minutes after the last one the series ends with its final count, once
        let end = c.tick(t(90) + FINISH_AFTER);
        assert_eq!(end.iter().map(count_of).collect::<Vec<_>>(), [Some(10)]);
        assert!(c.tick(t(1000)).is_empty());
        // after the end, the same event starts a new object
        assert!(is_create(c.observe(event("gl-002", "Blocked", t(1000)))));
    }

    #[test]
    fn different_objects_reasons_or_times_are_not_merged() {
        let mut c = Correlator::new();
        let creates = [
            event("gl-002", "RollbackStarted", t(0)),
            event("gl-009", "RollbackStarted", t(0)),
            event("gl-002", "RollbackSucceeded", t(1)),
        ]
        .into_iter()
        .filter(|e| is_create(c.observe(e.clone())))
        .count();
        assert_eq!(creates, 3);
        // the same again, more than 6 minutes later: a new object, not a series
        let later = c.observe(event("gl-002", "RollbackStarted", t(0) + FINISH_AFTER));
        assert!(is_create(later));
    }

    #[test]
    fn a_long_series_is_refreshed_every_30_minutes() {
        let mut c = Correlator::new();
        let mut writes = 0;
        for m in 0..70 {
            // one every 4 minutes for 70 minutes (within the spam budget), ticking each minute
            if m % 4 == 0
                && let Verdict::Write(_) = c.observe(event("gl-002", "Blocked", t(m * 60)))
            {
                writes += 1;
            }
            writes += c.tick(t(m * 60 + 30)).len();
        }
        // create, series of 2, refreshes at 30 and 60 minutes
        assert_eq!(writes, 4);
    }

    #[test]
    fn a_burst_beyond_25_per_object_is_dropped_then_refills() {
        let mut c = Correlator::new();
        let verdicts: Vec<Verdict> = (0..30)
            .map(|i| c.observe(event("gl-002", &format!("Reason{i}"), t(i))))
            .collect();
        let spam = verdicts.iter().filter(|v| **v == Verdict::Spam).count();
        assert_eq!(spam, 5, "25 pass, 5 dropped");
        // another object has its own bucket
        assert!(matches!(
            c.observe(event("gl-009", "Reason0", t(31))),
            Verdict::Write(_)
        ));
        // one token back after 5 minutes
        assert!(matches!(
            c.observe(event("gl-002", "Late", t(29) + SPAM_REFILL)),
            Verdict::Write(_)
        ));
        assert_eq!(
            c.observe(event("gl-002", "Later", t(30) + SPAM_REFILL)),
            Verdict::Spam
        );
    }
}
