//! What the watcher's caches drop from each object before the reflector stores it
//! (kube-rs `WatchStreamExt::modify`). The views (`cluster::views`) already skip every
//! spec field rollbackd does not read; this drops the metadata a real cluster fills and
//! rollbackd never reads: `managedFields`, `kubectl apply`'s whole-object annotation, and
//! pods' annotations.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;

use crate::cluster::views::{DeploymentView, PodView, ReplicaSetView};

/// The annotation `kubectl apply` keeps a whole copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn metadata(m: &mut ObjectMeta) {
    m.managed_fields = None;
    if let Some(a) = m.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

/// A pod keeps no annotations (the signals read labels, owners, times and status).
pub fn pod(p: &mut PodView) {
    metadata(&mut p.metadata);
    p.metadata.annotations = None;
}

/// A ReplicaSet keeps its annotations: revision numbers and rollbackd's verified marks.
pub fn replicaset(rs: &mut ReplicaSetView) {
    metadata(&mut rs.metadata);
}

/// A Deployment keeps its annotations (its revision).
pub fn deployment(d: &mut DeploymentView) {
    metadata(&mut d.metadata);
}

/// An Argo Rollout (cached as JSON) also drops its pod template.
pub fn rollout(r: &mut DynamicObject) {
    metadata(&mut r.metadata);
    if let Some(spec) = r.data.get_mut("spec").and_then(|s| s.as_object_mut()) {
        spec.remove("template");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn managed_fields() -> serde_json::Value {
        json!([{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:conditions": {}}}}])
    }

    #[test]
    fn metadata_nobody_reads_is_dropped() {
        let meta = json!({"name": "web", "namespace": "ns", "uid": "u", "resourceVersion": "7",
            "labels": {"app": "web"}, "managedFields": managed_fields(),
            "annotations": {"deployment.kubernetes.io/revision": "3",
                "kubectl.kubernetes.io/last-applied-configuration": "{\"whole\": \"copy\"}"}});
        let mut rs: ReplicaSetView = serde_json::from_value(json!({"metadata": meta})).unwrap();
        replicaset(&mut rs);
        let annotations = rs.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["deployment.kubernetes.io/revision"]
        );
        assert!(rs.metadata.managed_fields.is_none());
        assert_eq!(rs.metadata.resource_version.as_deref(), Some("7"));
        let mut p: PodView = serde_json::from_value(json!({"metadata": meta})).unwrap();
        pod(&mut p);
        assert!(p.metadata.annotations.is_none() && p.metadata.managed_fields.is_none());
        assert_eq!(p.metadata.labels, rs.metadata.labels);
        let mut d: DeploymentView = serde_json::from_value(json!({"metadata": meta})).unwrap();
        deployment(&mut d);
        assert_eq!(d.metadata.annotations, rs.metadata.annotations);
    }

    #[test]
    fn a_rollout_keeps_its_selector_and_status() {
        let mut r: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "shop", "namespace": "ns", "managedFields": managed_fields()},
            "spec": {"selector": {"matchLabels": {"app": "shop"}},
                "template": {"spec": {"containers": [{"name": "app", "image": "shop:1"}]}}},
            "status": {"phase": "Degraded", "availableReplicas": 1}}))
        .unwrap();
        rollout(&mut r);
        assert_eq!(
            r.data["spec"],
            json!({"selector": {"matchLabels": {"app": "shop"}}})
        );
        assert_eq!(r.data["status"]["phase"], "Degraded");
        assert!(r.metadata.managed_fields.is_none());
    }
}
