//! The Kubernetes store beyond the contract (`tests/store_contract.rs` runs the contract on
//! it): what the real kubectl shows of its incidents, that every object it writes is one a
//! real API server would keep as written (the simulator neither validates nor prunes custom
//! resources: the CRD's structural schema is checked here), that writes which lose a race
//! are decided again, that objects stay small whatever the outputs, and that retention takes
//! the backups' ConfigMaps. Each test starts its own simulator on 127.0.0.1:0 and applies
//! `deploy/crds/rollbackincidents.yaml` with kubectl.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kube_store_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use kube_store_support::{Cluster, NS, new_incident, outbox};
use rollbackd::executor::{StepJournal, StepOutcome, StepState};
use rollbackd::store::*;
use rollbackd_core::incident::{Event, State};
use serde_json::{Value, json};

fn cells(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// After the backend opens an incident, `kubectl get rollbackincidents -n rollbackd` shows
/// it with its agent, state, severity, row, revision and age; a transition moves the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_shows_each_incident_with_its_columns() {
    let c = Cluster::start().await;
    let store = c.store().await;
    let opened = store
        .open_incident(
            &new_incident("GL-002", 12),
            Event::Start,
            Utc::now(),
            None,
            Box::new(|_: &Incident| vec![outbox("initiated")]),
        )
        .await
        .unwrap()
        .into_incident();
    let mut waiting = new_incident("GL-009", 7);
    waiting.severity = Some("P2".into());
    waiting.row = Some("p2-latency".into());
    let approval = store
        .create_incident(&waiting, Event::RequestApproval, Utc::now(), &[], None)
        .await
        .unwrap();
    let name = opened.id.to_lowercase();
    let table = c.kubectl(&["get", "rollbackincidents", "-n", NS]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "AGENT", "STATE", "SEVERITY", "ROW", "REVISION", "AGE"
        ],
        "{table}"
    );
    let row = cells(&table, &name);
    assert_eq!(
        row[..6],
        [&name, "GL-002", "rolling_back", "P0", "p0-error-rate", "12"],
        "{table}"
    );
    assert!(row[6].ends_with('s'), "an age: {table}");
    assert_eq!(
        cells(&table, &approval.id.to_lowercase())[1..6],
        ["GL-009", "awaiting_approval", "P2", "p2-latency", "7"],
        "{table}"
    );
    store
        .transition(
            &Transition::new(&opened.id, Event::StepsDone, Utc::now(), "undo done")
                .expecting(State::RollingBack),
        )
        .await
        .unwrap();
    let table = c.kubectl(&["get", "rbi", "-n", NS, "-o", "wide"]).await;
    let row = cells(&table, &name);
    assert_eq!(row[2], "verifying", "{table}");
    assert!(table.contains("WORKLOAD"), "{table}");
    assert!(
        row.contains(&"gl-002-boiler-efficiency".to_string()),
        "{table}"
    );
    // the category lists them too, and the id is on the object
    let all = c
        .kubectl(&["get", "rollbackd", "-n", NS, "-o", "name"])
        .await;
    assert!(
        all.contains(&format!("rollbackincident.rollbackd.io/{name}")),
        "{all}"
    );
    let id = c
        .kubectl(&[
            "get",
            "rbi",
            &name,
            "-n",
            NS,
            "-o",
            r"jsonpath={.metadata.annotations.rollbackd\.io/id}",
        ])
        .await;
    assert_eq!(id, opened.id);
    c.sim.shutdown().await;
}

