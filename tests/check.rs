//! `rollbackd check`: the shipped policies pass; each kind of broken policy gives exactly one
//! line naming file:line and the field, and exit 1.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn check(paths: &[&Path]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .arg("check")
        .args(paths)
        .output()
        .expect("run rollbackd");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn shipped_policies_pass_with_a_summary_per_file() {
    let (stdout, stderr, code) = check(&[Path::new("policies")]);
    assert_eq!(code, 0, "{stderr}");
    for agent in ["GL-001", "GL-002", "GL-006", "GL-008", "GL-009"] {
        assert!(
            stdout.contains(&format!("agent {agent} (")),
            "{agent} missing in\n{stdout}"
        );
    }
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
}

/// Breaks a copy of gl-002.toml by replacing `from` with `to` (first occurrence), then checks it.
fn broken(from: &str, to: &str) -> (String, usize) {
    let source = std::fs::read_to_string("policies/gl-002.toml").unwrap();
    let at = source.find(from).expect("pattern in gl-002.toml");
    let line = source[..at].matches('\n').count() + 1;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(&file, source.replacen(from, to, 1)).unwrap();
    let (stdout, stderr, code) = check(&[&file]);
    assert_eq!(code, 1, "expected failure for {to:?}; stdout {stdout}");
    assert_eq!(stderr.lines().count(), 1, "one line per problem:\n{stderr}");
    (stderr.trim().to_string(), line)
}

#[test]
fn unknown_signal_in_a_row() {
    let (err, line) = broken(
        r#"{ signal = "error_rate", above = 0.5 }"#,
        r#"{ signal = "eror_rate", above = 0.5 }"#,
    );
    assert!(err.contains(&format!("broken.toml:{line}:")), "{err}");
    assert!(
        err.contains("matrix[5].when[0].signal: unknown signal \"eror_rate\""),
        "{err}"
    );
}

#[test]
fn duration_with_a_bad_unit() {
    let (err, line) = broken(r#"for = "15m""#, r#"for = "15x""#);
    assert!(err.contains(&format!("broken.toml:{line}:")), "{err}");
    assert!(
        err.contains("for: invalid duration \"15x\": unknown unit \"x\""),
        "{err}"
    );
}

#[test]
fn threshold_that_is_not_a_number() {
    let (err, line) = broken("above = 0.5 }", r#"above = "half" }"#);
    assert!(err.contains(&format!("broken.toml:{line}:")), "{err}");
    assert!(
        err.contains("above: invalid type: string \"half\", expected a number"),
        "{err}"
    );
}

#[test]
fn method_naming_a_missing_step_and_row_naming_a_missing_method() {
    let (err, line) = broken(
        "[[methods.quick.steps]]\nundo = \"previous\"",
        "[[methods.quick.steps]]\nrevert = \"previous\"",
    );
    assert!(err.contains(&format!("broken.toml:{}:", line + 1)), "{err}");
    assert!(err.contains("unknown field `revert`"), "{err}");
    let (err, line) = broken("method = \"quick\"", "method = \"quik\"");
    assert!(err.contains(&format!("broken.toml:{line}:")), "{err}");
    assert!(
        err.contains("matrix[0].method: unknown method \"quik\""),
        "{err}"
    );
}

#[test]
fn unknown_key() {
    let (err, line) = broken("deadline = \"5m\"", "deadline = \"5m\"\nurgency = \"high\"");
    assert!(err.contains(&format!("broken.toml:{}:", line + 1)), "{err}");
    assert!(err.contains("urgency: unknown field `urgency`"), "{err}");
}

#[test]
fn every_semantic_problem_is_reported_not_just_the_first() {
    let source = std::fs::read_to_string("policies/gl-002.toml")
        .unwrap()
        .replacen("method = \"quick\"", "method = \"quik\"", 2)
        .replacen("recovery = \"recover-stuck\"", "recovery = \"nope\"", 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.toml");
    std::fs::write(&file, source).unwrap();
    let (_, stderr, code) = check(&[&file]);
    assert_eq!(code, 1);
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
}

#[test]
fn duplicate_agents_across_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.toml", "b.toml"] {
        std::fs::copy("policies/gl-002.toml", dir.path().join(name)).unwrap();
    }
    let (_, stderr, code) = check(&[dir.path()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("agent \"GL-002\" is also defined in"),
        "{stderr}"
    );
}
