//! The Kubernetes calls of the store: `RollbackIncident`s (read through a cache that a
//! metadata-only LIST keeps honest: an object is fetched again only when its
//! resourceVersion changed) and ConfigMaps, with the API's errors sorted into what the
//! store does about them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
    Preconditions,
};

use super::names;
use super::object::IncidentObject;
use crate::cluster::fence::Fence;
use crate::store::StoreError;

/// More changed incidents than this since the last read: one full LIST instead of a GET each.
const GET_EACH_UP_TO: usize = 8;

/// What a write's failure means for the store.
#[derive(Debug)]
pub enum WriteError {
    /// 409 Conflict: the object changed since it was read; re-read and decide again.
    Conflict,
    /// 409 AlreadyExists: a create found the name taken.
    AlreadyExists,
    /// 404: the object (or its namespace's resource) is gone.
    NotFound,
    /// Anything else.
    Other(StoreError),
}

impl WriteError {
    /// As a store error (for the cases the caller does not handle).
    pub fn into_store(self, what: &str) -> StoreError {
        match self {
            WriteError::Conflict => StoreError::Kube(format!("{what}: conflict")),
            WriteError::AlreadyExists => StoreError::Kube(format!("{what}: already exists")),
            WriteError::NotFound => StoreError::Kube(format!("{what}: not found")),
            WriteError::Other(e) => e,
        }
    }
}

/// Sorts an API error.
pub fn classify(what: &str, e: kube::Error) -> WriteError {
    match &e {
        kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists" => {
            WriteError::AlreadyExists
        }
        kube::Error::Api(s) if s.code == 409 => WriteError::Conflict,
        kube::Error::Api(s) if s.code == 404 => WriteError::NotFound,
        _ => WriteError::Other(fail(what, e)),
    }
}

/// A failed call as a store error naming what was being done.
pub fn fail(what: &str, e: kube::Error) -> StoreError {
    StoreError::Kube(format!("{what}: {e}"))
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The store's view of one namespace of the API.
pub struct Kube {
    incidents: Api<DynamicObject>,
    configmaps: Api<ConfigMap>,
    namespace: String,
    /// Incidents by name, with the resourceVersion they were read at.
    cache: Mutex<HashMap<String, Arc<IncidentObject>>>,
    /// Checked before every write once set: only the Lease holder writes.
    fence: OnceLock<Fence>,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kube({})", self.namespace)
    }
}

/// The `RollbackIncident` resource.
pub fn incident_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk(names::GROUP, names::VERSION, names::KIND);
    ApiResource::from_gvk_with_plural(&gvk, names::PLURAL)
}

fn to_dynamic(obj: &IncidentObject) -> Result<DynamicObject, StoreError> {
    Ok(serde_json::from_value(obj.to_json()?)?)
}

fn from_dynamic(obj: DynamicObject) -> Result<IncidentObject, StoreError> {
    Ok(serde_json::from_value(serde_json::to_value(obj)?)?)
}

