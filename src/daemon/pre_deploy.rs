//! What a deploy is measured against, fetched from Prometheus off the evaluation loop:
//! each baseline signal's mean over its lookback, and each metric signal's value at the
//! deploy (a condition that already held then is not the deploy's doing).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::collect::MetricSource;
use crate::policy::{Policy, SignalSource};
use crate::signals::prometheus::QueryResult;

/// A deploy's reference values, fetched after it was observed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fetched {
    /// The agent and the revision they belong to (a newer deploy discards them).
    pub agent: String,
    pub revision: u64,
    /// Baselines over each signal's lookback.
    pub baselines: BTreeMap<String, f64>,
    /// Each metric signal's value at the deploy.
    pub pre_deploy: BTreeMap<String, f64>,
}

/// Fetches the baselines and pre-deploy values of `policy`'s metric signals for a deploy
/// at `at`; a failed query leaves its signal out (rows on it then wait or stay unknown).
pub async fn fetch(
    source: Arc<MetricSource>,
    policy: Arc<Policy>,
    revision: u64,
    at: DateTime<Utc>,
) -> Fetched {
    let baselines = source.baselines(&policy, at).await;
    let mut pre_deploy = BTreeMap::new();
    if let MetricSource::Prometheus(client) = source.as_ref() {
        for (name, s) in policy.signals.iter() {
            let SignalSource::Metric {
                promql: Some(q), ..
            } = &s.source
            else {
                continue;
            };
            if !s.can_predate_deploy() {
                continue;
            }
            match client.query(q, Some(at)).await {
                Ok(result) => {
                    if let Some(v) = workload_value(&result, &policy) {
                        pre_deploy.insert(name.clone(), v);
                    }
                }
                Err(e) => {
                    tracing::warn!(signal = %name, error = %e, "pre-deploy value query failed: conditions on it are judged without it")
                }
            }
        }
    }
    Fetched {
        agent: policy.agent.id.clone(),
        revision,
        baselines,
        pre_deploy,
    }
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
