//! The Kubernetes calls of the store: `RollbackIncident`s and ConfigMaps, with the API's
//! errors sorted into what the store does about them.
//!
//! Incidents are read through a [`Cache`] that an [`Informer`] keeps current. Queries over
//! many incidents ([`ReadFrom::Cache`]) read it while its watch is open, and otherwise
//! the API: a metadata-only LIST says which objects changed since they were kept, and
//! only those are fetched. One incident is always read from the API ([`Kube::get`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
    Preconditions,
};

use super::cache::{Cache, ReadObject};
use super::informer::{self, Informer};
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

/// Where a query over many incidents reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The informer's cache while its watch is open (the API otherwise): this replica's
    /// writes at once, another's as soon as the watch shows them.
    Cache,
    /// The API, now: every replica's writes so far.
    Api,
}

/// The store's view of one namespace of the API.
pub struct Kube {
    incidents: Api<DynamicObject>,
    configmaps: Api<ConfigMap>,
    namespace: String,
    /// Incidents by name, as last read, written or watched.
    cache: Arc<Mutex<Cache>>,
    /// Keeps `cache` current; started by the first query (`None`: outside a runtime).
    informer: OnceLock<Option<Informer>>,
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

impl Kube {
    /// The store's objects in `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            incidents: Api::namespaced_with(client.clone(), namespace, &incident_resource()),
            configmaps: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            cache: Arc::new(Mutex::new(Cache::default())),
            informer: OnceLock::new(),
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

    fn remember(&self, obj: ReadObject) -> Result<Arc<ReadObject>, StoreError> {
        Ok(self
            .cache
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .put(obj))
    }

    fn forget(&self, name: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.forget(name);
        }
    }

    /// The incident named `name` as last read, written or watched, if kept.
    pub fn cached(&self, name: &str) -> Option<Arc<ReadObject>> {
        self.cache.lock().ok().and_then(|c| c.get(name))
    }

    fn start_informer(&self) {
        self.informer
            .get_or_init(|| Informer::start(self.incidents.clone(), Arc::clone(&self.cache)));
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
    pub async fn get(&self, name: &str) -> Result<Option<Arc<ReadObject>>, StoreError> {
        match self.incidents.get_opt(name).await {
            Ok(Some(obj)) => Ok(Some(self.remember(informer::read(obj)?)?)),
            Ok(None) => {
                self.forget(name);
                Ok(None)
            }
            Err(e) => Err(fail(&format!("reading RollbackIncident {name}"), e)),
        }
    }

    /// Creates an incident.
    pub async fn create(&self, obj: &IncidentObject) -> Result<Arc<ReadObject>, WriteError> {
        let what = format!("creating RollbackIncident {}", obj.name());
        self.may_write(&what).await?;
        let body = to_dynamic(obj).map_err(WriteError::Other)?;
        match self.incidents.create(&PostParams::default(), &body).await {
            Ok(created) => self.remember_written(created),
            Err(e) => Err(classify(&what, e)),
        }
    }

    fn remember_written(&self, obj: DynamicObject) -> Result<Arc<ReadObject>, WriteError> {
        informer::read(obj)
            .and_then(|o| self.remember(o))
            .map_err(WriteError::Other)
    }

    /// Replaces an incident's status, if the object is still at the resourceVersion it
    /// was read at (409 otherwise).
    pub async fn replace_status(
        &self,
        obj: &IncidentObject,
    ) -> Result<Arc<ReadObject>, WriteError> {
        let what = format!("writing the status of RollbackIncident {}", obj.name());
        self.may_write(&what).await?;
        let body = to_dynamic(obj).map_err(WriteError::Other)?;
        match self
            .incidents
            .replace_status(obj.name(), &PostParams::default(), &body)
            .await
        {
            Ok(written) => self.remember_written(written),
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
        match &result {
            Ok(_) => {
                if let Ok(mut cache) = self.cache.lock() {
                    cache.delete(name, Some(resource_version), std::time::Instant::now());
                }
            }
            Err(e) if is_not_found(e) => self.forget(name),
            Err(_) => {}
        }
        result.map(|_| ()).map_err(|e| classify(&what, e))
    }

    /// The store's incidents carrying each of the labels `pairs` (every one when empty),
    /// read `from` the cache or the API.
    pub async fn list(
        &self,
        pairs: &[(&str, &str)],
        from: ReadFrom,
    ) -> Result<Vec<Arc<ReadObject>>, StoreError> {
        self.start_informer();
        if from == ReadFrom::Cache {
            let cache = self.cache.lock().map_err(|_| StoreError::Poisoned)?;
            if cache.synced() {
                return Ok(cache.matching(pairs));
            }
        }
        self.list_now(pairs).await
    }

    /// [`Self::list`] from the API: a metadata-only LIST says which incidents changed
    /// since they were kept, and only those are fetched (one by one, or with one full LIST
    /// when many changed).
    async fn list_now(&self, pairs: &[(&str, &str)]) -> Result<Vec<Arc<ReadObject>>, StoreError> {
        let lp = ListParams::default().labels(&selector(pairs));
        let metas = self
            .incidents
            .list_metadata(&lp)
            .await
            .map_err(|e| fail(&format!("listing {}", names::PLURAL), e))?;
        let list_version = metas.metadata.resource_version.clone();
        let current: Vec<(String, String)> = metas
            .items
            .into_iter()
            .filter_map(|m| Some((m.metadata.name?, m.metadata.resource_version?)))
            .collect();
        let stale: Vec<&str> = {
            let cache = self.cache.lock().map_err(|_| StoreError::Poisoned)?;
            current
                .iter()
                .filter(|(name, rv)| cache.version_of(name) != Some(rv.as_str()))
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
                self.remember(informer::read(obj)?)?;
            }
        } else {
            for name in stale {
                self.get(name).await?;
            }
        }
        let mut cache = self.cache.lock().map_err(|_| StoreError::Poisoned)?;
        if pairs.is_empty() {
            let live: HashSet<String> = current.iter().map(|(n, _)| n.clone()).collect();
            cache.keep_listed(&live, list_version.as_deref());
        }
        Ok(current
            .iter()
            .filter_map(|(name, _)| cache.get(name))
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