/// A value against a structural schema as the API server would take it: every field known
/// (else it would be pruned), typed, within its enum, required ones present.
fn check(v: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    let Some(ty) = schema["type"].as_str() else {
        assert!(preserve, "{path}: a schema node without a type");
        return;
    };
    let mut fail = |why: String| errors.push(format!("{path}: {why}"));
    match ty {
        "object" => {
            let Some(map) = v.as_object() else {
                return fail(format!("not an object: {v}"));
            };
            for req in schema["required"].as_array().into_iter().flatten() {
                if !map.contains_key(req.as_str().unwrap()) {
                    fail(format!("missing required {req}"));
                }
            }
            if path == ".metadata" {
                return;
            }
            for (k, x) in map {
                let p = format!("{path}.{k}");
                match (
                    schema["properties"].get(k),
                    schema.get("additionalProperties"),
                ) {
                    (Some(s), _) | (None, Some(s)) => check(x, s, &p, errors),
                    (None, None) if preserve => {}
                    (None, None) => errors.push(format!("{p}: not in the schema (pruned)")),
                }
            }
        }
        "array" => match v.as_array() {
            Some(items) => {
                for (i, x) in items.iter().enumerate() {
                    check(x, &schema["items"], &format!("{path}[{i}]"), errors);
                }
            }
            None => fail(format!("not an array: {v}")),
        },
        "string" => match v.as_str() {
            Some(s) => {
                if let Some(allowed) = schema["enum"].as_array()
                    && !allowed.contains(v)
                {
                    fail(format!("{s:?} not in {allowed:?}"));
                }
                if schema["format"] == "date-time" && DateTime::parse_from_rfc3339(s).is_err() {
                    fail(format!("{s:?} is not a date-time"));
                }
            }
            None => fail(format!("not a string: {v}")),
        },
        "integer" => {
            if !(v.is_i64() || v.is_u64()) {
                fail(format!("not an integer: {v}"));
            } else if let Some(min) = schema["minimum"].as_i64()
                && v.as_i64().is_some_and(|n| n < min)
            {
                fail(format!("{v} < {min}"));
            }
        }
        "boolean" => {
            if !v.is_boolean() {
                fail(format!("not a boolean: {v}"));
            }
        }
        other => fail(format!("unexpected schema type {other}")),
    }
}

