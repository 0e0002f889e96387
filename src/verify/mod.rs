//! Verification after a rollback: rollout complete (kubectl's rules) within the policy's
//! `rollout_timeout`, the current revision's pods all Ready with unchanged restart counts
//! for `ready_hold`, the HTTP health check, and the policy's signal checks through a hook.
//! On a pass the current revision's ReplicaSet is annotated `rollbackd.io/verified: "true"`.
//!
//! Failure recovery follows the runbooks' "Rollback Stuck" sections: the policy's
//! `verification.recovery` method runs ONCE, verification runs again, and if it still fails
//! the outcome says escalate. It never loops and never starts a second rollback.

pub mod pods;

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use crate::cluster::Cluster;
use crate::cluster::annotate::mark_verified;
use crate::cluster::history::load;
use crate::cluster::rollout_status::wait_rollout;
use crate::executor::{Executor, MethodOutcome, RunContext, StepJournal};
use rollbackd_core::policy::{Condition, Workload};

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// What was checked (`rollout`, `pods_ready_hold`, `health`, or a signal name).
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Evidence for a human.
    pub detail: String,
}

/// The policy's post-rollback signal checks, evaluated by the evaluation loop.
pub trait SignalChecks: Send + Sync {
    /// Evaluates one condition now.
    fn check(&self, condition: &Condition) -> impl Future<Output = CheckResult> + Send;
}

/// A [`SignalChecks`] with fixed answers per signal (tests, and policies without checks).
#[derive(Debug, Clone, Default)]
pub struct StaticChecks {
    /// Signal name → passes. A signal not listed fails (no data is not a pass).
    pub answers: std::collections::BTreeMap<String, bool>,
}

impl SignalChecks for StaticChecks {
    async fn check(&self, condition: &Condition) -> CheckResult {
        let passed = self.answers.get(&condition.signal).copied();
        CheckResult {
            name: condition.signal.clone(),
            passed: passed == Some(true),
            detail: match passed {
                Some(true) => format!(
                    "{} {} holds",
                    condition.signal,
                    condition.describe_thresholds()
                ),
                Some(false) => format!(
                    "{} {} does not hold",
                    condition.signal,
                    condition.describe_thresholds()
                ),
                None => format!(
                    "{}: no data (inconclusive counts as failed)",
                    condition.signal
                ),
            },
        }
    }
}

/// What verification concluded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyOutcome {
    /// All checks passed (on the first attempt, or after recovery).
    pub passed: bool,
    /// Verification failed even after the recovery method: a human must take over.
    pub escalate: bool,
    /// The checks of the last attempt.
    pub checks: Vec<CheckResult>,
    /// The checks of the first attempt, when recovery ran.
    pub first_attempt: Option<Vec<CheckResult>>,
    /// The recovery method's outcome, when it ran.
    pub recovery: Option<MethodOutcome>,
    /// One paragraph for a human.
    pub evidence: String,
    /// The ReplicaSet annotated verified, on a pass.
    pub verified_replicaset: Option<String>,
}

/// Runs verification (and, once, recovery).
#[derive(Clone)]
pub struct Verifier {
    executor: Executor,
    http: reqwest::Client,
}

fn std_dur(d: chrono::TimeDelta) -> Duration {
    d.to_std().unwrap_or(Duration::ZERO)
}

impl Verifier {
    /// A verifier running recovery methods with `executor`.
    pub fn new(executor: Executor) -> Self {
        Verifier {
            executor,
            http: reqwest::Client::new(),
        }
    }

    fn cluster(&self) -> &Cluster {
        self.executor.cluster()
    }

