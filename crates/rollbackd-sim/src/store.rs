//! The object store: objects by resource/namespace/name, resourceVersions, and watch fan-out.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::admission::{Admission, AdmissionRequest, Operation};
use super::conversion::{present, storage_of, to_storage};
use super::crds;
use super::defaults;
use super::discovery::{self, CRDS, Catalog, Resource};
use super::events;
use super::ids;
use super::paging::{Chunk, Cursor};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{ApiError, qualified};
use super::validate;

/// How many change events are kept for watches that resume from an older resourceVersion.
const HISTORY: usize = 10_000;

/// The kind of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object deleted.
    Deleted,
}

impl EventType {
    /// The wire name (`ADDED`, `MODIFIED`, `DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to one object.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The resourceVersion this change produced.
    pub rv: u64,
    /// The resource type of the object.
    pub resource: &'static Resource,
    /// What happened.
    pub kind: EventType,
    /// The object before a modification (lets watches with selectors translate a change
    /// into ADDED/DELETED when the object enters or leaves the selection).
    pub previous: Option<Value>,
    /// The object after the change (the last state for deletes).
    pub object: Value,
}

/// Which part of an object a write targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object itself: status changes are ignored for kinds with a status subresource.
    Main,
    /// The `/status` subresource: only status changes are kept.
    Status,
    /// Internal write (controllers, seeding): everything is kept.
    All,
}

/// One chunk of a LIST.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The objects, in key order.
    pub items: Vec<Value>,
    /// The list's resourceVersion (the first chunk's, on every chunk).
    pub rv: u64,
    /// Where the next chunk starts, when more objects remain.
    pub next: Option<Cursor>,
    /// How many objects remain after this chunk (known only without selectors).
    pub remaining: Option<usize>,
}

type Key = (&'static str, &'static str, String, String);

type LabelKey = (&'static str, &'static str, String, String, String);

/// The label index entries of the object stored under `k`.
fn label_keys(k: &Key, obj: &Value) -> Vec<LabelKey> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(label, value)| {
            (
                k.0,
                k.1,
                k.2.clone(),
                label.clone(),
                value.as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn key(r: &'static Resource, ns: &str, name: &str) -> Key {
    (r.group, r.plural, ns.to_string(), name.to_string())
}

/// Whether `k` is the key of a CustomResourceDefinition.
fn is_crd_key(k: &Key) -> bool {
    k.0 == CRDS.group && k.1 == CRDS.plural
}

/// An object without `metadata` (and without `status` when `status` is also left out): what
/// a custom resource's generation follows.
fn content(obj: &Value, without_status: bool) -> Value {
    let mut c = obj.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        if without_status {
            m.remove("status");
        }
    }
    c
}

#[derive(Debug, Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    /// Owner uid → keys of the objects whose ownerReferences name it (garbage collection
    /// finds dependents without scanning every object). Kept by [`Inner::put`] and
    /// [`Inner::take`], the only writers of `objects`.
    dependents: HashMap<String, BTreeSet<Key>>,
    /// (group, plural, namespace, label, value) → keys of the objects carrying that label
    /// (a LIST with a `key=value` selector reads only those). Kept like `dependents`.
    labelled: HashMap<LabelKey, BTreeSet<Key>>,
    history: VecDeque<Arc<StoredEvent>>,
    /// Writes to reconciled resources the controllers have not taken yet (one entry per
    /// object, so it stays bounded when no controller runs).
    changes: HashMap<Key, Change>,
    /// The oldest resourceVersion a watch can resume from.
    compacted: u64,
    /// How many events `history` keeps.
    limit: usize,
    /// CRD name → the resources it defines, with whether each is served. Kept by
    /// [`Inner::put`] and [`Inner::take`] like the indexes, so a CRD's resources appear and
    /// disappear with the write that creates or deletes it.
    custom: BTreeMap<String, Vec<(&'static Resource, bool)>>,
}

/// The uids an object's ownerReferences name.
fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| o["uid"].as_str())
}

impl Inner {
    /// Stores `obj` under `k`, keeping the owner index.
    fn put(&mut self, k: Key, obj: Value) {
        if let Some(old) = self.objects.get(&k) {
            let old_owners: Vec<String> = owner_uids(old).map(str::to_string).collect();
            let old_controller = controller_of(old);
            let old_labels = label_keys(&k, old);
            self.unindex(&k, old_owners, old_labels);
            self.note(&k, old_controller, None);
        }
        for uid in owner_uids(&obj) {
            self.dependents
                .entry(uid.to_string())
                .or_default()
                .insert(k.clone());
        }
        for lk in label_keys(&k, &obj) {
            self.labelled.entry(lk).or_default().insert(k.clone());
        }
        self.note(&k, controller_of(&obj), None);
        if is_crd_key(&k) {
            self.custom.insert(k.3.clone(), crds::resources(&obj));
        }
        self.objects.insert(k, obj);
    }

    /// Removes the object under `k`, keeping the owner index.
    fn take(&mut self, k: &Key) -> Option<Value> {
        let obj = self.objects.remove(k)?;
        let owners: Vec<String> = owner_uids(&obj).map(str::to_string).collect();
        self.unindex(k, owners, label_keys(k, &obj));
        self.note(k, controller_of(&obj), Some(uid_of(&obj).to_string()));
        if is_crd_key(k) {
            self.custom.remove(&k.3);
        }
        Some(obj)
    }

    /// The resources served now: the built-in ones and the served versions of every CRD.
    fn catalog(&self) -> Catalog {
        Catalog::with_custom(
            self.custom
                .values()
                .flatten()
                .filter_map(|(r, served)| served.then_some(*r)),
        )
    }

