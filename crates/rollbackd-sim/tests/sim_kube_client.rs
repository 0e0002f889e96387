//! The simulator driven by `kube::Client` (and raw HTTP for error shapes and the watch wire
//! format). Every test starts its own simulator on 127.0.0.1:0 and shuts it down at the end.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::runtime::watcher;
use rollbackd_sim::{Fault, SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};

async fn start() -> (SimHandle, kube::Client) {
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), SimConfig::default())
        .await
        .unwrap();
    let config = kube::Config::new(sim.url().parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    (sim, client)
}

fn deployment(name: &str, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": "app", "image": image},
                    {"name": "sidecar", "image": "proxy:1"}
                ]}
            }
        }
    }))
    .unwrap()
}

fn image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

/// Polls `check` every 50 ms for up to 10 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn rolled_out(api: &Api<Deployment>, name: &str) {
    eventually("rollout", || async {
        let d = api.get(name).await.unwrap();
        let s = d.status.unwrap_or_default();
        let want = d.spec.unwrap().replicas.unwrap_or(1);
        s.observed_generation == d.metadata.generation
            && s.updated_replicas == Some(want)
            && s.available_replicas == Some(want)
            && s.replicas == Some(want)
    })
    .await;
}

#[tokio::test]
async fn get_list_and_cluster_wide_list() {
    let (sim, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &deployment("web", "web:1"))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    assert!(meta.resource_version.is_some());

    let other: Api<Deployment> = Api::namespaced(client.clone(), "team-b");
    other
        .create(&PostParams::default(), &deployment("api", "api:1"))
        .await
        .unwrap();

    let got = api.get("web").await.unwrap();
    assert_eq!(image(&got), "web:1");
    let listed = api
        .list(&ListParams::default().labels("app in (web,x),!nope"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(listed.metadata.resource_version.is_some());
    let none = api
        .list(&ListParams::default().labels("app notin (web)"))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    let by_field = api
        .list(&ListParams::default().fields("metadata.name=web"))
        .await
        .unwrap();
    assert_eq!(by_field.items.len(), 1);

    let all: Api<Deployment> = Api::all(client.clone());
    let everything = all.list(&ListParams::default()).await.unwrap();
    let mut names: Vec<_> = everything
        .items
        .iter()
        .map(|d| d.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["api", "web"]);

    // Metadata-only clients get PartialObjectMetadata.
    let meta_list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(meta_list.items.len(), 1);
    assert_eq!(meta_list.items[0].metadata.name.as_deref(), Some("web"));
    let meta_one = api.get_metadata("web").await.unwrap();
    assert_eq!(meta_one.types.unwrap().kind, "PartialObjectMetadata");

    // The controllers created ReplicaSets and Pods with owner references.
    rolled_out(&api, "web").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pods = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 2);
    let pod = &pods.items[0];
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "ReplicaSet");
    assert_eq!(owner.controller, Some(true));
    let status = pod.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(
        status.container_statuses.as_ref().unwrap()[0].ready,
        "{status:?}"
    );

    // Deleting the Deployment garbage-collects its ReplicaSets and Pods.
    api.delete("web", &DeleteParams::default()).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually("pods gone", || async {
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let (sim, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &deployment("web", "web:1"))
        .await
        .unwrap();

    // Metadata-only change: generation stays.
    let labelled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1));

    let merged = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(merged.metadata.generation, Some(2));

    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "web:2"}
    ]))
    .unwrap();
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .unwrap();
    assert_eq!(image(&patched), "web:2");

    let strategic = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                "containers": [{"name": "app", "image": "web:3"}]
            }}}})),
        )
        .await
        .unwrap();
    let containers = &strategic
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers;
    assert_eq!(containers.len(), 2, "sidecar kept by merge key");
    assert_eq!(containers[0].image.as_deref(), Some("web:3"));
    assert_eq!(containers[1].image.as_deref(), Some("proxy:1"));
    assert_eq!(strategic.metadata.generation, Some(4));

    // Server-side apply (approximated as a strategic merge) updates...
    let applied = api
        .patch(
            "web",
            &PatchParams::apply("test").force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:4"}]}}}
            })),
        )
        .await
        .unwrap();
    assert_eq!(image(&applied), "web:4");
    assert_eq!(
        applied
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers
            .len(),
        2
    );
    // ...and creates.
    let created = api
        .patch(
            "fresh",
            &PatchParams::apply("test"),
            &Patch::Apply(serde_json::to_value(deployment("fresh", "fresh:1")).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    // A YAML (non-JSON) apply body is refused with a Status.
    let r = reqwest::Client::new()
        .patch(format!(
            "{}/apis/apps/v1/namespaces/default/deployments/web?fieldManager=x",
            sim.url()
        ))
        .header("content-type", "application/apply-patch+yaml")
        .body("metadata:\n  name: web\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // dryRun=All does not persist.
    let dry = api
        .patch(
            "web",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(dry.spec.unwrap().replicas, Some(9));
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(3)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn replace_with_stale_resource_version_conflicts() {
    let (sim, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &deployment("web", "web:1"))
        .await
        .unwrap();
    let stale = api.get("web").await.unwrap();
    let mut fresh = stale.clone();
    fresh.spec.as_mut().unwrap().replicas = Some(4);
    // Status/controller writes may have moved the rv: retry until our replace wins once.
    let mut replaced = None;
    for _ in 0..20 {
        let mut cur = api.get("web").await.unwrap();
        cur.spec.as_mut().unwrap().replicas = Some(4);
        if let Ok(r) = api.replace("web", &PostParams::default(), &cur).await {
            replaced = Some(r);
            break;
        }
    }
    assert!(replaced.is_some());
    let err = api
        .replace("web", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
            assert!(s.message.contains("the object has been modified"), "{s:?}");
        }
        other => panic!("unexpected {other:?}"),
    }

    // Leases (leader election) have the same optimistic concurrency.
    let leases: Api<Lease> = Api::namespaced(client, "default");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "rollbackd"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}
    }))
    .unwrap();
    let first = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut take = first.clone();
    take.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("rollbackd", &PostParams::default(), &take)
        .await
        .unwrap();
    let mut late = first.clone();
    late.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let err = leases
        .replace("rollbackd", &PostParams::default(), &late)
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409));
    let err = leases
        .create(&PostParams::default(), &lease)
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.reason == "AlreadyExists"));
    sim.shutdown().await;
}

