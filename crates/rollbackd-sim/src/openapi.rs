//! Just enough OpenAPI v3 for kubectl: a root index of group-versions, and per group-version
//! documents whose PATCH operations declare the `fieldValidation` query parameter. kubectl then
//! trusts the server to validate (`fieldValidation=Strict`) instead of downloading schemas, so
//! `kubectl apply -f` / `create -f` work without `--validate=false`, custom resources included
//! (their group-versions are listed as soon as their CRD exists). No object schemas are
//! served: kubectl falls back to its compiled-in types for strategic merge computations, and
//! to a JSON merge patch for kinds it does not know (custom resources).

use serde_json::{Map, Value, json};

use super::discovery::{Catalog, Resource};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`: one entry per served group-version.
pub fn root(catalog: &Catalog) -> Value {
    let mut paths = Map::new();
    let groups = catalog.groups();
    let all = std::iter::once(("", "v1")).chain(
        groups
            .iter()
            .flat_map(|(g, vs)| vs.iter().map(move |v| (*g, *v))),
    );
    for (g, v) in all {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=sim")}),
        );
    }
    json!({"paths": paths})
}

fn item_path(r: &Resource) -> String {
    let base = gv_path(r.group, r.version);
    if r.namespaced {
        format!("/{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
    } else {
        format!("/{base}/{}/{{name}}", r.plural)
    }
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
pub fn group_version(catalog: &Catalog, path: &str) -> Option<Value> {
    let gv = path.trim_start_matches("/openapi/v3/");
    let resources: Vec<&Resource> = catalog
        .resources()
        .iter()
        .copied()
        .filter(|r| gv_path(r.group, r.version) == gv)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for r in resources {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let op = |action: &str| {
            json!({
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [
                    {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "OK"}}
            })
        };
        paths.insert(
            item_path(r),
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.1"},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}
