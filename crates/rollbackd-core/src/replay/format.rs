//! The two output formats of `rollbackd evaluate`.

use serde_json::json;

use super::Change;
use crate::engine::{Truth, format_value};
use crate::policy::Policy;

/// One JSON object per change: `at`, `agent`, `decision`, `severity`, `row`, `method`,
/// `deadline`, `reason`, `evidence` (absent values are `null`).
pub fn format_json(policy: &Policy, change: &Change) -> String {
    let d = &change.decision;
    json!({
        "at": change.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "line": change.line,
        "agent": policy.agent.id,
        "decision": d.decision.as_str(),
        "severity": d.severity,
        "row": d.row,
        "method": d.method,
        "deadline": d.deadline,
        "reason": d.reason,
        "evidence": d.evidence,
    })
    .to_string()
}

/// A readable block per change: a headline, then one line per condition and guard.
pub fn format_text(policy: &Policy, change: &Change) -> String {
    let d = &change.decision;
    let mut out = format!(
        "{} {} {:<14} {}",
        change.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        policy.agent.id,
        d.decision.as_str().to_uppercase(),
        d.reason
    );
    if let Some(method) = &d.method
        && matches!(
            d.decision,
            crate::engine::DecisionKind::Rollback | crate::engine::DecisionKind::AwaitApproval
        )
    {
        out.push_str(&format!("\n    method: {method}"));
        if let Some(deadline) = &d.deadline {
            out.push_str(&format!(" (runbook deadline {deadline})"));
        }
    }
    if let Some(age) = &d.evidence.deploy_age {
        out.push_str(&format!("\n    deploy age: {age}"));
    }
    for c in &d.evidence.conditions {
        out.push_str(&format!("\n    {} {}", mark(c.truth), describe(c)));
    }
    for g in d.evidence.guards.iter() {
        let verdict = if g.blocks { "BLOCKS" } else { "passes" };
        out.push_str(&format!(
            "\n    guard {} {verdict}: {}",
            g.guard, g.description
        ));
        for c in &g.conditions {
            out.push_str(&format!("\n      {} {}", mark(c.truth), describe(c)));
        }
    }
    for p in &d.evidence.preexisting {
        out.push_str(&format!(
            "\n    ~ row {} ({}) holds, not because of the deploy: {}",
            p.row,
            p.severity,
            p.held_before.join("; ")
        ));
    }
    for u in &d.evidence.unknown_rows {
        let late = match (&u.unknown_for, &u.deadline_passed) {
            (Some(f), Some(d)) => format!(" for {f}, past its {d} deadline"),
            (Some(f), None) => format!(" for {f}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "\n    ? row {} ({}) unknown{late}: {}",
            u.row,
            u.severity,
            u.missing.join("; ")
        ));
    }
    if let Some(by) = &d.evidence.approved_by {
        out.push_str(&format!("\n    approved by {by}"));
    }
    out
}

fn mark(truth: Truth) -> &'static str {
    match truth {
        Truth::True => "✓",
        Truth::False => "✗",
        Truth::Unknown => "?",
    }
}

fn describe(c: &crate::engine::ConditionEvidence) -> String {
    let value = c.value.map_or("n/a".into(), format_value);
    let mut s = format!("{} = {value}", c.signal);
    if let (Some(b), Some(r)) = (c.baseline, c.ratio) {
        s.push_str(&format!(" = {r:.2}x baseline {}", format_value(b)));
    }
    s.push_str(&format!(", needs {}", c.threshold));
    if let Some(req) = &c.required_for {
        s.push_str(&format!(" for {req}"));
    }
    if let Some(held) = &c.held_for {
        s.push_str(&format!(", held {held}"));
    }
    if let Some(pre) = c.pre_deploy {
        s.push_str(&format!(", {} before the deploy", format_value(pre)));
    }
    if let Some(note) = &c.note {
        s.push_str(&format!(" ({note})"));
    }
    if let Some(held) = &c.preexisting {
        s.push_str(&format!(" [{held}]"));
    }
    s
}
