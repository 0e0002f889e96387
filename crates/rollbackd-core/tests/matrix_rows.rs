//! Every row of every policy's decision matrix has a trace that hits it and one that falls
//! just short of it, as files under `tests/traces/rows/<agent>/<row>.{hit,short}.jsonl`.
//!
//! The test replays each file and checks that the hit trace ends on that row and the short one
//! does not: a row shadowed by an earlier one, a wrong bound or a broken persistence rule fails
//! it. A row without its two files fails it too. `ROLLBACKD_WRITE_ROW_TRACES=1 cargo test --test
//! matrix_rows` (re)writes the files from the policies; review the diff before committing it.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use rollbackd_core::engine::DecisionKind;
use rollbackd_core::policy::{Condition, Policy, Row, SignalSource, Unit, load_all};
use rollbackd_core::replay::{parse_trace, replay};
use serde_json::{Value, json};

/// The repository's root (the directory holding `policies/`), wherever this crate lives in it.
fn repo() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|dir| dir.join("policies").is_dir())
        .unwrap_or(here)
        .to_path_buf()
}

fn policies() -> Vec<Policy> {
    load_all(&[repo().join("policies")]).expect("policies load")
}

fn rows_dir(policy: &Policy) -> PathBuf {
    repo()
        .join("tests/traces/rows")
        .join(policy.agent.id.to_lowercase())
}

const BASELINE_SECONDS: f64 = 0.5;

/// A healthy value for a metric or kube signal.
fn neutral(policy: &Policy, name: &str) -> f64 {
    match name {
        "available_replicas" => 3.0,
        "backup_heat_available" => 1.0,
        _ => match policy.signals[name].unit {
            Unit::Seconds => BASELINE_SECONDS,
            _ => 0.0,
        },
    }
}

fn is_alert(policy: &Policy, name: &str) -> bool {
    matches!(policy.signals[name].source, SignalSource::Alert { .. })
}

/// A value that passes (or, with `fail`, just misses) a condition.
fn value_for(policy: &Policy, c: &Condition, fail: bool) -> f64 {
    let unit = policy.signals[&c.signal].unit;
    let scale = if c.relative_to_baseline {
        neutral(policy, &c.signal)
    } else {
        1.0
    };
    let delta = |v: f64| {
        if unit == Unit::Count {
            1.0
        } else {
            (v.abs() * 0.02).max(0.001)
        }
    };
    let raw = if let Some(v) = c.equals {
        if fail {
            if v == 0.0 { 1.0 } else { 0.0 }
        } else {
            v
        }
    } else {
        match (c.lower, c.upper, fail) {
            (Some(l), Some(u), false) => (l.value + u.value) / 2.0,
            (Some(l), _, false) => {
                if l.inclusive {
                    l.value
                } else {
                    l.value + delta(l.value)
                }
            }
            (None, Some(u), false) => {
                if u.inclusive {
                    u.value
                } else {
                    u.value - delta(u.value)
                }
            }
            (Some(l), _, true) => {
                if l.inclusive {
                    l.value - delta(l.value)
                } else {
                    l.value
                }
            }
            (None, Some(u), true) => {
                if u.inclusive {
                    u.value + delta(u.value)
                } else {
                    u.value
                }
            }
            (None, None, _) => 0.0,
        }
    };
    raw * scale
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Builds the hit (or short) trace for a row.
fn trace_for(policy: &Policy, row: &Row, short: bool) -> String {
    let t0: DateTime<Utc> = "2025-11-17T12:00:00Z".parse().unwrap();
    let hold = row
        .when
        .iter()
        .filter_map(|c| c.held_for)
        .max()
        .unwrap_or_default();
    let end = t0 + TimeDelta::minutes(10) + hold;
    // the condition a short trace misses: by time if it must persist, else by value
    let short_by_time = short && row.when[0].held_for.is_some();
    let metric_names: Vec<&String> = policy
        .signals
        .keys()
        .filter(|n| !is_alert(policy, n))
        .collect();
    let mut lines: Vec<Value> = Vec::new();
    let neutral_line = || -> BTreeMap<String, f64> {
        metric_names
            .iter()
            .map(|n| ((*n).clone(), neutral(policy, n)))
            .collect()
    };
    let mut t = t0 - TimeDelta::minutes(60);
    while t < t0 {
        lines.push(json!({"at": at(t), "signals": neutral_line()}));
        t += TimeDelta::minutes(10);
    }
    lines
        .push(json!({"at": at(t0), "event": "deploy", "revision": 2, "image": "example/agent:v2"}));
    let breach_from = if short_by_time {
        end - (hold - TimeDelta::minutes(1))
    } else {
        t0 + TimeDelta::minutes(1)
    };
    let mut alerts: Vec<Value> = Vec::new();
    for (i, c) in row.when.iter().enumerate() {
        let fail = short && !short_by_time && i == 0;
        if is_alert(policy, &c.signal) && value_for(policy, c, fail) == 1.0 {
            let SignalSource::Alert { labels } = &policy.signals[&c.signal].source else {
                unreachable!()
            };
            let mut labels = labels.clone();
            labels.insert("agent".into(), policy.agent.id.clone());
            labels.insert("alertname".into(), format!("{}Alert", c.signal));
            alerts.push(json!({"at": at(breach_from), "event": "alert_firing", "labels": labels}));
        }
    }
    let mut t = t0 + TimeDelta::minutes(1);
    while t <= end {
        if t >= breach_from {
            lines.append(&mut alerts);
        }
        let mut values = neutral_line();
        for (i, c) in row.when.iter().enumerate() {
            if is_alert(policy, &c.signal) || t < breach_from {
                continue;
            }
            let fail = short && !short_by_time && i == 0;
            values.insert(c.signal.clone(), value_for(policy, c, fail));
        }
        lines.push(json!({"at": at(t), "signals": values}));
        t += TimeDelta::minutes(1);
    }
    lines.iter().map(|l| l.to_string() + "\n").collect()
}

#[test]
fn every_row_has_a_hit_and_a_short_trace() {
    let write = std::env::var_os("ROLLBACKD_WRITE_ROW_TRACES").is_some();
    let mut failures = Vec::new();
    let mut checked = 0;
    for policy in policies() {
        let dir = rows_dir(&policy);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
        }
        for row in policy.matrix.iter() {
            for (kind, short) in [("hit", false), ("short", true)] {
                let file = dir.join(format!("{}.{kind}.jsonl", row.id));
                if write {
                    std::fs::write(&file, trace_for(&policy, row, short)).unwrap();
                }
                let Ok(text) = std::fs::read_to_string(&file) else {
                    failures.push(format!(
                        "{}: missing (row {} of {})",
                        file.display(),
                        row.id,
                        policy.agent.id
                    ));
                    continue;
                };
                let lines = parse_trace(&file, &text).unwrap();
                let changes = replay(&policy, &lines);
                let last = &changes.last().expect("at least one decision").decision;
                let ends_on_row = last.row.as_deref() == Some(row.id.as_str());
                if ends_on_row == short {
                    failures.push(format!(
                        "{}: {} trace ends on {} ({:?}: {})",
                        file.display(),
                        kind,
                        last.row.as_deref().unwrap_or("no row"),
                        last.decision,
                        last.reason
                    ));
                }
                if !short && last.decision == DecisionKind::Inconclusive {
                    failures.push(format!(
                        "{}: hit trace is inconclusive: {}",
                        file.display(),
                        last.reason
                    ));
                }
                checked += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} row traces wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        checked >= 2 * 70,
        "expected the five policies' ~80 rows, checked {checked} traces"
    );
}
