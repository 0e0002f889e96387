//! Subresources: `/status`, `/scale` (autoscaling/v1 Scale views) and `/log`.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::discovery::Resource;
use super::server::ok;
use super::status::ApiError;
use super::store::{Part, Store, name_of};

/// A few lines of made-up log for any pod.
pub fn pod_log(pod: &Value) -> Response {
    let name = name_of(pod);
    let image = pod
        .pointer("/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let text =
        format!("simulated log for pod {name}\nimage {image} started\nlistening on :8080\nready\n");
    let mut resp = Response::new(Body::from(text));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// The autoscaling/v1 Scale view of an object.
pub fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
    })
}

/// The object (or its Scale view) a PATCH applies to.
pub fn current_view(
    store: &Store,
    r: &'static Resource,
    ns: &str,
    name: &str,
    sub: Option<&str>,
) -> Result<Value, ApiError> {
    let obj = store
        .get(r, ns, name)
        .ok_or_else(|| ApiError::not_found(r.plural, r.group, name))?;
    match sub {
        Some("scale") if r.has_scale => Ok(scale_of(&obj)),
        _ => Ok(obj),
    }
}

/// Writes the object, its `/status` or its `/scale` (PUT or patched PATCH).
pub fn write_sub(
    store: &Store,
    r: &'static Resource,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    obj: Value,
    dry: bool,
) -> Result<Response, ApiError> {
    match sub {
        None => Ok(ok(&store.update(r, ns, name, obj, Part::Main, dry)?)),
        Some("status") if r.has_status => {
            Ok(ok(&store.update(r, ns, name, obj, Part::Status, dry)?))
        }
        Some("scale") if r.has_scale => {
            let replicas = obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .ok_or_else(|| ApiError::Invalid("Scale.spec.replicas: Required value".into()))?;
            let mut current = store
                .get(r, ns, name)
                .ok_or_else(|| ApiError::not_found(r.plural, r.group, name))?;
            let sent_rv = obj.pointer("/metadata/resourceVersion").cloned();
            let spec = current
                .get_mut("spec")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| ApiError::Invalid(format!("{name} has no spec to scale")))?;
            spec.insert("replicas".into(), json!(replicas));
            if let Some(rv) = sent_rv.filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
                current["metadata"]["resourceVersion"] = rv;
            }
            let updated = store.update(r, ns, name, current, Part::Main, dry)?;
            Ok(ok(&scale_of(&updated)))
        }
        // The apiextensions server's answer for a subresource a CRD does not declare.
        Some(_) if r.custom => Err(ApiError::not_found(r.plural, r.group, name)),
        Some(other) => Err(ApiError::NotFound(format!(
            "the server could not find the requested resource ({} {other})",
            r.plural
        ))),
    }
}