/// A delete with preconditions goes only while the object still has that uid and
/// resourceVersion; otherwise 409 Conflict in the API server's words, and nothing goes.
#[tokio::test]
async fn deletes_honour_their_preconditions() {
    let (sim, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "1"}})).unwrap();
    let first = api.create(&PostParams::default(), &cm).await.unwrap();
    let mut changed = first.clone();
    changed.data = Some([("a".to_string(), "2".to_string())].into());
    api.replace("c", &PostParams::default(), &changed)
        .await
        .unwrap();
    let at = |rv: Option<String>, uid: Option<String>| DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: rv,
            uid,
        }),
        ..DeleteParams::default()
    };
    let stale = at(first.metadata.resource_version.clone(), None);
    let err = api.delete("c", &stale).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(
                s.message.starts_with(r#"Operation cannot be fulfilled on configmaps "c": Precondition failed: ResourceVersion in precondition: "#),
                "{}",
                s.message
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = api
        .delete("c", &at(None, Some("not-its-uid".into())))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.code == 409 && s.message.contains("UID in precondition: not-its-uid"))
    );
    assert!(api.get_opt("c").await.unwrap().is_some(), "nothing deleted");
    let current = api.get("c").await.unwrap();
    api.delete(
        "c",
        &at(current.metadata.resource_version, current.metadata.uid),
    )
    .await
    .unwrap();
    assert!(api.get_opt("c").await.unwrap().is_none());
    sim.shutdown().await;
}

