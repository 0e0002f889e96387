//! An append-only log of JSON entries over ConfigMaps: segments named
//! `rollbackd-<log>-<seq>` (labelled `rollbackd.io/role=<log>`), each holding a JSON array
//! of at most [`SEGMENT_BUDGET`] bytes under the key `entries`. An append is one write: a
//! resourceVersion-checked replace of the last segment, or the create of the next one, so
//! a batch lands whole or not at all, and a lost race re-reads and decides again.
//! Segments are read through a cache keyed by resourceVersion.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::api::{Kube, WriteError, selector};
use super::names;
use crate::store::StoreError;

/// A segment is closed once it would grow past this many bytes: an append rewrites the
/// last segment whole, so this bounds what each append costs (a ConfigMap could hold 1 MiB).
pub const SEGMENT_BUDGET: usize = 64 * 1024;
/// The data key of a segment's entries.
const ENTRIES: &str = "entries";
/// How many times a write that lost a race is decided again.
const ATTEMPTS: usize = 50;

/// One segment as read.
#[derive(Debug, Clone)]
struct Segment {
    name: String,
    seq: u64,
    resource_version: String,
    entries: Arc<Vec<Value>>,
    /// The length of `entries` as stored (JSON).
    bytes: usize,
}

/// A log of one role.
#[derive(Debug)]
pub struct Log {
    role: &'static str,
    cache: Mutex<HashMap<String, Segment>>,
}

fn seq_of(cm: &ConfigMap) -> u64 {
    cm.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::SEQ))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn segment_of(cm: ConfigMap) -> Result<Segment, StoreError> {
    let seq = seq_of(&cm);
    let name = cm.metadata.name.clone().unwrap_or_default();
    let (entries, bytes): (Vec<Value>, usize) = match cm.data.as_ref().and_then(|d| d.get(ENTRIES))
    {
        Some(text) => (serde_json::from_str(text)?, text.len()),
        None => (Vec::new(), 2),
    };
    Ok(Segment {
        name,
        seq,
        resource_version: cm.metadata.resource_version.unwrap_or_default(),
        entries: Arc::new(entries),
        bytes,
    })
}

