//! Contract tests for the PagerDuty notifier (Events API v2) through the outbox worker: a
//! local stand-in records every event, and the tests assert the exact events (action,
//! dedup key, payload), what the outbox did with each row, and what was retried.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod notify_support;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use rollbackd::lifecycle::announce::{Channels, announce};
use rollbackd::notify::pagerduty::{EventAction, event_action};
use rollbackd::notify::{
    MemoryOutbox, Message, NotifierConfig, Notifiers, OutboxStatus, RetryConfig, Target, run_outbox,
};
use rollbackd::store::{Incident, Trigger};
use rollbackd_core::incident::State;
use rollbackd_core::policy::{PagerDutySeverity, Policy, Stage, load_file};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use notify_support::{Receiver, Recorded, Reply, wait_until};

/// A routing key as PagerDuty issues them: 32 characters.
const ROUTING_KEY: &str = "R0UT1NGKEY0123456789abcdefSECRET";
const PATH: &str = "/v2/enqueue";
const LIMIT: Duration = Duration::from_secs(10);

/// Fast settings: millisecond backoff, 10 ms polling, five attempts.
fn config(rx: &Receiver) -> NotifierConfig {
    NotifierConfig {
        pagerduty_api_url: format!("{}{PATH}", rx.url),
        pagerduty_routing_keys: BTreeMap::from([("default".to_string(), ROUTING_KEY.to_string())]),
        rollbackd_url: Some("https://rollbackd.example".into()),
        request_timeout: Duration::from_secs(3),
        retry: RetryConfig {
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            max_attempts: 5,
        },
        poll_interval: Duration::from_millis(10),
        shutdown_grace: Duration::from_secs(3),
        ..NotifierConfig::default()
    }
}

/// PagerDuty's answer to an accepted event.
fn accepted(request: &Recorded) -> Reply {
    let dedup = request
        .json
        .as_ref()
        .map_or(Value::Null, |j| j["dedup_key"].clone());
    Reply::json(
        202,
        json!({"status": "success", "message": "Event processed", "dedup_key": dedup}),
    )
}

/// The `default` service's target for `stage` of an open incident.
fn pagerduty(stage: Stage, severity: PagerDutySeverity) -> Target {
    Target::PagerDuty {
        service: "default".into(),
        severity,
        action: event_action(stage, State::Detected).expect("a stage PagerDuty is told"),
    }
}

