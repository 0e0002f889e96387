//! The benchmark's figures: what was measured, on which machine, and the table printed
//! and written next to the JSON.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The machine a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name from /proc/cpuinfo; empty when unknown.
    pub cpu_model: String,
    /// CPUs this process may use.
    pub cpus: usize,
    /// Total RAM (MemTotal), in MiB; 0 when unknown.
    pub memory_mib: u64,
    /// Kernel release (/proc/sys/kernel/osrelease); empty when unknown.
    pub kernel: String,
    /// The rollbackd version that ran.
    pub rollbackd_version: String,
    /// When the run started (RFC 3339).
    pub date: String,
}

impl Machine {
    /// Reads /proc (Linux); unknown fields stay empty.
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_string())
            .unwrap_or_default();
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| proc_kib(&m, "MemTotal:"))
            .map_or(0, |k| k / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Machine {
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mib,
            kernel,
            rollbackd_version: env!("CARGO_PKG_VERSION").into(),
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

/// A `key:  1234 kB` line of a /proc file, in KiB.
pub fn proc_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// This process's peak resident set size (VmHWM), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    proc_kib(&status, "VmHWM:").map(|k| k as f64 / 1024.0)
}

/// A latency distribution, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    /// How many latencies were measured.
    pub samples: usize,
    /// Median (nearest rank).
    pub p50_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// The slowest.
    pub max_ms: f64,
    /// The arithmetic mean.
    pub mean_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `samples`.
    pub fn of(samples: &[Duration]) -> Latency {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let rank = |p: f64| -> f64 {
            if ms.is_empty() {
                return 0.0;
            }
            let i = ((p / 100.0) * ms.len() as f64).ceil() as usize;
            ms[i.clamp(1, ms.len()) - 1]
        };
        Latency {
            samples: ms.len(),
            p50_ms: rank(50.0),
            p99_ms: rank(99.0),
            max_ms: ms.last().copied().unwrap_or_default(),
            mean_ms: if ms.is_empty() {
                0.0
            } else {
                ms.iter().sum::<f64>() / ms.len() as f64
            },
        }
    }
}

/// Alert received by the webhook → first rollback PATCH received by the API server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookToPatch {
    /// The store backend the daemon kept its state in (`sqlite`, `kubernetes`); figures
    /// written before it was measured per backend are SQLite's.
    #[serde(default = "sqlite")]
    pub store: String,
    /// Workloads watched (one alert each).
    pub workloads: usize,
    /// Webhook POST → the simulator's receipt of that Deployment's undo PATCH.
    pub latency: Latency,
    /// The webhook's own answer time (recorded durably, then 200).
    pub webhook_answer: Latency,
    /// Incidents the store holds afterwards (should equal the alerts).
    pub incidents: usize,
}

/// One evaluation cycle over a fleet, measured in its own process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cycle {
    /// Workloads in the fleet.
    pub workloads: usize,
    /// The first cycle (every decision is new).
    pub first_ms: f64,
    /// The median of the following cycles (steady state).
    pub median_ms: f64,
    /// The slowest cycle.
    pub max_ms: f64,
    /// Of the steady cycle: deriving the kube signals from the watcher's caches (median).
    #[serde(default)]
    pub kube_median_ms: f64,
    /// Of the first cycle: deriving the kube signals.
    #[serde(default)]
    pub kube_first_ms: f64,
    /// How many cycles were timed.
    pub cycles: usize,
    /// The simulated time between two cycles, in seconds.
    #[serde(default)]
    pub interval_s: f64,
    /// PromQL requests per cycle as counted by rollbackd.
    pub promql_requests: usize,
    /// PromQL requests per cycle as counted by the stand-in Prometheus.
    pub promql_requests_seen: f64,
    /// Distinct PromQL signals the fleet shares.
    pub shared_signals: usize,
    /// Peak RSS of the measuring process (VmHWM).
    pub peak_rss_mib: f64,
    /// Peak RSS once the watcher's caches held the fleet, before the evaluator was built.
    #[serde(default)]
    pub watch_rss_mib: f64,
}

/// Webhook ingestion under load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ingestion {
    /// Alerts in each webhook request.
    pub alerts_per_request: usize,
    /// Senders posting at once.
    pub concurrency: usize,
    /// How long the senders ran, in seconds.
    pub seconds: f64,
    /// Requests answered with a 2xx.
    pub requests: usize,
    /// Alerts in the requests answered with a 2xx.
    pub alerts: usize,
    /// Accepted alerts per second.
    pub alerts_per_second: f64,
    /// Accepted requests per second.
    pub requests_per_second: f64,
    /// Per-request answer time.
    pub latency: Latency,
    /// Requests that did not get a 2xx.
    pub failed: usize,
}

