//! CustomResourceDefinitions and events.k8s.io/v1 Events, judged by the real `/usr/bin/kubectl`
//! (and kube-rs / raw HTTP where kubectl has no command): every test starts its own simulator
//! on 127.0.0.1:0, writes a kubeconfig into a temp dir and runs kubectl under `timeout 30`.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams, WatchEvent,
    WatchParams,
};

use serde_json::{Value, json};

mod kubectl;

use kubectl::{Cluster, cluster};

impl Cluster {
    /// Writes `text` to a file in the temp dir and returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// `GET path` on the simulator: (status code, JSON body or Null).
    async fn http_get(&self, path: &str) -> (u16, Value) {
        let resp = reqwest::get(format!("{}{path}", self.sim.url()))
            .await
            .unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    fn client(&self) -> kube::Client {
        kube::Client::try_from(kube::Config::new(self.sim.url().parse().unwrap())).unwrap()
    }

    async fn stop(self) {
        self.sim.shutdown().await;
    }
}

/// The CRD rollbackd will store its incidents in: namespaced, short name `rbi`, a status
/// subresource, and printer columns for the agent, the state and the age.
const INCIDENT_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: rollbackincidents.rollbackd.io
spec:
  group: rollbackd.io
  scope: Namespaced
  names:
    kind: RollbackIncident
    plural: rollbackincidents
    singular: rollbackincident
    shortNames: [rbi]
    categories: [rollbackd]
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - name: Agent
      type: string
      jsonPath: .spec.agent
    - name: State
      type: string
      jsonPath: .status.state
    - name: Workload
      type: string
      priority: 1
      jsonPath: .spec.workload
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
"#;

fn incident(name: &str, agent: &str, labels: &str) -> String {
    format!(
        "apiVersion: rollbackd.io/v1alpha1\nkind: RollbackIncident\nmetadata:\n  name: {name}\n  namespace: shop\n  labels: {labels}\nspec:\n  agent: {agent}\n  workload: deployment/web\nstatus:\n  state: Ignored\n"
    )
}

/// The cells of the table line that starts with `name` (kubectl pads with spaces).
fn row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn is_age(cell: &str) -> bool {
    cell.strip_suffix('s')
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_applied_with_kubectl_serves_its_custom_resources() {
    let c = cluster().await;
    let crd = c.file("crd.yaml", INCIDENT_CRD);
    let out = c.ok(&["apply", "-f", &crd]).await;
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/rollbackincidents.rollbackd.io created"
        ),
        "{out}"
    );
    let out = c
        .ok(&[
            "wait",
            "--for=condition=Established",
            "crd/rollbackincidents.rollbackd.io",
            "--timeout=10s",
        ])
        .await;
    assert!(out.contains("condition met"), "{out}");
    let resources = c.ok(&["api-resources"]).await;
    let line = resources
        .lines()
        .find(|l| l.starts_with("rollbackincidents "))
        .unwrap_or_else(|| panic!("rollbackincidents not listed:\n{resources}"));
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        [
            "rollbackincidents",
            "rbi",
            "rollbackd.io/v1alpha1",
            "true",
            "RollbackIncident"
        ]
    );
    let crds = c.ok(&["get", "crd"]).await;
    assert!(crds.starts_with("NAME"), "{crds}");
    assert!(crds.contains("CREATED AT"), "{crds}");
    assert!(crds.contains("rollbackincidents.rollbackd.io"), "{crds}");

    // Create with kubectl apply: the status sent is dropped (status subresource).
    let inc1 = c.file("inc-1.yaml", &incident("inc-1", "rollbackd", "{}"));
    let out = c.ok(&["apply", "-f", &inc1]).await;
    assert!(
        out.contains("rollbackincident.rollbackd.io/inc-1 created"),
        "{out}"
    );
    let inc2 = c.file("inc-2.yaml", &incident("inc-2", "oncall", "{team: sre}"));
    c.ok(&["apply", "-f", &inc2]).await;

    let table = c.ok(&["get", "rollbackincidents", "-n", "shop"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "AGENT", "STATE", "AGE"], "{table}");
    // No state yet: the cell is null, which kubectl leaves blank.
    let cells = row(&table, "inc-1");
    assert_eq!(cells[..2], ["inc-1", "rollbackd"], "{table}");
    assert!(
        is_age(&cells[2]) && cells.len() == 3,
        "an age like 2s: {table}"
    );
    // The Table itself, as the API server encodes it: the date column is a string age.
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/apis/rollbackd.io/v1alpha1/namespaces/shop/rollbackincidents/inc-1",
            c.sim.url()
        ))
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .send()
        .await
        .unwrap();
    let t: Value = resp.json().await.unwrap();
    let columns: Vec<(&str, &str, i64)> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["type"].as_str().unwrap(),
                c["priority"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("Name", "string", 0),
            ("Agent", "string", 0),
            ("State", "string", 0),
            ("Workload", "string", 1),
            ("Age", "date", 0)
        ]
    );
    let cells = &t["rows"][0]["cells"];
    assert_eq!(cells[0], "inc-1");
    assert_eq!(cells[2], Value::Null);
    assert_eq!(cells[3], "deployment/web");
    assert!(cells[4].as_str().is_some_and(is_age), "{cells}");
    let wide = c.ok(&["get", "rbi", "-n", "shop", "-o", "wide"]).await;
    assert!(wide.lines().next().unwrap().contains("WORKLOAD"), "{wide}");
    assert!(
        row(&wide, "inc-2").contains(&"deployment/web".to_string()),
        "{wide}"
    );

    // The status subresource: written through /status only.
    let out = c
        .ok(&[
            "patch",
            "rbi",
            "inc-1",
            "-n",
            "shop",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"state":"RolledBack"}}"#,
        ])
        .await;
    assert!(
        out.contains("rollbackincident.rollbackd.io/inc-1 patched"),
        "{out}"
    );
    let table = c.ok(&["get", "rbi", "-n", "shop"]).await;
    assert_eq!(
        row(&table, "inc-1")[..3],
        ["inc-1", "rollbackd", "RolledBack"]
    );
    let jsonpath = |path: &'static str| {
        let c = &c;
        async move {
            c.ok(&[
                "get",
                "rbi",
                "inc-1",
                "-n",
                "shop",
                "-o",
                &format!("jsonpath={{{path}}}"),
            ])
            .await
        }
    };
    assert_eq!(
        jsonpath(".metadata.generation").await,
        "1",
        "status writes keep the generation"
    );
    c.ok(&[
        "patch",
        "rbi",
        "inc-1",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"status":{"state":"Hacked"},"spec":{"reason":"error rate"}}"#,
    ])
    .await;
    assert_eq!(
        jsonpath(".status.state").await,
        "RolledBack",
        "main writes ignore status"
    );
    assert_eq!(jsonpath(".spec.reason").await, "error rate");
    assert_eq!(
        jsonpath(".metadata.generation").await,
        "2",
        "spec changes bump it"
    );

    // kubectl describe works generically (and looks for the object's events).
    let describe = c.ok(&["describe", "rbi", "inc-1", "-n", "shop"]).await;
    for needle in [
        "Name:         inc-1",
        "API Version:  rollbackd.io/v1alpha1",
        "Kind:         RollbackIncident",
        "State:  RolledBack",
    ] {
        assert!(
            describe.contains(needle),
            "missing {needle:?} in\n{describe}"
        );
    }
    assert!(
        describe
            .lines()
            .any(|l| l.starts_with("Events:") && l.ends_with("<none>")),
        "{describe}"
    );
    // Strategic merge is not for custom resources: kubectl relays the server's 415.
    let err = c
        .fails(&[
            "patch",
            "rbi",
            "inc-1",
            "-n",
            "shop",
            "-p",
            r#"{"spec":{"x":1}}"#,
        ])
        .await;
    assert!(
        err.contains("application/strategic-merge-patch+json is not supported by rollbackd.io/v1alpha1, Kind=RollbackIncident: the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"),
        "{err}"
    );

    // A stale resourceVersion is a 409, through PATCH and through PUT (kubectl replace).
    let stale = jsonpath(".metadata.resourceVersion").await;
    let mut replaced: Value = serde_json::from_str(
        &c.ok(&["get", "rbi", "inc-1", "-n", "shop", "-o", "json"])
            .await,
    )
    .unwrap();
    c.ok(&[
        "patch",
        "rbi",
        "inc-1",
        "-n",
        "shop",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/step","value":2}]"#,
    ])
    .await;
    let conflict = "Operation cannot be fulfilled on rollbackincidents.rollbackd.io \"inc-1\": the object has been modified; please apply your changes to the latest version and try again";
    let merge = format!(r#"{{"metadata":{{"resourceVersion":"{stale}"}},"spec":{{"step":3}}}}"#);
    let err = c
        .fails(&[
            "patch",
            "rbi",
            "inc-1",
            "-n",
            "shop",
            "--type=merge",
            "-p",
            &merge,
        ])
        .await;
    assert!(
        err.contains(&format!("Error from server (Conflict): {conflict}")),
        "{err}"
    );
    replaced["spec"]["step"] = json!(4);
    let put = c.file("replace.json", &replaced.to_string());
    let err = c.fails(&["replace", "-f", &put]).await;
    assert!(err.contains("Error from server (Conflict)"), "{err}");
    assert!(err.contains(conflict), "{err}");
    assert_eq!(jsonpath(".spec.step").await, "2");

    // Re-apply: kubectl knows no type for the kind and sends a JSON merge patch.
    let edited = c.file("inc-1.yaml", &incident("inc-1", "rollbackd-2", "{}"));
    let out = c.ok(&["apply", "-f", &edited]).await;
    assert!(
        out.contains("rollbackincident.rollbackd.io/inc-1 configured"),
        "{out}"
    );
    let apply = c
        .sim
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PATCH" && r.path.ends_with("/rollbackincidents/inc-1"))
        .unwrap();
    assert!(
        apply
            .content_type
            .starts_with("application/merge-patch+json"),
        "{apply:?}"
    );
    assert_eq!(jsonpath(".spec.agent").await, "rollbackd-2");
    assert_eq!(jsonpath(".status.state").await, "RolledBack");

    // Short names, categories, label selectors, chunked lists, all namespaces.
    let names = c
        .ok(&["get", "rbi", "-n", "shop", "-l", "team=sre", "-o", "name"])
        .await;
    assert_eq!(names.trim(), "rollbackincident.rollbackd.io/inc-2");
    let names = c
        .ok(&["get", "rollbackd", "-A", "--chunk-size=1", "-o", "name"])
        .await;
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        [
            "rollbackincident.rollbackd.io/inc-1",
            "rollbackincident.rollbackd.io/inc-2"
        ]
    );
    let err = c.fails(&["get", "rbi", "nope", "-n", "shop"]).await;
    assert!(
        err.contains(
            "Error from server (NotFound): rollbackincidents.rollbackd.io \"nope\" not found"
        ),
        "{err}"
    );

    // Deleting the CRD deletes its objects (watchers see them go) and its resource.
    let client = c.client();
    let (_, list) = c
        .http_get("/apis/rollbackd.io/v1alpha1/namespaces/shop/rollbackincidents")
        .await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let watch = tokio::spawn(async move {
        let gvk = GroupVersionKind::gvk("rollbackd.io", "v1alpha1", "RollbackIncident");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "rollbackincidents");
        let api: Api<DynamicObject> = Api::namespaced_with(client, "shop", &ar);
        let stream = api
            .watch(&WatchParams::default().timeout(10), &rv)
            .await
            .unwrap();
        let mut deleted = Vec::new();
        let mut stream = stream.boxed();
        while let Ok(Some(ev)) = stream.try_next().await {
            if let WatchEvent::Deleted(obj) = ev {
                deleted.push(obj.metadata.name.unwrap_or_default());
                if deleted.len() == 2 {
                    break;
                }
            }
        }
        deleted
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = c
        .ok(&["delete", "crd", "rollbackincidents.rollbackd.io"])
        .await;
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io \"rollbackincidents.rollbackd.io\" deleted"),
        "{out}"
    );
    let mut deleted = tokio::time::timeout(Duration::from_secs(15), watch)
        .await
        .unwrap()
        .unwrap();
    deleted.sort();
    assert_eq!(deleted, ["inc-1", "inc-2"]);
    let resources = c.ok(&["api-resources"]).await;
    assert!(!resources.contains("rollbackincidents"), "{resources}");
    c.fails(&["get", "rbi", "-n", "shop"]).await;
    let (code, _) = c.http_get("/apis/rollbackd.io").await;
    assert_eq!(code, 404);
    let (code, body) = c
        .http_get("/apis/rollbackd.io/v1alpha1/namespaces/shop/rollbackincidents")
        .await;
    assert_eq!((code, body["reason"].as_str()), (404, Some("NotFound")));
    // Created again, it starts empty.
    c.ok(&["apply", "-f", &crd]).await;
    let out = c.kubectl(&["get", "rbi", "-n", "shop"]).await;
    assert!(out.ok, "{}", out.text());
    assert!(
        out.stderr.contains("No resources found in shop namespace."),
        "{}",
        out.text()
    );
    c.stop().await;
}