/// A message for `stage` of `incident`, as the rollback path queues it.
fn message(incident: &str, stage: Stage) -> Message {
    let fields: BTreeMap<String, String> = [
        ("agent_id", "GL-001"),
        ("agent_name", "ProcessHeatOrchestrator"),
        ("namespace", "greenlang"),
        ("workload", "gl-001-process-heat-orchestrator"),
        ("severity", "P0"),
        ("row", "heat-optimization-errors"),
        ("reason", "heat_optimization_errors=0.4 > 0.2"),
        ("incident_id", incident),
        ("mention", "@here "),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Message {
        incident_id: incident.into(),
        agent_id: "GL-001".into(),
        agent_name: "ProcessHeatOrchestrator".into(),
        stage,
        severity: Some("P0".into()),
        text: format!("@here {stage:?}"),
        fields,
    }
}

/// A worker running in the background.
struct Worker {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Worker {
    fn start(store: &Arc<MemoryOutbox>, config: NotifierConfig) -> Worker {
        let notifiers = Notifiers::new(config).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let store = Arc::clone(store);
        let task = tokio::spawn(run_outbox(
            store,
            notifiers,
            Arc::new(rollbackd::notify::NoopObserver),
            async {
                let _ = stopped.await;
            },
        ));
        Worker { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(LIMIT, self.task)
            .await
            .expect("run_outbox did not stop")
            .unwrap();
    }
}

fn settled(store: &MemoryOutbox) -> bool {
    store
        .records()
        .iter()
        .all(|r| r.status != OutboxStatus::Pending)
}

fn actions(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| {
            r.json.as_ref().unwrap()["event_action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn gl001() -> Policy {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/gl-001.toml");
    load_file(&path).unwrap()
}

fn incident(id: &str, severity: &str) -> Incident {
    let now = Utc::now();
    Incident {
        id: id.into(),
        agent: "GL-001".into(),
        namespace: "greenlang".into(),
        workload: "gl-001-process-heat-orchestrator".into(),
        revision: Some(4),
        from_image: Some("ghcr.io/greenlang/gl-001:v2.1.0".into()),
        row: Some("single-plant".into()),
        severity: Some(severity.into()),
        method: Some("quick".into()),
        trigger: Trigger::Automatic,
        requested_by: None,
        reason: "Rollback after approval single-plant: plant_errors=0.3 > 0.2".into(),
        decision: json!({"evidence": {"conditions": [
            {"signal": "plant_errors", "value": 0.3, "threshold": "> 0.2"}
        ]}}),
        state: State::AwaitingApproval,
        dry_run: false,
        vars: BTreeMap::new(),
        deploy_at: Some(now),
        created_at: now,
        updated_at: now,
    }
}

/// Queues what the rollback path queues for `stage` of `inc` under GL-001's policy, with
/// PagerDuty configured; returns the PagerDuty row's id, if the stage has one.
fn announce_stage(
    store: &MemoryOutbox,
    policy: &Policy,
    inc: &Incident,
    stage: Stage,
) -> Option<i64> {
    let channels = Channels {
        pagerduty_services: ["default".to_string()].into(),
        ..Channels::default()
    };
    let extra = BTreeMap::from([("to_version", "v2.0.9".to_string())]);
    let mut id = None;
    for row in announce(policy, inc, stage, &extra, &channels) {
        let target: Target = serde_json::from_value(row.target).unwrap();
        let message: Message = serde_json::from_value(row.message).unwrap();
        assert_eq!(target.kind(), "pagerduty", "only PagerDuty is configured");
        id = Some(store.push(message, target, Utc::now()));
    }
    id
}

#[tokio::test]
async fn an_approval_incident_triggers_acknowledges_and_resolves_one_alert() {
    let rx = Receiver::start(|r, _| accepted(r)).await;
    let store = Arc::new(MemoryOutbox::new());
    let policy = gl001();
    let inc = incident("gl-001-7", "P1");
    // the life of an incident that needed an approval, as the daemon announces it
    let queued: Vec<(Stage, Option<i64>)> = [
        Stage::AwaitingApproval,
        Stage::Initiated,
        Stage::InProgress,
        Stage::Complete,
        Stage::Resolved,
    ]
    .into_iter()
    .map(|s| (s, announce_stage(&store, &policy, &inc, s)))
    .collect();
    assert!(queued[2].1.is_none(), "in_progress tells PagerDuty nothing");
    // another incident, blocked by a guard: its own alert
    let other = incident("gl-001-8", "P0");
    announce_stage(&store, &policy, &other, Stage::Blocked).unwrap();

    let worker = Worker::start(&store, config(&rx));
    wait_until(LIMIT, "settled", || settled(&store)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    worker.stop().await;

    // every row delivered in one attempt; the second resolve had nothing left to resolve
    for record in store.records() {
        assert!(
            matches!(record.status, OutboxStatus::Sent { .. }),
            "{record:?}"
        );
        assert_eq!(record.item.attempts, 1, "{record:?}");
    }
    let requests = rx.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.method == "POST" && r.path == PATH)
    );
    assert!(requests.iter().all(|r| {
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    }));
    let of = |id: &str| -> Vec<Value> {
        requests
            .iter()
            .map(|r| r.json.clone().unwrap())
            .filter(|j| j["dedup_key"] == format!("rollbackd/{id}"))
            .collect()
    };
    let seven = of("gl-001-7");
    let eight = of("gl-001-8");
    assert_eq!(
        seven.len() + eight.len(),
        requests.len(),
        "one dedup key per incident"
    );
    assert_eq!(
        seven
            .iter()
            .map(|j| j["event_action"].clone())
            .collect::<Vec<_>>(),
        [json!("trigger"), json!("acknowledge"), json!("resolve")]
    );
    assert_eq!(
        seven[0],
        json!({
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": "rollbackd/gl-001-7",
            "client": "rollbackd",
            "client_url": "https://rollbackd.example",
            "links": [
                {"href": "https://rollbackd.example/api/v1/rollbacks/gl-001-7", "text": "rollbackd incident gl-001-7"},
                {"href": "https://status.greenlang.io", "text": "Status page"},
            ],
            "payload": {
                "summary": "GL-001 ProcessHeatOrchestrator: rollback awaits approval from the Plant Operations Manager (P1, row single-plant): Rollback after approval single-plant: plant_errors=0.3 > 0.2",
                "source": "greenlang/gl-001-process-heat-orchestrator",
                "severity": "error",
                "component": "GL-001 ProcessHeatOrchestrator",
                "group": "greenlang",
                "class": "awaiting_approval",
                "custom_details": seven[0]["payload"]["custom_details"].clone(),
            },
        })
    );
    let details = &seven[0]["payload"]["custom_details"];
    assert_eq!(details["evidence"], "plant_errors=0.3 (needs > 0.2)");
    assert_eq!(details["approver"], "Plant Operations Manager");
    assert_eq!(details["runbook_severity"], "P1");
    assert!(
        details["message"]
            .as_str()
            .unwrap()
            .contains("Approve: POST /api/v1/rollbacks/gl-001-7/approve")
    );
    for later in &seven[1..] {
        assert_eq!(later.as_object().unwrap().len(), 3, "{later}");
        assert_eq!(later["routing_key"], ROUTING_KEY);
    }
    // the guard's block pages as critical (P0)
    assert_eq!(eight.len(), 1);
    assert_eq!(eight[0]["event_action"], "trigger");
    assert_eq!(eight[0]["payload"]["severity"], "critical");
    assert_eq!(eight[0]["payload"]["class"], "blocked");
}

#[tokio::test]
async fn an_unattended_rollback_that_goes_well_pages_nobody() {
    let rx = Receiver::start(|r, _| accepted(r)).await;
    let store = Arc::new(MemoryOutbox::new());
    let policy = gl001();
    let mut inc = incident("gl-001-9", "P0");
    inc.state = State::RollingBack;
    for stage in [
        Stage::Initiated,
        Stage::InProgress,
        Stage::Complete,
        Stage::Resolved,
    ] {
        announce_stage(&store, &policy, &inc, stage);
    }
    assert_eq!(store.records().len(), 3, "initiated, complete, resolved");
    let worker = Worker::start(&store, config(&rx));
    wait_until(LIMIT, "settled", || settled(&store)).await;
    worker.stop().await;
    assert!(rx.requests().is_empty(), "{:?}", actions(&rx.requests()));
    assert!(
        store
            .records()
            .iter()
            .all(|r| matches!(r.status, OutboxStatus::Sent { .. }))
    );
}

#[tokio::test]
async fn rate_limited_429_is_retried_after_retry_after_without_duplicate_triggers() {
    let rx = Receiver::start(|r, nth| {
        if nth == 0 {
            Reply::json(429, json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly. Please retry later."}))
                .header("Retry-After", "1")
        } else {
            accepted(r)
        }
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let trigger = store.push(
        message("inc-1", Stage::Failed),
        pagerduty(Stage::Failed, PagerDutySeverity::Critical),
        Utc::now(),
    );
    let resolve = store.push(
        message("inc-1", Stage::Superseded),
        pagerduty(Stage::Superseded, PagerDutySeverity::Critical),
        Utc::now(),
    );
    let worker = Worker::start(&store, config(&rx));
    wait_until(LIMIT, "settled", || settled(&store)).await;
    // a wrong repeat would show up within a few polls
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.stop().await;
    let requests = rx.requests();
    assert_eq!(actions(&requests), ["trigger", "trigger", "resolve"]);
    // the retried trigger is the same event; after its 202 it is not sent again
    assert_eq!(requests[0].json, requests[1].json);
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(3), "retried after {gap:?}");
    // the resolve waited for the trigger (one queue per incident and target)
    assert!(requests[2].at >= requests[1].at);
    let t = store.record(trigger).unwrap();
    assert!(matches!(t.status, OutboxStatus::Sent { .. }));
    assert_eq!(t.item.attempts, 2);
    assert!(
        t.last_error
            .unwrap()
            .contains("pagerduty: rate limited (HTTP 429)")
    );
    assert_eq!(store.record(resolve).unwrap().item.attempts, 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_accepted() {
    let rx = Receiver::start(|r, nth| match nth {
        0 => Reply::text(500, "Internal Server Error"),
        1 => Reply::json(503, json!({"status": "unavailable"})),
        _ => accepted(r),
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let id = store.push(
        message("inc-1", Stage::Escalated),
        pagerduty(Stage::Escalated, PagerDutySeverity::Error),
        Utc::now(),
    );
    let started = Instant::now();
    let worker = Worker::start(&store, config(&rx));
    wait_until(LIMIT, "settled", || settled(&store)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.stop().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(actions(&rx.requests()), ["trigger", "trigger", "trigger"]);
    let record = store.record(id).unwrap();
    assert!(matches!(record.status, OutboxStatus::Sent { .. }));
    assert_eq!(record.item.attempts, 3);
}

#[tokio::test]
async fn a_server_that_stays_down_is_given_up_after_max_attempts() {
    let rx = Receiver::start(|_, _| Reply::text(502, "Bad Gateway")).await;
    let store = Arc::new(MemoryOutbox::new());
    let id = store.push(
        message("inc-1", Stage::Blocked),
        pagerduty(Stage::Blocked, PagerDutySeverity::Critical),
        Utc::now(),
    );
    let worker = Worker::start(&store, config(&rx));
    wait_until(LIMIT, "settled", || settled(&store)).await;
    worker.stop().await;
    let record = store.record(id).unwrap();
    assert_eq!(record.status, OutboxStatus::Failed);
    assert_eq!(record.item.attempts, 5);
    assert_eq!(rx.requests().len(), 5);
    assert_eq!(
        record.last_error.as_deref(),
        Some("pagerduty: HTTP 502: Bad Gateway")
    );
}

#[tokio::test]
async fn an_invalid_event_400_is_not_retried() {
    let rx = Receiver::start(|_, _| {
        Reply::json(
            400,
            json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["'payload.summary' is missing or blank"]}),
        )
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let trigger = store.push(
        message("inc-1", Stage::AwaitingApproval),
        pagerduty(Stage::AwaitingApproval, PagerDutySeverity::Warning),
        Utc::now(),
    );
    // the queue moves on; with no alert triggered there is nothing to resolve
    let resolve = store.push(
        message("inc-1", Stage::Resolved),
        pagerduty(Stage::Resolved, PagerDutySeverity::Warning),
        Utc::now(),
    );
    let worker = Worker::start(&store, config(&rx));
    wait_until(LIMIT, "settled", || settled(&store)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.stop().await;
    assert_eq!(rx.requests().len(), 1);
    let record = store.record(trigger).unwrap();
    assert_eq!(record.status, OutboxStatus::Failed);
    assert_eq!(record.item.attempts, 1);
    let error = record.last_error.as_deref().unwrap();
    assert!(error.starts_with("pagerduty: HTTP 400: {"), "{error}");
    assert!(
        error.contains("'payload.summary' is missing or blank"),
        "{error}"
    );
    assert!(matches!(
        store.record(resolve).unwrap().status,
        OutboxStatus::Sent { .. }
    ));
}

#[tokio::test]
async fn a_service_without_a_routing_key_fails_without_a_request() {
    let rx = Receiver::start(|r, _| accepted(r)).await;
    let store = Arc::new(MemoryOutbox::new());
    let id = store.push(
        message("inc-1", Stage::Failed),
        Target::PagerDuty {
            service: "plant-safety".into(),
            severity: PagerDutySeverity::Critical,
            action: EventAction::Trigger,
        },
        Utc::now(),
    );
    let worker = Worker::start(&store, config(&rx));
    wait_until(LIMIT, "settled", || settled(&store)).await;
    worker.stop().await;
    let record = store.record(id).unwrap();
    assert_eq!(record.status, OutboxStatus::Failed);
    assert_eq!(record.item.attempts, 1);
    assert_eq!(
        record.last_error.as_deref(),
        Some("pagerduty: not configured: no routing key for PagerDuty service \"plant-safety\"")
    );
    assert!(rx.requests().is_empty());
}

/// Log output written while a test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_routing_key_is_never_logged_stored_or_shown() {
    // answers that quote the event back, key included
    let rx = Receiver::start(|r, nth| {
        let echo = format!("bad routing_key {ROUTING_KEY} in {}", r.body);
        match nth {
            0 => Reply::text(500, &echo),
            1 => Reply::text(429, &echo),
            _ => Reply::text(400, &echo),
        }
    })
    .await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = Arc::new(MemoryOutbox::new());
    let id = store.push(
        message("inc-1", Stage::Blocked),
        pagerduty(Stage::Blocked, PagerDutySeverity::Critical),
        Utc::now(),
    );
    let cfg = config(&rx);
    let shown = format!("{cfg:?}");
    assert!(!shown.contains(ROUTING_KEY), "{shown}");
    let worker = Worker::start(&store, cfg);
    wait_until(LIMIT, "settled", || settled(&store)).await;
    worker.stop().await;

    // the key went out in each event, and nowhere else
    let requests = rx.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.body.contains(ROUTING_KEY)));
    let record = store.record(id).unwrap();
    assert_eq!(record.status, OutboxStatus::Failed);
    let error = record.last_error.unwrap();
    assert!(
        error.starts_with("pagerduty: HTTP 400: bad routing_key <routing key> in"),
        "{error}"
    );
    assert!(!error.contains(ROUTING_KEY), "{error}");
    assert!(!format!("{:?}", store.records()).contains(ROUTING_KEY));
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(logs.contains("outbox: will retry"), "{logs}");
    assert!(logs.contains("outbox: giving up"), "{logs}");
    assert!(logs.contains("<routing key>"), "{logs}");
    assert!(!logs.contains(ROUTING_KEY), "{logs}");
    assert!(!logs.contains("SECRET"), "{logs}");
}

#[tokio::test]
async fn a_lost_answer_is_retried_with_the_same_dedup_key() {
    // PagerDuty took the event but its answer came after the timeout: the retry repeats the
    // very same event, which PagerDuty folds into the same alert
    let rx = Receiver::start(|r, nth| {
        if nth == 0 {
            accepted(r).after(Duration::from_millis(800))
        } else {
            accepted(r)
        }
    })
    .await;
    let store = Arc::new(MemoryOutbox::new());
    let id = store.push(
        message("inc-1", Stage::AwaitingApproval),
        pagerduty(Stage::AwaitingApproval, PagerDutySeverity::Error),
        Utc::now(),
    );
    let mut cfg = config(&rx);
    cfg.request_timeout = Duration::from_millis(200);
    let worker = Worker::start(&store, cfg);
    wait_until(LIMIT, "settled", || settled(&store)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.stop().await;
    let requests = rx.requests_to(PATH);
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].json, requests[1].json);
    assert_eq!(
        requests[1].json.as_ref().unwrap()["dedup_key"],
        "rollbackd/inc-1"
    );
    let record = store.record(id).unwrap();
    assert!(matches!(record.status, OutboxStatus::Sent { .. }));
    assert_eq!(record.item.attempts, 2);
    assert_eq!(
        record.last_error.as_deref(),
        Some("pagerduty: request timed out")
    );
}

#[tokio::test]
async fn a_cancel_resolves_the_alert_and_a_pause_acknowledges_it() {
    let rx = Receiver::start(|r, _| accepted(r)).await;
    let store = Arc::new(MemoryOutbox::new());
    let policy = gl001();
    // cancelled while it waited for its approval
    let waiting = incident("gl-001-11", "P1");
    announce_stage(&store, &policy, &waiting, Stage::AwaitingApproval).unwrap();
    let cancelled = Incident {
        state: State::Cancelled,
        ..waiting.clone()
    };
    announce_stage(&store, &policy, &cancelled, Stage::Stopped).unwrap();
    // failed, then held by a pause: a human has it
    let mut failed = incident("gl-001-12", "P0");
    failed.state = State::Failed;
    announce_stage(&store, &policy, &failed, Stage::Failed).unwrap();
    failed.state = State::RollingBack;
    announce_stage(&store, &policy, &failed, Stage::Stopped).unwrap();
    let worker = Worker::start(&store, config(&rx));
    wait_until(LIMIT, "settled", || settled(&store)).await;
    worker.stop().await;
    let events: Vec<(String, String)> = rx
        .requests()
        .iter()
        .map(|r| {
            let j = r.json.as_ref().unwrap();
            (
                j["dedup_key"].as_str().unwrap().to_string(),
                j["event_action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let of = |key: &str| -> Vec<&str> {
        events
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    assert_eq!(of("rollbackd/gl-001-11"), ["trigger", "resolve"]);
    assert_eq!(of("rollbackd/gl-001-12"), ["trigger", "acknowledge"]);
}
