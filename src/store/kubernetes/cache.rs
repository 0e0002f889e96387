//! The store's copy of the namespace's `RollbackIncident`s: what the last reads, the store's
//! own writes and the informer's watch events (`informer.rs`) said, each object
//! kept with its status parsed once.
//!
//! Three sources can answer out of order (a GET answered before a watch event is applied
//! after it), so an object replaces the one kept only when it is newer. Kubernetes calls
//! resourceVersions opaque; they are etcd revisions, integers that only grow, and the API
//! server's own watch cache orders them so. When either of two cannot be read as an
//! integer, the later arrival wins. A deleted name is remembered with the version it was
//! deleted at for [`TOMBSTONE_TTL`], so that a read answered before the delete cannot
//! bring it back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::names;
use super::object::{IncidentObject, Status};
use crate::store::{Incident, StoreError};

/// How long a deleted name is remembered.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(300);

/// An incident object as read, with its effective status (the status, or the opening while
/// no status was written) parsed once.
#[derive(Debug)]
pub struct ReadObject {
    object: IncidentObject,
    status: Result<Status, String>,
}

impl ReadObject {
    /// Parses `object`'s effective status once.
    pub fn new(object: IncidentObject) -> Self {
        let status = object.effective_status().map_err(|e| e.to_string());
        Self { object, status }
    }

    /// The object as read.
    pub fn object(&self) -> &IncidentObject {
        &self.object
    }

    /// Its effective status; [`StoreError::Corrupt`] when it has none that reads.
    pub fn status(&self) -> Result<&Status, StoreError> {
        self.status
            .as_ref()
            .map_err(|e| StoreError::Corrupt(format!("RollbackIncident {}: {e}", self.name())))
    }

    /// Its effective status, a copy to change.
    pub fn effective_status(&self) -> Result<Status, StoreError> {
        self.status().cloned()
    }

    /// The incident record.
    pub fn incident(&self) -> Result<Incident, StoreError> {
        self.object.incident_with(self.status()?)
    }
}

impl std::ops::Deref for ReadObject {
    type Target = IncidentObject;

    fn deref(&self) -> &IncidentObject {
        &self.object
    }
}

/// Whether `incoming` should replace `kept` (see the module doc).
pub fn is_newer(incoming: Option<&str>, kept: Option<&str>) -> bool {
    match (version(incoming), version(kept)) {
        (Some(i), Some(k)) => i >= k,
        _ => true,
    }
}

/// Whether `rv` is known to come after `than` (both integers, `rv` greater).
fn known_after(rv: Option<&str>, than: Option<&str>) -> bool {
    matches!((version(rv), version(than)), (Some(a), Some(b)) if a > b)
}

fn version(rv: Option<&str>) -> Option<u64> {
    rv.and_then(|v| v.parse().ok())
}

/// Whether `obj` carries the store's label and each of `pairs`.
pub fn matches(obj: &IncidentObject, pairs: &[(&str, &str)]) -> bool {
    let Some(labels) = obj.metadata.labels.as_ref() else {
        return false;
    };
    std::iter::once(names::MANAGED_BY)
        .chain(pairs.iter().copied())
        .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
}

/// The objects by name (see the module doc).
#[derive(Debug, Default)]
pub struct Cache {
    /// In name order, as the API lists them.
    objects: BTreeMap<String, Arc<ReadObject>>,
    /// Deleted names: the resourceVersion they were deleted at, and when.
    tombstones: HashMap<String, (Option<String>, Instant)>,
    /// Whether a watch keeps every object here current (`informer.rs`).
    synced: bool,
}

impl Cache {
    /// Keeps `obj`, read or written now, unless a newer one is kept or its name was
    /// deleted at or after its version; answers the object kept (or `obj`).
    pub fn put(&mut self, obj: ReadObject) -> Arc<ReadObject> {
        if let Some((deleted_at, _)) = self.tombstones.get(obj.name()) {
            if !known_after(obj.resource_version(), deleted_at.as_deref()) {
                return Arc::new(obj);
            }
            self.tombstones.remove(obj.name());
        }
        self.keep(obj)
    }