    /// A resource whose objects are stored under (group, plural): a built-in one, or a
    /// version of a CRD (served or not: its objects still have to be deleted with it).
    fn resource_at(&self, group: &str, plural: &str) -> Option<&'static Resource> {
        discovery::builtin(group, plural).or_else(|| {
            self.custom
                .values()
                .flatten()
                .map(|(r, _)| *r)
                .find(|r| r.group == group && r.plural == plural)
        })
    }

    /// The stored CRDs of `group` other than `name`.
    fn crds_of_group(&self, group: &str, name: &str) -> Vec<Value> {
        self.of_resource(&CRDS, None, Bound::Unbounded)
            .filter(|((_, _, _, n), obj)| n != name && crds::group_of(obj) == group)
            .map(|(_, obj)| obj.clone())
            .collect()
    }

    /// The objects of `r`, in one namespace or all. Keys sort by (group, plural, namespace,
    /// name): only this resource's range is read.
    fn of_resource<'a>(
        &'a self,
        r: &'static Resource,
        ns: Option<&'a str>,
        after: Bound<&Key>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> {
        let first = (
            r.group,
            r.plural,
            ns.unwrap_or_default().to_string(),
            String::new(),
        );
        let from = match after {
            Bound::Excluded(k) if *k >= first => Bound::Excluded(k.clone()),
            _ => Bound::Included(first),
        };
        self.objects
            .range((from, Bound::Unbounded))
            .take_while(move |((g, p, n, _), _)| {
                *g == r.group && *p == r.plural && ns.is_none_or(|ns| ns == n)
            })
    }

    /// Queues a write to `k` for the controllers (only for the resources they reconcile).
    fn note(&mut self, k: &Key, controller: Option<(String, String)>, gone: Option<String>) {
        let Some(resource) = RECONCILED
            .iter()
            .find(|r| r.group == k.0 && r.plural == k.1)
            .copied()
        else {
            return;
        };
        let change = self.changes.entry(k.clone()).or_insert_with(|| Change {
            resource,
            namespace: k.2.clone(),
            name: k.3.clone(),
            controllers: Vec::new(),
            gone: Vec::new(),
        });
        if let Some(c) = controller
            && !change.controllers.contains(&c)
        {
            change.controllers.push(c);
        }
        change.gone.extend(gone);
    }

    fn unindex(&mut self, k: &Key, owners: Vec<String>, labels: Vec<LabelKey>) {
        for uid in owners {
            if let Some(keys) = self.dependents.get_mut(&uid) {
                keys.remove(k);
                if keys.is_empty() {
                    self.dependents.remove(&uid);
                }
            }
        }
        for lk in labels {
            if let Some(keys) = self.labelled.get_mut(&lk) {
                keys.remove(k);
                if keys.is_empty() {
                    self.labelled.remove(&lk);
                }
            }
        }
    }
}

/// The resources the simulator's controllers reconcile: writes to them are queued as
/// [`Change`]s, so a controller pass visits what changed instead of every object.
const RECONCILED: [&Resource; 5] = [
    &discovery::DEPLOYMENTS,
    &discovery::ROLLOUTS,
    &discovery::REPLICASETS,
    &discovery::JOBS,
    &discovery::PODS,
];

/// Writes to one object that the controllers have not taken yet ([`Store::take_changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The object's resource.
    pub resource: &'static Resource,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its controllers, as (kind, name) in the same namespace, before and after the writes.
    pub controllers: Vec<(String, String)>,
    /// uids of the objects deleted under this name (their controller memory can go).
    pub gone: Vec<String>,
}

/// The (kind, name) of the ownerReference with `controller: true`.
fn controller_of(obj: &Value) -> Option<(String, String)> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|o| o["controller"] == json!(true))
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_string(),
                o["name"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// The shared object store.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<StoredEvent>>,
    /// The validating admission hook every write passes (see [`Admission`]).
    pub admission: Admission,
}

/// A delete's preconditions (`DeleteOptions.preconditions`): the object is deleted only if
/// it still has this uid and resourceVersion (409 Conflict otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    /// The uid the object must have.
    pub uid: Option<String>,
    /// The resourceVersion the object must be at.
    pub resource_version: Option<String>,
}

/// The start of a watch: events to replay, then a live receiver.
pub struct WatchStart {
    /// Events already past the requested resourceVersion.
    pub replay: Vec<Arc<StoredEvent>>,
    /// Live events.
    pub live: broadcast::Receiver<Arc<StoredEvent>>,
    /// The store's resourceVersion when the watch started.
    pub rv: u64,
}