/// Discovery documents and OpenAPI as kubectl and other clients read them, for a CRD with two
/// versions; a cluster-scoped CRD without printer columns or status subresource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_openapi_and_a_cluster_scoped_crd() {
    let c = cluster().await;
    let crd = c.file(
        "widgets.yaml",
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.io
spec:
  group: example.io
  scope: Cluster
  names: {kind: Widget, plural: widgets}
  versions:
  - {name: v1beta1, served: true, storage: false, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
"#,
    );
    c.ok(&["apply", "-f", &crd]).await;
    let (code, group) = c.http_get("/apis/example.io").await;
    assert_eq!(code, 200);
    assert_eq!(group["kind"], "APIGroup");
    assert_eq!(group["preferredVersion"]["version"], "v1");
    assert_eq!(group["versions"].as_array().map(Vec::len), Some(2));
    let (_, list) = c.http_get("/apis/example.io/v1beta1").await;
    assert_eq!(list["resources"][0]["name"], "widgets");
    assert_eq!(list["resources"][0]["namespaced"], false);
    assert_eq!(list["resources"][0]["singularName"], "widget");
    let (_, groups) = c.http_get("/apis").await;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(names.last(), Some(&"example.io"), "{names:?}");
    assert!(names.contains(&"events.k8s.io") && names.contains(&"apiextensions.k8s.io"));
    let (_, openapi) = c.http_get("/openapi/v3").await;
    assert!(
        openapi["paths"]["apis/example.io/v1"].is_object(),
        "{openapi}"
    );
    let (_, gv) = c.http_get("/openapi/v3/apis/example.io/v1").await;
    let item = &gv["paths"]["/apis/example.io/v1/widgets/{name}"];
    assert_eq!(
        item["patch"]["x-kubernetes-group-version-kind"]["kind"],
        "Widget"
    );

    let out = c
        .ok(&["create", "-f", &c.file("w.yaml", "apiVersion: example.io/v1beta1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n")])
        .await;
    assert!(out.contains("widget.example.io/w1 created"), "{out}");
    let table = c.ok(&["get", "widgets"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "AGE"], "{table}");
    assert!(is_age(&row(&table, "w1")[1]), "{table}");
    // One object, both versions: each answers in its own apiVersion.
    let v1 = c
        .ok(&[
            "get",
            "widgets.v1.example.io",
            "w1",
            "-o",
            "jsonpath={.apiVersion} {.spec.size}",
        ])
        .await;
    assert_eq!(v1, "example.io/v1 3");
    let beta = c
        .ok(&[
            "get",
            "widgets.v1beta1.example.io",
            "w1",
            "-o",
            "jsonpath={.apiVersion}",
        ])
        .await;
    assert_eq!(beta, "example.io/v1beta1");
    // No status subresource: status is part of the object, and /status is not found.
    c.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"status":{"ok":true}}"#,
    ])
    .await;
    let status_and_generation = c
        .ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.status.ok} {.metadata.generation}",
        ])
        .await;
    assert_eq!(
        status_and_generation, "true 2",
        "without a status subresource a status change is a new generation"
    );
    let err = c
        .fails(&[
            "patch",
            "widget",
            "w1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"ok":false}}"#,
        ])
        .await;
    assert!(err.contains("NotFound"), "{err}");
    // Server-side apply creates, then merges (a custom resource's lists are atomic).
    for (parts, verb) in [
        ("[a, b]", "serverside-applied"),
        ("[c]", "serverside-applied"),
    ] {
        let w2 = c.file(
            "w2.yaml",
            &format!("apiVersion: example.io/v1\nkind: Widget\nmetadata:\n  name: w2\nspec:\n  parts: {parts}\n"),
        );
        let out = c.ok(&["apply", "--server-side", "-f", &w2]).await;
        assert!(
            out.contains(&format!("widget.example.io/w2 {verb}")),
            "{out}"
        );
    }
    let parts = c
        .ok(&["get", "widget", "w2", "-o", "jsonpath={.spec.parts}"])
        .await;
    assert_eq!(parts, r#"["c"]"#);
    let out = c.ok(&["delete", "widget", "w2"]).await;
    assert!(out.contains("widget.example.io \"w2\" deleted"), "{out}");
    // Cluster-scoped: nothing is served under a namespace.
    let (code, _) = c
        .http_get("/apis/example.io/v1/namespaces/default/widgets/w1")
        .await;
    assert_eq!(code, 404);

    // A definition kubectl would send but the API server refuses.
    let bad = c.file(
        "bad.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gadgets.example.io\nspec:\n  group: example.io\n  scope: Namespaced\n  names: {kind: Gadget, plural: things}\n  versions:\n  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}\n",
    );
    let err = c.fails(&["apply", "-f", &bad]).await;
    assert!(
        err.contains("CustomResourceDefinition.apiextensions.k8s.io \"gadgets.example.io\" is invalid: metadata.name: Invalid value: \"gadgets.example.io\": must be spec.names.plural+\".\"+spec.group"),
        "{err}"
    );
    c.stop().await;
}

