//! The HTTP API over real HTTP on 127.0.0.1: webhook receiver, manual override, auth,
//! malformed and oversize bodies, redeliveries, approve/cancel races, health and metrics.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_support;

use std::collections::BTreeMap;

use api_support::*;
use chrono::Utc;
use rollbackd::api::Wake;
use rollbackd::config::WebhookAuth;
use rollbackd::store::{NewIncident, Trigger};
use rollbackd_core::incident::{Event, State};
use serde_json::{Value, json};

#[tokio::test]
async fn webhook_records_dedupes_and_reports_unmatched() {
    let mut api = start().await;
    let body = payload(vec![
        alert("GL-002", "firing", "fp1"),
        alert("GL-999", "firing", "fp2"),
    ]);
    let (code, res) = api.post("/api/v1/alerts", Some(HOOK), body.clone()).await;
    assert_eq!(code, 200, "{res}");
    assert_eq!(
        (res["new"].as_i64(), res["unmatched"].as_i64()),
        (Some(1), Some(1))
    );
    // the daemon is woken with the new alert of the agent that claims it, not the unmatched one
    match api.wake.recv().await {
        Some(Wake::Alerts(new)) => {
            let woken: Vec<(&str, &str, bool)> = new
                .iter()
                .map(|a| {
                    (
                        a.agent.as_str(),
                        a.transition.fingerprint.as_str(),
                        a.transition.firing,
                    )
                })
                .collect();
            assert_eq!(woken, [("GL-002", "fp1", true)]);
        }
        other => panic!("expected an alerts wake, got {other:?}"),
    }
    let (code, res) = api.post("/api/v1/alerts", Some(HOOK), body).await;
    assert_eq!(code, 200);
    assert_eq!(res["duplicate"], 2, "redelivery is idempotent: {res}");
    let stored = api
        .store
        .alerts_since(None, Utc::now() - chrono::TimeDelta::hours(1))
        .await
        .unwrap();
    assert_eq!(stored.len(), 2, "each alert recorded once");
    assert!(
        stored.iter().any(|a| a.alert.agent.is_none()),
        "the unknown agent's alert is kept"
    );
    // namespace + deployment labels name an agent too
    let mut by_workload = alert("x", "firing", "fp3");
    by_workload["labels"] =
        json!({"alertname": "A", "namespace": "gl-009-production", "deployment": "thermaliq"});
    let (_, res) = api
        .post("/api/v1/alerts", Some(HOOK), payload(vec![by_workload]))
        .await;
    assert_eq!(res["agents"], json!(["GL-009"]));
    let (_, res) = api
        .post(
            "/api/v1/alerts",
            Some(HOOK),
            payload(vec![alert("GL-002", "resolved", "fp1")]),
        )
        .await;
    assert_eq!(res["new"], 1, "resolved is a new state of the same alert");
    let metrics = api
        .http
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("rollbackd_webhook_requests_total{code=\"200\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rollbackd_webhook_alerts_total{result=\"unmatched\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_webhook_requests_are_each_recorded_and_wake_the_daemon_once_per_alert() {
    let mut api = start().await;
    let api_url = api.url.clone();
    let requests = (0..64).map(|i| {
        let (http, url) = (api.http.clone(), api_url.clone());
        tokio::spawn(async move {
            let body = payload(vec![alert("GL-002", "firing", &format!("storm-{i}"))]);
            let res = http
                .post(format!("{url}/api/v1/alerts"))
                .bearer_auth(HOOK)
                .json(&body)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        })
    });
    for answer in futures::future::join_all(requests).await {
        let (code, res) = answer.unwrap();
        assert_eq!((code, res["new"].as_i64()), (200, Some(1)), "{res}");
    }
    // every answer came after its commit: all 64 are in the store
    let stored = api
        .store
        .alerts_since(
            Some(Some("GL-002")),
            Utc::now() - chrono::TimeDelta::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 64);
    // the wakes carry each new alert exactly once (commits may group several requests)
    let mut woken = Vec::new();
    while woken.len() < 64 {
        match tokio::time::timeout(std::time::Duration::from_secs(5), api.wake.recv()).await {
            Ok(Some(Wake::Alerts(new))) => {
                woken.extend(new.into_iter().map(|a| a.transition.fingerprint))
            }
            other => panic!("expected alert wakes, got {other:?} after {}", woken.len()),
        }
    }
    woken.sort();
    woken.dedup();
    assert_eq!(woken.len(), 64);
    assert!(api.wake.try_recv().is_err(), "no alert is woken twice");
}

#[tokio::test]
async fn webhook_rejects_bad_bodies_with_the_field() {
    let api = start().await;
    let raw = |body: &'static str| {
        api.http
            .post(format!("{}/api/v1/alerts", api.url))
            .bearer_auth(HOOK)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let res = raw("{\"version\": \"4\", \"alerts\": [").await.unwrap();
    assert_eq!(res.status(), 400);
    let mut missing = payload(vec![alert("GL-002", "firing", "a")]);
    missing["alerts"][0]
        .as_object_mut()
        .unwrap()
        .remove("startsAt");
    let (code, res) = api.post("/api/v1/alerts", Some(HOOK), missing).await;
    assert_eq!(
        (code, res["field"].as_str()),
        (400, Some("alerts[0]")),
        "{res}"
    );
    assert!(res["error"].as_str().unwrap().contains("startsAt"), "{res}");
    let mut bad_time = payload(vec![alert("GL-002", "firing", "a")]);
    bad_time["alerts"][0]["startsAt"] = json!("yesterday");
    let (code, res) = api.post("/api/v1/alerts", Some(HOOK), bad_time).await;
    assert_eq!(
        (code, res["field"].as_str()),
        (400, Some("alerts[0].startsAt")),
        "{res}"
    );
    let mut v3 = payload(vec![]);
    v3["version"] = json!("3");
    let (code, res) = api.post("/api/v1/alerts", Some(HOOK), v3).await;
    assert_eq!((code, res["field"].as_str()), (400, Some("version")));
    let mut bad_status = payload(vec![alert("GL-002", "pending", "a")]);
    bad_status["status"] = json!("firing");
    let (code, res) = api.post("/api/v1/alerts", Some(HOOK), bad_status).await;
    assert_eq!(
        (code, res["field"].as_str()),
        (400, Some("alerts[0].status"))
    );
    let big = payload(
        (0..400)
            .map(|i| alert("GL-002", "firing", &format!("fp{i}")))
            .collect(),
    );
    let (code, _) = api.post("/api/v1/alerts", Some(HOOK), big).await;
    assert_eq!(code, 413);
    assert!(
        api.store
            .alerts_since(None, Utc::now() - chrono::TimeDelta::hours(1))
            .await
            .unwrap()
            .is_empty(),
        "nothing recorded from rejected bodies"
    );
}

#[tokio::test]
async fn webhook_auth_bearer_and_basic() {
    let api = start().await;
    let body = payload(vec![alert("GL-002", "firing", "a")]);
    assert_eq!(api.post("/api/v1/alerts", None, body.clone()).await.0, 401);
    assert_eq!(
        api.post("/api/v1/alerts", Some("wrong-token"), body.clone())
            .await
            .0,
        403
    );
    let basic = start_with(WebhookAuth {
        basic: Some(("am".into(), "s3cret".into())),
        ..WebhookAuth::default()
    })
    .await;
    let send = |user: &str, pass: &str| {
        basic
            .http
            .post(format!("{}/api/v1/alerts", basic.url))
            .basic_auth(user, Some(pass))
            .json(&body)
            .send()
    };
    assert_eq!(send("am", "s3cret").await.unwrap().status(), 200);
    assert_eq!(send("am", "nope").await.unwrap().status(), 403);
}

#[tokio::test]
async fn manual_trigger_roles_conflicts_and_pause() {
    let mut api = start().await;
    let req =
        json!({"agent": "GL-002", "method": "quick", "reason": "error spike seen on dashboard"});
    assert_eq!(
        api.post("/api/v1/rollbacks", None, req.clone()).await.0,
        401
    );
    assert_eq!(
        api.post("/api/v1/rollbacks", Some(VIEWER), req.clone())
            .await
            .0,
        403
    );
    let (code, res) = api
        .post(
            "/api/v1/rollbacks",
            Some(OPERATOR),
            json!({"agent": "GL-002", "reason": ""}),
        )
        .await;
    assert_eq!((code, res["field"].as_str()), (400, Some("reason")));
    let (code, res) = api
        .post(
            "/api/v1/rollbacks",
            Some(OPERATOR),
            json!({"agent": "GL-002", "method": "nope", "reason": "x"}),
        )
        .await;
    assert_eq!((code, res["field"].as_str()), (400, Some("method")));
    let (code, res) = api
        .post(
            "/api/v1/rollbacks",
            Some(OPERATOR),
            json!({"agent": "GL-002", "reason": "x", "extra": 1}),
        )
        .await;
    assert_eq!(code, 400, "{res}");
    assert_eq!(
        api.post(
            "/api/v1/rollbacks",
            Some(OPERATOR),
            json!({"agent": "GL-404", "reason": "x"})
        )
        .await
        .0,
        404
    );
    let (code, res) = api
        .post("/api/v1/rollbacks", Some(OPERATOR), req.clone())
        .await;
    assert_eq!(code, 201, "{res}");
    assert_eq!(res["state"], "rolling_back");
    assert_eq!(res["requested_by"], "alice");
    let id = res["id"].as_str().unwrap().to_string();
    assert_eq!(api.wake.recv().await, Some(Wake::Incident(id.clone())));
    assert_eq!(
        api.post("/api/v1/rollbacks", Some(OPERATOR), req.clone())
            .await
            .0,
        409,
        "one at a time per agent"
    );
    let audit = api.store.audit_log(Some(&id), 10).await.unwrap();
    assert_eq!(
        (audit[0].actor.as_str(), audit[0].action.as_str()),
        ("alice", "rollback.trigger")
    );
    // pause wins
    assert_eq!(
        api.post(
            "/api/v1/agents/GL-009/pause",
            Some(OPERATOR),
            json!({"reason": "freeze"})
        )
        .await
        .0,
        200
    );
    let (code, res) = api
        .post(
            "/api/v1/rollbacks",
            Some(OPERATOR),
            json!({"agent": "GL-009", "reason": "x"}),
        )
        .await;
    assert_eq!(code, 423, "{res}");
    let (_, agents) = api.get("/api/v1/agents", Some(VIEWER)).await;
    let gl009 = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "GL-009")
        .unwrap();
    assert_eq!(gl009["paused"]["paused_by"], "alice");
    assert_eq!(
        api.post("/api/v1/agents/GL-009/resume", Some(OPERATOR), json!({}))
            .await
            .0,
        200
    );
    assert_eq!(
        api.post(
            "/api/v1/pause",
            Some(OPERATOR),
            json!({"reason": "incident"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        api.post(
            "/api/v1/rollbacks",
            Some(OPERATOR),
            json!({"agent": "GL-006", "reason": "x"})
        )
        .await
        .0,
        423,
        "global pause"
    );
    assert_eq!(
        api.post("/api/v1/resume", Some(VIEWER), json!({})).await.0,
        403
    );
    assert_eq!(
        api.post("/api/v1/resume", Some(OPERATOR), json!({}))
            .await
            .0,
        200
    );
    let (code, list) = api
        .get("/api/v1/rollbacks?agent=GL-002", Some(VIEWER))
        .await;
    assert_eq!(
        (code, list["rollbacks"].as_array().unwrap().len()),
        (200, 1)
    );
    let (code, shown) = api
        .get(&format!("/api/v1/rollbacks/{id}"), Some(VIEWER))
        .await;
    assert_eq!(code, 200);
    assert_eq!(shown["timeline"][0]["to"], "rolling_back");
    assert_eq!(shown["audit"][0]["action"], "rollback.trigger");
    assert_eq!(api.get("/api/v1/rollbacks/nope", Some(VIEWER)).await.0, 404);
    assert_eq!(
        api.get("/api/v1/rollbacks?state=sideways", Some(VIEWER))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn approve_and_cancel_race_fails_cleanly() {
    let api = start().await;
    let new = NewIncident {
        agent: "GL-008".into(),
        namespace: "greenlang-gl008".into(),
        workload: "steam-trap-inspector".into(),
        revision: Some(43),
        from_image: None,
        row: Some("sev2-error-rate".into()),
        severity: Some("Severity 2".into()),
        method: Some("standard".into()),
        trigger: Trigger::Automatic,
        requested_by: None,
        reason: "error 30%".into(),
        decision: json!({"decision": "await_approval"}),
        dry_run: false,
        vars: BTreeMap::new(),
        deploy_at: None,
    };
    api.runs("GL-008", 43, Utc::now());
    // the evaluation loop reads the alert-driven "always" guard: no migration alert
    api.latest
        .write()
        .unwrap()
        .set("GL-008", "irreversible_migration", Utc::now(), Some(0.0));
    let inc = api
        .store
        .create_incident(&new, Event::RequestApproval, Utc::now(), &[], None)
        .await
        .unwrap();
    let path = |a: &str| format!("/api/v1/rollbacks/{}/{a}", inc.id);
    assert_eq!(
        api.post(&path("approve"), Some(VIEWER), json!({})).await.0,
        403
    );
    let (code, res) = api
        .post(
            &path("cancel"),
            Some(OPERATOR),
            json!({"reason": "false alarm"}),
        )
        .await;
    assert_eq!((code, res["state"].as_str()), (200, Some("cancelled")));
    let (code, res) = api
        .post(&path("approve"), Some(OPERATOR), json!({"reason": "go"}))
        .await;
    assert_eq!(code, 409, "{res}");
    assert!(
        res["error"].as_str().unwrap().contains("cancelled"),
        "{res}"
    );
    assert_eq!(
        api.store.incident(&inc.id).await.unwrap().unwrap().state,
        State::Cancelled
    );
    // two approvals at once: exactly one wins
    let inc2 = api
        .store
        .create_incident(&new, Event::RequestApproval, Utc::now(), &[], None)
        .await
        .unwrap();
    let p2 = format!("/api/v1/rollbacks/{}/approve", inc2.id);
    let (a, b) = tokio::join!(
        api.post(&p2, Some(OPERATOR), json!({})),
        api.post(&p2, Some(OPERATOR), json!({}))
    );
    let mut codes = [a.0, b.0];
    codes.sort();
    assert_eq!(codes, [200, 409]);
    let actions: Vec<String> = api
        .store
        .audit_log(Some(&inc2.id), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        ["rollback.approve"],
        "only the winning approval is audited"
    );
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let api = start().await;
    assert_eq!(
        api.http
            .get(format!("{}/healthz", api.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        api.http
            .get(format!("{}/readyz", api.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (code, doc) = api.get("/api/v1/openapi.json", None).await;
    assert_eq!(code, 200);
    // tests/openapi.rs validates it and exercises every operation it documents
    assert_eq!(doc["openapi"], "3.1.0");
    let text = api
        .http
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // OpenMetrics (families without a series yet are not listed)
    assert!(text.contains("# TYPE rollbackd_incidents gauge"));
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("rollbackd_incidents{state=\"resolved\"} 0"));
}

/// Without a signing secret no press can be verified: the endpoint refuses every one and
/// says what to configure (fail safe), and no operator token opens it.
#[tokio::test]
async fn slack_presses_are_refused_without_a_signing_secret() {
    let api = start().await;
    let res = api
        .http
        .post(format!("{}/api/v1/slack/interactions", api.url))
        .bearer_auth(OPERATOR)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("payload=%7B%7D")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("slack_signing_secret"),
        "{body}"
    );
}

/// Issue 12 item 11: webhook URLs are secrets. Rows queued before target names replaced
/// them still hold the URL; the API shows viewers only the target's name.
#[tokio::test]
async fn an_incident_never_shows_a_webhook_url_to_viewers() {
    let api = start().await;
    let new = NewIncident {
        agent: "GL-002".into(),
        namespace: "greenlang".into(),
        workload: "gl-002-boiler-efficiency".into(),
        revision: Some(7),
        from_image: None,
        row: Some("p0-error-rate".into()),
        severity: Some("P0".into()),
        method: Some("quick".into()),
        trigger: Trigger::Automatic,
        requested_by: None,
        reason: "error 60%".into(),
        decision: json!({"decision": "rollback"}),
        dry_run: false,
        vars: BTreeMap::new(),
        deploy_at: None,
    };
    let slack_url = "https://hooks.slack.com/services/T0/B0/SECRETslack";
    let hook_url = "https://hooks.example/SECREThook?token=SECRET";
    let message = json!({"incident_id": "x", "agent_id": "GL-002", "agent_name": "B",
        "stage": "initiated", "severity": "P0", "text": "ROLLBACK INITIATED", "fields": {}});
    let legacy = [
        rollbackd::store::NewOutbox {
            target_key: format!("slack_webhook:{slack_url}"),
            target: json!({"kind": "slack_webhook", "url": slack_url}),
            message: message.clone(),
        },
        rollbackd::store::NewOutbox {
            target_key: format!("webhook:{hook_url}"),
            target: json!({"kind": "webhook", "url": hook_url}),
            message,
        },
    ];
    let inc = api
        .store
        .create_incident(&new, Event::RequestApproval, Utc::now(), &legacy, None)
        .await
        .unwrap();
    let (code, shown) = api
        .get(&format!("/api/v1/rollbacks/{}", inc.id), Some(VIEWER))
        .await;
    assert_eq!(code, 200);
    let text = shown.to_string();
    assert!(!text.contains("SECRET"), "{text}");
    let targets: Vec<&str> = shown["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["slack_webhook:slack-webhook", "webhook:webhook"]);
}

/// Issue 12 item 11: a webhook without credentials accepts nobody unless the configuration
/// says, explicitly, that anyone may post alerts.
#[tokio::test]
async fn a_webhook_without_credentials_accepts_alerts_only_when_explicitly_open() {
    let body = payload(vec![alert("GL-002", "firing", "open-1")]);
    let closed = start_with(WebhookAuth::default()).await;
    let (code, answer) = closed.post("/api/v1/alerts", None, body.clone()).await;
    assert_eq!(code, 403, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("[webhook]"),
        "{answer}"
    );
    assert!(
        closed
            .store
            .alerts_since(None, chrono::DateTime::UNIX_EPOCH)
            .await
            .unwrap()
            .is_empty()
    );
    let open = start_with(WebhookAuth {
        allow_unauthenticated: true,
        ..WebhookAuth::default()
    })
    .await;
    assert_eq!(open.post("/api/v1/alerts", None, body).await.0, 200);
}

/// Issue 12 item 9: a critical task that stopped fails the liveness probe, naming it.
#[tokio::test]
async fn healthz_fails_naming_a_stopped_task() {
    let api = start().await;
    let get = || async {
        let res = api
            .http
            .get(format!("{}/healthz", api.url))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    };
    assert_eq!(get().await, (200, "ok".to_string()));
    api.tasks.stopped("evaluation", "panicked: boom");
    let (code, body) = get().await;
    assert_eq!(code, 503);
    assert!(body.contains("evaluation"), "{body}");
    assert!(body.contains("panicked: boom"), "{body}");
}

/// Issue 12 item 15: the API's wake channel is bounded. With the daemon not draining it,
/// requests still answer and the wakes that did not fit are counted, not queued forever.
#[tokio::test]
async fn a_full_wake_channel_drops_and_counts_instead_of_growing() {
    let api = start().await;
    for _ in 0..WAKE_CAPACITY + 3 {
        assert_eq!(
            api.post("/api/v1/pause", Some(OPERATOR), json!({"reason": "freeze"}))
                .await
                .0,
            200
        );
    }
    let text = api
        .http
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("rollbackd_channel_dropped_total{channel=\"wake\"} 3"),
        "{text}"
    );
}

fn gl008(revision: Option<u64>) -> NewIncident {
    NewIncident {
        agent: "GL-008".into(),
        namespace: "greenlang-gl008".into(),
        workload: "steam-trap-inspector".into(),
        revision,
        from_image: None,
        row: Some("sev2-error-rate".into()),
        severity: Some("Severity 2".into()),
        method: Some("standard".into()),
        trigger: Trigger::Automatic,
        requested_by: None,
        reason: "error 30%".into(),
        decision: json!({"decision": "await_approval"}),
        dry_run: false,
        vars: BTreeMap::new(),
        deploy_at: None,
    }
}

#[tokio::test]
async fn an_open_incident_is_found_among_all_of_the_agents_incidents() {
    let api = start().await;
    let t0 = Utc::now() - chrono::TimeDelta::hours(2);
    let open = api
        .store
        .create_incident(&gl008(None), Event::RequestApproval, t0, &[], None)
        .await
        .unwrap();
    // 60 newer incidents of the same agent, all finished
    for i in 0..60 {
        let at = t0 + chrono::TimeDelta::seconds(i + 1);
        let done = api
            .store
            .create_incident(&gl008(Some(100 + i as u64)), Event::Block, at, &[], None)
            .await
            .unwrap();
        api.store
            .transition(&rollbackd::store::Transition::new(
                &done.id,
                Event::Cancel,
                at,
                "x",
            ))
            .await
            .unwrap();
    }
    let (code, res) = api
        .post(
            "/api/v1/rollbacks",
            Some(OPERATOR),
            json!({"agent": "GL-008", "reason": "error spike"}),
        )
        .await;
    assert_eq!(code, 409, "{res}");
    assert!(
        res["error"].as_str().unwrap().contains(&open.id),
        "names the open incident: {res}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_triggers_for_one_deploy_open_one_incident() {
    let api = start().await;
    let req = json!({"agent": "GL-002", "method": "quick", "reason": "error spike"});
    let results = futures::future::join_all(
        (0..8).map(|_| api.post("/api/v1/rollbacks", Some(OPERATOR), req.clone())),
    )
    .await;
    let mut codes: Vec<u16> = results.iter().map(|r| r.0).collect();
    codes.sort();
    assert_eq!(
        codes,
        [201, 409, 409, 409, 409, 409, 409, 409],
        "{results:?}"
    );
    let open = api
        .store
        .incidents(&rollbackd::store::IncidentFilter {
            agent: Some("GL-002".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
}

#[tokio::test]
async fn the_list_limit_is_range_checked() {
    let api = start().await;
    for bad in ["0", "1001", "-1", "lots"] {
        let (code, res) = api
            .get(&format!("/api/v1/rollbacks?limit={bad}"), Some(VIEWER))
            .await;
        assert_eq!(
            (code, res["field"].as_str()),
            (400, Some("limit")),
            "limit={bad}: {res}"
        );
    }
    let (code, res) = api.get("/api/v1/rollbacks?limit=1000", Some(VIEWER)).await;
    assert_eq!(code, 200, "{res}");
}

fn gl001_blocked(revision: u64, deploy_at: chrono::DateTime<Utc>) -> NewIncident {
    NewIncident {
        agent: "GL-001".into(),
        namespace: "greenlang".into(),
        workload: "gl-001-process-heat-orchestrator".into(),
        revision: Some(revision),
        from_image: None,
        row: None,
        severity: Some("Severity 2".into()),
        method: Some("emergency".into()),
        trigger: Trigger::Automatic,
        requested_by: None,
        reason: "heat optimization errors — blocked: guard life-safety-heat holds".into(),
        decision: json!({"decision": "blocked", "evidence": {"blocked_by": "life-safety-heat"}}),
        dry_run: false,
        vars: BTreeMap::new(),
        deploy_at: Some(deploy_at),
    }
}

#[tokio::test]
async fn an_always_guard_cannot_be_approved_away() {
    let api = start().await;
    let now = Utc::now();
    api.runs("GL-001", 5, now - chrono::TimeDelta::minutes(10));
    let inc = api
        .store
        .create_incident(
            &gl001_blocked(5, now - chrono::TimeDelta::minutes(10)),
            Event::Block,
            now,
            &[],
            None,
        )
        .await
        .unwrap();
    let approve = format!("/api/v1/rollbacks/{}/approve", inc.id);
    // no reading of backup heat at all: the life-safety guard fails safe
    let (code, res) = api
        .post(&approve, Some(OPERATOR), json!({"reason": "I know"}))
        .await;
    assert_eq!(code, 409, "{res}");
    assert!(
        res["error"]
            .as_str()
            .unwrap()
            .contains("life-safety-heat cannot be evaluated"),
        "{res}"
    );
    // backup heat reads 0: the guard holds, with its runbook sentence
    api.latest
        .write()
        .unwrap()
        .set("GL-001", "backup_heat_available", Utc::now(), Some(0.0));
    let (code, res) = api
        .post(&approve, Some(OPERATOR), json!({"reason": "I know"}))
        .await;
    assert_eq!(code, 409, "{res}");
    let error = res["error"].as_str().unwrap();
    assert!(
        error.contains("guard life-safety-heat holds: Never rollback if it will cause heat loss to life-safety systems"),
        "{res}"
    );
    assert_eq!(
        api.store.incident(&inc.id).await.unwrap().unwrap().state,
        State::Blocked,
        "nothing changed"
    );
    let refusals: Vec<(String, String)> = api
        .store
        .audit_log(Some(&inc.id), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.actor, e.action))
        .collect();
    assert_eq!(
        refusals,
        [
            ("alice".to_string(), "rollback.approve_refused".to_string()),
            ("alice".to_string(), "rollback.approve_refused".to_string())
        ]
    );
    // backup heat confirmed: the human may proceed (the other guards are `unattended`)
    api.latest
        .write()
        .unwrap()
        .set("GL-001", "backup_heat_available", Utc::now(), Some(1.0));
    let (code, res) = api.post(&approve, Some(OPERATOR), json!({})).await;
    assert_eq!(
        (code, res["state"].as_str()),
        (200, Some("rolling_back")),
        "{res}"
    );
}

#[tokio::test]
async fn approving_a_replaced_deploy_supersedes_it_instead_of_rolling_back_the_fix() {
    let api = start().await;
    let new = gl008(Some(43));
    let inc = api
        .store
        .create_incident(&new, Event::RequestApproval, Utc::now(), &[], None)
        .await
        .unwrap();
    let approve = format!("/api/v1/rollbacks/{}/approve", inc.id);
    // the daemon has not read the agent's revision yet: no approval on a guess
    let (code, res) = api.post(&approve, Some(OPERATOR), json!({})).await;
    assert_eq!(code, 409, "{res}");
    assert_eq!(
        api.store.incident(&inc.id).await.unwrap().unwrap().state,
        State::AwaitingApproval
    );
    // a fix-forward deploy (revision 44) landed since the request
    api.runs("GL-008", 44, Utc::now());
    let (code, res) = api
        .post(
            &approve,
            Some(OPERATOR),
            json!({"reason": "yesterday's request"}),
        )
        .await;
    assert_eq!(code, 409, "{res}");
    assert!(
        res["error"]
            .as_str()
            .unwrap()
            .contains("deploy revision 43 was replaced by revision 44 at "),
        "{res}"
    );
    assert_eq!(
        api.store.incident(&inc.id).await.unwrap().unwrap().state,
        State::Superseded
    );
    let audit = api.store.audit_log(Some(&inc.id), 10).await.unwrap();
    assert_eq!(audit[0].action, "rollback.supersede");
    assert!(audit[0].reason.contains("replaced by revision 44"));
}

#[tokio::test]
async fn approving_past_fix_forward_after_supersedes() {
    let api = start().await;
    let deployed = Utc::now() - chrono::TimeDelta::hours(5);
    api.runs("GL-001", 5, deployed);
    api.latest
        .write()
        .unwrap()
        .set("GL-001", "backup_heat_available", Utc::now(), Some(1.0));
    let inc = api
        .store
        .create_incident(
            &gl001_blocked(5, deployed),
            Event::Block,
            Utc::now(),
            &[],
            None,
        )
        .await
        .unwrap();
    let (code, res) = api
        .post(
            &format!("/api/v1/rollbacks/{}/approve", inc.id),
            Some(OPERATOR),
            json!({}),
        )
        .await;
    assert_eq!(code, 409, "{res}");
    assert!(
        res["error"]
            .as_str()
            .unwrap()
            .contains("past fix_forward_after 4h: fix forward"),
        "{res}"
    );
    assert_eq!(
        api.store.incident(&inc.id).await.unwrap().unwrap().state,
        State::Superseded
    );
}

#[tokio::test]
async fn approving_a_rollback_in_flight_changes_nothing_even_after_a_new_revision() {
    let api = start().await;
    let inc = api
        .store
        .create_incident(&gl008(Some(43)), Event::Start, Utc::now(), &[], None)
        .await
        .unwrap();
    // the rollback itself made a new revision
    api.runs("GL-008", 44, Utc::now());
    let (code, res) = api
        .post(
            &format!("/api/v1/rollbacks/{}/approve", inc.id),
            Some(OPERATOR),
            json!({}),
        )
        .await;
    assert_eq!(code, 409, "{res}");
    assert!(
        res["error"].as_str().unwrap().contains("is rolling_back"),
        "{res}"
    );
    assert_eq!(
        api.store.incident(&inc.id).await.unwrap().unwrap().state,
        State::RollingBack
    );
}

/// Issue 12 item 11: approve checks who asks before it reads the store, so an anonymous
/// caller cannot tell which incident ids exist.
#[tokio::test]
async fn approve_checks_the_caller_before_it_looks_the_incident_up() {
    let api = start().await;
    for (token, want) in [(None, 401), (Some(VIEWER), 403), (Some(OPERATOR), 404)] {
        let (code, res) = api
            .post(
                "/api/v1/rollbacks/no-such-incident/approve",
                token,
                json!({}),
            )
            .await;
        assert_eq!(code, want, "{token:?}: {res}");
    }
}

/// Issue 12 item 6, for the other click: a manual rollback of GL-001 while backup heat is
/// not confirmed is refused by the life-safety guard, with its sentence, and audited; with
/// backup heat confirmed it goes ahead.
#[tokio::test]
async fn a_manual_rollback_cannot_override_an_always_guard() {
    let api = start().await;
    let req = json!({"agent": "GL-001", "reason": "dashboards look bad"});
    let (code, res) = api
        .post("/api/v1/rollbacks", Some(OPERATOR), req.clone())
        .await;
    assert_eq!(code, 409, "no backup-heat reading: fail safe: {res}");
    assert!(
        res["error"]
            .as_str()
            .unwrap()
            .contains("life-safety-heat cannot be evaluated"),
        "{res}"
    );
    api.latest
        .write()
        .unwrap()
        .set("GL-001", "backup_heat_available", Utc::now(), Some(0.0));
    let (code, res) = api
        .post("/api/v1/rollbacks", Some(OPERATOR), req.clone())
        .await;
    assert_eq!(code, 409, "{res}");
    assert!(
        res["error"]
            .as_str()
            .unwrap()
            .contains("life-safety-heat holds"),
        "{res}"
    );
    let refused = api.store.audit_log(None, 10).await.unwrap();
    assert!(
        refused
            .iter()
            .any(|a| a.action == "rollback.trigger_refused" && a.actor == "alice"),
        "{refused:?}"
    );
    // a dry run changes nothing: it may still plan
    let (code, res) = api
        .post(
            "/api/v1/rollbacks",
            Some(OPERATOR),
            json!({"agent": "GL-001", "reason": "what would it do", "dry_run": true}),
        )
        .await;
    assert_eq!(code, 201, "{res}");
    api.latest
        .write()
        .unwrap()
        .set("GL-001", "backup_heat_available", Utc::now(), Some(1.0));
    let (code, res) = api
        .post(
            "/api/v1/rollbacks",
            Some(OPERATOR),
            json!({"agent": "GL-001", "reason": "dashboards look bad", "revision": 3}),
        )
        .await;
    assert!(code == 201 || code == 409, "{res}");
    assert!(
        !res["error"].as_str().unwrap_or("").contains("life-safety"),
        "{res}"
    );
}

/// Issue 12 item 12, for manual rollbacks: the incident and its "initiated" message are
/// written together.
#[tokio::test]
async fn a_manual_rollback_is_opened_with_its_initiated_message() {
    let api = start().await;
    let (code, inc) = api
        .post(
            "/api/v1/rollbacks",
            Some(OPERATOR),
            json!({"agent": "GL-002", "method": "quick", "reason": "error spike", "revision": 3}),
        )
        .await;
    assert_eq!(code, 201, "{inc}");
    let rows = api
        .store
        .outbox_for(inc["id"].as_str().unwrap())
        .await
        .unwrap();
    let initiated: Vec<_> = rows
        .iter()
        .filter(|r| r.message["stage"] == "initiated")
        .collect();
    assert_eq!(initiated.len(), 1, "{rows:?}");
    let text = initiated[0].message["text"].as_str().unwrap_or_default();
    assert!(text.contains("revision 3"), "{text}");
}

/// `GET /api/v1/whoami` names the token's owner and role (the console hides a viewer's
/// buttons with it); a bad token is 401.
#[tokio::test]
async fn whoami_names_the_token_and_its_role() {
    let api = start().await;
    assert_eq!(
        api.get("/api/v1/whoami", Some(OPERATOR)).await,
        (200, json!({"name": "alice", "role": "operator"}))
    );
    assert_eq!(
        api.get("/api/v1/whoami", Some(VIEWER)).await,
        (200, json!({"name": "grafana", "role": "viewer"}))
    );
    assert_eq!(api.get("/api/v1/whoami", Some("nope")).await.0, 401);
    assert_eq!(api.get("/api/v1/whoami", None).await.0, 401);
}

/// The console's page and assets come with their security headers; the agents answer
/// carries each signal's latest value against the rows' thresholds and the manual
/// rollback's plan; an incident carries its method's plan in words.
#[tokio::test]
async fn the_console_is_served_with_its_headers_and_the_api_gives_it_readings_and_plans() {
    let api = start().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let res = api
            .http
            .get(format!("{}{path}", api.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"));
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    api.latest
        .write()
        .unwrap()
        .set("GL-008", "error_rate", Utc::now(), Some(0.3));
    let (code, agents) = api.get("/api/v1/agents", Some(VIEWER)).await;
    assert_eq!(code, 200);
    let agent = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "GL-008")
        .unwrap();
    let error_rate = agent["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "error_rate")
        .unwrap();
    assert_eq!(error_rate["value"], 0.3);
    let sev2 = error_rate["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["row"] == "sev2-error-rate")
        .unwrap();
    assert_eq!(sev2["threshold"], ">= 0.2 and <= 0.5");
    assert_eq!(sev2["meets"], true);
    let sev3 = error_rate["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["row"] == "sev3-error-rate")
        .unwrap();
    assert_eq!(sev3["meets"], false);
    assert!(!agent["manual_plan"]["steps"].as_array().unwrap().is_empty());

    let inc = api
        .store
        .create_incident(
            &gl008(Some(2)),
            Event::RequestApproval,
            Utc::now(),
            &[],
            None,
        )
        .await
        .unwrap();
    let (code, shown) = api
        .get(&format!("/api/v1/rollbacks/{}", inc.id), Some(VIEWER))
        .await;
    assert_eq!(code, 200);
    assert_eq!(shown["plan"]["name"], inc.method.clone().unwrap());
    let texts: Vec<&str> = shown["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("deployment greenlang-gl008/steam-trap-inspector")),
        "{texts:?}"
    );
}
