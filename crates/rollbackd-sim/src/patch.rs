//! The three patch flavours: JSON merge patch, JSON patch (RFC 6902) and strategic merge patch.

use serde_json::{Map, Value};

use super::status::ApiError;

/// The patch flavours the API server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply), approximated: the applied
    /// configuration is strategically merged onto the live object (merged as a JSON merge
    /// patch onto a custom resource, whose lists are atomic without a schema), or creates it.
    /// Field ownership is not tracked, so there are never conflicts (as if `force=true`), and
    /// fields dropped from the applied configuration are not removed. Only JSON bodies
    /// (valid YAML, and what kube-rs sends) are understood.
    Apply,
}

/// The patch media types of built-in kinds, as the API server lists them in a 415.
const BUILTIN_PATCHES: &str = "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml";
/// Those of custom resources: no strategic merge, which needs Go types.
const CUSTOM_PATCHES: &str =
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";

impl PatchType {
    /// Picks the patch type from a `Content-Type` header; `custom` resources (defined by a
    /// CRD) take no strategic merge patches. Anything else is 415 `UnsupportedMediaType`
    /// with the API server's message.
    pub fn from_content_type(ct: &str, custom: bool) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        let kind = match base {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" if !custom => Some(PatchType::Strategic),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        };
        kind.ok_or_else(|| {
            ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                if custom { CUSTOM_PATCHES } else { BUILTIN_PATCHES }
            ))
        })
    }
}

/// The message of the 422 the real API server answers when a JSON patch cannot be applied
/// (a failed `test` op, a missing path): `NewGenericServerResponse(422, …)` keeps none of
/// the patch library's words, so `kubectl` prints "The request is invalid: " and this.
pub const JSON_PATCH_FAILED: &str =
    "the server rejected our request due to an error in our request";

/// Applies `patch` (raw body) of the given type to `target`, an object of a built-in kind
/// (`custom: false`) or a custom resource.
pub fn apply(
    target: &Value,
    patch_body: &[u8],
    kind: PatchType,
    custom: bool,
) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(patch_body).map_err(|e| match kind {
        PatchType::Apply => ApiError::UnsupportedMediaType(format!(
            "the simulator only understands JSON-encoded apply patches: {e}"
        )),
        _ => ApiError::BadRequest(format!("error decoding patch: {e}")),
    })?;
    match kind {
        PatchType::Merge => {
            let mut out = target.clone();
            json_patch::merge(&mut out, &patch);
            Ok(out)
        }
        PatchType::Apply if custom => {
            if !patch.is_object() {
                return Err(ApiError::BadRequest(
                    "an apply patch must be an object".into(),
                ));
            }
            let mut out = target.clone();
            json_patch::merge(&mut out, &patch);
            Ok(out)
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| ApiError::BadRequest(format!("error decoding JSON patch: {e}")))?;
            let mut out = target.clone();
            json_patch::patch(&mut out, &ops).map_err(|e| {
                tracing::debug!(error = %e, "sim: JSON patch not applied");
                ApiError::Invalid(JSON_PATCH_FAILED.into())
            })?;
            Ok(out)
        }
        PatchType::Strategic | PatchType::Apply => {
            if !patch.is_object() {
                return Err(ApiError::BadRequest(
                    "strategic merge patch must be a JSON object".into(),
                ));
            }
            strategic_merge(target, &patch)
        }
    }
}

/// The merge key of a list field, as declared by the Kubernetes types used here.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => Some("name"),
        "ports" => Some("containerPort"),
        "volumeMounts" => Some("mountPath"),
        "ownerReferences" => Some("uid"),
        "conditions" => Some("type"),
        _ => None,
    }
}

/// Applies a strategic merge patch to `target`.
pub fn strategic_merge(target: &Value, patch: &Value) -> Result<Value, ApiError> {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => merge_map(t, p).map(Value::Object),
        (_, p) => Ok(strip_directives(p)),
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|e| e.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn merge_map(
    target: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    if let Some(directive) = patch.get("$patch") {
        match directive.as_str() {
            Some("replace") => {
                return match strip_directives(&Value::Object(patch.clone())) {
                    Value::Object(m) => Ok(m),
                    _ => Ok(Map::new()),
                };
            }
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown patch type {other:?} in strategic merge patch"
                )));
            }
        }
    }
    let mut out = target.clone();
    for (key, pv) in patch {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(existing)), Some(remove)) =
                (out.get_mut(field), pv.as_array())
            {
                existing.retain(|e| !remove.contains(e));
            }
            continue;
        }
        if pv.is_null() {
            out.remove(key);
            continue;
        }
        if let Value::Object(pm) = pv
            && pm.get("$patch").and_then(Value::as_str) == Some("delete")
        {
            out.remove(key);
            continue;
        }
        let merged = match (out.get(key), pv) {
            (Some(Value::Object(tm)), Value::Object(pm)) => Value::Object(merge_map(tm, pm)?),
            (Some(Value::Array(ta)), Value::Array(pa)) => merge_list(key, ta, pa)?,
            (None, Value::Array(pa)) => merge_list(key, &[], pa)?,
            (_, other) => strip_directives(other),
        };
        out.insert(key.clone(), merged);
    }
    for (key, order) in patch {
        if let Some(field) = key.strip_prefix("$setElementOrder/")
            && let (Some(Value::Array(list)), Some(order)) = (out.get_mut(field), order.as_array())
        {
            reorder(field, list, order);
        }
    }
    Ok(out)
}

