//! The HTTP front: routing of discovery and resource paths to the store.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::RecordedRequest;
use super::discovery::{self, Catalog, NAMESPACES, Resource};
use super::events;
use super::faults::{self, Faults};
use super::openapi;
use super::paging::Chunk;
use super::patch::{self, PatchType};
use super::protobuf;
use super::race::Races;
use super::representation::Representation;
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Store, name_of, namespace_of};
use super::subresources::{current_view, pod_log, scale_of, write_sub};
use super::validate;
use super::watch::{self, WatchRequest};

/// How many mutating requests are remembered for [`super::SimHandle::requests`].
const MAX_RECORDED: usize = 10_000;

/// State shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    /// The object store.
    pub store: Arc<Store>,
    /// Injected faults (changed through the `/sim/faults` control endpoint).
    pub faults: Arc<Faults>,
    /// Competing writes waiting for the next write of an object (tests).
    pub races: Arc<Races>,
    /// Every mutating request seen.
    pub requests: Arc<Mutex<VecDeque<RecordedRequest>>>,
    /// The same requests, published as they arrive.
    pub recorded: tokio::sync::broadcast::Sender<RecordedRequest>,
    /// Every request on a resource, counted by verb.
    pub counts: Arc<super::metrics::RequestCounts>,
    /// Requests answered 503 (tests).
    pub refusals: Arc<super::refusals::Refusals>,
    /// Fires when the server shuts down (ends watch streams).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// A JSON response with an exact Content-Type and Content-Length, written in one piece.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    json_response_typed(code, body, "application/json")
}

fn json_response_typed(code: StatusCode, body: &Value, content_type: &'static str) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A 200 JSON response.
pub fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// A parsed resource path.
#[derive(Debug)]
struct Target {
    resource: &'static Resource,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(catalog: &Catalog, path: &str) -> Result<Option<Target>, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Ok(None),
    };
    // `/api/v1/namespaces/{ns}/status` is the namespace's own subresource, not a resource.
    let namespace_subresource =
        rest.len() == 3 && group.is_empty() && ["status", "finalize"].contains(&rest[2]);
    let (namespace, rest) = match rest {
        ["namespaces", ns, r @ ..] if !r.is_empty() && !namespace_subresource => {
            (Some(ns.to_string()), r)
        }
        r => (None, r),
    };
    let plural = rest.first().copied().unwrap_or_default();
    let not_found =
        || ApiError::NotFound("the server could not find the requested resource".into());
    let resource = catalog.find(group, version, plural).ok_or_else(not_found)?;
    if !resource.namespaced && namespace.is_some() {
        // A cluster-scoped resource under /namespaces/{ns}/: nothing is served there.
        return Err(not_found());
    }
    Ok(Some(Target {
        resource,
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
    }))
}

fn discovery_doc(catalog: &Catalog, path: &str) -> Option<Value> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["version"] => Some(discovery::version()),
        ["api"] => Some(discovery::core_versions()),
        ["apis"] => Some(catalog.group_list()),
        ["api", v] => catalog.resource_list("", v),
        ["apis", g] => catalog.group(g),
        ["apis", g, v] => catalog.resource_list(g, v),
        ["openapi", "v3"] => Some(openapi::root(catalog)),
        ["openapi", "v3", ..] => openapi::group_version(catalog, path),
        _ => None,
    }
}

