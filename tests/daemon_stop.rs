//! Every rollback can be stopped (issue 12 item 8): a cancel or a pause reaches an incident
//! in flight at the next step boundary (the step in flight finishes), records where it
//! stopped and tells the notifiers; a pause holds it until resume; shutdown waits for the
//! step in flight to reach its journal. The daemon runs against the Kubernetes simulator
//! with GL-002's `quick` method preceded by a slow HTTP step.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use rollbackd::daemon::collect::MetricSource;
use rollbackd::signals::scrape::Scraper;
use rollbackd::store::{Incident, IncidentFilter, StateStore};
use rollbackd_core::incident::State;
use rollbackd_core::policy::{Step, StepAction};
use serde_json::{Value, json};
use support::world::{TOKEN, World, agent, deploy_v2, undo_patches, wait_for, world};

/// A hook that answers after `delay`.
async fn slow_hook(delay: Duration) -> String {
    let app = axum::Router::new().route(
        "/slow",
        post(move || async move {
            tokio::time::sleep(delay).await;
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/slow", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// GL-002 whose `quick` method first calls a hook that takes 1.5 s.
async fn slow_world() -> World {
    let url = slow_hook(Duration::from_millis(1500)).await;
    let w = world(
        agent().await,
        MetricSource::scrape(Scraper::new(Duration::from_secs(1)).unwrap()),
        move |p| {
            let methods = Arc::make_mut(&mut p.methods);
            let quick = methods.get_mut("quick").unwrap();
            quick.steps.insert(
                0,
                Step {
                    name: "slow-hook".into(),
                    workloads: vec![],
                    container: None,
                    timeout: None,
                    action: StepAction::Http {
                        method: "POST".into(),
                        url,
                        body: None,
                        expect_status: 200,
                    },
                },
            );
        },
    )
    .await;
    deploy_v2(&w, rollbackd_core::engine::DecisionKind::None).await;
    w
}

async fn rolling_back(store: &Arc<dyn StateStore>) -> Incident {
    wait_for(
        "a rollback in flight",
        Duration::from_secs(10),
        async || {
            let inc = store
                .incidents(&IncidentFilter::default())
                .await
                .unwrap()
                .into_iter()
                .next()?;
            let started = store
                .steps(&inc.id)
                .await
                .unwrap()
                .iter()
                .any(|s| s.index == 0);
            (inc.state == State::RollingBack && started).then_some(inc)
        },
    )
    .await
}

async fn post_api(w: &World, path: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("http://{}{path}", w.daemon.api_addr))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let code = res.status().as_u16();
    (code, res.json().await.unwrap_or(Value::Null))
}

/// The texts of the `stage` messages the receiver got for `id`.
fn messages(w: &World, id: &str, stage: &str) -> Vec<String> {
    w.hook
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m["incident_id"] == id && m["stage"] == stage)
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_a_rollback_in_flight_after_the_step_it_is_running() {
    let w = slow_world().await;
    w.agent.handle().set_error_ratio(0.6).unwrap();
    let store = w.daemon.store.clone();
    let inc = rolling_back(&store).await;
    let (code, res) = post_api(
        &w,
        &format!("/api/v1/rollbacks/{}/cancel", inc.id),
        json!({"reason": "the error is in the database, not the deploy"}),
    )
    .await;
    assert_eq!(
        (code, res["state"].as_str()),
        (200, Some("cancelled")),
        "{res}"
    );
    let text = wait_for("the stop message", Duration::from_secs(10), async || {
        messages(&w, &inc.id, "stopped").into_iter().next()
    })
    .await;
    assert!(
        text.contains("rollback.cancel by oncall") && text.contains("after step 1 (slow-hook)"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        undo_patches(&w.sim).is_empty(),
        "the undo after it never ran"
    );
    let steps = store.steps(&inc.id).await.unwrap();
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(
        steps[0].state, "done",
        "the step in flight finished: {steps:?}"
    );
    assert_eq!(
        store.incident(&inc.id).await.unwrap().unwrap().state,
        State::Cancelled
    );
    let audit: Vec<String> = store
        .audit_log(Some(&inc.id), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(audit.contains(&"rollback.stopped".to_string()), "{audit:?}");
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_holds_a_rollback_in_flight_until_resume() {
    let w = slow_world().await;
    w.agent.handle().set_error_ratio(0.6).unwrap();
    let store = w.daemon.store.clone();
    let inc = rolling_back(&store).await;
    let (code, _) = post_api(&w, "/api/v1/pause", json!({"reason": "change freeze"})).await;
    assert_eq!(code, 200);
    let text = wait_for("the pause message", Duration::from_secs(10), async || {
        messages(&w, &inc.id, "stopped").into_iter().next()
    })
    .await;
    assert!(
        text.contains("paused by oncall (change freeze) after step 1 (slow-hook)"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(undo_patches(&w.sim).is_empty(), "held while paused");
    assert_eq!(
        store.incident(&inc.id).await.unwrap().unwrap().state,
        State::RollingBack
    );
    let (code, _) = post_api(&w, "/api/v1/resume", json!({})).await;
    assert_eq!(code, 200);
    wait_for(
        "the undo after resume",
        Duration::from_secs(10),
        async || undo_patches(&w.sim).first().copied(),
    )
    .await;
    w.agent.handle().set_error_ratio(0.0).unwrap();
    let steps = store.steps(&inc.id).await.unwrap();
    assert_eq!(
        steps.iter().filter(|s| s.index == 0).count(),
        1,
        "the slow step is not run again: {steps:?}"
    );
    let actions: Vec<String> = store
        .audit_log(Some(&inc.id), 20)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&"rollback.paused".to_string())
            && actions.contains(&"rollback.continued".to_string()),
        "{actions:?}"
    );
    // the people told of the pause are told it goes on
    let text = wait_for(
        "the continue message",
        Duration::from_secs(10),
        async || messages(&w, &inc.id, "continued").into_iter().next(),
    )
    .await;
    assert!(
        text.contains("the pause was lifted: continuing after step 1 (slow-hook)"),
        "{text}"
    );
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_the_step_in_flight_to_reach_its_journal() {
    let w = slow_world().await;
    w.agent.handle().set_error_ratio(0.6).unwrap();
    let store = w.daemon.store.clone();
    let inc = rolling_back(&store).await;
    w.daemon.shutdown().await;
    let steps = store.steps(&inc.id).await.unwrap();
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert!(
        steps[0].finished_at.is_some(),
        "the step in flight reached its journal before shutdown returned: {steps:?}"
    );
    assert_eq!(
        store.incident(&inc.id).await.unwrap().unwrap().state,
        State::RollingBack,
        "left for the next start"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(undo_patches(&w.sim).is_empty(), "no step after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_verification_stops_it_at_once() {
    let w = slow_world().await;
    // the error rate stays high: verification would wait its whole rollout_timeout (5m)
    w.agent.handle().set_error_ratio(0.6).unwrap();
    let store = w.daemon.store.clone();
    let inc = wait_for("verification", Duration::from_secs(20), async || {
        store
            .incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.state == State::Verifying)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // into the signal checks
    let (code, res) = post_api(
        &w,
        &format!("/api/v1/rollbacks/{}/cancel", inc.id),
        json!({"reason": "taking over by hand"}),
    )
    .await;
    assert_eq!(
        (code, res["state"].as_str()),
        (200, Some("cancelled")),
        "{res}"
    );
    let text = wait_for("the stop message", Duration::from_secs(5), async || {
        messages(&w, &inc.id, "stopped").into_iter().next()
    })
    .await;
    assert!(
        text.contains("rollback.cancel by oncall: taking over by hand")
            && text.contains("during verification, after step 3 (wait_rollout)"),
        "{text}"
    );
    w.daemon.shutdown().await;
}