fn key_of<'a>(elem: &'a Value, mk: &str) -> Option<&'a Value> {
    elem.as_object().and_then(|m| m.get(mk))
}

fn merge_list(field: &str, target: &[Value], patch: &[Value]) -> Result<Value, ApiError> {
    if patch
        .iter()
        .any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(strip_directives(&Value::Array(patch.to_vec())));
    }
    let Some(mk) = merge_key(field) else {
        return Ok(strip_directives(&Value::Array(patch.to_vec())));
    };
    let mut out: Vec<Value> = target.to_vec();
    for pe in patch {
        let Some(k) = key_of(pe, mk) else {
            out.push(strip_directives(pe));
            continue;
        };
        let pos = out.iter().position(|e| key_of(e, mk) == Some(k));
        let delete = pe.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                let merged = strategic_merge(&out[i], pe)?;
                out[i] = merged;
            }
            (None, false) => out.push(strip_directives(pe)),
        }
    }
    Ok(Value::Array(out))
}

fn reorder(field: &str, list: &mut [Value], order: &[Value]) {
    let mk = merge_key(field);
    let key = |e: &Value| -> Value {
        match mk {
            Some(mk) => key_of(e, mk).cloned().unwrap_or(Value::Null),
            None => e.clone(),
        }
    };
    let wanted: Vec<Value> = order
        .iter()
        .map(|o| match mk {
            Some(mk) => key_of(o, mk).cloned().unwrap_or(Value::Null),
            None => o.clone(),
        })
        .collect();
    list.sort_by_key(|e| {
        let k = key(e);
        wanted.iter().position(|w| *w == k).unwrap_or(usize::MAX)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let target = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "b:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "a:2"}]
        }}}});
        let out = strategic_merge(&target, &patch).unwrap();
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["name"], "b");
        assert_eq!(cs[1]["image"], "a:2");
        assert_eq!(cs[1]["ports"][0]["containerPort"], 80);
    }

    #[test]
    fn strategic_delete_and_replace() {
        let target = json!({"c": [{"name": "a"}, {"name": "b"}], "m": {"x": 1, "y": 2}});
        let patch = json!({"containers": [], "c": [{"name": "a", "$patch": "delete"}],
            "m": {"$patch": "replace", "z": 3}});
        let out = strategic_merge(&target, &patch).unwrap();
        assert_eq!(out["m"], json!({"z": 3}));
        // "c" has no merge key: plain replace with directives stripped.
        assert_eq!(out["c"], json!([]));
    }

    #[test]
    fn a_failed_json_patch_test_is_422_invalid_with_the_api_servers_message() {
        let target = json!({"metadata": {"resourceVersion": "7"}, "spec": {"replicas": 1}});
        let body = br#"[{"op":"test","path":"/metadata/resourceVersion","value":"6"},
                        {"op":"replace","path":"/spec/replicas","value":3}]"#;
        let err = apply(&target, body, PatchType::Json, false).unwrap_err();
        assert_eq!((err.code(), err.reason()), (422, "Invalid"));
        assert_eq!(err.to_string(), JSON_PATCH_FAILED);
        let ok = br#"[{"op":"test","path":"/metadata/resourceVersion","value":"7"},
                      {"op":"replace","path":"/spec/replicas","value":3}]"#;
        assert_eq!(
            apply(&target, ok, PatchType::Json, false).unwrap()["spec"]["replicas"],
            3
        );
    }

    #[test]
    fn malformed_patch_is_bad_request() {
        let err = apply(&json!({}), b"{not json", PatchType::Merge, false).unwrap_err();
        assert_eq!(err.code(), 400);
    }

    #[test]
    fn custom_resources_take_no_strategic_merge_and_apply_replaces_their_lists() {
        let err = PatchType::from_content_type("application/strategic-merge-patch+json", true)
            .unwrap_err();
        assert_eq!((err.code(), err.reason()), (415, "UnsupportedMediaType"));
        assert_eq!(
            err.to_string(),
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        );
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json", false),
            Ok(PatchType::Strategic)
        );
        let target = json!({"spec": {"containers": [{"name": "a", "image": "1"}], "x": 1}});
        let body = br#"{"spec": {"containers": [{"name": "b", "image": "2"}]}}"#;
        let custom = apply(&target, body, PatchType::Apply, true).unwrap();
        assert_eq!(
            custom["spec"]["containers"],
            json!([{"name": "b", "image": "2"}])
        );
        assert_eq!(custom["spec"]["x"], 1);
        let builtin = apply(&target, body, PatchType::Apply, false).unwrap();
        assert_eq!(
            builtin["spec"]["containers"].as_array().map(Vec::len),
            Some(2)
        );
    }
}
