//! The OpenAPI 3.0 document of this API, served at `/api/v1/openapi.json`.

use axum::Json;
use serde_json::{Value, json};

/// Every route the router serves, as `(method, path)`; the document and a test keep them in step.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/alerts"),
    ("post", "/api/v1/rollbacks"),
    ("get", "/api/v1/rollbacks"),
    ("get", "/api/v1/rollbacks/{id}"),
    ("post", "/api/v1/rollbacks/{id}/approve"),
    ("post", "/api/v1/rollbacks/{id}/cancel"),
    ("get", "/api/v1/agents"),
    ("post", "/api/v1/agents/{id}/pause"),
    ("post", "/api/v1/agents/{id}/resume"),
    ("post", "/api/v1/pause"),
    ("post", "/api/v1/resume"),
    ("get", "/api/v1/whoami"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

fn op(summary: &str, security: &str, body: Option<&str>, ok: &str, errors: &[u16]) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(ok.to_string(), json!({"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}}));
    for code in errors {
        responses.insert(
            code.to_string(),
            json!({"$ref": format!("#/components/responses/E{code}")}),
        );
    }
    let mut o = json!({"summary": summary, "responses": responses});
    if !security.is_empty() {
        o["security"] = json!([{ security: [] }]);
    }
    if let Some(schema) = body {
        o["requestBody"] = json!({"required": schema != "Reason", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    }
    o
}

/// The document.
pub fn document() -> Value {
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let error = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "rollbackd API", "version": env!("CARGO_PKG_VERSION"), "description": "Alertmanager webhook receiver and manual override API of rollbackd. Any replica takes every request: reads are answered by the replica asked (from the shared store with store.backend = kubernetes), and a write (POST) reaching a standby is forwarded to the leader, whose answer comes back with the header x-rollbackd-forwarded-to naming it."},
        "paths": {
            "/api/v1/alerts": {"post": op("Alertmanager webhook (payload version 4); 2xx only once recorded", "webhook", Some("AlertmanagerPayload"), "200", &[400, 401, 403, 413, 503])},
            "/api/v1/rollbacks": {
                "post": op("Trigger a rollback by hand", "bearer", Some("TriggerRequest"), "201", &[400, 401, 403, 404, 409, 423, 503]),
                "get": {"summary": "List rollbacks (incidents), newest first", "security": [{"bearer": []}],
                        "parameters": [{"name": "agent", "in": "query", "schema": {"type": "string"}}, {"name": "state", "in": "query", "schema": {"type": "string"}}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                        "responses": {"200": {"description": "incidents"}, "400": {"$ref": "#/components/responses/E400"}, "401": {"$ref": "#/components/responses/E401"}}}
            },
            "/api/v1/rollbacks/{id}": {"get": {"summary": "One rollback: timeline, steps, evidence, notifications, backups, audit", "security": [{"bearer": []}], "parameters": id, "responses": {"200": {"description": "incident"}, "404": {"$ref": "#/components/responses/E404"}}}},
            "/api/v1/rollbacks/{id}/approve": {"post": with_params(op("Approve a rollback awaiting approval", "bearer", Some("Reason"), "200", &[401, 403, 404, 409, 423, 503]), &id)},
            "/api/v1/rollbacks/{id}/cancel": {"post": with_params(op("Cancel a rollback that has not started", "bearer", Some("Reason"), "200", &[401, 403, 404, 409, 503]), &id)},
            "/api/v1/agents": {"get": op("Agents with their window, current decision and evidence, and pauses", "bearer", None, "200", &[401])},
            "/api/v1/agents/{id}/pause": {"post": with_params(op("Freeze automation for one agent", "bearer", Some("Reason"), "200", &[401, 403, 404, 503]), &id)},
            "/api/v1/agents/{id}/resume": {"post": with_params(op("Resume automation for one agent", "bearer", Some("Reason"), "200", &[401, 403, 404, 503]), &id)},
            "/api/v1/pause": {"post": op("Freeze all automation", "bearer", Some("Reason"), "200", &[401, 403, 503])},
            "/api/v1/resume": {"post": op("Resume all automation", "bearer", Some("Reason"), "200", &[401, 403, 503])},
            "/api/v1/whoami": {"get": op("The name and role of the token presented", "bearer", None, "200", &[401])},
            "/api/v1/openapi.json": {"get": op("This document", "", None, "200", &[])},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok", "content": {"text/plain": {}}}}}},
            "/readyz": {"get": {"summary": "Readiness", "responses": {"200": {"description": "ready", "content": {"text/plain": {}}}, "503": {"description": "not ready", "content": {"text/plain": {}}}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text format 0.0.4", "content": {"text/plain": {}}}}}}
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "API token; viewer for GET, operator for changes"},
                "webhook": {"type": "http", "scheme": "bearer", "description": "Alertmanager http_config: bearer token or basic auth"}
            },
            "responses": {
                "E400": error("malformed body; `field` names the culprit"),
                "E401": error("missing or invalid credentials"),
                "E403": error("valid credentials without the needed role"),
                "E404": error("unknown agent or incident"),
                "E409": error("conflicts with the incident's state"),
                "E413": error("body over the size cap"),
                "E423": error("automation is paused"),
                "E503": with_retry_after(error("store unavailable, or this replica is a standby that could not hand the write to the leader (none known, none advertised, out of reach): retry after Retry-After"))
            },
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}, "field": {"type": "string", "nullable": true}}, "required": ["error"]},
                "Reason": {"type": "object", "properties": {"reason": {"type": "string"}}, "additionalProperties": false},
                "TriggerRequest": {"type": "object", "additionalProperties": false, "required": ["agent", "reason"], "properties": {
                    "agent": {"type": "string", "example": "GL-002"}, "method": {"type": "string", "example": "quick"},
                    "revision": {"type": "integer", "minimum": 1}, "reason": {"type": "string", "minLength": 1}, "dry_run": {"type": "boolean"}}},
                "AlertmanagerPayload": {"type": "object", "required": ["version", "alerts"], "properties": {
                    "version": {"type": "string", "enum": ["4"]}, "groupKey": {"type": "string"}, "status": {"type": "string"},
                    "receiver": {"type": "string"}, "commonLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "externalURL": {"type": "string"},
                    "alerts": {"type": "array", "items": {"type": "object", "required": ["status", "labels", "startsAt"], "properties": {
                        "status": {"type": "string", "enum": ["firing", "resolved"]}, "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "annotations": {"type": "object", "additionalProperties": {"type": "string"}}, "startsAt": {"type": "string", "format": "date-time"},
                        "endsAt": {"type": "string"}, "generatorURL": {"type": "string"}, "fingerprint": {"type": "string"}}}}}}
            }
        }
    })
}

fn with_retry_after(mut response: Value) -> Value {
    response["headers"] = json!({"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}});
    response
}

fn with_params(mut op: Value, params: &Value) -> Value {
    op["parameters"] = params.clone();
    op
}

/// `GET /api/v1/openapi.json`
pub async fn serve() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let doc = document();
        for (method, path) in ROUTES {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing"
            );
        }
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(documented, ROUTES.len());
    }
}
