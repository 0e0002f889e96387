//! The pod hold: the current revision's pods all Ready, restart counts unchanged, for a
//! while.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::CheckResult;
use crate::cluster::history::load;
use crate::cluster::pods::{PodState, pods_of_replicaset};
use crate::cluster::views::PodView;
use crate::cluster::{Cluster, ClusterError, Kind, selector_string};
use rollbackd_core::policy::Workload;

async fn current_pods(
    cluster: &Cluster,
    w: &Workload,
) -> Result<(u64, Vec<PodState>), ClusterError> {
    let (owner, history) = load(cluster, w).await?;
    let want = owner
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let Some(cur) = history.current() else {
        return Ok((want, Vec::new()));
    };
    let pods = cluster
        .list(Kind::Pod, &w.namespace, Some(&selector_string(&owner)))
        .await?;
    let mut states = Vec::new();
    for p in pods_of_replicaset(&pods, &cur.uid) {
        let view: PodView = serde_json::from_value(p.clone())?;
        if !view.deleting {
            states.push(PodState::of(&view));
        }
    }
    Ok((want, states))
}

/// Checks that every pod of the current ReplicaSet is Ready (and as many as desired) and
/// that no restart count changes during `hold`. Names the pod that failed.
pub async fn ready_hold(
    cluster: &Cluster,
    w: &Workload,
    hold: Duration,
    cancel: &CancellationToken,
) -> CheckResult {
    let name = "pods_ready_hold".to_string();
    let fail = |detail: String| CheckResult {
        name: name.clone(),
        passed: false,
        detail,
    };
    let deadline = tokio::time::Instant::now() + hold;
    let mut baseline: Option<BTreeMap<String, u64>> = None;
    loop {
        let (want, pods) = match current_pods(cluster, w).await {
            Ok(p) => p,
            Err(e) => return fail(format!("could not read pods: {e}")),
        };
        if (pods.len() as u64) < want {
            return fail(format!(
                "{} of {want} pods of the current revision exist",
                pods.len()
            ));
        }
        if let Some(p) = pods.iter().find(|p| !p.ready) {
            return fail(format!(
                "pod {} is not Ready (restarts {})",
                p.name, p.restarts
            ));
        }
        let counts: BTreeMap<String, u64> =
            pods.iter().map(|p| (p.name.clone(), p.restarts)).collect();
        match &baseline {
            None => baseline = Some(counts),
            Some(base) => {
                for (pod, n) in &counts {
                    match base.get(pod) {
                        Some(b) if n > b => {
                            return fail(format!(
                                "pod {pod} restarted during the hold ({b} → {n})"
                            ));
                        }
                        None => {
                            return fail(format!("pod {pod} appeared during the hold (replaced)"));
                        }
                        _ => {}
                    }
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return CheckResult {
                name,
                passed: true,
                detail: format!("{} pods Ready with no restarts for {hold:?}", pods.len()),
            };
        }
        tokio::select! {
            _ = cancel.cancelled() => return fail("cancelled".into()),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
