//! Reads metric signals once per evaluation cycle: one PromQL query per distinct query
//! text (shared by every workload that uses it, mapped back by `namespace`/`deployment`
//! labels), or, with no Prometheus, one scrape of each agent's `/metrics` with rates and
//! quantiles computed against the previous scrape.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

use crate::signals::prometheus::{PromClient, QueryResult, group_by};
use crate::signals::scrape::{
    Scraper, Snapshot, quantile_between, rate_between, ratio_between, value,
};
use crate::signals::selector::Selector;
use rollbackd_core::policy::{Policy, ScrapeSpec, SignalSource};

/// One cycle's readings.
#[derive(Debug, Default)]
pub struct Readings {
    /// (agent, signal) → value; `None` is no data.
    pub values: BTreeMap<(String, String), Option<f64>>,
    /// What failed, as `source: reason`, for the decision's evidence and the logs.
    pub errors: Vec<(String, String)>,
    /// Requests made (PromQL queries or scrapes).
    pub requests: usize,
    /// Each request that failed this cycle (`promql <query>`, `scrape <agent>`) with its
    /// error, for [`ReadOutages`]: the log tells when a read starts and stops failing.
    pub failed: BTreeMap<String, String>,
}

/// A read (one PromQL query, one agent's scrape) that fails, while it does.
#[derive(Debug, Clone, PartialEq)]
struct Outage {
    since: DateTime<Utc>,
    cycles: u64,
}

/// What a cycle changed about a read's failures, for the log.
#[derive(Debug, Clone, PartialEq)]
pub enum OutageChange {
    /// The read failed after working (or on its first cycle).
    Started {
        /// `promql <query>` or `scrape <agent>`.
        read: String,
        /// The first failure's error.
        error: String,
    },
    /// It works again.
    Ended {
        /// `promql <query>` or `scrape <agent>`.
        read: String,
        /// How long it failed: from its first failed cycle to this one.
        after: chrono::TimeDelta,
        /// How many cycles failed.
        cycles: u64,
    },
}

/// The reads that are failing. During a Prometheus outage each query fails every cycle;
/// the log says so once when it starts and once when it ends (with its length), and
/// `rollbackd_signal_errors_total` counts every failure.
#[derive(Debug, Default)]
pub struct ReadOutages {
    failing: BTreeMap<String, Outage>,
}

impl ReadOutages {
    /// Records one cycle's readings (read at `at`) and returns what changed.
    pub fn update(&mut self, readings: &Readings, at: DateTime<Utc>) -> Vec<OutageChange> {
        let mut changes = Vec::new();
        let ended: Vec<String> = self
            .failing
            .keys()
            .filter(|r| !readings.failed.contains_key(*r))
            .cloned()
            .collect();
        for read in ended {
            if let Some(o) = self.failing.remove(&read) {
                changes.push(OutageChange::Ended {
                    read,
                    after: at - o.since,
                    cycles: o.cycles,
                });
            }
        }
        for (read, error) in &readings.failed {
            match self.failing.get_mut(read) {
                Some(o) => o.cycles += 1,
                None => {
                    self.failing.insert(
                        read.clone(),
                        Outage {
                            since: at,
                            cycles: 1,
                        },
                    );
                    changes.push(OutageChange::Started {
                        read: read.clone(),
                        error: error.clone(),
                    });
                }
            }
        }
        changes
    }

    /// [`ReadOutages::update`], then one log line per change.
    pub fn report(&mut self, readings: &Readings, at: DateTime<Utc>) {
        for change in self.update(readings, at) {
            match change {
                OutageChange::Started { read, error } => tracing::warn!(
                    read,
                    error,
                    "signal read failing: its signals have no data until it recovers (each failure is counted in rollbackd_signal_errors_total)"
                ),
                OutageChange::Ended {
                    read,
                    after,
                    cycles,
                } => tracing::info!(
                    read,
                    failed_cycles = cycles,
                    "signal read recovered after {}",
                    rollbackd_core::policy::duration::format_duration(after)
                ),
            }
        }
    }
}