/// An admission hook sees creates, updates and deletes (object and old object) before they
/// are stored, and its refusal is the API server's answer to a webhook's denial.
#[tokio::test]
async fn an_admission_hook_refuses_writes_before_they_are_stored() {
    use rollbackd_sim::admission::Operation;
    let (sim, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    sim.admit("no-forbidden.example.com", move |req| {
        if req.resource != "configmaps" {
            return Ok(());
        }
        log.lock().unwrap().push((
            req.operation,
            req.name.to_string(),
            req.old_object.is_some(),
        ));
        match req.object {
            Some(o) if o["data"]["a"] == "forbidden" => Err("a must not be forbidden".into()),
            None if req.name == "keep" => Err("keep stays".into()),
            _ => Ok(()),
        }
    });
    let cm = |name: &str, a: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}, "data": {"a": a}})).unwrap()
    };
    let err = api
        .create(&PostParams::default(), &cm("x", "forbidden"))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 400);
            assert_eq!(
                s.message,
                r#"admission webhook "no-forbidden.example.com" denied the request: a must not be forbidden"#
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(api.get_opt("x").await.unwrap().is_none(), "not stored");
    api.create(&PostParams::default(), &cm("keep", "ok"))
        .await
        .unwrap();
    let patch = Patch::Merge(json!({"data": {"a": "forbidden"}}));
    assert!(
        api.patch("keep", &PatchParams::default(), &patch)
            .await
            .is_err()
    );
    assert!(api.delete("keep", &DeleteParams::default()).await.is_err());
    assert_eq!(api.get("keep").await.unwrap().data.unwrap()["a"], "ok");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (Operation::Create, "x".to_string(), false),
            (Operation::Create, "keep".to_string(), false),
            (Operation::Update, "keep".to_string(), true),
            (Operation::Delete, "keep".to_string(), true),
        ]
    );
    sim.clear_admission();
    api.delete("keep", &DeleteParams::default()).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn watcher_sees_added_then_modified() {
    let (sim, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let stream = watcher(api.clone(), watcher::Config::default().labels("app=web"));
    let mut stream = Box::pin(stream);
    // Initial (empty) list.
    loop {
        match stream.try_next().await.unwrap().unwrap() {
            watcher::Event::InitDone => break,
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    api.create(&PostParams::default(), &deployment("web", "web:1"))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        watcher::Event::Apply(d) => assert_eq!(image(&d), "web:1"),
        other => panic!("expected the ADDED deployment, got {other:?}"),
    }
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}}})),
    )
    .await
    .unwrap();
    let seen_new = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = stream.next().await {
            if let Ok(watcher::Event::Apply(d)) = ev
                && image(&d) == "web:2"
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(seen_new);
    sim.shutdown().await;
}

