//! The latest reading of every agent's signals, shared between the evaluation loop (which
//! writes it each cycle) and post-rollback verification (which reads it). One small list
//! of readings per agent, updated in place: a cycle over 10,000 workloads allocates
//! nothing here once every signal has been read.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use rollbackd_core::engine::Sample;

/// The latest reading of each (agent, signal).
#[derive(Debug, Default)]
pub struct LatestReadings {
    by_agent: HashMap<String, Vec<(String, Sample)>>,
}

/// [`LatestReadings`] shared by the loop and the runner.
pub type Latest = Arc<RwLock<LatestReadings>>;

impl LatestReadings {
    /// Records `signal`'s reading for `agent`, replacing the previous one.
    pub fn set(&mut self, agent: &str, signal: &str, at: DateTime<Utc>, value: Option<f64>) {
        let readings = match self.by_agent.get_mut(agent) {
            Some(r) => r,
            None => self.by_agent.entry(agent.to_string()).or_default(),
        };
        let sample = Sample::new(at, value);
        match readings.iter_mut().find(|(s, _)| s == signal) {
            Some((_, r)) => *r = sample,
            None => readings.push((signal.to_string(), sample)),
        }
    }

    /// When `agent`'s `signal` was last read, and its value (`None`: no data).
    pub fn get(&self, agent: &str, signal: &str) -> Option<(DateTime<Utc>, Option<f64>)> {
        self.by_agent
            .get(agent)?
            .iter()
            .find(|(s, _)| s == signal)
            .map(|(_, r)| (r.at(), r.value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_reading_of_each_agent_and_signal_wins() {
        let t = |s: i64| DateTime::from_timestamp(s, 0).unwrap_or_default();
        let mut l = LatestReadings::default();
        assert_eq!(l.get("GL-002", "error_rate"), None);
        l.set("GL-002", "error_rate", t(10), Some(0.5));
        l.set("GL-002", "latency", t(10), None);
        l.set("GL-009", "error_rate", t(11), Some(0.1));
        l.set("GL-002", "error_rate", t(20), Some(0.01));
        assert_eq!(l.get("GL-002", "error_rate"), Some((t(20), Some(0.01))));
        assert_eq!(l.get("GL-002", "latency"), Some((t(10), None)));
        assert_eq!(l.get("GL-009", "error_rate"), Some((t(11), Some(0.1))));
        assert_eq!(l.get("GL-009", "latency"), None);
        assert_eq!(l.get("GL-001", "error_rate"), None);
    }
}
