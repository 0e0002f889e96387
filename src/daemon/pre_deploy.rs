//! What a deploy is measured against, fetched from Prometheus off the evaluation loop:
//! each baseline signal's mean over its lookback (at each deploy), and a signal's value at
//! the deploy when a rollback row needs it and the daemon did not sample it before (a
//! condition that already held then is not the deploy's doing).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::collect::MetricSource;
use crate::signals::prometheus::QueryResult;
use rollbackd_core::policy::{Policy, SignalSource};

/// A deploy's reference values, fetched after it was observed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fetched {
    /// The agent and the revision they belong to (a newer deploy discards them).
    pub agent: String,
    /// The deploy's revision; answers for an older one are dropped.
    pub revision: u64,
    /// Baselines over each signal's lookback.
    pub baselines: BTreeMap<String, f64>,
    /// Each asked-for metric signal's value at the deploy.
    pub pre_deploy: BTreeMap<String, f64>,
    /// These are pre-deploy values (asked for when a condition needed them), not baselines.
    pub pre: bool,
    /// Recent samples of each signal (a backfill after a take-over or a restart).
    pub history: BTreeMap<String, Vec<(DateTime<Utc>, f64)>>,
}

/// What to fetch for a deploy.
#[derive(Debug, Clone, PartialEq)]
pub enum Wanted {
    /// The baselines of the policy's signals that have a lookback.
    Baselines,
    /// The values at the deploy of these signals.
    PreDeploy(Vec<String>),
}

/// Whether the policy has baselines Prometheus can answer (worth a fetch at each deploy).
pub fn has_promql_baselines(policy: &Policy) -> bool {
    policy.signals.values().any(|s| {
        s.baseline.is_some()
            && matches!(
                s.source,
                SignalSource::Metric {
                    promql: Some(_),
                    ..
                }
            )
    })
}

/// Fetches what is `wanted` of `policy`'s metric signals for a deploy at `at`; a failed
/// query leaves its signal out (rows on it then wait or stay unknown).
pub async fn fetch(
    source: Arc<MetricSource>,
    policy: Arc<Policy>,
    revision: u64,
    at: DateTime<Utc>,
    wanted: Wanted,
) -> Fetched {
    let mut fetched = Fetched {
        agent: policy.agent.id.clone(),
        revision,
        ..Fetched::default()
    };
    let signals = match wanted {
        Wanted::Baselines => {
            fetched.baselines = source.baselines(&policy, at).await;
            return fetched;
        }
        Wanted::PreDeploy(signals) => signals,
    };
    fetched.pre = true;
    let MetricSource::Prometheus(client) = source.as_ref() else {
        return fetched;
    };
    for name in &signals {
        let Some(SignalSource::Metric {
            promql: Some(q), ..
        }) = policy.signals.get(name).map(|s| &s.source)
        else {
            continue;
        };
        match client.query(q, Some(at)).await {
            Ok(result) => {
                if let Some(v) = workload_value(&result, &policy) {
                    fetched.pre_deploy.insert(name.clone(), v);
                }
            }
            Err(e) => {
                tracing::warn!(signal = %name, error = %e, "pre-deploy value query failed: conditions on it are judged without it")
            }
        }
    }
    fetched
}

/// The finite value of the series for the policy's primary workload (or the only series).
fn workload_value(result: &QueryResult, policy: &Policy) -> Option<f64> {
    let workload = policy.primary_workload()?;
    let series = result.series.iter().find(|s| {
        s.label("deployment") == Some(workload.name.as_str())
            && s.label("namespace")
                .is_none_or(|ns| ns == workload.namespace)
    });
    let series = series.or(match result.series.as_slice() {
        [only] => Some(only),
        _ => None,
    })?;
    Some(series.value).filter(|v| v.is_finite())
}
