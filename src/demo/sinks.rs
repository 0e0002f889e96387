//! Local stand-ins for Slack's Web API, Statuspage and PagerDuty's Events API, answering
//! like the real services and printing what rollbackd sends them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{patch, post};
use serde_json::{Value, json};

/// One received notification: (service, where, text).
pub type Received = Arc<Mutex<Vec<(String, String, String)>>>;

/// The sinks' base URLs: Slack's Web API, Statuspage's API, PagerDuty's enqueue endpoint.
pub struct SinkUrls {
    /// Slack Web API base.
    pub slack: String,
    /// Statuspage API base.
    pub statuspage: String,
    /// PagerDuty Events API v2 endpoint.
    pub pagerduty: String,
}

/// Starts the sinks; returns their URLs and what they received.
pub async fn start() -> std::io::Result<(SinkUrls, Received)> {
    let received: Received = Arc::new(Mutex::new(Vec::new()));
    let counter = Arc::new(AtomicU64::new(1));
    let (r1, r2, r3, r4) = (
        received.clone(),
        received.clone(),
        received.clone(),
        received.clone(),
    );
    let (r6, r7) = (received.clone(), received.clone());
    let c1 = counter.clone();
    let slack = axum::Router::new()
        .route(
            "/api/chat.postMessage",
            post(move |Json(body): Json<Value>| {
                let (r, c) = (r1.clone(), c1.clone());
                async move {
                    let thread = if body.get("thread_ts").is_some() { " (thread)" } else { "" };
                    let channel = body["channel"].as_str().unwrap_or("?").to_string();
                    if let Ok(mut r) = r.lock() {
                        r.push(("slack".into(), format!("{channel}{thread}"), body["text"].as_str().unwrap_or("").to_string()));
                    }
                    let n = c.fetch_add(1, Ordering::SeqCst);
                    Json(json!({"ok": true, "channel": "C0DEMO", "ts": format!("1700000000.{n:06}")}))
                }
            }),
        )
        .route(
            "/api/chat.update",
            post(move |Json(_body): Json<Value>| {
                let _ = &r2;
                async move { Json(json!({"ok": true})) }
            }),
        )
        // a press's answers: group membership (the demo's groups have no members), and
        // ephemeral refusals, by chat.postEphemeral or the press's response_url
        .route(
            "/api/usergroups.users.list",
            post(|| async { Json(json!({"ok": true, "users": []})) }),
        )
        .route(
            "/api/chat.postEphemeral",
            post(move |Json(body): Json<Value>| {
                let r = r6.clone();
                async move {
                    let to = format!(
                        "{} (ephemeral to {})",
                        body["channel"].as_str().unwrap_or("?"),
                        body["user"].as_str().unwrap_or("?")
                    );
                    if let Ok(mut r) = r.lock() {
                        r.push(("slack".into(), to, body["text"].as_str().unwrap_or("").to_string()));
                    }
                    Json(json!({"ok": true}))
                }
            }),
        )
        .route(
            "/respond/{*path}",
            post(move |Json(body): Json<Value>| {
                let r = r7.clone();
                async move {
                    if let Ok(mut r) = r.lock() {
                        r.push(("slack".into(), "response_url".into(), body["text"].as_str().unwrap_or("").to_string()));
                    }
                    Json(json!({"ok": true}))
                }
            }),
        );
    let c2 = counter.clone();
    let statuspage = axum::Router::new()
        .route(
            "/v1/pages/{page}/incidents",
            post(move |Path(page): Path<String>, Json(body): Json<Value>| {
                let (r, c) = (r3.clone(), c2.clone());
                async move {
                    if let Ok(mut r) = r.lock() {
                        r.push((
                            "statuspage".into(),
                            format!(
                                "{page} ({})",
                                body["incident"]["status"].as_str().unwrap_or("?")
                            ),
                            body["incident"]["name"].as_str().unwrap_or("").to_string(),
                        ));
                    }
                    (
                        StatusCode::CREATED,
                        Json(json!({"id": format!("sp-{}", c.fetch_add(1, Ordering::SeqCst))})),
                    )
                }
            }),
        )
        .route(
            "/v1/pages/{page}/incidents/{id}",
            patch(
                move |Path((page, id)): Path<(String, String)>, Json(body): Json<Value>| {
                    let r = r4.clone();
                    async move {
                        if let Ok(mut r) = r.lock() {
                            r.push((
                                "statuspage".into(),
                                format!(
                                    "{page}/{id} ({})",
                                    body["incident"]["status"].as_str().unwrap_or("?")
                                ),
                                // the public wording customers read
                                body["incident"]["body"].as_str().unwrap_or("").to_string(),
                            ));
                        }
                        Json(json!({"id": id}))
                    }
                },
            ),
        );
    let r5 = received.clone();
    let pagerduty = axum::Router::new().route(
        "/v2/enqueue",
        post(move |Json(body): Json<Value>| {
            let r = r5.clone();
            async move {
                let action = body["event_action"].as_str().unwrap_or("?").to_string();
                let severity = body["payload"]["severity"].as_str().unwrap_or("");
                if let Ok(mut r) = r.lock() {
                    r.push((
                        "pagerduty".into(),
                        format!("{action} {severity}").trim_end().to_string(),
                        body["payload"]["summary"]
                            .as_str()
                            .or(body["dedup_key"].as_str())
                            .unwrap_or("")
                            .to_string(),
                    ));
                }
                (
                    StatusCode::ACCEPTED,
                    Json(json!({"status": "success", "message": "Event processed", "dedup_key": body["dedup_key"]})),
                )
            }
        }),
    );
    let mut urls = Vec::new();
    for (app, suffix) in [
        (slack, "/api"),
        (statuspage, "/v1"),
        (pagerduty, "/v2/enqueue"),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        urls.push(format!("http://{}{suffix}", listener.local_addr()?));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    let pagerduty = urls.pop().unwrap_or_default();
    let statuspage = urls.pop().unwrap_or_default();
    let slack = urls.pop().unwrap_or_default();
    Ok((
        SinkUrls {
            slack,
            statuspage,
            pagerduty,
        },
        received,
    ))
}
