//! The runbooks' scenarios, replayed through the real `rollbackd evaluate` binary.
//!
//! Each `tests/traces/scenarios/<agent>--<name>.jsonl` is replayed against
//! `policies/<agent>.toml` with `--format json`; the decisions it prints (time, decision, row,
//! blocker) must equal `<agent>--<name>.expected` line for line.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn evaluate(policy: &Path, trace: &Path, format: &str) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .args(["evaluate", "--policy"])
        .arg(policy)
        .arg("--trace")
        .arg(trace)
        .args(["--format", format])
        .output()
        .expect("run rollbackd");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

fn summarize(json_lines: &str) -> String {
    json_lines
        .lines()
        .map(|l| {
            let d: serde_json::Value = serde_json::from_str(l).expect("json line");
            for key in [
                "at", "agent", "decision", "severity", "row", "method", "evidence",
            ] {
                assert!(d.get(key).is_some(), "missing {key} in {l}");
            }
            format!(
                "{} {} {} {}",
                d["at"].as_str().unwrap(),
                d["decision"].as_str().unwrap(),
                d["row"].as_str().unwrap_or("-"),
                d["evidence"]["blocked_by"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn runbook_scenarios_decide_as_the_runbooks_say() {
    let dir = Path::new("tests/traces/scenarios");
    let mut traces: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    traces.sort();
    assert!(traces.len() >= 18, "scenario traces missing: {traces:?}");
    let mut failures = Vec::new();
    for trace in &traces {
        let name = trace.file_stem().unwrap().to_str().unwrap();
        let agent = name.split("--").next().unwrap();
        let policy = Path::new("policies").join(format!("{agent}.toml"));
        let expected = std::fs::read_to_string(trace.with_extension("expected")).unwrap();
        let (stdout, stderr, ok) = evaluate(&policy, trace, "json");
        assert!(ok, "{name}: {stderr}");
        let got = summarize(&stdout);
        let want: Vec<&str> = expected.lines().map(str::trim_end).collect();
        let got_lines: Vec<&str> = got.lines().map(str::trim_end).collect();
        if got_lines != want {
            failures.push(format!("{name}:\n  want {want:?}\n  got  {got_lines:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn text_output_explains_the_decision() {
    let (stdout, _, ok) = evaluate(
        Path::new("policies/gl-009.toml"),
        Path::new("tests/traces/scenarios/gl-009--error-12-percent-latency-2.5x-baseline.jsonl"),
        "text",
    );
    assert!(ok);
    let block = stdout.split("ROLLBACK").nth(1).expect("a rollback block");
    assert!(block.contains("rollback-error-and-latency"), "{block}");
    assert!(
        block.contains("method: undo (runbook deadline 15m)"),
        "{block}"
    );
    assert!(
        block.contains("error_rate = 0.12, needs >= 0.1 and <= 0.5"),
        "{block}"
    );
    assert!(
        block.contains("latency_p95 = 5 = 2.50x baseline 2, needs > 2x baseline"),
        "{block}"
    );
}

#[test]
fn fix_forward_and_guards_are_explained() {
    let (stdout, _, _) = evaluate(
        Path::new("policies/gl-001.toml"),
        Path::new("tests/traces/scenarios/gl-001--heat-optimization-errors-no-backup-heat.jsonl"),
        "json",
    );
    let blocked: serde_json::Value = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|d| d["decision"] == "blocked")
        .expect("a blocked decision");
    assert_eq!(blocked["evidence"]["blocked_by"], "life-safety-heat");
    let guard = &blocked["evidence"]["guards"][0];
    assert_eq!(guard["blocks"], true);
    assert_eq!(guard["conditions"][0]["signal"], "backup_heat_available");
    assert_eq!(guard["conditions"][0]["value"], 0.0);
    assert!(
        blocked["reason"]
            .as_str()
            .unwrap()
            .contains("heat loss to life-safety systems")
    );
}

#[test]
fn bad_trace_names_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("bad.jsonl");
    std::fs::write(
        &trace,
        "{\"at\":\"2025-11-17T12:00:00Z\",\"event\":\"deploy\"}\n{\"at\":\"2025-11-17T12:01:00Z\",\"signals\":{\"error_rate\":\"lots\"}}\n",
    )
    .unwrap();
    let (_, stderr, ok) = evaluate(Path::new("policies/gl-002.toml"), &trace, "json");
    assert!(!ok);
    assert!(
        stderr.contains("bad.jsonl:2: signals.error_rate:"),
        "{stderr}"
    );
}

/// Every decision of a scenario trace, as JSON.
fn decisions(agent: &str, scenario: &str) -> Vec<serde_json::Value> {
    let (stdout, stderr, ok) = evaluate(
        &Path::new("policies").join(format!("{agent}.toml")),
        &Path::new("tests/traces/scenarios").join(format!("{agent}--{scenario}.jsonl")),
        "json",
    );
    assert!(ok, "{stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn what_held_before_the_deploy_is_told_not_rolled_back() {
    let d = decisions("gl-002", "alert-started-before-deploy-is-not-blamed");
    let notice = d.iter().find(|d| d["decision"] == "notify").unwrap();
    let held = notice["evidence"]["preexisting"][0]["held_before"][0]
        .as_str()
        .unwrap();
    assert!(
        held.contains("held before the deploy since 2025-11-17T11:00:00Z"),
        "{held}"
    );
    assert!(
        notice["reason"]
            .as_str()
            .unwrap()
            .contains("not because of this deploy"),
        "{notice}"
    );
    let d = decisions("gl-002", "error-rate-high-before-the-fix-is-not-blamed");
    assert!(d.iter().all(|d| d["decision"] != "rollback"), "{d:?}");
    let notice = &d[1];
    assert_eq!(notice["evidence"]["preexisting"][0]["row"], "p0-error-rate");
    let d = decisions("gl-002", "rate-range-waits-for-post-deploy-data");
    let waiting = &d[1];
    assert_eq!(waiting["decision"], "none");
    let d = decisions("gl-002", "outage-after-the-rollout-completed-rolls-back");
    assert_eq!(d.last().unwrap()["row"], "p0-service-outage");
}

#[test]
fn a_rollout_in_progress_is_not_an_outage_and_infinity_is_no_data() {
    let d = decisions("gl-002", "recreate-rollout-is-not-an-outage");
    assert!(
        d.iter().all(|d| d["decision"] == "none"),
        "0 available while the rollout progresses: {d:?}"
    );
    let d = decisions("gl-002", "infinite-error-ratio-is-no-data");
    let unknown = d.iter().find(|d| d["decision"] == "inconclusive").unwrap();
    let missing = unknown["evidence"]["unknown_rows"][0]["missing"][0]
        .as_str()
        .unwrap();
    assert!(missing.starts_with("error_rate: no data"), "{missing}");
    let d = decisions("gl-002", "undecidable-past-the-deadline-escalates");
    let late = d.last().unwrap();
    assert_eq!(late["decision"], "escalate");
    assert_eq!(late["evidence"]["unknown_rows"][0]["deadline_passed"], "5m");
}

#[test]
fn evidence_never_shows_no_value_beside_a_true_condition() {
    fn check(v: &serde_json::Value, path: &str, bad: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if m.get("truth") == Some(&serde_json::json!("true"))
                    && m.get("value") == Some(&serde_json::Value::Null)
                {
                    bad.push(format!("{path}: {v}"));
                }
                for (k, x) in m {
                    check(x, &format!("{path}.{k}"), bad);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    check(x, &format!("{path}[{i}]"), bad);
                }
            }
            _ => {}
        }
    }
    let mut bad = Vec::new();
    for entry in std::fs::read_dir("tests/traces/scenarios").unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".jsonl"))
        else {
            continue;
        };
        let (agent, scenario) = name.split_once("--").unwrap();
        for d in decisions(agent, scenario) {
            check(&d, name, &mut bad);
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
