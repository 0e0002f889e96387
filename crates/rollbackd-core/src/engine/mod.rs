//! The pure decision engine: given a policy, what was observed about the current deploy,
//! and "now", it returns a [`Decision`] with the evidence that explains it. No I/O, no
//! clock: replaying the same observations always gives the same decision.
//!
//! Rules, in order:
//! 1. no deploy, or a deploy older than `fix_forward_after` → `none`;
//! 2. rows apply by deploy age (`window`, `within`); the first row whose conditions all
//!    hold wins; a row with a condition lacking data is *unknown*, never a match;
//! 3. a `notify`/`none` match preceded by an unknown rollback row is `inconclusive`
//!    (missing data must not hide a worse row); no match but an unknown row → `inconclusive`;
//! 4. a rollback already done for this deploy, or a guard that holds *or cannot be
//!    evaluated*, turns a wanted rollback into `blocked`;
//! 5. `rollback_after_approval` waits for an approval;
//! 6. only what the deploy caused counts (`attribution.rs`): a rollback row that holds only
//!    because of a condition older than the deploy (an alert that started before it, a
//!    value that already met the threshold and has not cleared or got clearly worse) is
//!    passed over and, if nothing else matches, told (`notify`); `available_replicas` does
//!    not hold while the rollout progresses; non-finite values are no data;
//! 7. a rollback row undecidable past its runbook deadline is `escalate`.

mod alerts;
mod attribution;
mod condition;
mod decision;
mod guards_now;
mod observations;

pub use alerts::{alert_belongs_to, alert_matches, alert_series, firing_alerts};
pub use condition::judge;
pub use decision::*;
pub use guards_now::{Reading, always_blocking, guard_sentence, guards_now};
pub use observations::*;

use chrono::{DateTime, Utc};

use crate::policy::duration::format_duration;
use crate::policy::{Action, GuardScope, Policy, Row, RowWindow};
use condition::Context;

/// Decides what to do about the current deploy at `now`.
pub fn decide(policy: &Policy, observations: &Observations, now: DateTime<Utc>) -> Decision {
    let Some(deploy) = observations.deploy() else {
        return Decision::plain(
            DecisionKind::None,
            "no deploy observed yet",
            Evidence::default(),
        );
    };
    let age = now - deploy.at;
    let mut evidence = Evidence {
        deploy_age: Some(format_duration(age)),
        revision: deploy.revision,
        ..Evidence::default()
    };
    if let Some(ff) = policy.window.fix_forward_after
        && age > ff
    {
        let reason = format!(
            "deploy is {} old, past fix_forward_after {}: fix forward, no automatic rollback",
            format_duration(age),
            format_duration(ff)
        );
        return Decision::plain(DecisionKind::None, reason, evidence);
    }
    let ctx = Context {
        policy,
        observations,
        deployed_at: deploy.at,
        now,
    };
    let mut matched = None;
    for row in policy.matrix.iter().filter(|r| row_applies(policy, r, age)) {
        let conditions: Vec<ConditionEvidence> = row
            .when
            .iter()
            .map(|c| ctx.evaluate_against_deploy(c))
            .collect();
        if row.action >= Action::RollbackAfterApproval {
            for c in conditions.iter().filter(|c| c.needs_pre_deploy) {
                if !evidence.missing_pre_deploy.contains(&c.signal) {
                    evidence.missing_pre_deploy.push(c.signal.clone());
                }
            }
        }
        match Truth::all(conditions.iter().map(|c| c.truth)) {
            Truth::True if row.action >= Action::RollbackAfterApproval && predates(&conditions) => {
                evidence.preexisting.push(preexisting_row(row, &conditions));
            }
            Truth::True => {
                matched = Some((row, conditions));
                break;
            }
            Truth::Unknown => evidence
                .unknown_rows
                .push(unknown_row(&ctx, row, &conditions)),
            Truth::False => {}
        }
    }
    let Some((row, conditions)) = matched else {
        return no_match(evidence);
    };
    evidence.conditions = conditions;
    decide_row(&ctx, row, evidence)
}

