//! A parsed `/metrics` page: flat samples taken at one instant.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use prometheus_parse::{Scrape, Value};

use super::error::ScrapeError;
use crate::signals::selector::Selector;

/// One flat sample: histogram buckets appear as `<base>_bucket{le="…"}` samples,
/// summaries as `<base>{quantile="…"}`, exactly as on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name as exposed (e.g. `x_http_requests_total`).
    pub name: String,
    /// The labels, including `le` for buckets.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// All samples of one scrape and when it was taken.
///
/// Parsing is `prometheus-parse` 0.2's: label values containing `,`, `=` or `}`
/// (or escaped quotes) are not split correctly, so select on simple labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When the answer was received.
    pub at: DateTime<Utc>,
    /// The samples.
    pub samples: Vec<Sample>,
}

/// Formats a bucket bound or quantile as Prometheus does (`+Inf`, `0.25`, `1`).
fn format_bound(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

impl Snapshot {
    /// Parses the text exposition format; lines that are not samples are ignored.
    pub fn from_text(text: &str, at: DateTime<Utc>) -> Result<Self, ScrapeError> {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = Scrape::parse_at(lines, at).map_err(|e| ScrapeError::Parse(e.to_string()))?;
        let mut samples = Vec::with_capacity(scrape.samples.len());
        for s in scrape.samples {
            let labels: BTreeMap<String, String> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => samples.push(Sample {
                    name: s.metric,
                    labels,
                    value: v,
                }),
                Value::Histogram(buckets) => {
                    let name = format!("{}_bucket", s.metric);
                    for b in buckets {
                        let mut labels = labels.clone();
                        labels.insert("le".into(), format_bound(b.less_than));
                        samples.push(Sample {
                            name: name.clone(),
                            labels,
                            value: b.count,
                        });
                    }
                }
                Value::Summary(quantiles) => {
                    for q in quantiles {
                        let mut labels = labels.clone();
                        labels.insert("quantile".into(), format_bound(q.quantile));
                        samples.push(Sample {
                            name: s.metric.clone(),
                            labels,
                            value: q.count,
                        });
                    }
                }
            }
        }
        Ok(Self { at, samples })
    }

    /// The samples a selector matches.
    pub fn select<'a>(&'a self, selector: &'a Selector) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| selector.matches(&s.name, &s.labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_histograms_summaries_and_special_values() {
        let text = "# TYPE h histogram\nh_bucket{a=\"1\",le=\"0.5\"} 3\nh_bucket{a=\"1\",le=\"+Inf\"} 4\n\
                    h_sum{a=\"1\"} 1.5\nh_count{a=\"1\"} 4\n# TYPE s summary\ns{quantile=\"0.9\"} 2\n\
                    s_sum 9\n# TYPE g gauge\ng NaN\nc +Inf\nd -Inf\ngarbage line here\n# EOF\n";
        let snap = Snapshot::from_text(text, Utc::now()).unwrap();
        let find = |name: &str, le: Option<&str>| {
            snap.samples
                .iter()
                .find(|s| s.name == name && s.labels.get("le").map(String::as_str) == le)
                .map(|s| s.value)
        };
        assert_eq!(find("h_bucket", Some("0.5")), Some(3.0));
        assert_eq!(find("h_bucket", Some("+Inf")), Some(4.0));
        assert_eq!(find("h_count", None), Some(4.0));
        assert!(find("g", None).unwrap().is_nan());
        assert_eq!(find("c", None), Some(f64::INFINITY));
        assert_eq!(find("d", None), Some(f64::NEG_INFINITY));
        let s = snap.samples.iter().find(|s| s.name == "s").unwrap();
        assert_eq!(s.labels["quantile"], "0.9");
        let bucket = snap.samples.iter().find(|s| s.name == "h_bucket").unwrap();
        assert_eq!(bucket.labels["a"], "1");
    }
}