/// `metadata.name` of an object.
pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.namespace` of an object.
pub fn namespace_of(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.uid` of an object.
pub fn uid_of(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn rv_of(obj: &Value) -> &str {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn metadata_mut(obj: &mut Value) -> Result<&mut serde_json::Map<String, Value>, ApiError> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("object must be a JSON object".into()))?;
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    meta.as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("metadata must be an object".into()))
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store with the `default` namespace.
    pub fn new() -> Self {
        Self::with_history(HISTORY)
    }

    /// An empty store that keeps `limit` change events for resuming watches.
    pub fn with_history(limit: usize) -> Self {
        let (events, _) = broadcast::channel(8192);
        let store = Store {
            inner: Mutex::new(Inner {
                limit,
                ..Inner::default()
            }),
            events,
            admission: Admission::default(),
        };
        let _ = store.create(
            &discovery::NAMESPACES,
            "",
            json!({"metadata": {"name": "default"}}),
            false,
        );
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(
        &self,
        inner: &mut Inner,
        r: &'static Resource,
        kind: EventType,
        object: Value,
        previous: Option<Value>,
    ) {
        let ev = Arc::new(StoredEvent {
            rv: inner.rv,
            resource: r,
            kind,
            object,
            previous,
        });
        inner.history.push_back(ev.clone());
        while inner.history.len() > inner.limit {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = old.rv;
            }
        }
        let _ = self.events.send(ev);
    }

    /// The current resourceVersion of the whole store.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// One object, as `r` serves it.
    pub fn get(&self, r: &'static Resource, ns: &str, name: &str) -> Option<Value> {
        let obj = self
            .lock()
            .objects
            .get(&key(storage_of(r), ns, name))
            .cloned()?;
        Some(present(r, obj))
    }

    /// The resources served now: the built-in ones and those the stored
    /// CustomResourceDefinitions define.
    pub fn catalog(&self) -> Catalog {
        self.lock().catalog()
    }

    /// The writes to reconciled resources since the last call, one entry per object.
    pub fn take_changes(&self) -> Vec<Change> {
        std::mem::take(&mut self.lock().changes)
            .into_values()
            .collect()
    }

    /// The (namespace, name) of every object of a resource.
    pub fn names(&self, r: &'static Resource) -> Vec<(String, String)> {
        self.lock()
            .of_resource(r, None, Bound::Unbounded)
            .map(|((_, _, ns, name), _)| (ns.clone(), name.clone()))
            .collect()
    }

    /// The objects of a resource that `uid` controls (through the owner index, in key order).
    pub fn controlled(&self, r: &'static Resource, uid: &str) -> Vec<Value> {
        let inner = self.lock();
        inner
            .dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter(|(g, p, _, _)| *g == r.group && *p == r.plural)
            .filter_map(|k| inner.objects.get(k))
            .filter(|obj| controlled_by(obj, uid))
            .cloned()
            .collect()
    }

    /// Objects of one resource, optionally in one namespace, filtered by selectors, and the
    /// store's resourceVersion.
    pub fn list(
        &self,
        r: &'static Resource,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Value>, u64) {
        let listed = self.list_chunk(r, ns, labels, fields, &Chunk::default());
        (listed.items, listed.rv)
    }

    /// One chunk of a LIST, in key order (namespace, name): at most `chunk.limit` objects
    /// after `chunk.after`, with the cursor of the next chunk when more remain. Selectors see
    /// the stored objects (see [`events::field_selector`]); the items are served as `r`
    /// serves them.
    pub fn list_chunk(
        &self,
        r: &'static Resource,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        chunk: &Chunk,
    ) -> Listed {
        let served = r;
        let r = storage_of(r);
        let inner = self.lock();
        let after = chunk
            .after
            .as_ref()
            .map(|c| (r.group, r.plural, c.namespace.clone(), c.name.clone()));
        let from = match &after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        // In one namespace with `key=value` requirements, the candidates are the objects
        // carrying the rarest of those labels; otherwise every object of the resource (in
        // `ns`).
        let rarest = ns.and_then(|ns| {
            labels
                .equalities()
                .map(|(label, value)| {
                    let lk = (
                        r.group,
                        r.plural,
                        ns.to_string(),
                        label.to_string(),
                        value.to_string(),
                    );
                    inner.labelled.get(&lk)
                })
                .min_by_key(|keys| keys.map_or(0, BTreeSet::len))
        });
        let candidates: Box<dyn Iterator<Item = (&Key, &Value)>> = match rarest {
            Some(keys) => Box::new(
                keys.into_iter()
                    .flat_map(move |keys| keys.range((from, Bound::Unbounded)))
                    .filter_map(|k| inner.objects.get_key_value(k)),
            ),
            None => Box::new(inner.of_resource(r, ns, from)),
        };
        let mut matching =
            candidates.filter(|(_, v)| labels.matches_object(v) && fields.matches(v));
        let limit = chunk.limit.unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut last = None;
        let mut more = false;
        for (k, v) in matching.by_ref() {
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(if chunk.metadata_only {
                serde_json::json!({"metadata": v.get("metadata").cloned().unwrap_or_default()})
            } else {
                present(served, v.clone())
            });
            last = Some(k);
        }
        let rv = chunk.after.as_ref().map_or(inner.rv, |c| c.rv);
        // like the API server, the count is known only without selectors
        let remaining =
            (more && labels.is_empty() && fields.is_empty()).then(|| 1 + matching.count());
        let next = last.filter(|_| more).map(|(_, _, namespace, name)| Cursor {
            rv,
            namespace: namespace.clone(),
            name: name.clone(),
        });
        Listed {
            items,
            rv,
            next,
            remaining,
        }
    }

    /// Creates an object with POST semantics, written and returned as `r` serves it. With
    /// `dry_run` nothing is stored.
    pub fn create(
        &self,
        r: &'static Resource,
        ns: &str,
        obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let served = r;
        let r = storage_of(r);
        let mut obj = to_storage(served, obj);
        let ns = if r.namespaced {
            if ns.is_empty() { "default" } else { ns }
        } else {
            ""
        };
        {
            let meta = metadata_mut(&mut obj)?;
            let has_name = meta
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !has_name {
                let prefix = meta
                    .get("generateName")
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| {
                        ApiError::Invalid(format!(
                            "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                            r.kind
                        ))
                    })?
                    .to_string();
                meta.insert(
                    "name".into(),
                    json!(format!("{prefix}{}", ids::name_suffix())),
                );
            }
            if r.namespaced {
                meta.insert("namespace".into(), json!(ns));
            } else {
                meta.remove("namespace");
            }
            meta.insert("uid".into(), json!(ids::uid()));
            meta.insert("creationTimestamp".into(), json!(ids::now()));
            meta.insert("generation".into(), json!(1));
            meta.remove("resourceVersion");
        }
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), json!(r.api_version()));
            m.insert("kind".into(), json!(r.kind));
        }
        if served.has_status
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        if !r.custom {
            defaults::apply(r.kind, &mut obj);
        }
        validate::check(r, &obj)?;
        if events::is_event(served) {
            events::validate(served, &obj, ns, None)?;
        }
        let name = name_of(&obj).to_string();
        let mut inner = self.lock();
        let k = key(r, ns, &name);
        if inner.objects.contains_key(&k) {
            return Err(ApiError::AlreadyExists(format!(
                "{} \"{name}\" already exists",
                qualified(served.plural, served.group)
            )));
        }
        if r.same_objects(&CRDS) {
            let others = inner.crds_of_group(crds::group_of(&obj), &name);
            crds::settle(&mut obj, None, &others);
        }
        self.admission.check(&AdmissionRequest {
            operation: Operation::Create,
            group: served.group,
            resource: served.plural,
            namespace: ns,
            name: &name,
            object: Some(&obj),
            old_object: None,
        })?;
        if dry_run {
            return Ok(present(served, obj));
        }
        if r.namespaced && !ns.is_empty() {
            self.ensure_namespace(&mut inner, ns);
        }
        inner.rv += 1;
        let rv = inner.rv;
        metadata_mut(&mut obj)?.insert("resourceVersion".into(), json!(rv.to_string()));
        inner.put(k, obj.clone());
        self.record(&mut inner, r, EventType::Added, obj.clone(), None);
        Ok(present(served, obj))
    }

    fn ensure_namespace(&self, inner: &mut Inner, ns: &str) {
        let nsr: &'static Resource = &discovery::NAMESPACES;
        let k = key(nsr, "", ns);
        if inner.objects.contains_key(&k) {
            return;
        }
        inner.rv += 1;
        let obj = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "uid": ids::uid(), "creationTimestamp": ids::now(),
                         "resourceVersion": inner.rv.to_string(),
                         "labels": {"kubernetes.io/metadata.name": ns}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
        });
        inner.put(k, obj.clone());
        self.record(inner, nsr, EventType::Added, obj, None);
    }

    /// Replaces an object (PUT semantics), written and returned as `r` serves it. A non-empty
    /// `metadata.resourceVersion` that differs from the stored one is a 409 Conflict.
    /// Unchanged objects keep their resourceVersion.
    pub fn update(
        &self,
        r: &'static Resource,
        ns: &str,
        name: &str,
        obj: Value,
        part: Part,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::BadRequest("object must be a JSON object".into()));
        }
        let served = r;
        let r = storage_of(r);
        let mut obj = to_storage(served, obj);
        let ns = if r.namespaced { ns } else { "" };
        let mut inner = self.lock();
        let k = key(r, ns, name);
        let old = inner
            .objects
            .get(&k)
            .cloned()
            .ok_or_else(|| ApiError::not_found(served.plural, served.group, name))?;
        let sent_rv = rv_of(&obj);
        if !sent_rv.is_empty() && sent_rv != rv_of(&old) {
            return Err(ApiError::Conflict(format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(served.plural, served.group)
            )));
        }
        let body_name = name_of(&obj);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let mut new = match part {
            // A custom resource's status write keeps the sent status, or none when none is
            // sent (its status is not a struct that always exists).
            Part::Status if r.custom => {
                let mut n = old.clone();
                if let Some(m) = n.as_object_mut() {
                    match obj.get("status") {
                        Some(status) => m.insert("status".into(), status.clone()),
                        None => m.remove("status"),
                    };
                }
                n
            }
            Part::Status => {
                let mut n = old.clone();
                n["status"] = obj.get("status").cloned().unwrap_or(json!({}));
                n
            }
            Part::Main if served.has_status => {
                if let Some(m) = obj.as_object_mut() {
                    match old.get("status") {
                        Some(s) => m.insert("status".into(), s.clone()),
                        None => m.remove("status"),
                    };
                }
                obj
            }
            _ => obj,
        };
        {
            let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
            let meta = metadata_mut(&mut new)?;
            for f in [
                "uid",
                "creationTimestamp",
                "namespace",
                "name",
                "generation",
            ] {
                match old_meta.get(f) {
                    Some(v) => meta.insert(f.into(), v.clone()),
                    None => meta.remove(f),
                };
            }
            meta.insert("resourceVersion".into(), json!(rv_of(&old)));
        }
        if let Some(m) = new.as_object_mut() {
            // A custom resource keeps the apiVersion it was stored with, whichever of its
            // versions writes it (conversion `None`: the versions differ only by name).
            let api_version = match old.get("apiVersion") {
                Some(v) if r.custom => v.clone(),
                _ => json!(r.api_version()),
            };
            m.insert("apiVersion".into(), api_version);
            m.insert("kind".into(), json!(r.kind));
        }
        if !r.custom {
            defaults::apply(r.kind, &mut new);
        }
        validate::check_update(r, &new, &old)?;
        if events::is_event(served) {
            events::validate(served, &new, ns, Some(&old))?;
        }
        // Built-in kinds: a new generation when the spec changes. Custom resources: when
        // anything but metadata (and status, under a status subresource) changes, except on
        // /status writes, as the apiextensions server's strategy does.
        let next_generation = if r.custom {
            part != Part::Status
                && content(&new, served.has_status) != content(&old, served.has_status)
        } else {
            new.get("spec") != old.get("spec")
        };
        if next_generation {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            metadata_mut(&mut new)?.insert("generation".into(), json!(generation + 1));
        }
        if r.same_objects(&CRDS) {
            let others = inner.crds_of_group(crds::group_of(&new), name);
            crds::settle(&mut new, Some(&old), &others);
        }
        self.admission.check(&AdmissionRequest {
            operation: Operation::Update,
            group: served.group,
            resource: served.plural,
            namespace: ns,
            name,
            object: Some(&new),
            old_object: Some(&old),
        })?;
        if new == old || dry_run {
            return Ok(present(served, new));
        }
        inner.rv += 1;
        let rv = inner.rv;
        metadata_mut(&mut new)?.insert("resourceVersion".into(), json!(rv.to_string()));
        inner.put(k, new.clone());
        self.record(&mut inner, r, EventType::Modified, new.clone(), Some(old));
        Ok(present(served, new))
    }

    /// Deletes an object and (unless `orphan`) every object it owns, recursively.
    pub fn delete(
        &self,
        r: &'static Resource,
        ns: &str,
        name: &str,
        orphan: bool,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        self.delete_checked(r, ns, name, orphan, dry_run, &Preconditions::default())
    }

    /// [`Store::delete`], if the object still meets `preconditions` (409 Conflict
    /// otherwise, in the API server's words).
    pub fn delete_checked(
        &self,
        r: &'static Resource,
        ns: &str,
        name: &str,
        orphan: bool,
        dry_run: bool,
        preconditions: &Preconditions,
    ) -> Result<Value, ApiError> {
        let served = r;
        let r = storage_of(r);
        let ns = if r.namespaced { ns } else { "" };
        let mut inner = self.lock();
        let k = key(r, ns, name);
        let old = inner
            .objects
            .get(&k)
            .cloned()
            .ok_or_else(|| ApiError::not_found(served.plural, served.group, name))?;
        let failed = |what: &str, wanted: &str, actual: &str| {
            ApiError::Conflict(format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {actual}",
                qualified(served.plural, served.group)
            ))
        };
        if let Some(uid) = &preconditions.uid
            && uid != uid_of(&old)
        {
            return Err(failed("UID", uid, uid_of(&old)));
        }
        if let Some(rv) = &preconditions.resource_version
            && rv != rv_of(&old)
        {
            return Err(failed("ResourceVersion", rv, rv_of(&old)));
        }
        self.admission.check(&AdmissionRequest {
            operation: Operation::Delete,
            group: served.group,
            resource: served.plural,
            namespace: ns,
            name,
            object: None,
            old_object: Some(&old),
        })?;
        if dry_run {
            return Ok(present(served, old));
        }
        let mut pending = vec![(k, r)];
        let mut first = None;
        // Groups whose CRD names may have been freed by deleting a CRD.
        let mut freed_groups: Vec<String> = Vec::new();
        while let Some((k, r)) = pending.pop() {
            let Some(mut obj) = inner.take(&k) else {
                continue;
            };
            inner.rv += 1;
            let rv = inner.rv;
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("resourceVersion".into(), json!(rv.to_string()));
            }
            let uid = uid_of(&obj).to_string();
            if r.same_objects(&discovery::NAMESPACES) {
                let contents: Vec<Key> = inner
                    .objects
                    .keys()
                    .filter(|(_, _, ns, _)| *ns == k.3)
                    .cloned()
                    .collect();
                for ck in contents {
                    if let Some(cr) = inner.resource_at(ck.0, ck.1) {
                        pending.push((ck, cr));
                    }
                }
            }
            if r.same_objects(&CRDS) {
                // Deleting a CRD deletes its objects, in every namespace; not those of a
                // built-in resource it could not replace (a CRD named rollouts.argoproj.io).
                if let Some((cr, _)) = crds::resources(&obj)
                    .first()
                    .copied()
                    .filter(|(cr, _)| discovery::builtin(cr.group, cr.plural).is_none())
                {
                    let objects: Vec<Key> = inner
                        .of_resource(cr, None, Bound::Unbounded)
                        .map(|(ck, _)| ck.clone())
                        .collect();
                    pending.extend(objects.into_iter().map(|ck| (ck, cr)));
                }
                freed_groups.push(crds::group_of(&obj).to_string());
            }
            self.record(&mut inner, r, EventType::Deleted, obj.clone(), None);
            if first.is_none() {
                first = Some(obj);
            }
            let dependents: Vec<Key> = inner
                .dependents
                .get(&uid)
                .map(|keys| keys.iter().cloned().collect())
                .unwrap_or_default();
            for dk in dependents {
                if orphan {
                    self.remove_owner(&mut inner, &dk, &uid);
                } else if let Some(dr) = inner.resource_at(dk.0, dk.1) {
                    pending.push((dk, dr));
                }
            }
        }
        for group in freed_groups {
            self.resettle_group(&mut inner, &group);
        }
        Ok(present(served, first.unwrap_or(old)))
    }

    /// Gives the CRDs of `group` whose names were not accepted another chance (names are
    /// freed when a CRD goes), as the API server's naming controller does.
    fn resettle_group(&self, inner: &mut Inner, group: &str) {
        let waiting: Vec<Value> = inner
            .crds_of_group(group, "")
            .into_iter()
            .filter(|c| {
                c.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|x| x["type"] == "NamesAccepted" && x["status"] != "True")
                    })
            })
            .collect();
        for old in waiting {
            let name = name_of(&old).to_string();
            let mut new = old.clone();
            let others = inner.crds_of_group(group, &name);
            crds::settle(&mut new, Some(&old), &others);
            if new == old {
                continue;
            }
            inner.rv += 1;
            new["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
            inner.put(key(&CRDS, "", &name), new.clone());
            self.record(inner, &CRDS, EventType::Modified, new, Some(old));
        }
    }

    fn remove_owner(&self, inner: &mut Inner, k: &Key, uid: &str) {
        let Some(r) = inner.resource_at(k.0, k.1) else {
            return;
        };
        let Some(before) = inner.objects.get(k).cloned() else {
            return;
        };
        let mut obj = before.clone();
        if let Some(refs) = obj
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|o| o["uid"] != uid);
        }
        inner.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        inner.put(k.clone(), obj.clone());
        self.record(inner, r, EventType::Modified, obj, Some(before));
    }

    /// Starts a watch after `since` (None: replay current objects as ADDED first). The events
    /// carry stored objects; the watcher serves them as `r` serves them.
    pub fn watch(&self, r: &'static Resource, since: Option<u64>) -> Result<WatchStart, ApiError> {
        let r = storage_of(r);
        let inner = self.lock();
        let live = self.events.subscribe();
        let replay = match since {
            None | Some(0) => inner
                .of_resource(r, None, Bound::Unbounded)
                .map(|(_, v)| {
                    Arc::new(StoredEvent {
                        rv: inner.rv,
                        resource: r,
                        kind: EventType::Added,
                        object: v.clone(),
                        previous: None,
                    })
                })
                .collect(),
            Some(rv) => {
                if rv > inner.rv {
                    // A resourceVersion from the future (e.g. from before a simulator restart):
                    // make the client relist instead of silently missing objects.
                    return Err(ApiError::Gone(format!(
                        "too large resource version: {rv}, current: {}",
                        inner.rv
                    )));
                }
                if rv < inner.compacted {
                    return Err(ApiError::Gone(format!(
                        "too old resource version: {rv} ({})",
                        inner.compacted + 1
                    )));
                }
                inner
                    .history
                    .iter()
                    .filter(|e| e.rv > rv && e.resource.same_objects(r))
                    .cloned()
                    .collect()
            }
        };
        Ok(WatchStart {
            replay,
            live,
            rv: inner.rv,
        })
    }
}

