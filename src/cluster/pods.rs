//! Pods: readiness and restart counts of a revision's pods, and the kube signals.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::history::controlled_by;
use super::views::PodView;

/// What matters about one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodState {
    /// Pod name.
    pub name: String,
    /// `Ready` condition is True.
    pub ready: bool,
    /// Sum of container restart counts.
    pub restarts: u64,
    /// Containers whose last termination was `OOMKilled`.
    pub oom_killed: u64,
    /// A container waits in `CrashLoopBackOff`.
    pub crash_looping: bool,
    /// A container waits in `ImagePullBackOff` or `ErrImagePull`.
    pub image_pull_backoff: bool,
    /// Creation time.
    pub created: Option<DateTime<Utc>>,
}

impl PodState {
    /// What a pod view says.
    pub fn of(pod: &PodView) -> PodState {
        PodState {
            name: pod.metadata.name.clone().unwrap_or_default(),
            ready: pod.ready,
            restarts: pod.restarts,
            oom_killed: pod.oom_killed,
            crash_looping: pod.crash_looping,
            image_pull_backoff: pod.image_pull_backoff,
            created: pod.created,
        }
    }
}

/// The pods controlled by the ReplicaSet with uid `rs_uid`.
pub fn pods_of_replicaset<'a>(pods: &'a [Value], rs_uid: &str) -> Vec<&'a Value> {
    pods.iter().filter(|p| controlled_by(p, rs_uid)).collect()
}

/// Kubernetes-derived signals of one workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KubeSignals {
    /// Container restarts of pods created since the deploy.
    pub restarts: u64,
    /// Containers whose last termination was OOMKilled (pods created since the deploy).
    pub oom_kills: u64,
    /// Pods waiting in CrashLoopBackOff.
    pub crashlooping_pods: u64,
    /// Pods waiting in ImagePullBackOff / ErrImagePull.
    pub image_pull_backoff: u64,
    /// `status.availableReplicas`.
    pub available_replicas: u64,
    /// 1 when the rollout exceeded its progress deadline, else 0.
    pub rollout_stalled: u64,
    /// 1 while the rollout is still replacing pods within its progress deadline, else 0.
    pub rollout_progressing: u64,
}

impl KubeSignals {
    /// Counts signals from the workload's pods (already selected), the deploy time and the
    /// workload's rollout state.
    pub fn count(
        pods: &[&PodView],
        since: Option<DateTime<Utc>>,
        available: u64,
        stalled: bool,
    ) -> Self {
        let mut s = KubeSignals {
            available_replicas: available,
            rollout_stalled: u64::from(stalled),
            ..KubeSignals::default()
        };
        for p in pods {
            let recent = match (since, p.created) {
                (Some(since), Some(c)) => c >= since,
                _ => true,
            };
            if recent {
                s.restarts += p.restarts;
                s.oom_kills += p.oom_killed;
            }
            s.crashlooping_pods += u64::from(p.crash_looping);
            s.image_pull_backoff += u64::from(p.image_pull_backoff);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pod as the API serves it (spec, IPs and all), read as a view.
    fn pod(name: &str, created: &str, ready: &str, containers: Value) -> PodView {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created,
                "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "web:2",
                "resources": {"limits": {"memory": "256Mi"}}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7",
                "conditions": [{"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": ready, "lastTransitionTime": created}],
                "containerStatuses": containers}
        }))
        .unwrap()
    }

    #[test]
    fn restarts_count_only_pods_created_since_the_deploy() {
        let crashing = |name: &str, created: &str| {
            pod(
                name,
                created,
                "False",
                json!([{"name": "app", "restartCount": 2,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"reason": "OOMKilled"}}}]),
            )
        };
        let old = crashing("old", "2026-11-24T09:00:00Z");
        let new = crashing("new", "2026-11-24T10:05:00Z");
        let since = DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        let s = KubeSignals::count(&[&old, &new], since, 1, true);
        assert_eq!((s.restarts, s.oom_kills), (2, 1), "only the new pod's");
        assert_eq!(s.crashlooping_pods, 2, "crash-looping counts every pod");
        assert_eq!((s.available_replicas, s.rollout_stalled), (1, 1));
        assert_eq!(
            KubeSignals::count(&[&old, &new], None, 0, false).restarts,
            4
        );
    }
}
