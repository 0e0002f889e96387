//! One namespace's cached ReplicaSets and Pods, indexed once so that a question about one
//! workload costs its own objects, not the namespace's: ReplicaSets by their controller's
//! uid, Pods by each `label=value` they carry. Without it, a cycle over n workloads was
//! O(n²) object conversions (1,000 workloads: seconds per cycle).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::cluster::views::{PodView, ReplicaSetView};

/// ReplicaSets by controller uid and Pods by label, of one namespace at one moment.
pub struct NsIndex {
    replicasets: HashMap<String, Vec<Arc<ReplicaSetView>>>,
    pods: HashMap<(String, String), Vec<Arc<PodView>>>,
}

/// The name of the object that controls `rs` (a Deployment or a Rollout).
pub fn controller_name(rs: &ReplicaSetView) -> Option<&str> {
    rs.controller.as_ref().map(|c| c.name.as_str())
}

/// The `(label, value)` pairs of a `matchLabels` JSON object (none if it is absent, empty
/// or has a non-string value: such a selector selects nothing here).
pub fn match_pairs(match_labels: &Value) -> Vec<(String, String)> {
    let Some(want) = match_labels.as_object() else {
        return Vec::new();
    };
    let mut pairs = Vec::with_capacity(want.len());
    for (k, v) in want {
        let Some(v) = v.as_str() else {
            return Vec::new();
        };
        pairs.push((k.clone(), v.to_string()));
    }
    pairs
}

impl NsIndex {
    /// Indexes the given objects.
    pub fn new(replicasets: Vec<Arc<ReplicaSetView>>, pods: Vec<Arc<PodView>>) -> Self {
        let mut by_owner: HashMap<String, Vec<Arc<ReplicaSetView>>> = HashMap::new();
        for rs in replicasets {
            if let Some(c) = &rs.controller {
                by_owner.entry(c.uid.clone()).or_default().push(rs.clone());
            }
        }
        let mut by_label: HashMap<(String, String), Vec<Arc<PodView>>> = HashMap::new();
        for pod in pods {
            for (k, v) in &pod.labels {
                by_label
                    .entry((k.clone(), v.clone()))
                    .or_default()
                    .push(pod.clone());
            }
        }
        NsIndex {
            replicasets: by_owner,
            pods: by_label,
        }
    }

    /// The ReplicaSets `owner_uid` controls, as cached.
    pub fn replicasets_controlled_by(&self, owner_uid: &str) -> &[Arc<ReplicaSetView>] {
        self.replicasets.get(owner_uid).map_or(&[], Vec::as_slice)
    }

    /// The Pods that carry every `(label, value)` pair (none for no pairs), as cached.
    pub fn pods_matching(&self, want: &[(String, String)]) -> Vec<&Arc<PodView>> {
        // the rarest pair's pods are the candidates; each must carry every pair
        let Some(candidates) = want
            .iter()
            .map(|p| self.pods.get(p).map_or(&[][..], Vec::as_slice))
            .min_by_key(|c| c.len())
        else {
            return Vec::new();
        };
        candidates
            .iter()
            .filter(|pod| {
                want.iter()
                    .all(|(k, v)| pod.labels.iter().any(|(pk, pv)| pk == k && pv == v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, labels: Value) -> Arc<PodView> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap(),
        )
    }

    fn rs(name: &str, owner_uid: &str, controller: bool) -> Arc<ReplicaSetView> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner_uid, "controller": controller}
            ]}}))
            .unwrap(),
        )
    }

    #[test]
    fn pods_must_carry_every_selector_label() {
        let index = NsIndex::new(
            Vec::new(),
            vec![
                pod("a", json!({"app": "web", "tier": "front"})),
                pod("b", json!({"app": "web"})),
                pod("c", json!({"app": "api", "tier": "front"})),
            ],
        );
        let names = |sel: Value| -> Vec<String> {
            index
                .pods_matching(&match_pairs(&sel))
                .iter()
                .map(|p| p.metadata.name.clone().unwrap_or_default())
                .collect()
        };
        assert_eq!(names(json!({"app": "web", "tier": "front"})), ["a"]);
        assert_eq!(names(json!({"app": "web"})), ["a", "b"]);
        assert!(names(json!({"app": "none"})).is_empty());
        assert!(names(json!({})).is_empty());
        assert!(names(Value::Null).is_empty());
    }

    #[test]
    fn replicasets_are_found_by_their_controller_only() {
        let index = NsIndex::new(
            vec![
                rs("web-1", "u1", true),
                rs("web-2", "u1", true),
                rs("x", "u1", false),
            ],
            Vec::new(),
        );
        assert_eq!(index.replicasets_controlled_by("u1").len(), 2);
        assert!(index.replicasets_controlled_by("u2").is_empty());
    }
}
