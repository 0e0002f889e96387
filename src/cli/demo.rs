//! `rollbackd demo`: the runbooks' scenarios replayed through the decision engine on the
//! embedded policies, with a timeline and a summary table. Needs no cluster and no Prometheus.

use std::path::Path;

use rollbackd_core::engine::DecisionKind;
use rollbackd_core::policy::{Policy, PolicyErrors, parse_policy};
use rollbackd_core::replay::{Change, format_text, parse_trace, replay};

/// The embedded policies, by agent file name.
const POLICIES: [(&str, &str); 5] = [
    ("gl-001", include_str!("../../policies/gl-001.toml")),
    ("gl-002", include_str!("../../policies/gl-002.toml")),
    ("gl-006", include_str!("../../policies/gl-006.toml")),
    ("gl-008", include_str!("../../policies/gl-008.toml")),
    ("gl-009", include_str!("../../policies/gl-009.toml")),
];

/// The scenarios: (policy, title, trace).
const SCENARIOS: [(&str, &str, &str); 6] = [
    (
        "gl-002",
        "GL-002 P0: error rate jumps to 60 %",
        include_str!("../../tests/traces/scenarios/gl-002--p0-error-60-percent.jsonl"),
    ),
    (
        "gl-002",
        "GL-002 P1: error rate 35 % for 20 min, then approved",
        include_str!("../../tests/traces/scenarios/gl-002--p1-error-35-percent-20-min.jsonl"),
    ),
    (
        "gl-009",
        "GL-009: error 12 % with p95 at 2.5x baseline",
        include_str!(
            "../../tests/traces/scenarios/gl-009--error-12-percent-latency-2.5x-baseline.jsonl"
        ),
    ),
    (
        "gl-008",
        "GL-008 Severity 2: error 30 %, Engineering Manager approves",
        include_str!("../../tests/traces/scenarios/gl-008--error-30-percent-needs-approval.jsonl"),
    ),
    (
        "gl-001",
        "GL-001: heat optimization errors without backup heat",
        include_str!(
            "../../tests/traces/scenarios/gl-001--heat-optimization-errors-no-backup-heat.jsonl"
        ),
    ),
    (
        "gl-006",
        "GL-006: configuration regression",
        include_str!("../../tests/traces/scenarios/gl-006--config-regression.jsonl"),
    ),
];

fn policy(name: &str) -> anyhow::Result<Policy> {
    let (_, text) = POLICIES
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| anyhow::anyhow!("no embedded policy {name}"))?;
    Ok(parse_policy(Path::new(&format!("policies/{name}.toml")), text).map_err(PolicyErrors)?)
}

/// Plays every scenario and prints the timeline, then the summary.
pub fn run() -> anyhow::Result<()> {
    println!("rollbackd demo: the runbooks' scenarios replayed through the decision engine\n");
    let mut summary = Vec::new();
    for (name, title, trace) in SCENARIOS {
        let policy = policy(name)?;
        let lines = parse_trace(Path::new(title), trace)?;
        let changes = replay(&policy, &lines);
        println!("=== {title}");
        for change in changes
            .iter()
            .filter(|c| c.decision.decision != DecisionKind::None || c.decision.row.is_some())
        {
            println!("{}", format_text(&policy, change));
        }
        println!();
        summary.push((title, outcome(&changes)));
    }
    println!("{:<62} OUTCOME", "SCENARIO");
    for (title, outcome) in summary {
        println!("{title:<62} {outcome}");
    }
    Ok(())
}

fn outcome(changes: &[Change]) -> String {
    changes
        .iter()
        .filter(|c| c.decision.decision != DecisionKind::None)
        .map(|c| {
            let row = c.decision.row.as_deref().unwrap_or("-");
            match &c.decision.evidence.blocked_by {
                Some(by) => format!("{} {row} ({by})", c.decision.decision.as_str()),
                None => format!("{} {row}", c.decision.decision.as_str()),
            }
        })
        .collect::<Vec<_>>()
        .join(" → ")
}
