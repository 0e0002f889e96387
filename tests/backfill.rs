//! A window this replica did not sample (a restart, a take-over) is backfilled from a real
//! Prometheus (Debian package, on 127.0.0.1): the first decision needs no `for` to fill
//! again. The same deploy seen live waits for its `for`.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use rollbackd::channel::BoundedTx;
use rollbackd::daemon::collect::MetricSource;
use rollbackd::daemon::evaluate::{Evaluator, Limits};
use rollbackd::lifecycle::announce::Channels;
use rollbackd::metrics::Metrics;
use rollbackd::signals::prometheus::{PromClient, PromClientConfig};
use rollbackd::store::{IncidentFilter, SqliteStore, StateStore};
use rollbackd_core::policy::{Policy, SignalSource};
use support::prometheus::{PrometheusProcess, ScrapeTarget};

/// The error ratio over a 5 s window, grouped like the policy's own query.
const FAST_ERROR_RATE: &str = r#"sum by (namespace, deployment) (rate(gl_002_http_requests_total{status=~"5.."}[5s])) / sum by (namespace, deployment) (rate(gl_002_http_requests_total[5s]))"#;
/// How long the P0 error-rate row must hold here (the shipped policy acts at once).
const HELD: TimeDelta = TimeDelta::seconds(8);

/// GL-002 reading Prometheus' fast error rate, its P0 row held for [`HELD`].
fn policy(agent: &rollbackd::synthetic_agent::SyntheticAgent) -> Policy {
    let mut p = support::world::gl002(agent);
    if let Some(s) = Arc::make_mut(&mut p.signals).get_mut("error_rate")
        && let SignalSource::Metric { promql, .. } = &mut s.source
    {
        *promql = Some(FAST_ERROR_RATE.into());
    }
    for row in Arc::make_mut(&mut p.matrix).iter_mut() {
        if row.id == "p0-error-rate" {
            row.when[0].held_for = Some(HELD);
        }
    }
    p
}

fn evaluator(policy: Policy, prometheus: &str, store: Arc<dyn StateStore>) -> Evaluator {
    let mut c = PromClientConfig::new(prometheus);
    c.timeout = Duration::from_secs(2);
    Evaluator::new(
        &[Arc::new(policy)],
        store,
        Arc::new(Metrics::new()),
        Arc::new(RwLock::new(BTreeMap::new())),
        Arc::default(),
        MetricSource::Prometheus(PromClient::new(c).unwrap()),
        Limits {
            dry_run: true,
            max_per_agent_per_window: 1,
            max_per_hour: 3,
        },
        Channels::default(),
        BoundedTx::detached("runner"),
    )
}

/// Runs cycles every 250 ms until an incident opens or `limit` passes; how long it took.
async fn first_rollback(
    e: &mut Evaluator,
    store: &dyn StateStore,
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        e.cycle(Utc::now(), &|_, _| None).await;
        let opened = store.incidents(&IncidentFilter::default()).await.unwrap();
        if let Some(inc) = opened.first() {
            assert_eq!(inc.row.as_deref(), Some("p0-error-rate"));
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_over_window_decides_at_once_from_prometheus_history() {
    let agent = support::world::agent().await;
    agent.handle().set_error_ratio(0.0).unwrap();
    let target = ScrapeTarget::new(agent.addr())
        .label("namespace", "greenlang")
        .label("deployment", "gl-002-boiler-efficiency");
    let prometheus = PrometheusProcess::start(&[target], &[]).await;
    // healthy before the deploy, so the errors are the deploy's doing
    tokio::time::sleep(Duration::from_secs(6)).await;
    let deployed = Utc::now();

    // the leader sees the deploy live and samples every cycle: the row waits for its `for`
    let store: Arc<dyn StateStore> = Arc::new(SqliteStore::in_memory().await.unwrap());
    let mut leader = evaluator(policy(&agent), &prometheus.url(), store.clone());
    leader.on_deploy("GL-002", 2, deployed, None, false).await;
    agent.handle().set_error_ratio(0.6).unwrap();
    let waited = first_rollback(&mut leader, store.as_ref(), Duration::from_secs(20))
        .await
        .expect("decides once the `for` has passed");
    println!(
        "sampled live: rollback decided {:.2} s after the errors began",
        waited.as_secs_f64()
    );
    assert!(waited >= Duration::from_secs(8), "{waited:?}");

    // a standby saw the same deploy but sampled nothing; it takes over: the window's
    // history comes from Prometheus and the first decisions need no wait
    let store: Arc<dyn StateStore> = Arc::new(SqliteStore::in_memory().await.unwrap());
    let mut standby = evaluator(policy(&agent), &prometheus.url(), store.clone());
    standby.on_deploy("GL-002", 2, deployed, None, false).await;
    standby.want_backfill();
    let took = first_rollback(&mut standby, store.as_ref(), Duration::from_secs(6))
        .await
        .expect("the backfilled window decides without waiting for its `for`");
    println!(
        "after a take-over: rollback decided {:.2} s after the first cycle",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}
