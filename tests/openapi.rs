//! The served OpenAPI document against the running API (issue 15, item 6): it validates as
//! OpenAPI 3.1 against the official JSON Schema (vendored in `tests/fixtures/openapi-3.1/`);
//! every route the router serves under `/api/`, `/healthz`, `/readyz` and `/metrics` is in
//! it; and every operation in it is exercised over real HTTP, its success and its documented
//! errors, each answer's status documented for the operation and its body valid against the
//! documented schema (as is each request body sent as valid).

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use api_support::*;
use chrono::Utc;
use rollbackd::config::WebhookAuth;
use rollbackd::notify::NotifierConfig;
use rollbackd::store::{NewIncident, SqliteStore, StateStore, Synchronous, Trigger};
use rollbackd_core::incident::Event;
use serde_json::{Value, json};

/// The official OpenAPI 3.1 schema (dialect 2022-10-07).
const OAS_3_1_SCHEMA: &str = include_str!("fixtures/openapi-3.1/schema.json");

/// The paths the document must cover; the web console (`/`, `/console/…`) is not API.
const API_PREFIXES: [&str; 4] = ["/api/", "/healthz", "/readyz", "/metrics"];

/// The credentials a request carries.
#[derive(Clone, Copy)]
enum Cred {
    None,
    Bearer(&'static str),
    Basic(&'static str, &'static str),
}

/// Whether a request body is meant to satisfy the documented request schema.
#[derive(Clone, Copy, PartialEq)]
enum Body {
    /// Sent as is; checked against the documented request schema first.
    Valid(&'static str),
    /// Deliberately wrong (the error case under test): checked to be *invalid* too when it
    /// is JSON the schema could describe, so the document does not accept what the server
    /// refuses.
    Invalid,
    /// Raw bytes, not checked (an oversize body).
    Raw,
    /// A form (`application/x-www-form-urlencoded`), as Slack posts its interactions.
    Form,
}

/// The document, the server, and which operation answered which statuses.
struct Contract {
    doc: Value,
    api: Api,
    /// (method, path template) → statuses seen.
    seen: BTreeMap<(String, String), BTreeSet<u16>>,
    /// Headers the next call adds (Slack's signature), then forgets.
    headers: Vec<(&'static str, String)>,
}

impl Contract {
    fn operation(&self, method: &str, template: &str) -> &Value {
        let op = &self.doc["paths"][template][method];
        assert!(op.is_object(), "{method} {template} is not documented");
        op
    }

    /// A validator for `schema`, resolving `$ref`s into the document's components.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [schema],
            "components": self.doc["components"],
        });
        jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"))
    }

