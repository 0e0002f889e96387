//! The leader's fence: before each write to the cluster, a leader checks with the API
//! server that the Lease still names it, in the term it acquired (`leaseTransitions`), and
//! has not expired. A replica that lost the Lease without noticing yet (a long pause, a
//! partition, a slow clock) writes nothing; the step stays unfinished in the journal and
//! the new leader checks it against the cluster before it runs it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tokio::sync::watch;

use super::ClusterError;

/// Checks a replica's right to write (see the module doc).
#[derive(Debug, Clone)]
pub struct Fence {
    api: Api<Lease>,
    lease: String,
    identity: String,
    /// The `leaseTransitions` of the term this replica holds; `None` when it holds none.
    term: watch::Receiver<Option<i32>>,
    timeout: Duration,
}

impl Fence {
    /// A fence on Lease `namespace/lease` for `identity`, whose current term the leader
    /// elector publishes on `term`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        lease: &str,
        identity: &str,
        term: watch::Receiver<Option<i32>>,
    ) -> Self {
        Fence {
            api: Api::namespaced(client, namespace),
            lease: lease.to_string(),
            identity: identity.to_string(),
            term,
            timeout: Duration::from_secs(5),
        }
    }

    /// `Ok` when this replica may write now; [`ClusterError::Fenced`] saying why not
    /// otherwise (a Lease that cannot be read fences too: no write without proof).
    pub async fn check(&self) -> Result<(), ClusterError> {
        let Some(term) = *self.term.borrow() else {
            return Err(ClusterError::Fenced(
                "this replica does not hold the Lease".into(),
            ));
        };
        let lease = match tokio::time::timeout(self.timeout, self.api.get_opt(&self.lease)).await {
            Ok(Ok(lease)) => lease,
            Ok(Err(e)) => {
                return Err(ClusterError::Fenced(format!(
                    "cannot read Lease {}: {e}",
                    self.lease
                )));
            }
            Err(_) => {
                return Err(ClusterError::Fenced(format!(
                    "reading Lease {} timed out",
                    self.lease
                )));
            }
        };
        judge(lease.as_ref(), &self.identity, term, Utc::now()).map_err(ClusterError::Fenced)
    }
}

/// Whether `lease` lets `identity`, leading in term `term`, write at `now`; why not.
pub fn judge(
    lease: Option<&Lease>,
    identity: &str,
    term: i32,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let spec = lease
        .and_then(|l| l.spec.as_ref())
        .ok_or_else(|| "the Lease is gone".to_string())?;
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder != identity {
        let holder = if holder.is_empty() { "nobody" } else { holder };
        return Err(format!("the Lease is held by {holder}, not {identity}"));
    }
    let transitions = spec.lease_transitions.unwrap_or(0);
    if transitions != term {
        return Err(format!(
            "the Lease changed hands since this term began (leaseTransitions {transitions}, this term {term})"
        ));
    }
    let expires = spec
        .renew_time
        .as_ref()
        .and_then(|r| DateTime::from_timestamp_micros(r.0.as_microsecond()))
        .map(|r| {
            r + chrono::TimeDelta::seconds(i64::from(spec.lease_duration_seconds.unwrap_or(0)))
        });
    match expires {
        Some(at) if at > now => Ok(()),
        Some(at) => Err(format!("the Lease expired at {}", at.to_rfc3339())),
        None => Err("the Lease has no renewTime".into()),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        "2026-01-15T03:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("time")
            + chrono::TimeDelta::seconds(s)
    }

    fn lease(holder: Option<&str>, transitions: i32, renewed: i64) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_transitions: Some(transitions),
                renew_time: Some(MicroTime(
                    k8s_openapi::jiff::Timestamp::from_microsecond(t(renewed).timestamp_micros())
                        .expect("time"),
                )),
                lease_duration_seconds: Some(15),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn only_the_holder_of_this_term_within_its_lease_may_write() {
        let mine = lease(Some("pod-a"), 3, 0);
        assert_eq!(judge(Some(&mine), "pod-a", 3, t(10)), Ok(()));
        let why = |l: &Lease, term, now| judge(Some(l), "pod-a", term, now).unwrap_err();
        assert!(why(&mine, 3, t(15)).contains("expired"));
        assert!(why(&lease(Some("pod-b"), 4, 0), 3, t(1)).contains("held by pod-b"));
        assert!(why(&lease(None, 3, 0), 3, t(1)).contains("held by nobody"));
        // taken over and taken back: same holder, another term
        assert!(why(&lease(Some("pod-a"), 5, 0), 3, t(1)).contains("changed hands"));
        assert!(judge(None, "pod-a", 3, t(1)).unwrap_err().contains("gone"));
    }
}
