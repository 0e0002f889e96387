//! Slack buttons end to end: the daemon (Kubernetes simulator, synthetic GL-002 agent,
//! direct scrapes) posts an incident awaiting approval to a local Slack stand-in, with
//! buttons; the test presses them as Slack would, with payloads it signs itself
//! (HMAC-SHA256, `v0:{timestamp}:{body}`), and checks what the daemon does: a bad signature
//! and a 6-minute-old timestamp are refused (401), a non-approver is told so in an ephemeral
//! message and nothing changes, a group approver's press is acknowledged at once (the action
//! after the acknowledgement) and rolls back, Slack's retry of it is acknowledged but not
//! applied again, the root message is updated in place without its buttons, a second press
//! hears who approved first, and Pause / Resume pause and resume the agent.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)] // the stand-ins serve several test files; this one uses part of them
mod notify_support;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use notify_support::{Receiver, Recorded, Reply, wait_until};
use rollbackd::daemon::collect::MetricSource;
use rollbackd::signals::scrape::Scraper;
use rollbackd::store::{IncidentFilter, StateStore};
use rollbackd_core::incident::State;
use rollbackd_core::policy::{Action, SlackApprovers};
use serde_json::{Value, json};
use sha2::Sha256;
use support::world::{
    World, agent, deploy_v2, undo_patches, wait_for, wait_resolved, world_custom,
};

const SECRET: &str = "test-signing-secret-0123456789abcdef";
/// Named in the row's approvers.
const APPROVER: &str = "U0APPROVER";
/// In the row's approver group, `S0ONCALL`.
const GROUPIE: &str = "U0GROUPIE";
/// Nobody's approver.
const STRANGER: &str = "U0STRANGER";
const ROOT_TS: &str = "1700000000.000100";
const CHANNEL: &str = "C0GL002";
/// How long the stand-in takes over `chat.update` while `slow` is set.
const SLOW: Duration = Duration::from_secs(4);

/// The Slack stand-in: Web API methods under `/api`, response URLs under `/respond`.
fn slack_script(slow: Arc<AtomicBool>) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync {
    move |r, nth| match r.path.as_str() {
        "/api/chat.postMessage" => {
            let ts = if nth == 0 {
                ROOT_TS.to_string()
            } else {
                format!("1700000000.{:06}", 200 + nth)
            };
            Reply::json(200, json!({"ok": true, "channel": CHANNEL, "ts": ts}))
        }
        "/api/chat.update" => {
            let reply = Reply::json(200, json!({"ok": true, "channel": CHANNEL, "ts": ROOT_TS}));
            if slow.load(Ordering::SeqCst) {
                reply.after(SLOW)
            } else {
                reply
            }
        }
        "/api/usergroups.users.list" if r.body.contains("usergroup=S0ONCALL") => {
            Reply::json(200, json!({"ok": true, "users": [GROUPIE, "U0SOMEONE"]}))
        }
        "/api/usergroups.users.list" => {
            Reply::json(200, json!({"ok": false, "error": "no_such_subteam"}))
        }
        "/api/chat.postEphemeral" => Reply::json(200, json!({"ok": true, "message_ts": "1.1"})),
        p if p.starts_with("/respond/") => Reply::json(200, json!({"ok": true})),
        _ => Reply::json(404, json!({"ok": false, "error": "unknown_method"})),
    }
}

/// `v0=<hex>`, as Slack signs.
fn sign(timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v0={hex}")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The form body of a press of `action_id` by `user` on the root message (whose blocks are
/// `blocks`), as Slack sends it.
fn press_body(
    slack: &Receiver,
    user: &str,
    action_id: &str,
    incident: &str,
    blocks: &Value,
) -> String {
    press_body_answered_at(slack, user, action_id, incident, blocks, None)
}

/// As [`press_body`], with the `response_url` at `respond_at` instead of the stand-in.
fn press_body_answered_at(
    slack: &Receiver,
    user: &str,
    action_id: &str,
    incident: &str,
    blocks: &Value,
    respond_at: Option<&str>,
) -> String {
    let action_ts = format!("{}.{:06}", now(), rand_micros());
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": "T0"},
        "api_app_id": "A0", "token": "deprecated", "trigger_id": format!("{action_ts}.abc"),
        "team": {"id": "T0", "domain": "greenlang"},
        "container": {"type": "message", "message_ts": ROOT_TS, "channel_id": CHANNEL, "is_ephemeral": false},
        "channel": {"id": CHANNEL, "name": "gl-002-incidents"},
        "message": {"type": "message", "ts": ROOT_TS, "text": "GL-002", "blocks": blocks},
        "response_url": format!("{}/respond/T0/{action_ts}/xyz", respond_at.unwrap_or(&slack.url)),
        "actions": [{"type": "button", "action_id": action_id, "block_id": "rollbackd_actions",
                     "value": json!({"incident": incident, "agent": "GL-002"}).to_string(),
                     "action_ts": action_ts}],
    });
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}

