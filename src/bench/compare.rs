//! How long the same breach takes to be acted on under rollbackd's shipped settings and under
//! Flagger's and Argo Rollouts' analysis defaults. Pure arithmetic over stated settings and
//! the run's measured figures; the breach is a step change that the first measurement after
//! it catches (a fair case for every tool), at a uniformly random phase of each period.

use std::time::Duration;

use super::report::Comparison;

/// The measured and configured inputs.
#[derive(Debug, Clone, Copy)]
pub struct Inputs {
    /// rollbackd's evaluation interval and jitter (the configuration in effect).
    pub interval: Duration,
    /// Up to this much random delay is added to each interval.
    pub jitter: Duration,
    /// Measured: one evaluation cycle.
    pub cycle: Duration,
    /// Measured: webhook received → rollback PATCH (p50).
    pub webhook_to_patch: Duration,
}

/// Settings of deploy/monitoring (ServiceMonitor, PrometheusRule, Alertmanager route).
const SCRAPE_S: f64 = 15.0;
const RULE_INTERVAL_S: f64 = 30.0;
const RULE_FOR_S: f64 = 120.0;
const GROUP_WAIT_S: f64 = 0.0;

/// Something that happens at the next tick of a `period` clock: waits 0..period.
fn next_tick(period: f64) -> (f64, f64, f64) {
    (0.0, period / 2.0, period)
}

/// The comparison rows.
pub fn rows(i: &Inputs) -> Vec<Comparison> {
    let (interval, jitter) = (i.interval.as_secs_f64(), i.jitter.as_secs_f64());
    let (cycle, hook) = (i.cycle.as_secs_f64(), i.webhook_to_patch.as_secs_f64());
    let mut out = Vec::new();

    // rollbackd evaluating its own PromQL (GL-002 `p0-error-rate`: no `for`)
    let (s0, s1, s2) = next_tick(SCRAPE_S);
    let period = (interval, interval + jitter / 2.0, interval + jitter);
    out.push(Comparison {
        tool: "rollbackd, own PromQL".into(),
        settings: format!(
            "evaluation every {interval:.0} s + 0–{jitter:.0} s jitter; GL-002 p0-error-rate (no `for`); scrape {SCRAPE_S:.0} s"
        ),
        arithmetic: format!(
            "next scrape (0–{SCRAPE_S:.0} s) + next cycle (0–{:.0} s) + measured cycle {:.0} ms",
            interval + jitter,
            cycle * 1e3
        ),
        min_s: s0 + cycle,
        mean_s: s1 + period.1 / 2.0 + cycle,
        max_s: s2 + period.2 + cycle,
    });

    // rollbackd fed by Alertmanager, with deploy/monitoring's rule and route
    let (r0, r1, r2) = next_tick(RULE_INTERVAL_S);
    out.push(Comparison {
        tool: "rollbackd, Alertmanager webhook".into(),
        settings: format!(
            "deploy/monitoring: scrape {SCRAPE_S:.0} s, rule interval {RULE_INTERVAL_S:.0} s, `for: 2m`, group_wait {GROUP_WAIT_S:.0} s"
        ),
        arithmetic: format!(
            "next scrape (0–{SCRAPE_S:.0} s) + next rule evaluation (0–{RULE_INTERVAL_S:.0} s) + `for` {RULE_FOR_S:.0} s + group_wait + measured webhook→PATCH {:.1} ms",
            hook * 1e3
        ),
        min_s: s0 + r0 + RULE_FOR_S + GROUP_WAIT_S + hook,
        mean_s: s1 + r1 + RULE_FOR_S + GROUP_WAIT_S + hook,
        max_s: s2 + r2 + RULE_FOR_S + GROUP_WAIT_S + hook,
    });

    // Flagger: analysis.interval defaults to 60 s; the docs' analysis uses threshold 5
    // (roll back when the failed-check count reaches it)
    let (f_interval, f_threshold) = (60.0, 5.0);
    let (f0, f1, f2) = next_tick(f_interval);
    out.push(Comparison {
        tool: "Flagger".into(),
        settings: "analysis.interval 60 s (default), threshold 5 (docs)".into(),
        arithmetic: "first failed check (0–60 s) + 4 more checks × 60 s".into(),
        min_s: f0 + (f_threshold - 1.0) * f_interval,
        mean_s: f1 + (f_threshold - 1.0) * f_interval,
        max_s: f2 + (f_threshold - 1.0) * f_interval,
    });

    // Argo Rollouts: failureLimit defaults to 0 (the first failed measurement fails the
    // run); the docs' background analysis measures every 5m with failureLimit 3
    let a_interval = 300.0;
    let (a0, a1, a2) = next_tick(a_interval);
    out.push(Comparison {
        tool: "Argo Rollouts".into(),
        settings: "interval 5m (docs), failureLimit 0 (default)".into(),
        arithmetic: "first failed measurement (0–300 s)".into(),
        min_s: a0,
        mean_s: a1,
        max_s: a2,
    });
    out.push(Comparison {
        tool: "Argo Rollouts".into(),
        settings: "interval 5m, failureLimit 3 (docs' background analysis)".into(),
        arithmetic: "first failed measurement (0–300 s) + 3 more × 300 s (fails when failures > 3)"
            .into(),
        min_s: a0 + 3.0 * a_interval,
        mean_s: a1 + 3.0 * a_interval,
        max_s: a2 + 3.0 * a_interval,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            interval: Duration::from_secs(15),
            jitter: Duration::from_secs(2),
            cycle: Duration::from_millis(10),
            webhook_to_patch: Duration::from_millis(5),
        }
    }

    #[test]
    fn flagger_waits_for_threshold_checks() {
        let rows = rows(&inputs());
        let f = rows.iter().find(|r| r.tool == "Flagger").unwrap();
        assert_eq!((f.min_s, f.mean_s, f.max_s), (240.0, 270.0, 300.0));
    }

    #[test]
    fn argo_rows_follow_failure_limit() {
        let rows = rows(&inputs());
        let argo: Vec<_> = rows.iter().filter(|r| r.tool == "Argo Rollouts").collect();
        assert_eq!(
            (argo[0].min_s, argo[0].mean_s, argo[0].max_s),
            (0.0, 150.0, 300.0)
        );
        assert_eq!(
            (argo[1].min_s, argo[1].mean_s, argo[1].max_s),
            (900.0, 1050.0, 1200.0)
        );
    }

    #[test]
    fn rollbackd_rows_add_measured_figures() {
        let rows = rows(&inputs());
        let own = &rows[0];
        assert!((own.min_s - 0.010).abs() < 1e-9);
        // mean: 7.5 s to the next scrape + half of the 16 s mean period + the cycle
        assert!((own.mean_s - (7.5 + 8.0 + 0.010)).abs() < 1e-9);
        assert!((own.max_s - (15.0 + 17.0 + 0.010)).abs() < 1e-9);
        let am = &rows[1];
        assert!((am.min_s - 120.005).abs() < 1e-9);
        assert!((am.max_s - (15.0 + 30.0 + 120.0 + 0.005)).abs() < 1e-9);
    }
}
