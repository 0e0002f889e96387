//! Catching up with a real Alertmanager (Debian `prometheus-alertmanager`, on 127.0.0.1):
//! alerts that fired while no rollbackd was leading are read from `GET /api/v2/alerts`
//! when a replica starts leading, recorded once, and only those about known agents.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use rollbackd::api::{AgentIndex, AlertIngest};
use rollbackd::channel::BoundedTx;
use rollbackd::daemon::alert_sync::{AlertSync, Caught};
use rollbackd::signals::alertmanager::AlertmanagerClient;
use rollbackd::store::{SqliteStore, StateStore, Store};
use rollbackd_core::policy::{Policy, load_all};
use serde_json::json;
use support::alertmanager::AlertmanagerProcess;
use tokio_util::sync::CancellationToken;

fn policies() -> Vec<Arc<Policy>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    load_all(&[dir])
        .unwrap()
        .into_iter()
        .map(Arc::new)
        .collect()
}

/// Posts an alert to Alertmanager as Prometheus would (firing for the next hour).
async fn fire(am: &AlertmanagerProcess, labels: serde_json::Value) {
    let now = Utc::now();
    let body = json!([{
        "labels": labels,
        "annotations": {"summary": "test"},
        "startsAt": (now - TimeDelta::minutes(10)).to_rfc3339(),
        "endsAt": (now + TimeDelta::hours(1)).to_rfc3339(),
    }]);
    let url = format!("http://{}/api/v2/alerts", am.host_port());
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// A store in memory.
fn memory() -> Arc<dyn StateStore> {
    Arc::new(SqliteStore::new(Store::in_memory().unwrap()))
}

fn sync(am: &AlertmanagerProcess, store: Arc<dyn StateStore>, receiver: Option<&str>) -> AlertSync {
    let url = format!("http://{}", am.host_port());
    AlertSync {
        client: AlertmanagerClient::new(&url, receiver, Duration::from_secs(5)).unwrap(),
        ingest: AlertIngest::start(store, BoundedTx::detached("wake")),
        agents: Arc::new(AgentIndex::new(&policies())),
        agent_label: "agent".into(),
    }
}

/// Alertmanager reports an alert through its API a moment after it is posted.
async fn catch_up_until(sync: &AlertSync, firing: usize) -> Caught {
    for _ in 0..50 {
        let caught = sync.catch_up().await.unwrap();
        if caught.firing >= firing {
            return caught;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Alertmanager never reported {firing} firing alert(s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_alerts_of_known_agents_are_recorded_once() {
    let (hook, _) = support::world::receiver().await;
    let am = AlertmanagerProcess::start(&hook).await;
    fire(
        &am,
        json!({"alertname": "GL002HighErrorRate", "agent": "GL-002"}),
    )
    .await;
    fire(&am, json!({"alertname": "SomeoneElses", "team": "billing"})).await;
    let store = memory();
    let sync = sync(&am, store.clone(), None);
    let first = catch_up_until(&sync, 1).await;
    assert_eq!(
        first,
        Caught { firing: 1, new: 1 },
        "only the known agent's alert"
    );
    let recorded = store
        .alerts_since(None, Utc::now() - TimeDelta::hours(1))
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].alert.agent.as_deref(), Some("GL-002"));
    assert_eq!(recorded[0].alert.status, "firing");
    // its startsAt is Alertmanager's, so blame still goes by when the condition began
    assert!(recorded[0].alert.starts_at < Utc::now() - TimeDelta::minutes(9));
    // asking again records nothing new
    assert_eq!(sync.catch_up().await.unwrap(), Caught { firing: 1, new: 0 });
    // a receiver filter is Alertmanager's: another receiver's alerts are not ours
    let other = self::sync(&am, memory(), Some("nobody"));
    assert_eq!(
        other.catch_up().await.unwrap(),
        Caught { firing: 0, new: 0 }
    );
    let ours = self::sync(&am, memory(), Some("webhook"));
    assert_eq!(ours.catch_up().await.unwrap().firing, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_take_over_catches_up_and_a_standby_does_not() {
    let (hook, _) = support::world::receiver().await;
    let am = AlertmanagerProcess::start(&hook).await;
    fire(
        &am,
        json!({"alertname": "GL002HighErrorRate", "agent": "GL-002"}),
    )
    .await;
    let store = memory();
    let since = Utc::now() - TimeDelta::hours(1);
    // wait until Alertmanager reports it, through a separate store
    catch_up_until(&sync(&am, memory(), None), 1).await;
    let (leading_tx, leading) = tokio::sync::watch::channel(false);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(sync(&am, store.clone(), None).run(leading, cancel.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        store.alerts_since(None, since).await.unwrap().is_empty(),
        "a standby waits"
    );
    leading_tx.send(true).unwrap();
    let recorded = support::world::wait_for(
        "the take-over's catch-up",
        Duration::from_secs(5),
        async || {
            let n = store.alerts_since(None, since).await.unwrap().len();
            (n == 1).then_some(n)
        },
    )
    .await;
    assert_eq!(recorded, 1);
    // lose the lead; a new alert fires meanwhile; the next take-over catches it up
    leading_tx.send(false).unwrap();
    fire(&am, json!({"alertname": "GL009Latency", "agent": "GL-009"})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store.alerts_since(None, since).await.unwrap().len(),
        1,
        "not while standing by"
    );
    leading_tx.send(true).unwrap();
    support::world::wait_for(
        "the second take-over's catch-up",
        Duration::from_secs(5),
        async || (store.alerts_since(None, since).await.unwrap().len() == 2).then_some(()),
    )
    .await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stops when cancelled")
        .unwrap();
}
