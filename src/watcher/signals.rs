//! A workload's kube signals from the watcher's typed caches: its owner (Deployment or
//! Rollout), the ReplicaSets the owner controls and the pods its selector selects, looked
//! up once and read in place. The same lookup gives the digest that tells a cycle whether
//! the signals computed last time still hold.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;

use super::NsStores;
use super::index::{NsIndex, match_pairs};
use crate::cluster::Kind;
use crate::cluster::pods::KubeSignals;
use crate::cluster::rollout_status::{RolloutStatus, argo_rollout_status, deployment_status};
use crate::cluster::views::{DeploymentView, PodView, ReplicaSetView};
use rollbackd_core::policy::Workload;

/// A watched workload's owner object, as cached.
pub enum Owner {
    /// A Deployment.
    Deployment(Arc<DeploymentView>),
    /// An Argo Rollout.
    Rollout(Arc<DynamicObject>),
}

impl Owner {
    /// The cached owner of `w`, if the caches hold it.
    pub fn cached(s: &NsStores, w: &Workload) -> Option<Owner> {
        match Kind::of(w) {
            Kind::Rollout => s
                .rollouts
                .get(&ObjectRef::new_with(&w.name, Kind::Rollout.resource()).within(&w.namespace))
                .map(Owner::Rollout),
            _ => s
                .deployments
                .get(&ObjectRef::new(&w.name).within(&w.namespace))
                .map(Owner::Deployment),
        }
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Owner::Deployment(d) => &d.metadata,
            Owner::Rollout(r) => &r.metadata,
        }
    }

    /// The owner's uid ("" if it has none).
    pub fn uid(&self) -> &str {
        self.meta().uid.as_deref().unwrap_or_default()
    }

    /// The `(label, value)` pairs of its `spec.selector.matchLabels`.
    fn selector(&self) -> Vec<(String, String)> {
        match self {
            Owner::Deployment(d) => d.selector.clone(),
            Owner::Rollout(r) => match_pairs(
                r.data
                    .pointer("/spec/selector/matchLabels")
                    .unwrap_or(&Value::Null),
            ),
        }
    }

    /// `status.availableReplicas`.
    fn available(&self) -> u64 {
        match self {
            Owner::Deployment(d) => d
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            Owner::Rollout(r) => r
                .data
                .pointer("/status/availableReplicas")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        }
    }

    /// Where its rollout stands (`kubectl rollout status`'s rules); `None` if unreadable.
    fn rollout_status(&self) -> Option<RolloutStatus> {
        match self {
            Owner::Deployment(d) => Some(deployment_status(d)),
            Owner::Rollout(r) => serde_json::to_value(r.as_ref())
                .ok()
                .map(|v| argo_rollout_status(&v)),
        }
    }
}

/// Everything one workload's kube signals are derived from.
pub struct Inputs<'a> {
    owner: Owner,
    replicasets: &'a [Arc<ReplicaSetView>],
    pods: Vec<&'a Arc<PodView>>,
}

impl<'a> Inputs<'a> {
    /// Looks `w`'s objects up in one namespace's caches; `None` when the owner is not cached.
    pub fn of(w: &Workload, s: &NsStores, index: &'a NsIndex) -> Option<Inputs<'a>> {
        let owner = Owner::cached(s, w)?;
        let replicasets = index.replicasets_controlled_by(owner.uid());
        let pods = index.pods_matching(&owner.selector());
        Some(Inputs {
            owner,
            replicasets,
            pods,
        })
    }

    /// A digest of the resourceVersions of every input, independent of their order in the
    /// caches: equal digests, equal signals.
    pub fn digest(&self) -> u64 {
        fn one(meta: &ObjectMeta) -> u64 {
            let mut h = DefaultHasher::new();
            (&meta.name, &meta.resource_version).hash(&mut h);
            h.finish()
        }
        let sets = self.replicasets.iter().map(|rs| one(&rs.metadata));
        let pods = self.pods.iter().map(|p| one(&p.metadata));
        sets.chain(pods)
            .fold(one(self.owner.meta()), u64::wrapping_add)
    }

    /// The workload's kube signals: restarts and OOM kills of pods created since the
    /// current revision's ReplicaSet, pods crash-looping or failing to pull, available
    /// replicas, and whether the rollout stalled. Pods being deleted do not count.
    pub fn signals(&self) -> KubeSignals {
        let since = current_replicaset(self.replicasets).and_then(|(_, rs)| rs.created);
        let live: Vec<&PodView> = self
            .pods
            .iter()
            .filter(|p| !p.deleting)
            .map(|p| p.as_ref())
            .collect();
        let status = self.owner.rollout_status();
        let stalled = matches!(status, Some(RolloutStatus::Failed(_)));
        KubeSignals {
            rollout_progressing: u64::from(matches!(status, Some(RolloutStatus::Waiting(_)))),
            ..KubeSignals::count(&live, since, self.owner.available(), stalled)
        }
    }
}

/// The ReplicaSet with the highest revision and that revision (the current revision, as
/// in `History::current`).
pub fn current_replicaset(replicasets: &[Arc<ReplicaSetView>]) -> Option<(u64, &ReplicaSetView)> {
    replicasets
        .iter()
        .filter_map(|rs| Some((rs.revision?, rs.as_ref())))
        .max_by_key(|(n, _)| *n)
}
