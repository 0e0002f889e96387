//! The runbooks' scenarios, replayed through the real `rollbackd evaluate` binary.
//!
//! Each `tests/traces/scenarios/<agent>--<name>.jsonl` is replayed against
//! `policies/<agent>.toml` with `--format json`; the decisions it prints (time, decision, row,
//! blocker) must equal `<agent>--<name>.expected` line for line.

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