    /// Keeps `obj`, seen on the watch, unless a newer one is kept: the watch tells changes
    /// in order, so after a delete it can only show the name created again.
    pub fn put_watched(&mut self, obj: ReadObject) -> Arc<ReadObject> {
        self.tombstones.remove(obj.name());
        self.keep(obj)
    }

    fn keep(&mut self, obj: ReadObject) -> Arc<ReadObject> {
        if let Some(kept) = self.objects.get(obj.name())
            && !is_newer(obj.resource_version(), kept.resource_version())
        {
            return Arc::clone(kept);
        }
        let obj = Arc::new(obj);
        self.objects
            .insert(obj.name().to_string(), Arc::clone(&obj));
        obj
    }

    /// Forgets `name`, deleted at `resource_version` (its last version when not known).
    pub fn delete(&mut self, name: &str, resource_version: Option<&str>, now: Instant) {
        let kept = self.objects.remove(name);
        let at = resource_version
            .map(str::to_string)
            .or_else(|| kept.and_then(|k| k.resource_version().map(str::to_string)));
        self.tombstones.insert(name.to_string(), (at, now));
        self.tombstones
            .retain(|_, (_, when)| now.saturating_duration_since(*when) < TOMBSTONE_TTL);
    }

    /// Forgets `name` without remembering it as deleted (it was not found: nothing to
    /// guard against).
    pub fn forget(&mut self, name: &str) {
        self.objects.remove(name);
    }

    /// Takes a full LIST answered at `list_version`: keeps each listed object that is
    /// newer, and drops every kept object the LIST did not show unless it is newer than
    /// the LIST (written after it was answered).
    pub fn replace_all(&mut self, listed: Vec<ReadObject>, list_version: Option<&str>) {
        let live: HashSet<String> = listed.iter().map(|o| o.name().to_string()).collect();
        for obj in listed {
            self.put_watched(obj);
        }
        self.keep_listed(&live, list_version);
    }

    /// Drops every kept object not in `live`, the names a full LIST answered at
    /// `list_version` showed, unless it is newer than the LIST.
    pub fn keep_listed(&mut self, live: &HashSet<String>, list_version: Option<&str>) {
        self.objects.retain(|name, kept| {
            live.contains(name) || known_after(kept.resource_version(), list_version)
        });
    }

    /// The object named `name`, if kept.
    pub fn get(&self, name: &str) -> Option<Arc<ReadObject>> {
        self.objects.get(name).cloned()
    }

    /// The resourceVersion kept for `name`.
    pub fn version_of(&self, name: &str) -> Option<&str> {
        self.objects.get(name).and_then(|o| o.resource_version())
    }

    /// Every kept object with the store's label and each of `pairs`, in name order.
    pub fn matching(&self, pairs: &[(&str, &str)]) -> Vec<Arc<ReadObject>> {
        self.objects
            .values()
            .filter(|o| matches(o, pairs))
            .cloned()
            .collect()
    }

