//! Pods, ReplicaSets and Deployments as rollbackd reads them. Deserializing an API object
//! into a view keeps only what the kube signals, revision detection and rollout status use,
//! already reduced (a pod's status becomes five facts, a ReplicaSet's annotations its
//! revision number), and drops the rest (specs, templates, `managedFields`, annotations).
//! The watcher's caches of a 10,000-workload fleet hold these, so each object costs a few
//! hundred bytes, not kilobytes. Each view is a `kube` resource of its kind: `Api<PodView>`
//! lists and watches `/api/v1/pods` like `Api<Pod>`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::Deserialize;

/// An API time as chrono.
pub fn chrono_time(t: &Time) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(t.0.as_microsecond())
}

/// `label: value` pairs, in key order.
pub type Labels = Vec<(String, String)>;

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

/// Metadata reduced to name and resourceVersion (all a cache key and a change digest need).
fn name_and_version(m: &mut ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: m.name.take(),
        resource_version: m.resource_version.take(),
        ..ObjectMeta::default()
    }
}

/// A Pod: its labels, times, and what its status says.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "raw::Pod")]
pub struct PodView {
    /// Name and resourceVersion.
    pub metadata: ObjectMeta,
    /// Its labels (what selectors match).
    pub labels: Labels,
    /// Creation time.
    pub created: Option<DateTime<Utc>>,
    /// It has a deletionTimestamp (on its way out).
    pub deleting: bool,
    /// The `Ready` condition is True.
    pub ready: bool,
    /// Sum of container restart counts.
    pub restarts: u64,
    /// Containers whose last termination was `OOMKilled`.
    pub oom_killed: u64,
    /// A container waits in `CrashLoopBackOff`.
    pub crash_looping: bool,
    /// A container waits in `ImagePullBackOff` or `ErrImagePull`.
    pub image_pull_backoff: bool,
}
view_of!(PodView, Pod);

impl From<raw::Pod> for PodView {
    fn from(mut p: raw::Pod) -> Self {
        let status = p.status.unwrap_or_default();
        let containers = &status.container_statuses;
        let waiting = |reasons: &[&str]| {
            containers.iter().any(|c| {
                c.state
                    .waiting
                    .as_ref()
                    .and_then(|w| w.reason.as_deref())
                    .is_some_and(|r| reasons.contains(&r))
            })
        };
        PodView {
            metadata: name_and_version(&mut p.metadata),
            labels: p
                .metadata
                .labels
                .take()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            created: p.metadata.creation_timestamp.as_ref().and_then(chrono_time),
            deleting: p.metadata.deletion_timestamp.is_some(),
            ready: status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            restarts: containers
                .iter()
                .map(|c| u64::try_from(c.restart_count).unwrap_or(0))
                .sum(),
            oom_killed: containers
                .iter()
                .filter(|c| {
                    c.last_state
                        .terminated
                        .as_ref()
                        .and_then(|t| t.reason.as_deref())
                        == Some("OOMKilled")
                })
                .count() as u64,
            crash_looping: waiting(&["CrashLoopBackOff"]),
            image_pull_backoff: waiting(&["ImagePullBackOff", "ErrImagePull"]),
        }
    }
}

/// The object that controls another (its `controller: true` owner reference).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Controller {
    /// `Deployment` or `Rollout`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// A ReplicaSet: its controller, revision number, creation time and images.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "raw::ReplicaSet")]
pub struct ReplicaSetView {
    /// Name and resourceVersion.
    pub metadata: ObjectMeta,
    /// The Deployment or Rollout that controls it.
    pub controller: Option<Controller>,
    /// Its revision: the controller kind's revision annotation, when numeric.
    pub revision: Option<u64>,
    /// Creation time (a revision's deploy time).
    pub created: Option<DateTime<Utc>>,
    /// `(container, image)` of its pod template, in order.
    pub images: Vec<(String, String)>,
    /// Its template hash label (`pod-template-hash`, or Argo's
    /// `rollouts-pod-template-hash`): which template it runs.
    pub template_hash: Option<String>,
}
view_of!(ReplicaSetView, ReplicaSet);

