//! A standby's API hands writes to the leader (`api::forward`), over real HTTP on
//! 127.0.0.1: two API routers, the leader's (leading, its own store) and the standby's (not
//! leading, told where the leader is as its elector would tell it). The standby forwards
//! the webhook and the override API's writes and answers with the leader's status and
//! body; it sends exactly the method, path and query, body, `Authorization`,
//! `Content-Type` and its mark; a marked request is never forwarded again; with no live
//! leader, no advertised URL, a leader down or one that does not answer in time it
//! answers 503 with `Retry-After`; it checks credentials and the body size itself and
//! serves reads from its own store.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use chrono::{TimeDelta, Utc};
use rollbackd::api::forward::{FORWARDED, FORWARDED_TO};
use rollbackd::api::{
    AgentIndex, AlertIngest, ApiState, Auth, Forwarder, LeaderAddr, RETRY_AFTER_SECONDS, router,
};
use rollbackd::channel::BoundedTx;
use rollbackd::config::{ApiToken, Role, WebhookAuth};
use rollbackd::health::TaskHealth;
use rollbackd::metrics::Metrics;
use rollbackd::store::{SqliteStore, StateStore};
use rollbackd_core::policy::load_all;
use serde_json::{Value, json};
use tokio::sync::watch;

const OPERATOR: &str = "operator-token-0123456789";
const VIEWER: &str = "viewer-token-0123456789ab";
const HOOK: &str = "alertmanager-secret-token";
const MAX_BODY: usize = 64 * 1024;
const SLACK_SECRET: &str = "slack-signing-secret-for-forwarding";

/// One replica's API: its store and metrics, where it listens, and (on a standby) the
/// channel its elector would publish the leader on.
struct Replica {
    url: String,
    store: Arc<dyn StateStore>,
    metrics: Arc<Metrics>,
    leader: Option<watch::Sender<Option<LeaderAddr>>>,
}

/// An API leading (`standby = false`) or standing by as `pod-b`, forwarding with `timeout`.
async fn replica(standby: bool, timeout: Duration) -> Replica {
    let policies: Vec<_> = load_all(&[PathBuf::from("policies")])
        .unwrap()
        .into_iter()
        .map(Arc::new)
        .collect();
    let store: Arc<dyn StateStore> = Arc::new(SqliteStore::in_memory().await.unwrap());
    let metrics = Arc::new(Metrics::new());
    let (leader_tx, leader_rx) = watch::channel(None);
    let forward = standby.then(|| Forwarder::new("pod-b", leader_rx, timeout).unwrap());
    let state = ApiState {
        tasks: Arc::new(TaskHealth::new()),
        agents: Arc::new(AgentIndex::new(&policies)),
        alerts: AlertIngest::start(store.clone(), BoundedTx::detached("wake")),
        store: store.clone(),
        policies: Arc::new(policies),
        auth: Arc::new(Auth {
            tokens: vec![
                ApiToken {
                    name: "alice".into(),
                    role: Role::Operator,
                    secret: OPERATOR.into(),
                },
                ApiToken {
                    name: "grafana".into(),
                    role: Role::Viewer,
                    secret: VIEWER.into(),
                },
            ],
            webhook: WebhookAuth {
                bearer_token: Some(HOOK.into()),
                ..WebhookAuth::default()
            },
        }),
        agent_label: "agent".into(),
        metrics: metrics.clone(),
        status: Arc::new(RwLock::new(BTreeMap::new())),
        wake: BoundedTx::detached("wake"),
        ready: Arc::new(AtomicBool::new(true)),
        dry_run: false,
        leading: watch::channel(!standby).1,
        forward,
        latest: Arc::default(),
        channels: rollbackd::lifecycle::announce::Channels::default(),
        // every replica verifies Slack's presses with the same secret
        slack: rollbackd::api::SlackInteractions::from_config(&rollbackd::notify::NotifierConfig {
            slack_signing_secret: Some(SLACK_SECRET.into()),
            ..Default::default()
        })
        .unwrap(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = router(state, MAX_BODY);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Replica {
        url,
        store,
        metrics,
        leader: standby.then_some(leader_tx),
    }
}

impl Replica {
    /// Tells the standby (as its elector would) who leads and where.
    fn leader_is(&self, identity: &str, url: Option<&str>) {
        let addr = LeaderAddr {
            identity: identity.into(),
            url: url.map(str::to_string),
            expires: Utc::now() + TimeDelta::seconds(30),
        };
        self.leader.as_ref().unwrap().send_replace(Some(addr));
    }
}

/// A request's answer: status, the headers that matter here, JSON body.
struct Answer {
    code: u16,
    forwarded_to: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

async fn send(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req.send().await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    Answer {
        code: res.status().as_u16(),
        forwarded_to: header(FORWARDED_TO),
        retry_after: header("retry-after"),
        body: res.json().await.unwrap_or(Value::Null),
    }
}

async fn post(url: &str, token: &str, body: &Value) -> Answer {
    send(reqwest::Method::POST, url, Some(token), &[], Some(body)).await
}

fn payload() -> Value {
    json!({
        "version": "4", "status": "firing", "receiver": "rollbackd",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "GL002ServiceOutage", "agent": "GL-002", "condition": "service_outage"},
            "annotations": {"summary": "down"},
            "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "f0rward0001"
        }]
    })
}

