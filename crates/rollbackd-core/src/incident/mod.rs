//! The incident lifecycle: a pure state machine. Every transition the daemon makes goes
//! through [`next`], is persisted by the store, and only then acted on.
//!
//! ```text
//! detected → awaiting_approval → rolling_back → verifying → monitoring → resolved
//!          ↘ blocked (guard, rate limit)      ↘ failed → escalated
//!          ↘ cancelled (from any open state but failed; in flight, the runner stops at
//!            the next step boundary)
//!          ↘ superseded (from detected, awaiting_approval, blocked, and rolling_back
//!            before a mutating step: a newer deploy replaced the revision, or the deploy
//!            is past `fix_forward_after`)
//! rolling_back → blocked, before a mutating step: an `always` guard holds again after
//! an approval
//! ```

mod record;
mod supersede;

use std::fmt;
use std::str::FromStr;

pub use record::{Incident, NewIncident, TransitionRecord, Trigger};
pub use supersede::{Running, may_supersede, superseded};

use serde::{Deserialize, Serialize};

/// Where an incident is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = IncidentState))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// A decision wants a rollback; nothing done yet.
    Detected,
    /// Waiting for a human's approval.
    AwaitingApproval,
    /// Method steps are running.
    RollingBack,
    /// Checking that the rollback worked.
    Verifying,
    /// The runbook's post-rollback watch.
    Monitoring,
    /// Stable after the watch: done.
    Resolved,
    /// A step or the verification failed.
    Failed,
    /// A human has been handed the incident with its evidence.
    Escalated,
    /// A human cancelled it (in flight: stopped at a step boundary).
    Cancelled,
    /// A guard (or an earlier rollback) stopped the rollback; a human decides.
    Blocked,
    /// The world moved on before anything was mutated: a newer deploy replaced the
    /// incident's revision, or the deploy is past `fix_forward_after`. Nothing is rolled back.
    Superseded,
}

impl State {
    /// Every state, in lifecycle order.
    pub const ALL: [State; 11] = [
        State::Detected,
        State::AwaitingApproval,
        State::RollingBack,
        State::Verifying,
        State::Monitoring,
        State::Resolved,
        State::Failed,
        State::Escalated,
        State::Cancelled,
        State::Blocked,
        State::Superseded,
    ];

    /// The spelling used in the API, the store and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Detected => "detected",
            State::AwaitingApproval => "awaiting_approval",
            State::RollingBack => "rolling_back",
            State::Verifying => "verifying",
            State::Monitoring => "monitoring",
            State::Resolved => "resolved",
            State::Failed => "failed",
            State::Escalated => "escalated",
            State::Cancelled => "cancelled",
            State::Blocked => "blocked",
            State::Superseded => "superseded",
        }
    }

    /// No further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Resolved | State::Escalated | State::Cancelled | State::Superseded
        )
    }

    /// The daemon still has work to do for it (resumed after a restart).
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            State::Detected
                | State::RollingBack
                | State::Verifying
                | State::Monitoring
                | State::Failed
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown incident state {s:?}"))
    }
}

/// What happens to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The decision is an unattended rollback (or a human triggered one).
    Start,
    /// The decision needs a human's approval.
    RequestApproval,
    /// A guard or an earlier rollback blocks it.
    Block,
    /// A human approved.
    Approve,
    /// A human cancelled.
    Cancel,
    /// Every step finished.
    StepsDone,
    /// A step failed.
    StepFailed,
    /// Verification passed.
    Verified,
    /// Verification failed (after the one recovery attempt).
    VerificationFailed,
    /// The watch ended with the service stable.
    WatchElapsed,
    /// The service degraded again during the watch.
    WatchBreached,
    /// A human was handed the incident.
    Escalate,
    /// The incident's revision is no longer the one running (a newer deploy landed) or the
    /// deploy is past `fix_forward_after`: end it without rolling back. From `rolling_back`
    /// only before a mutating step ran (the caller checks the journal; a mutating step that
    /// finds a fresh deploy on the workload uses it too).
    Supersede,
}