#[tokio::test]
async fn raw_http_status_errors_discovery_and_watch_stream() {
    let (sim, _client) = start().await;
    let http = reqwest::Client::new();
    let base = sim.url();
    let deployments = format!("{base}/apis/apps/v1/namespaces/default/deployments");

    let r = http
        .post(&deployments)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["kind"], "Status");
    assert_eq!(s["reason"], "BadRequest");
    assert_eq!(s["code"], 400);

    let r = http
        .get(format!("{deployments}/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["reason"], "NotFound");
    assert_eq!(s["message"], "deployments.apps \"nope\" not found");

    let body = serde_json::to_string(&deployment("web", "web:1")).unwrap();
    let r = http
        .post(&deployments)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .post(&deployments)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["reason"], "AlreadyExists");

    let r = http
        .patch(format!("{deployments}/web"))
        .header("content-type", "application/json-patch+json")
        .body(r#"[{"op":"replace","path":"/spec/nope/x","value":1}]"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert_eq!(r.json::<Value>().await.unwrap()["kind"], "Status");
    let r = http
        .patch(format!("{deployments}/web"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(
        r.json::<Value>().await.unwrap()["reason"],
        "UnsupportedMediaType"
    );

    // Aggregated discovery only in a version the request asked for, else the legacy list.
    let r = http
        .get(format!("{base}/apis"))
        .header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let aggregated: Value = r.json().await.unwrap();
    assert_eq!(aggregated["kind"], "APIGroupDiscoveryList");
    assert_eq!(aggregated["items"][0]["metadata"]["name"], "apps");
    let r = http
        .get(format!("{base}/api"))
        .header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    );
    let r = http
        .get(format!("{base}/apis"))
        .header(
            "accept",
            "application/vnd.kubernetes.protobuf,application/json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    let groups: Value = r.json().await.unwrap();
    assert_eq!(groups["kind"], "APIGroupList");
    let apps: Value = http
        .get(format!("{base}/apis/apps/v1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in [
        "deployments",
        "deployments/status",
        "deployments/scale",
        "replicasets",
    ] {
        assert!(names.contains(&n), "{names:?}");
    }
    let version: Value = http
        .get(format!("{base}/version"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["minor"], "33");

    // Watch from the list's resourceVersion: MODIFIED lines for a spec change.
    let list: Value = http
        .get(format!("{deployments}?fieldSelector=metadata.name=web"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut watch = http
        .get(format!(
            "{deployments}?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Dweb&timeoutSeconds=5"
        ))
        .send()
        .await
        .unwrap();
    http.patch(format!("{deployments}/web"))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"spec":{"replicas":5}}"#)
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = watch.chunk().await.unwrap() {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            for line in buf.lines() {
                let ev: Value = match serde_json::from_str(line) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                if ev["type"] == "MODIFIED" && ev["object"]["spec"]["replicas"] == 5 {
                    return true;
                }
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(found, "{buf}");
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_shape_pod_status() {
    let (sim, client) = start().await;
    sim.inject_fault("oom", Fault::OomKilled);
    sim.inject_fault("pull", Fault::ImagePullBackOff);
    // The HTTP control endpoint does the same for a simulator in another process.
    let added: Value = reqwest::Client::new()
        .post(format!("{}/sim/faults", sim.url()))
        .body(r#"{"image": "slow", "fault": "NeverReady"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(added["faults"].as_array().unwrap().len(), 3, "{added}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let api: Api<Deployment> = Api::namespaced(client, "default");
    for (name, img) in [("a", "oom:1"), ("b", "pull:1"), ("c", "slow:1")] {
        api.create(&PostParams::default(), &deployment(name, img))
            .await
            .unwrap();
    }
    let first_status = |app: &'static str| {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels(&format!("app={app}")))
                .await
                .unwrap();
            list.items
                .first()
                .and_then(|p| p.status.clone())
                .and_then(|s| s.container_statuses)
                .map(|c| serde_json::to_value(&c[0]).unwrap())
                .unwrap_or(Value::Null)
        }
    };
    eventually("OOMKilled", || async {
        let s = first_status("a").await;
        s["lastState"]["terminated"]["reason"] == "OOMKilled"
            && s["restartCount"].as_i64().unwrap_or(0) >= 2
            && s["ready"] == false
    })
    .await;
    eventually("ImagePullBackOff", || async {
        first_status("b").await["state"]["waiting"]["reason"] == "ImagePullBackOff"
    })
    .await;
    eventually("running but not ready", || async {
        let s = first_status("c").await;
        s["state"]["running"].is_object() && s["ready"] == false
    })
    .await;
    // The kubelet stand-in reports each fault once per pod as a Warning event.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(pods.clone().into_client(), "default");
    let warnings = events
        .list(&ListParams::default().fields("type=Warning"))
        .await
        .unwrap();
    let reasons: std::collections::BTreeSet<_> = warnings
        .items
        .iter()
        .filter_map(|e| e.reason.clone())
        .collect();
    assert!(
        reasons.contains("BackOff") && reasons.contains("Failed") && reasons.contains("Unhealthy"),
        "{reasons:?}"
    );
    sim.clear_faults();
    let d = sim.get("apps/v1", "Deployment", "default", "c").unwrap();
    assert_eq!(d["metadata"]["name"], "c");
    sim.shutdown().await;
}

#[tokio::test]
async fn jobs_complete_or_fail_and_pods_have_logs() {
    let (sim, client) = start().await;
    sim.inject_fault("broken", Fault::CrashLoop);
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    for (name, img) in [("ok", "busybox:1"), ("bad", "broken:1")] {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [{"name": "main", "image": img}]}}}
        }))
        .unwrap();
        jobs.create(&PostParams::default(), &job).await.unwrap();
    }
    let condition = |name: &'static str, kind: &'static str| {
        let jobs = jobs.clone();
        async move {
            let j = jobs.get(name).await.unwrap();
            j.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == kind && c.status == "True")
        }
    };
    eventually("job complete", || condition("ok", "Complete")).await;
    eventually("job failed", || condition("bad", "Failed")).await;
    assert_eq!(
        jobs.get("ok").await.unwrap().status.unwrap().succeeded,
        Some(1)
    );

    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pod = pods
        .list(&ListParams::default().labels("job-name=ok"))
        .await
        .unwrap()
        .items
        .remove(0);
    let logs = pods
        .logs(&pod.metadata.name.unwrap(), &Default::default())
        .await
        .unwrap();
    assert!(logs.lines().count() >= 2, "{logs}");
    sim.shutdown().await;
}

#[tokio::test]
async fn rollouts_track_stable_hash_and_honour_abort() {
    let (sim, client) = start().await;
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "rollouts");
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let ro: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "shop"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "shop"}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
            "template": {"metadata": {"labels": {"app": "shop"}},
                         "spec": {"containers": [{"name": "shop", "image": "shop:1"}]}}
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &ro).await.unwrap();
    let status = |field: &'static str| {
        let api = api.clone();
        async move {
            let r = api.get("shop").await.unwrap();
            r.data["status"][field].clone()
        }
    };
    eventually("healthy", || async { status("phase").await == "Healthy" }).await;
    let stable = status("stableRS").await;
    assert_eq!(stable, status("currentPodHash").await);
    let rev = api.get("shop").await.unwrap().metadata.annotations.unwrap()
        ["rollout.argoproj.io/revision"]
        .clone();
    assert_eq!(rev, "1");

    api.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "shop", "image": "shop:2"}]}}}})),
    )
    .await
    .unwrap();
    eventually("new pod hash", || async {
        status("currentPodHash").await != stable
    })
    .await;
    api.patch_status(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"abort": true}})),
    )
    .await
    .unwrap();
    eventually("aborted", || async {
        status("phase").await == "Degraded"
            && status("message")
                .await
                .as_str()
                .is_some_and(|m| m.contains("RolloutAborted"))
    })
    .await;
    // Undo by putting the stable template back: healthy again, abort cleared.
    api.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "shop", "image": "shop:1"}]}}}})),
    )
    .await
    .unwrap();
    eventually("healthy after undo", || async {
        status("phase").await == "Healthy" && status("currentPodHash").await == stable
    })
    .await;
    let rev = api.get("shop").await.unwrap().metadata.annotations.unwrap()
        ["rollout.argoproj.io/revision"]
        .clone();
    assert_eq!(rev, "3", "revision 1 renumbered to 3");
    sim.shutdown().await;
}

