//! The Kubernetes side: every rollback step, revision history, snapshots and backups.
//!
//! Everything goes through [`Cluster`], which wraps a `kube::Client` with rollbackd's field
//! manager, a per-call timeout and the retry rules of [`retry`]. Objects are handled as
//! JSON (`DynamicObject`) so Deployments and Argo Rollouts share one code path.

pub mod annotate;
pub mod argo;
pub mod backup;
pub mod configmap;
pub mod error;
pub mod fence;
pub mod guard;
pub mod history;
pub mod http_step;
pub mod image;
pub mod job;
pub mod pods;
pub mod rbac;
pub mod restart;
pub mod retry;
pub mod rollout_status;
pub mod scale;
pub mod service;
pub mod snapshot;
pub mod undo;
pub mod views;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::Value;

pub use error::ClusterError;
use retry::RetryPolicy;
use rollbackd_core::policy::{Workload, WorkloadKind};

/// The field manager rollbackd writes with.
pub const FIELD_MANAGER: &str = "rollbackd";

/// Which kind of object a call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// apps/v1 Deployment.
    Deployment,
    /// argoproj.io/v1alpha1 Rollout.
    Rollout,
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// v1 ConfigMap.
    ConfigMap,
    /// v1 Service.
    Service,
    /// v1 Pod.
    Pod,
    /// batch/v1 Job.
    Job,
    /// events.k8s.io/v1 Event.
    Event,
}

impl Kind {
    /// The API resource for this kind.
    pub fn resource(self) -> ApiResource {
        match self {
            Kind::Deployment => ApiResource::erase::<Deployment>(&()),
            Kind::Rollout => ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"),
                "rollouts",
            ),
            Kind::ReplicaSet => ApiResource::erase::<ReplicaSet>(&()),
            Kind::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
            Kind::Service => ApiResource::erase::<Service>(&()),
            Kind::Pod => ApiResource::erase::<Pod>(&()),
            Kind::Job => ApiResource::erase::<Job>(&()),
            Kind::Event => ApiResource::erase::<k8s_openapi::api::events::v1::Event>(&()),
        }
    }

    /// The kind's name, e.g. `Deployment`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::Rollout => "Rollout",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::ConfigMap => "ConfigMap",
            Kind::Service => "Service",
            Kind::Pod => "Pod",
            Kind::Job => "Job",
            Kind::Event => "Event",
        }
    }

    /// The kind of a policy workload.
    pub fn of(w: &Workload) -> Kind {
        match w.kind {
            WorkloadKind::Deployment => Kind::Deployment,
            WorkloadKind::Rollout => Kind::Rollout,
        }
    }

    /// The annotation carrying revision numbers for this workload kind.
    pub fn revision_annotation(self) -> &'static str {
        match self {
            Kind::Rollout => "rollout.argoproj.io/revision",
            _ => "deployment.kubernetes.io/revision",
        }
    }
}

/// A handle on the cluster: client, field manager, per-call timeout and retry rules.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    field_manager: String,
    call_timeout: Duration,
    retry: RetryPolicy,
    /// Checked before every write when this replica writes as an elected leader.
    fence: Option<std::sync::Arc<fence::Fence>>,
}

impl Cluster {
    /// A handle with field manager `rollbackd`, a 10 s call timeout and default retries.
    pub fn new(client: kube::Client) -> Self {
        Cluster {
            client,
            field_manager: FIELD_MANAGER.to_string(),
            call_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            fence: None,
        }
    }

    /// Checks `fence` before every write (patch, create): a replica that no longer holds
    /// the Lease in its term writes nothing ([`ClusterError::Fenced`]).
    pub fn with_fence(mut self, fence: fence::Fence) -> Self {
        self.fence = Some(std::sync::Arc::new(fence));
        self
    }

    /// This handle without the leader's fence, for writes any replica may make because they
    /// only record what is there and are created only when absent: ConfigMap snapshots. A
    /// replica that sees a revision before it leads (or a standby that sees it while the
    /// leader is busy) still captures the config that matched it.
    pub fn unfenced(&self) -> Cluster {
        Cluster {
            fence: None,
            ..self.clone()
        }
    }

    async fn fenced(&self) -> Result<(), ClusterError> {
        match &self.fence {
            Some(f) => f.check().await,
            None => Ok(()),
        }
    }

    /// Sets the per-call timeout.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Sets the retry rules.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The underlying client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The field manager passed on every mutating call.
    pub fn field_manager(&self) -> &str {
        &self.field_manager
    }

