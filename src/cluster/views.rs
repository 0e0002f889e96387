//! Pods, ReplicaSets and Deployments as rollbackd reads them: the metadata and the few spec
//! and status fields its signals, revision history and rollout status use. Deserializing
//! an API object into a view skips everything else (pod specs, templates, volumes…), so
//! the watcher's caches of a 10,000-workload fleet hold kilobytes per workload, not the
//! full objects. Each view is a `kube` resource of its kind: `Api<PodView>` lists and
//! watches `/api/v1/pods` like `Api<Pod>`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// Makes a view a `kube` resource of the kind it views (same group, version, kind, path).
macro_rules! view_of {
    ($view:ty, $kind:ty) => {
        impl k8s_openapi::Resource for $view {
            const API_VERSION: &'static str = <$kind as k8s_openapi::Resource>::API_VERSION;
            const GROUP: &'static str = <$kind as k8s_openapi::Resource>::GROUP;
            const KIND: &'static str = <$kind as k8s_openapi::Resource>::KIND;
            const VERSION: &'static str = <$kind as k8s_openapi::Resource>::VERSION;
            const URL_PATH_SEGMENT: &'static str =
                <$kind as k8s_openapi::Resource>::URL_PATH_SEGMENT;
            type Scope = k8s_openapi::NamespaceResourceScope;
        }

        impl k8s_openapi::Metadata for $view {
            type Ty = ObjectMeta;

            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// A Pod: metadata, conditions and container statuses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct PodView {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The status fields rollbackd reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PodViewStatus>,
}
view_of!(PodView, Pod);

/// A Pod's status: its conditions and containers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodViewStatus {
    /// Conditions (`Ready`, …), type and status only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionView>,
    /// One entry per container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerView>,
}

/// A status condition's type and status.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ConditionView {
    /// `Ready`, `PodScheduled`, …
    #[serde(rename = "type", default)]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[serde(default)]
    pub status: String,
}

/// A container's restart count and the reasons of its current and last state.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    /// Container name.
    #[serde(default)]
    pub name: String,
    /// Restarts so far.
    #[serde(default)]
    pub restart_count: i64,
    /// The current state.
    #[serde(default)]
    pub state: StateView,
    /// The previous state (the last termination).
    #[serde(default)]
    pub last_state: StateView,
}

/// A container state's reasons: `waiting.reason` and `terminated.reason`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct StateView {
    /// Present while the container waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<ReasonView>,
    /// Present once it terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<ReasonView>,
}

/// Just the reason of a container state.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ReasonView {
    /// `CrashLoopBackOff`, `OOMKilled`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A ReplicaSet: metadata (revision annotations, hash label, owner) and its template's
/// container names and images.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ReplicaSetView {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec.template.spec.containers[].{name,image}`.
    #[serde(default)]
    pub spec: TemplateHolder,
}
view_of!(ReplicaSetView, ReplicaSet);

/// `spec` down to the template's containers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct TemplateHolder {
    /// `spec.template`.
    #[serde(default)]
    pub template: TemplateView,
}

/// A pod template down to its containers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct TemplateView {
    /// `template.spec`.
    #[serde(default)]
    pub spec: ContainersView,
}

/// A pod spec's containers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ContainersView {
    /// Name and image of each container.
    #[serde(default)]
    pub containers: Vec<ImageView>,
}

/// A container's name and image.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ImageView {
    /// Container name.
    #[serde(default)]
    pub name: String,
    /// Image reference.
    #[serde(default)]
    pub image: String,
}

/// A Deployment: metadata, desired replicas, selector and status.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct DeploymentView {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Replicas and selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<DeploymentViewSpec>,
    /// The controller's status, as served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeploymentStatus>,
}
view_of!(DeploymentView, Deployment);

/// A Deployment's `spec.replicas` and `spec.selector.matchLabels`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct DeploymentViewSpec {
    /// Desired replicas (`None`: the API default, 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// The selector's `matchLabels`.
    #[serde(default)]
    pub selector: SelectorView,
}

/// A label selector's `matchLabels` (its `matchExpressions` are not read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectorView {
    /// `label: value` pairs a selected object carries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn views_are_resources_of_the_kind_they_view() {
        use kube::Resource;
        assert_eq!(PodView::kind(&()), "Pod");
        assert_eq!(
            PodView::url_path(&(), Some("ns")),
            "/api/v1/namespaces/ns/pods"
        );
        assert_eq!(
            ReplicaSetView::url_path(&(), Some("ns")),
            "/apis/apps/v1/namespaces/ns/replicasets"
        );
        assert_eq!(
            DeploymentView::url_path(&(), Some("ns")),
            "/apis/apps/v1/namespaces/ns/deployments"
        );
    }

    #[test]
    fn a_view_keeps_what_is_read_and_drops_the_rest() {
        let rs: ReplicaSetView = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "web:2",
                    "env": [{"name": "A", "value": "1"}]}],
                    "volumes": [{"name": "c", "configMap": {"name": "web-config"}}]}}}
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&rs).unwrap()["spec"],
            json!({"template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}})
        );
        let pod: PodView = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app", "image": "web:2"}]},
            "status": {"podIP": "10.0.0.1", "containerStatuses": [{"name": "app",
                "restartCount": 2, "image": "web:2", "imageID": "sha",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}]}
        }))
        .unwrap();
        let c = &pod.status.as_ref().unwrap().container_statuses[0];
        assert_eq!(c.restart_count, 2);
        assert_eq!(
            c.state.waiting.as_ref().and_then(|w| w.reason.as_deref()),
            Some("CrashLoopBackOff")
        );
    }
}