/// A different sub-second part per press (two presses in one second are two presses).
fn rand_micros() -> u32 {
    use std::sync::atomic::AtomicU32;
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::SeqCst)
}

/// Posts a press with `timestamp` and `signature`; the status and how long the answer took.
async fn post(
    w: &World,
    body: &str,
    timestamp: i64,
    signature: &str,
    retry: Option<&str>,
) -> (u16, String, Duration) {
    let mut req = reqwest::Client::new()
        .post(format!(
            "http://{}/api/v1/slack/interactions",
            w.daemon.api_addr
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", timestamp.to_string())
        .header("x-slack-signature", signature)
        .body(body.to_string());
    if let Some(n) = retry {
        req = req
            .header("x-slack-retry-num", n)
            .header("x-slack-retry-reason", "http_timeout");
    }
    let started = Instant::now();
    let res = req.send().await.unwrap();
    let code = res.status().as_u16();
    let text = res.text().await.unwrap();
    (code, text, started.elapsed())
}

/// Signs `body` now and posts it.
async fn press(w: &World, body: &str, retry: Option<&str>) -> (u16, String, Duration) {
    let ts = now();
    post(w, body, ts, &sign(&ts.to_string(), body), retry).await
}

async fn incident_state(store: &Arc<dyn StateStore>, id: &str) -> State {
    store.incident(id).await.unwrap().unwrap().state
}

async fn audit_actions(store: &Arc<dyn StateStore>, target: &str) -> Vec<(String, String)> {
    store
        .audit_log(Some(target), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.actor))
        .collect()
}

/// The ephemeral answers (response URL posts) so far, in order.
fn ephemerals(slack: &Receiver) -> Vec<Value> {
    slack
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/respond/"))
        .filter_map(|r| r.json)
        .collect()
}

fn action_ids(blocks: &Value) -> Vec<String> {
    blocks
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .map(|e| e["action_id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The daemon and the Slack stand-in, with a GL-002 incident awaiting approval (its P0 row
/// made an approval row for the test); the stand-in, the world, the incident's id and the
/// root message's blocks (checked to carry Approve, Reject and Pause).
async fn awaiting_approval(slow: Arc<AtomicBool>) -> (Receiver, World, String, Value) {
    let slack = Receiver::start(slack_script(slow)).await;
    let api_url = format!("{}/api", slack.url);
    let w = world_custom(
        agent().await,
        MetricSource::scrape(Scraper::new(Duration::from_secs(1)).unwrap()),
        |p| {
            let matrix = Arc::make_mut(&mut p.matrix);
            let row = matrix.iter_mut().find(|r| r.id == "p0-error-rate").unwrap();
            row.action = Action::RollbackAfterApproval;
            row.slack_approvers = Some(SlackApprovers {
                users: vec![APPROVER.into()],
                groups: vec!["S0ONCALL".into()],
            });
            // agent-wide (pause, resume): the approver, and a group Slack cannot list
            p.agent.slack_approvers = SlackApprovers {
                users: vec![APPROVER.into()],
                groups: vec!["S0BROKEN".into()],
            };
        },
        |o| {
            o.channels.slack_api = true;
            o.notifier.slack_api_url = api_url;
            o.notifier.slack_token = Some("xoxb-test".into());
            o.notifier.slack_signing_secret = Some(SECRET.into());
        },
    )
    .await;
    let store = w.daemon.store.clone();
    deploy_v2(&w, rollbackd_core::engine::DecisionKind::None).await;
    w.agent.handle().set_error_ratio(0.6).unwrap();
    let incident = wait_for(
        "an incident awaiting approval",
        Duration::from_secs(20),
        async || {
            let inc = store
                .incidents(&IncidentFilter::default())
                .await
                .unwrap()
                .into_iter()
                .next()?;
            (inc.state == State::AwaitingApproval).then_some(inc)
        },
    )
    .await;
    wait_until(Duration::from_secs(10), "the root message", || {
        !slack.requests_to("/api/chat.postMessage").is_empty()
    })
    .await;
    let root = slack.requests_to("/api/chat.postMessage")[0]
        .json
        .clone()
        .unwrap();
    assert_eq!(
        action_ids(&root["blocks"]),
        ["rollbackd_approve", "rollbackd_reject", "rollbackd_pause"],
        "{root}"
    );
    let blocks = root["blocks"].clone();
    (slack, w, incident.id, blocks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_buttons_approve_refuse_dedupe_and_update_the_message_in_place() {
    let slow = Arc::new(AtomicBool::new(false));
    let (slack, w, id, blocks) = awaiting_approval(slow.clone()).await;
    let store = w.daemon.store.clone();

    // a bad signature and a 6-minute-old timestamp are refused before anything is read
    let body = press_body(&slack, APPROVER, "rollbackd_approve", &id, &blocks);
    let ts = now();
    let forged = sign(&ts.to_string(), &body.replace("U0APPROVER", "U0APPROVES"));
    let (code, text, _) = post(&w, &body, ts, &forged, None).await;
    assert_eq!(code, 401, "{text}");
    assert!(text.contains("does not match"), "{text}");
    let old = now() - 6 * 60;
    let (code, text, _) = post(&w, &body, old, &sign(&old.to_string(), &body), None).await;
    assert_eq!(code, 401, "{text}");
    assert!(text.contains("replayed or delayed"), "{text}");
    let (code, text, _) = post(&w, &body, ts, "", None).await;
    assert_eq!(code, 401, "{text}");

    // a non-approver is told, nothing changes, the refusal is audited
    let stranger = press_body(&slack, STRANGER, "rollbackd_approve", &id, &blocks);
    let (code, text, _) = press(&w, &stranger, None).await;
    assert_eq!((code, text.as_str()), (200, ""));
    wait_until(Duration::from_secs(10), "the stranger's refusal", || {
        !ephemerals(&slack).is_empty()
    })
    .await;
    let refusal = &ephemerals(&slack)[0];
    assert_eq!(refusal["response_type"], "ephemeral");
    assert_eq!(refusal["replace_original"], false);
    assert_eq!(
        refusal["text"],
        "You are not an approver for GL-002 P0: nothing was changed."
    );
    assert_eq!(incident_state(&store, &id).await, State::AwaitingApproval);
    assert!(undo_patches(&w.sim).is_empty());
    assert!(
        slack.requests_to("/api/chat.update").is_empty(),
        "the message is untouched"
    );
    assert_eq!(
        audit_actions(&store, &id).await,
        [(
            "slack.refused".to_string(),
            "slack:U0STRANGER (@u0stranger)".to_string()
        )]
    );

    // a member of the approvers' group presses while Slack is slow: the acknowledgement
    // comes at once, the action after it
    slow.store(true, Ordering::SeqCst);
    let updates_before = slack.requests_to("/api/chat.update").len();
    let approve = press_body(&slack, GROUPIE, "rollbackd_approve", &id, &blocks);
    let (code, text, took) = press(&w, &approve, None).await;
    println!(
        "slack: approve press acknowledged in {:.1} ms",
        took.as_secs_f64() * 1e3
    );
    assert_eq!((code, text.as_str()), (200, ""));
    assert!(took < Duration::from_secs(3), "ack took {took:?}");
    // Slack did not see the ack in time (say) and sends the same press again
    let (code, text, took) = press(&w, &approve, Some("1")).await;
    assert_eq!((code, text.as_str()), (200, ""));
    assert!(took < Duration::from_secs(3), "retry ack took {took:?}");
    assert_eq!(
        w.daemon
            .metrics
            .counter("rollbackd_slack_interactions_total", &["repeat_ignored"]),
        1.0,
        "the retry is recognised at the door"
    );

    let patched = wait_for("the rollback patch", Duration::from_secs(15), async || {
        undo_patches(&w.sim).first().copied()
    })
    .await;
    assert!(patched.elapsed() < Duration::from_secs(15));
    w.agent.handle().set_error_ratio(0.0).unwrap();
    // the root message is updated in place: same channel and ts, no buttons, who and when
    let update = wait_for(
        "the approval's chat.update",
        Duration::from_secs(15),
        async || {
            slack.requests_to("/api/chat.update")[updates_before..]
                .iter()
                .filter_map(|r| r.json.clone())
                .find(|j| {
                    j["text"]
                        .as_str()
                        .unwrap_or("")
                        .contains("Rollback approved by")
                })
        },
    )
    .await;
    slow.store(false, Ordering::SeqCst);
    assert_eq!(
        (update["channel"].as_str(), update["ts"].as_str()),
        (Some(CHANNEL), Some(ROOT_TS))
    );
    assert!(
        update["text"]
            .as_str()
            .unwrap()
            .starts_with("Rollback approved by <@U0GROUPIE> at "),
        "{update}"
    );
    assert!(
        action_ids(&update["blocks"]).is_empty(),
        "buttons gone: {update}"
    );
    assert_eq!(
        update["blocks"][0], blocks[0],
        "the evidence stays: {update}"
    );

    let resolved = wait_resolved(
        &w,
        "the approved rollback to resolve",
        Duration::from_secs(40),
    )
    .await;
    assert_eq!(resolved.id, id);
    let path: Vec<State> = store
        .transitions(&id)
        .await
        .unwrap()
        .iter()
        .map(|t| t.to)
        .collect();
    assert_eq!(
        path,
        [
            State::AwaitingApproval,
            State::RollingBack,
            State::Verifying,
            State::Monitoring,
            State::Resolved
        ]
    );
    assert_eq!(
        undo_patches(&w.sim).len(),
        1,
        "approved once, rolled back once"
    );
    let approvals: Vec<_> = audit_actions(&store, &id)
        .await
        .into_iter()
        .filter(|(action, _)| action == "rollback.approve")
        .collect();
    assert_eq!(
        approvals,
        [(
            "rollback.approve".to_string(),
            "slack:U0GROUPIE (@u0groupie)".to_string()
        )],
        "the retry was not applied"
    );
    let groups = slack.requests_to("/api/usergroups.users.list");
    assert_eq!(
        groups.len(),
        1,
        "membership asked once, then cached: {groups:?}"
    );
    assert_eq!(groups[0].header("authorization"), Some("Bearer xoxb-test"));

    // a later press hears who decided first
    let late = press_body(&slack, APPROVER, "rollbackd_approve", &id, &blocks);
    assert_eq!(press(&w, &late, None).await.0, 200);
    let answer = wait_for(
        "the late press's answer",
        Duration::from_secs(10),
        async || ephemerals(&slack).get(1).cloned(),
    )
    .await;
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "Incident {id} was already approved by slack:U0GROUPIE (@u0groupie) at "
        )),
        "{text}"
    );

    // Pause and Resume act on the agent, with the agent's approvers
    let pause = press_body(&slack, GROUPIE, "rollbackd_pause", &id, &blocks);
    assert_eq!(press(&w, &pause, None).await.0, 200);
    let answer = wait_for("the pause refusal", Duration::from_secs(10), async || {
        ephemerals(&slack).get(2).cloned()
    })
    .await;
    // the agent's list names a group Slack cannot list: refused, saying why (fail safe)
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.starts_with("rollbackd could not check that you are an approver for GL-002 (")
            && text.contains("S0BROKEN")
            && text.contains("no_such_subteam")
            && text.ends_with("nothing was changed."),
        "{text}"
    );
    assert!(store.paused("GL-002").await.unwrap().is_none());
    let pause = press_body(&slack, APPROVER, "rollbackd_pause", &id, &blocks);
    assert_eq!(press(&w, &pause, None).await.0, 200);
    let paused = wait_for("the pause", Duration::from_secs(10), async || {
        store.paused("GL-002").await.unwrap()
    })
    .await;
    assert_eq!(paused.paused_by, "slack:U0APPROVER (@u0approver)");
    let update = wait_for(
        "the pause's chat.update",
        Duration::from_secs(10),
        async || {
            slack
                .requests_to("/api/chat.update")
                .iter()
                .filter_map(|r| r.json.clone())
                .find(|j| {
                    j["text"]
                        .as_str()
                        .unwrap_or("")
                        .contains("Automation for GL-002 paused by <@U0APPROVER>")
                })
        },
    )
    .await;
    assert_eq!(action_ids(&update["blocks"]), ["rollbackd_resume"]);
    let resume = press_body(&slack, APPROVER, "rollbackd_resume", &id, &update["blocks"]);
    assert_eq!(press(&w, &resume, None).await.0, 200);
    wait_for("the resume", Duration::from_secs(10), async || {
        store
            .paused("GL-002")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    // the last press's task counts its outcome once Slack has its update
    let expected = [
        ("bad_signature", 2),
        ("stale", 1),
        ("repeat_ignored", 1),
        ("accepted", 6),
        ("applied", 3),
        ("refused", 3),
    ];
    wait_for("every press counted", Duration::from_secs(10), async || {
        let metrics = &w.daemon.metrics;
        expected
            .iter()
            .all(|(outcome, n)| {
                metrics.counter("rollbackd_slack_interactions_total", &[outcome]) == f64::from(*n)
            })
            .then_some(())
    })
    .await;
    w.daemon.shutdown().await;
    w.sim.shutdown().await;
}

/// Reject is the API's cancel: the incident ends cancelled, nothing is rolled back, the
/// message says who rejected it; an approval after it hears so. A refusal whose response
/// URL is not Slack's goes through `chat.postEphemeral`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_cancels_without_rolling_back() {
    let (slack, w, id, blocks) = awaiting_approval(Arc::default()).await;
    let store = w.daemon.store.clone();
    // a response URL pointing elsewhere than Slack (or its stand-in) is never posted to:
    // the refusal goes through chat.postEphemeral instead
    let elsewhere = press_body_answered_at(
        &slack,
        STRANGER,
        "rollbackd_reject",
        &id,
        &blocks,
        Some("http://127.0.0.1:9"),
    );
    assert_eq!(press(&w, &elsewhere, None).await.0, 200);
    let told = wait_for(
        "the chat.postEphemeral",
        Duration::from_secs(10),
        async || {
            slack
                .requests_to("/api/chat.postEphemeral")
                .first()
                .cloned()
        },
    )
    .await;
    assert_eq!(told.header("authorization"), Some("Bearer xoxb-test"));
    assert_eq!(
        told.json.unwrap(),
        json!({"channel": CHANNEL, "user": STRANGER,
               "text": "You are not an approver for GL-002 P0: nothing was changed."})
    );
    assert_eq!(incident_state(&store, &id).await, State::AwaitingApproval);
    let reject = press_body(&slack, APPROVER, "rollbackd_reject", &id, &blocks);
    assert_eq!(press(&w, &reject, None).await.0, 200);
    let update = wait_for(
        "the rejection's chat.update",
        Duration::from_secs(10),
        async || {
            slack
                .requests_to("/api/chat.update")
                .iter()
                .filter_map(|r| r.json.clone())
                .find(|j| {
                    j["text"]
                        .as_str()
                        .unwrap_or("")
                        .contains("Rollback rejected by <@U0APPROVER>")
                })
        },
    )
    .await;
    assert!(action_ids(&update["blocks"]).is_empty(), "{update}");
    assert_eq!(incident_state(&store, &id).await, State::Cancelled);
    let audit = audit_actions(&store, &id).await;
    assert!(
        audit.contains(&(
            "rollback.reject".to_string(),
            "slack:U0APPROVER (@u0approver)".to_string()
        )),
        "{audit:?}"
    );
    let approve = press_body(&slack, GROUPIE, "rollbackd_approve", &id, &blocks);
    assert_eq!(press(&w, &approve, None).await.0, 200);
    let answer = wait_for(
        "the late approval's answer",
        Duration::from_secs(10),
        async || ephemerals(&slack).first().cloned(),
    )
    .await;
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "Incident {id} was already rejected by slack:U0APPROVER (@u0approver) at "
        )),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(undo_patches(&w.sim).is_empty(), "nothing rolled back");
    assert_eq!(incident_state(&store, &id).await, State::Cancelled);
    w.daemon.shutdown().await;
    w.sim.shutdown().await;
}