    /// The retry rules.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Patch parameters with rollbackd's field manager.
    pub fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..PatchParams::default()
        }
    }

    fn api(&self, kind: Kind, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &kind.resource())
    }

    async fn call<T, Fut>(&self, context: &str, fut: Fut) -> Result<T, ClusterError>
    where
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        match tokio::time::timeout(self.call_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(ClusterError::Api {
                context: context.to_string(),
                source,
            }),
            Err(_) => Err(ClusterError::CallTimeout {
                context: context.to_string(),
                timeout: self.call_timeout,
            }),
        }
    }

    /// One object as JSON, `None` when it does not exist.
    pub async fn get_opt(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, ClusterError> {
        let api = self.api(kind, namespace);
        let ctx = format!("get {} {namespace}/{name}", kind.name());
        let obj = retry::transient(&self.retry, || self.call(&ctx, api.get_opt(name))).await?;
        obj.map(|o| serde_json::to_value(o).map_err(ClusterError::from))
            .transpose()
    }

    /// One object as JSON; missing is [`ClusterError::NotFound`].
    pub async fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ClusterError> {
        self.get_opt(kind, namespace, name)
            .await?
            .ok_or_else(|| ClusterError::NotFound {
                kind: kind.name().to_string(),
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
    }

    /// The policy workload's object.
    pub async fn get_workload(&self, w: &Workload) -> Result<Value, ClusterError> {
        self.get(Kind::of(w), &w.namespace, &w.name).await
    }

    /// Objects of a kind in a namespace, optionally filtered by a label selector.
    pub async fn list(
        &self,
        kind: Kind,
        namespace: &str,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, ClusterError> {
        let api = self.api(kind, namespace);
        let mut lp = ListParams::default();
        if let Some(s) = label_selector.filter(|s| !s.is_empty()) {
            lp = lp.labels(s);
        }
        let ctx = format!("list {} in {namespace}", kind.name());
        let list = retry::transient(&self.retry, || self.call(&ctx, api.list(&lp))).await?;
        list.items
            .into_iter()
            .map(|o| serde_json::to_value(o).map_err(ClusterError::from))
            .collect()
    }

    /// Patches an object (or its `status` subresource) with rollbackd's field manager.
    pub async fn patch(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        patch: &Patch<Value>,
        status: bool,
    ) -> Result<Value, ClusterError> {
        self.fenced().await?;
        let api = self.api(kind, namespace);
        let pp = self.patch_params();
        let ctx = format!("patch {} {namespace}/{name}", kind.name());
        let obj = retry::transient(&self.retry, || async {
            if status {
                self.call(&ctx, api.patch_status(name, &pp, patch)).await
            } else {
                self.call(&ctx, api.patch(name, &pp, patch)).await
            }
        })
        .await?;
        Ok(serde_json::to_value(obj)?)
    }

    /// Creates an object with rollbackd's field manager.
    pub async fn create(
        &self,
        kind: Kind,
        namespace: &str,
        object: &Value,
    ) -> Result<Value, ClusterError> {
        self.fenced().await?;
        let api = self.api(kind, namespace);
        let obj: DynamicObject = serde_json::from_value(object.clone())?;
        let pp = PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..PostParams::default()
        };
        let ctx = format!("create {} in {namespace}", kind.name());
        let created =
            retry::transient(&self.retry, || self.call(&ctx, api.create(&pp, &obj))).await?;
        Ok(serde_json::to_value(created)?)
    }

    /// A pod's log (`GET /api/v1/namespaces/{ns}/pods/{pod}/log`).
    pub async fn pod_logs(&self, namespace: &str, pod: &str) -> Result<String, ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let ctx = format!("logs of pod {namespace}/{pod}");
        let lp = kube::api::LogParams::default();
        retry::transient(&self.retry, || self.call(&ctx, api.logs(pod, &lp))).await
    }
}

/// `metadata.name` of a JSON object.
pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.resourceVersion` of a JSON object (`null` when absent). Every write sends
/// back the version it read, so a write that lost a race is a 409 Conflict.
pub fn resource_version(obj: &Value) -> Value {
    obj.pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null)
}

/// `metadata.generation` of a JSON object (`null` when absent). It moves only when the
/// spec changes, so a JSON patch `test` on it fails when someone else changed the spec.
pub fn generation(obj: &Value) -> Value {
    obj.pointer("/metadata/generation")
        .cloned()
        .unwrap_or(Value::Null)
}

/// An annotation of a JSON object.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// A label selector string (`k=v,…`) from `spec.selector.matchLabels`.
pub fn selector_string(obj: &Value) -> String {
    obj.pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}
