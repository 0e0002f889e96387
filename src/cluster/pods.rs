//! Pods: readiness and restart counts of a revision's pods, and the kube signals.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::history::controlled_by;
use super::name_of;

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
    /// Reads a pod object.
    pub fn of(pod: &Value) -> PodState {
        let statuses: Vec<&Value> = pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let waiting = |reasons: &[&str]| {
            statuses.iter().any(|c| {
                c.pointer("/state/waiting/reason")
                    .and_then(Value::as_str)
                    .is_some_and(|r| reasons.contains(&r))
            })
        };
        PodState {
            name: name_of(pod).to_string(),
            ready: pod
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                }),
            restarts: statuses
                .iter()
                .filter_map(|c| c["restartCount"].as_u64())
                .sum(),
            oom_killed: statuses
                .iter()
                .filter(|c| {
                    c.pointer("/lastState/terminated/reason")
                        .and_then(Value::as_str)
                        == Some("OOMKilled")
                })
                .count() as u64,
            crash_looping: waiting(&["CrashLoopBackOff"]),
            image_pull_backoff: waiting(&["ImagePullBackOff", "ErrImagePull"]),
            created: pod
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

/// The pods controlled by the ReplicaSet with uid `rs_uid`.
pub fn pods_of_replicaset<'a>(pods: &'a [Value], rs_uid: &str) -> Vec<&'a Value> {
    pods.iter().filter(|p| controlled_by(p, rs_uid)).collect()
}

/// Whether a pod's labels match every `matchLabels` entry of a selector.
pub fn selects(match_labels: &Value, pod: &Value) -> bool {
    let Some(want) = match_labels.as_object() else {
        return false;
    };
    let labels = pod.pointer("/metadata/labels");
    !want.is_empty()
        && want
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
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
}

impl KubeSignals {
    /// Counts signals from the workload's pods (already selected), the deploy time and the
    /// workload's rollout state.
    pub fn count(
        pods: &[&Value],
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
            let st = PodState::of(p);
            let recent = match (since, st.created) {
                (Some(since), Some(c)) => c >= since,
                _ => true,
            };
            if recent {
                s.restarts += st.restarts;
                s.oom_kills += st.oom_killed;
            }
            s.crashlooping_pods += u64::from(st.crash_looping);
            s.image_pull_backoff += u64::from(st.image_pull_backoff);
        }
        s
    }
}