/// A transition that the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event:?} an incident that is {from}")]
pub struct TransitionError {
    /// The incident's state when the event came.
    pub from: State,
    /// The event the state does not allow.
    pub event: Event,
}

impl TransitionError {
    /// Label for metrics.
    pub fn metric_label(&self) -> &'static str {
        "invalid_transition"
    }
}

/// The state after `event`, or why it cannot happen.
pub fn next(from: State, event: Event) -> Result<State, TransitionError> {
    use Event as E;
    use State as S;
    let to = match (from, event) {
        (S::Detected, E::Start) => S::RollingBack,
        (S::Detected, E::RequestApproval) => S::AwaitingApproval,
        (S::Detected, E::Block) => S::Blocked,
        (S::AwaitingApproval | S::Blocked, E::Approve) => S::RollingBack,
        // an approved incident whose `always` guard holds again before its first mutating
        // step (the runner checks the journal)
        (S::AwaitingApproval | S::RollingBack, E::Block) => S::Blocked,
        (
            S::Detected
            | S::AwaitingApproval
            | S::Blocked
            | S::RollingBack
            | S::Verifying
            | S::Monitoring,
            E::Cancel,
        ) => S::Cancelled,
        (S::Detected | S::AwaitingApproval | S::Blocked | S::RollingBack, E::Supersede) => {
            S::Superseded
        }
        (S::RollingBack, E::StepsDone) => S::Verifying,
        (S::RollingBack, E::StepFailed) => S::Failed,
        (S::Verifying, E::Verified) => S::Monitoring,
        (S::Verifying, E::VerificationFailed) => S::Failed,
        (S::Monitoring, E::WatchElapsed) => S::Resolved,
        (S::Monitoring, E::WatchBreached) => S::Failed,
        (S::Failed | S::Blocked, E::Escalate) => S::Escalated,
        _ => return Err(TransitionError { from, event }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_and_the_failure_path() {
        let mut s = State::Detected;
        for e in [
            Event::Start,
            Event::StepsDone,
            Event::Verified,
            Event::WatchElapsed,
        ] {
            s = next(s, e).unwrap();
        }
        assert_eq!(s, State::Resolved);
        let failed = next(State::Verifying, Event::VerificationFailed).unwrap();
        assert_eq!(next(failed, Event::Escalate), Ok(State::Escalated));
    }

    #[test]
    fn approve_after_cancel_fails_cleanly() {
        let cancelled = next(State::AwaitingApproval, Event::Cancel).unwrap();
        let err = next(cancelled, Event::Approve).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot Approve an incident that is cancelled"
        );
        assert!(
            next(State::Resolved, Event::Cancel).is_err(),
            "nothing to cancel once resolved"
        );
    }

    #[test]
    fn terminal_states_accept_nothing() {
        let events = [
            Event::Start,
            Event::RequestApproval,
            Event::Block,
            Event::Approve,
            Event::Cancel,
            Event::StepsDone,
            Event::StepFailed,
            Event::Verified,
            Event::VerificationFailed,
            Event::WatchElapsed,
            Event::WatchBreached,
            Event::Escalate,
            Event::Supersede,
        ];
        for s in State::ALL.into_iter().filter(|s| s.is_terminal()) {
            for e in events {
                assert!(next(s, e).is_err(), "{s} accepted {e:?}");
            }
        }
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>(), Ok(s));
        }
    }

    #[test]
    fn a_rollback_in_flight_can_be_cancelled() {
        for s in [State::RollingBack, State::Verifying, State::Monitoring] {
            assert_eq!(next(s, Event::Cancel), Ok(State::Cancelled), "{s}");
        }
    }

    #[test]
    fn supersede_ends_an_incident_before_anything_is_verified() {
        for s in [
            State::Detected,
            State::AwaitingApproval,
            State::Blocked,
            State::RollingBack,
        ] {
            assert_eq!(next(s, Event::Supersede), Ok(State::Superseded), "{s}");
        }
        for s in [State::Verifying, State::Monitoring, State::Failed] {
            assert!(next(s, Event::Supersede).is_err(), "{s}");
        }
        assert!(State::Superseded.is_terminal());
        assert!(!State::Superseded.is_in_flight());
    }
}
