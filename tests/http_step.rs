//! HTTP steps against a local receiver: outside text in answers, label values in URLs,
//! and the idempotency of a resumed step (issue 12 items 10 and 15).

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, Uri};
use cluster_support::*;
use rollbackd::cluster::backup::DirBackupSink;
use rollbackd::cluster::http_step;
use rollbackd::executor::{Executor, MemoryJournal, RunContext, StepJournal, StepState};
use rollbackd_core::policy::{StepAction, WorkloadRole};

/// One request as the receiver saw it: the path with its query, and the idempotency key.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    uri: String,
    idempotency_key: Option<String>,
}

/// A receiver on 127.0.0.1 answering every request with `status` and `body`.
async fn receiver(status: u16, body: String) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let log = log.clone();
        let body = body.clone();
        async move {
            log.lock().unwrap().push(Seen {
                uri: uri.to_string(),
                idempotency_key: headers
                    .get("idempotency-key")
                    .map(|v| v.to_str().unwrap().to_string()),
            });
            (StatusCode::from_u16(status).unwrap(), body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn plant(value: &str) -> BTreeMap<String, String> {
    [("plant".to_string(), value.to_string())].into()
}

#[tokio::test]
async fn an_answer_cut_inside_a_multi_byte_character_is_reported_not_a_panic() {
    // 1999 ASCII bytes, then a 3-byte character across the 2000-byte cut
    let body = format!("{}日本語のエラー", "x".repeat(1999));
    let (url, _) = receiver(500, body).await;
    let e = http_step::http_call(
        &reqwest::Client::new(),
        "POST",
        &format!("{url}/reload"),
        None,
        200,
        &BTreeMap::new(),
        Duration::from_secs(5),
        &meta("INC-1", "reload"),
    )
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("status 500, expected 200"), "{text}");
    assert!(text.contains(&"x".repeat(1999)), "the body's start is kept");
    assert!(!text.contains('日'), "cut before the character: {text}");
}

#[tokio::test]
async fn label_values_cannot_change_the_path_or_query() {
    let (url, seen) = receiver(200, "ok".into()).await;
    let call = |value: &'static str| {
        let url = url.clone();
        async move {
            http_step::http_call(
                &reqwest::Client::new(),
                "POST",
                &format!("{url}/api/v1/plants/{{plant}}/isolate"),
                None,
                200,
                &plant(value),
                Duration::from_secs(5),
                &meta("INC-2", "isolate"),
            )
            .await
        }
    };
    call("a/../../admin?x=1").await.unwrap();
    call("north plant #2").await.unwrap();
    assert_eq!(
        seen.lock()
            .unwrap()
            .iter()
            .map(|s| s.uri.clone())
            .collect::<Vec<_>>(),
        [
            "/api/v1/plants/a%2F..%2F..%2Fadmin%3Fx%3D1/isolate",
            "/api/v1/plants/north%20plant%20%232/isolate",
        ]
    );
    // a whole segment of dots would still be read as "go up": refused before any request
    let e = call("..").await.unwrap_err();
    assert!(e.to_string().contains("{plant}"), "{e}");
    assert_eq!(seen.lock().unwrap().len(), 2, "no request for \"..\"");
}

#[tokio::test]
async fn a_resumed_http_step_is_not_resent_once_done_and_resent_with_its_key_if_unfinished() {
    let (url, seen) = receiver(200, "ok".into()).await;
    let (_sim, cluster) = start().await;
    let w = workload("gl-001", "gl-001", WorkloadRole::Primary);
    let m = method(
        "isolate",
        vec![step(
            "isolate-plant",
            &[],
            StepAction::Http {
                method: "POST".into(),
                url: format!("{url}/plants/{{plant}}/isolate"),
                body: None,
                expect_status: 200,
            },
        )],
    );
    let p = policy(vec![w], vec![m.clone()], verification());
    let mut ctx = RunContext::new("INC-H", p, "test");
    ctx.vars = plant("north");
    let dir = tempfile::tempdir().unwrap();
    let executor = Executor::new(cluster.clone(), Arc::new(DirBackupSink::new(dir.path())));

    // sent and journaled as done: a resumed run does not send it again
    let journal = MemoryJournal::new();
    let out = executor.run(&ctx, &m, &journal).await.unwrap();
    assert_eq!(out.steps[0].state, StepState::Done);
    let out = executor.run(&ctx, &m, &journal).await.unwrap();
    assert_eq!(out.steps[0].state, StepState::Done);
    assert_eq!(seen.lock().unwrap().len(), 1, "not sent twice");

    // started but not finished (the daemon died mid-request): sent again, with the same
    // key as the first attempt so the receiver can drop the duplicate
    let journal = MemoryJournal::new();
    let key = Executor::journal_key(&ctx, &m);
    journal
        .started(&key, 0, "gl-001", chrono::Utc::now())
        .await
        .unwrap();
    let out = executor.run(&ctx, &m, &journal).await.unwrap();
    assert_eq!(out.steps[0].state, StepState::Done);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(
            s.idempotency_key.as_deref(),
            Some("INC-H/isolate/0"),
            "{s:?}"
        );
    }
}
