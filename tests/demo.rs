//! The README's first command, `rollbackd demo`, run as a user runs it: every scenario ends
//! as the README's table says (a change that makes one escalate instead fails here).

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn the_demo_plays_every_scenario_to_its_outcome() {
    let out = Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .arg("demo")
        .env("RUST_LOG", "error")
        .output()
        .expect("run rollbackd demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout.split("SCENARIO").last().expect("the summary table");
    for (scenario, outcome) in [
        ("GL-002 P0 error spike", "resolved"),
        ("GL-009 p95", "resolved"),
        ("GL-008 error 30 %", "resolved"),
        ("GL-001 life-safety guard", "blocked"),
        ("GL-001 coordinated multi-agent rollback", "resolved"),
        ("GL-006 config-only rollback", "resolved"),
    ] {
        let line = summary
            .lines()
            .find(|l| l.starts_with(scenario))
            .unwrap_or_else(|| panic!("no summary line for {scenario}:\n{summary}"));
        // the table pads the scenario to 58 characters, then the outcome
        let rest: String = line.chars().skip(58).collect();
        let got = rest.split_whitespace().next();
        assert_eq!(got, Some(outcome), "{line}");
    }
}
