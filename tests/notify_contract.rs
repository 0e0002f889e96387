//! Contract tests for the notifiers and the outbox worker: local receivers record every
//! request, and the tests assert the exact requests (method, path, headers, JSON body)
//! and the outbox's bookkeeping.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod notify_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rollbackd::notify::{
    DeliveryObserver, MemoryOutbox, Message, NotifierConfig, Notifiers, NotifyError, OutboxItem,
    OutboxStatus, OutboxStore, RetryConfig, Target, ThreadRef, run_outbox, slack_text,
};
use rollbackd_core::policy::Stage;
use rollbackd_core::policy::template::{default_template, render};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use notify_support::{Receiver, Recorded, Reply, keeping, wait_until};

const CHANNEL: &str = "#gl-002-incidents";
const TS: &str = "1700000000.000100";
const TOKEN: &str = "xoxb-test-token";
const KEY: &str = "KEY";
const LIMIT: Duration = Duration::from_secs(10);

/// A rendered message for `stage` of `incident`, as the rollback path would queue it.
fn message(incident: &str, stage: Stage, severity: &str) -> Message {
    let values: BTreeMap<&str, String> = [
        ("agent_id", "GL-002"),
        ("agent_name", "BoilerEfficiencyOptimizer"),
        ("severity", severity),
        ("row", "p0-error-rate"),
        ("from_version", "v1.2.5"),
        ("to_version", "v1.2.4"),
        ("from_revision", "12"),
        ("to_revision", "11"),
        ("reason", "error_rate=0.62 > 0.5"),
        ("eta", "5m"),
        ("pods_updated", "3"),
        ("pods_total", "3"),
        ("duration", "4m"),
        ("watch", "30m"),
        ("incident_id", incident),
        ("mention", "@here "),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    Message {
        incident_id: incident.into(),
        agent_id: "GL-002".into(),
        agent_name: "BoilerEfficiencyOptimizer".into(),
        stage,
        severity: Some(severity.into()),
        text: render(default_template(stage), &values),
        fields: values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

fn slack() -> Target {
    Target::Slack {
        channel: CHANNEL.into(),
    }
}

fn statuspage() -> Target {
    Target::Statuspage {
        page_id: "PAGE".into(),
        component_id: "COMP".into(),
    }
}

/// Fast settings: millisecond backoff, 10 ms polling.
fn config(slack: Option<&Receiver>, statuspage: Option<&Receiver>) -> NotifierConfig {
    NotifierConfig {
        slack_api_url: slack.map_or("http://127.0.0.1:9".into(), |r| r.url.clone()),
        slack_token: Some(TOKEN.into()),
        slack_signing_secret: None,
        webhook_urls: BTreeMap::new(),
        statuspage_api_url: statuspage.map_or("http://127.0.0.1:9".into(), |r| r.url.clone()),
        statuspage_api_key: Some(KEY.into()),
        pagerduty_api_url: "http://127.0.0.1:9/v2/enqueue".into(),
        pagerduty_routing_keys: BTreeMap::new(),
        rollbackd_url: None,
        statuspage_min_interval: Duration::ZERO,
        request_timeout: Duration::from_secs(3),
        retry: RetryConfig {
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            max_attempts: 3,
        },
        poll_interval: Duration::from_millis(10),
        batch_size: 100,
        max_in_flight: 16,
        shutdown_grace: Duration::from_secs(3),
    }
}

/// `cfg` with webhook URLs by target name (the outbox rows only name them).
fn with_hooks(mut cfg: NotifierConfig, hooks: &[(&str, String)]) -> NotifierConfig {
    for (name, url) in hooks {
        cfg.webhook_urls.insert(name.to_string(), url.clone());
    }
    cfg
}

/// Records every attempt's outcome.
#[derive(Default)]
struct Outcomes(Mutex<Vec<(String, String)>>);

impl DeliveryObserver for Outcomes {
    fn delivered(&self, target_kind: &str, outcome: &str, _elapsed: Duration) {
        self.0
            .lock()
            .unwrap()
            .push((target_kind.into(), outcome.into()));
    }
}

impl Outcomes {
    fn list(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap().clone()
    }
}

/// A worker running in the background.
struct Worker {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Worker {
    fn start(store: &Arc<MemoryOutbox>, config: NotifierConfig, observer: Arc<Outcomes>) -> Worker {
        let notifiers = Notifiers::new(config).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let store = Arc::clone(store);
        let task = tokio::spawn(run_outbox(store, notifiers, observer, async {
            let _ = stopped.await;
        }));
        Worker { stop, task }
    }

    /// Stops it; returns how long `run_outbox` took to return.
    async fn stop(self) -> Duration {
        let start = Instant::now();
        let _ = self.stop.send(());
        tokio::time::timeout(LIMIT, self.task)
            .await
            .expect("run_outbox did not stop")
            .unwrap();
        start.elapsed()
    }
}

fn settled(store: &MemoryOutbox) -> bool {
    store
        .records()
        .iter()
        .all(|r| r.status != OutboxStatus::Pending)
}

fn is_sent(store: &MemoryOutbox, id: i64) -> bool {
    matches!(
        store.record(id).map(|r| r.status),
        Some(OutboxStatus::Sent { .. })
    )
}

fn bodies(requests: &[Recorded]) -> Vec<(String, String, Value)> {
    requests
        .iter()
        .map(|r| {
            (
                r.method.clone(),
                r.path.clone(),
                r.json.clone().unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// A Slack fake that accepts everything and returns channel C123 and ts TS.
fn slack_ok(request: &Recorded) -> Reply {
    let channel = request
        .json
        .as_ref()
        .and_then(|j| j["channel"].as_str().map(str::to_string))
        .unwrap_or_default();
    let answer_channel = if channel.starts_with('#') {
        "C123".to_string()
    } else {
        channel
    };
    Reply::json(
        200,
        json!({"ok": true, "channel": answer_channel, "ts": TS, "message": {"text": "…"}}),
    )
}

/// A Statuspage fake: create answers 201 with id INC9, updates 200.
fn statuspage_ok(request: &Recorded) -> Reply {
    if request.method == "POST" {
        Reply::json(201, json!({"id": "INC9", "status": "identified"}))
    } else {
        Reply::json(200, json!({"id": "INC9"}))
    }
}

/// The metadata a Slack message delivering outbox row `row` of `incident` carries.
fn slack_metadata(incident: &str, row: i64) -> Value {
    json!({"event_type": "rollbackd_notification",
           "event_payload": {"incident_id": incident, "outbox_id": row.to_string()}})
}

/// The metadata a Statuspage create or update delivering row `row` of `incident` carries.
fn statuspage_metadata(incident: &str, row: i64) -> Value {
    json!({"rollbackd": {"incident_id": incident, "outbox_id": row.to_string()}})
}

const LIFECYCLE: [Stage; 4] = [
    Stage::Initiated,
    Stage::InProgress,
    Stage::Complete,
    Stage::Resolved,
];

#[tokio::test]
async fn whole_incident_to_slack_statuspage_and_webhook() {
    let slack_rx = Receiver::start(|r, _| slack_ok(r)).await;
    let sp_rx = Receiver::start(|r, _| statuspage_ok(r)).await;
    let hook_rx = Receiver::start(|_, _| Reply::text(200, "")).await;
    let store = Arc::new(MemoryOutbox::new());
    let hook = Target::Webhook {
        name: "rollbackd".into(),
    };
    let messages: Vec<Message> = LIFECYCLE
        .iter()
        .map(|s| message("inc-1", *s, "P0"))
        .collect();
    for m in &messages {
        for target in [slack(), statuspage(), hook.clone()] {
            store.push(m.clone(), target, Utc::now());
        }
    }
    let outcomes = Arc::new(Outcomes::default());
    let started = Instant::now();
    let worker = Worker::start(
        &store,
        with_hooks(
            config(Some(&slack_rx), Some(&sp_rx)),
            &[("rollbackd", format!("{}/hooks/rollbackd", hook_rx.url))],
        ),
        outcomes.clone(),
    );
    wait_until(LIMIT, "all sent", || settled(&store)).await;
    let took = started.elapsed();
    worker.stop().await;
    assert!(
        store
            .records()
            .iter()
            .all(|r| matches!(r.status, OutboxStatus::Sent { .. }) && r.item.attempts == 1),
        "{:?}",
        store.records()
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");

    // Slack: one parent post to the channel name, then update + threaded reply by ID.
    let slack_reqs = slack_rx.requests();
    for r in &slack_reqs {
        assert_eq!(r.header("authorization"), Some(&*format!("Bearer {TOKEN}")));
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
    }
    let text = |i: usize| messages[i].text.clone();
    let slack = |i: usize| slack_text(&messages[i].text);
    // rows were queued slack, statuspage, webhook for each stage: ids 1, 2, 3, 4, …
    let slack_row = |i: usize| 3 * i as i64 + 1;
    let statuspage_row = |i: usize| 3 * i as i64 + 2;
    let meta = |i: usize| slack_metadata("inc-1", slack_row(i));
    let mut expected = vec![(
        "POST".to_string(),
        "/chat.postMessage".to_string(),
        json!({"channel": CHANNEL, "text": slack(0), "metadata": meta(0)}),
    )];
    for i in 1..4 {
        expected.push((
            "POST".into(),
            "/chat.update".into(),
            json!({"channel": "C123", "ts": TS, "text": slack(i)}),
        ));
        expected.push((
            "POST".into(),
            "/chat.postMessage".into(),
            json!({"channel": "C123", "thread_ts": TS, "text": slack(i), "metadata": meta(i)}),
        ));
    }
    assert_eq!(bodies(&slack_reqs), expected);
    // Slack spelling: a real @here mention, and `->` escaped.
    assert!(slack(0).starts_with("<!here> ROLLBACK INITIATED: GL-002 BoilerEfficiencyOptimizer\n"));
    assert!(slack(1).starts_with("ROLLBACK IN PROGRESS: GL-002 v1.2.5 -&gt; v1.2.4\n"));
    assert!(text(0).starts_with("@here ROLLBACK INITIATED"));

    // Statuspage: create, then PATCH the returned incident id.
    let sp_reqs = sp_rx.requests();
    for r in &sp_reqs {
        assert_eq!(r.header("authorization"), Some("OAuth KEY"));
    }
    let patch = "/pages/PAGE/incidents/INC9";
    assert_eq!(
        bodies(&sp_reqs),
        vec![
            (
                "POST".to_string(),
                "/pages/PAGE/incidents".to_string(),
                json!({"incident": {
                    "name": "GL-002 Service Issues - Rolling Back",
                    "status": "identified",
                    "body": text(0),
                    "components": {"COMP": "major_outage"},
                    "component_ids": ["COMP"],
                    "metadata": statuspage_metadata("inc-1", statuspage_row(0)),
                }})
            ),
            (
                "PATCH".into(),
                patch.into(),
                json!({"incident": {"status": "identified", "body": text(1), "metadata": statuspage_metadata("inc-1", statuspage_row(1))}})
            ),
            (
                "PATCH".into(),
                patch.into(),
                json!({"incident": {"status": "monitoring", "body": text(2), "metadata": statuspage_metadata("inc-1", statuspage_row(2))}})
            ),
            (
                "PATCH".into(),
                patch.into(),
                json!({"incident": {
                    "status": "resolved",
                    "body": text(3),
                    "components": {"COMP": "operational"},
                    "component_ids": ["COMP"],
                    "metadata": statuspage_metadata("inc-1", statuspage_row(3)),
                }})
            ),
        ]
    );

    // Webhook: one structured POST per stage, in order.
    let hook_reqs = hook_rx.requests();
    assert!(
        hook_reqs
            .iter()
            .all(|r| r.method == "POST" && r.path == "/hooks/rollbackd")
    );
    let stages: Vec<Value> = hook_reqs
        .iter()
        .map(|r| r.json.as_ref().unwrap()["stage"].clone())
        .collect();
    assert_eq!(
        stages,
        vec![
            json!("initiated"),
            json!("in_progress"),
            json!("complete"),
            json!("resolved")
        ]
    );
    let first = hook_reqs[0].json.clone().unwrap();
    assert_eq!(
        first,
        json!({
            "incident_id": "inc-1",
            "agent_id": "GL-002",
            "stage": "initiated",
            "severity": "P0",
            "text": text(0),
            "fields": messages[0].fields,
        })
    );
    assert!(
        hook_reqs[0]
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );

    let sent = outcomes.list();
    assert_eq!(sent.len(), 12);
    assert!(sent.iter().all(|(_, o)| o == "sent"));
}

#[tokio::test]
async fn slack_ratelimited_answer_is_retried_and_delivered_once_in_order() {
    let slack_rx = Receiver::start(|r, nth| {
        if r.path == "/chat.postMessage" && nth == 0 {
            Reply::json(200, json!({"ok": false, "error": "ratelimited"}))
        } else {
            slack_ok(r)
        }
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let first = store.push(
        message("inc-1", Stage::Initiated, "P0"),
        slack(),
        Utc::now(),
    );
    let second = store.push(
        message("inc-1", Stage::InProgress, "P0"),
        slack(),
        Utc::now(),
    );
    let outcomes = Arc::new(Outcomes::default());
    let worker = Worker::start(&store, config(Some(&slack_rx), None), outcomes.clone());
    wait_until(LIMIT, "both sent", || {
        is_sent(&store, first) && is_sent(&store, second)
    })
    .await;
    worker.stop().await;
    let paths: Vec<String> = slack_rx.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/chat.postMessage",
            "/chat.postMessage",
            "/chat.update",
            "/chat.postMessage"
        ]
    );
    let reqs = slack_rx.requests();
    // The retried post is the same parent post, sent once successfully.
    assert_eq!(reqs[0].json, reqs[1].json);
    assert_eq!(reqs[3].json.as_ref().unwrap()["thread_ts"], TS);
    assert_eq!(store.record(first).unwrap().item.attempts, 2);
    assert_eq!(store.record(second).unwrap().item.attempts, 1);
    assert_eq!(
        outcomes.list(),
        vec![
            ("slack".to_string(), "retry".to_string()),
            ("slack".into(), "sent".into()),
            ("slack".into(), "sent".into())
        ]
    );
}

#[tokio::test]
async fn slack_http_429_retry_after_is_honoured() {
    let slack_rx = Receiver::start(|r, nth| {
        if nth == 0 {
            Reply::json(429, json!({"ok": false, "error": "ratelimited"}))
                .header("Retry-After", "1")
        } else {
            slack_ok(r)
        }
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let id = store.push(
        message("inc-1", Stage::Initiated, "P0"),
        slack(),
        Utc::now(),
    );
    let worker = Worker::start(&store, config(Some(&slack_rx), None), Arc::default());
    wait_until(LIMIT, "sent", || is_sent(&store, id)).await;
    worker.stop().await;
    let reqs = slack_rx.requests_to("/chat.postMessage");
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at - reqs[0].at;
    // Backoff alone would be 20–40 ms; Retry-After: 1 wins.
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(3), "retried after {gap:?}");
    let record = store.record(id).unwrap();
    assert_eq!(record.item.attempts, 2);
    assert!(
        record
            .last_error
            .unwrap()
            .contains("rate limited (HTTP 429)")
    );
}

#[tokio::test]
async fn slack_channel_not_found_fails_after_one_attempt() {
    let slack_rx = Receiver::start(|_, _| {
        Reply::json(200, json!({"ok": false, "error": "channel_not_found"}))
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let id = store.push(
        message("inc-1", Stage::Initiated, "P0"),
        slack(),
        Utc::now(),
    );
    let outcomes = Arc::new(Outcomes::default());
    let worker = Worker::start(&store, config(Some(&slack_rx), None), outcomes.clone());
    wait_until(LIMIT, "failed", || settled(&store)).await;
    // Give a wrong retry the chance to show up.
    tokio::time::sleep(Duration::from_millis(150)).await;
    worker.stop().await;
    let record = store.record(id).unwrap();
    assert_eq!(record.status, OutboxStatus::Failed);
    assert_eq!(record.item.attempts, 1);
    assert_eq!(
        record.last_error.as_deref(),
        Some("slack: API error channel_not_found")
    );
    assert_eq!(slack_rx.requests().len(), 1);
    assert_eq!(
        outcomes.list(),
        vec![("slack".to_string(), "failed".to_string())]
    );
}

#[tokio::test]
async fn statuspage_420_backs_off_at_least_a_second_then_creates() {
    let sp_rx = Receiver::start(|r, nth| {
        if r.method == "POST" && nth == 0 {
            Reply::json(420, json!({"error": "Enhance your calm"}))
        } else {
            statuspage_ok(r)
        }
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let id = store.push(
        message("inc-1", Stage::Initiated, "P1"),
        statuspage(),
        Utc::now(),
    );
    let update = store.push(
        message("inc-1", Stage::Complete, "P1"),
        statuspage(),
        Utc::now(),
    );
    let worker = Worker::start(&store, config(None, Some(&sp_rx)), Arc::default());
    wait_until(LIMIT, "sent", || {
        is_sent(&store, id) && is_sent(&store, update)
    })
    .await;
    worker.stop().await;
    let reqs = sp_rx.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(
        (
            reqs[0].method.as_str(),
            reqs[1].method.as_str(),
            reqs[2].method.as_str()
        ),
        ("POST", "POST", "PATCH")
    );
    let gap = reqs[1].at - reqs[0].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert_eq!(
        reqs[1].json.as_ref().unwrap()["incident"]["components"],
        json!({"COMP": "degraded_performance"})
    );
    assert_eq!(reqs[2].path, "/pages/PAGE/incidents/INC9");
    assert_eq!(store.record(id).unwrap().item.attempts, 2);
}

#[tokio::test]
async fn statuspage_down_gives_up_without_delaying_others() {
    let answer_delay = Duration::from_millis(500);
    let sp_rx =
        Receiver::start(move |_, _| Reply::json(500, json!({"error": "oops"})).after(answer_delay))
            .await;
    let slack_rx = Receiver::start(|r, _| slack_ok(r)).await;
    let hook_rx = Receiver::start(|_, _| Reply::text(204, "")).await;
    let hook = Target::Webhook { name: "b".into() };
    let store = Arc::new(MemoryOutbox::new());
    let now = Utc::now();
    let down = store.push(message("inc-a", Stage::Initiated, "P0"), statuspage(), now);
    let mut others = vec![
        store.push(message("inc-a", Stage::Initiated, "P0"), slack(), now),
        store.push(message("inc-a", Stage::InProgress, "P0"), slack(), now),
    ];
    for stage in [Stage::Initiated, Stage::InProgress] {
        others.push(store.push(message("inc-b", stage, "P1"), slack(), now));
        others.push(store.push(message("inc-b", stage, "P1"), hook.clone(), now));
    }
    let outcomes = Arc::new(Outcomes::default());
    let started = Instant::now();
    let worker = Worker::start(
        &store,
        with_hooks(
            config(Some(&slack_rx), Some(&sp_rx)),
            &[("b", format!("{}/b", hook_rx.url))],
        ),
        outcomes.clone(),
    );
    wait_until(LIMIT, "others sent", || {
        others.iter().all(|id| is_sent(&store, *id))
    })
    .await;
    let others_done = started.elapsed();
    wait_until(LIMIT, "statuspage given up", || settled(&store)).await;
    worker.stop().await;

    // Everything else went out before Statuspage even answered its first request.
    assert!(others_done < answer_delay, "others took {others_done:?}");
    let sp_reqs = sp_rx.requests();
    let last_other = slack_rx
        .requests()
        .iter()
        .chain(hook_rx.requests().iter())
        .map(|r| r.at)
        .max()
        .unwrap();
    assert!(last_other < sp_reqs[0].at + answer_delay);
    assert_eq!(slack_rx.requests().len(), 6);
    assert_eq!(hook_rx.requests().len(), 2);

    // Statuspage: exactly max_attempts tries, then failed with the error recorded. A 500
    // may hide a create: before each retry the page's incidents are asked (the stand-in
    // answers 500 to that too, so the create is tried again).
    let creates: Vec<_> = sp_reqs.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(creates.len(), 3);
    let lookups: Vec<_> = sp_reqs.iter().filter(|r| r.method == "GET").collect();
    assert_eq!(lookups.len(), 2);
    assert_eq!(sp_reqs.len(), 5);
    let record = store.record(down).unwrap();
    assert_eq!(record.status, OutboxStatus::Failed);
    assert_eq!(record.item.attempts, 3);
    assert_eq!(
        record.last_error.as_deref(),
        Some(r#"statuspage: HTTP 500: {"error":"oops"}"#)
    );
    let sp_outcomes: Vec<String> = outcomes
        .list()
        .into_iter()
        .filter(|(k, _)| k == "statuspage")
        .map(|(_, o)| o)
        .collect();
    assert_eq!(sp_outcomes, ["retry", "retry", "failed"]);
}

#[tokio::test]
async fn slack_incoming_webhook_ok_and_invalid_payload() {
    let rx = Receiver::start(|r, _| {
        if r.path == "/services/bad" {
            Reply::text(400, "invalid_payload")
        } else {
            Reply::text(200, "ok")
        }
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let msg = message("inc-1", Stage::Initiated, "P0");
    let good = store.push(
        msg.clone(),
        Target::SlackWebhook {
            name: "good".into(),
        },
        Utc::now(),
    );
    let bad = store.push(
        msg.clone(),
        Target::SlackWebhook { name: "bad".into() },
        Utc::now(),
    );
    let worker = Worker::start(
        &store,
        with_hooks(
            config(None, None),
            &[
                ("good", format!("{}/services/good", rx.url)),
                ("bad", format!("{}/services/bad", rx.url)),
            ],
        ),
        Arc::default(),
    );
    wait_until(LIMIT, "settled", || settled(&store)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    worker.stop().await;
    assert!(is_sent(&store, good));
    let failed = store.record(bad).unwrap();
    assert_eq!(failed.status, OutboxStatus::Failed);
    assert_eq!(failed.item.attempts, 1);
    assert_eq!(
        failed.last_error.as_deref(),
        Some("slack_webhook: HTTP 400: invalid_payload")
    );
    let good_reqs = rx.requests_to("/services/good");
    assert_eq!(good_reqs.len(), 1);
    assert_eq!(good_reqs[0].method, "POST");
    let expected = json!({"text": slack_text(&msg.text)});
    assert_eq!(good_reqs[0].json, Some(expected.clone()));
    assert_eq!(good_reqs[0].body, expected.to_string());
    assert!(
        expected["text"]
            .as_str()
            .unwrap()
            .starts_with("<!here> ROLLBACK INITIATED")
    );
    assert_eq!(rx.requests_to("/services/bad").len(), 1);
}

#[tokio::test]
async fn generic_webhook_retries_5xx_and_gives_up_on_4xx() {
    let rx = Receiver::start(|r, nth| match (r.path.as_str(), nth) {
        ("/flaky", 0) => Reply::text(503, "busy"),
        ("/gone", _) => Reply::text(404, "no such hook"),
        _ => Reply::text(200, ""),
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let msg = message("inc-1", Stage::Blocked, "P1");
    let flaky = store.push(
        msg.clone(),
        Target::Webhook {
            name: "flaky".into(),
        },
        Utc::now(),
    );
    let gone = store.push(
        msg,
        Target::Webhook {
            name: "gone".into(),
        },
        Utc::now(),
    );
    let worker = Worker::start(
        &store,
        with_hooks(
            config(None, None),
            &[
                ("flaky", format!("{}/flaky", rx.url)),
                ("gone", format!("{}/gone", rx.url)),
            ],
        ),
        Arc::default(),
    );
    wait_until(LIMIT, "settled", || settled(&store)).await;
    worker.stop().await;
    assert!(is_sent(&store, flaky));
    assert_eq!(store.record(flaky).unwrap().item.attempts, 2);
    let gone = store.record(gone).unwrap();
    assert_eq!(gone.status, OutboxStatus::Failed);
    assert_eq!(gone.item.attempts, 1);
    assert_eq!(rx.requests_to("/flaky").len(), 2);
    assert_eq!(
        rx.requests_to("/flaky")[1].json.as_ref().unwrap()["stage"],
        "blocked"
    );
}

#[tokio::test]
async fn update_waits_for_the_first_post() {
    let slack_rx = Receiver::start(|r, nth| match (r.path.as_str(), nth) {
        ("/chat.postMessage", 0) => Reply::text(503, "upstream down"),
        ("/chat.postMessage", 1) => {
            Reply::json(200, json!({"ok": false, "error": "internal_error"}))
        }
        _ => slack_ok(r),
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let ids: Vec<i64> = [Stage::Initiated, Stage::InProgress, Stage::Complete]
        .into_iter()
        .map(|s| store.push(message("inc-1", s, "P0"), slack(), Utc::now()))
        .collect();
    let worker = Worker::start(&store, config(Some(&slack_rx), None), Arc::default());
    wait_until(LIMIT, "all sent", || {
        ids.iter().all(|id| is_sent(&store, *id))
    })
    .await;
    worker.stop().await;
    let reqs = slack_rx.requests();
    let seen: Vec<(String, Option<String>)> = reqs
        .iter()
        .map(|r| {
            (
                r.path.clone(),
                r.json
                    .as_ref()
                    .and_then(|j| j["channel"].as_str().map(str::to_string)),
            )
        })
        .collect();
    let post = |c: &str| ("/chat.postMessage".to_string(), Some(c.to_string()));
    let update = || ("/chat.update".to_string(), Some("C123".to_string()));
    // the 503 may hide a delivery: the channel is looked up (this stand-in lists none, so
    // the message is sent again); Slack's own error code says it was not taken: no lookup
    let lookup = ("/conversations.list".to_string(), None);
    assert_eq!(
        seen,
        vec![
            post(CHANNEL),
            lookup,
            post(CHANNEL),
            post(CHANNEL),
            update(),
            post("C123"),
            update(),
            post("C123"),
        ]
    );
    assert_eq!(store.record(ids[0]).unwrap().item.attempts, 3);
}

/// The buttons of each root message's stage (none without an `actions` block).
fn button_ids(body: &Value) -> Vec<String> {
    body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .map(|e| e["action_id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// With a signing secret the root message carries the buttons fitting its stage, updated
/// with it; threaded replies never have buttons. Without one (every other test here) the
/// bodies carry no blocks at all.
#[tokio::test]
async fn with_a_signing_secret_the_root_message_carries_the_stages_buttons() {
    let slack_rx = Receiver::start(|r, _| slack_ok(r)).await;
    let store = Arc::new(MemoryOutbox::new());
    let ids: Vec<i64> = [Stage::AwaitingApproval, Stage::Initiated, Stage::Resolved]
        .into_iter()
        .map(|s| store.push(message("inc-1", s, "P1"), slack(), Utc::now()))
        .collect();
    let mut cfg = config(Some(&slack_rx), None);
    cfg.slack_signing_secret = Some("signing-secret".into());
    let worker = Worker::start(&store, cfg, Arc::default());
    wait_until(LIMIT, "all sent", || {
        ids.iter().all(|id| is_sent(&store, *id))
    })
    .await;
    worker.stop().await;
    let seen: Vec<(String, Option<String>, Vec<String>)> = slack_rx
        .requests()
        .iter()
        .map(|r| {
            let body = r.json.clone().unwrap_or(Value::Null);
            let thread = body["thread_ts"].as_str().map(str::to_string);
            (r.path.clone(), thread, button_ids(&body))
        })
        .collect();
    let ids = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        seen,
        vec![
            (
                "/chat.postMessage".into(),
                None,
                ids(&["rollbackd_approve", "rollbackd_reject", "rollbackd_pause"])
            ),
            (
                "/chat.update".into(),
                None,
                ids(&["rollbackd_cancel", "rollbackd_pause"])
            ),
            ("/chat.postMessage".into(), Some(TS.into()), vec![]),
            ("/chat.update".into(), None, vec![]),
            ("/chat.postMessage".into(), Some(TS.into()), vec![]),
        ]
    );
    let reqs = slack_rx.requests();
    let root = reqs[0].json.clone().unwrap();
    assert_eq!(
        root["blocks"][0]["text"]["text"], root["text"],
        "the text is the first block"
    );
    let approve = &root["blocks"][1]["elements"][0];
    assert_eq!(
        serde_json::from_str::<Value>(approve["value"].as_str().unwrap()).unwrap(),
        json!({"incident": "inc-1", "agent": "GL-002"})
    );
    assert!(approve["confirm"].is_object(), "{approve}");
    assert!(
        reqs[2].json.as_ref().unwrap().get("blocks").is_none(),
        "a reply has no blocks"
    );
    assert!(
        reqs[3].json.as_ref().unwrap()["blocks"]
            .as_array()
            .unwrap()
            .len()
            == 1
    );
}

#[tokio::test]
async fn shutdown_flushes_due_items_once_and_returns_promptly() {
    let hook_rx = Receiver::start(|r, _| {
        if r.path == "/slow" {
            Reply::text(200, "").after(Duration::from_secs(5))
        } else {
            Reply::text(200, "")
        }
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let mut cfg = with_hooks(
        config(None, None),
        &[
            ("/fast", format!("{}/fast", hook_rx.url)),
            ("/slow", format!("{}/slow", hook_rx.url)),
        ],
    );
    // The worker will not look again on its own within the test.
    cfg.poll_interval = Duration::from_secs(60);
    cfg.shutdown_grace = Duration::from_millis(500);
    let worker = Worker::start(&store, cfg.clone(), Arc::default());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let hook = |p: &str| Target::Webhook { name: p.into() };
    let queued = store.push(
        message("inc-1", Stage::Failed, "P0"),
        hook("/fast"),
        Utc::now(),
    );
    let took = worker.stop().await;
    assert!(
        is_sent(&store, queued),
        "the final flush sent the queued item"
    );
    assert!(took < Duration::from_millis(400), "stopped after {took:?}");
    assert_eq!(hook_rx.requests_to("/fast").len(), 1);

    // A delivery that hangs is cut off at the grace period and stays pending.
    let worker = Worker::start(&store, cfg, Arc::default());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let hanging = store.push(
        message("inc-2", Stage::Failed, "P0"),
        hook("/slow"),
        Utc::now(),
    );
    let took = worker.stop().await;
    assert!(took >= Duration::from_millis(500), "stopped after {took:?}");
    assert!(took < Duration::from_millis(1500), "stopped after {took:?}");
    assert_eq!(hook_rx.requests_to("/slow").len(), 1);
    assert_eq!(store.record(hanging).unwrap().status, OutboxStatus::Pending);
}

#[tokio::test]
async fn a_restarted_worker_continues_the_thread() {
    let slack_rx = Receiver::start(|r, _| slack_ok(r)).await;
    let sp_rx = Receiver::start(|r, _| statuspage_ok(r)).await;
    let store = Arc::new(MemoryOutbox::new());
    let cfg = config(Some(&slack_rx), Some(&sp_rx));
    let a = store.push(
        message("inc-1", Stage::Initiated, "P0"),
        slack(),
        Utc::now(),
    );
    let b = store.push(
        message("inc-1", Stage::Initiated, "P0"),
        statuspage(),
        Utc::now(),
    );
    let worker = Worker::start(&store, cfg.clone(), Arc::default());
    wait_until(LIMIT, "first sent", || {
        is_sent(&store, a) && is_sent(&store, b)
    })
    .await;
    worker.stop().await;

    let c = store.push(message("inc-1", Stage::Resolved, "P0"), slack(), Utc::now());
    let d = store.push(
        message("inc-1", Stage::Resolved, "P0"),
        statuspage(),
        Utc::now(),
    );
    let worker = Worker::start(&store, cfg, Arc::default());
    wait_until(LIMIT, "second sent", || {
        is_sent(&store, c) && is_sent(&store, d)
    })
    .await;
    worker.stop().await;
    let paths: Vec<String> = slack_rx.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        ["/chat.postMessage", "/chat.update", "/chat.postMessage"]
    );
    assert_eq!(sp_rx.requests()[1].method, "PATCH");
    assert_eq!(sp_rx.requests()[1].path, "/pages/PAGE/incidents/INC9");
}

/// A store whose first `mark_sent` fails.
struct FlakyStore {
    inner: MemoryOutbox,
    failed_once: AtomicBool,
}

#[async_trait::async_trait]
impl OutboxStore for FlakyStore {
    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxItem>, NotifyError> {
        self.inner.due(now, limit).await
    }
    async fn mark_sent(
        &self,
        id: i64,
        at: DateTime<Utc>,
        thread: Option<&ThreadRef>,
    ) -> Result<(), NotifyError> {
        if !self.failed_once.swap(true, Ordering::SeqCst) {
            return Err(NotifyError::Store("disk full".into()));
        }
        self.inner.mark_sent(id, at, thread).await
    }
    async fn mark_attempt(&self, id: i64, at: DateTime<Utc>) -> Result<(), NotifyError> {
        self.inner.mark_attempt(id, at).await
    }
    async fn mark_retry(
        &self,
        id: i64,
        attempts: u32,
        next: DateTime<Utc>,
        error: &str,
        in_doubt: bool,
    ) -> Result<(), NotifyError> {
        self.inner
            .mark_retry(id, attempts, next, error, in_doubt)
            .await
    }
    async fn mark_failed(&self, id: i64, attempts: u32, error: &str) -> Result<(), NotifyError> {
        self.inner.mark_failed(id, attempts, error).await
    }
    async fn thread(&self, incident: &str, key: &str) -> Result<Option<ThreadRef>, NotifyError> {
        self.inner.thread(incident, key).await
    }
    async fn save_thread(&self, incident: &str, thread: &ThreadRef) -> Result<(), NotifyError> {
        self.inner.save_thread(incident, thread).await
    }
}

#[tokio::test]
async fn an_unrecorded_delivery_is_repeated_only_after_a_cooldown() {
    let rx = Receiver::start(|_, _| Reply::text(200, "")).await;
    let store = Arc::new(FlakyStore {
        inner: MemoryOutbox::new(),
        failed_once: AtomicBool::new(false),
    });
    let id = store.inner.push(
        message("inc-1", Stage::Initiated, "P0"),
        Target::Webhook { name: "h".into() },
        Utc::now(),
    );
    let cfg = with_hooks(config(None, None), &[("h", format!("{}/h", rx.url))]);
    let notifiers = Notifiers::new(cfg.clone()).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let observer = Arc::new(Outcomes::default());
    let task = tokio::spawn(run_outbox(
        Arc::clone(&store) as Arc<dyn OutboxStore>,
        notifiers,
        observer,
        async {
            let _ = stopped.await;
        },
    ));
    wait_until(LIMIT, "sent", || {
        matches!(
            store.inner.record(id).map(|r| r.status),
            Some(OutboxStatus::Sent { .. })
        )
    })
    .await;
    let _ = stop.send(());
    task.await.unwrap();
    // At least once: the unrecorded delivery is repeated, but after the cooldown
    // (max_delay), not at every 10 ms poll.
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].at - reqs[0].at >= cfg.retry.max_delay);
}

#[tokio::test]
async fn statuspage_requests_are_paced_across_incidents() {
    let sp_rx = Receiver::start(|r, _| statuspage_ok(r)).await;
    let store = Arc::new(MemoryOutbox::new());
    let ids: Vec<i64> = ["inc-1", "inc-2", "inc-3"]
        .into_iter()
        .map(|inc| {
            store.push(
                message(inc, Stage::Initiated, "P0"),
                statuspage(),
                Utc::now(),
            )
        })
        .collect();
    let mut cfg = config(None, Some(&sp_rx));
    cfg.statuspage_min_interval = Duration::from_millis(300);
    let worker = Worker::start(&store, cfg, Arc::default());
    wait_until(LIMIT, "all created", || {
        ids.iter().all(|id| is_sent(&store, *id))
    })
    .await;
    worker.stop().await;
    let mut arrivals: Vec<Instant> = sp_rx.requests().iter().map(|r| r.at).collect();
    arrivals.sort();
    assert_eq!(arrivals.len(), 3);
    for pair in arrivals.windows(2) {
        // Slots are 300 ms apart; allow for connection set-up jitter at the receiver.
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(250),
            "{:?}",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test]
async fn an_uneditable_parent_still_gets_the_threaded_reply() {
    let slack_rx = Receiver::start(|r, _| {
        if r.path == "/chat.update" {
            Reply::json(200, json!({"ok": false, "error": "cant_update_message"}))
        } else {
            slack_ok(r)
        }
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let first = store.push(
        message("inc-1", Stage::Initiated, "P0"),
        slack(),
        Utc::now(),
    );
    let second = store.push(message("inc-1", Stage::Failed, "P0"), slack(), Utc::now());
    let worker = Worker::start(&store, config(Some(&slack_rx), None), Arc::default());
    wait_until(LIMIT, "sent", || {
        is_sent(&store, first) && is_sent(&store, second)
    })
    .await;
    worker.stop().await;
    let paths: Vec<String> = slack_rx.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        ["/chat.postMessage", "/chat.update", "/chat.postMessage"]
    );
    assert_eq!(
        slack_rx.requests()[2].json.as_ref().unwrap()["thread_ts"],
        TS
    );
}

#[tokio::test]
async fn a_timed_out_request_is_retried() {
    let rx = Receiver::start(|_, nth| {
        let reply = Reply::text(200, "");
        if nth == 0 {
            reply.after(Duration::from_secs(2))
        } else {
            reply
        }
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let id = store.push(
        message("inc-1", Stage::Inconclusive, "P1"),
        Target::Webhook { name: "h".into() },
        Utc::now(),
    );
    let mut cfg = with_hooks(config(None, None), &[("h", format!("{}/h", rx.url))]);
    cfg.request_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let worker = Worker::start(&store, cfg, Arc::default());
    wait_until(LIMIT, "sent", || is_sent(&store, id)).await;
    let took = started.elapsed();
    worker.stop().await;
    assert_eq!(rx.requests().len(), 2);
    assert_eq!(store.record(id).unwrap().item.attempts, 2);
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[tokio::test]
async fn missing_credentials_fail_at_once_without_a_request() {
    let slack_rx = Receiver::start(|r, _| slack_ok(r)).await;
    let sp_rx = Receiver::start(|r, _| statuspage_ok(r)).await;
    let store = Arc::new(MemoryOutbox::new());
    let a = store.push(
        message("inc-1", Stage::Initiated, "P0"),
        slack(),
        Utc::now(),
    );
    let b = store.push(
        message("inc-1", Stage::Initiated, "P0"),
        statuspage(),
        Utc::now(),
    );
    let mut cfg = config(Some(&slack_rx), Some(&sp_rx));
    cfg.slack_token = None;
    cfg.statuspage_api_key = None;
    let worker = Worker::start(&store, cfg, Arc::default());
    wait_until(LIMIT, "settled", || settled(&store)).await;
    worker.stop().await;
    for (id, error) in [
        (a, "slack: not configured: no Slack token"),
        (b, "statuspage: not configured: no Statuspage API key"),
    ] {
        let record = store.record(id).unwrap();
        assert_eq!(record.status, OutboxStatus::Failed);
        assert_eq!(record.item.attempts, 1);
        assert_eq!(record.last_error.as_deref(), Some(error));
    }
    assert!(slack_rx.requests().is_empty());
    assert!(sp_rx.requests().is_empty());
}

#[tokio::test]
async fn a_webhook_target_is_a_name_and_only_the_notifiers_know_its_url() {
    let rx = Receiver::start(|_, _| Reply::text(200, "")).await;
    let store = Arc::new(MemoryOutbox::new());
    let named = store.push(
        message("inc-1", Stage::Initiated, "P0"),
        Target::Webhook {
            name: "webhook".into(),
        },
        Utc::now(),
    );
    let unknown = store.push(
        message("inc-2", Stage::Initiated, "P0"),
        Target::Webhook {
            name: "nobody".into(),
        },
        Utc::now(),
    );
    let cfg = with_hooks(
        config(None, None),
        &[("webhook", format!("{}/hooks/SECRET", rx.url))],
    );
    assert!(!format!("{cfg:?}").contains("SECRET"), "{cfg:?}");
    let worker = Worker::start(&store, cfg, Arc::default());
    wait_until(LIMIT, "settled", || settled(&store)).await;
    worker.stop().await;
    assert!(is_sent(&store, named));
    assert_eq!(rx.requests_to("/hooks/SECRET").len(), 1);
    let failed = store.record(unknown).unwrap();
    assert_eq!(failed.status, OutboxStatus::Failed);
    assert_eq!(
        failed.last_error.as_deref(),
        Some("webhook: not configured: no URL for webhook \"nobody\"")
    );
}

/// An incident of `policy` on its first row, with evidence.
fn incident_of(policy: &rollbackd_core::policy::Policy, id: &str) -> rollbackd::store::Incident {
    let row = &policy.matrix[0];
    let now = Utc::now();
    rollbackd::store::Incident {
        id: id.into(),
        agent: policy.agent.id.clone(),
        namespace: "greenlang".into(),
        workload: policy.primary_workload().unwrap().name.clone(),
        revision: Some(7),
        from_image: Some("ghcr.io/greenlang/agent:v1.2.5".into()),
        row: Some(row.id.clone()),
        severity: Some(row.severity.clone()),
        method: row.method.clone(),
        trigger: rollbackd::store::Trigger::Automatic,
        requested_by: None,
        reason: format!("Rollback {}: error_rate=0.62 > 0.5", row.id),
        decision: json!({"evidence": {"conditions": [
            {"signal": "error_rate", "value": 0.62, "threshold": "> 0.5"}
        ], "blocked_by": "backup-heat-unavailable"}}),
        state: rollbackd_core::incident::State::Detected,
        dry_run: false,
        vars: BTreeMap::new(),
        deploy_at: Some(now),
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test]
async fn statuspage_gets_public_wording_and_slack_the_evidence_for_every_stage() {
    use rollbackd::lifecycle::announce::{Channels, announce};
    let slack_rx = Receiver::start(|r, _| slack_ok(r)).await;
    let sp_rx = Receiver::start(|r, _| statuspage_ok(r)).await;
    let store = Arc::new(MemoryOutbox::new());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let policies = rollbackd_core::policy::load_all(&[dir]).unwrap();
    let channels = Channels {
        slack_api: true,
        statuspage: true,
        ..Channels::default()
    };
    let extra = BTreeMap::from([
        ("to_version", "v1.2.4".to_string()),
        ("to_revision", "6".to_string()),
        ("duration", "4m".to_string()),
        ("pods_updated", "3".to_string()),
        ("pods_total", "3".to_string()),
        ("error", "step 2 (undo) failed: conflict".to_string()),
    ]);
    // what must never reach the status page: each incident's id and row
    let mut internal: Vec<(String, String)> = Vec::new();
    for (n, policy) in policies.iter().enumerate() {
        let inc = incident_of(policy, &format!("inc-{n}-4f2a"));
        internal.push((inc.id.clone(), inc.row.clone().unwrap()));
        for (_, stage) in Stage::ALL {
            for row in announce(policy, &inc, stage, &extra, &channels) {
                let target: Target = serde_json::from_value(row.target).unwrap();
                let message: Message = serde_json::from_value(row.message).unwrap();
                store.push(message, target, Utc::now());
            }
        }
    }
    let worker = Worker::start(
        &store,
        config(Some(&slack_rx), Some(&sp_rx)),
        Arc::default(),
    );
    wait_until(LIMIT, "all sent", || settled(&store)).await;
    worker.stop().await;
    assert!(
        store
            .records()
            .iter()
            .all(|r| matches!(r.status, OutboxStatus::Sent { .. }))
    );

    let sp_reqs = sp_rx.requests();
    // four policies have a status page; ten of the fourteen stages are public
    assert_eq!(sp_reqs.len(), 40);
    let link = regex::Regex::new(r"<[^>]*\|[^>]*>").unwrap();
    for r in &sp_reqs {
        let body = r.json.as_ref().unwrap()["incident"]["body"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(!body.trim().is_empty(), "{r:?}");
        for markup in ["@here", "@channel", "<!", "*", "_", "#", "n/a"] {
            assert!(!body.contains(markup), "{markup:?} in {body:?}");
        }
        assert!(!link.is_match(&body), "{body:?}");
        for (id, row) in &internal {
            assert!(!body.contains(id.as_str()), "{id} in {body:?}");
            assert!(!body.contains(row.as_str()), "{row} in {body:?}");
        }
    }
    // Slack keeps the team's wording: mentions, rows and the evidence
    let slack_texts: Vec<String> = slack_rx
        .requests()
        .iter()
        .filter_map(|r| r.json.as_ref()?["text"].as_str().map(str::to_string))
        .collect();
    assert!(
        slack_texts
            .iter()
            .any(|t| t.starts_with("<!here> ROLLBACK BLOCKED - GL-001"))
    );
    assert!(slack_texts.iter().any(|t| t.contains(
        "Evidence: error_rate=0.62 (needs &gt; 0.5); blocked by backup-heat-unavailable"
    )));
    assert!(
        slack_texts
            .iter()
            .any(|t| t.contains("(P0, row p0-service-outage)"))
    );
}

/// A message whose delivery is in doubt (Slack processed it, but the answer never came
/// back: as after a kill between the send and its record) is looked up, not sent again:
/// the parent is found in the channel's history by its metadata and its thread kept, a
/// reply among the thread's replies.
#[tokio::test]
async fn a_slack_message_whose_answer_was_lost_is_found_not_sent_twice() {
    let slack_rx = Receiver::start(keeping::slack(&[
        ("/chat.postMessage", 0),
        ("/chat.postMessage", 1),
    ]))
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let first = store.push(
        message("inc-1", Stage::Initiated, "P0"),
        slack(),
        Utc::now(),
    );
    let second = store.push(
        message("inc-1", Stage::InProgress, "P0"),
        slack(),
        Utc::now(),
    );
    let mut cfg = config(Some(&slack_rx), None);
    cfg.request_timeout = Duration::from_millis(300);
    let worker = Worker::start(&store, cfg, Arc::default());
    wait_until(LIMIT, "both sent", || {
        is_sent(&store, first) && is_sent(&store, second)
    })
    .await;
    worker.stop().await;

    let posts = slack_rx.requests_to("/chat.postMessage");
    assert_eq!(posts.len(), 2, "{:#?}", bodies(&posts));
    assert_eq!(posts[0].json.as_ref().unwrap()["channel"], CHANNEL);
    assert_eq!(posts[1].json.as_ref().unwrap()["thread_ts"], keeping::ts(1));
    // found by name → ID, in the channel's history, with metadata asked for
    let history = slack_rx.requests_to("/conversations.history");
    assert_eq!(history.len(), 1);
    assert!(
        history[0].query.contains("channel=C123"),
        "{}",
        history[0].query
    );
    assert!(history[0].query.contains("include_all_metadata=true"));
    assert_eq!(slack_rx.requests_to("/conversations.list").len(), 1);
    let replies = slack_rx.requests_to("/conversations.replies");
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0].query.contains(&format!("ts={}", keeping::ts(1))),
        "{}",
        replies[0].query
    );
    // the parent found is the thread the reply went into
    let thread = store
        .thread("inc-1", &slack().key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        thread.data,
        json!({"channel": "C123", "ts": keeping::ts(1)})
    );
    // each counted its timed-out attempt and the one that found it
    assert_eq!(store.record(first).unwrap().item.attempts, 2);
    assert_eq!(store.record(second).unwrap().item.attempts, 2);
}

/// In doubt but never arrived (a gateway's 502): the lookup finds nothing and the message
/// is sent again, once.
#[tokio::test]
async fn a_slack_message_in_doubt_that_never_arrived_is_sent_again() {
    let history = keeping::slack_in(&["gl-002-incidents"], &[]);
    let slack_rx = Receiver::start(move |r, nth| {
        if r.path == "/chat.postMessage" && nth == 0 {
            // a gateway's 502: Slack may or may not have taken it
            Reply::text(502, "bad gateway")
        } else {
            history(r, nth)
        }
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let id = store.push(
        message("inc-1", Stage::Initiated, "P0"),
        slack(),
        Utc::now(),
    );
    let worker = Worker::start(&store, config(Some(&slack_rx), None), Arc::default());
    wait_until(LIMIT, "sent", || is_sent(&store, id)).await;
    worker.stop().await;
    assert_eq!(slack_rx.requests_to("/chat.postMessage").len(), 2);
    assert_eq!(slack_rx.requests_to("/conversations.history").len(), 1);
    let thread = store
        .thread("inc-1", &slack().key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        thread.data,
        json!({"channel": "C123", "ts": keeping::ts(1)})
    );
}

/// A Statuspage create and an update whose answers were lost are found (the create among
/// the page's incidents by its rollbackd incident id, the update by the incident's last
/// recorded row), not made twice.
#[tokio::test]
async fn a_statuspage_delivery_whose_answer_was_lost_is_found_not_made_twice() {
    let sp_rx = Receiver::start(keeping::statuspage(&[
        ("/pages/PAGE/incidents", 0),
        ("/pages/PAGE/incidents/SP1", 0),
    ]))
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let first = store.push(
        message("inc-1", Stage::Initiated, "P0"),
        statuspage(),
        Utc::now(),
    );
    let second = store.push(
        message("inc-1", Stage::Resolved, "P0"),
        statuspage(),
        Utc::now(),
    );
    let mut cfg = config(None, Some(&sp_rx));
    cfg.request_timeout = Duration::from_millis(300);
    let worker = Worker::start(&store, cfg, Arc::default());
    wait_until(LIMIT, "both sent", || {
        is_sent(&store, first) && is_sent(&store, second)
    })
    .await;
    worker.stop().await;
    let requests: Vec<(String, String)> = sp_rx
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    let count = |m: &str, p: &str| {
        requests
            .iter()
            .filter(|r| (r.0.as_str(), r.1.as_str()) == (m, p))
            .count()
    };
    assert_eq!(count("POST", "/pages/PAGE/incidents"), 1, "{requests:?}");
    assert_eq!(
        count("PATCH", "/pages/PAGE/incidents/SP1"),
        1,
        "{requests:?}"
    );
    assert_eq!(count("GET", "/pages/PAGE/incidents"), 1, "{requests:?}");
    assert_eq!(count("GET", "/pages/PAGE/incidents/SP1"), 1, "{requests:?}");
    let thread = store
        .thread("inc-1", &statuspage().key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(thread.data, json!({"incident_id": "SP1"}));
}

/// An item is marked in doubt before its message leaves, and only for targets that can be
/// asked: a webhook's delivery is not looked up (at-least-once).
#[tokio::test]
async fn the_attempt_is_recorded_before_the_message_leaves() {
    let store = Arc::new(MemoryOutbox::new());
    let seen: Arc<Mutex<Option<Option<DateTime<Utc>>>>> = Arc::default();
    let (seen_in_script, store_in_script) = (seen.clone(), store.clone());
    let slack_rx = Receiver::start(move |r, _| {
        if r.path == "/chat.postMessage" {
            // what the store says while the message is being delivered
            let record = store_in_script.record(1).unwrap();
            *seen_in_script.lock().unwrap() = Some(record.item.in_doubt_since);
        }
        slack_ok(r)
    })
    .await;
    let id = store.push(
        message("inc-1", Stage::Initiated, "P0"),
        slack(),
        Utc::now(),
    );
    assert_eq!(id, 1);
    let worker = Worker::start(&store, config(Some(&slack_rx), None), Arc::default());
    wait_until(LIMIT, "sent", || is_sent(&store, id)).await;
    worker.stop().await;
    let during = seen.lock().unwrap().expect("Slack was called");
    assert!(
        during.is_some(),
        "the attempt was not recorded before the post"
    );
}