    fn errors(&self, schema: &Value, instance: &Value) -> Vec<String> {
        self.validator(schema)
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    /// Sends `method path` (a concrete path, with its query) as the operation `template`,
    /// asserts the answer is `expect`, documented, with a body valid against its schema,
    /// and returns the body (JSON, or the text as a JSON string).
    async fn call(
        &mut self,
        method: &str,
        template: &str,
        path: &str,
        cred: Cred,
        body: Option<(Body, Vec<u8>)>,
        expect: u16,
    ) -> Value {
        let op = self.operation(method, template).clone();
        let mut req = self.api.http.request(
            method.to_uppercase().parse().unwrap(),
            format!("{}{path}", self.api.url),
        );
        req = match cred {
            Cred::None => req,
            Cred::Bearer(t) => req.bearer_auth(t),
            Cred::Basic(u, p) => req.basic_auth(u, Some(p)),
        };
        for (name, value) in std::mem::take(&mut self.headers) {
            req = req.header(name, value);
        }
        if let Some((Body::Form, bytes)) = &body {
            assert!(
                op["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object(),
                "{method} {template} documents no form request body"
            );
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(bytes.clone());
        } else if let Some((kind, bytes)) = body {
            let documented = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(
                documented.is_object(),
                "{method} {template} documents no JSON request body"
            );
            if let Ok(json) = serde_json::from_slice::<Value>(&bytes) {
                let errors = self.errors(documented, &json);
                match kind {
                    Body::Valid(why) => assert!(
                        errors.is_empty(),
                        "{method} {template}: the request body ({why}) is not valid against the documented schema: {errors:?}\n{json}"
                    ),
                    Body::Invalid => assert!(
                        !errors.is_empty(),
                        "{method} {template}: the document accepts a body the server refuses: {json}"
                    ),
                    Body::Raw | Body::Form => {}
                }
            }
            req = req.header("content-type", "application/json").body(bytes);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let retry_after = res.headers().get("retry-after").cloned();
        let media = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap()
            .trim()
            .to_string();
        let text = res.text().await.unwrap();
        assert_eq!(status, expect, "{method} {path}: {text}");
        let documented = &op["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {template} answered {status}, which it does not document: {text}"
        );
        if documented["content"].is_null() {
            // documented as an empty answer (Slack's acknowledgement)
            assert!(
                text.is_empty(),
                "{method} {template} {status} documents no body but answered {text:?}"
            );
            self.seen
                .entry((method.to_string(), template.to_string()))
                .or_default()
                .insert(status);
            return Value::Null;
        }
        let content = &documented["content"][&media];
        assert!(
            content.is_object(),
            "{method} {template} answered {status} as {media:?}; documented: {}",
            documented["content"]
        );
        if documented["headers"]["Retry-After"].is_object() {
            let seconds = retry_after
                .and_then(|v| v.to_str().ok()?.parse::<u32>().ok())
                .unwrap_or_else(|| panic!("{method} {path} {status} without Retry-After"));
            assert!(seconds > 0);
        }
        let body = if media == "application/json" {
            serde_json::from_str(&text).unwrap()
        } else {
            Value::String(text)
        };
        let errors = self.errors(&content["schema"], &body);
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: the body is not valid against the documented schema: {errors:?}\n{body}"
        );
        self.seen
            .entry((method.to_string(), template.to_string()))
            .or_default()
            .insert(status);
        body
    }

    async fn get(&mut self, template: &str, path: &str, cred: Cred, expect: u16) -> Value {
        self.call("get", template, path, cred, None, expect).await
    }

    async fn post(
        &mut self,
        template: &str,
        path: &str,
        cred: Cred,
        body: (Body, Value),
        expect: u16,
    ) -> Value {
        let bytes = serde_json::to_vec(&body.1).unwrap();
        self.call("post", template, path, cred, Some((body.0, bytes)), expect)
            .await
    }
}

/// Every (method, path) the document describes.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                ops.insert((method.clone(), path.clone()));
            }
        }
    }
    ops
}

