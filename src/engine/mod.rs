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
//! 5. `rollback_after_approval` waits for an approval.

mod alerts;
mod condition;
mod decision;
mod observations;

pub use alerts::{alert_belongs_to, alert_matches, alert_series};
pub use decision::*;
pub use observations::*;

use chrono::{DateTime, Utc};

use crate::policy::duration::format_duration;
use crate::policy::{Action, GuardScope, Policy, Row, RowWindow};
use condition::Context;

/// Decides what to do about the current deploy at `now`.
pub fn decide(policy: &Policy, observations: &Observations, now: DateTime<Utc>) -> Decision {
    let Some(deploy) = observations.deploy() else {
        return Decision::plain(DecisionKind::None, "no deploy observed yet", Evidence::default());
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
        let conditions: Vec<ConditionEvidence> = row.when.iter().map(|c| ctx.evaluate(c)).collect();
        match Truth::all(conditions.iter().map(|c| c.truth)) {
            Truth::True => {
                matched = Some((row, conditions));
                break;
            }
            Truth::Unknown => evidence.unknown_rows.push(unknown_row(row, &conditions)),
            Truth::False => {}
        }
    }
    let Some((row, conditions)) = matched else {
        return no_match(evidence);
    };
    evidence.conditions = conditions;
    decide_row(&ctx, row, evidence)
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

fn unknown_row(row: &Row, conditions: &[ConditionEvidence]) -> UnknownRow {
    UnknownRow {
        row: row.id.clone(),
        severity: row.severity.clone(),
        action: row.action,
        missing: conditions
            .iter()
            .filter(|c| c.truth == Truth::Unknown)
            .map(|c| format!("{}: {}", c.signal, c.note.as_deref().unwrap_or("no data")))
            .collect(),
    }
}

fn no_match(evidence: Evidence) -> Decision {
    let acting: Vec<&UnknownRow> = evidence
        .unknown_rows
        .iter()
        .filter(|u| u.action != Action::None)
        .collect();
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
    Decision::plain(DecisionKind::None, "no row matched", evidence)
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
    evidence.guards = ctx
        .policy
        .guards
        .iter()
        .filter(|g| g.applies_to(&row.id))
        .map(|g| {
            let conditions: Vec<ConditionEvidence> = g.when.iter().map(|c| ctx.evaluate(c)).collect();
            let truth = Truth::all(conditions.iter().map(|c| c.truth));
            GuardEvidence {
                guard: g.id.clone(),
                description: g.description.clone(),
                blocks: truth != Truth::False,
                conditions,
            }
        })
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
        let why = if guard.conditions.iter().any(|c| c.truth == Truth::Unknown) {
            "cannot be evaluated (fail safe)"
        } else {
            "holds"
        };
        decision.decision = DecisionKind::Blocked;
        evidence.blocked_by = Some(guard.guard.clone());
        decision.reason = format!(
            "{} — blocked: guard {} {why}: {}",
            decision.reason, guard.guard, guard.description
        );
        return;
    }
    if row.action == Action::RollbackAfterApproval {
        match approval {
            Some(a) => {
                evidence.approved_by = Some(a.by.clone().unwrap_or_else(|| "unknown".into()));
                decision.decision = DecisionKind::Rollback;
            }
            None => decision.decision = DecisionKind::AwaitApproval,
        }
    } else {
        decision.decision = DecisionKind::Rollback;
    }
}

/// `error_rate=0.35 > 0.2 (held 20m)`-style summary of conditions.
fn summarize(conditions: &[ConditionEvidence]) -> String {
    conditions
        .iter()
        .map(|c| {
            let value = c.value.map_or("n/a".to_string(), |v| format!("{v}"));
            let ratio = c.ratio.map(|r| format!(" ({r:.2}x baseline {})", c.baseline.unwrap_or(f64::NAN))).unwrap_or_default();
            let held = match (&c.held_for, &c.required_for) {
                (Some(h), Some(r)) => format!(" held {h} (>= {r})"),
                _ => String::new(),
            };
            format!("{}={value}{ratio} {}{held}", c.signal, c.threshold)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
