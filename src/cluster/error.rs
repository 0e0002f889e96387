//! Errors at the Kubernetes boundary.

use std::time::Duration;

/// The message of the API server's 422 for a JSON patch that cannot be applied (a failed
/// `test` op among them).
pub const JSON_PATCH_NOT_APPLIED: &str =
    "the server rejected our request due to an error in our request";

/// Why a cluster action failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The API server answered with an error status, or the client failed.
    #[error("kubernetes API error during {context}: {source}")]
    Api {
        /// What rollbackd was doing.
        context: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A call took longer than the per-call timeout.
    #[error("kubernetes API call timed out after {timeout:?} during {context}")]
    CallTimeout {
        /// What rollbackd was doing.
        context: String,
        /// The limit.
        timeout: Duration,
    },
    /// An object the step needs does not exist.
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        /// Object kind.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// `--to-revision=N` names a revision that is not in the history.
    #[error("unable to find specified revision {0} in history")]
    RevisionNotFound(u64),
    /// The workload has fewer than two revisions.
    #[error("no rollout history found for {0}: no previous revision")]
    NoPrevious(String),
    /// No revision below the current one passed verification.
    #[error(
        "no verified (last known good) revision below the current revision {current} of {workload}; refusing to guess"
    )]
    NoLastKnownGood {
        /// The workload.
        workload: String,
        /// Its current revision.
        current: u64,
    },
    /// The workload no longer runs the incident's revision: someone deployed since. The step
    /// refuses, so a fresh deploy is never rolled back by a rollback meant for an older one.
    #[error(
        "{workload} is no longer on revision {expected} (now {found}): someone deployed since; not acting on the newer deploy"
    )]
    Superseded {
        /// The workload (`namespace/name`).
        workload: String,
        /// The revision the incident is about.
        expected: u64,
        /// What the workload runs now.
        found: String,
    },
    /// A JSON patch's `test` precondition failed: the object changed since it was read.
    #[error("{0} changed since it was read (a JSON patch test failed)")]
    PreconditionFailed(String),
    /// No revision is safe to roll back to (gone, or itself rolled back as bad).
    #[error("no safe revision to roll {workload} back to: {reason}")]
    NoSafeTarget {
        /// The workload (`namespace/name`).
        workload: String,
        /// Why none is safe, for a human.
        reason: String,
    },
    /// The Deployment is paused.
    #[error("cannot undo a paused deployment; resume it first")]
    Paused,
    /// An object in the cluster does not have the shape rollbackd needs.
    #[error("invalid object: {0}")]
    Invalid(String),
    /// A step's request is impossible (bad container name, missing variable, …).
    #[error("invalid step: {0}")]
    InvalidStep(String),
    /// No ConfigMap snapshot exists for the target revision.
    #[error("no snapshot of ConfigMap {namespace}/{name} for revision {revision}")]
    SnapshotMissing {
        /// Namespace.
        namespace: String,
        /// ConfigMap name.
        name: String,
        /// Revision whose snapshot was looked for.
        revision: u64,
    },
    /// A Job failed; its pod logs are kept.
    #[error("job {name} failed: {reason}")]
    JobFailed {
        /// Job name.
        name: String,
        /// Condition reason.
        reason: String,
        /// Pod logs collected.
        logs: String,
    },
    /// An HTTP step or health check failed.
    #[error("http {method} {url}: {message}")]
    Http {
        /// Method.
        method: String,
        /// URL (after placeholders).
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The rollout failed (progress deadline exceeded).
    #[error("rollout failed: {0}")]
    RolloutFailed(String),
    /// A step did not finish within its timeout.
    #[error("step timed out after {0:?}: {1}")]
    StepTimeout(Duration, String),
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// This replica may not write: it does not hold the Lease in the term it acts for.
    #[error("fenced: {0}")]
    Fenced(String),
    /// A backup could not be written.
    #[error("backup failed: {0}")]
    Backup(String),
    /// JSON (de)serialization of an object failed.
    #[error("serialization: {0}")]
    Json(#[from] serde_json::Error),
}

impl ClusterError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ClusterError::Api { .. } => "api",
            ClusterError::CallTimeout { .. } => "call_timeout",
            ClusterError::NotFound { .. } => "not_found",
            ClusterError::RevisionNotFound(_) => "revision_not_found",
            ClusterError::NoPrevious(_) => "no_previous",
            ClusterError::NoLastKnownGood { .. } => "no_last_known_good",
            ClusterError::Superseded { .. } => "superseded",
            ClusterError::NoSafeTarget { .. } => "no_safe_target",
            ClusterError::PreconditionFailed(_) => "precondition_failed",
            ClusterError::Paused => "paused",
            ClusterError::Invalid(_) => "invalid_object",
            ClusterError::InvalidStep(_) => "invalid_step",
            ClusterError::SnapshotMissing { .. } => "snapshot_missing",
            ClusterError::JobFailed { .. } => "job_failed",
            ClusterError::Http { .. } => "http",
            ClusterError::RolloutFailed(_) => "rollout_failed",
            ClusterError::StepTimeout(..) => "step_timeout",
            ClusterError::Cancelled => "cancelled",
            ClusterError::Fenced(_) => "fenced",
            ClusterError::Backup(_) => "backup",
            ClusterError::Json(_) => "json",
        }
    }

    /// The HTTP status of an API error, if any.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            ClusterError::Api {
                source: kube::Error::Api(s),
                ..
            } => Some(s.code),
            _ => None,
        }
    }

    /// Whether the error is a 409 Conflict.
    pub fn is_conflict(&self) -> bool {
        self.status_code() == Some(409)
    }

    /// Whether a write lost a race with another write (409 Conflict, or a failed JSON
    /// patch precondition): the step re-reads and decides again.
    pub fn is_write_race(&self) -> bool {
        self.is_conflict() || matches!(self, ClusterError::PreconditionFailed(_))
    }

    /// Turns the API server's answer to a JSON patch whose `test` op failed (422, reason
    /// Invalid, with the generic message below: the server keeps none of the patch
    /// library's words) into [`ClusterError::PreconditionFailed`]; other errors pass.
    pub fn from_json_patch_test(self, object: &str) -> ClusterError {
        match &self {
            ClusterError::Api {
                source: kube::Error::Api(s),
                ..
            } if s.code == 422 && s.message == JSON_PATCH_NOT_APPLIED => {
                ClusterError::PreconditionFailed(object.to_string())
            }
            _ => self,
        }
    }
}