/// Whether a holding row holds only because of conditions older than the deploy.
fn predates(conditions: &[ConditionEvidence]) -> bool {
    conditions.iter().any(|c| c.preexisting.is_some())
}

fn preexisting_row(row: &Row, conditions: &[ConditionEvidence]) -> PreexistingRow {
    PreexistingRow {
        row: row.id.clone(),
        severity: row.severity.clone(),
        action: row.action,
        held_before: conditions
            .iter()
            .filter_map(|c| Some(format!("{}: {}", c.signal, c.preexisting.as_deref()?)))
            .collect(),
    }
}

fn row_applies(policy: &Policy, row: &Row, age: chrono::TimeDelta) -> bool {
    let in_window = age <= policy.window.duration;
    let window_ok = match row.window {
        RowWindow::Inside => in_window,
        RowWindow::Outside => !in_window,
        RowWindow::Any => true,
    };
    window_ok && row.within.is_none_or(|w| age <= w) && age >= chrono::TimeDelta::zero()
}

fn unknown_row(ctx: &Context<'_>, row: &Row, conditions: &[ConditionEvidence]) -> UnknownRow {
    let since = ctx.observations.unknown_since(&row.id).unwrap_or(ctx.now);
    let unknown_for = ctx.now - since;
    let deadline_passed = row
        .deadline
        .filter(|d| row.action >= Action::RollbackAfterApproval && unknown_for > *d)
        .map(format_duration);
    UnknownRow {
        row: row.id.clone(),
        severity: row.severity.clone(),
        action: row.action,
        missing: conditions
            .iter()
            .filter(|c| c.truth == Truth::Unknown)
            .map(|c| format!("{}: {}", c.signal, c.note.as_deref().unwrap_or("no data")))
            .collect(),
        unknown_for: (unknown_for > chrono::TimeDelta::zero())
            .then(|| format_duration(unknown_for)),
        deadline_passed,
    }
}

fn no_match(evidence: Evidence) -> Decision {
    let acting: Vec<&UnknownRow> = evidence
        .unknown_rows
        .iter()
        .filter(|u| u.action != Action::None)
        .collect();
    if let Some(late) = acting.iter().find(|u| u.deadline_passed.is_some()) {
        return escalate(late, evidence.clone());
    }
    if let Some(first) = acting.first() {
        let reason = format!(
            "cannot evaluate {} row(s), first {} ({}): {}",
            acting.len(),
            first.row,
            first.severity,
            first.missing.join("; ")
        );
        return Decision::plain(DecisionKind::Inconclusive, reason, evidence);
    }
    if let Some(first) = evidence.preexisting.first() {
        return preexisting(first, evidence.clone());
    }
    Decision::plain(DecisionKind::None, "no row matched", evidence)
}

/// A rollback row undecidable past its runbook deadline: a human must decide now.
fn escalate(late: &UnknownRow, evidence: Evidence) -> Decision {
    let reason = format!(
        "row {} ({}) has been undecidable for {}, past its {} deadline: a human must decide ({})",
        late.row,
        late.severity,
        late.unknown_for.as_deref().unwrap_or("0s"),
        late.deadline_passed.as_deref().unwrap_or("?"),
        late.missing.join("; ")
    );
    Decision {
        row: Some(late.row.clone()),
        severity: Some(late.severity.clone()),
        deadline: late.deadline_passed.clone(),
        ..Decision::plain(DecisionKind::Escalate, reason, evidence)
    }
}

/// A rollback row holds only because of conditions older than the deploy: tell a human.
fn preexisting(first: &PreexistingRow, evidence: Evidence) -> Decision {
    let reason = format!(
        "{} {} holds, but not because of this deploy: {} — not rolled back; a human is told",
        first.severity,
        first.row,
        first.held_before.join("; ")
    );
    Decision {
        row: Some(first.row.clone()),
        severity: Some(first.severity.clone()),
        ..Decision::plain(DecisionKind::Notify, reason, evidence)
    }
}