impl From<raw::ReplicaSet> for ReplicaSetView {
    fn from(mut rs: raw::ReplicaSet) -> Self {
        let controller = rs
            .metadata
            .owner_references
            .take()
            .unwrap_or_default()
            .into_iter()
            .find(|r| r.controller == Some(true))
            .map(|r| Controller {
                kind: r.kind,
                name: r.name,
                uid: r.uid,
            });
        let key = match controller.as_ref().map(|c| c.kind.as_str()) {
            Some("Rollout") => "rollout.argoproj.io/revision",
            _ => "deployment.kubernetes.io/revision",
        };
        let revision = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .and_then(|v| v.parse().ok());
        let template_hash = rs.metadata.labels.as_ref().and_then(|l| {
            l.get(crate::cluster::history::POD_TEMPLATE_HASH)
                .or_else(|| l.get("rollouts-pod-template-hash"))
                .cloned()
        });
        ReplicaSetView {
            template_hash,
            created: rs
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(chrono_time),
            metadata: name_and_version(&mut rs.metadata),
            controller,
            revision,
            images: rs
                .spec
                .unwrap_or_default()
                .template
                .spec
                .containers
                .into_iter()
                .map(|c| (c.name, c.image))
                .collect(),
        }
    }
}

/// A Deployment: desired replicas, selector and rollout status.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "raw::Deployment")]
pub struct DeploymentView {
    /// Name, namespace, uid, resourceVersion and generation.
    pub metadata: ObjectMeta,
    /// `spec.replicas` (`None`: the API default, 1).
    pub replicas: Option<i32>,
    /// `spec.selector.matchLabels`.
    pub selector: Labels,
    /// What the controller reported, if it did.
    pub status: Option<DeploymentViewStatus>,
}
view_of!(DeploymentView, Deployment);

/// What `kubectl rollout status` reads of a Deployment's status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentViewStatus {
    /// The generation the controller last acted on.
    pub observed_generation: Option<i64>,
    /// Pods of every revision.
    pub replicas: Option<i32>,
    /// Pods of the current revision.
    pub updated_replicas: Option<i32>,
    /// Available pods.
    pub available_replicas: Option<i32>,
    /// The `Progressing` condition's reason is `ProgressDeadlineExceeded`.
    pub deadline_exceeded: bool,
}

impl From<raw::Deployment> for DeploymentView {
    fn from(mut d: raw::Deployment) -> Self {
        let spec = d.spec.unwrap_or_default();
        let m = &mut d.metadata;
        DeploymentView {
            metadata: ObjectMeta {
                name: m.name.take(),
                namespace: m.namespace.take(),
                uid: m.uid.take(),
                resource_version: m.resource_version.take(),
                generation: m.generation,
                ..ObjectMeta::default()
            },
            replicas: spec.replicas,
            selector: spec.selector.match_labels.into_iter().collect(),
            status: d.status.map(|s| DeploymentViewStatus {
                deadline_exceeded: s.conditions.iter().flatten().any(|c| {
                    c.type_ == "Progressing"
                        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                }),
                observed_generation: s.observed_generation,
                replicas: s.replicas,
                updated_replicas: s.updated_replicas,
                available_replicas: s.available_replicas,
            }),
        }
    }
}

/// The API shapes the views are read from: only the fields they keep, so the rest of an
/// object is skipped, not built.
mod raw {
    use super::*;

    #[derive(Deserialize)]
    pub struct Pod {
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub status: Option<PodStatus>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    pub struct PodStatus {
        #[serde(default)]
        pub conditions: Vec<Condition>,
        #[serde(default)]
        pub container_statuses: Vec<ContainerStatus>,
    }

    #[derive(Deserialize)]
    pub struct Condition {
        #[serde(rename = "type", default)]
        pub type_: String,
        #[serde(default)]
        pub status: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ContainerStatus {
        #[serde(default)]
        pub restart_count: i64,
        #[serde(default)]
        pub state: State,
        #[serde(default)]
        pub last_state: State,
    }

    #[derive(Deserialize, Default)]
    pub struct State {
        #[serde(default)]
        pub waiting: Option<Reason>,
        #[serde(default)]
        pub terminated: Option<Reason>,
    }

    #[derive(Deserialize)]
    pub struct Reason {
        #[serde(default)]
        pub reason: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct ReplicaSet {
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: Option<ReplicaSetSpec>,
    }

    #[derive(Deserialize, Default)]
    pub struct ReplicaSetSpec {
        #[serde(default)]
        pub template: Template,
    }

    #[derive(Deserialize, Default)]
    pub struct Template {
        #[serde(default)]
        pub spec: Containers,
    }

    #[derive(Deserialize, Default)]
    pub struct Containers {
        #[serde(default)]
        pub containers: Vec<Image>,
    }

    #[derive(Deserialize)]
    pub struct Image {
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub image: String,
    }

    #[derive(Deserialize)]
    pub struct Deployment {
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: Option<DeploymentSpec>,
        #[serde(default)]
        pub status: Option<DeploymentStatus>,
    }

    #[derive(Deserialize, Default)]
    pub struct DeploymentSpec {
        #[serde(default)]
        pub replicas: Option<i32>,
        #[serde(default)]
        pub selector: Selector,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    pub struct Selector {
        #[serde(default)]
        pub match_labels: BTreeMap<String, String>,
    }
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