impl Log {
    /// The log of `role` ([`names::LOG_ALERTS`], [`names::LOG_AUDIT`]).
    pub fn new(role: &'static str) -> Self {
        Self {
            role,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn configmap(
        &self,
        kube: &Kube,
        seq: u64,
        resource_version: Option<String>,
        entries: &[Value],
    ) -> Result<ConfigMap, StoreError> {
        Ok(ConfigMap {
            metadata: ObjectMeta {
                name: Some(names::segment_name(self.role, seq)),
                namespace: Some(kube.namespace().to_string()),
                resource_version,
                labels: Some(
                    [
                        (names::MANAGED_BY.0, names::MANAGED_BY.1),
                        (names::ROLE, self.role),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ),
                annotations: Some([(names::SEQ.to_string(), seq.to_string())].into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                ENTRIES.to_string(),
                serde_json::to_string(entries)?,
            )])),
            ..ConfigMap::default()
        })
    }

    /// The segments, in order, current as of this call.
    async fn segments(&self, kube: &Kube) -> Result<Vec<Segment>, StoreError> {
        let versions = kube
            .configmap_versions(&selector(&[(names::ROLE, self.role)]))
            .await?;
        let stale: Vec<String> = {
            let cache = self.cache.lock().map_err(|_| StoreError::Poisoned)?;
            versions
                .iter()
                .filter(|(name, rv)| {
                    cache.get(name).map(|s| s.resource_version.as_str()) != Some(rv.as_str())
                })
                .map(|(name, _)| name.clone())
                .collect()
        };
        let mut fresh = Vec::new();
        if stale.len() > 4 {
            for cm in kube
                .configmaps_labelled(&selector(&[(names::ROLE, self.role)]))
                .await?
            {
                fresh.push(segment_of(cm)?);
            }
        } else {
            for name in stale {
                if let Some(cm) = kube.configmap(&name).await? {
                    fresh.push(segment_of(cm)?);
                }
            }
        }
        let mut cache = self.cache.lock().map_err(|_| StoreError::Poisoned)?;
        for s in fresh {
            cache.insert(s.name.clone(), s);
        }
        let live: std::collections::HashSet<&str> =
            versions.iter().map(|(n, _)| n.as_str()).collect();
        cache.retain(|name, _| live.contains(name.as_str()));
        let mut out: Vec<Segment> = cache.values().cloned().collect();
        out.sort_by_key(|s| s.seq);
        Ok(out)
    }

    fn remember(&self, cm: ConfigMap) -> Result<(), StoreError> {
        let s = segment_of(cm)?;
        self.cache
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .insert(s.name.clone(), s);
        Ok(())
    }

    /// Every entry, oldest first.
    pub async fn entries(&self, kube: &Kube) -> Result<Vec<Value>, StoreError> {
        Ok(self
            .segments(kube)
            .await?
            .iter()
            .flat_map(|s| s.entries.iter().cloned())
            .collect())
    }

    /// Reads every entry, lets `decide` say what to append (and what to answer), and
    /// appends it in one write; when another write landed first, reads and decides again.
    pub async fn append_with<R>(
        &self,
        kube: &Kube,
        mut decide: impl FnMut(&[&Value]) -> (Vec<Value>, R),
    ) -> Result<R, StoreError> {
        for _ in 0..ATTEMPTS {
            let segments = self.segments(kube).await?;
            let all: Vec<&Value> = segments.iter().flat_map(|s| s.entries.iter()).collect();
            let (new, answer) = decide(&all);
            if new.is_empty() {
                return Ok(answer);
            }
            let written = match segments.last() {
                Some(last) if last.bytes + serde_json::to_vec(&new)?.len() <= SEGMENT_BUDGET => {
                    let mut entries = (*last.entries).clone();
                    entries.extend(new);
                    let cm = self.configmap(
                        kube,
                        last.seq,
                        Some(last.resource_version.clone()),
                        &entries,
                    )?;
                    kube.replace_configmap(&cm).await
                }
                last => {
                    let seq = last.map_or(1, |s| s.seq + 1);
                    let cm = self.configmap(kube, seq, None, &new)?;
                    kube.create_configmap(&cm).await
                }
            };
            match written {
                Ok(cm) => {
                    self.remember(cm)?;
                    return Ok(answer);
                }
                Err(WriteError::Conflict | WriteError::AlreadyExists | WriteError::NotFound) => {
                    continue;
                }
                Err(WriteError::Other(e)) => return Err(e),
            }
        }
        Err(StoreError::Kube(format!(
            "the {} log kept changing: gave up after {ATTEMPTS} attempts",
            self.role
        )))
    }

    /// Removes the entries `keep` refuses; returns how many. Emptied segments are deleted,
    /// but for the last one (the next append goes there).
    pub async fn prune(
        &self,
        kube: &Kube,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<usize, StoreError> {
        let mut removed = 0;
        'again: for _ in 0..ATTEMPTS {
            let segments = self.segments(kube).await?;
            for (i, s) in segments.iter().enumerate() {
                let kept: Vec<Value> = s.entries.iter().filter(|e| keep(e)).cloned().collect();
                if kept.len() == s.entries.len() {
                    continue;
                }
                let last = i + 1 == segments.len();
                let written = if kept.is_empty() && !last {
                    kube.delete_configmap(&s.name, Some(&s.resource_version))
                        .await
                        .map(|()| None)
                } else {
                    let cm =
                        self.configmap(kube, s.seq, Some(s.resource_version.clone()), &kept)?;
                    kube.replace_configmap(&cm).await.map(Some)
                };
                match written {
                    Ok(Some(cm)) => self.remember(cm)?,
                    Ok(None) => {}
                    Err(WriteError::Conflict | WriteError::NotFound) => continue 'again,
                    Err(e) => return Err(e.into_store("pruning a log segment")),
                }
                removed += s.entries.len() - kept.len();
            }
            return Ok(removed);
        }
        Err(StoreError::Kube(format!(
            "the {} log kept changing: pruning gave up after {ATTEMPTS} attempts",
            self.role
        )))
    }
}