fn decide_row(ctx: &Context<'_>, row: &Row, mut evidence: Evidence) -> Decision {
    let summary = summarize(&evidence.conditions);
    let mut decision = Decision {
        decision: DecisionKind::None,
        row: Some(row.id.clone()),
        severity: Some(row.severity.clone()),
        method: row.method.clone(),
        deadline: row.deadline.map(format_duration),
        reason: format!("{} {}: {summary}", row.severity, row.id),
        evidence: Evidence::default(),
    };
    let hidden = evidence
        .unknown_rows
        .iter()
        .find(|u| u.action >= Action::RollbackAfterApproval)
        .cloned();
    match (row.action, hidden) {
        (Action::None | Action::Notify, Some(unknown)) => {
            decision.decision = DecisionKind::Inconclusive;
            decision.reason = format!(
                "row {} matched ({summary}) but the more severe row {} ({}) cannot be evaluated: {}",
                row.id,
                unknown.row,
                unknown.severity,
                unknown.missing.join("; ")
            );
        }
        (Action::None | Action::Notify, None) if !evidence.preexisting.is_empty() => {
            // a worse row holds, though not because of this deploy: that is what to tell
            let first = evidence.preexisting[0].clone();
            return preexisting(&first, evidence);
        }
        (Action::None, None) => decision.decision = DecisionKind::None,
        (Action::Notify, None) => decision.decision = DecisionKind::Notify,
        (Action::Rollback | Action::RollbackAfterApproval, _) => {
            decide_rollback(ctx, row, &mut decision, &mut evidence);
        }
    }
    decision.evidence = evidence;
    decision
}

fn decide_rollback(ctx: &Context<'_>, row: &Row, decision: &mut Decision, evidence: &mut Evidence) {
    if let Some(done) = ctx.observations.rollback(ctx.now) {
        decision.decision = DecisionKind::Blocked;
        evidence.blocked_by = Some("already_rolled_back".into());
        decision.reason = format!(
            "{} — but this deploy was already rolled back at {}; rollbackd never rolls back twice automatically",
            decision.reason,
            done.at.to_rfc3339()
        );
        return;
    }
    let approval = ctx.observations.approval(ctx.now);
    evidence.approved_by = approval.map(|a| a.by.clone().unwrap_or_else(|| "unknown".into()));
    evidence.guards = ctx
        .policy
        .guards
        .iter()
        .filter(|g| g.applies_to(&row.id))
        .map(|g| GuardEvidence::of(g, |c| ctx.evaluate(c)))
        .collect();
    let blocking = evidence.guards.iter().find(|ge| {
        let scope = ctx
            .policy
            .guards
            .iter()
            .find(|g| g.id == ge.guard)
            .map_or(GuardScope::Always, |g| g.scope);
        // an approval lifts `unattended` guards; `always` guards hold regardless
        ge.blocks && (approval.is_none() || scope == GuardScope::Always)
    });
    if let Some(guard) = blocking {
        decision.decision = DecisionKind::Blocked;
        evidence.blocked_by = Some(guard.guard.clone());
        decision.reason = format!(
            "{} — blocked: guard {} {}: {}",
            decision.reason,
            guard.guard,
            guard.why(),
            guard.description
        );
        return;
    }
    if row.action == Action::RollbackAfterApproval {
        match approval {
            Some(_) => decision.decision = DecisionKind::Rollback,
            None => decision.decision = DecisionKind::AwaitApproval,
        }
    } else {
        decision.decision = DecisionKind::Rollback;
    }
}

/// A value for people: at most 4 decimals, no trailing zeros (`0.3`, not `0.29999999999999993`).
pub fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