    /// Verifies the policy's primary workload; on failure runs the recovery method once and
    /// verifies again; still failing → `escalate`.
    pub async fn verify<H: SignalChecks>(
        &self,
        ctx: &RunContext,
        hooks: &H,
        journal: &dyn StepJournal,
    ) -> VerifyOutcome {
        let policy = ctx.policy.clone();
        let Some(w) = policy.primary_workload() else {
            return VerifyOutcome {
                passed: false,
                escalate: true,
                checks: vec![CheckResult {
                    name: "workload".into(),
                    passed: false,
                    detail: "the policy has no primary workload".into(),
                }],
                first_attempt: None,
                recovery: None,
                evidence: "nothing to verify: no primary workload".into(),
                verified_replicaset: None,
            };
        };
        let first = self.attempt(ctx, w, hooks).await;
        if first.iter().all(|c| c.passed) {
            return self.passed(w, first, None, None).await;
        }
        let recovery_name = policy.verification.recovery.clone();
        let method = recovery_name.as_ref().and_then(|n| policy.methods.get(n));
        let Some(method) = method else {
            let evidence = format!(
                "verification failed ({}); no recovery method: escalate",
                failures(&first)
            );
            return failed(first, None, None, evidence);
        };
        tracing::warn!(method = %method.name, failures = %failures(&first), "verification failed, running the recovery method once");
        let recovery = match self.executor.run(ctx, method, journal).await {
            Ok(o) => o,
            Err(e) => {
                let evidence = format!(
                    "verification failed ({}); recovery method {} could not run: {e}; escalate",
                    failures(&first),
                    method.name
                );
                return failed(first, None, None, evidence);
            }
        };
        let second = self.attempt(ctx, w, hooks).await;
        if second.iter().all(|c| c.passed) {
            return self.passed(w, second, Some(first), Some(recovery)).await;
        }
        let evidence = format!(
            "verification failed ({}); recovery method {} ran once ({}); still failing ({}): escalate",
            failures(&first),
            method.name,
            if recovery.succeeded() {
                "completed"
            } else {
                "failed"
            },
            failures(&second)
        );
        failed(second, Some(first), Some(recovery), evidence)
    }

    async fn passed(
        &self,
        w: &Workload,
        checks: Vec<CheckResult>,
        first_attempt: Option<Vec<CheckResult>>,
        recovery: Option<MethodOutcome>,
    ) -> VerifyOutcome {
        let mut verified = None;
        match load(self.cluster(), w).await {
            Ok((_, h)) => {
                if let Some(cur) = h.current() {
                    match mark_verified(self.cluster(), &w.namespace, &cur.replicaset).await {
                        Ok(()) => verified = Some(cur.replicaset.clone()),
                        // Not fatal: an unmarked revision is never used as last known good.
                        Err(e) => {
                            tracing::warn!(replicaset = %cur.replicaset, error = %e, "could not mark the revision verified")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read history to mark the revision verified")
            }
        }
        VerifyOutcome {
            passed: true,
            escalate: false,
            evidence: format!("all {} checks passed", checks.len()),
            checks,
            first_attempt,
            recovery,
            verified_replicaset: verified,
        }
    }

    /// One verification attempt: every check, in order.
    pub async fn attempt<H: SignalChecks>(
        &self,
        ctx: &RunContext,
        w: &Workload,
        hooks: &H,
    ) -> Vec<CheckResult> {
        let v = &ctx.policy.verification;
        let mut out = Vec::new();
        let rollout =
            wait_rollout(self.cluster(), w, std_dur(v.rollout_timeout), &ctx.cancel).await;
        out.push(CheckResult {
            name: "rollout".into(),
            passed: rollout.is_ok(),
            detail: match &rollout {
                Ok(d) => d["status"].as_str().unwrap_or("rolled out").to_string(),
                Err(e) => e.to_string(),
            },
        });
        out.push(pods::ready_hold(self.cluster(), w, std_dur(v.ready_hold), &ctx.cancel).await);
        if let Some(h) = &v.health {
            out.push(self.health(&h.url, h.expect_status).await);
        }
        for c in &v.checks {
            out.push(hooks.check(c).await);
        }
        out
    }

    async fn health(&self, url: &str, expect: u16) -> CheckResult {
        let r = self
            .http
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let (passed, detail) = match r {
            Ok(resp) if resp.status().as_u16() == expect => (true, format!("GET {url}: {expect}")),
            Ok(resp) => (
                false,
                format!(
                    "GET {url}: status {}, expected {expect}",
                    resp.status().as_u16()
                ),
            ),
            Err(e) => (false, format!("GET {url}: {e}")),
        };
        CheckResult {
            name: "health".into(),
            passed,
            detail,
        }
    }
}

fn failures(checks: &[CheckResult]) -> String {
    checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

fn failed(
    checks: Vec<CheckResult>,
    first_attempt: Option<Vec<CheckResult>>,
    recovery: Option<MethodOutcome>,
    evidence: String,
) -> VerifyOutcome {
    VerifyOutcome {
        passed: false,
        escalate: true,
        checks,
        first_attempt,
        recovery,
        evidence,
        verified_replicaset: None,
    }
}
