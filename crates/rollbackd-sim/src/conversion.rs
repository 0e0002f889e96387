//! One set of stored objects, several served shapes: the store keeps objects in their
//! storage shape and converts at its boundary, as the real API server converts between a
//! request's version and the stored one.
//!
//! - events.k8s.io/v1 `events` are stored as core/v1 `events` ([`super::events`]).
//! - Custom resources are stored once for all versions of their CRD (conversion strategy
//!   `None`: only `apiVersion` changes).
//! - Everything else is stored as served.

use serde_json::{Value, json};

use super::discovery::{EVENTS, Resource};
use super::events;

/// The resource whose stored objects `r` serves.
pub fn storage_of(r: &'static Resource) -> &'static Resource {
    if events::is_v1(r) { &EVENTS } else { r }
}

/// An object written through `r`, in the storage shape.
pub fn to_storage(r: &Resource, obj: Value) -> Value {
    if events::is_v1(r) {
        events::to_core(&obj)
    } else if events::is_event(r) {
        let mut obj = obj;
        events::normalize_core(&mut obj);
        obj
    } else {
        obj
    }
}

/// A stored object as `r` serves it.
pub fn present(r: &Resource, obj: Value) -> Value {
    if events::is_v1(r) {
        events::to_v1(&obj)
    } else if r.custom {
        let mut obj = obj;
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), json!(r.api_version()));
        }
        obj
    } else {
        obj
    }
}
