//! One query per signal per cycle for many workloads.
//!
//! Convention: a policy's query aggregates `by` the workload labels, e.g.
//! `sum by (namespace, deployment) (rate(http_requests_total{status=~"5.."}[1m]))`,
//! so a single answer carries one series per workload. The template may say
//! `$by` where the label list goes: `sum by ($by) (rate(x[1m]))`.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use thiserror::Error;

use super::response::QueryResult;

/// Errors of the batching helpers.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BatchError {
    /// The query has no `by (…)` clause naming all the grouping labels.
    #[error("query does not aggregate by ({labels}): write `by ({labels})` or `by ($by)`")]
    MissingGrouping {
        /// The grouping labels, comma-separated.
        labels: String,
    },
    /// Two series of the answer have the same grouping label values, so the
    /// query was not aggregated by exactly those labels.
    #[error("two series share the group {key:?}: aggregate the query by the grouping labels")]
    DuplicateGroup {
        /// The repeated label values.
        key: Vec<String>,
    },
}

impl BatchError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            BatchError::MissingGrouping { .. } => "missing_grouping",
            BatchError::DuplicateGroup { .. } => "duplicate_group",
        }
    }
}

// `by` followed by a parenthesised label list; group 1 is the list.
static BY_CLAUSE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)\bby\s*\(([^()]*)\)").ok());

/// Expands `$by` in `query_template` to the grouping labels and checks that the
/// query has a `by (…)` clause naming every one of them.
pub fn batched(query_template: &str, by: &[&str]) -> Result<String, BatchError> {
    let joined = by.join(", ");
    let query = query_template.replace("$by", &joined);
    let grouped = BY_CLAUSE.as_ref().is_some_and(|re| {
        re.captures_iter(&query).any(|c| {
            let listed: Vec<&str> = c
                .get(1)
                .map_or("", |m| m.as_str())
                .split(',')
                .map(str::trim)
                .collect();
            by.iter().all(|label| listed.contains(label))
        })
    });
    if grouped || by.is_empty() {
        Ok(query)
    } else {
        Err(BatchError::MissingGrouping { labels: joined })
    }
}

/// Maps each series of `result` to its grouping label values (in the order of
/// `by`; a missing label counts as the empty string, as in PromQL).
pub fn group_by(
    result: &QueryResult,
    by: &[&str],
) -> Result<HashMap<Vec<String>, f64>, BatchError> {
    let mut out = HashMap::with_capacity(result.series.len());
    for series in &result.series {
        let key: Vec<String> = by
            .iter()
            .map(|l| series.label(l).unwrap_or_default().to_string())
            .collect();
        if out.contains_key(&key) {
            return Err(BatchError::DuplicateGroup { key });
        }
        out.insert(key, series.value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::prometheus::{ResultType, Series};

    fn series(ns: &str, dep: &str, v: f64) -> Series {
        let labels: Vec<(String, String)> = [("namespace", ns), ("deployment", dep)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Series {
            labels,
            value: v,
            points: vec![],
        }
    }

    #[test]
    fn template_expansion_and_validation() {
        let q = batched("sum by ($by) (rate(x[1m]))", &["namespace", "deployment"]).unwrap();
        assert_eq!(q, "sum by (namespace, deployment) (rate(x[1m]))");
        assert!(
            batched(
                "sum BY(deployment,namespace) (x)",
                &["namespace", "deployment"]
            )
            .is_ok()
        );
        assert!(batched("sum(x) / sum by (deployment) (y)", &["deployment"]).is_ok());
        assert_eq!(
            batched("sum(rate(x[1m]))", &["namespace", "deployment"]),
            Err(BatchError::MissingGrouping {
                labels: "namespace, deployment".into()
            })
        );
        assert!(batched("sum by (namespace) (x)", &["namespace", "deployment"]).is_err());
    }

    #[test]
    fn groups_values() {
        let r = QueryResult {
            result_type: ResultType::Vector,
            series: vec![series("prod", "a", 0.1), series("prod", "b", f64::NAN)],
            warnings: vec![],
        };
        let m = group_by(&r, &["namespace", "deployment"]).unwrap();
        assert_eq!(m[&vec!["prod".to_string(), "a".to_string()]], 0.1);
        assert!(m[&vec!["prod".to_string(), "b".to_string()]].is_nan());
        let err = group_by(&r, &["namespace"]).unwrap_err();
        assert_eq!(err.metric_label(), "duplicate_group");
        let missing = group_by(&r, &["pod"]);
        assert!(missing.is_err());
    }
}