/// The paths `app` routes, read from the router itself (its `Debug` lists them: axum
/// offers no other way to enumerate routes).
fn routed_paths(app: &axum::Router) -> BTreeSet<String> {
    let debug = format!("{app:?}");
    let pattern = regex::Regex::new(r#"RouteId\(\d+\): "([^"]+)""#).unwrap();
    let paths: BTreeSet<String> = pattern
        .captures_iter(&debug)
        .map(|c| c[1].to_string())
        .collect();
    assert!(
        !paths.is_empty(),
        "no routes found in the router's Debug output (did axum change it?)"
    );
    paths
}

/// The methods the server answers on `path`, from the `Allow` header of its 405 to a method
/// no route uses.
async fn routed_methods(api: &Api, path: &str) -> BTreeSet<String> {
    let concrete = regex::Regex::new(r"\{[^}]+\}")
        .unwrap()
        .replace_all(path, "x");
    let res = api
        .http
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{}{concrete}", api.url),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405, "{path}: a 405 with Allow was expected");
    res.headers()["allow"]
        .to_str()
        .unwrap()
        .split(',')
        .map(|m| m.trim().to_lowercase())
        // axum answers HEAD wherever it answers GET
        .filter(|m| m != "head")
        .collect()
}

/// The Slack signing secret of the server under test.
const SLACK_SECRET: &str = "openapi-test-slack-signing-secret";

async fn start_on_disk() -> (Api, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn StateStore> = Arc::new(
        SqliteStore::open(&dir.path().join("state.db"), Synchronous::Full)
            .await
            .unwrap(),
    );
    // presses are taken; what they do after the answer reaches no Slack (nothing listens)
    let slack = rollbackd::api::SlackInteractions::from_config(&NotifierConfig {
        slack_signing_secret: Some(SLACK_SECRET.into()),
        slack_token: Some("xoxb-openapi-test".into()),
        slack_api_url: "http://127.0.0.1:9".into(),
        ..NotifierConfig::default()
    })
    .unwrap();
    let api = start_full(
        WebhookAuth {
            bearer_token: Some(HOOK.into()),
            ..WebhookAuth::default()
        },
        store,
        slack,
    )
    .await;
    (api, dir)
}

/// A Slack `block_actions` press of `action_id` on incident `incident`, as Slack posts it.
fn slack_press(action_id: &str, incident: &str) -> Vec<u8> {
    let action_ts = format!("{}.000001", Utc::now().timestamp());
    let payload = json!({
        "type": "block_actions",
        "user": {"id": "U0OPENAPI", "username": "openapi", "name": "openapi", "team_id": "T0"},
        "api_app_id": "A0", "token": "deprecated", "trigger_id": format!("{action_ts}.t"),
        "team": {"id": "T0", "domain": "greenlang"},
        "container": {"type": "message", "message_ts": "1.000001", "channel_id": "C123", "is_ephemeral": false},
        "channel": {"id": "C123", "name": "gl-002-incidents"},
        "message": {"type": "message", "ts": "1.000001", "text": "GL-002", "blocks": []},
        "response_url": "http://127.0.0.1:9/respond",
        "actions": [{"type": "button", "action_id": action_id, "block_id": "rollbackd_actions",
                     "value": json!({"incident": incident, "agent": "GL-002"}).to_string(),
                     "action_ts": action_ts}],
    });
    serde_urlencoded::to_string([("payload", payload.to_string())])
        .unwrap()
        .into_bytes()
}

/// Slack's signature headers for `body` signed now with `secret`.
fn slack_signed(secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    use hmac::{Hmac, Mac};
    let ts = Utc::now().timestamp().to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    vec![
        ("x-slack-request-timestamp", ts),
        ("x-slack-signature", format!("v0={hex}")),
    ]
}

async fn served_document(api: &Api) -> Value {
    let (code, doc) = api.get("/api/v1/openapi.json", None).await;
    assert_eq!(code, 200);
    doc
}

/// What a broken document lacks, and how it is broken.
type Breakage = (&'static str, fn(&mut Value));

fn oas_3_1_errors(doc: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(OAS_3_1_SCHEMA).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[tokio::test]
async fn the_served_document_validates_as_openapi_3_1_and_a_broken_one_does_not() {
    let (api, _dir) = start_on_disk().await;
    let doc = served_document(&api).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let errors = oas_3_1_errors(&doc);
    assert!(errors.is_empty(), "not valid OpenAPI 3.1: {errors:#?}");

    // the check can fail: each of these breaks the document in one place
    let breakages: [Breakage; 4] = [
        ("an OpenAPI 3.0 version", |d| d["openapi"] = json!("3.0.3")),
        ("no info", |d| {
            d.as_object_mut().unwrap().remove("info");
        }),
        ("a response without a description", |d| {
            d["paths"]["/healthz"]["get"]["responses"]["200"]
                .as_object_mut()
                .unwrap()
                .remove("description");
        }),
        ("a parameter in nowhere", |d| {
            d["paths"]["/api/v1/rollbacks/{id}"]["get"]["parameters"][0]["in"] = json!("body")
        }),
    ];
    for (what, breaks) in breakages {
        let mut broken = doc.clone();
        breaks(&mut broken);
        assert!(
            !oas_3_1_errors(&broken).is_empty(),
            "a document with {what} passed as OpenAPI 3.1"
        );
    }
}

#[tokio::test]
async fn every_api_route_the_router_serves_is_documented_and_nothing_else() {
    let (api, _dir) = start_on_disk().await;
    let doc = served_document(&api).await;
    let mut served = BTreeSet::new();
    for path in routed_paths(&api.app) {
        if !API_PREFIXES.iter().any(|p| path.starts_with(p)) {
            continue; // the console's pages and assets
        }
        for method in routed_methods(&api, &path).await {
            served.insert((method, path.clone()));
        }
    }
    let documented = documented_operations(&doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in the OpenAPI document (add it with .routes(routes!(handler)) and a \
         #[utoipa::path]): {undocumented:?}; documented but not served: {unserved:?}"
    );
}

fn alert(fp: &str) -> Value {
    json!({"status": "firing", "labels": {"alertname": "GL002ErrorRate", "agent": "GL-002", "condition": "service_outage"},
           "annotations": {"summary": "x"}, "startsAt": "2025-11-17T14:30:00Z",
           "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus/graph", "fingerprint": fp})
}

fn awaiting_approval() -> NewIncident {
    NewIncident {
        agent: "GL-008".into(),
        namespace: "greenlang-gl008".into(),
        workload: "steam-trap-inspector".into(),
        revision: Some(43),
        from_image: None,
        row: Some("sev2-error-rate".into()),
        severity: Some("Severity 2".into()),
        method: Some("standard".into()),
        trigger: Trigger::Automatic,
        requested_by: None,
        reason: "error 30%".into(),
        decision: json!({"decision": "await_approval"}),
        dry_run: false,
        vars: BTreeMap::new(),
        deploy_at: None,
    }
}

#[tokio::test]
async fn every_documented_operation_answers_as_documented() {
    let (api, _dir) = start_on_disk().await;
    let doc = served_document(&api).await;
    let mut c = Contract {
        doc,
        api,
        seen: BTreeMap::new(),
        headers: Vec::new(),
    };
    let (op, viewer, hook) = (
        Cred::Bearer(OPERATOR),
        Cred::Bearer(VIEWER),
        Cred::Bearer(HOOK),
    );
    let nobody = Cred::None;
    let wrong = Cred::Bearer("not-a-token-at-all-000000");

    // the webhook
    let alerts = "/api/v1/alerts";
    let good = payload(vec![alert("fp1"), alert("fp2")]);
    let res = c
        .post(
            alerts,
            alerts,
            hook,
            (Body::Valid("two alerts"), good.clone()),
            200,
        )
        .await;
    assert_eq!(res["new"], 2);
    c.post(
        alerts,
        alerts,
        nobody,
        (Body::Valid("no credentials"), good.clone()),
        401,
    )
    .await;
    c.post(
        alerts,
        alerts,
        wrong,
        (Body::Valid("wrong token"), good.clone()),
        403,
    )
    .await;
    c.post(
        alerts,
        alerts,
        Cred::Basic("am", "nope"),
        (Body::Valid("basic, unconfigured"), good.clone()),
        401,
    )
    .await;
    let no_alerts = json!({"version": "4"});
    c.post(alerts, alerts, hook, (Body::Invalid, no_alerts), 400)
        .await;
    let big = serde_json::to_vec(&payload(
        (0..400).map(|i| alert(&format!("fp{i}"))).collect(),
    ))
    .unwrap();
    c.call("post", alerts, alerts, hook, Some((Body::Raw, big)), 413)
        .await;

    // manual trigger, list, show
    let rollbacks = "/api/v1/rollbacks";
    let trigger =
        json!({"agent": "GL-002", "method": "quick", "reason": "error spike seen on dashboard"});
    c.post(
        rollbacks,
        rollbacks,
        nobody,
        (Body::Valid("no token"), trigger.clone()),
        401,
    )
    .await;
    c.post(
        rollbacks,
        rollbacks,
        viewer,
        (Body::Valid("viewer"), trigger.clone()),
        403,
    )
    .await;
    c.post(
        rollbacks,
        rollbacks,
        op,
        (
            Body::Invalid,
            json!({"agent": "GL-002", "reason": "x", "extra": 1}),
        ),
        400,
    )
    .await;
    c.post(
        rollbacks,
        rollbacks,
        op,
        (
            Body::Valid("unknown agent"),
            json!({"agent": "GL-404", "reason": "x"}),
        ),
        404,
    )
    .await;
    let incident = c
        .post(
            rollbacks,
            rollbacks,
            op,
            (Body::Valid("a manual rollback"), trigger.clone()),
            201,
        )
        .await;
    let id = incident["id"].as_str().unwrap().to_string();
    c.post(
        rollbacks,
        rollbacks,
        op,
        (Body::Valid("a second one"), trigger.clone()),
        409,
    )
    .await;
    let list = c
        .get(
            rollbacks,
            "/api/v1/rollbacks?agent=GL-002&state=rolling_back&limit=5",
            viewer,
            200,
        )
        .await;
    assert_eq!(list["rollbacks"][0]["id"], id.as_str());
    c.get(rollbacks, "/api/v1/rollbacks?limit=0", viewer, 400)
        .await;
    c.get(rollbacks, rollbacks, wrong, 401).await;
    let show = "/api/v1/rollbacks/{id}";
    let detail = c
        .get(show, &format!("/api/v1/rollbacks/{id}"), viewer, 200)
        .await;
    assert_eq!(detail["incident"]["id"], id.as_str());
    assert!(!detail["audit"].as_array().unwrap().is_empty());
    c.get(show, "/api/v1/rollbacks/nope", viewer, 404).await;
    c.get(show, &format!("/api/v1/rollbacks/{id}"), nobody, 401)
        .await;

    // cancel the manual rollback
    let cancel = "/api/v1/rollbacks/{id}/cancel";
    let cancel_id = format!("/api/v1/rollbacks/{id}/cancel");
    let reason = json!({"reason": "false alarm"});
    c.post(
        cancel,
        &cancel_id,
        viewer,
        (Body::Valid("viewer"), reason.clone()),
        403,
    )
    .await;
    c.post(
        cancel,
        &cancel_id,
        op,
        (Body::Invalid, json!({"why": 1})),
        400,
    )
    .await;
    let res = c
        .post(
            cancel,
            &cancel_id,
            op,
            (Body::Valid("a reason"), reason.clone()),
            200,
        )
        .await;
    assert_eq!(res["state"], "cancelled");
    c.post(
        cancel,
        &cancel_id,
        op,
        (Body::Valid("again"), reason.clone()),
        409,
    )
    .await;
    c.post(
        cancel,
        "/api/v1/rollbacks/nope/cancel",
        op,
        (Body::Valid("unknown"), reason.clone()),
        404,
    )
    .await;
    c.post(
        cancel,
        &cancel_id,
        nobody,
        (Body::Valid("no token"), reason.clone()),
        401,
    )
    .await;

    // approve one awaiting approval
    c.api.runs("GL-008", 43, Utc::now());
    c.api
        .latest
        .write()
        .unwrap()
        .set("GL-008", "irreversible_migration", Utc::now(), Some(0.0));
    let waiting = c
        .api
        .store
        .create_incident(
            &awaiting_approval(),
            Event::RequestApproval,
            Utc::now(),
            &[],
            None,
        )
        .await
        .unwrap();
    let approve = "/api/v1/rollbacks/{id}/approve";
    let approve_id = format!("/api/v1/rollbacks/{}/approve", waiting.id);
    let go = json!({"reason": "EM approved on the bridge"});
    c.post(
        approve,
        &approve_id,
        nobody,
        (Body::Valid("no token"), go.clone()),
        401,
    )
    .await;
    c.post(
        approve,
        &approve_id,
        viewer,
        (Body::Valid("viewer"), go.clone()),
        403,
    )
    .await;
    c.post(
        approve,
        &approve_id,
        op,
        (Body::Invalid, json!({"reason": 5})),
        400,
    )
    .await;
    c.post(
        approve,
        "/api/v1/rollbacks/nope/approve",
        op,
        (Body::Valid("unknown"), go.clone()),
        404,
    )
    .await;
    let res = c
        .post(
            approve,
            &approve_id,
            op,
            (Body::Valid("a reason"), go.clone()),
            200,
        )
        .await;
    assert_eq!(res["by"], "alice");
    c.post(
        approve,
        &approve_id,
        op,
        (Body::Valid("again"), go.clone()),
        409,
    )
    .await;

    // who the caller is
    let whoami = "/api/v1/whoami";
    let me = c.get(whoami, whoami, viewer, 200).await;
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("grafana"), Some("viewer"))
    );
    c.get(whoami, whoami, wrong, 401).await;

    // agents, pauses
    let agents = "/api/v1/agents";
    let list = c.get(agents, agents, viewer, 200).await;
    assert!(list["agents"].as_array().unwrap().len() >= 2);
    c.get(agents, agents, wrong, 401).await;
    let pause = "/api/v1/agents/{id}/pause";
    let why = json!({"reason": "maintenance"});
    c.post(
        pause,
        "/api/v1/agents/gl-002/pause",
        op,
        (Body::Valid("a reason"), why.clone()),
        200,
    )
    .await;
    c.post(
        pause,
        "/api/v1/agents/GL-404/pause",
        op,
        (Body::Valid("unknown"), why.clone()),
        404,
    )
    .await;
    c.post(
        pause,
        "/api/v1/agents/GL-002/pause",
        viewer,
        (Body::Valid("viewer"), why.clone()),
        403,
    )
    .await;
    c.post(
        pause,
        "/api/v1/agents/GL-002/pause",
        nobody,
        (Body::Valid("no token"), why.clone()),
        401,
    )
    .await;
    c.post(
        pause,
        "/api/v1/agents/GL-002/pause",
        op,
        (Body::Invalid, json!(42)),
        400,
    )
    .await;
    // a paused agent cannot be rolled back or approved
    c.post(
        rollbacks,
        rollbacks,
        op,
        (
            Body::Valid("paused agent"),
            json!({"agent": "GL-002", "reason": "x"}),
        ),
        423,
    )
    .await;
    let listed = c.get(agents, agents, viewer, 200).await;
    let gl002 = listed["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "GL-002")
        .unwrap();
    assert_eq!(gl002["paused"]["reason"], "maintenance");
    let resume = "/api/v1/agents/{id}/resume";
    c.post(
        resume,
        "/api/v1/agents/GL-002/resume",
        op,
        (Body::Valid("a reason"), why.clone()),
        200,
    )
    .await;
    c.post(
        resume,
        "/api/v1/agents/GL-404/resume",
        op,
        (Body::Valid("unknown"), why.clone()),
        404,
    )
    .await;
    c.post(
        resume,
        "/api/v1/agents/GL-002/resume",
        viewer,
        (Body::Valid("viewer"), why.clone()),
        403,
    )
    .await;
    c.post(
        resume,
        "/api/v1/agents/GL-002/resume",
        nobody,
        (Body::Valid("no token"), why.clone()),
        401,
    )
    .await;
    c.post(
        resume,
        "/api/v1/agents/GL-002/resume",
        op,
        (Body::Invalid, json!({"reason": null, "x": 1})),
        400,
    )
    .await;
    for all in ["/api/v1/pause", "/api/v1/resume"] {
        c.post(all, all, op, (Body::Valid("a reason"), why.clone()), 200)
            .await;
        c.post(all, all, viewer, (Body::Valid("viewer"), why.clone()), 403)
            .await;
        c.post(
            all,
            all,
            wrong,
            (Body::Valid("wrong token"), why.clone()),
            401,
        )
        .await;
        c.post(all, all, op, (Body::Invalid, json!("stop")), 400)
            .await;
    }
    // with everything paused, an approval is refused (423)
    c.post(
        "/api/v1/pause",
        "/api/v1/pause",
        op,
        (Body::Valid("freeze"), why.clone()),
        200,
    )
    .await;
    let second = c
        .api
        .store
        .create_incident(
            &NewIncident {
                revision: Some(44),
                ..awaiting_approval()
            },
            Event::RequestApproval,
            Utc::now(),
            &[],
            None,
        )
        .await;
    if let Ok(second) = second {
        let path = format!("/api/v1/rollbacks/{}/approve", second.id);
        c.post(approve, &path, op, (Body::Valid("paused"), go.clone()), 423)
            .await;
    }
    c.post(
        "/api/v1/resume",
        "/api/v1/resume",
        op,
        (Body::Valid("thaw"), why.clone()),
        200,
    )
    .await;

    // Slack's button presses: signed by the test, a forged one, one without a payload
    let slack = "/api/v1/slack/interactions";
    let press = slack_press("rollbackd_pause", "no-such-incident");
    c.headers = slack_signed(SLACK_SECRET, &press);
    c.call(
        "post",
        slack,
        slack,
        nobody,
        Some((Body::Form, press.clone())),
        200,
    )
    .await;
    c.headers = slack_signed("not-the-secret", &press);
    c.call(
        "post",
        slack,
        slack,
        nobody,
        Some((Body::Form, press.clone())),
        401,
    )
    .await;
    let no_payload = b"token=deprecated".to_vec();
    c.headers = slack_signed(SLACK_SECRET, &no_payload);
    c.call(
        "post",
        slack,
        slack,
        nobody,
        Some((Body::Form, no_payload)),
        400,
    )
    .await;

    // every write on a standby that cannot hand it to the leader: 503 with Retry-After
    c.api.leading.send_replace(false);
    c.headers = slack_signed(SLACK_SECRET, &press);
    c.call(
        "post",
        slack,
        slack,
        nobody,
        Some((Body::Form, press.clone())),
        503,
    )
    .await;
    let standby_writes: Vec<(&str, String, Cred, Value)> = vec![
        (alerts, alerts.into(), hook, good.clone()),
        (rollbacks, rollbacks.into(), op, trigger.clone()),
        (approve, approve_id.clone(), op, go.clone()),
        (cancel, cancel_id.clone(), op, reason.clone()),
        (pause, "/api/v1/agents/GL-002/pause".into(), op, why.clone()),
        (
            resume,
            "/api/v1/agents/GL-002/resume".into(),
            op,
            why.clone(),
        ),
        ("/api/v1/pause", "/api/v1/pause".into(), op, why.clone()),
        ("/api/v1/resume", "/api/v1/resume".into(), op, why.clone()),
    ];
    for (template, path, cred, body) in standby_writes {
        c.post(
            template,
            &path,
            cred,
            (Body::Valid("on a standby"), body),
            503,
        )
        .await;
    }
    c.api.leading.send_replace(true);

    // oversize bodies on every write
    let big_reason = serde_json::to_vec(&json!({"reason": "x".repeat(70 * 1024)})).unwrap();
    for (template, path) in [
        (rollbacks, rollbacks.to_string()),
        (approve, approve_id.clone()),
        (cancel, cancel_id.clone()),
        (pause, "/api/v1/agents/GL-002/pause".to_string()),
        (resume, "/api/v1/agents/GL-002/resume".to_string()),
        ("/api/v1/pause", "/api/v1/pause".to_string()),
        ("/api/v1/resume", "/api/v1/resume".to_string()),
    ] {
        c.call(
            "post",
            template,
            &path,
            op,
            Some((Body::Raw, big_reason.clone())),
            413,
        )
        .await;
    }

    // a server without a signing secret takes no presses
    let with_slack = std::mem::replace(&mut c.api, start().await);
    c.headers = slack_signed(SLACK_SECRET, &press);
    c.call("post", slack, slack, nobody, Some((Body::Form, press)), 404)
        .await;
    c.api = with_slack;

    // this document, health, readiness, metrics
    let doc = "/api/v1/openapi.json";
    c.get(doc, doc, nobody, 200).await;
    c.get("/healthz", "/healthz", nobody, 200).await;
    c.get("/readyz", "/readyz", nobody, 200).await;
    c.api.ready.store(false, Ordering::Relaxed);
    c.get("/readyz", "/readyz", nobody, 503).await;
    c.api.ready.store(true, Ordering::Relaxed);
    let metrics = c.get("/metrics", "/metrics", nobody, 200).await;
    assert!(metrics.as_str().unwrap().ends_with("# EOF\n"), "{metrics}");
    c.api.tasks.stopped("evaluation", "panicked: boom");
    c.get("/healthz", "/healthz", nobody, 503).await;

    // every documented operation was exercised: its success and, where it documents any,
    // at least one of its errors
    let mut missing = Vec::new();
    let mut untried = Vec::new();
    for (method, path) in documented_operations(&c.doc) {
        let responses = c.doc["paths"][&path][&method]["responses"]
            .as_object()
            .unwrap();
        let seen = c
            .seen
            .get(&(method.clone(), path.clone()))
            .cloned()
            .unwrap_or_default();
        let success = seen.iter().any(|s| (200..300).contains(s));
        let documents_errors = responses.keys().any(|s| !s.starts_with('2'));
        let error = seen.iter().any(|s| *s >= 400);
        if !success || (documents_errors && !error) {
            missing.push(format!("{method} {path} (seen {seen:?})"));
        }
        for status in responses.keys() {
            if !seen.contains(&status.parse::<u16>().unwrap()) {
                untried.push(format!("{method} {path} {status}"));
            }
        }
    }
    assert!(missing.is_empty(), "operations not exercised: {missing:#?}");
    // documented answers this test cannot provoke (a store failing under a read)
    println!("documented but not provoked here: {untried:#?}");
    assert!(
        untried.iter().all(|u| u.ends_with(" 503")),
        "documented statuses never seen: {untried:#?}"
    );
}