/// Every incident the store writes, through a whole life with steps, notifications,
/// threads, audit entries and backups, is what the CRD's schema describes: nothing a real
/// API server would prune or refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_store_writes_is_what_the_crd_describes() {
    let c = Cluster::start().await;
    let store = c.store().await;
    let entry = AuditEntry {
        at: Utc::now(),
        actor: "alice".into(),
        action: "rollback.trigger".into(),
        target: String::new(),
        reason: "by hand".into(),
        detail: json!({"method": "quick"}),
    };
    let mut manual = new_incident("GL-008", 3);
    manual.trigger = Trigger::Manual;
    manual.requested_by = Some("alice".into());
    manual.dry_run = true;
    manual.revision = None;
    let inc = store
        .open_incident(
            &manual,
            Event::RequestApproval,
            Utc::now(),
            Some(&entry),
            Box::new(|i: &Incident| vec![outbox(&format!("awaiting {}", i.id))]),
        )
        .await
        .unwrap()
        .into_incident();
    store
        .transition(
            &Transition::new(&inc.id, Event::Approve, Utc::now(), "approved")
                .notifying(&[outbox("initiated")])
                .audited(&AuditEntry {
                    target: inc.id.clone(),
                    ..entry.clone()
                }),
        )
        .await
        .unwrap();
    let journal: Arc<dyn StateStore> = store.clone();
    let key = format!("{}/quick", inc.id);
    journal
        .started(&key, 0, "gl-008", Utc::now())
        .await
        .unwrap();
    let outcome = StepOutcome {
        index: 0,
        name: "undo".into(),
        workload: "gl-008".into(),
        kind: "undo".into(),
        state: StepState::Failed("boom".into()),
        started_at: Some(Utc::now()),
        finished_at: Some(Utc::now()),
        detail: json!({"to_revision": 2, "logs": ["a", "b"]}),
    };
    journal.finished(&key, 0, "gl-008", &outcome).await.unwrap();
    store
        .save_backup(
            &inc.id,
            "Deployment",
            "greenlang",
            "gl-008",
            &json!({"spec": {"replicas": 3}}),
            Utc::now(),
        )
        .await
        .unwrap();
    let due = store.outbox_due(Utc::now(), 10).await.unwrap();
    store
        .outbox_retry(due[0].id, 1, Utc::now(), "HTTP 500", true)
        .await
        .unwrap();
    store
        .outbox_sent(due[0].id, Utc::now(), None)
        .await
        .unwrap();
    store
        .save_thread(
            &inc.id,
            "slack:#gl-002-incidents",
            &json!({"channel": "C1", "ts": "1.2"}),
        )
        .await
        .unwrap();
    store
        .transition(&Transition::new(
            &inc.id,
            Event::StepFailed,
            Utc::now(),
            "undo failed",
        ))
        .await
        .unwrap();
    store
        .audit(&AuditEntry {
            target: "global".into(),
            ..entry.clone()
        })
        .await
        .unwrap();
    store
        .pause(&Pause {
            scope: "GL-008".into(),
            paused_by: "alice".into(),
            reason: "freeze".into(),
            at: Utc::now(),
        })
        .await
        .unwrap();

    let crd = c
        .kubectl(&["get", "crd", "rollbackincidents.rollbackd.io", "-o", "json"])
        .await;
    let crd: Value = serde_json::from_str(&crd).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let objects = c.incidents().await;
    assert_eq!(objects.len(), 1);
    let obj = &objects[0];
    let status = &obj["status"];
    assert_eq!(status["state"], "failed");
    assert_eq!(status["transitions"].as_array().unwrap().len(), 3);
    assert_eq!(status["steps"].as_array().unwrap().len(), 1);
    assert_eq!(status["notifications"].as_array().unwrap().len(), 2);
    assert_eq!(status["notifications"][0]["state"], "sent");
    assert_eq!(status["threads"].as_array().unwrap().len(), 1);
    assert_eq!(
        status["audit"].as_array().unwrap().len(),
        3,
        "trigger, approval, step"
    );
    let mut errors = Vec::new();
    check(obj, schema, "", &mut errors);
    // the opening annotation holds a status too: it must read as one
    let opening: Value = serde_json::from_str(
        obj["metadata"]["annotations"]["rollbackd.io/opening"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    check(
        &opening,
        &schema["properties"]["status"],
        ".opening",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:#?}\n{obj:#}");
    // the ConfigMaps: a backup owned by the incident, the agent's register, the pause, the
    // audit log; all labelled as rollbackd's
    let cms = c.configmaps().await;
    let role = |cm: &Value| {
        cm["metadata"]["labels"]["rollbackd.io/role"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let mut roles: Vec<String> = cms.iter().map(role).collect();
    roles.sort();
    assert_eq!(roles, ["agent", "audit", "backup", "pause"]);
    for cm in &cms {
        assert_eq!(
            cm["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "rollbackd"
        );
    }
    let backup = cms.iter().find(|cm| role(cm) == "backup").unwrap();
    assert_eq!(
        backup["metadata"]["ownerReferences"][0]["uid"],
        obj["metadata"]["uid"]
    );
    assert_eq!(
        backup["metadata"]["ownerReferences"][0]["kind"],
        "RollbackIncident"
    );
    c.sim.shutdown().await;
}

/// Two replicas approving one incident at once: one wins; the other, whether its write was
/// refused with 409 Conflict and decided again over the re-read object or it read after
/// the winner, finds the incident no longer awaiting approval, fails as concurrent and
/// writes nothing. A write that meets a change made after its read is refused (409) and
/// made again over the new object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_lost_a_race_is_decided_again_never_forced() {
    let c = Cluster::start().await;
    let (a, b) = (c.store().await, c.store().await);
    for revision in 0..8 {
        let inc = a
            .create_incident(
                &new_incident("GL-002", revision),
                Event::RequestApproval,
                Utc::now(),
                &[],
                None,
            )
            .await
            .unwrap();
        // both read the incident before either writes
        assert_eq!(
            b.incident(&inc.id).await.unwrap().unwrap().state,
            State::AwaitingApproval
        );
        let approve = |s: Arc<dyn StateStore>, who: &'static str| {
            let id = inc.id.clone();
            async move {
                let note = format!("by {who}");
                s.transition(
                    &Transition::new(&id, Event::Approve, Utc::now(), &note)
                        .expecting(State::AwaitingApproval)
                        .notifying(&[outbox(who)]),
                )
                .await
            }
        };
        let (ra, rb) = tokio::join!(approve(a.clone(), "alice"), approve(b.clone(), "bob"));
        let won = usize::from(ra.is_ok()) + usize::from(rb.is_ok());
        assert_eq!(won, 1, "{ra:?} / {rb:?}");
        let lost = [ra, rb].into_iter().find_map(Result::err).unwrap();
        assert!(matches!(lost, StoreError::Concurrent { .. }), "{lost}");
        assert_eq!(a.transitions(&inc.id).await.unwrap().len(), 2);
        assert_eq!(
            a.outbox_for(&inc.id).await.unwrap().len(),
            1,
            "the loser's message is not written"
        );
    }
    // a change by someone else between a read and a write: the write is refused (409) and
    // made again over the new object, which keeps the other change
    let inc = a
        .create_incident(
            &new_incident("GL-009", 1),
            Event::Start,
            Utc::now(),
            &[],
            None,
        )
        .await
        .unwrap();
    let name = inc.id.to_lowercase();
    c.sim
        .race_next_write(
            "rollbackd.io/v1alpha1",
            "RollbackIncident",
            NS,
            &name,
            json!({"metadata": {"labels": {"team": "heat"}}}),
        )
        .unwrap();
    let before = c.sim.requests().len();
    a.transition(&Transition::new(
        &inc.id,
        Event::StepsDone,
        Utc::now(),
        "done",
    ))
    .await
    .unwrap();
    let writes: Vec<_> = c.sim.requests()[before..]
        .iter()
        .filter(|r| r.path.ends_with(&format!("/{name}/status")))
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(writes, ["PUT", "PUT"], "refused once, then written");
    let obj = c
        .incidents()
        .await
        .into_iter()
        .find(|o| o["metadata"]["name"] == name.as_str())
        .unwrap();
    assert_eq!(obj["metadata"]["labels"]["team"], "heat");
    assert_eq!(obj["status"]["state"], "verifying");
    c.sim.shutdown().await;
}

/// However long the outputs, an incident stays far below etcd's limit: long strings are
/// cut (saying by how much), harder once the status grows past its budget, and the step
/// journal still reads every outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_outputs_are_cut_so_an_incident_stays_small() {
    let c = Cluster::start().await;
    let store = c.store().await;
    let mut new = new_incident("GL-001", 4);
    new.decision = json!({"decision": "rollback", "evidence": {"note": "e".repeat(3_000_000)}});
    let inc = store
        .create_incident(&new, Event::Start, Utc::now(), &[], None)
        .await
        .unwrap();
    let journal: Arc<dyn StateStore> = store.clone();
    // each step adds ~16 KiB (its outcome and its audit entry): past the status budget
    for step in 0..50 {
        let key = format!("{}/quick", inc.id);
        let outcome = StepOutcome {
            index: step,
            name: "migrate".into(),
            workload: "gl-001".into(),
            kind: "job".into(),
            state: StepState::Done,
            started_at: Some(Utc::now()),
            finished_at: Some(Utc::now()),
            detail: json!({"logs": "l".repeat(200_000)}),
        };
        journal
            .started(&key, step, "gl-001", Utc::now())
            .await
            .unwrap();
        journal
            .finished(&key, step, "gl-001", &outcome)
            .await
            .unwrap();
    }
    for step in [0, 49] {
        let key = format!("{}/quick", inc.id);
        let read = journal.status(&key, step, "gl-001").await.unwrap();
        let read = read.outcome.expect("the journal still reads the outcome");
        assert_eq!(read.state, StepState::Done);
        let logs = read.detail["logs"].as_str().unwrap();
        assert!(logs.contains("bytes cut"), "{logs}");
        if step == 0 {
            assert!(
                logs.len() < 2048,
                "cut harder past the budget: {}",
                logs.len()
            );
        }
    }
    let obj = c.incidents().await.pop().unwrap();
    let bytes = serde_json::to_vec(&obj).unwrap().len();
    assert!(bytes < 1_000_000, "{bytes} bytes");
    assert!(
        obj["spec"]["decision"]["evidence"]["note"]
            .as_str()
            .unwrap()
            .ends_with("bytes cut)")
    );
    assert_eq!(store.steps(&inc.id).await.unwrap().len(), 50);
    c.sim.shutdown().await;
}

/// Retention takes a finished incident with its backups' ConfigMaps, and the register no
/// longer names it; a fresh store (another replica, cold caches) finds outbox rows by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_takes_the_backups_and_a_cold_replica_finds_outbox_rows() {
    let c = Cluster::start().await;
    let store = c.store().await;
    let t0 = Utc::now() - TimeDelta::days(40);
    let inc = store
        .open_incident(
            &new_incident("GL-006", 9),
            Event::Start,
            t0,
            None,
            Box::new(|_: &Incident| vec![outbox("initiated")]),
        )
        .await
        .unwrap()
        .into_incident();
    for kind in ["Deployment", "ConfigMap"] {
        store
            .save_backup(
                &inc.id,
                kind,
                "greenlang",
                "gl-006",
                &json!({"kind": kind}),
                t0,
            )
            .await
            .unwrap();
    }
    for event in [Event::StepsDone, Event::Verified, Event::WatchElapsed] {
        store
            .transition(&Transition::new(&inc.id, event, t0, ""))
            .await
            .unwrap();
    }
    // another replica, with nothing cached, delivers the notification
    let other = c.store().await;
    let due = other.outbox_due(Utc::now(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let third = c.store().await;
    third
        .outbox_sent(due[0].id, Utc::now(), None)
        .await
        .unwrap();
    assert_eq!(store.outbox_for(&inc.id).await.unwrap()[0].state, "sent");
    let backups = |cms: &[Value]| {
        cms.iter()
            .filter(|cm| cm["metadata"]["labels"]["rollbackd.io/role"] == "backup")
            .count()
    };
    assert_eq!(backups(&c.configmaps().await), 2);
    let pruned = store
        .prune_older_than(Utc::now() - TimeDelta::days(30))
        .await
        .unwrap();
    assert_eq!((pruned.incidents, pruned.backups, pruned.outbox), (1, 2, 1));
    assert!(c.incidents().await.is_empty());
    assert_eq!(backups(&c.configmaps().await), 0);
    // the agent's next incident gets the next number: ids are never given twice
    let next = store
        .create_incident(
            &new_incident("GL-006", 10),
            Event::Start,
            Utc::now(),
            &[],
            None,
        )
        .await
        .unwrap();
    assert!(next.id.ends_with("-2"), "{}", next.id);
    c.sim.shutdown().await;
}

/// Writes `holder` into the Lease `rollbackd-leader` in the store's namespace, in term
/// `transitions`, renewed now for 15 s (creating it the first time).
async fn lease(c: &Cluster, holder: &str, transitions: i32) {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let api: kube::Api<Lease> = kube::Api::namespaced(c.client(), NS);
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut lease = api
        .get_opt("rollbackd-leader")
        .await
        .unwrap()
        .unwrap_or_default();
    lease.metadata.name = Some("rollbackd-leader".into());
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(holder.into()),
        lease_duration_seconds: Some(15),
        lease_transitions: Some(transitions),
        renew_time: Some(MicroTime(now)),
        acquire_time: Some(MicroTime(now)),
        ..LeaseSpec::default()
    });
    if lease.metadata.resource_version.is_some() {
        api.replace("rollbackd-leader", &Default::default(), &lease)
            .await
            .unwrap();
    } else {
        api.create(&Default::default(), &lease).await.unwrap();
    }
}

/// With leader election, the store writes only for the Lease holder in the term it
/// acquired: a replica that holds no term (a standby), or whose Lease another replica has
/// taken since, is refused every write with `Fenced`, and nothing reaches the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_in_its_term_writes() {
    let c = Cluster::start().await;
    let store = c.store().await;
    let (term, term_rx) = tokio::sync::watch::channel(None);
    store.fence_writes(rollbackd::cluster::fence::Fence::new(
        c.client(),
        NS,
        "rollbackd-leader",
        "pod-a",
        term_rx,
    ));
    lease(&c, "pod-a", 3).await;
    let pause = Pause {
        scope: "GL-002".into(),
        paused_by: "alice".into(),
        reason: "maintenance".into(),
        at: Utc::now(),
    };

    // a standby (no term): refused, nothing written
    let fenced = |r: Result<(), StoreError>, what: &str| match r {
        Err(StoreError::Fenced(why)) => assert!(why.contains("does not hold"), "{what}: {why}"),
        other => panic!("{what}: expected Fenced, got {other:?}"),
    };
    let opened = store
        .open_incident(
            &new_incident("GL-002", 7),
            Event::Start,
            Utc::now(),
            None,
            Box::new(|_: &Incident| vec![outbox("initiated")]),
        )
        .await;
    fenced(opened.map(|_| ()), "open_incident");
    fenced(store.pause(&pause).await, "pause");
    assert!(
        c.incidents().await.is_empty(),
        "a standby created an incident"
    );
    assert!(
        !c.configmaps()
            .await
            .iter()
            .any(|cm| cm["metadata"]["name"] == "rollbackd-pause-gl-002"),
        "a standby paused"
    );

    // the holder in its term: written
    term.send_replace(Some(3));
    let inc = store
        .open_incident(
            &new_incident("GL-002", 7),
            Event::Start,
            Utc::now(),
            None,
            Box::new(|_: &Incident| vec![outbox("initiated")]),
        )
        .await
        .unwrap()
        .into_incident();
    store.pause(&pause).await.unwrap();
    assert_eq!(c.incidents().await.len(), 1);

    // another replica took the Lease (next term): the old holder is refused
    lease(&c, "pod-b", 4).await;
    let moved = store
        .transition(
            &Transition::new(&inc.id, Event::StepsDone, Utc::now(), "undo done")
                .expecting(State::RollingBack),
        )
        .await;
    match moved {
        Err(StoreError::Fenced(why)) => assert!(why.contains("held by pod-b"), "{why}"),
        other => panic!("expected Fenced, got {other:?}"),
    }
    match store.resume("GL-002").await {
        Err(StoreError::Fenced(_)) => {}
        other => panic!("resume: expected Fenced, got {other:?}"),
    }
    // as the cluster has it (a fresh store, no cache): unchanged
    let fresh = c.store().await;
    assert_eq!(
        fresh.incident(&inc.id).await.unwrap().unwrap().state,
        State::RollingBack
    );
    assert_eq!(fresh.pauses().await.unwrap().len(), 1);
}