/// `error_rate=0.35 > 0.2 (held 20m)`-style summary of conditions.
fn summarize(conditions: &[ConditionEvidence]) -> String {
    conditions
        .iter()
        .map(|c| {
            let value = c.value.map_or("n/a".to_string(), format_value);
            let ratio = c
                .ratio
                .map(|r| {
                    format!(
                        " ({r:.2}x baseline {})",
                        c.baseline.map_or("n/a".into(), format_value)
                    )
                })
                .unwrap_or_default();
            let held = match (&c.held_for, &c.required_for) {
                (Some(h), Some(r)) => format!(" held {h} (>= {r})"),
                _ => String::new(),
            };
            format!("{}={value}{ratio} {}{held}", c.signal, c.threshold)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_policy;
    use chrono::TimeDelta;
    use std::path::Path;

    const POLICY: &str = r#"
[agent]
id = "T-1"
name = "Test"
[window]
duration = "2h"
fix_forward_after = "4h"
[[workloads]]
id = "w"
kind = "Deployment"
namespace = "ns"
name = "w"
[signals.error_rate]
promql = "x"
[signals.latency]
promql = "y"
baseline = "1h"
[signals.safe]
promql = "z"
[signals.corruption]
alert = { condition = "data_corruption" }
[[matrix]]
id = "p0"
severity = "P0"
when = [{ signal = "error_rate", above = 0.5 }]
action = "rollback"
method = "m"
[[matrix]]
id = "alert"
severity = "P0"
when = [{ signal = "corruption", equals = 1 }]
window = "any"
action = "rollback"
method = "m"
[[matrix]]
id = "p1"
severity = "P1"
when = [{ signal = "latency", above = 2.0, relative_to = "baseline", for = "15m" }]
action = "rollback_after_approval"
method = "m"
[[matrix]]
id = "p2"
severity = "P2"
when = [{ signal = "latency", above = 1.5, relative_to = "baseline" }]
action = "notify"
[[guards]]
id = "g"
description = "safety"
when = [{ signal = "safe", below = 1 }]
scope = "unattended"
[methods.m]
[[methods.m.steps]]
undo = "previous"
[verification]
rollout_timeout = "5m"
[notify]
"#;

    fn t(minutes: i64) -> DateTime<Utc> {
        "2025-01-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::minutes(minutes)
    }

    fn setup() -> (Policy, Observations) {
        let policy = parse_policy(Path::new("t.toml"), POLICY).unwrap();
        let mut obs = Observations::new();
        for m in -60..0 {
            obs.record_sample("latency", t(m), Some(1.0));
        }
        obs.record_deploy(Deploy {
            at: t(0),
            ..Deploy::default()
        });
        (policy, obs)
    }

    fn healthy(obs: &mut Observations, m: i64) {
        obs.record_sample("error_rate", t(m), Some(0.0));
        obs.record_sample("latency", t(m), Some(1.0));
        obs.record_sample("safe", t(m), Some(1.0));
    }

    #[test]
    fn missing_data_is_inconclusive_never_a_rollback() {
        let (policy, mut obs) = setup();
        obs.record_sample("error_rate", t(1), None);
        obs.record_sample("latency", t(1), Some(1.0));
        obs.record_sample("safe", t(1), Some(1.0));
        let d = decide(&policy, &obs, t(1));
        assert_eq!(d.decision, DecisionKind::Inconclusive, "{}", d.reason);
        assert!(d.reason.contains("error_rate: no data"), "{}", d.reason);
    }

    #[test]
    fn a_notify_match_below_an_unknown_rollback_row_is_inconclusive() {
        let (policy, mut obs) = setup();
        obs.record_sample("error_rate", t(1), None);
        obs.record_sample("latency", t(1), Some(1.7));
        obs.record_sample("safe", t(1), Some(1.0));
        let d = decide(&policy, &obs, t(1));
        assert_eq!(d.decision, DecisionKind::Inconclusive);
        assert_eq!(d.row.as_deref(), Some("p2"));
        assert!(d.reason.contains("more severe row p0"), "{}", d.reason);
    }

    #[test]
    fn persistence_and_baseline() {
        let (policy, mut obs) = setup();
        for m in 1..=16 {
            healthy(&mut obs, m);
            obs.record_sample("latency", t(m), Some(2.5));
        }
        // 2.5x baseline from minute 1: at minute 15 it has held 14 minutes
        assert_eq!(decide(&policy, &obs, t(15)).row.as_deref(), Some("p2"));
        let d = decide(&policy, &obs, t(16));
        assert_eq!(
            (d.decision, d.row.as_deref()),
            (DecisionKind::AwaitApproval, Some("p1"))
        );
        assert_eq!(d.evidence.conditions[0].baseline, Some(1.0));
        assert_eq!(d.evidence.conditions[0].held_for.as_deref(), Some("15m"));
    }

    #[test]
    fn guard_that_cannot_be_evaluated_blocks() {
        let (policy, mut obs) = setup();
        obs.record_sample("error_rate", t(1), Some(0.9));
        obs.record_sample("latency", t(1), Some(1.0));
        let d = decide(&policy, &obs, t(1));
        assert_eq!(d.decision, DecisionKind::Blocked);
        assert_eq!(d.evidence.blocked_by.as_deref(), Some("g"));
        assert!(
            d.reason.contains("cannot be evaluated (fail safe)"),
            "{}",
            d.reason
        );
        obs.record_sample("safe", t(2), Some(1.0));
        obs.record_sample("error_rate", t(2), Some(0.9));
        assert_eq!(decide(&policy, &obs, t(2)).decision, DecisionKind::Rollback);
    }

    #[test]
    fn approval_lifts_an_unattended_guard() {
        let (policy, mut obs) = setup();
        healthy(&mut obs, 1);
        obs.record_sample("error_rate", t(1), Some(0.9));
        obs.record_sample("safe", t(1), Some(0.0));
        assert_eq!(decide(&policy, &obs, t(1)).decision, DecisionKind::Blocked);
        obs.record_approval(Approval {
            at: t(2),
            by: Some("sre".into()),
            row: None,
        });
        let d = decide(&policy, &obs, t(2));
        assert_eq!(d.decision, DecisionKind::Rollback);
        assert_eq!(d.evidence.approved_by.as_deref(), Some("sre"));
    }

    #[test]
    fn window_and_fix_forward_edges() {
        let (policy, mut obs) = setup();
        for m in [119, 121, 239, 241] {
            healthy(&mut obs, m);
            obs.record_sample("error_rate", t(m), Some(0.9));
        }
        assert_eq!(
            decide(&policy, &obs, t(119)).row.as_deref(),
            Some("p0"),
            "inside 2h"
        );
        assert_eq!(
            decide(&policy, &obs, t(121)).decision,
            DecisionKind::None,
            "outside 2h"
        );
        let fire = |obs: &mut Observations, m| {
            obs.record_alert(AlertTransition {
                at: t(m),
                started_at: None,
                firing: true,
                fingerprint: "f".into(),
                labels: [("condition".to_string(), "data_corruption".to_string())].into(),
            })
        };
        fire(&mut obs, 239);
        assert_eq!(
            decide(&policy, &obs, t(239)).row.as_deref(),
            Some("alert"),
            "`any` row before 4h"
        );
        let d = decide(&policy, &obs, t(241));
        assert_eq!(d.decision, DecisionKind::None);
        assert!(d.reason.contains("fix forward"), "{}", d.reason);
    }

    #[test]
    fn never_rolls_back_twice_and_alerts_dedupe() {
        let (policy, mut obs) = setup();
        healthy(&mut obs, 1);
        for _ in 0..3 {
            obs.record_alert(AlertTransition {
                at: t(1),
                started_at: None,
                firing: true,
                fingerprint: "f".into(),
                labels: [("condition".to_string(), "data_corruption".to_string())].into(),
            });
        }
        assert_eq!(
            obs.alerts().len(),
            1,
            "redelivered alerts are recorded once"
        );
        assert_eq!(decide(&policy, &obs, t(1)).decision, DecisionKind::Rollback);
        obs.record_rollback(RollbackRecord {
            at: t(2),
            revision: Some(3),
        });
        let d = decide(&policy, &obs, t(3));
        assert_eq!(
            (d.decision, d.evidence.blocked_by.as_deref()),
            (DecisionKind::Blocked, Some("already_rolled_back"))
        );
    }

    #[test]
    fn values_are_formatted_for_people() {
        assert_eq!(format_value(0.29999999999999993), "0.3");
        assert_eq!(format_value(2.0), "2");
        assert_eq!(format_value(0.12), "0.12");
    }
}