/// The line of `kubectl get events` (LAST SEEN, TYPE, REASON, OBJECT, MESSAGE) of the event
/// with this reason.
fn event_row<'a>(table: &'a str, reason: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some(reason))
        .unwrap_or_else(|| panic!("no {reason} event in\n{table}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_through_events_k8s_io_are_core_events_too() {
    let c = cluster().await;
    let out = c
        .ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.1",
            "--replicas=1",
        ])
        .await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let uid = c
        .ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.uid}"])
        .await;
    let client = c.client();
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let note = "rolled back web to revision 1 after error rate 0.61 > 0.05";
    let event = Event {
        metadata: ObjectMeta {
            name: Some("web.rollback-1".into()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        reporting_controller: Some("rollbackd.io/daemon".into()),
        reporting_instance: Some("rollbackd-0".into()),
        action: Some("Rollback".into()),
        reason: Some("RolledBack".into()),
        type_: Some("Warning".into()),
        note: Some(note.into()),
        regarding: Some(ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("Deployment".into()),
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some(uid.clone()),
            ..ObjectReference::default()
        }),
        ..Event::default()
    };
    let created = events.create(&PostParams::default(), &event).await.unwrap();
    assert_eq!(created.note.as_deref(), Some(note));
    assert_eq!(
        created.regarding.as_ref().and_then(|r| r.uid.as_deref()),
        Some(uid.as_str())
    );

    // kubectl describe lists core/v1 events by involvedObject field selectors.
    let describe = c.ok(&["describe", "deployment", "web"]).await;
    let section = describe
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events section:\n{describe}"));
    let header: Vec<&str> = section.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["Type", "Reason", "Age", "From", "Message"],
        "{section}"
    );
    let line = section
        .lines()
        .find(|l| l.contains("RolledBack"))
        .unwrap_or_else(|| panic!("no RolledBack event:\n{describe}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[..2], ["Warning", "RolledBack"], "{line}");
    assert!(is_age(cells[2]), "{line}");
    assert_eq!(
        cells[3], "rollbackd.io/daemon",
        "From falls back to reportingController: {line}"
    );
    assert!(line.trim_end().ends_with(note), "{line}");

    // Listed through both groups, with the same printer.
    for resource in ["events", "events.v1.events.k8s.io"] {
        let table = c.ok(&["get", resource, "-n", "default"]).await;
        let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            "{table}"
        );
        let line = event_row(&table, "RolledBack");
        assert!(
            line.contains("RolledBack") && line.contains("deployment/web"),
            "{line}"
        );
        assert!(line.trim_end().ends_with(note), "{line}");
    }
    let core = c
        .ok(&["get", "events", "web.rollback-1", "-o", "json"])
        .await;
    let core: Value = serde_json::from_str(&core).unwrap();
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["involvedObject"]["name"], "web");
    assert_eq!(core["message"], note);
    assert_eq!(core["reportingComponent"], "rollbackd.io/daemon");
    assert_eq!(core["reportingInstance"], "rollbackd-0");
    assert_eq!(core["action"], "Rollback");
    let v1 = c
        .ok(&[
            "get",
            "events.v1.events.k8s.io",
            "web.rollback-1",
            "-o",
            "json",
        ])
        .await;
    let v1: Value = serde_json::from_str(&v1).unwrap();
    assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
    assert_eq!(v1["regarding"]["kind"], "Deployment");
    assert_eq!(v1["note"], note);
    assert_eq!(v1["metadata"]["uid"], core["metadata"]["uid"], "one object");

    // A core/v1 event reads through events.k8s.io/v1, and selectors of both versions work.
    let core_api: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let old_style: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "web.scaled"},
        "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                           "namespace": "default", "uid": uid},
        "reason": "Scaled", "message": "scaled to 3", "type": "Normal", "count": 2,
        "source": {"component": "operator"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:05:00Z"
    }))
    .unwrap();
    core_api
        .create(&PostParams::default(), &old_style)
        .await
        .unwrap();
    let mine = events
        .list(
            &ListParams::default()
                .fields("regarding.name=web,reportingController=rollbackd.io/daemon"),
        )
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 1, "{:?}", mine.items);
    let scaled = events.get("web.scaled").await.unwrap();
    assert_eq!(scaled.note.as_deref(), Some("scaled to 3"));
    assert_eq!(scaled.deprecated_count, Some(2));
    assert_eq!(
        scaled
            .deprecated_source
            .and_then(|s| s.component)
            .as_deref(),
        Some("operator")
    );
    let by_source = core_api
        .list(&ListParams::default().fields("source=rollbackd.io/daemon"))
        .await
        .unwrap();
    assert_eq!(
        by_source.items.len(),
        1,
        "source falls back to reportingComponent"
    );
    let err = events
        .list(&ListParams::default().fields("note=x"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("field label not supported: note"),
        "{err}"
    );

    // A watch through one group sees writes through the other, in its own shape.
    let watch_api = events.clone();
    let watcher = tokio::spawn(async move {
        let mut stream = watch_api
            .watch(&WatchParams::default().timeout(10), "0")
            .await
            .unwrap()
            .boxed();
        while let Ok(Some(ev)) = stream.try_next().await {
            if let WatchEvent::Added(e) = ev
                && e.metadata.name.as_deref() == Some("web.late")
            {
                return e.note;
            }
        }
        None
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "web.late"},
        "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "default"},
        "reason": "Late", "message": "seen through both"
    }))
    .unwrap();
    core_api
        .create(&PostParams::default(), &late)
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(15), watcher)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.as_deref(), Some("seen through both"));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_k8s_io_validates_like_the_api_server() {
    let c = cluster().await;
    let post = |body: Value| {
        let url = format!(
            "{}/apis/events.k8s.io/v1/namespaces/default/events",
            c.sim.url()
        );
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (code, status) =
        post(json!({"metadata": {"name": "bare"}, "regarding": {"namespace": "default"}})).await;
    assert_eq!(code, 422);
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "Event \"bare\" is invalid: [eventTime: Required value, type: Invalid value: \"\": has invalid value: ]"
    );
    let valid = json!({
        "metadata": {"name": "long"},
        "eventTime": "2026-01-02T03:04:05.000000Z",
        "reportingController": "rollbackd.io/daemon", "reportingInstance": "r-0",
        "action": "Rollback", "reason": "RolledBack", "type": "Normal",
        "regarding": {"kind": "Deployment", "name": "web", "namespace": "default"},
        "note": "x".repeat(1025),
    });
    let (code, status) = post(valid.clone()).await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "Event \"long\" is invalid: message: Invalid value: \"\": can have at most 1024 characters"
    );
    let mut ok = valid.clone();
    ok["note"] = json!("x".repeat(1024));
    let (code, created) = post(ok).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["apiVersion"], "events.k8s.io/v1");
    let mut deprecated = valid;
    deprecated["metadata"]["name"] = json!("old");
    deprecated["note"] = json!("fine");
    deprecated["deprecatedCount"] = json!(3);
    let (code, status) = post(deprecated).await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "Event \"old\" is invalid: count: Invalid value: \"\": needs to be unset"
    );
    // An update may not change what happened.
    let url = format!(
        "{}/apis/events.k8s.io/v1/namespaces/default/events/long",
        c.sim.url()
    );
    let resp = reqwest::Client::new()
        .patch(&url)
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"note":"rewritten"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let status: Value = resp.json().await.unwrap();
    assert_eq!(
        status["message"],
        "Event \"long\" is invalid: message: Invalid value: \"rewritten\": field is immutable"
    );
    // What client-go's event recorders do to a repeated event: a merge patch of its series.
    let series = |count: u32| {
        let url = url.clone();
        async move {
            let resp = reqwest::Client::new()
                .patch(url)
                .header("Content-Type", "application/merge-patch+json")
                .body(
                    json!({"series": {"count": count, "lastObservedTime": "2026-01-02T03:09:00.000000Z"}})
                        .to_string(),
                )
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (code, patched) = series(3).await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["series"]["count"], 3);
    let (code, status) = series(1).await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "Event \"long\" is invalid: series.count: Invalid value: \"\": should be at least 2"
    );
    let (_, core) = c.http_get("/api/v1/namespaces/default/events/long").await;
    assert_eq!(core["series"]["count"], 3);
    c.stop().await;
}