/// Where metric signals come from.
pub enum MetricSource {
    /// A Prometheus-compatible API.
    Prometheus(PromClient),
    /// Direct scrapes; remembers each agent's previous scrape.
    Scrape {
        /// Fetches and parses an agent's `/metrics`.
        scraper: Scraper,
        /// Each agent's previous scrape, by agent id: rates and ratios need two.
        previous: Mutex<HashMap<String, Snapshot>>,
    },
}

/// A policy and, per signal, how far back its history is wanted.
pub type HistoryWanted = (Arc<Policy>, Vec<(String, TimeDelta)>);

impl MetricSource {
    /// Direct scrape.
    pub fn scrape(scraper: Scraper) -> Self {
        MetricSource::Scrape {
            scraper,
            previous: Mutex::new(HashMap::new()),
        }
    }

    /// Baselines of `policy`'s signals that have one, over their lookback before `deployed_at`:
    /// the mean of a range query ending at the deploy. Direct scrape has none here: its
    /// baselines come from the samples scraped before the deploy.
    pub async fn baselines(
        &self,
        policy: &Policy,
        deployed_at: DateTime<Utc>,
    ) -> BTreeMap<String, f64> {
        let MetricSource::Prometheus(client) = self else {
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (name, s) in policy.signals.iter() {
            let (
                Some(lookback),
                SignalSource::Metric {
                    promql: Some(q), ..
                },
            ) = (s.baseline, &s.source)
            else {
                continue;
            };
            let step = (lookback / 12)
                .to_std()
                .unwrap_or(std::time::Duration::from_secs(60))
                .max(std::time::Duration::from_secs(1));
            match client
                .query_range(q, deployed_at - lookback, deployed_at, step)
                .await
            {
                Ok(result) => {
                    let workload = policy.primary_workload();
                    let series = result.series.iter().find(|s| {
                        workload.is_some_and(|w| s.label("deployment") == Some(w.name.as_str()))
                            || result.series.len() == 1
                    });
                    let points: Vec<f64> = series
                        .map(|s| {
                            s.points
                                .iter()
                                .map(|p| p.value)
                                .filter(|v| v.is_finite())
                                .collect()
                        })
                        .unwrap_or_default();
                    if !points.is_empty() {
                        out.insert(
                            name.clone(),
                            points.iter().sum::<f64>() / points.len() as f64,
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(signal = %name, error = %e, "baseline query failed: rows relative to it stay inconclusive")
                }
            }
        }
        out
    }

    /// Each PromQL signal's recent history for `wanted` (policy, and per signal how far
    /// back), one range query per distinct query (batched across policies like a cycle's
    /// reads), about 120 points over its reach (1 s to 15 s apart): what a window that was
    /// not sampled (a take-over, a restart) needs so that its first decision does not wait
    /// for a `for` to fill again. Per agent and signal, the samples found (none for a
    /// failed query).
    pub async fn history(
        &self,
        wanted: &[HistoryWanted],
        now: DateTime<Utc>,
    ) -> BTreeMap<(String, String), Vec<(DateTime<Utc>, f64)>> {
        let MetricSource::Prometheus(client) = self else {
            return BTreeMap::new();
        };
        // per query: the furthest reach asked, and who reads it
        type Readers<'a> = (TimeDelta, Vec<(&'a Arc<Policy>, &'a str)>);
        let mut by_query: BTreeMap<&str, Readers<'_>> = BTreeMap::new();
        for (p, signals) in wanted {
            for (name, back) in signals {
                if let Some(SignalSource::Metric {
                    promql: Some(q), ..
                }) = p.signals.get(name).map(|s| &s.source)
                {
                    let entry = by_query.entry(q.as_str()).or_default();
                    entry.0 = entry.0.max(*back);
                    entry.1.push((p, name.as_str()));
                }
            }
        }
        let queries = by_query.iter().map(|(q, (back, users))| async move {
            let step = (*back / 120).to_std().unwrap_or_default().clamp(
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(15),
            );
            let result = client.query_range(q, now - *back, now, step).await;
            (*q, users, result)
        });
        let mut out = BTreeMap::new();
        for (query, users, result) in futures::future::join_all(queries).await {
            let result = match result {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(%query, error = %e, "history query failed: its signals start from the next readings");
                    continue;
                }
            };
            for (p, signal) in users {
                let Some(workload) = p.primary_workload() else {
                    continue;
                };
                let series = result.series.iter().find(|s| {
                    s.label("deployment") == Some(workload.name.as_str())
                        && s.label("namespace")
                            .is_none_or(|ns| ns == workload.namespace)
                });
                let series = series.or(match (result.series.as_slice(), users.len()) {
                    ([only], 1) if only.label("deployment").is_none() => Some(only),
                    _ => None,
                });
                if let Some(series) = series {
                    let points = series.points.iter().map(|pt| (pt.at, pt.value)).collect();
                    out.insert((p.agent.id.clone(), signal.to_string()), points);
                }
            }
        }
        out
    }

    /// Reads every metric signal of `policies` at `now`.
    pub async fn read(&self, policies: &[Arc<Policy>], now: DateTime<Utc>) -> Readings {
        match self {
            MetricSource::Prometheus(client) => read_prometheus(client, policies, now).await,
            MetricSource::Scrape { scraper, previous } => {
                read_scrapes(scraper, previous, policies).await
            }
        }
    }
}

/// The value of a batched result for one policy's primary workload; `groups` is the
/// result grouped by (namespace, deployment), computed once per query, `None` when two
/// series share a group (then only the single-series fallback applies).
fn value_for(
    result: &QueryResult,
    groups: Option<&HashMap<Vec<String>, f64>>,
    policy: &Policy,
    sharing: usize,
) -> Option<f64> {
    let workload = policy.primary_workload()?;
    if let Some(groups) = groups
        && let Some(v) = groups.get(&vec![workload.namespace.clone(), workload.name.clone()])
    {
        return Some(*v).filter(|v| !v.is_nan());
    }
    // an unlabelled single series answers a query only one policy uses
    match (result.series.as_slice(), sharing) {
        ([only], 1) if only.label("deployment").is_none() => {
            Some(only.value).filter(|v| !v.is_nan())
        }
        _ => None,
    }
}

async fn read_prometheus(
    client: &PromClient,
    policies: &[Arc<Policy>],
    now: DateTime<Utc>,
) -> Readings {
    let mut by_query: BTreeMap<&str, Vec<(&Arc<Policy>, &str)>> = BTreeMap::new();
    for p in policies {
        for (name, s) in p.signals.iter() {
            if let SignalSource::Metric {
                promql: Some(q), ..
            } = &s.source
            {
                by_query
                    .entry(q.as_str())
                    .or_default()
                    .push((p, name.as_str()));
            }
        }
    }
    let queries = by_query
        .iter()
        .map(|(q, users)| async move { (*q, users, client.query(q, Some(now)).await) });
    let mut readings = Readings {
        requests: by_query.len(),
        ..Default::default()
    };
    for (query, users, result) in futures::future::join_all(queries).await {
        match result {
            Ok(result) => {
                let groups = group_by(&result, &["namespace", "deployment"]).ok();
                for (p, signal) in users.iter() {
                    readings.values.insert(
                        (p.agent.id.clone(), signal.to_string()),
                        value_for(&result, groups.as_ref(), p, users.len()),
                    );
                }
            }
            Err(e) => {
                readings
                    .errors
                    .push(("prometheus".into(), format!("{}: {e}", e.metric_label())));
                readings
                    .failed
                    .insert(format!("promql {query}"), e.to_string());
                for (p, signal) in users.iter() {
                    readings
                        .values
                        .insert((p.agent.id.clone(), signal.to_string()), None);
                }
            }
        }
    }
    readings
}

fn scrape_value(
    spec: &ScrapeSpec,
    prev: Option<&Snapshot>,
    cur: &Snapshot,
) -> Result<Option<f64>, String> {
    let sel = |s: &str| Selector::parse(s).map_err(|e| format!("selector {s:?}: {e}"));
    Ok(match spec {
        ScrapeSpec::Gauge(s) => value(cur, &sel(s)?),
        ScrapeSpec::Rate(s) => prev.and_then(|p| rate_between(p, cur, &sel(s).ok()?)),
        ScrapeSpec::Ratio {
            numerator,
            denominator,
        } => {
            let (n, d) = (sel(numerator)?, sel(denominator)?);
            prev.and_then(|p| ratio_between(p, cur, &n, &d))
        }
        ScrapeSpec::Quantile {
            histogram,
            quantile,
        } => prev.and_then(|p| quantile_between(p, cur, *quantile, histogram, &[])),
    })
}

async fn read_scrapes(
    scraper: &Scraper,
    previous: &Mutex<HashMap<String, Snapshot>>,
    policies: &[Arc<Policy>],
) -> Readings {
    let targets: Vec<(&Arc<Policy>, &str)> = policies
        .iter()
        .filter_map(|p| {
            p.primary_workload()
                .and_then(|w| w.metrics_url.as_deref())
                .map(|u| (p, u))
        })
        .collect();
    let scrapes = targets
        .iter()
        .map(|(p, url)| async move { (*p, scraper.scrape(url).await) });
    let results = futures::future::join_all(scrapes).await;
    let mut readings = Readings {
        requests: targets.len(),
        ..Default::default()
    };
    let Ok(mut previous) = previous.lock() else {
        return readings;
    };
    for (policy, result) in results {
        let agent = policy.agent.id.clone();
        let scraped = match result {
            Ok(s) => Some(s),
            Err(e) => {
                readings.errors.push((
                    "scrape".into(),
                    format!("{agent}: {}: {e}", e.metric_label()),
                ));
                readings
                    .failed
                    .insert(format!("scrape {agent}"), e.to_string());
                None
            }
        };
        for (name, s) in policy.signals.iter() {
            let SignalSource::Metric {
                scrape: Some(spec), ..
            } = &s.source
            else {
                continue;
            };
            let v = match &scraped {
                None => None,
                Some(cur) => match scrape_value(spec, previous.get(&agent), cur) {
                    Ok(v) => v.filter(|v| !v.is_nan()),
                    Err(e) => {
                        readings
                            .errors
                            .push(("scrape".into(), format!("{agent}: {e}")));
                        None
                    }
                },
            };
            readings.values.insert((agent.clone(), name.clone()), v);
        }
        match scraped {
            Some(s) => {
                previous.insert(agent, s);
            }
            None => {
                previous.remove(&agent);
            }
        }
    }
    readings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn cycle(failed: &[&str]) -> Readings {
        Readings {
            failed: failed
                .iter()
                .map(|r| (r.to_string(), "HTTP 503".to_string()))
                .collect(),
            ..Readings::default()
        }
    }

    #[test]
    fn an_outage_is_told_when_it_starts_and_when_it_ends_not_every_cycle() {
        let mut o = ReadOutages::default();
        let q = "promql sum(rate(x[5m]))";
        assert_eq!(o.update(&cycle(&[]), at(0)), []);
        assert_eq!(
            o.update(&cycle(&[q]), at(15)),
            [OutageChange::Started {
                read: q.into(),
                error: "HTTP 503".into()
            }]
        );
        for i in 2..10 {
            assert_eq!(o.update(&cycle(&[q]), at(15 * i)), [], "cycle {i}");
        }
        assert_eq!(
            o.update(&cycle(&[]), at(150)),
            [OutageChange::Ended {
                read: q.into(),
                after: chrono::TimeDelta::seconds(135),
                cycles: 9
            }]
        );
        assert_eq!(o.update(&cycle(&[]), at(165)), []);
    }

    #[test]
    fn reads_fail_and_recover_independently() {
        let mut o = ReadOutages::default();
        o.update(&cycle(&["promql a", "scrape GL-002"]), at(0));
        let changes = o.update(&cycle(&["promql a"]), at(30));
        assert_eq!(
            changes,
            [OutageChange::Ended {
                read: "scrape GL-002".into(),
                after: chrono::TimeDelta::seconds(30),
                cycles: 1
            }]
        );
    }
}