#[tokio::test]
async fn serve_runs_until_shutdown_with_preset_faults() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let config = SimConfig {
        faults: vec![("bad".to_string(), Fault::ImagePullBackOff)],
        ..SimConfig::default()
    };
    let server = tokio::spawn(rollbackd_sim::serve(listener, config, async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    let version: Value = http
        .get(format!("{url}/version"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        version["gitVersion"].as_str().unwrap().get(..5),
        Some("v1.33")
    );
    let faults: Value = http
        .get(format!("{url}/sim/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["faults"][0]["fault"], "ImagePullBackOff");
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn recreate_strategy_pause_and_scale_subresource() {
    let (sim, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("web", "web:1");
    d.spec.as_mut().unwrap().strategy =
        Some(serde_json::from_value(json!({"type": "Recreate"})).unwrap());
    api.create(&PostParams::default(), &d).await.unwrap();
    rolled_out(&api, "web").await;
    let set_image = |img: &'static str| {
        Patch::Strategic(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": img}]}}}}),
        )
    };
    api.patch("web", &PatchParams::default(), &set_image("web:2"))
        .await
        .unwrap();
    rolled_out(&api, "web").await;
    let got = api.get("web").await.unwrap();
    assert_eq!(image(&got), "web:2");
    assert_eq!(
        got.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );

    // Paused: a template change creates no new ReplicaSet.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": true}})),
    )
    .await
    .unwrap();
    api.patch("web", &PatchParams::default(), &set_image("web:3"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rs: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(client.clone(), "default");
    assert_eq!(
        rs.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    let progressing = api
        .get("web")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(progressing.reason.as_deref(), Some("DeploymentPaused"));
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": false}})),
    )
    .await
    .unwrap();
    rolled_out(&api, "web").await;
    assert_eq!(
        rs.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );

    // The scale subresource.
    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    rolled_out(&api, "web").await;
    assert_eq!(
        api.get("web").await.unwrap().status.unwrap().ready_replicas,
        Some(4)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn hostile_bodies_get_statuses_and_the_sim_keeps_working() {
    let (sim, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &deployment("web", "web:1"))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!(
        "{}/apis/apps/v1/namespaces/default/deployments/web",
        sim.url()
    );
    let merge_bodies = [
        r#"{"spec": "x"}"#,
        r#"{"spec": []}"#,
        r#"{"metadata": 5}"#,
        r#"{"spec": {"template": "x"}}"#,
        r#"{"spec": {"template": {"metadata": "x"}}}"#,
        r#"{"spec": {"replicas": -3}}"#,
        r#"{"spec": {"replicas": 99999999999}}"#,
        r#"{"spec": {"selector": {"matchLabels": {"app": "other"}}}}"#,
        r#"{"spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}}"#,
        r#"{"spec": {"strategy": {"rollingUpdate": {"maxSurge": "9999999999999%"}}}}"#,
        r#"[1, 2]"#,
        r#"{"#,
    ];
    for body in merge_bodies {
        let r = http
            .patch(&url)
            .header("content-type", "application/merge-patch+json")
            .body(body)
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert!(
            (200..300).contains(&code) || v["kind"] == "Status",
            "{body} -> {code} {v}"
        );
    }
    for body in [
        r#"{"$patch": "bogus"}"#,
        r#"{"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "app"}, {"$patch": "delete", "name": "sidecar"}]}}}}"#,
        r#""just a string""#,
    ] {
        let r = http
            .patch(&url)
            .header("content-type", "application/strategic-merge-patch+json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{body}");
    }
    let r = http
        .patch(&url)
        .header("content-type", "application/json-patch+json")
        .body(r#"[{"op": "explode"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .put(&url)
        .header("content-type", "application/json")
        .body(r#"{"metadata": {"name": "other"}}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());

    // Still serving, controllers still running.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    rolled_out(&api, "web").await;
    sim.shutdown().await;
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_end() {
    let (sim, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &deployment("web", "web:1"))
        .await
        .unwrap();
    let mut stream = Box::pin(watcher(
        api.clone(),
        watcher::Config::default().streaming_lists(),
    ));
    let mut initial = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.try_next().await.unwrap().unwrap() {
                watcher::Event::InitApply(d) => initial.push(d),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(initial.len(), 1);
    assert_eq!(image(&initial[0]), "web:1");
    sim.shutdown().await;
}

#[tokio::test]
async fn lists_come_in_chunks_and_a_paged_watcher_sees_every_object() {
    let (sim, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..7 {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": format!("cm-{i}"), "labels": {"app": "x"}}
        }))
        .unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    // by hand: limit 3 gives 3 + 3 + 1, each chunk with the first chunk's resourceVersion
    let mut names = Vec::new();
    let mut rvs = Vec::new();
    let mut remaining = Vec::new();
    let mut params = ListParams::default().limit(3);
    loop {
        let page = api.list(&params).await.unwrap();
        names.push(page.items.len());
        rvs.push(page.metadata.resource_version.clone().unwrap());
        remaining.push(page.metadata.remaining_item_count);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(names, [3, 3, 1]);
    assert!(rvs.iter().all(|rv| *rv == rvs[0]), "{rvs:?}");
    assert_eq!(remaining, [Some(4), Some(1), None]);
    // a token that is not one is a 400, not a full list
    let err = api
        .list(&ListParams::default().limit(3).continue_token("garbage"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 400 && s.message.contains("continue key is not valid")),
        "{err:?}"
    );
    // what the daemon's reflectors do, in pages of 2
    let mut stream = Box::pin(watcher(
        api.clone(),
        watcher::Config::default().page_size(2),
    ));
    let mut initial = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.try_next().await.unwrap().unwrap() {
                watcher::Event::InitApply(cm) => initial.push(cm.metadata.name.unwrap()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    initial.sort();
    assert_eq!(
        initial,
        (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn revision_history_limit_and_orphan_delete() {
    let (sim, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("web", "web:1");
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    api.create(&PostParams::default(), &d).await.unwrap();
    rolled_out(&api, "web").await;
    for img in ["web:2", "web:3", "web:4"] {
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": img}]}}}})),
        )
        .await
        .unwrap();
        rolled_out(&api, "web").await;
    }
    let rs: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(client.clone(), "default");
    eventually("old ReplicaSets pruned to the limit", || async {
        rs.list(&ListParams::default()).await.unwrap().items.len() == 2
    })
    .await;
    let mut revisions: Vec<String> = rs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"].clone())
        .collect();
    revisions.sort();
    assert_eq!(revisions, ["3", "4"]);

    api.delete("web", &DeleteParams::orphan()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let left = rs.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(left.len(), 2, "orphaned ReplicaSets stay");
    assert!(left.iter().all(|r| {
        r.metadata
            .owner_references
            .as_ref()
            .is_none_or(|o| o.is_empty())
    }));
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_with_selector_sees_objects_enter_and_leave() {
    let (sim, _client) = start().await;
    let http = reqwest::Client::new();
    let cms = format!("{}/api/v1/namespaces/default/configmaps", sim.url());
    let mut watch = http
        .get(format!(
            "{cms}?watch=1&labelSelector=team%3Da&timeoutSeconds=5"
        ))
        .send()
        .await
        .unwrap();
    let send = |method: reqwest::Method, url: String, ct: &'static str, body: &'static str| {
        let http = http.clone();
        async move {
            let r = http
                .request(method, url)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
    };
    send(
        reqwest::Method::POST,
        cms.clone(),
        "application/json",
        r#"{"metadata": {"name": "c", "labels": {"team": "a"}}, "data": {"k": "1"}}"#,
    )
    .await;
    let patch = |labels: &'static str| {
        send(
            reqwest::Method::PATCH,
            format!("{cms}/c"),
            "application/merge-patch+json",
            labels,
        )
    };
    patch(r#"{"data": {"k": "2"}}"#).await;
    patch(r#"{"metadata": {"labels": {"team": "b"}}}"#).await;
    patch(r#"{"data": {"k": "3"}}"#).await;
    patch(r#"{"metadata": {"labels": {"team": "a"}}}"#).await;
    let mut buf = String::new();
    let types = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let chunk = watch.chunk().await.unwrap().unwrap();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            let types: Vec<String> = buf
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .map(|v| v["type"].as_str().unwrap().to_string())
                .collect();
            if types.len() >= 4 {
                return types;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED", "ADDED"]);
    sim.shutdown().await;
}
