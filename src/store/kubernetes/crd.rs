//! The `RollbackIncident` CustomResourceDefinition as shipped in
//! `deploy/crds/rollbackincidents.yaml`, built into the binary so that a simulator the
//! daemon starts itself (`rollbackd bench`, `rollbackd run --sim`) can serve the
//! Kubernetes store without kubectl.

use serde_json::Value;

use crate::store::StoreError;

/// The manifest, as `kubectl apply -f deploy/crds/rollbackincidents.yaml` reads it.
pub const MANIFEST: &str = include_str!("../../../deploy/crds/rollbackincidents.yaml");

/// The CustomResourceDefinition as a JSON object, ready to create on an API server.
pub fn definition() -> Result<Value, StoreError> {
    serde_saphyr::from_str::<Value>(MANIFEST).map_err(|e| {
        StoreError::Corrupt(format!(
            "the built-in deploy/crds/rollbackincidents.yaml: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    #[test]
    fn the_built_in_definition_is_the_shipped_crd() {
        let crd = super::definition().unwrap();
        assert_eq!(crd["kind"], "CustomResourceDefinition");
        assert_eq!(crd["metadata"]["name"], "rollbackincidents.rollbackd.io");
        assert_eq!(crd["spec"]["names"]["kind"], super::super::KIND);
    }
}