/// Whether `obj` lists `uid` among its ownerReferences.
pub fn owned_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|o| o["uid"] == uid))
}

/// Whether `obj` is controlled by `uid` (ownerReference with `controller: true`).
pub fn controlled_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|o| o["uid"] == uid && o["controller"] == json!(true))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::{CONFIGMAPS, EVENTS, EVENTS_V1, NAMESPACES, ROLLOUTS};

    fn cm(name: &str) -> Value {
        json!({"metadata": {"name": name}, "data": {"k": "v"}})
    }

    #[test]
    fn resource_versions_conflicts_and_noop_updates() {
        let store = Store::new();
        let a = store
            .create(&CONFIGMAPS, "default", cm("a"), false)
            .unwrap();
        let rv = a["metadata"]["resourceVersion"].clone();
        // Unchanged update keeps the resourceVersion.
        let same = store
            .update(&CONFIGMAPS, "default", "a", a.clone(), Part::Main, false)
            .unwrap();
        assert_eq!(same["metadata"]["resourceVersion"], rv);
        let mut changed = a.clone();
        changed["data"]["k"] = json!("w");
        store
            .update(
                &CONFIGMAPS,
                "default",
                "a",
                changed.clone(),
                Part::Main,
                false,
            )
            .unwrap();
        let err = store
            .update(&CONFIGMAPS, "default", "a", changed, Part::Main, false)
            .unwrap_err();
        assert_eq!(err.reason(), "Conflict");
        let err = store
            .create(&CONFIGMAPS, "default", cm("a"), false)
            .unwrap_err();
        assert_eq!(err.reason(), "AlreadyExists");
        // Dry run does not persist.
        store
            .create(&CONFIGMAPS, "default", cm("dry"), true)
            .unwrap();
        assert!(store.get(&CONFIGMAPS, "default", "dry").is_none());
    }

    #[test]
    fn watch_resumes_from_history_and_expires_when_compacted() {
        let store = Store::with_history(3);
        let first = store
            .create(&CONFIGMAPS, "default", cm("a"), false)
            .unwrap();
        let rv: u64 = first["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        store
            .create(&CONFIGMAPS, "default", cm("b"), false)
            .unwrap();
        let start = store.watch(&CONFIGMAPS, Some(rv)).unwrap();
        assert_eq!(start.replay.len(), 1);
        assert_eq!(name_of(&start.replay[0].object), "b");
        for n in ["c", "d", "e", "f"] {
            store.create(&CONFIGMAPS, "default", cm(n), false).unwrap();
        }
        let err = store.watch(&CONFIGMAPS, Some(rv)).err().unwrap();
        assert_eq!(err.code(), 410);
        let err = store.watch(&CONFIGMAPS, Some(1_000_000)).err().unwrap();
        assert_eq!(err.code(), 410);
    }

    fn incident_crd(name: &str, kind: &str, plural: &str) -> Value {
        json!({
            "metadata": {"name": format!("{plural}.rollbackd.io")},
            "spec": {
                "group": "rollbackd.io", "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural, "shortNames": [name]},
                "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                              "schema": {"openAPIV3Schema": {"type": "object"}},
                              "subresources": {"status": {}}}]
            }
        })
    }

    #[test]
    fn a_crd_write_adds_and_its_delete_removes_its_resource_and_objects() {
        let store = Store::new();
        let crd = store
            .create(
                &CRDS,
                "",
                incident_crd("rbi", "RollbackIncident", "rollbackincidents"),
                false,
            )
            .unwrap();
        assert_eq!(crd["status"]["conditions"][1]["type"], "Established");
        let r = store
            .catalog()
            .find("rollbackd.io", "v1alpha1", "rollbackincidents")
            .unwrap();
        let created = store
            .create(
                r,
                "shop",
                json!({"metadata": {"name": "i1"}, "spec": {"agent": "a"}, "status": {"state": "x"}}),
                false,
            )
            .unwrap();
        assert_eq!(created["apiVersion"], "rollbackd.io/v1alpha1");
        assert!(created.get("status").is_none(), "create drops status");
        // /status writes keep only status; generation follows everything else
        let mut status = created.clone();
        status["status"] = json!({"state": "RolledBack"});
        status["spec"] = json!({"agent": "ignored"});
        let after = store
            .update(r, "shop", "i1", status, Part::Status, false)
            .unwrap();
        assert_eq!(after["spec"]["agent"], "a");
        assert_eq!(after["metadata"]["generation"], 1);
        let mut labelled = after.clone();
        labelled["metadata"]["labels"] = json!({"team": "sre"});
        let after = store
            .update(r, "shop", "i1", labelled, Part::Main, false)
            .unwrap();
        assert_eq!(
            after["metadata"]["generation"], 1,
            "metadata changes keep it"
        );
        let mut annotated = after.clone();
        annotated["note"] = json!("top-level fields count too");
        let after = store
            .update(r, "shop", "i1", annotated, Part::Main, false)
            .unwrap();
        assert_eq!(after["metadata"]["generation"], 2);
        assert_eq!(after["status"]["state"], "RolledBack");
        // deleting the namespace deletes custom resources too
        store
            .create(r, "gone", json!({"metadata": {"name": "i2"}}), false)
            .unwrap();
        let before = store.resource_version();
        store.delete(&NAMESPACES, "", "gone", false, false).unwrap();
        assert!(store.get(r, "gone", "i2").is_none());
        // deleting the CRD deletes its objects and its resource; watchers see them go
        store
            .delete(&CRDS, "", "rollbackincidents.rollbackd.io", false, false)
            .unwrap();
        assert!(store.get(r, "shop", "i1").is_none());
        assert!(
            store
                .catalog()
                .find("rollbackd.io", "v1alpha1", "rollbackincidents")
                .is_none()
        );
        let deleted: Vec<_> = store
            .watch(r, Some(before))
            .unwrap()
            .replay
            .iter()
            .filter(|e| e.kind == EventType::Deleted)
            .map(|e| name_of(&e.object).to_string())
            .collect();
        assert_eq!(deleted, ["i2", "i1"]);
    }

    #[test]
    fn names_freed_by_a_deleted_crd_go_to_the_one_waiting_for_them() {
        let store = Store::new();
        store
            .create(
                &CRDS,
                "",
                incident_crd("rbi", "RollbackIncident", "rollbackincidents"),
                false,
            )
            .unwrap();
        let waiting = store
            .create(
                &CRDS,
                "",
                incident_crd("inc", "RollbackIncident", "incidents"),
                false,
            )
            .unwrap();
        assert_eq!(waiting["status"]["conditions"][0]["status"], "False");
        assert!(
            store
                .catalog()
                .find("rollbackd.io", "v1alpha1", "incidents")
                .is_none()
        );
        store
            .delete(&CRDS, "", "rollbackincidents.rollbackd.io", false, false)
            .unwrap();
        let now = store.get(&CRDS, "", "incidents.rollbackd.io").unwrap();
        assert_eq!(now["status"]["conditions"][0]["status"], "True");
        assert!(
            store
                .catalog()
                .find("rollbackd.io", "v1alpha1", "incidents")
                .is_some()
        );
    }

    #[test]
    fn a_crd_cannot_take_over_or_delete_a_built_in_resource() {
        let store = Store::new();
        store
            .create(
                &ROLLOUTS,
                "default",
                json!({"metadata": {"name": "ro"}, "spec": {
                "selector": {"matchLabels": {"app": "ro"}},
                "template": {"metadata": {"labels": {"app": "ro"}},
                             "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
                false,
            )
            .unwrap();
        let mut argo = incident_crd("ro", "Rollout", "rollouts");
        argo["metadata"]["name"] = json!("rollouts.argoproj.io");
        argo["spec"]["group"] = json!("argoproj.io");
        store.create(&CRDS, "", argo, false).unwrap();
        assert_eq!(
            store.catalog().find("argoproj.io", "v1alpha1", "rollouts"),
            Some(&ROLLOUTS)
        );
        store
            .delete(&CRDS, "", "rollouts.argoproj.io", false, false)
            .unwrap();
        assert!(store.get(&ROLLOUTS, "default", "ro").is_some());
    }

    #[test]
    fn events_are_one_set_of_objects_in_two_shapes() {
        let store = Store::new();
        let v1 = store
            .create(
                &EVENTS_V1,
                "shop",
                json!({"metadata": {"name": "e1"}, "eventTime": ids::now(),
                       "reportingController": "rollbackd", "reportingInstance": "r-0",
                       "action": "Rollback", "reason": "RolledBack", "type": "Normal",
                       "regarding": {"kind": "Deployment", "name": "web", "namespace": "shop"},
                       "note": "done"}),
                false,
            )
            .unwrap();
        assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
        assert_eq!(v1["note"], "done");
        let core = store.get(&EVENTS, "shop", "e1").unwrap();
        assert_eq!(core["message"], "done");
        assert_eq!(core["involvedObject"]["name"], "web");
        let sel = crate::events::field_selector(
            &EVENTS,
            FieldSelector::parse("involvedObject.name=web").unwrap(),
        )
        .unwrap();
        let (listed, _) = store.list(&EVENTS_V1, Some("shop"), &LabelSelector::default(), &sel);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["regarding"]["name"], "web");
        let err = store
            .create(
                &EVENTS_V1,
                "shop",
                json!({"metadata": {"name": "e1"}}),
                false,
            )
            .unwrap_err();
        assert_eq!(err.code(), 422, "validated before the name is looked up");
        let deleted = store
            .delete(&EVENTS_V1, "shop", "e1", false, false)
            .unwrap();
        assert_eq!(deleted["note"], "done");
        assert!(store.get(&EVENTS, "shop", "e1").is_none());
    }

    #[test]
    fn deleting_a_namespace_deletes_its_objects() {
        let store = Store::new();
        store.create(&CONFIGMAPS, "team", cm("a"), false).unwrap();
        assert!(store.get(&NAMESPACES, "", "team").is_some());
        store.delete(&NAMESPACES, "", "team", false, false).unwrap();
        assert!(store.get(&CONFIGMAPS, "team", "a").is_none());
    }

    #[test]
    fn label_selector_lists_use_the_label_index_and_follow_relabels() {
        let store = Store::new();
        let labelled =
            |name: &str, labels: Value| json!({"metadata": {"name": name, "labels": labels}});
        for (ns, name, labels) in [
            ("n", "one", json!({"app": "a"})),
            ("n", "two", json!({"app": "b"})),
            ("n", "three", json!({"app": "a", "tier": "x"})),
            ("m", "four", json!({"app": "a"})),
        ] {
            store
                .create(&CONFIGMAPS, ns, labelled(name, labels), false)
                .unwrap();
        }
        let names = |ns: Option<&str>, sel: &str| -> Vec<String> {
            let sel = LabelSelector::parse(sel).unwrap();
            store
                .list(&CONFIGMAPS, ns, &sel, &FieldSelector::default())
                .0
                .iter()
                .map(|o| name_of(o).to_string())
                .collect()
        };
        assert_eq!(names(Some("n"), "app=a"), ["one", "three"]);
        assert_eq!(names(Some("n"), "app=a,tier=x"), ["three"]);
        // the rarest label leads; a label nobody carries lists nothing
        assert_eq!(names(Some("n"), "tier=x,app=a"), ["three"]);
        assert_eq!(names(Some("n"), "app=a,tier=none"), Vec::<String>::new());
        assert_eq!(names(Some("n"), "tier=x,app=b"), Vec::<String>::new());
        assert_eq!(names(Some("n"), "app!=a"), ["two"]);
        assert_eq!(names(None, "app=a"), ["four", "one", "three"]);

        let mut one = store.get(&CONFIGMAPS, "n", "one").unwrap();
        one["metadata"]["labels"] = json!({"app": "b"});
        store
            .update(&CONFIGMAPS, "n", "one", one, Part::Main, false)
            .unwrap();
        assert_eq!(names(Some("n"), "app=a"), ["three"]);
        assert_eq!(names(Some("n"), "app=b"), ["one", "two"]);
        store
            .delete(&CONFIGMAPS, "n", "three", false, false)
            .unwrap();
        assert_eq!(names(Some("n"), "app=a"), Vec::<String>::new());
        assert_eq!(names(Some("m"), "app=a"), ["four"]);
    }

    /// Pages through a LIST with `limit`, following the cursors: (names per chunk, the
    /// chunks' resourceVersions, their remaining counts).
    fn chunks(
        store: &Store,
        ns: Option<&str>,
        sel: &str,
        limit: usize,
    ) -> (Vec<Vec<String>>, Vec<u64>, Vec<Option<usize>>) {
        let sel = LabelSelector::parse(sel).unwrap();
        let mut chunk = Chunk {
            limit: Some(limit),
            after: None,
            metadata_only: false,
        };
        let (mut names, mut rvs, mut remaining) = (Vec::new(), Vec::new(), Vec::new());
        loop {
            let listed = store.list_chunk(&CONFIGMAPS, ns, &sel, &FieldSelector::default(), &chunk);
            names.push(
                listed
                    .items
                    .iter()
                    .map(|o| name_of(o).to_string())
                    .collect(),
            );
            rvs.push(listed.rv);
            remaining.push(listed.remaining);
            match listed.next {
                // the token a client sends back must lead to the same place
                Some(next) => chunk.after = Some(Cursor::parse(&next.token()).unwrap()),
                None => return (names, rvs, remaining),
            }
        }
    }

    #[test]
    fn a_metadata_list_copies_only_each_objects_metadata() {
        let store = Store::new();
        let obj = json!({"metadata": {"name": "big", "labels": {"app": "x"}},
                         "data": {"blob": "x".repeat(4096)}});
        store.create(&CONFIGMAPS, "a", obj, false).unwrap();
        let chunk = Chunk {
            metadata_only: true,
            ..Chunk::default()
        };
        let sel = LabelSelector::parse("app=x").unwrap();
        let listed = store.list_chunk(
            &CONFIGMAPS,
            Some("a"),
            &sel,
            &FieldSelector::default(),
            &chunk,
        );
        assert_eq!(listed.items.len(), 1);
        let item = listed.items[0].as_object().unwrap();
        assert_eq!(item.keys().collect::<Vec<_>>(), ["metadata"]);
        assert_eq!(name_of(&listed.items[0]), "big");
        assert_eq!(listed.items[0]["metadata"]["labels"]["app"], "x");
    }

    #[test]
    fn limited_lists_come_in_key_order_chunks_with_the_first_resource_version() {
        let store = Store::new();
        for (ns, name) in [("b", "e"), ("a", "c"), ("a", "a"), ("b", "d"), ("a", "b")] {
            let obj = json!({"metadata": {"name": name, "labels": {"app": "x"}}});
            store.create(&CONFIGMAPS, ns, obj, false).unwrap();
        }
        let (names, rvs, remaining) = chunks(&store, None, "", 2);
        assert_eq!(names, [vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
        assert!(rvs.iter().all(|rv| *rv == rvs[0]), "{rvs:?}");
        assert_eq!(remaining, [Some(3), Some(1), None]);
        // in one namespace, through the label index: selectors leave the count unknown
        let (names, _, remaining) = chunks(&store, Some("a"), "app=x", 2);
        assert_eq!(names, [vec!["a", "b"], vec!["c"]]);
        assert_eq!(remaining, [None, None]);
        // an exact fit ends without a cursor
        let (names, _, _) = chunks(&store, Some("a"), "", 3);
        assert_eq!(names, [vec!["a", "b", "c"]]);

        // objects created between chunks: after the cursor they are served, before it not
        let sel = LabelSelector::default();
        let first = store.list_chunk(
            &CONFIGMAPS,
            Some("a"),
            &sel,
            &FieldSelector::default(),
            &Chunk {
                limit: Some(2),
                after: None,
                metadata_only: false,
            },
        );
        for name in ["aa", "z"] {
            store
                .create(&CONFIGMAPS, "a", json!({"metadata": {"name": name}}), false)
                .unwrap();
        }
        let rest = store.list_chunk(
            &CONFIGMAPS,
            Some("a"),
            &sel,
            &FieldSelector::default(),
            &Chunk {
                limit: Some(10),
                after: first.next.clone(),
                metadata_only: false,
            },
        );
        let rest: Vec<&str> = rest.items.iter().map(name_of).collect();
        assert_eq!(rest, ["c", "z"]);
        assert!(first.next.is_some_and(|c| c.rv == first.rv));
    }
}
