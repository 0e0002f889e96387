//! The whole daemon, driven through its Alertmanager webhook: an alert that started before the
//! deploy (Alertmanager's `startsAt`) is told to a human and never rolls the deploy back; an
//! alert that started after it still rolls back at once.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use rollbackd::daemon::collect::MetricSource;
use rollbackd::signals::scrape::Scraper;
use rollbackd::store::IncidentFilter;
use rollbackd_core::engine::DecisionKind;
use serde_json::{Value, json};
use support::world::{agent, deploy_v2, undo_patches, wait_for, world};

fn firing(condition: &str, fingerprint: &str, starts_at: chrono::DateTime<Utc>) -> Value {
    json!({"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "rollbackd", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://am", "alerts": [{
            "status": "firing",
            "labels": {"alertname": "GL002", "agent": "GL-002", "condition": condition},
            "annotations": {}, "startsAt": starts_at.to_rfc3339(),
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus/graph",
            "fingerprint": fingerprint}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_that_started_before_the_deploy_never_rolls_it_back() {
    let w = world(
        agent().await,
        MetricSource::scrape(Scraper::new(Duration::from_secs(1)).unwrap()),
        |_| {},
    )
    .await;
    deploy_v2(&w, DecisionKind::None).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/v1/alerts", w.daemon.api_addr);
    let old = firing("service_outage", "old", Utc::now() - TimeDelta::hours(1));
    let res = http.post(&url).json(&old).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let status = w.daemon.status.clone();
    let told = wait_for("the notice", Duration::from_secs(10), async || {
        let d = status.read().unwrap().get("GL-002")?.decision.clone()?;
        (d.decision == DecisionKind::Notify).then_some(d)
    })
    .await;
    let held = &told.evidence.preexisting[0].held_before[0];
    assert!(held.contains("held before the deploy since"), "{held}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        undo_patches(&w.sim).is_empty(),
        "rolled back for an old alert"
    );
    assert!(
        w.daemon
            .store
            .incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    // the webhook's notice says why
    let hook = w.hook.clone();
    let notice = wait_for("the notice message", Duration::from_secs(10), async || {
        hook.lock()
            .unwrap()
            .iter()
            .find(|m| m["stage"] == "preexisting")
            .cloned()
    })
    .await;
    assert!(
        notice["text"]
            .as_str()
            .unwrap()
            .contains("held before revision 2 was deployed"),
        "{notice}"
    );
    // an alert that starts after the deploy is evidence: rolled back
    let new = firing("data_corruption", "new", Utc::now());
    let res = http.post(&url).json(&new).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    wait_for("the rollback patch", Duration::from_secs(10), async || {
        undo_patches(&w.sim).first().copied()
    })
    .await;
    let inc = w
        .daemon
        .store
        .incidents(&IncidentFilter::default())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(inc.row.as_deref(), Some("p0-data-corruption"));
    w.daemon.shutdown().await;
}

/// Issue 12 item 14, through the whole daemon: a deploy that lands between rollbackd's read
/// and its undo is not overwritten; the incident ends as superseded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_landing_during_the_rollback_supersedes_it_and_survives() {
    use k8s_openapi::api::apps::v1::Deployment;
    let w = world(
        agent().await,
        MetricSource::scrape(Scraper::new(Duration::from_secs(1)).unwrap()),
        |_| {},
    )
    .await;
    deploy_v2(&w, DecisionKind::None).await;
    let fresh = "registry.local/greenlang/gl-002-boiler-efficiency:v3-fix";
    w.sim
        .race_next_write(
            "apps/v1",
            "Deployment",
            "greenlang",
            "gl-002-boiler-efficiency",
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "boiler-optimizer", "image": fresh}]}}}}),
        )
        .unwrap();
    w.agent.handle().set_error_ratio(0.6).unwrap();
    let store = w.daemon.store.clone();
    let inc = wait_for(
        "the superseded incident",
        Duration::from_secs(20),
        async || {
            let inc = store
                .incidents(&IncidentFilter::default())
                .await
                .ok()?
                .pop()?;
            (inc.state == rollbackd_core::incident::State::Superseded).then_some(inc)
        },
    )
    .await;
    let api: kube::Api<Deployment> = kube::Api::namespaced(w.client.clone(), "greenlang");
    let d = api.get("gl-002-boiler-efficiency").await.unwrap();
    let image = d.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap();
    assert_eq!(image, fresh, "the fresh deploy was overwritten");
    let transitions = store.transitions(&inc.id).await.unwrap();
    let last = transitions.last().unwrap();
    assert!(
        last.note.contains("superseded") || last.note.contains("revision"),
        "{last:?}"
    );
    w.daemon.shutdown().await;
}

/// Issue 12 item 4: a revision that lived through its whole post-deploy window without a
/// breach is marked verified on its ReplicaSet (so `last_known_good` works without a
/// previous rollback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_that_lives_through_its_window_is_marked_verified() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    let w = world(
        agent().await,
        MetricSource::scrape(Scraper::new(Duration::from_secs(1)).unwrap()),
        |p| p.window.duration = TimeDelta::seconds(3),
    )
    .await;
    deploy_v2(&w, DecisionKind::None).await;
    let api: kube::Api<ReplicaSet> = kube::Api::namespaced(w.client.clone(), "greenlang");
    let verified = wait_for("the verified mark", Duration::from_secs(20), async || {
        let list = api.list(&Default::default()).await.ok()?;
        list.items.into_iter().find_map(|rs| {
            let a = rs.metadata.annotations.clone().unwrap_or_default();
            let revision = a.get("deployment.kubernetes.io/revision")?.clone();
            a.contains_key(rollbackd::cluster::history::VERIFIED)
                .then_some((rs.metadata.name.clone()?, revision))
        })
    })
    .await;
    assert_eq!(verified.1, "2", "{verified:?}");
    w.daemon.shutdown().await;
}