async fn handle(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(Query(query)) = query else {
        return ApiError::BadRequest("the query string could not be parsed".into()).into_response();
    };
    let path = uri.path().to_string();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if method != Method::GET && method != Method::HEAD {
        let rec = RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            content_type: content_type.clone(),
            query: uri.query().unwrap_or_default().to_string(),
            body: String::from_utf8_lossy(&body).into_owned(),
            at: SystemTime::now(),
        };
        let _ = st.recorded.send(rec.clone());
        let mut requests = st.requests.lock().unwrap_or_else(|e| e.into_inner());
        if requests.len() >= MAX_RECORDED {
            requests.pop_front();
        }
        requests.push_back(rec);
    }
    if path.starts_with(faults::CONTROL_PATH) {
        return faults::control(&st.faults, &method, &body)
            .map(|v| ok(&v))
            .unwrap_or_else(IntoResponse::into_response);
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let catalog = st.store.catalog();
    if method == Method::GET {
        if (path == "/api" || path == "/apis")
            && let Some(v) = discovery::aggregated_version(&accept)
        {
            let doc = catalog.aggregated(path == "/api", v);
            return json_response_typed(
                StatusCode::OK,
                &doc,
                discovery::aggregated_content_type(v),
            );
        }
        if let Some(doc) = discovery_doc(&catalog, &path) {
            return ok(&doc);
        }
        if ["/healthz", "/readyz", "/livez"].contains(&path.as_str()) {
            return (StatusCode::OK, "ok").into_response();
        }
        if path == super::metrics::PATH {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                st.counts.render(),
            )
                .into_response();
        }
    }
    let result = match parse_target(&catalog, &path) {
        Ok(Some(t)) => dispatch(&st, &method, t, &query, &accept, &content_type, &body),
        Ok(None) => Err(ApiError::NotFound(
            "the server could not find the requested resource".into(),
        )),
        Err(e) => Err(e),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The label and field selectors of a LIST, WATCH or DELETE collection of `r`; field
/// selectors on events are checked and renamed as the API server does
/// ([`events::field_selector`]).
fn selectors(
    r: &Resource,
    query: &HashMap<String, String>,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))?;
    let fields = if events::is_event(r) {
        events::field_selector(r, fields)?
    } else {
        fields
    };
    Ok((labels, fields))
}

fn dry_run(query: &HashMap<String, String>) -> bool {
    query.get("dryRun").is_some_and(|v| v == "All")
}

fn parse_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if content_type.contains("protobuf") {
        return protobuf::decode(body);
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not valid JSON: {e}")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        ))
    }
}

fn dispatch(
    st: &AppState,
    method: &Method,
    t: Target,
    query: &HashMap<String, String>,
    accept: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let r = t.resource;
    let verb = super::metrics::verb(method.as_str(), t.name.is_none(), is_watch(query));
    st.counts.count(&verb, r.plural);
    st.refusals.check(&verb, r.plural)?;
    let ns = t.namespace.clone().unwrap_or_default();
    if r.namespaced && t.name.is_some() && t.namespace.is_none() {
        return Err(validate::missing_namespace(r));
    }
    let store = &st.store;
    match (method.clone(), t.name.as_deref(), t.sub.as_deref()) {
        (Method::GET, None, _) => {
            let (labels, fields) = selectors(r, query)?;
            if is_watch(query) {
                return start_watch(st, r, t.namespace.clone(), labels, fields, query, accept);
            }
            let representation = Representation::from_accept(accept);
            let mut chunk = Chunk::from_query(query)?;
            chunk.metadata_only = representation == Representation::Metadata;
            let listed = store.list_chunk(r, t.namespace.as_deref(), &labels, &fields, &chunk);
            Ok(ok(&representation.list(r, &listed)))
        }
        (Method::GET, Some(name), None) if is_watch(query) => {
            // The old single-object watch path: a watch with a name field selector.
            let fields = FieldSelector::parse(&format!("metadata.name={name}"))?;
            let fields = if events::is_event(r) {
                events::field_selector(r, fields)?
            } else {
                fields
            };
            let labels = LabelSelector::default();
            start_watch(st, r, t.namespace.clone(), labels, fields, query, accept)
        }
        (Method::GET, Some(name), sub) => get_one(store, r, &ns, name, sub, accept),
        (Method::POST, None, _) => {
            let obj = parse_body(body, content_type)?;
            let body_ns = namespace_of(&obj);
            if r.namespaced
                && !body_ns.is_empty()
                && t.namespace.as_deref().is_some_and(|n| n != body_ns)
            {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            let created = store.create(r, &ns, obj, dry_run(query))?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        (Method::PUT, Some(name), sub) => {
            st.races.land_before_write(store, r, &ns, name)?;
            let obj = parse_body(body, content_type)?;
            write_sub(store, r, &ns, name, sub, obj, dry_run(query))
        }
        (Method::PATCH, Some(name), sub) => {
            let kind = PatchType::from_content_type(content_type, r.custom)?;
            if kind == PatchType::Apply && sub.is_none() && store.get(r, &ns, name).is_none() {
                // Server-side apply of a missing object creates it.
                let mut obj = patch::apply(&json!({}), body, kind, r.custom)?;
                if !obj["metadata"].is_object() {
                    obj["metadata"] = json!({});
                }
                obj["metadata"]["name"] = json!(name);
                let created = store.create(r, &ns, obj, dry_run(query))?;
                return Ok(json_response(StatusCode::CREATED, &created));
            }
            st.races.land_before_write(store, r, &ns, name)?;
            patch_object(store, r, &ns, name, sub, body, kind, dry_run(query))
        }
        (Method::DELETE, Some(name), None) => {
            let opts: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let orphan = opts["propagationPolicy"] == "Orphan"
                || query
                    .get("propagationPolicy")
                    .is_some_and(|p| p == "Orphan");
            let pre = &opts["preconditions"];
            let preconditions = crate::store::Preconditions {
                uid: pre["uid"].as_str().map(str::to_string),
                resource_version: pre["resourceVersion"].as_str().map(str::to_string),
            };
            let deleted =
                store.delete_checked(r, &ns, name, orphan, dry_run(query), &preconditions)?;
            Ok(ok(&deleted))
        }
        (Method::DELETE, None, _) => {
            let (labels, fields) = selectors(r, query)?;
            let (items, rv) = store.list(r, t.namespace.as_deref(), &labels, &fields);
            for item in &items {
                let _ = store.delete(r, namespace_of(item), name_of(item), false, dry_run(query));
            }
            Ok(ok(&json!({
                "kind": r.list_kind(),
                "apiVersion": r.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": items,
            })))
        }
        _ => Err(ApiError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        ))),
    }
}