async fn alerts_in(store: &Arc<dyn StateStore>) -> usize {
    store
        .alerts_since(None, chrono::DateTime::UNIX_EPOCH)
        .await
        .unwrap()
        .len()
}

fn counted(r: &Replica, outcome: &str) -> bool {
    r.metrics.render().contains(&format!(
        "rollbackd_forwarded_requests_total{{outcome=\"{outcome}\"}}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_forwards_writes_to_the_leader_and_answers_with_its_answer() {
    let leader = replica(false, Duration::from_secs(5)).await;
    let standby = replica(true, Duration::from_secs(5)).await;
    standby.leader_is("pod-a", Some(&leader.url));

    // The webhook: recorded by the leader, not by the standby; the leader's answer comes back.
    let a = post(&format!("{}/api/v1/alerts", standby.url), HOOK, &payload()).await;
    assert_eq!(a.code, 200, "{}", a.body);
    assert_eq!(a.body["new"], 1, "{}", a.body);
    assert_eq!(a.forwarded_to.as_deref(), Some("pod-a"));
    assert_eq!(alerts_in(&leader.store).await, 1);
    assert_eq!(alerts_in(&standby.store).await, 0);
    // a redelivery through the standby is the leader's duplicate
    let a = post(&format!("{}/api/v1/alerts", standby.url), HOOK, &payload()).await;
    assert_eq!(a.body["duplicate"], 1, "{}", a.body);
    // the leader counted both; the standby counted two forwarded 200s
    assert!(
        leader
            .metrics
            .render()
            .contains("rollbackd_webhook_requests_total{code=\"200\"} 2")
    );
    assert!(
        standby
            .metrics
            .render()
            .contains("rollbackd_forwarded_requests_total{outcome=\"200\"} 2")
    );

    // A pause: in the leader's store, audited as the token's owner.
    let a = post(
        &format!("{}/api/v1/agents/gl-009/pause", standby.url),
        OPERATOR,
        &json!({"reason": "maintenance"}),
    )
    .await;
    assert_eq!(a.code, 200, "{}", a.body);
    assert_eq!(a.body["scope"], "GL-009");
    assert_eq!(a.body["by"], "alice");
    let pauses = leader.store.pauses().await.unwrap();
    assert_eq!(pauses.len(), 1);
    assert_eq!(pauses[0].paused_by, "alice");
    assert!(standby.store.pauses().await.unwrap().is_empty());

    // The leader's refusals come back as they are: 404 for an unknown agent, 423 for a
    // manual rollback of the paused agent, 400 naming the field.
    let a = post(
        &format!("{}/api/v1/agents/gl-404/pause", standby.url),
        OPERATOR,
        &json!({}),
    )
    .await;
    assert_eq!((a.code, a.forwarded_to.as_deref()), (404, Some("pod-a")));
    assert!(
        a.body["error"].as_str().unwrap().contains("gl-404"),
        "{}",
        a.body
    );
    let a = post(
        &format!("{}/api/v1/rollbacks", standby.url),
        OPERATOR,
        &json!({"agent": "GL-009", "reason": "by hand"}),
    )
    .await;
    assert_eq!(a.code, 423, "{}", a.body);
    assert!(
        a.body["error"].as_str().unwrap().contains("paused"),
        "{}",
        a.body
    );
    let a = post(
        &format!("{}/api/v1/rollbacks", standby.url),
        OPERATOR,
        &json!({"agent": "GL-009", "reason": ""}),
    )
    .await;
    assert_eq!((a.code, a.body["field"].as_str()), (400, Some("reason")));

    // Reads are the standby's own: served from its store, not forwarded.
    let a = send(
        reqwest::Method::GET,
        &format!("{}/api/v1/agents", standby.url),
        Some(VIEWER),
        &[],
        None,
    )
    .await;
    assert_eq!((a.code, a.forwarded_to), (200, None));
    assert!(
        a.body["agents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["paused"].is_null())
    );

    // The standby checks credentials itself: nothing reaches the leader without them.
    let before = leader.store.pauses().await.unwrap().len();
    for (token, code) in [
        (None, 401),
        (Some(VIEWER), 403),
        (Some("wrong-token-0123456789"), 401),
    ] {
        let a = send(
            reqwest::Method::POST,
            &format!("{}/api/v1/pause", standby.url),
            token,
            &[],
            Some(&json!({})),
        )
        .await;
        assert_eq!((a.code, a.forwarded_to), (code, None), "{}", a.body);
    }
    let a = post(
        &format!("{}/api/v1/alerts", standby.url),
        OPERATOR,
        &payload(),
    )
    .await;
    assert_eq!((a.code, a.forwarded_to), (403, None), "{}", a.body);
    assert_eq!(leader.store.pauses().await.unwrap().len(), before);
    // each webhook request is counted once, by the replica that answered it
    let counted = standby.metrics.render();
    assert!(
        counted.contains("rollbackd_webhook_requests_total{code=\"403\"} 1")
            && !counted.contains("rollbackd_webhook_requests_total{code=\"200\"}"),
        "{counted}"
    );
    // and the body size
    let big = json!({"reason": "x".repeat(MAX_BODY)});
    let a = post(&format!("{}/api/v1/pause", standby.url), OPERATOR, &big).await;
    assert_eq!((a.code, a.forwarded_to), (413, None));
}

/// A stand-in leader that records what reaches it, and answers 202 (after `delay`).
async fn recording_leader(
    delay: Duration,
) -> (String, Arc<Mutex<Vec<(Method, Uri, HeaderMap, Bytes)>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push((method, uri, headers, body));
                tokio::time::sleep(delay).await;
                (
                    axum::http::StatusCode::ACCEPTED,
                    [("content-type", "application/json"), ("x-other", "dropped")],
                    "{\"leader\":\"says so\"}",
                )
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarded_request_is_the_callers_with_the_standbys_mark_only() {
    let (url, got) = recording_leader(Duration::ZERO).await;
    let standby = replica(true, Duration::from_secs(5)).await;
    standby.leader_is("pod-a", Some(&url));
    let a = send(
        reqwest::Method::POST,
        &format!("{}/api/v1/rollbacks/INC-1/approve?note=1", standby.url),
        Some(OPERATOR),
        &[("cookie", "session=1"), ("x-request-id", "r1")],
        Some(&json!({"reason": "go"})),
    )
    .await;
    assert_eq!(a.code, 202);
    assert_eq!(a.body, json!({"leader": "says so"}));
    assert_eq!(a.forwarded_to.as_deref(), Some("pod-a"));
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    let (method, uri, headers, body) = &got[0];
    assert_eq!(method, Method::POST);
    assert_eq!(uri.to_string(), "/api/v1/rollbacks/INC-1/approve?note=1");
    assert_eq!(
        serde_json::from_slice::<Value>(body).unwrap(),
        json!({"reason": "go"})
    );
    assert_eq!(headers["authorization"], format!("Bearer {OPERATOR}"));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers[FORWARDED], "pod-b");
    assert!(headers.get("cookie").is_none() && headers.get("x-request-id").is_none());
}

/// `v0=<hex>` of Slack's signature scheme.
fn slack_signature(timestamp: &str, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SLACK_SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let digest = mac.finalize().into_bytes();
    format!(
        "v0={}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// A Slack press reaching a standby: checked there (a bad signature goes no further), then
/// handed to the leader with its body byte for byte and Slack's headers, so the leader
/// verifies the same signature itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_press_reaches_the_leader_byte_for_byte_with_its_signature() {
    let (url, got) = recording_leader(Duration::ZERO).await;
    let standby = replica(true, Duration::from_secs(5)).await;
    standby.leader_is("pod-a", Some(&url));
    // odd spacing and escapes that any re-encoding would change
    let body =
        "payload=%7B%22type%22%3A+%22block_actions%22%2C%22x%22%3A%22a%2Bb%20c%22%7D&extra=1";
    let ts = Utc::now().timestamp().to_string();
    let signature = slack_signature(&ts, body);
    let press = |signature: String| {
        let ts = ts.clone();
        let url = format!("{}/api/v1/slack/interactions", standby.url);
        async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-slack-request-timestamp", ts)
                .header("x-slack-signature", signature)
                .header("x-slack-retry-num", "1")
                .header("x-slack-retry-reason", "http_timeout")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let forged = press(slack_signature(&ts, "payload=other")).await;
    assert_eq!(forged.status(), 401, "refused at the standby");
    assert!(
        got.lock().unwrap().is_empty(),
        "a forged press is not forwarded"
    );
    let res = press(signature.clone()).await;
    assert_eq!(res.status(), 202, "the leader's answer comes back");
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    let (_, uri, headers, forwarded) = &got[0];
    assert_eq!(uri.path(), "/api/v1/slack/interactions");
    assert_eq!(&forwarded[..], body.as_bytes(), "the body byte for byte");
    assert_eq!(headers["x-slack-signature"], signature.as_str());
    assert_eq!(headers["x-slack-request-timestamp"], ts.as_str());
    assert_eq!(headers["x-slack-retry-num"], "1");
    assert_eq!(headers["x-slack-retry-reason"], "http_timeout");
    assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(headers[FORWARDED], "pod-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_that_cannot_forward_answers_503_with_retry_after() {
    let (url, got) = recording_leader(Duration::ZERO).await;
    let standby = replica(true, Duration::from_millis(500)).await;
    let pause = format!("{}/api/v1/pause", standby.url);
    let retry_after = RETRY_AFTER_SECONDS.to_string();
    let refused = |a: &Answer, says: &str| {
        assert_eq!(a.code, 503, "{}", a.body);
        assert_eq!(a.retry_after.as_deref(), Some(retry_after.as_str()));
        assert_eq!(a.forwarded_to, None);
        let error = a.body["error"].as_str().unwrap();
        assert!(error.contains(says), "{error}");
        assert!(!error.contains(OPERATOR), "{error}");
    };

    // No leader known yet (the elector has not read the Lease).
    refused(
        &post(&pause, OPERATOR, &json!({})).await,
        "knows no live leader",
    );
    // A leader whose Lease has expired.
    standby
        .leader
        .as_ref()
        .unwrap()
        .send_replace(Some(LeaderAddr {
            identity: "pod-a".into(),
            url: Some(url.clone()),
            expires: Utc::now() - TimeDelta::seconds(1),
        }));
    refused(
        &post(&pause, OPERATOR, &json!({})).await,
        "knows no live leader",
    );
    // A leader that advertises no URL.
    standby.leader_is("pod-a", None);
    refused(
        &post(&pause, OPERATOR, &json!({})).await,
        "advertises no API URL",
    );
    // A request another standby forwarded already: never forwarded twice.
    standby.leader_is("pod-a", Some(&url));
    let a = send(
        reqwest::Method::POST,
        &pause,
        Some(OPERATOR),
        &[(FORWARDED, "pod-c")],
        Some(&json!({})),
    )
    .await;
    refused(&a, "already forwarded by pod-c");
    assert!(got.lock().unwrap().is_empty(), "nothing reached the leader");
    assert!(counted(&standby, "already_forwarded"));
    // The webhook too (Alertmanager retries 5xx).
    standby.leader_is("pod-a", None);
    refused(
        &post(&format!("{}/api/v1/alerts", standby.url), HOOK, &payload()).await,
        "advertises no API URL",
    );
    // counted as a webhook request by the standby, which answered it
    assert!(
        standby
            .metrics
            .render()
            .contains("rollbackd_webhook_requests_total{code=\"503\"} 1")
    );

    // The leader down: nothing listens at its URL.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    standby.leader_is("pod-a", Some(&closed));
    refused(
        &post(&pause, OPERATOR, &json!({})).await,
        "could not be reached",
    );
    assert!(counted(&standby, "unreachable"));

    // A leader that does not answer in time.
    let (slow, _) = recording_leader(Duration::from_secs(3)).await;
    standby.leader_is("pod-a", Some(&slow));
    let t0 = Instant::now();
    refused(
        &post(&pause, OPERATOR, &json!({})).await,
        "did not answer within 500ms",
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(counted(&standby, "timeout"));

    // The standby itself holding the Lease while not leading: not to itself.
    standby.leader_is("pod-b", Some(&standby.url));
    refused(
        &post(&pause, OPERATOR, &json!({})).await,
        "holds the Lease but is not leading",
    );
    assert!(standby.store.pauses().await.unwrap().is_empty());
}