/// The alerts log spreads over ConfigMap segments of at most 64 KiB: an append rewrites
/// only the last one (so its cost stays bounded however many alerts were received), a
/// redelivered alert is recognised whichever segment holds it, and every alert reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_log_grows_in_small_segments_and_deduplicates_across_them() {
    let c = Cluster::start().await;
    let store = c.store().await;
    let t0 = Utc::now();
    let alert = |i: usize| AlertRecord {
        fingerprint: format!("{i:016x}"),
        status: "firing".into(),
        starts_at: t0,
        ends_at: None,
        agent: Some(format!("FLEET-{i:05}")),
        labels: BTreeMap::from([
            ("alertname".to_string(), "ServiceOutage".to_string()),
            ("deployment".to_string(), format!("svc-{i:05}")),
        ]),
        annotations: BTreeMap::from([("summary".to_string(), "x".repeat(300))]),
    };
    for i in 0..400 {
        let fresh = store
            .record_alert_groups(&[vec![alert(i)]], t0)
            .await
            .unwrap();
        assert_eq!(fresh, [[true]]);
    }
    let segments: Vec<Value> = c
        .configmaps()
        .await
        .into_iter()
        .filter(|cm| cm["metadata"]["labels"]["rollbackd.io/role"] == "alerts")
        .collect();
    assert!(segments.len() >= 3, "{} segments", segments.len());
    for cm in &segments {
        let bytes = cm["data"]["entries"].as_str().unwrap().len();
        assert!(bytes <= 64 * 1024, "{bytes} bytes");
    }
    // the first alert, in the first segment, redelivered with a new one
    let fresh = store
        .record_alert_groups(&[vec![alert(0), alert(400)]], t0)
        .await
        .unwrap();
    assert_eq!(fresh, [[false, true]]);
    let received = store
        .alerts_since(None, t0 - TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(received.len(), 401);
    c.sim.shutdown().await;
}
