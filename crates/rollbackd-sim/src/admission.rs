//! Validating admission, as a validating admission webhook does it: a hook installed with
//! [`crate::SimHandle::admit`] sees every create, update and delete before it is stored
//! (dry runs included) and may refuse it. A refusal is answered as the API server answers a
//! webhook's denial: 400, `admission webhook "<name>" denied the request: <why>`, and
//! nothing is written. Tests use it to make writes fail (a full etcd, a policy engine).

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::status::ApiError;

/// What is being done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A create (POST, or an apply that creates).
    Create,
    /// An update (PUT, PATCH, or a write to a subresource).
    Update,
    /// A delete (the object named; not the dependents the garbage collector removes).
    Delete,
}

/// One write as admission sees it (an `AdmissionReview` request, reduced).
#[derive(Debug, Clone, Copy)]
pub struct AdmissionRequest<'a> {
    /// What is being done.
    pub operation: Operation,
    /// The resource's API group (`""` for the core group).
    pub group: &'a str,
    /// The resource (plural), e.g. `configmaps`.
    pub resource: &'a str,
    /// The object's namespace (`""` for cluster-scoped objects).
    pub namespace: &'a str,
    /// The object's name.
    pub name: &'a str,
    /// The object as it would be stored (none for a delete).
    pub object: Option<&'a Value>,
    /// The object as stored before (none for a create).
    pub old_object: Option<&'a Value>,
}

/// A hook: `Err(why)` refuses the write.
pub type Hook = dyn Fn(&AdmissionRequest<'_>) -> Result<(), String> + Send + Sync;

/// The installed hook, if any, with the webhook name its refusals give.
#[derive(Default)]
pub struct Admission {
    hook: Mutex<Option<(String, Arc<Hook>)>>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admission")
    }
}

impl Admission {
    /// Installs `hook` under `name`, replacing any other.
    pub fn set(&self, name: &str, hook: Arc<Hook>) {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some((name.to_string(), hook));
    }

    /// Removes the hook: every write is admitted.
    pub fn clear(&self) {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Asks the hook, if any.
    pub fn check(&self, request: &AdmissionRequest<'_>) -> Result<(), ApiError> {
        let installed = self.hook.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some((name, hook)) = installed else {
            return Ok(());
        };
        hook(request).map_err(|why| {
            ApiError::BadRequest(format!(
                "admission webhook \"{name}\" denied the request: {why}"
            ))
        })
    }
}
