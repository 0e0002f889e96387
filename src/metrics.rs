//! rollbackd's own metrics in the Prometheus text format: a small registry of labelled
//! counters, gauges and histograms, rendered at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Histogram buckets in seconds, from a webhook's milliseconds to a rollout's minutes.
pub const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Debug)]
enum Family {
    Counter(BTreeMap<Vec<String>, f64>),
    Gauge(BTreeMap<Vec<String>, f64>),
    Histogram(BTreeMap<Vec<String>, Histogram>),
}

#[derive(Debug)]
struct Entry {
    help: &'static str,
    labels: &'static [&'static str],
    family: Family,
}

/// The registry. All metric names and label sets are fixed in [`Metrics::new`].
#[derive(Debug)]
pub struct Metrics {
    families: Mutex<BTreeMap<&'static str, Entry>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family rollbackd exports.
    pub fn new() -> Self {
        let mut f = BTreeMap::new();
        let mut add = |name, help, labels, family| {
            f.insert(
                name,
                Entry {
                    help,
                    labels,
                    family,
                },
            );
        };
        add(
            "rollbackd_decisions_total",
            "Decisions that changed, by agent and outcome.",
            &["agent", "decision"][..],
            Family::Counter(BTreeMap::new()),
        );
        add(
            "rollbackd_rollbacks_total",
            "Rollbacks finished, by agent, method and outcome.",
            &["agent", "method", "outcome"][..],
            Family::Counter(BTreeMap::new()),
        );
        add(
            "rollbackd_step_duration_seconds",
            "Method step durations, by step kind and outcome.",
            &["kind", "outcome"][..],
            Family::Histogram(BTreeMap::new()),
        );
        add(
            "rollbackd_webhook_requests_total",
            "Alertmanager webhook requests, by HTTP status.",
            &["code"][..],
            Family::Counter(BTreeMap::new()),
        );
        add(
            "rollbackd_webhook_alerts_total",
            "Alerts received, by result (new, duplicate, unmatched).",
            &["result"][..],
            Family::Counter(BTreeMap::new()),
        );
        add(
            "rollbackd_slack_interactions_total",
            "Slack button presses, by outcome: refused at the door (unsigned, stale, \
             bad_signature, malformed, not_configured, not_leader), repeat_ignored (a \
             retry of a press taken), accepted; then applied or refused (not an approver, \
             or the incident's state).",
            &["outcome"][..],
            Family::Counter(BTreeMap::new()),
        );
        add(
            "rollbackd_forwarded_requests_total",
            "Writes a standby forwarded to the leader, by the leader's HTTP status or why \
             they were not forwarded (no_leader, no_url, timeout, unreachable, \
             already_forwarded, held_here).",
            &["outcome"][..],
            Family::Counter(BTreeMap::new()),
        );
        add(
            "rollbackd_api_requests_total",
            "API requests, by route and HTTP status.",
            &["route", "code"][..],
            Family::Counter(BTreeMap::new()),
        );
        add(
            "rollbackd_evaluation_duration_seconds",
            "Time to evaluate one agent's window.",
            &["agent"][..],
            Family::Histogram(BTreeMap::new()),
        );
        add(
            "rollbackd_signal_errors_total",
            "Signal reads that failed, by source and reason.",
            &["source", "reason"][..],
            Family::Counter(BTreeMap::new()),
        );
        add(
            "rollbackd_notifications_total",
            "Notification deliveries, by target and outcome.",
            &["target", "outcome"][..],
            Family::Counter(BTreeMap::new()),
        );
        add(
            "rollbackd_webhook_unauthenticated",
            "1 when the Alertmanager webhook accepts alerts without credentials (allow_unauthenticated).",
            &[][..],
            Family::Gauge(BTreeMap::new()),
        );
        add(
            "rollbackd_task_exits_total",
            "Critical tasks that stopped before shutdown (returned or panicked), by task.",
            &["task"][..],
            Family::Counter(BTreeMap::new()),
        );
        add(
            "rollbackd_watch_errors_total",
            "Kubernetes watch errors (each failed watch or re-list attempt), by resource.",
            &["resource"][..],
            Family::Counter(BTreeMap::new()),
        );
        add(
            "rollbackd_channel_dropped_total",
            "Internal messages dropped because their bounded channel was full, by channel.",
            &["channel"][..],
            Family::Counter(BTreeMap::new()),
        );
        add(
            "rollbackd_events_total",
            "Kubernetes Events by outcome: written (created or series updated), counted into \
             a series, spam (dropped by the per-object rate limit), failed.",
            &["outcome"][..],
            Family::Counter(BTreeMap::new()),
        );
        add(
            "rollbackd_incidents",
            "Incidents by state (from the store at scrape time).",
            &["state"][..],
            Family::Gauge(BTreeMap::new()),
        );
        add(
            "rollbackd_outbox",
            "Outbox rows by state (pending, sent, failed).",
            &["state"][..],
            Family::Gauge(BTreeMap::new()),
        );
        Self {
            families: Mutex::new(f),
        }
    }

