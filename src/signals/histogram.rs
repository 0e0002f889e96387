//! `histogram_quantile` semantics over cumulative buckets.

/// One cumulative histogram bucket: the count of observations `<= upper_bound`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// The bucket's `le` bound (`f64::INFINITY` for `+Inf`).
    pub upper_bound: f64,
    /// The cumulative count (or its increase over a window).
    pub count: f64,
}

/// The `q`-quantile of cumulative buckets, as Prometheus' `histogram_quantile`
/// computes it: buckets sorted by bound, linear interpolation inside the bucket
/// the rank falls in (from 0 for the first bucket when its bound is positive),
/// and the upper bound of the highest finite bucket when the rank falls in `+Inf`.
///
/// Returns `None` when `q` is not in `[0, 1]`, when there is no `+Inf` bucket or
/// fewer than two buckets, or when there are no observations. Non-monotonic
/// counts (from scrape races) are smoothed upwards, as Prometheus does.
pub fn bucket_quantile(q: f64, buckets: &[Bucket]) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut sorted: Vec<Bucket> = buckets
        .iter()
        .copied()
        .filter(|b| !b.upper_bound.is_nan() && b.count.is_finite())
        .collect();
    sorted.sort_by(|a, b| a.upper_bound.total_cmp(&b.upper_bound));
    // Merge duplicate bounds (e.g. `le="1"` and `le="1.0"`).
    sorted.dedup_by(|later, earlier| {
        if later.upper_bound == earlier.upper_bound {
            earlier.count += later.count;
            true
        } else {
            false
        }
    });
    let last = sorted.last()?;
    if last.upper_bound != f64::INFINITY || sorted.len() < 2 {
        return None;
    }
    let mut max = f64::NEG_INFINITY;
    for b in &mut sorted {
        max = max.max(b.count);
        b.count = max;
    }
    let observations = sorted.last()?.count;
    if observations <= 0.0 {
        return None;
    }
    let rank = q * observations;
    let idx = sorted.iter().position(|b| b.count >= rank)?;
    let here = sorted.get(idx)?;
    let below = idx.checked_sub(1).and_then(|i| sorted.get(i));
    if idx + 1 == sorted.len() {
        // The rank falls in +Inf: answer the highest finite bound.
        return below.map(|b| b.upper_bound);
    }
    if below.is_none() && here.upper_bound <= 0.0 {
        return Some(here.upper_bound);
    }
    let (start, below_count) = below.map_or((0.0, 0.0), |b| (b.upper_bound, b.count));
    let end = here.upper_bound;
    let count = here.count - below_count;
    let rank = rank - below_count;
    if count <= 0.0 {
        return Some(start);
    }
    Some(start + (end - start) * (rank / count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(upper_bound: f64, count: f64) -> Bucket {
        Bucket { upper_bound, count }
    }

    #[test]
    fn interpolates_inside_bucket() {
        // 100 observations: 50 in (0.05, 0.1], 50 in (0.25, 0.5].
        let buckets = [
            b(0.5, 100.0),
            b(0.05, 0.0),
            b(0.1, 50.0),
            b(0.25, 50.0),
            b(1.0, 100.0),
            b(f64::INFINITY, 100.0),
        ];
        assert!((bucket_quantile(0.95, &buckets).unwrap() - 0.475).abs() < 1e-12);
        assert!((bucket_quantile(0.25, &buckets).unwrap() - 0.075).abs() < 1e-12);
        assert!((bucket_quantile(0.5, &buckets).unwrap() - 0.1).abs() < 1e-12);
    }

    #[test]
    fn inf_bucket_returns_highest_finite_bound() {
        let buckets = [b(1.0, 1.0), b(2.5, 2.0), b(f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(0.99, &buckets), Some(2.5));
    }

    #[test]
    fn first_bucket_starts_at_zero() {
        let buckets = [b(0.1, 10.0), b(f64::INFINITY, 10.0)];
        assert!((bucket_quantile(0.5, &buckets).unwrap() - 0.05).abs() < 1e-12);
        let negative = [b(-1.0, 10.0), b(f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(0.5, &negative), Some(-1.0));
    }

    #[test]
    fn no_data_cases() {
        assert_eq!(bucket_quantile(0.5, &[]), None);
        assert_eq!(bucket_quantile(0.5, &[b(f64::INFINITY, 3.0)]), None);
        assert_eq!(bucket_quantile(0.5, &[b(1.0, 3.0), b(2.0, 3.0)]), None);
        assert_eq!(
            bucket_quantile(0.5, &[b(1.0, 0.0), b(f64::INFINITY, 0.0)]),
            None
        );
        assert_eq!(
            bucket_quantile(1.5, &[b(1.0, 1.0), b(f64::INFINITY, 1.0)]),
            None
        );
        assert_eq!(
            bucket_quantile(f64::NAN, &[b(1.0, 1.0), b(f64::INFINITY, 1.0)]),
            None
        );
    }

    #[test]
    fn non_monotonic_is_smoothed() {
        let buckets = [b(1.0, 10.0), b(2.0, 8.0), b(f64::INFINITY, 10.0)];
        assert!((bucket_quantile(0.5, &buckets).unwrap() - 0.5).abs() < 1e-12);
    }
}
