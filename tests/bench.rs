//! `rollbackd bench --quick` as a user runs it: every measurement happens, the figures file
//! says what was measured, and what the measurements must show regardless of the machine
//! holds (one rollback per alert, one PromQL request per shared signal, nothing failed).
//! Nothing here asserts a time: the benchmark measures, it is not a timed test.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

#[test]
fn quick_bench_measures_everything_and_writes_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("figures");
    let run = Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .args(["bench", "--quick", "--out"])
        .arg(&out)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&run.stderr)
    );

    let figures: Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
            .unwrap();
    assert!(figures["machine"]["cpus"].as_u64().unwrap() >= 1);

    // webhook → PATCH, with each store backend: every alert led to exactly one incident
    // and one measured PATCH
    for (key, store) in [
        ("webhook_to_patch", "sqlite"),
        ("webhook_to_patch_kubernetes", "kubernetes"),
    ] {
        let w = &figures[key];
        assert_eq!(w["store"], store);
        assert_eq!(w["latency"]["samples"], 20, "{store}");
        assert_eq!(w["incidents"], 20, "{store}");
        let (p50, p99) = (
            w["latency"]["p50_ms"].as_f64().unwrap(),
            w["latency"]["p99_ms"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p50 <= p99, "{store}: p50 {p50} p99 {p99}");
    }

    // the cycle: three shared PromQL signals, three requests, counted on both sides
    let c = &figures["cycles"][0];
    assert_eq!(c["workloads"], 100);
    assert_eq!(c["shared_signals"], 3);
    assert_eq!(c["promql_requests"], 3);
    assert_eq!(c["promql_requests_seen"], 3.0);
    assert!(c["peak_rss_mib"].as_f64().unwrap() > 1.0);

    // ingestion: alerts were accepted and none failed
    let i = &figures["ingestion"][0];
    assert!(i["alerts"].as_u64().unwrap() > 0);
    assert_eq!(i["failed"], 0);
    assert_eq!(
        i["alerts"].as_u64().unwrap(),
        i["requests"].as_u64().unwrap() * 10
    );

    // the comparison rows state their arithmetic
    let tools: Vec<&str> = figures["comparison"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tool"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"Flagger") && tools.contains(&"Argo Rollouts"));

    // the table is printed and written next to the JSON
    let table = std::fs::read_to_string(out.with_extension("md")).unwrap();
    assert!(table.contains("| webhook received → first rollback PATCH, sqlite store, 20 alerts"));
    assert!(
        table.contains("| webhook received → first rollback PATCH, kubernetes store, 20 alerts")
    );
    assert!(stdout.contains("| one evaluation cycle, 100 workloads sharing 3 PromQL signals"));
}

#[test]
fn bench_cycle_reports_bad_input_without_panicking() {
    let run = Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .args([
            "bench-cycle",
            "--workloads",
            "3",
            "--prometheus",
            "not a url",
        ])
        .output()
        .unwrap();
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("error:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