    /// Whether a watch keeps the objects here current.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Says whether a watch keeps the objects here current.
    pub fn set_synced(&mut self, synced: bool) {
        self.synced = synced;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn object(name: &str, rv: &str, state: &str) -> ReadObject {
        let status = serde_json::json!({
            "state": state, "updatedAt": "2026-01-15T03:00:00Z", "transitions": [],
            "steps": [], "notifications": [], "threads": [], "audit": []
        });
        let obj = serde_json::json!({
            "metadata": {
                "name": name, "resourceVersion": rv,
                "labels": {names::MANAGED_BY.0: names::MANAGED_BY.1, names::AGENT: "gl-002"},
                "annotations": {names::ID: name.to_uppercase()}
            },
            "spec": {
                "agent": "GL-002", "namespace": "heat", "workload": "boiler", "revision": 7,
                "row": "p0", "severity": "P0", "method": "undo", "trigger": "automatic",
                "reason": "r", "decision": {}, "dryRun": false, "openedAt": "2026-01-15T03:00:00Z"
            },
            "status": status,
        });
        ReadObject::new(serde_json::from_value(obj).expect("object"))
    }

    fn state(c: &Cache, name: &str) -> Option<String> {
        c.get(name)
            .map(|o| o.status().expect("status").state.to_string())
    }

    #[test]
    fn an_older_answer_never_replaces_a_newer_one() {
        let mut c = Cache::default();
        c.put(object("a", "10", "verifying"));
        let kept = c.put(object("a", "7", "rolling_back"));
        assert_eq!(kept.resource_version(), Some("10"));
        assert_eq!(state(&c, "a").as_deref(), Some("verifying"));
        c.put(object("a", "12", "resolved"));
        assert_eq!(state(&c, "a").as_deref(), Some("resolved"));
        // versions that are not integers: the later arrival wins
        c.put(object("a", "x1", "failed"));
        assert_eq!(state(&c, "a").as_deref(), Some("failed"));
    }

    #[test]
    fn a_read_answered_before_a_delete_does_not_bring_it_back() {
        let mut c = Cache::default();
        let t0 = Instant::now();
        c.put(object("a", "10", "resolved"));
        c.delete("a", Some("10"), t0);
        c.put(object("a", "10", "resolved"));
        assert!(c.get("a").is_none(), "the deleted version stays deleted");
        c.put(object("a", "9", "resolved"));
        assert!(c.get("a").is_none());
        // created again under the same name, later
        c.put(object("a", "15", "detected"));
        assert_eq!(state(&c, "a").as_deref(), Some("detected"));
        // the watch tells changes in order: what it shows after a delete is there
        c.delete("a", Some("15"), t0);
        c.put_watched(object("a", "x", "detected"));
        assert_eq!(state(&c, "a").as_deref(), Some("detected"));
        // tombstones do not outlive their TTL
        c.delete("a", None, t0);
        c.delete("b", None, t0 + TOMBSTONE_TTL);
        assert_eq!(c.tombstones.len(), 1, "{:?}", c.tombstones.keys());
    }

    #[test]
    fn a_relist_drops_what_is_gone_but_keeps_what_was_written_after_it() {
        let mut c = Cache::default();
        c.put(object("old", "3", "resolved"));
        c.put(object("mine", "21", "rolling_back"));
        c.put(object("kept", "5", "verifying"));
        c.replace_all(vec![object("kept", "6", "resolved")], Some("20"));
        assert!(c.get("old").is_none(), "deleted before the list");
        assert_eq!(state(&c, "mine").as_deref(), Some("rolling_back"));
        assert_eq!(state(&c, "kept").as_deref(), Some("resolved"));
    }

    #[test]
    fn matching_needs_the_store_label_and_every_pair() {
        let mut c = Cache::default();
        c.put(object("a", "1", "resolved"));
        let mut foreign = object("b", "2", "resolved").object().clone();
        foreign.metadata = ObjectMeta {
            labels: Some([(names::AGENT.to_string(), "gl-002".to_string())].into()),
            ..foreign.metadata
        };
        c.put(ReadObject::new(foreign));
        assert_eq!(c.matching(&[]).len(), 1);
        assert_eq!(c.matching(&[(names::AGENT, "gl-002")]).len(), 1);
        assert_eq!(c.matching(&[(names::AGENT, "gl-001")]).len(), 0);
    }

    #[test]
    fn an_unreadable_status_is_an_error_naming_the_object() {
        let mut obj = object("a", "1", "resolved").object().clone();
        obj.status = None;
        let read = ReadObject::new(obj);
        let e = read.status().expect_err("no status, no opening");
        assert!(e.to_string().contains("RollbackIncident a"), "{e}");
    }
}