    fn managed_fields() -> serde_json::Value {
        json!([{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:conditions": {}}}}])
    }

    #[test]
    fn a_pod_view_reads_readiness_restarts_and_waiting_reasons() {
        let p: PodView = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "ns", "uid": "p1", "resourceVersion": "42",
                "creationTimestamp": "2026-11-24T10:00:00Z", "labels": {"app": "web", "h": "abc"},
                "annotations": {"prometheus.io/scrape": "true"}, "managedFields": managed_fields()},
            "spec": {"containers": [{"name": "app", "image": "web:2",
                "resources": {"limits": {"memory": "256Mi"}}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7",
                "conditions": [{"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {"name": "app", "ready": false, "restartCount": 3, "image": "web:2",
                     "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                     "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}},
                    {"name": "proxy", "restartCount": 1,
                     "state": {"waiting": {"reason": "ErrImagePull"}}}]}
        }))
        .unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("web-1"));
        assert_eq!(p.metadata.resource_version.as_deref(), Some("42"));
        assert!(p.metadata.managed_fields.is_none() && p.metadata.annotations.is_none());
        assert_eq!(
            p.labels,
            [("app".into(), "web".into()), ("h".into(), "abc".into())]
        );
        assert!(!p.ready && p.crash_looping && p.image_pull_backoff && !p.deleting);
        assert_eq!((p.restarts, p.oom_killed), (4, 1));
        assert_eq!(
            p.created.map(|t| t.to_rfc3339()),
            Some("2026-11-24T10:00:00+00:00".into())
        );
        let healthy: PodView = serde_json::from_value(json!({
            "metadata": {"name": "web-2", "deletionTimestamp": "2026-11-24T10:09:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "app", "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-11-24T10:00:01Z"}}}]}
        }))
        .unwrap();
        assert!(healthy.ready && healthy.deleting && !healthy.crash_looping);
        let bare: PodView = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        assert!(!bare.ready && bare.restarts == 0 && bare.created.is_none());
    }

    #[test]
    fn a_replicaset_view_reads_its_controller_kinds_revision_and_images() {
        let rs = |kind: &str, annotations: serde_json::Value| -> ReplicaSetView {
            serde_json::from_value(json!({
                "metadata": {"name": "web-abc", "resourceVersion": "5",
                    "creationTimestamp": "2026-11-24T10:00:00Z", "annotations": annotations,
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "o"},
                        {"apiVersion": "apps/v1", "kind": kind, "name": "web", "uid": "d1",
                         "controller": true}]},
                "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "app", "image": "web:2", "env": [{"name": "A", "value": "1"}]},
                        {"name": "proxy", "image": "proxy:1"}]}}}
            }))
            .unwrap()
        };
        let d = rs(
            "Deployment",
            json!({"deployment.kubernetes.io/revision": "7", "rollout.argoproj.io/revision": "2"}),
        );
        assert_eq!(d.revision, Some(7));
        let c = d.controller.clone().unwrap();
        assert_eq!(
            (c.kind.as_str(), c.name.as_str(), c.uid.as_str()),
            ("Deployment", "web", "d1")
        );
        assert_eq!(
            d.images,
            [
                ("app".into(), "web:2".into()),
                ("proxy".into(), "proxy:1".into())
            ]
        );
        assert!(d.created.is_some());
        let r = rs(
            "Rollout",
            json!({"deployment.kubernetes.io/revision": "7", "rollout.argoproj.io/revision": "2"}),
        );
        assert_eq!(r.revision, Some(2));
        assert_eq!(
            rs(
                "Deployment",
                json!({"deployment.kubernetes.io/revision": "x"})
            )
            .revision,
            None
        );
    }

    #[test]
    fn a_deployment_view_reads_selector_replicas_and_a_stalled_rollout() {
        let d: DeploymentView = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "d1", "generation": 3,
                "resourceVersion": "9", "managedFields": managed_fields()},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}},
            "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
                "availableReplicas": 1, "conditions": [{"type": "Progressing",
                "status": "False", "reason": "ProgressDeadlineExceeded"}]}
        }))
        .unwrap();
        assert_eq!(d.metadata.uid.as_deref(), Some("d1"));
        assert_eq!(d.metadata.generation, Some(3));
        assert_eq!(d.replicas, Some(2));
        assert_eq!(d.selector, [("app".into(), "web".into())]);
        let s = d.status.unwrap();
        assert!(s.deadline_exceeded);
        assert_eq!(
            (s.updated_replicas, s.available_replicas),
            (Some(2), Some(1))
        );
    }
}
