//! PromQL-like arithmetic between two snapshots: rates, ratios, quantiles.

use std::collections::{BTreeMap, HashMap};

use super::snapshot::{Sample, Snapshot};
use crate::signals::histogram::{Bucket, bucket_quantile};
use crate::signals::selector::{LabelMatcher, Selector};

type SeriesKey<'a> = (&'a str, &'a BTreeMap<String, String>);

/// Per matching series of `cur`, the increase since `prev`, with counter-reset
/// handling (a value lower than before means the counter restarted from 0, so
/// the increase is the current value). A series absent from `prev` is taken to
/// have started at 0 in between, because client libraries create labelled
/// counters lazily on their first increment. `None` if nothing matches.
fn increases<'a>(
    prev: &'a Snapshot,
    cur: &'a Snapshot,
    matches: impl Fn(&Sample) -> bool,
) -> Option<Vec<(&'a Sample, f64)>> {
    let before: HashMap<SeriesKey<'a>, f64> = prev
        .samples
        .iter()
        .filter(|s| matches(s))
        .map(|s| ((s.name.as_str(), &s.labels), s.value))
        .collect();
    let out: Vec<(&Sample, f64)> = cur
        .samples
        .iter()
        .filter(|s| matches(s) && s.value.is_finite())
        .map(|s| {
            let old = before
                .get(&(s.name.as_str(), &s.labels))
                .copied()
                .filter(|v| v.is_finite())
                .unwrap_or(0.0);
            let inc = if s.value < old {
                s.value
            } else {
                s.value - old
            };
            (s, inc)
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

fn elapsed_seconds(prev: &Snapshot, cur: &Snapshot) -> Option<f64> {
    let ms = (cur.at - prev.at).num_milliseconds();
    (ms > 0).then(|| ms as f64 / 1000.0)
}

/// Per-second increase of the matching counters between two snapshots, summed
/// over series (`sum(rate(selector))` over exactly this interval).
///
/// `None` when no series matches in `cur` or no time elapsed.
pub fn rate_between(prev: &Snapshot, cur: &Snapshot, selector: &Selector) -> Option<f64> {
    let secs = elapsed_seconds(prev, cur)?;
    let incs = increases(prev, cur, |s| selector.matches(&s.name, &s.labels))?;
    Some(incs.iter().map(|(_, inc)| inc).sum::<f64>() / secs)
}

/// `rate(numerator) / rate(denominator)`, e.g. the error ratio
/// `rate(http_requests_total{status=~"5.."}) / rate(http_requests_total)`.
///
/// `None` when the denominator has no series, no elapsed time, or a zero rate:
/// no traffic is *no data*, not 0 %. A numerator without any series while the
/// denominator has traffic gives `Some(0.0)` (no error was ever counted).
pub fn ratio_between(
    prev: &Snapshot,
    cur: &Snapshot,
    numerator: &Selector,
    denominator: &Selector,
) -> Option<f64> {
    let den = rate_between(prev, cur, denominator)?;
    if den <= 0.0 {
        return None;
    }
    let num = rate_between(prev, cur, numerator).unwrap_or(0.0);
    Some(num / den)
}

/// The `q`-quantile of the observations made between two snapshots, from the
/// increase of the `<histogram>_bucket` series matching `matchers`, summed per
/// `le` over all matching series (`histogram_quantile(q, sum by (le) (rate(…)))`).
///
/// `None` when no bucket matches, there were no observations, `q` is outside
/// `[0, 1]`, or the buckets lack `+Inf`.
pub fn quantile_between(
    prev: &Snapshot,
    cur: &Snapshot,
    q: f64,
    histogram: &str,
    matchers: &[LabelMatcher],
) -> Option<f64> {
    let bucket_name = format!("{histogram}_bucket");
    let incs = increases(prev, cur, |s| {
        s.name == bucket_name && matchers.iter().all(|m| m.matches_labels(&s.labels))
    })?;
    let mut per_le: Vec<Bucket> = Vec::new();
    for (sample, inc) in incs {
        let Some(le) = sample.labels.get("le").and_then(|v| parse_bound(v)) else {
            continue;
        };
        match per_le.iter_mut().find(|b| b.upper_bound == le) {
            Some(b) => b.count += inc,
            None => per_le.push(Bucket {
                upper_bound: le,
                count: inc,
            }),
        }
    }
    bucket_quantile(q, &per_le)
}

/// Sum of the current values of the matching series (a gauge read);
/// `None` when nothing matches.
pub fn value(snapshot: &Snapshot, selector: &Selector) -> Option<f64> {
    let mut matched = snapshot.select(selector).peekable();
    matched.peek()?;
    Some(matched.map(|s| s.value).sum())
}

fn parse_bound(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse::<f64>().ok().filter(|v| !v.is_nan()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn snap(ms: i64, text: &str) -> Snapshot {
        let at = Utc.timestamp_millis_opt(ms).unwrap();
        Snapshot::from_text(text, at).unwrap()
    }

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    #[test]
    fn rate_and_ratio() {
        let a = snap(0, "# TYPE r counter\nr{s=\"200\"} 100\nr{s=\"500\"} 10\n");
        let b = snap(
            2000,
            "# TYPE r counter\nr{s=\"200\"} 130\nr{s=\"500\"} 20\n",
        );
        assert_eq!(rate_between(&a, &b, &sel("r")), Some(20.0));
        assert_eq!(rate_between(&a, &b, &sel(r#"r{s=~"5.."}"#)), Some(5.0));
        assert_eq!(rate_between(&a, &b, &sel("nope")), None);
        assert_eq!(rate_between(&a, &a, &sel("r")), None);
        assert_eq!(rate_between(&b, &a, &sel("r")), None);
        assert_eq!(
            ratio_between(&a, &b, &sel(r#"r{s=~"5.."}"#), &sel("r")),
            Some(0.25)
        );
    }

    #[test]
    fn counter_reset_counts_current_value() {
        let a = snap(0, "r{s=\"200\"} 100\nr{s=\"500\"} 10\n");
        let b = snap(1000, "r{s=\"200\"} 4\nr{s=\"500\"} 12\n");
        assert_eq!(rate_between(&a, &b, &sel("r")), Some(6.0));
    }

    #[test]
    fn no_traffic_is_no_data_and_new_series_start_at_zero() {
        let a = snap(0, "r{s=\"200\"} 100\n");
        let b = snap(1000, "r{s=\"200\"} 100\n");
        assert_eq!(
            ratio_between(&a, &b, &sel(r#"r{s="500"}"#), &sel("r")),
            None
        );
        let c = snap(2000, "r{s=\"200\"} 110\n");
        assert_eq!(
            ratio_between(&b, &c, &sel(r#"r{s="500"}"#), &sel("r")),
            Some(0.0)
        );
        let d = snap(3000, "r{s=\"200\"} 110\nr{s=\"500\"} 10\n");
        assert_eq!(
            ratio_between(&c, &d, &sel(r#"r{s="500"}"#), &sel("r")),
            Some(1.0)
        );
    }

    #[test]
    fn quantile_from_typed_and_untyped_buckets() {
        let typed = |ms, n: f64| {
            snap(
                ms,
                &format!(
                    "# TYPE h histogram\nh_bucket{{le=\"0.1\"}} 0\nh_bucket{{le=\"0.5\"}} {n}\n\
                     h_bucket{{le=\"+Inf\"}} {n}\nh_sum {}\nh_count {n}\n",
                    n * 0.3
                ),
            )
        };
        let a = typed(0, 10.0);
        let b = typed(1000, 20.0);
        let q = quantile_between(&a, &b, 0.5, "h", &[]).unwrap();
        assert!((q - 0.3).abs() < 1e-12, "{q}");
        assert_eq!(rate_between(&a, &b, &sel("h_count")), Some(10.0));
        assert_eq!(quantile_between(&a, &a, 0.5, "h", &[]), None);
        // Untyped (no TYPE line): the same maths.
        let u = |ms, n: f64| {
            snap(
                ms,
                &format!(
                    "h_bucket{{le=\"0.1\"}} 0\nh_bucket{{le=\"0.5\"}} {n}\nh_bucket{{le=\"+Inf\"}} {n}\n"
                ),
            )
        };
        let q = quantile_between(&u(0, 10.0), &u(1000, 20.0), 0.5, "h", &[]).unwrap();
        assert!((q - 0.3).abs() < 1e-12, "{q}");
    }

    #[test]
    fn gauge_value() {
        let a = snap(0, "# TYPE g gauge\ng{x=\"1\"} 2.5\ng{x=\"2\"} 1\nn NaN\n");
        assert_eq!(value(&a, &sel("g")), Some(3.5));
        assert_eq!(value(&a, &sel(r#"g{x="1"}"#)), Some(2.5));
        assert_eq!(value(&a, &sel("missing")), None);
        assert!(value(&a, &sel("n")).unwrap().is_nan());
    }
}