/// How long another tool's default analysis takes to act on the same breach.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// The tool and how it is fed, e.g. `Flagger` or `rollbackd, own PromQL`.
    pub tool: String,
    /// The settings assumed, with their source (defaults, docs, deploy/monitoring).
    pub settings: String,
    /// How min, mean and max are computed from the settings and measured figures.
    pub arithmetic: String,
    /// Shortest time from breach to action, in seconds.
    pub min_s: f64,
    /// Mean time from breach to action, in seconds (breach at a uniformly random phase).
    pub mean_s: f64,
    /// Longest time from breach to action, in seconds.
    pub max_s: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    /// The machine the run measured.
    pub machine: Machine,
    /// Webhook → rollback PATCH with the SQLite store; `None` when not measured (`--only`).
    pub webhook_to_patch: Option<WebhookToPatch>,
    /// Webhook → rollback PATCH with the Kubernetes store on the simulator.
    #[serde(default)]
    pub webhook_to_patch_kubernetes: Option<WebhookToPatch>,
    /// One entry per fleet size measured.
    pub cycles: Vec<Cycle>,
    /// One entry per alerts-per-request size measured.
    pub ingestion: Vec<Ingestion>,
    /// How long the same breach takes to be acted on, rollbackd against Flagger and Argo Rollouts.
    pub comparison: Vec<Comparison>,
}

fn sqlite() -> String {
    "sqlite".into()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

impl Figures {
    /// The figures as Markdown tables, with each target and whether it was met.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "Machine: {} ({} CPUs), {} MiB RAM, Linux {}; rollbackd {}, {}\n\n",
            m.cpu_model, m.cpus, m.memory_mib, m.kernel, m.rollbackd_version, m.date
        );
        out.push_str("| measurement | result | target |\n| --- | --- | --- |\n");
        // the Kubernetes store writes each incident to the API server (a simulator here):
        // its goal is looser than SQLite's
        for (w, goal) in [
            (&self.webhook_to_patch, 20.0),
            (&self.webhook_to_patch_kubernetes, 50.0),
        ] {
            let Some(w) = w else { continue };
            out.push_str(&format!(
                "| webhook received → first rollback PATCH, {} store, {} alerts ({} workloads) | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms | p99 < {goal} ms: {} |\n",
                w.store,
                w.latency.samples,
                w.workloads,
                w.latency.p50_ms,
                w.latency.p99_ms,
                w.latency.max_ms,
                verdict(w.latency.p99_ms < goal)
            ));
            out.push_str(&format!(
                "| of which the webhook's answer (recorded in the {} store, then 200) | p50 {:.1} ms, p99 {:.1} ms | |\n",
                w.store, w.webhook_answer.p50_ms, w.webhook_answer.p99_ms
            ));
        }
        for c in &self.cycles {
            let target = if c.workloads >= 10_000 {
                format!(
                    "< 1 s: {}; ≤ 1 query/signal: {}; RSS < 150 MiB: {}",
                    verdict(c.median_ms < 1000.0 && c.first_ms < 1000.0),
                    verdict(c.promql_requests <= c.shared_signals),
                    verdict(c.peak_rss_mib < 150.0)
                )
            } else {
                format!(
                    "≤ 1 query/signal: {}",
                    verdict(c.promql_requests <= c.shared_signals)
                )
            };
            out.push_str(&format!(
                "| one evaluation cycle, {} workloads sharing {} PromQL signals | first {:.1} ms, steady {:.1} ms (max {:.1}; kube signals {:.1} / {:.1} ms of them); {} PromQL requests ({} seen by Prometheus); peak RSS {:.1} MiB ({:.1} MiB with the watcher's caches filled) over {} cycles ({:.0} min of 15 s cycles) | {} |\n",
                c.workloads,
                c.shared_signals,
                c.first_ms,
                c.median_ms,
                c.max_ms,
                c.kube_first_ms,
                c.kube_median_ms,
                c.promql_requests,
                c.promql_requests_seen,
                c.peak_rss_mib,
                c.watch_rss_mib,
                c.cycles,
                c.cycles as f64 * c.interval_s / 60.0,
                target
            ));
        }
        for i in &self.ingestion {
            out.push_str(&format!(
                "| webhook ingestion, {} alert(s)/request, {} concurrent senders, {:.0} s | {:.0} alerts/s ({:.0} requests/s), p50 {:.1} ms, p99 {:.1} ms, {} failed | ≥ 10,000 alerts/s: {} |\n",
                i.alerts_per_request,
                i.concurrency,
                i.seconds,
                i.alerts_per_second,
                i.requests_per_second,
                i.latency.p50_ms,
                i.latency.p99_ms,
                i.failed,
                verdict(i.alerts_per_second >= 10_000.0)
            ));
        }
        if !self.comparison.is_empty() {
            out.push_str("\nThe same breach (a step change the first measurement after it catches), acted on:\n\n| tool | settings | arithmetic | min | mean | max |\n| --- | --- | --- | --- | --- | --- |\n");
            for c in &self.comparison {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} |\n",
                    c.tool,
                    c.settings,
                    c.arithmetic,
                    seconds(c.min_s),
                    seconds(c.mean_s),
                    seconds(c.max_s)
                ));
            }
        }
        out
    }
}

fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(&samples);
        assert_eq!(l.samples, 100);
        assert_eq!(l.p50_ms, 50.0);
        assert_eq!(l.p99_ms, 99.0);
        assert_eq!(l.max_ms, 100.0);
        assert!((l.mean_ms - 50.5).abs() < 1e-9);
        let one = Latency::of(&[Duration::from_millis(7)]);
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
        assert_eq!(Latency::of(&[]).samples, 0);
    }

    #[test]
    fn proc_lines_are_read_in_kib() {
        let status = "Name:\trollbackd\nVmHWM:\t   153600 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(proc_kib(status, "VmHWM:"), Some(153_600));
        assert_eq!(proc_kib(status, "VmSwap:"), None);
    }
}
