//! rollbackd's own metrics through `prometheus-client`: typed families (counters, gauges,
//! histograms) keyed by each family's fixed label names, rendered at `/metrics` in the
//! OpenMetrics text format. Callers name a family and give its label values in order
//! ([`Metrics::inc`], [`Metrics::set`], [`Metrics::observe`]); the names people see (README,
//! alert rules) keep their `_total` suffix on counters.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Histogram buckets in seconds, from a webhook's milliseconds to a rollout's minutes.
pub const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0,
];

/// One series' labels: the family's label names with this series' values, in order.
type Labels = Vec<(&'static str, String)>;

/// A histogram family whose series all use [`BUCKETS`].
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// What kind of family a name is, when declared.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A family with its series.
#[derive(Debug)]
enum Series {
    Counter(Family<Labels, Counter<f64, AtomicU64>>),
    Gauge(Family<Labels, Gauge<f64, AtomicU64>>),
    Histogram(HistogramFamily),
}

#[derive(Debug)]
struct Entry {
    labels: &'static [&'static str],
    series: Series,
}

/// The registry. All metric names and label sets are fixed in [`Metrics::new`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    families: BTreeMap<&'static str, Entry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family rollbackd exports.
    pub fn new() -> Self {
        let mut metrics = Self {
            registry: Registry::default(),
            families: BTreeMap::new(),
        };
        let mut add = |name: &'static str, help: &str, labels, kind| {
            metrics.declare(name, help, labels, kind);
        };
        add(
            "rollbackd_decisions_total",
            "Decisions that changed, by agent and outcome.",
            &["agent", "decision"][..],
            Kind::Counter,
        );
        add(
            "rollbackd_rollbacks_total",
            "Rollbacks finished, by agent, method and outcome.",
            &["agent", "method", "outcome"][..],
            Kind::Counter,
        );
        add(
            "rollbackd_step_duration_seconds",
            "Method step durations, by step kind and outcome.",
            &["kind", "outcome"][..],
            Kind::Histogram,
        );
        add(
            "rollbackd_webhook_requests_total",
            "Alertmanager webhook requests, by HTTP status.",
            &["code"][..],
            Kind::Counter,
        );
        add(
            "rollbackd_webhook_alerts_total",
            "Alerts received, by result (new, duplicate, unmatched).",
            &["result"][..],
            Kind::Counter,
        );
        add(
            "rollbackd_slack_interactions_total",
            "Slack button presses, by outcome: refused at the door (unsigned, stale, \
             bad_signature, malformed, not_configured, not_leader), repeat_ignored (a \
             retry of a press taken), accepted; then applied or refused (not an approver, \
             or the incident's state).",
            &["outcome"][..],
            Kind::Counter,
        );
        add(
            "rollbackd_forwarded_requests_total",
            "Writes a standby forwarded to the leader, by the leader's HTTP status or why \
             they were not forwarded (no_leader, no_url, timeout, unreachable, \
             already_forwarded, held_here).",
            &["outcome"][..],
            Kind::Counter,
        );
        add(
            "rollbackd_api_requests_total",
            "API requests, by route and HTTP status.",
            &["route", "code"][..],
            Kind::Counter,
        );
        add(
            "rollbackd_evaluation_duration_seconds",
            "Time to evaluate one agent's window.",
            &["agent"][..],
            Kind::Histogram,
        );
        add(
            "rollbackd_signal_errors_total",
            "Signal reads that failed, by source and reason.",
            &["source", "reason"][..],
            Kind::Counter,
        );
        add(
            "rollbackd_notifications_total",
            "Notification deliveries, by target and outcome.",
            &["target", "outcome"][..],
            Kind::Counter,
        );
        add(
            "rollbackd_webhook_unauthenticated",
            "1 when the Alertmanager webhook accepts alerts without credentials (allow_unauthenticated).",
            &[][..],
            Kind::Gauge,
        );
        add(
            "rollbackd_task_exits_total",
            "Critical tasks that stopped before shutdown (returned or panicked), by task.",
            &["task"][..],
            Kind::Counter,
        );
        add(
            "rollbackd_watch_errors_total",
            "Kubernetes watch errors (each failed watch or re-list attempt), by resource.",
            &["resource"][..],
            Kind::Counter,
        );
        add(
            "rollbackd_channel_dropped_total",
            "Internal messages dropped because their bounded channel was full, by channel.",
            &["channel"][..],
            Kind::Counter,
        );
        add(
            "rollbackd_events_total",
            "Kubernetes Events by outcome: written (created or series updated), counted into \
             a series, spam (dropped by the per-object rate limit), failed.",
            &["outcome"][..],
            Kind::Counter,
        );
        add(
            "rollbackd_incidents",
            "Incidents by state (from the store at scrape time).",
            &["state"][..],
            Kind::Gauge,
        );
        add(
            "rollbackd_outbox",
            "Outbox rows by state (pending, sent, failed).",
            &["state"][..],
            Kind::Gauge,
        );
        metrics
    }

    /// Registers one family. prometheus-client appends `_total` to a counter's name and a
    /// full stop to every help text, so neither is given twice.
    fn declare(
        &mut self,
        name: &'static str,
        help: &str,
        labels: &'static [&'static str],
        kind: Kind,
    ) {
        let help = help.strip_suffix('.').unwrap_or(help);
        let series = match kind {
            Kind::Counter => {
                let family = Family::default();
                let base = name.strip_suffix("_total").unwrap_or(name);
                self.registry.register(base, help, family.clone());
                Series::Counter(family)
            }
            Kind::Gauge => {
                let family = Family::default();
                self.registry.register(name, help, family.clone());
                Series::Gauge(family)
            }
            Kind::Histogram => {
                let family: HistogramFamily = Family::new_with_constructor(histogram);
                self.registry.register(name, help, family.clone());
                Series::Histogram(family)
            }
        };
        self.families.insert(name, Entry { labels, series });
    }

    /// The family `name` and the labels of one of its series; `None` for an unknown name or
    /// a wrong number of label values.
    fn series(&self, name: &str, values: &[&str]) -> Option<(&Series, Labels)> {
        let entry = self.families.get(name)?;
        (entry.labels.len() == values.len()).then(|| {
            let labels = entry
                .labels
                .iter()
                .zip(values)
                .map(|(l, v)| (*l, v.to_string()))
                .collect();
            (&entry.series, labels)
        })
    }

    /// Adds 1 to a counter. Unknown names or wrong label counts are ignored (and caught by tests).
    pub fn inc(&self, name: &str, labels: &[&str]) {
        self.add(name, labels, 1.0);
    }

    /// Adds `n` to a counter (like [`Metrics::inc`]).
    pub fn add(&self, name: &str, labels: &[&str], n: f64) {
        if let Some((Series::Counter(f), labels)) = self.series(name, labels) {
            f.get_or_create(&labels).inc_by(n);
        }
    }

    /// Sets a gauge.
    pub fn set(&self, name: &str, labels: &[&str], value: f64) {
        if let Some((Series::Gauge(f), labels)) = self.series(name, labels) {
            f.get_or_create(&labels).set(value);
        }
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, name: &str, labels: &[&str], seconds: f64) {
        if let Some((Series::Histogram(f), labels)) = self.series(name, labels) {
            f.get_or_create(&labels).observe(seconds);
        }
    }

    /// A counter's current value (tests, the demo summary).
    pub fn counter(&self, name: &str, labels: &[&str]) -> f64 {
        match self.series(name, labels) {
            Some((Series::Counter(f), labels)) => f.get(&labels).map_or(0.0, |c| c.get()),
            _ => 0.0,
        }
    }

    /// Every family's name as people query it (a counter's with its `_total`). The
    /// exposition lists a family only once it has a series.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.families.keys().copied()
    }

    /// The OpenMetrics text exposition ([`CONTENT_TYPE`]), ending in `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match encode(&mut out, &self.registry) {
            Ok(()) => out,
            Err(e) => {
                tracing::error!(error = %e, "the metrics could not be encoded");
                String::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_text() {
        let m = Metrics::new();
        m.inc("rollbackd_decisions_total", &["GL-002", "rollback"]);
        m.inc("rollbackd_decisions_total", &["GL-002", "rollback"]);
        m.observe("rollbackd_step_duration_seconds", &["undo", "done"], 0.02);
        m.set("rollbackd_incidents", &["resolved"], 3.0);
        m.inc("rollbackd_decisions_total", &["wrong label count"]);
        m.inc("rollbackd_no_such_family_total", &[]);
        let text = m.render();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.contains("# TYPE rollbackd_decisions counter\n"),
            "{text}"
        );
        assert!(
            text.contains("rollbackd_decisions_total{agent=\"GL-002\",decision=\"rollback\"} 2"),
            "{text}"
        );
        assert!(!text.contains("wrong label count"), "{text}");
        assert!(text.contains(
            "rollbackd_step_duration_seconds_bucket{le=\"0.025\",kind=\"undo\",outcome=\"done\"} 1"
        ));
        assert!(text.contains(
            "rollbackd_step_duration_seconds_bucket{le=\"0.01\",kind=\"undo\",outcome=\"done\"} 0"
        ));
        assert!(text.contains("rollbackd_incidents{state=\"resolved\"} 3"));
        assert_eq!(
            m.counter("rollbackd_decisions_total", &["GL-002", "rollback"]),
            2.0
        );
        assert_eq!(m.counter("rollbackd_decisions_total", &["GL-9", "x"]), 0.0);
    }

    /// The names people query (README, alert rules, dashboards) are the declared ones: every
    /// counter's ends in `_total`, which the exposition keeps on its samples.
    #[test]
    fn every_family_is_exposed_under_its_declared_name() {
        let m = Metrics::new();
        for (name, entry) in &m.families {
            let values = vec!["x"; entry.labels.len()];
            match entry.series {
                Series::Counter(_) => {
                    assert!(
                        name.ends_with("_total"),
                        "counter {name} must end in _total"
                    );
                    m.inc(name, &values);
                }
                Series::Gauge(_) => m.set(name, &values, 1.0),
                Series::Histogram(_) => m.observe(name, &values, 0.5),
            }
        }
        let text = m.render();
        let samples: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(['{', ' ']).next().unwrap_or(""))
            .collect();
        for (name, entry) in &m.families {
            let sample = match entry.series {
                Series::Histogram(_) => format!("{name}_bucket"),
                _ => name.to_string(),
            };
            assert!(
                samples.contains(sample.as_str()),
                "{sample} missing from:\n{text}"
            );
        }
        // help texts end in exactly one full stop
        assert!(!text.contains(".."), "{text}");
    }
}