impl Kube {
    /// The store's objects in `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            incidents: Api::namespaced_with(client.clone(), namespace, &incident_resource()),
            configmaps: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            cache: Mutex::new(HashMap::new()),
            fence: OnceLock::new(),
        }
    }

    /// Checks `fence` before every write from now on (a second fence is ignored: the
    /// first one set stays).
    pub fn fence_writes(&self, fence: Fence) {
        if self.fence.set(fence).is_err() {
            tracing::warn!(namespace = %self.namespace, "the store's writes are already fenced; the new fence is ignored");
        }
    }

    /// `Ok` when this replica may write now (or no fence is set); `what` names the write
    /// in the error otherwise.
    async fn may_write(&self, what: &str) -> Result<(), WriteError> {
        match self.fence.get() {
            None => Ok(()),
            Some(fence) => fence
                .check()
                .await
                .map_err(|e| WriteError::Other(StoreError::Fenced(format!("{what}: {e}")))),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn remember(&self, obj: IncidentObject) -> Arc<IncidentObject> {
        let obj = Arc::new(obj);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(obj.name().to_string(), Arc::clone(&obj));
        }
        obj
    }

    fn forget(&self, name: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(name);
        }
    }

    /// Fails with a message naming the CRD when the API does not serve it.
    pub async fn check_served(&self) -> Result<(), StoreError> {
        match self
            .incidents
            .list_metadata(&ListParams::default().limit(1))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Err(StoreError::Kube(format!(
                "the API serves no {}.{} (apply deploy/crds/rollbackincidents.yaml first)",
                names::PLURAL,
                names::GROUP
            ))),
            Err(e) => Err(fail(
                &format!("listing {} in {}", names::PLURAL, self.namespace),
                e,
            )),
        }
    }

    /// One incident, read now (not from the cache).
    pub async fn get(&self, name: &str) -> Result<Option<Arc<IncidentObject>>, StoreError> {
        match self.incidents.get_opt(name).await {
            Ok(Some(obj)) => Ok(Some(self.remember(from_dynamic(obj)?))),
            Ok(None) => {
                self.forget(name);
                Ok(None)
            }
            Err(e) => Err(fail(&format!("reading RollbackIncident {name}"), e)),
        }
    }

    /// Creates an incident.
    pub async fn create(&self, obj: &IncidentObject) -> Result<Arc<IncidentObject>, WriteError> {
        let what = format!("creating RollbackIncident {}", obj.name());
        self.may_write(&what).await?;
        let body = to_dynamic(obj).map_err(WriteError::Other)?;
        match self.incidents.create(&PostParams::default(), &body).await {
            Ok(created) => Ok(self.remember(from_dynamic(created).map_err(WriteError::Other)?)),
            Err(e) => Err(classify(&what, e)),
        }
    }

    /// Replaces an incident's status, if the object is still at the resourceVersion it
    /// was read at (409 otherwise).
    pub async fn replace_status(
        &self,
        obj: &IncidentObject,
    ) -> Result<Arc<IncidentObject>, WriteError> {
        let what = format!("writing the status of RollbackIncident {}", obj.name());
        self.may_write(&what).await?;
        let body = to_dynamic(obj).map_err(WriteError::Other)?;
        match self
            .incidents
            .replace_status(obj.name(), &PostParams::default(), &body)
            .await
        {
            Ok(written) => Ok(self.remember(from_dynamic(written).map_err(WriteError::Other)?)),
            Err(e) => Err(classify(&what, e)),
        }
    }

    /// Deletes an incident if it is still at `resource_version`.
    pub async fn delete(&self, name: &str, resource_version: &str) -> Result<(), WriteError> {
        let what = format!("deleting RollbackIncident {name}");
        self.may_write(&what).await?;
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(resource_version.to_string()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        let result = self.incidents.delete(name, &dp).await;
        self.forget(name);
        result.map(|_| ()).map_err(|e| classify(&what, e))
    }

    /// The incidents matching `labels` (every one when empty), current as of this call:
    /// a metadata-only LIST says which changed since they were last read, and only those
    /// are fetched (one by one, or with one full LIST when many changed).
    pub async fn list(&self, labels: &str) -> Result<Vec<Arc<IncidentObject>>, StoreError> {
        let mut lp = ListParams::default();
        if !labels.is_empty() {
            lp = lp.labels(labels);
        }
        let metas = self
            .incidents
            .list_metadata(&lp)
            .await
            .map_err(|e| fail(&format!("listing {}", names::PLURAL), e))?;
        let current: Vec<(String, String)> = metas
            .items
            .into_iter()
            .filter_map(|m| Some((m.metadata.name?, m.metadata.resource_version?)))
            .collect();
        let stale: Vec<&str> = {
            let cache = self.cache.lock().map_err(|_| StoreError::Poisoned)?;
            current
                .iter()
                .filter(|(name, rv)| {
                    cache.get(name).and_then(|o| o.resource_version()) != Some(rv.as_str())
                })
                .map(|(name, _)| name.as_str())
                .collect()
        };
        if stale.len() > GET_EACH_UP_TO {
            let full = self
                .incidents
                .list(&lp)
                .await
                .map_err(|e| fail(&format!("listing {}", names::PLURAL), e))?;
            for obj in full.items {
                self.remember(from_dynamic(obj)?);
            }
        } else {
            for name in stale {
                self.get(name).await?;
            }
        }
        let mut cache = self.cache.lock().map_err(|_| StoreError::Poisoned)?;
        if labels.is_empty() {
            let live: std::collections::HashSet<&str> =
                current.iter().map(|(n, _)| n.as_str()).collect();
            cache.retain(|name, _| live.contains(name.as_str()));
        }
        Ok(current
            .iter()
            .filter_map(|(name, _)| cache.get(name).cloned())
            .collect())
    }

    /// The names of the ConfigMaps matching `labels`, with their resourceVersions.
    pub async fn configmap_versions(
        &self,
        labels: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let metas = self
            .configmaps
            .list_metadata(&ListParams::default().labels(labels))
            .await
            .map_err(|e| fail(&format!("listing ConfigMaps {labels}"), e))?;
        Ok(metas
            .items
            .into_iter()
            .filter_map(|m| Some((m.metadata.name?, m.metadata.resource_version?)))
            .collect())
    }

    /// The ConfigMaps matching `labels`.
    pub async fn configmaps_labelled(&self, labels: &str) -> Result<Vec<ConfigMap>, StoreError> {
        Ok(self
            .configmaps
            .list(&ListParams::default().labels(labels))
            .await
            .map_err(|e| fail(&format!("listing ConfigMaps {labels}"), e))?
            .items)
    }

    /// One ConfigMap, if it exists.
    pub async fn configmap(&self, name: &str) -> Result<Option<ConfigMap>, StoreError> {
        self.configmaps
            .get_opt(name)
            .await
            .map_err(|e| fail(&format!("reading ConfigMap {name}"), e))
    }

    /// Creates a ConfigMap.
    pub async fn create_configmap(&self, cm: &ConfigMap) -> Result<ConfigMap, WriteError> {
        let what = format!(
            "creating ConfigMap {}",
            cm.metadata.name.as_deref().unwrap_or_default()
        );
        self.may_write(&what).await?;
        self.configmaps
            .create(&PostParams::default(), cm)
            .await
            .map_err(|e| classify(&what, e))
    }

    /// Replaces a ConfigMap if it is still at the resourceVersion in its metadata.
    pub async fn replace_configmap(&self, cm: &ConfigMap) -> Result<ConfigMap, WriteError> {
        let name = cm.metadata.name.clone().unwrap_or_default();
        let what = format!("replacing ConfigMap {name}");
        self.may_write(&what).await?;
        self.configmaps
            .replace(&name, &PostParams::default(), cm)
            .await
            .map_err(|e| classify(&what, e))
    }

    /// Deletes a ConfigMap, if it is still at `resource_version` when one is given.
    pub async fn delete_configmap(
        &self,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<(), WriteError> {
        let what = format!("deleting ConfigMap {name}");
        self.may_write(&what).await?;
        let dp = DeleteParams {
            preconditions: resource_version.map(|rv| Preconditions {
                resource_version: Some(rv.to_string()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        self.configmaps
            .delete(name, &dp)
            .await
            .map(|_| ())
            .map_err(|e| classify(&what, e))
    }
}

/// The label selector of the store's ConfigMaps of one role, and more `key=value` pairs.
pub fn selector(pairs: &[(&str, &str)]) -> String {
    std::iter::once(format!("{}={}", names::MANAGED_BY.0, names::MANAGED_BY.1))
        .chain(pairs.iter().map(|(k, v)| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",")
}