    fn with<R>(&self, name: &str, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        let mut families = self.families.lock().ok()?;
        families.get_mut(name).map(f)
    }

    fn key(entry: &Entry, labels: &[&str]) -> Option<Vec<String>> {
        (entry.labels.len() == labels.len()).then(|| labels.iter().map(|l| l.to_string()).collect())
    }

    /// Adds 1 to a counter. Unknown names or wrong label counts are ignored (and caught by tests).
    pub fn inc(&self, name: &str, labels: &[&str]) {
        self.add(name, labels, 1.0);
    }

    /// Adds `n` to a counter (like [`Metrics::inc`]).
    pub fn add(&self, name: &str, labels: &[&str], n: f64) {
        self.with(name, |e| {
            if let (Some(key), Family::Counter(m)) = (Self::key(e, labels), &mut e.family) {
                *m.entry(key).or_default() += n;
            }
        });
    }

    /// Sets a gauge.
    pub fn set(&self, name: &str, labels: &[&str], value: f64) {
        self.with(name, |e| {
            if let (Some(key), Family::Gauge(m)) = (Self::key(e, labels), &mut e.family) {
                m.insert(key, value);
            }
        });
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, name: &str, labels: &[&str], seconds: f64) {
        self.with(name, |e| {
            if let (Some(key), Family::Histogram(m)) = (Self::key(e, labels), &mut e.family) {
                let h = m.entry(key).or_default();
                for (i, b) in BUCKETS.iter().enumerate() {
                    if seconds <= *b {
                        h.counts[i] += 1;
                    }
                }
                h.sum += seconds;
                h.count += 1;
            }
        });
    }

    /// A counter's current value (tests, the demo summary).
    pub fn counter(&self, name: &str, labels: &[&str]) -> f64 {
        self.with(name, |e| match (Self::key(e, labels), &e.family) {
            (Some(key), Family::Counter(m)) => m.get(&key).copied().unwrap_or(0.0),
            _ => 0.0,
        })
        .unwrap_or(0.0)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let Ok(families) = self.families.lock() else {
            return String::new();
        };
        let mut out = String::new();
        for (name, e) in families.iter() {
            let kind = match e.family {
                Family::Counter(_) => "counter",
                Family::Gauge(_) => "gauge",
                Family::Histogram(_) => "histogram",
            };
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", e.help);
            let labels = |key: &[String], extra: Option<(&str, String)>| {
                let mut parts: Vec<String> = e
                    .labels
                    .iter()
                    .zip(key)
                    .map(|(l, v)| format!("{l}=\"{}\"", escape(v)))
                    .collect();
                if let Some((l, v)) = extra {
                    parts.push(format!("{l}=\"{v}\""));
                }
                if parts.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", parts.join(","))
                }
            };
            match &e.family {
                Family::Counter(m) | Family::Gauge(m) => {
                    for (key, v) in m {
                        let _ = writeln!(out, "{name}{} {v}", labels(key, None));
                    }
                }
                Family::Histogram(m) => {
                    for (key, h) in m {
                        for (i, b) in BUCKETS.iter().enumerate() {
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {}",
                                labels(key, Some(("le", b.to_string()))),
                                h.counts[i]
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {}",
                            labels(key, Some(("le", "+Inf".into()))),
                            h.count
                        );
                        let _ = writeln!(out, "{name}_sum{} {}", labels(key, None), h.sum);
                        let _ = writeln!(out, "{name}_count{} {}", labels(key, None), h.count);
                    }
                }
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_parseable_text() {
        let m = Metrics::new();
        m.inc("rollbackd_decisions_total", &["GL-002", "rollback"]);
        m.inc("rollbackd_decisions_total", &["GL-002", "rollback"]);
        m.observe("rollbackd_step_duration_seconds", &["undo", "done"], 0.02);
        m.set("rollbackd_incidents", &["resolved"], 3.0);
        m.inc("rollbackd_decisions_total", &["wrong label count"]);
        let text = m.render();
        assert!(
            text.contains("rollbackd_decisions_total{agent=\"GL-002\",decision=\"rollback\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "rollbackd_step_duration_seconds_bucket{kind=\"undo\",outcome=\"done\",le=\"0.025\"} 1"
        ));
        assert!(text.contains(
            "rollbackd_step_duration_seconds_bucket{kind=\"undo\",outcome=\"done\",le=\"0.01\"} 0"
        ));
        let lines: Vec<String> = text
            .lines()
            .map(|l| Ok::<_, std::io::Error>(l.to_string()))
            .map(Result::unwrap)
            .collect();
        let parsed = prometheus_parse::Scrape::parse(lines.into_iter().map(Ok)).unwrap();
        assert!(
            parsed
                .samples
                .iter()
                .any(|s| s.metric == "rollbackd_incidents")
        );
        assert_eq!(
            m.counter("rollbackd_decisions_total", &["GL-002", "rollback"]),
            2.0
        );
    }
}