/// How often a PATCH is re-applied when another write lands between its read and write.
const PATCH_ATTEMPTS: usize = 5;

/// Applies a patch to the live object and writes it. Like the real API server, a patch
/// that carries no resourceVersion of its own is re-applied to the fresh object when
/// another write lands in between; one whose body sets a different resourceVersion than
/// the live one is a 409 Conflict (optimistic concurrency).
#[allow(clippy::too_many_arguments)]
fn patch_object(
    store: &Store,
    r: &'static Resource,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    body: &[u8],
    kind: PatchType,
    dry: bool,
) -> Result<Response, ApiError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = current_view(store, r, ns, name, sub)?;
        let patched = patch::apply(&current, body, kind, r.custom)?;
        let sets_version = resource_version(&patched) != resource_version(&current);
        match write_sub(store, r, ns, name, sub, patched, dry) {
            Err(ApiError::Conflict(_)) if !sets_version && attempt < PATCH_ATTEMPTS => {}
            other => return other,
        }
    }
}

fn resource_version(obj: &Value) -> Option<&Value> {
    obj.pointer("/metadata/resourceVersion")
}

fn is_watch(query: &HashMap<String, String>) -> bool {
    query.get("watch").is_some_and(|w| w == "true" || w == "1")
}

fn start_watch(
    st: &AppState,
    r: &'static Resource,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &HashMap<String, String>,
    accept: &str,
) -> Result<Response, ApiError> {
    let since = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {s:?}")))?,
        ),
    };
    let streaming = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let req = WatchRequest {
        resource: r,
        namespace,
        labels,
        fields,
        since: if streaming { None } else { since },
        timeout,
        bookmarks: query
            .get("allowWatchBookmarks")
            .is_some_and(|v| v == "true"),
        representation: Representation::from_accept(accept),
        initial_events_end: streaming,
    };
    Ok(watch::respond(&st.store, req, st.shutdown.clone()))
}

fn get_one(
    store: &Store,
    r: &'static Resource,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    accept: &str,
) -> Result<Response, ApiError> {
    let obj = match store.get(r, ns, name) {
        Some(o) => o,
        None if r.same_objects(&NAMESPACES) && sub.is_none() => json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
        }),
        None => return Err(ApiError::not_found(r.plural, r.group, name)),
    };
    match sub {
        None => {
            let rv = store.resource_version();
            Ok(ok(&Representation::from_accept(accept).object(r, &obj, rv)))
        }
        Some("status") if r.has_status || !r.custom => Ok(ok(&obj)),
        Some("scale") if r.has_scale => Ok(ok(&scale_of(&obj))),
        Some("log") if r.kind == "Pod" && !r.custom => Ok(pod_log(&obj)),
        // The apiextensions server's answer for a subresource a CRD does not declare.
        Some(_) if r.custom => Err(ApiError::not_found(r.plural, r.group, name)),
        Some(other) => Err(ApiError::NotFound(format!(
            "the server could not find the requested resource ({} {other})",
            r.plural
        ))),
    }
}
