//! Competing writes for tests: a change that lands just before the next PATCH or PUT of
//! one object, as a deploy that lands between a client's read and its write would.

use std::sync::Mutex;

use serde_json::Value;

use super::discovery::Resource;
use super::patch;
use super::status::ApiError;
use super::store::{Part, Store};

/// A strategic merge patch waiting for the next write to one object.
#[derive(Debug, Clone)]
struct Race {
    resource: &'static Resource,
    namespace: String,
    name: String,
    patch: Value,
}

/// The pending competing writes, each used once.
#[derive(Debug, Default)]
pub struct Races {
    pending: Mutex<Vec<Race>>,
}

impl Races {
    /// Queues `patch` (a strategic merge patch) to land just before the next PATCH or PUT
    /// of `namespace/name`.
    pub fn add(&self, resource: &'static Resource, namespace: &str, name: &str, patch: Value) {
        self.lock().push(Race {
            resource,
            namespace: namespace.to_string(),
            name: name.to_string(),
            patch,
        });
    }

    /// Lands (and forgets) the first competing write queued for this object, if any.
    pub fn land_before_write(
        &self,
        store: &Store,
        resource: &'static Resource,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let race = {
            let mut pending = self.lock();
            let found = pending.iter().position(|r| {
                std::ptr::eq(r.resource, resource) && r.namespace == namespace && r.name == name
            });
            found.map(|i| pending.remove(i))
        };
        let Some(race) = race else {
            return Ok(());
        };
        let current = store
            .get(resource, namespace, name)
            .ok_or_else(|| ApiError::not_found(resource.plural, resource.group, name))?;
        let changed = patch::strategic_merge(&current, &race.patch)?;
        store.update(resource, namespace, name, changed, Part::Main, false)?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Race>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}
