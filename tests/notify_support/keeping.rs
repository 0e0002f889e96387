//! Stand-ins that keep what they were sent and answer reads from it, as the real services
//! do: Slack (`chat.postMessage`, `chat.update`, `conversations.list`, `.history`,
//! `.replies`, with message metadata only when `include_all_metadata=true` is asked) and
//! Statuspage (incidents with their metadata: create, update, list, get). `lose` names
//! requests, as (path, nth request to that path), that are processed but answered too
//! late for the client: a delivery whose answer was lost.

// each test crate uses some of these
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Recorded, Reply};

/// Every channel name posted to maps to this ID.
pub const CHANNEL_ID: &str = "C123";

/// The `ts` Slack gives the `n`th message posted (from 1).
pub fn ts(n: usize) -> String {
    format!("1700000000.{n:06}")
}

/// How late a lost answer comes.
const LATE: Duration = Duration::from_millis(800);

fn maybe_late(reply: Reply, lose: &[(&str, usize)], r: &Recorded, nth: usize) -> Reply {
    if lose.contains(&(r.path.as_str(), nth)) {
        reply.after(LATE)
    } else {
        reply
    }
}

/// The Slack stand-in: the nth message posted gets `ts(n)`, every channel `CHANNEL_ID`;
/// the workspace's channels are those posted to by name.
pub fn slack(
    lose: &'static [(&'static str, usize)],
) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static {
    slack_in(&[], lose)
}

/// As [`slack`], in a workspace that has `channels` (names) from the start.
pub fn slack_in(
    channels: &[&str],
    lose: &'static [(&'static str, usize)],
) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static {
    let posted: Arc<Mutex<Vec<Value>>> = Arc::default();
    let names: Arc<Mutex<Vec<String>>> =
        Arc::new(Mutex::new(channels.iter().map(|c| c.to_string()).collect()));
    move |r, nth| {
        let reply = match r.path.as_str() {
            "/chat.postMessage" => {
                let body = r.json.clone().unwrap_or(Value::Null);
                if let Some(name) = body["channel"].as_str().and_then(|c| c.strip_prefix('#')) {
                    let mut names = names.lock().unwrap();
                    if !names.iter().any(|n| n == name) {
                        names.push(name.to_string());
                    }
                }
                let mut posted = posted.lock().unwrap();
                let ts = ts(posted.len() + 1);
                let mut message = json!({"ts": ts, "text": body["text"]});
                if !body["thread_ts"].is_null() {
                    message["thread_ts"] = body["thread_ts"].clone();
                }
                if !body["metadata"].is_null() {
                    message["metadata"] = body["metadata"].clone();
                }
                posted.push(message);
                Reply::json(200, json!({"ok": true, "channel": CHANNEL_ID, "ts": ts}))
            }
            "/conversations.list" => {
                let channels: Vec<Value> = names
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|n| json!({"id": CHANNEL_ID, "name": n}))
                    .collect();
                Reply::json(
                    200,
                    json!({"ok": true, "channels": channels, "response_metadata": {"next_cursor": ""}}),
                )
            }
            "/conversations.history" | "/conversations.replies" => {
                let replies = r.path == "/conversations.replies";
                let with_meta = r.query.contains("include_all_metadata=true");
                let messages: Vec<Value> = posted
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|m| m.get("thread_ts").is_some() == replies)
                    .map(|m| {
                        let mut m = m.clone();
                        if !with_meta && let Some(o) = m.as_object_mut() {
                            o.remove("metadata");
                        }
                        m
                    })
                    .collect();
                Reply::json(200, json!({"ok": true, "messages": messages}))
            }
            _ => Reply::json(200, json!({"ok": true})),
        };
        maybe_late(reply, lose, r, nth)
    }
}

/// The Statuspage stand-in for page `PAGE`: the nth incident created is `SP<n>`.
pub fn statuspage(
    lose: &'static [(&'static str, usize)],
) -> impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static {
    let incidents: Arc<Mutex<Vec<Value>>> = Arc::default();
    move |r, nth| {
        let mut all = incidents.lock().unwrap();
        let incident_of = |r: &Recorded| r.json.as_ref().map(|j| j["incident"].clone());
        let reply = match (r.method.as_str(), r.path.rsplit('/').next()) {
            ("POST", Some("incidents")) => {
                let mut incident = incident_of(r).unwrap_or(Value::Null);
                incident["id"] = json!(format!("SP{}", all.len() + 1));
                all.push(incident.clone());
                Reply::json(201, incident)
            }
            ("GET", Some("incidents")) => Reply::json(200, Value::Array(all.clone())),
            (method, Some(id)) => match all.iter_mut().find(|i| i["id"] == id) {
                Some(incident) => {
                    if method == "PATCH"
                        && let Some(Value::Object(changes)) = incident_of(r)
                    {
                        for (k, v) in changes {
                            incident[k.as_str()] = v;
                        }
                    }
                    Reply::json(200, incident.clone())
                }
                None => Reply::json(404, json!({"error": "not found"})),
            },
            _ => Reply::json(404, json!({"error": "not found"})),
        };
        maybe_late(reply, lose, r, nth)
    }
}
