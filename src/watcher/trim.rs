//! What the watcher's Rollout cache drops before the reflector stores it (kube-rs
//! `WatchStreamExt::modify`). Pods, ReplicaSets and Deployments are cached as views
//! (`cluster::views`) that keep only what rollbackd reads; Rollouts are cached as JSON, so
//! their pod template, `managedFields` and `kubectl apply`'s whole-object annotation are
//! dropped here.

use kube::api::DynamicObject;

/// The annotation `kubectl apply` keeps a whole copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An Argo Rollout keeps everything but its pod template and the metadata nobody reads.
pub fn rollout(r: &mut DynamicObject) {
    r.metadata.managed_fields = None;
    if let Some(a) = r.metadata.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
    if let Some(spec) = r.data.get_mut("spec").and_then(|s| s.as_object_mut()) {
        spec.remove("template");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rollout_keeps_its_selector_status_and_revision() {
        let mut r: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "shop", "namespace": "ns",
                "annotations": {"rollout.argoproj.io/revision": "4", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [{"manager": "argo-rollouts", "operation": "Update"}]},
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
        let annotations = r.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["rollout.argoproj.io/revision"]
        );
    }
}
