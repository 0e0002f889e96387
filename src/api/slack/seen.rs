//! Presses already taken: Slack re-sends a press (`X-Slack-Retry-Num`) when it did not get
//! the acknowledgement in time, and a press must never be applied twice. A press is known by
//! its identity (user, button, `action_ts`) for longer than a signature stays valid, so a
//! retry inside the five minutes it may arrive in is recognised.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a press is remembered: past the signature's five minutes either way.
pub const REMEMBER: Duration = Duration::from_secs(11 * 60);

/// The presses seen within [`REMEMBER`].
#[derive(Debug, Default)]
pub struct Seen {
    at: HashMap<String, Instant>,
}

impl Seen {
    /// `true` the first time `identity` is offered (and records it), `false` for a repeat
    /// within [`REMEMBER`]. Forgets what is older.
    pub fn first(&mut self, identity: &str, now: Instant) -> bool {
        self.at
            .retain(|_, at| now.saturating_duration_since(*at) < REMEMBER);
        if self.at.contains_key(identity) {
            return false;
        }
        self.at.insert(identity.to_string(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_is_caught_until_it_is_forgotten() {
        let mut seen = Seen::default();
        let t0 = Instant::now();
        assert!(seen.first("U1:rollbackd_approve:1.1", t0));
        assert!(!seen.first("U1:rollbackd_approve:1.1", t0 + Duration::from_secs(1)));
        assert!(seen.first("U1:rollbackd_approve:1.2", t0));
        assert!(seen.first("U2:rollbackd_approve:1.1", t0));
        assert!(!seen.first(
            "U1:rollbackd_approve:1.1",
            t0 + REMEMBER - Duration::from_secs(1)
        ));
        assert!(seen.first("U1:rollbackd_approve:1.1", t0 + REMEMBER));
        assert_eq!(seen.at.len(), 1, "older entries are forgotten");
    }
}
