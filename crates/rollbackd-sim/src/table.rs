//! Server-side printing: `meta.k8s.io/v1` Table responses that `kubectl get` asks for.

use serde_json::{Value, json};

use super::controller::int;
use super::discovery::Resource;
use super::store::name_of;

fn column(name: &str, kind: &str, priority: i64) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": kind, "format": format, "description": "", "priority": priority})
}

/// A human age like `5s`, `3m`, `2h`, `4d` from an RFC 3339 timestamp.
pub fn age(obj: &Value) -> String {
    let ts = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    let Some(ts) = ts else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - ts.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn images(obj: &Value) -> (String, String) {
    let cs = obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
    let imgs: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), imgs.join(","))
}

fn selector(obj: &Value) -> String {
    obj.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn pod_cells(p: &Value) -> Vec<Value> {
    let statuses = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = p
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = statuses.iter().filter(|s| s["ready"] == true).count();
    let restarts: i64 = statuses.iter().map(|s| int(s, "/restartCount")).sum();
    let reason = statuses
        .iter()
        .find_map(|s| {
            s.pointer("/state/waiting/reason")
                .or_else(|| s.pointer("/state/terminated/reason"))
                .and_then(Value::as_str)
        })
        .map(String::from)
        .unwrap_or_else(|| {
            p.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Pending")
                .to_string()
        });
    vec![
        json!(name_of(p)),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        json!(age(p)),
    ]
}

/// Converts objects into a Table for `kubectl get`, with the list's `ListMeta`.
pub fn to_table(r: &Resource, items: &[Value], metadata: Value) -> Value {
    let (columns, rows): (Vec<Value>, Vec<Vec<Value>>) = match r.kind {
        "Deployment" => (
            vec![
                column("Name", "string", 0),
                column("Ready", "string", 0),
                column("Up-to-date", "integer", 0),
                column("Available", "integer", 0),
                column("Age", "string", 0),
                column("Containers", "string", 1),
                column("Images", "string", 1),
                column("Selector", "string", 1),
            ],
            items
                .iter()
                .map(|d| {
                    let (names, imgs) = images(d);
                    vec![
                        json!(name_of(d)),
                        json!(format!(
                            "{}/{}",
                            int(d, "/status/readyReplicas"),
                            int(d, "/spec/replicas")
                        )),
                        json!(int(d, "/status/updatedReplicas")),
                        json!(int(d, "/status/availableReplicas")),
                        json!(age(d)),
                        json!(names),
                        json!(imgs),
                        json!(selector(d)),
                    ]
                })
                .collect(),
        ),
        "ReplicaSet" => (
            vec![
                column("Name", "string", 0),
                column("Desired", "integer", 0),
                column("Current", "integer", 0),
                column("Ready", "integer", 0),
                column("Age", "string", 0),
                column("Containers", "string", 1),
                column("Images", "string", 1),
                column("Selector", "string", 1),
            ],
            items
                .iter()
                .map(|rs| {
                    let (names, imgs) = images(rs);
                    vec![
                        json!(name_of(rs)),
                        json!(int(rs, "/spec/replicas")),
                        json!(int(rs, "/status/replicas")),
                        json!(int(rs, "/status/readyReplicas")),
                        json!(age(rs)),
                        json!(names),
                        json!(imgs),
                        json!(selector(rs)),
                    ]
                })
                .collect(),
        ),
        "Rollout" => (
            vec![
                column("Name", "string", 0),
                column("Desired", "integer", 0),
                column("Current", "integer", 0),
                column("Up-to-date", "integer", 0),
                column("Available", "integer", 0),
                column("Age", "string", 0),
            ],
            items
                .iter()
                .map(|ro| {
                    vec![
                        json!(name_of(ro)),
                        json!(int(ro, "/spec/replicas")),
                        json!(int(ro, "/status/replicas")),
                        json!(int(ro, "/status/updatedReplicas")),
                        json!(int(ro, "/status/availableReplicas")),
                        json!(age(ro)),
                    ]
                })
                .collect(),
        ),
        "Job" => (
            vec![
                column("Name", "string", 0),
                column("Status", "string", 0),
                column("Completions", "string", 0),
                column("Age", "string", 0),
            ],
            items
                .iter()
                .map(|j| {
                    let status = j
                        .pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .and_then(|cs| {
                            cs.iter()
                                .find(|c| {
                                    (c["type"] == "Complete" || c["type"] == "Failed")
                                        && c["status"] == "True"
                                })
                                .and_then(|c| c["type"].as_str())
                        })
                        .unwrap_or("Running");
                    vec![
                        json!(name_of(j)),
                        json!(status),
                        json!(format!(
                            "{}/{}",
                            int(j, "/status/succeeded"),
                            j.pointer("/spec/completions")
                                .and_then(Value::as_i64)
                                .unwrap_or(1)
                        )),
                        json!(age(j)),
                    ]
                })
                .collect(),
        ),
        "Lease" => (
            vec![
                column("Name", "string", 0),
                column("Holder", "string", 0),
                column("Age", "string", 0),
            ],
            items
                .iter()
                .map(|l| {
                    vec![
                        json!(name_of(l)),
                        l.pointer("/spec/holderIdentity")
                            .cloned()
                            .unwrap_or(json!("")),
                        json!(age(l)),
                    ]
                })
                .collect(),
        ),
        "Namespace" => (
            vec![
                column("Name", "string", 0),
                column("Status", "string", 0),
                column("Age", "string", 0),
            ],
            items
                .iter()
                .map(|n| {
                    vec![
                        json!(name_of(n)),
                        n.pointer("/status/phase")
                            .cloned()
                            .unwrap_or(json!("Active")),
                        json!(age(n)),
                    ]
                })
                .collect(),
        ),
        "Pod" => (
            vec![
                column("Name", "string", 0),
                column("Ready", "string", 0),
                column("Status", "string", 0),
                column("Restarts", "integer", 0),
                column("Age", "string", 0),
            ],
            items.iter().map(pod_cells).collect(),
        ),
        "Event" => (
            vec![
                column("Last Seen", "string", 0),
                column("Type", "string", 0),
                column("Reason", "string", 0),
                column("Object", "string", 0),
                column("Message", "string", 0),
            ],
            items
                .iter()
                .map(|e| {
                    let object = format!(
                        "{}/{}",
                        e["involvedObject"]["kind"]
                            .as_str()
                            .unwrap_or_default()
                            .to_lowercase(),
                        e["involvedObject"]["name"].as_str().unwrap_or_default()
                    );
                    vec![
                        json!(age(e)),
                        e["type"].clone(),
                        e["reason"].clone(),
                        json!(object),
                        e["message"].clone(),
                    ]
                })
                .collect(),
        ),
        _ => (
            vec![column("Name", "string", 0), column("Age", "string", 0)],
            items
                .iter()
                .map(|o| vec![json!(name_of(o)), json!(age(o))])
                .collect(),
        ),
    };
    let rows: Vec<Value> = rows
        .into_iter()
        .zip(items)
        .map(|(cells, obj)| {
            json!({
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
                }
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}
