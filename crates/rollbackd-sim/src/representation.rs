//! How objects are returned, chosen from the `Accept` header: full objects, `Table`s for
//! `kubectl get`, or `PartialObjectMetadata` for metadata-only clients (kube-rs
//! `list_metadata` / `metadata_watcher`).

use serde_json::{Value, json};

use super::discovery::Resource;
use super::store::Listed;
use super::table;

/// The representation a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The objects themselves.
    Full,
    /// `meta.k8s.io/v1` Table (server-side printing).
    Table,
    /// `meta.k8s.io/v1` PartialObjectMetadata(List).
    Metadata,
}

impl Representation {
    /// Picks the first media range in `accept` that names a representation we serve.
    pub fn from_accept(accept: &str) -> Self {
        for range in accept.split(',') {
            if range.contains("as=Table") {
                return Representation::Table;
            }
            if range.contains("as=PartialObjectMetadata") {
                return Representation::Metadata;
            }
            let base = range.split(';').next().unwrap_or_default().trim();
            if base == "application/json" || base == "*/*" {
                return Representation::Full;
            }
        }
        Representation::Full
    }

    /// One object (a get, or one watch event).
    pub fn object(self, r: &Resource, obj: &Value, rv: u64) -> Value {
        match self {
            Representation::Full => obj.clone(),
            Representation::Table => table::to_table(
                r,
                std::slice::from_ref(obj),
                json!({"resourceVersion": rv.to_string()}),
            ),
            Representation::Metadata => partial(obj),
        }
    }

    /// A collection (a list, or one chunk of it).
    pub fn list(self, r: &Resource, listed: &Listed) -> Value {
        let metadata = list_metadata(listed);
        let items = &listed.items;
        match self {
            Representation::Full => json!({
                "kind": r.list_kind(),
                "apiVersion": r.api_version(),
                "metadata": metadata,
                "items": items,
            }),
            Representation::Table => table::to_table(r, items, metadata),
            Representation::Metadata => json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
                "items": items.iter().map(partial).collect::<Vec<_>>(),
            }),
        }
    }
}

/// A list's `ListMeta`: its resourceVersion and, for a chunk with more to come, the
/// `continue` token and (without selectors) `remainingItemCount`.
fn list_metadata(listed: &Listed) -> Value {
    let mut m = json!({"resourceVersion": listed.rv.to_string()});
    if let Some(next) = &listed.next {
        m["continue"] = json!(next.token());
    }
    if let Some(n) = listed.remaining {
        m["remainingItemCount"] = json!(n);
    }
    m
}

fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_the_first_known_representation() {
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            Representation::from_accept(kubectl_get),
            Representation::Table
        );
        assert_eq!(
            Representation::from_accept(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            ),
            Representation::Metadata
        );
        assert_eq!(
            Representation::from_accept("application/vnd.kubernetes.protobuf,application/json"),
            Representation::Full
        );
        assert_eq!(Representation::from_accept(""), Representation::Full);
    }
}
