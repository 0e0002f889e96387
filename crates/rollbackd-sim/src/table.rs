//! Server-side printing: `meta.k8s.io/v1` Table responses that `kubectl get` asks for.

use serde_json::{Value, json};

use super::controller::int;
use super::crds;
use super::discovery::Resource;
use super::events;
use super::store::name_of;

fn column(name: &str, kind: &str, priority: i64) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": kind, "format": format, "description": "", "priority": priority})
}

/// A duration as kubectl and the API server print ages (`duration.HumanDuration`): `45s`,
/// `3m20s`, `12m`, `5h30m`, `20h`, `3d4h`, `30d`, `2y10d`. Up to two seconds in the future
/// (clock skew) reads `0s`; more reads `<invalid>`.
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The time since an RFC 3339 timestamp, as [`human_duration`]; `<unknown>` when unset.
pub fn since(timestamp: Option<&Value>) -> String {
    match timestamp
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    {
        Some(ts) => human_duration(chrono::Utc::now() - ts.with_timezone(&chrono::Utc)),
        None => "<unknown>".into(),
    }
}

/// A human age like `5s`, `3m20s`, `2h`, `4d` from `metadata.creationTimestamp`.
pub fn age(obj: &Value) -> String {
    since(obj.pointer("/metadata/creationTimestamp"))
}

/// The columns and cells of custom resources: Name, then the CRD version's printer columns.
fn custom_table(r: &Resource, items: &[Value]) -> (Vec<Value>, Vec<Vec<Value>>) {
    let mut columns = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    })];
    columns.extend(r.columns.iter().map(|c| {
        json!({"name": c.name, "type": c.kind, "format": c.format,
               "description": c.description, "priority": c.priority})
    }));
    let rows = items
        .iter()
        .map(|o| {
            let mut cells = vec![json!(name_of(o))];
            cells.extend(r.columns.iter().map(|c| crds::cell(c, o)));
            cells
        })
        .collect();
    (columns, rows)
}

/// One row of the API server's Event printer (`printEvent`, always wide: kubectl hides the
/// columns of priority 1 unless `-o wide`), from the core/v1 shape.
fn event_cells(e: &Value) -> Vec<Value> {
    let e = events::as_core(e);
    let unset = |k: &str| e.get(k).is_none_or(|v| v.is_null() || *v == "");
    let first = if unset("firstTimestamp") {
        since(e.get("eventTime"))
    } else {
        since(e.get("firstTimestamp"))
    };
    let mut last = if unset("lastTimestamp") {
        first.clone()
    } else {
        since(e.get("lastTimestamp"))
    };
    let mut count = e["count"].as_i64().unwrap_or(0);
    if let Some(series) = e.get("series").filter(|s| s.is_object()) {
        last = since(series.get("lastObservedTime"));
        count = series["count"].as_i64().unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let involved = &e["involvedObject"];
    let kind = involved["kind"].as_str().unwrap_or_default().to_lowercase();
    let target = match involved["name"].as_str().filter(|n| !n.is_empty()) {
        Some(name) => format!("{kind}/{name}"),
        None => kind,
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let component = match text(&e["source"]["component"]) {
        c if c.is_empty() => text(&e["reportingComponent"]),
        c => c,
    };
    let host = match text(&e["source"]["host"]) {
        h if h.is_empty() => text(&e["reportingInstance"]),
        h => h,
    };
    let source = if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(text(&e["type"])),
        json!(text(&e["reason"])),
        json!(target),
        json!(text(&involved["fieldPath"])),
        json!(source),
        json!(text(&e["message"]).trim()),
        json!(first),
        json!(count),
        json!(name_of(&e)),
    ]
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
    let (columns, rows): (Vec<Value>, Vec<Vec<Value>>) = if r.custom {
        custom_table(r, items)
    } else {
        builtin_table(r, items)
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

/// The columns and cells of a built-in kind.
fn builtin_table(r: &Resource, items: &[Value]) -> (Vec<Value>, Vec<Vec<Value>>) {
    match r.kind {
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
                column("Subobject", "string", 1),
                column("Source", "string", 1),
                column("Message", "string", 0),
                column("First Seen", "string", 1),
                column("Count", "string", 1),
                column("Name", "string", 1),
            ],
            items.iter().map(event_cells).collect(),
        ),
        // The API server's default table convertor (no printer registered for the kind).
        "CustomResourceDefinition" => (
            vec![column("Name", "string", 0), column("Created At", "date", 0)],
            items
                .iter()
                .map(|o| {
                    vec![
                        json!(name_of(o)),
                        o.pointer("/metadata/creationTimestamp")
                            .cloned()
                            .unwrap_or(Value::Null),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::{EVENTS, EVENTS_V1};
    use chrono::TimeDelta;

    #[test]
    fn durations_read_like_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (150, "2m30s"),
            (180, "3m"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600 + 120, "3h2m"),
            (5 * 3600, "5h"),
            (20 * 3600, "20h"),
            (50 * 3600, "2d2h"),
            (72 * 3600, "3d"),
            (30 * 86400, "30d"),
            (800 * 86400, "2y70d"),
            (3000 * 86400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(TimeDelta::seconds(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn events_print_alike_through_both_groups() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "shop"},
            "eventTime": crate::ids::now(),
            "reportingController": "rollbackd", "reportingInstance": "rollbackd-0",
            "action": "Rollback", "reason": "RolledBack", "type": "Normal",
            "regarding": {"kind": "Deployment", "name": "web", "namespace": "shop"},
            "note": "rolled back ",
        });
        let core = crate::events::to_core(&v1);
        let a = to_table(&EVENTS_V1, std::slice::from_ref(&v1), json!({}));
        let b = to_table(&EVENTS, std::slice::from_ref(&core), json!({}));
        assert_eq!(a["rows"][0]["cells"], b["rows"][0]["cells"]);
        let cells = &a["rows"][0]["cells"];
        assert_eq!(cells[1], "Normal");
        assert_eq!(cells[2], "RolledBack");
        assert_eq!(cells[3], "deployment/web");
        assert_eq!(cells[5], "rollbackd, rollbackd-0");
        assert_eq!(cells[6], "rolled back");
        assert_eq!(cells[8], 1);
        assert_eq!(a["columnDefinitions"].as_array().map(Vec::len), Some(10));
    }
}
