//! The store contract ([`StateStore`]), written once and held against every backend: each
//! behaviour below is an async function of a store (or of a backend, when it must reopen the
//! store or make a write fail), and each backend listed at the bottom runs all of them as
//! `<backend>::<behaviour>`: SQLite on a real file, and the Kubernetes API (a simulator of
//! the test's own on 127.0.0.1:0, given the CRD from `deploy/crds/`).

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use rollbackd::cluster::backup::BackupSink;
use rollbackd::executor::{StepJournal, StepOutcome, StepState};
use rollbackd::notify::{Message, OutboxStore, Target, ThreadRef};
use rollbackd::store::*;
use rollbackd_core::incident::{Event, State};
use rollbackd_core::policy::{PagerDutySeverity, Stage};
use rollbackd_sim::{SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};

mod support;

/// A backend under test, over state of its own.
#[async_trait]
trait Backend: Send + Sync {
    /// A store over this backend's state; opening it again sees what the last one wrote.
    async fn open(&self) -> Arc<dyn StateStore>;
    /// From now on every write of a notification fails (a full disk), so a test can see
    /// what a failed write takes with it.
    async fn refuse_notifications(&self);
}

/// SQLite on a real temporary file.
struct Sqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Sqlite {
    async fn fresh() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollbackd.db");
        Self { _dir: dir, path }
    }
}

#[async_trait]
impl Backend for Sqlite {
    async fn open(&self) -> Arc<dyn StateStore> {
        Arc::new(
            SqliteStore::open(&self.path, Synchronous::Normal)
                .await
                .unwrap(),
        )
    }

    async fn refuse_notifications(&self) {
        rusqlite::Connection::open(&self.path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER outbox_full BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
            )
            .unwrap();
    }
}

/// The Kubernetes API: a simulator of the test's own, given the CRD from `deploy/crds/`.
struct Kubernetes {
    sim: SimHandle,
}

impl Kubernetes {
    async fn fresh() -> Self {
        let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), SimConfig::default())
            .await
            .unwrap();
        sim.create(support::incident_crd()).unwrap();
        Self { sim }
    }
}

#[async_trait]
impl Backend for Kubernetes {
    async fn open(&self) -> Arc<dyn StateStore> {
        let client =
            kube::Client::try_from(kube::Config::new(self.sim.url().parse().unwrap())).unwrap();
        Arc::new(KubeStore::open(client, "rollbackd").await.unwrap())
    }

    /// An admission hook refuses every write of a RollbackIncident that adds a notification
    /// (a create whose opening has some, a status write that has more than before).
    async fn refuse_notifications(&self) {
        fn notifications(obj: Option<&Value>) -> usize {
            let Some(obj) = obj else { return 0 };
            let status = match obj.get("status") {
                Some(s) => s.clone(),
                None => obj["metadata"]["annotations"]["rollbackd.io/opening"]
                    .as_str()
                    .map(|o| serde_json::from_str(o).unwrap())
                    .unwrap_or(Value::Null),
            };
            status["notifications"].as_array().map_or(0, Vec::len)
        }
        self.sim.admit("disk-full.test", |req| {
            if req.resource == "rollbackincidents"
                && notifications(req.object) > notifications(req.old_object)
            {
                Err("disk full".into())
            } else {
                Ok(())
            }
        });
    }
}

fn t(s: i64) -> DateTime<Utc> {
    "2025-11-17T14:30:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::seconds(s)
}

fn new_incident(agent: &str) -> NewIncident {
    NewIncident {
        agent: agent.into(),
        namespace: "greenlang".into(),
        workload: "gl-002-boiler-efficiency".into(),
        revision: Some(12),
        from_image: Some("ghcr.io/greenlang/gl-002:v1.2.5".into()),
        row: Some("p0-error-rate".into()),
        severity: Some("P0".into()),
        method: Some("quick".into()),
        trigger: Trigger::Automatic,
        requested_by: None,
        reason: "P0 p0-error-rate: error_rate=0.6 > 0.5".into(),
        decision: json!({"decision": "rollback"}),
        dry_run: false,
        vars: BTreeMap::new(),
        deploy_at: Some(t(-600)),
    }
}

fn outbox(stage: &str) -> NewOutbox {
    NewOutbox {
        target_key: "slack:#gl-002-incidents".into(),
        target: json!({"slack": {"channel": "#gl-002-incidents"}}),
        message: json!({"stage": stage}),
    }
}

fn audit_at(target: &str, at: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        at,
        actor: "alice".into(),
        action: "rollback.approve".into(),
        target: target.into(),
        reason: String::new(),
        detail: json!({}),
    }
}

fn alert(fp: &str, status: &str, agent: Option<&str>) -> AlertRecord {
    AlertRecord {
        fingerprint: fp.into(),
        status: status.into(),
        starts_at: t(0),
        ends_at: None,
        agent: agent.map(str::to_string),
        labels: [("alertname".to_string(), "X".to_string())].into(),
        annotations: BTreeMap::new(),
    }
}

fn step_row(incident: &str, state: &str, started: i64, finished: Option<i64>) -> StepRow {
    StepRow {
        incident_id: incident.into(),
        method: "quick".into(),
        index: 0,
        workload: "gl-002".into(),
        name: "undo".into(),
        kind: "undo".into(),
        state: state.into(),
        started_at: Some(t(started)),
        finished_at: finished.map(t),
        detail: json!(null),
    }
}

/// Drives an incident opened with `Event::Start` to `resolved` at `at`.
async fn resolve(store: &dyn StateStore, id: &str, at: DateTime<Utc>) {
    for event in [Event::StepsDone, Event::Verified, Event::WatchElapsed] {
        store
            .transition(&Transition::new(id, event, at, ""))
            .await
            .unwrap();
    }
    assert_eq!(
        store.incident(id).await.unwrap().unwrap().state,
        State::Resolved
    );
}

/// An incident, its transitions and notifications outlive the store that wrote them.
async fn an_incident_survives_reopening(backend: &dyn Backend) {
    let id = {
        let store = backend.open().await;
        let inc = store
            .create_incident(
                &new_incident("GL-002"),
                Event::Start,
                t(0),
                &[outbox("initiated")],
                None,
            )
            .await
            .unwrap();
        assert_eq!(inc.state, State::RollingBack);
        assert_eq!(inc.id, "gl-002-20251117T143000Z-1");
        store
            .transition(
                &Transition::new(&inc.id, Event::StepsDone, t(60), "undo done")
                    .expecting(State::RollingBack),
            )
            .await
            .unwrap();
        inc.id
    };
    let store = backend.open().await;
    let inc = store.incident(&id).await.unwrap().unwrap();
    assert_eq!(inc.state, State::Verifying);
    assert_eq!(inc.revision, Some(12));
    let transitions = store.transitions(&id).await.unwrap();
    let path: Vec<_> = transitions
        .iter()
        .map(|t| (t.event.as_str(), t.to))
        .collect();
    assert_eq!(
        path,
        [
            ("start", State::RollingBack),
            ("steps_done", State::Verifying)
        ]
    );
    assert_eq!(store.in_flight().await.unwrap().len(), 1);
    assert_eq!(store.in_flight_count().await.unwrap(), 1);
    assert_eq!(
        store.incident_counts().await.unwrap(),
        [(State::Verifying, 1)]
    );
    assert_eq!(store.outbox_for(&id).await.unwrap().len(), 1);
}

async fn transitions_are_compare_and_set_and_follow_the_lifecycle(store: &dyn StateStore) {
    let inc = store
        .create_incident(
            &new_incident("GL-008"),
            Event::RequestApproval,
            t(0),
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(inc.state, State::AwaitingApproval);
    store
        .transition(
            &Transition::new(&inc.id, Event::Cancel, t(1), "by alice")
                .expecting(State::AwaitingApproval),
        )
        .await
        .unwrap();
    // an approve that raced the cancel fails cleanly and changes nothing
    let err = store
        .transition(
            &Transition::new(&inc.id, Event::Approve, t(2), "by bob")
                .expecting(State::AwaitingApproval),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Concurrent { .. }), "{err}");
    let err = store
        .transition(&Transition::new(&inc.id, Event::Approve, t(2), "by bob"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot Approve an incident that is cancelled"
    );
    let err = store
        .transition(&Transition::new(
            "no-such-incident",
            Event::Cancel,
            t(2),
            "",
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(
        store.incident(&inc.id).await.unwrap().unwrap().state,
        State::Cancelled
    );
    assert_eq!(store.transitions(&inc.id).await.unwrap().len(), 2);
    // cancelled is finished: nothing to resume after a restart
    assert!(store.in_flight().await.unwrap().is_empty());
    assert_eq!(store.in_flight_count().await.unwrap(), 0);
    assert_eq!(
        store.incident_counts().await.unwrap(),
        [(State::Cancelled, 1)]
    );
}

/// `open_incident` writes the incident, its first transition, the notifications built from
/// it and the audit entry together, once per deploy, however many ask at the same time.
async fn opening_an_incident_is_one_transaction_once_per_deploy(store: &dyn StateStore) {
    let entry = audit_at("", t(0));
    let announce: Announce = Box::new(|incident: &Incident| {
        vec![NewOutbox {
            message: json!({"stage": "initiated", "incident": incident.id, "state": incident.state}),
            ..outbox("initiated")
        }]
    });
    let opened = store
        .open_incident(
            &new_incident("GL-002"),
            Event::Start,
            t(0),
            Some(&entry),
            announce,
        )
        .await
        .unwrap();
    let Opened::New(inc) = opened else {
        panic!("a new incident: {opened:?}")
    };
    assert_eq!(inc.state, State::RollingBack);
    let rows = store.outbox_for(&inc.id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].message,
        json!({"stage": "initiated", "incident": inc.id, "state": "rolling_back"}),
        "announced from the incident as written"
    );
    let audit = store.audit_log(Some(&inc.id), 10).await.unwrap();
    assert_eq!(audit.len(), 1, "an empty target is filed under the new id");
    assert_eq!(store.transitions(&inc.id).await.unwrap().len(), 1);
    // the same deploy again: the open incident, and nothing written
    let again = store
        .open_incident(
            &new_incident("GL-002"),
            Event::Start,
            t(1),
            Some(&entry),
            Box::new(|_: &Incident| vec![outbox("initiated")]),
        )
        .await
        .unwrap();
    assert_eq!(again, Opened::AlreadyOpen(inc.clone()));
    assert_eq!(again.into_incident().id, inc.id);
    assert_eq!(store.outbox_for(&inc.id).await.unwrap().len(), 1);
    assert_eq!(store.audit_log(None, 100).await.unwrap().len(), 1);
    assert_eq!(
        store
            .incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    // two opens for one new deploy at the same time: one incident
    let mut next = new_incident("GL-002");
    next.revision = Some(13);
    let open = || {
        store.open_incident(
            &next,
            Event::RequestApproval,
            t(2),
            None,
            Box::new(|_: &Incident| vec![outbox("awaiting_approval")]),
        )
    };
    let (a, b) = tokio::join!(open(), open());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        matches!(
            (&a, &b),
            (Opened::New(_), Opened::AlreadyOpen(_)) | (Opened::AlreadyOpen(_), Opened::New(_))
        ),
        "{a:?} / {b:?}"
    );
    assert_eq!(a.into_incident().id, b.into_incident().id);
    assert_eq!(
        store
            .incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );
    // once the first incident is finished, its deploy may open another
    resolve(store, &inc.id, t(3)).await;
    assert!(
        store
            .open_incident_for("GL-002", Some(12))
            .await
            .unwrap()
            .is_none()
    );
    let reopened = store
        .open_incident(
            &new_incident("GL-002"),
            Event::Start,
            t(4),
            None,
            Box::new(|_: &Incident| Vec::new()),
        )
        .await
        .unwrap();
    assert!(matches!(reopened, Opened::New(_)), "{reopened:?}");
}

/// A write that fails takes its whole transaction with it: no incident without its
/// notifications, no transition or audit entry without them.
async fn a_failed_write_leaves_nothing_of_its_transaction(backend: &dyn Backend) {
    let store = backend.open().await;
    let inc = store
        .create_incident(
            &new_incident("GL-002"),
            Event::RequestApproval,
            t(0),
            &[outbox("awaiting_approval")],
            None,
        )
        .await
        .unwrap();
    backend.refuse_notifications().await;
    let entry = audit_at("", t(1));
    let mut other = new_incident("GL-009");
    other.revision = Some(3);
    assert!(
        store
            .open_incident(
                &other,
                Event::Start,
                t(1),
                Some(&entry),
                Box::new(|_: &Incident| vec![outbox("initiated")]),
            )
            .await
            .is_err()
    );
    assert!(
        store
            .create_incident(
                &other,
                Event::Start,
                t(1),
                &[outbox("initiated")],
                Some(&entry)
            )
            .await
            .is_err()
    );
    let approval = audit_at(&inc.id, t(2));
    assert!(
        store
            .transition(
                &Transition::new(&inc.id, Event::Approve, t(2), "by alice")
                    .expecting(State::AwaitingApproval)
                    .notifying(&[outbox("initiated")])
                    .audited(&approval),
            )
            .await
            .is_err()
    );
    assert!(
        store
            .enqueue(&inc.id, &[outbox("notice"), outbox("notice")], t(2))
            .await
            .is_err()
    );
    assert_eq!(
        store.incidents(&IncidentFilter::default()).await.unwrap(),
        std::slice::from_ref(&inc),
        "no incident without its notifications"
    );
    assert_eq!(store.transitions(&inc.id).await.unwrap().len(), 1);
    assert!(store.audit_log(None, 100).await.unwrap().is_empty());
    assert_eq!(store.outbox_for(&inc.id).await.unwrap().len(), 1);
    // what writes no notification still goes through
    let to = store
        .transition(
            &Transition::new(&inc.id, Event::Approve, t(3), "by alice")
                .expecting(State::AwaitingApproval)
                .audited(&approval),
        )
        .await
        .unwrap();
    assert_eq!(to, State::RollingBack);
    assert_eq!(store.audit_log(Some(&inc.id), 10).await.unwrap().len(), 1);
}

/// Listing: newest first, by agent, by state, at most `limit`; and the per-agent lookups
/// the evaluation loop and the runner make.
async fn incidents_are_listed_and_looked_up_by_agent_state_and_revision(store: &dyn StateStore) {
    let mut ids = Vec::new();
    for (i, (agent, first)) in [
        ("GL-002", Event::RequestApproval),
        ("GL-002", Event::Block),
        ("GL-009", Event::Start),
        ("GL-002", Event::Start),
    ]
    .into_iter()
    .enumerate()
    {
        let mut new = new_incident(agent);
        new.revision = Some(10 + i as u64);
        ids.push(
            store
                .create_incident(&new, first, t(i as i64), &[], None)
                .await
                .unwrap()
                .id,
        );
    }
    let listed = |filter: IncidentFilter| async move {
        store
            .incidents(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect::<Vec<_>>()
    };
    let all = listed(IncidentFilter::default()).await;
    assert_eq!(all, [&*ids[3], &ids[2], &ids[1], &ids[0]], "newest first");
    let gl002 = IncidentFilter {
        agent: Some("GL-002".into()),
        ..Default::default()
    };
    assert_eq!(listed(gl002.clone()).await, [&*ids[3], &ids[1], &ids[0]]);
    let blocked = IncidentFilter {
        state: Some(State::Blocked),
        ..Default::default()
    };
    assert_eq!(listed(blocked).await, [&*ids[1]]);
    let newest = IncidentFilter {
        limit: Some(2),
        ..gl002
    };
    assert_eq!(listed(newest).await, [&*ids[3], &ids[1]]);
    let waiting: Vec<_> = store
        .waiting_for_human("GL-002")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(waiting, [&*ids[0], &ids[1]], "oldest first");
    assert!(store.waiting_for_human("GL-009").await.unwrap().is_empty());
    let open = store.open_incident_for("GL-002", Some(13)).await.unwrap();
    assert_eq!(open.map(|i| i.id).as_ref(), Some(&ids[3]));
    assert!(
        store
            .open_incident_for("GL-002", Some(12))
            .await
            .unwrap()
            .is_none(),
        "GL-009's revision"
    );
    let automatic = store
        .automatic_incident_for("GL-009", Some(12))
        .await
        .unwrap();
    assert_eq!(automatic.map(|i| i.id).as_ref(), Some(&ids[2]));
    store
        .transition(&Transition::new(&ids[2], Event::Cancel, t(9), ""))
        .await
        .unwrap();
    let automatic = store
        .automatic_incident_for("GL-009", Some(12))
        .await
        .unwrap();
    assert_eq!(
        automatic.map(|i| (i.id, i.state)),
        Some((ids[2].clone(), State::Cancelled)),
        "in any state"
    );
    assert!(
        store
            .open_incident_for("GL-009", Some(12))
            .await
            .unwrap()
            .is_none()
    );
    let in_flight: Vec<_> = store
        .in_flight()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(in_flight, [&*ids[3]]);
    assert!(store.incident("no-such-incident").await.unwrap().is_none());
}

async fn outbox_releases_one_row_per_incident_and_target_in_order(store: &dyn StateStore) {
    let a = store
        .create_incident(
            &new_incident("GL-002"),
            Event::Start,
            t(0),
            &[outbox("initiated")],
            None,
        )
        .await
        .unwrap();
    store
        .transition(
            &Transition::new(&a.id, Event::StepsDone, t(1), "").notifying(&[outbox("in_progress")]),
        )
        .await
        .unwrap();
    let b = store
        .create_incident(
            &new_incident("GL-009"),
            Event::Start,
            t(2),
            &[outbox("initiated")],
            None,
        )
        .await
        .unwrap();
    let due = store.outbox_due(t(10), 10).await.unwrap();
    let ids: Vec<_> = due
        .iter()
        .map(|r| (r.incident_id.as_str(), r.message["stage"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ids,
        [(a.id.as_str(), "initiated"), (b.id.as_str(), "initiated")]
    );
    assert!(due.iter().all(|r| r.attempted_at.is_none()));
    // an attempt is recorded before the message leaves: the row is in doubt until its
    // outcome is; a failure that may hide a delivery keeps the doubt, a refusal clears it
    store.outbox_attempt(due[0].id, t(10)).await.unwrap();
    store.outbox_attempt(due[1].id, t(10)).await.unwrap();
    let marked = store.outbox_due(t(10), 10).await.unwrap();
    assert_eq!(marked[0].attempted_at, Some(t(10)));
    store
        .outbox_retry(due[1].id, 1, t(10), "HTTP 429", false)
        .await
        .unwrap();
    let cleared = store.outbox_due(t(10), 10).await.unwrap();
    assert_eq!(cleared[1].id, due[1].id);
    assert_eq!(cleared[1].attempted_at, None);
    // a failing first message holds back the second of the same incident only
    store
        .outbox_retry(due[0].id, 1, t(100), "HTTP 500", true)
        .await
        .unwrap();
    assert_eq!(
        store.outbox_for(&a.id).await.unwrap()[0].attempted_at,
        Some(t(10)),
        "a failure that may hide a delivery keeps the row in doubt"
    );
    store.outbox_sent(due[1].id, t(10), None).await.unwrap();
    assert!(store.outbox_due(t(11), 10).await.unwrap().is_empty());
    store.outbox_sent(due[0].id, t(100), None).await.unwrap();
    let next = store.outbox_due(t(100), 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].message["stage"], "in_progress");
    store
        .save_thread(
            &a.id,
            "slack:#gl-002-incidents",
            &json!({"channel": "C1", "ts": "1.2"}),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .thread(&a.id, "slack:#gl-002-incidents")
            .await
            .unwrap()
            .unwrap()["ts"],
        "1.2"
    );
    // a thread is replaced, not duplicated; another target has none
    store
        .save_thread(
            &a.id,
            "slack:#gl-002-incidents",
            &json!({"channel": "C1", "ts": "3.4"}),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .thread(&a.id, "slack:#gl-002-incidents")
            .await
            .unwrap()
            .unwrap()["ts"],
        "3.4"
    );
    assert!(store.thread(&a.id, "webhook:h").await.unwrap().is_none());
    // given up: the queue moves on and the row says why
    store
        .outbox_failed(next[0].id, 5, "HTTP 404")
        .await
        .unwrap();
    store
        .enqueue(&a.id, &[outbox("resolved")], t(101))
        .await
        .unwrap();
    let last = store.outbox_due(t(101), 10).await.unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].message["stage"], "resolved");
    let rows = store.outbox_for(&a.id).await.unwrap();
    let states: Vec<_> = rows
        .iter()
        .map(|r| (r.state.as_str(), r.attempts, r.last_error.as_deref()))
        .collect();
    assert_eq!(
        states,
        [
            ("sent", 2, Some("HTTP 500")),
            ("failed", 5, Some("HTTP 404")),
            ("pending", 0, None)
        ]
    );
    let mut counts = store.outbox_counts().await.unwrap();
    counts.sort();
    assert_eq!(
        counts,
        [
            ("failed".to_string(), 1),
            ("pending".to_string(), 1),
            ("sent".to_string(), 2)
        ]
    );
}

async fn alerts_are_recorded_once_and_unmatched_ones_are_kept(store: &dyn StateStore) {
    let batch = [
        alert("a", "firing", Some("GL-002")),
        alert("b", "firing", None),
    ];
    assert_eq!(
        store.record_alerts(&batch, t(1)).await.unwrap(),
        [true, true]
    );
    assert_eq!(
        store.record_alerts(&batch, t(2)).await.unwrap(),
        [false, false],
        "redelivery"
    );
    assert_eq!(
        store
            .record_alerts(&[alert("a", "resolved", Some("GL-002"))], t(3))
            .await
            .unwrap(),
        [true]
    );
    assert_eq!(
        store.alerts_since(Some(None), t(0)).await.unwrap().len(),
        1,
        "unmatched"
    );
    assert_eq!(
        store
            .alerts_since(Some(Some("GL-002")), t(0))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(store.alerts_since(None, t(0)).await.unwrap().len(), 3);
    // group commit: several requests in one transaction, each told what was new; the same
    // alert in two requests of one commit is new once
    let fresh = store
        .record_alert_groups(
            &[
                vec![alert("c", "firing", Some("GL-002"))],
                vec![
                    alert("c", "firing", Some("GL-002")),
                    alert("a", "firing", Some("GL-002")),
                ],
                vec![],
            ],
            t(4),
        )
        .await
        .unwrap();
    assert_eq!(fresh, [vec![true], vec![false, false], vec![]]);
    let all = store.alerts_since(None, t(0)).await.unwrap();
    assert_eq!(all.len(), 4);
    let order: Vec<_> = all
        .iter()
        .map(|a| {
            (
                a.alert.fingerprint.as_str(),
                a.alert.status.as_str(),
                a.received_at,
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("a", "firing", t(1)),
            ("b", "firing", t(1)),
            ("a", "resolved", t(3)),
            ("c", "firing", t(4))
        ],
        "in the order they were recorded"
    );
    assert_eq!(store.alerts_since(None, t(2)).await.unwrap().len(), 2);
}

async fn rollbacks_since_counts_unattended_rollbacks_but_not_dry_runs(store: &dyn StateStore) {
    store
        .create_incident(&new_incident("GL-002"), Event::Start, t(0), &[], None)
        .await
        .unwrap();
    let mut dry = new_incident("GL-002");
    dry.dry_run = true;
    store
        .create_incident(&dry, Event::Start, t(1), &[], None)
        .await
        .unwrap();
    store
        .create_incident(
            &new_incident("GL-009"),
            Event::RequestApproval,
            t(2),
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .rollbacks_since(Some("GL-002"), t(-10), true)
            .await
            .unwrap(),
        1,
        "dry runs do not count"
    );
    assert_eq!(store.rollbacks_since(None, t(-10), true).await.unwrap(), 1);
    assert_eq!(store.rollbacks_since(None, t(5), true).await.unwrap(), 0);
    // a manual rollback counts only when not only unattended ones are asked for
    let mut manual = new_incident("GL-008");
    manual.trigger = Trigger::Manual;
    store
        .create_incident(&manual, Event::Start, t(6), &[], None)
        .await
        .unwrap();
    assert_eq!(store.rollbacks_since(None, t(-10), true).await.unwrap(), 1);
    assert_eq!(store.rollbacks_since(None, t(-10), false).await.unwrap(), 2);
    // approving GL-009's incident starts its rollback then
    let waiting = store.waiting_for_human("GL-009").await.unwrap();
    store
        .transition(&Transition::new(&waiting[0].id, Event::Approve, t(7), ""))
        .await
        .unwrap();
    assert_eq!(
        store
            .rollbacks_since(Some("GL-009"), t(7), true)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .rollbacks_since(Some("GL-009"), t(8), true)
            .await
            .unwrap(),
        0
    );
}

async fn pauses_are_idempotent_and_a_global_pause_wins(store: &dyn StateStore) {
    store
        .pause(&Pause {
            scope: "GL-002".into(),
            paused_by: "alice".into(),
            reason: "deploy freeze".into(),
            at: t(3),
        })
        .await
        .unwrap();
    assert_eq!(
        store.paused("GL-002").await.unwrap().unwrap().paused_by,
        "alice"
    );
    assert!(store.paused("GL-009").await.unwrap().is_none());
    // pausing again keeps the first pause's record
    store
        .pause(&Pause {
            scope: "GL-002".into(),
            paused_by: "carol".into(),
            reason: "again".into(),
            at: t(5),
        })
        .await
        .unwrap();
    let first = store.paused("GL-002").await.unwrap().unwrap();
    assert_eq!((first.paused_by.as_str(), first.at), ("alice", t(3)));
    store
        .pause(&Pause {
            scope: GLOBAL.into(),
            paused_by: "bob".into(),
            reason: "incident".into(),
            at: t(4),
        })
        .await
        .unwrap();
    assert_eq!(
        store.paused("GL-009").await.unwrap().unwrap().scope,
        "global"
    );
    assert_eq!(
        store.paused("GL-002").await.unwrap().unwrap().scope,
        "global",
        "global first"
    );
    let scopes: Vec<_> = store
        .pauses()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.scope)
        .collect();
    assert_eq!(scopes, ["GL-002", "global"]);
    assert!(store.resume(GLOBAL).await.unwrap());
    assert!(!store.resume(GLOBAL).await.unwrap());
    assert_eq!(
        store.paused("GL-002").await.unwrap().unwrap().scope,
        "GL-002"
    );
}

async fn steps_are_idempotent_and_audit_and_backups_are_kept(store: &dyn StateStore) {
    let inc = store
        .create_incident(&new_incident("GL-002"), Event::Start, t(0), &[], None)
        .await
        .unwrap();
    store
        .save_step(&step_row(&inc.id, "started", 1, None))
        .await
        .unwrap();
    store
        .save_step(&step_row(&inc.id, "done", 5, Some(2)))
        .await
        .unwrap();
    let steps = store.steps(&inc.id).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(
        (steps[0].state.as_str(), steps[0].started_at),
        ("done", Some(t(1))),
        "start time kept"
    );
    assert_eq!(steps[0].finished_at, Some(t(2)));
    // steps come in order of index, then workload
    let mut second = step_row(&inc.id, "done", 3, Some(4));
    second.index = 1;
    store.save_step(&second).await.unwrap();
    let mut first_b = step_row(&inc.id, "done", 1, Some(2));
    first_b.workload = "gl-002-b".into();
    store.save_step(&first_b).await.unwrap();
    let order: Vec<_> = store
        .steps(&inc.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.index, s.workload))
        .collect();
    assert_eq!(
        order,
        [
            (0, "gl-002".to_string()),
            (0, "gl-002-b".to_string()),
            (1, "gl-002".to_string())
        ]
    );
    // verification's recovery method has its own step 0 on the same workload: a record of
    // its own, listed after the main method's steps, which it leaves as they were
    let mut recovery = step_row(&inc.id, "started", 6, None);
    recovery.method = "recover-stuck".into();
    store.save_step(&recovery).await.unwrap();
    let steps = store.steps(&inc.id).await.unwrap();
    let keys: Vec<_> = steps
        .iter()
        .map(|s| {
            (
                s.method.as_str(),
                s.index,
                s.workload.as_str(),
                s.state.as_str(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("quick", 0, "gl-002", "done"),
            ("quick", 0, "gl-002-b", "done"),
            ("quick", 1, "gl-002", "done"),
            ("recover-stuck", 0, "gl-002", "started"),
        ]
    );
    assert!(store.steps("no-such-incident").await.unwrap().is_empty());
    store
        .audit(&AuditEntry {
            at: t(3),
            actor: "alice".into(),
            action: "rollback.approve".into(),
            target: inc.id.clone(),
            reason: "ok".into(),
            detail: json!({}),
        })
        .await
        .unwrap();
    assert_eq!(
        store.audit_log(Some(&inc.id), 10).await.unwrap()[0].actor,
        "alice"
    );
    for s in 4..7 {
        store.audit(&audit_at("global", t(s))).await.unwrap();
    }
    let global = store.audit_log(Some("global"), 2).await.unwrap();
    assert_eq!(
        global.iter().map(|a| a.at).collect::<Vec<_>>(),
        [t(4), t(5)],
        "oldest first, at most the limit"
    );
    assert_eq!(store.audit_log(None, 100).await.unwrap().len(), 4);
    store
        .save_backup(
            &inc.id,
            "Deployment",
            "greenlang",
            "gl-002",
            &json!({"spec": {}}),
            t(1),
        )
        .await
        .unwrap();
    assert_eq!(store.backups(&inc.id).await.unwrap().len(), 1);
    store
        .save_backup(
            &inc.id,
            "ConfigMap",
            "greenlang",
            "gl-002-config",
            &json!({"data": {"a": "1"}}),
            t(1),
        )
        .await
        .unwrap();
    let backups = store.backups(&inc.id).await.unwrap();
    assert_eq!(backups.len(), 2);
    assert_eq!(
        backups[1],
        (
            "ConfigMap".to_string(),
            "greenlang".to_string(),
            "gl-002-config".to_string(),
            json!({"data": {"a": "1"}})
        ),
        "in the order they were saved"
    );
}

/// The executor's step journal and backup sink and the notifiers' outbox work on any
/// store through its contract.
async fn the_executor_and_the_notifiers_work_on_any_store(backend: &dyn Backend) {
    let store = backend.open().await;
    let inc = store
        .create_incident(&new_incident("GL-002"), Event::Start, t(0), &[], None)
        .await
        .unwrap();
    let key = format!("{}/quick", inc.id);
    let journal: &dyn StepJournal = &store;
    assert!(journal.status(&key, 0, "gl-002").await.is_none());
    journal.started(&key, 0, "gl-002", t(1)).await.unwrap();
    let started = journal.status(&key, 0, "gl-002").await.unwrap();
    assert_eq!((started.started_at, started.outcome), (t(1), None));
    let outcome = StepOutcome {
        index: 0,
        name: "undo".into(),
        workload: "gl-002".into(),
        kind: "undo".into(),
        state: StepState::Done,
        started_at: Some(t(1)),
        finished_at: Some(t(2)),
        detail: json!({"to_revision": 11}),
    };
    journal.finished(&key, 0, "gl-002", &outcome).await.unwrap();
    let done = journal.status(&key, 0, "gl-002").await.unwrap();
    assert_eq!(done.outcome, Some(outcome.clone()));
    // the recovery method's step 0 on the same workload is not the main method's
    let recovery = format!("{}/recover-stuck", inc.id);
    assert!(
        journal.status(&recovery, 0, "gl-002").await.is_none(),
        "a recovery step is not found done because the main method's step 0 is"
    );
    let audit = store.audit_log(Some(&inc.id), 10).await.unwrap();
    assert_eq!(
        audit.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(),
        ["step.undo"],
        "each mutation audited"
    );
    // the first backup of an object wins
    let sink: Arc<dyn BackupSink> = Arc::new(store.clone());
    for generation in [1, 2] {
        sink.save(
            &inc.id,
            "Deployment",
            "greenlang",
            "gl-002",
            &json!({"generation": generation}),
        )
        .await
        .unwrap();
    }
    let backups = store.backups(&inc.id).await.unwrap();
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0].3, json!({"generation": 1}));
    // the notifiers read typed items and keep threads
    let target = Target::Webhook { name: "h".into() };
    let message = Message {
        incident_id: inc.id.clone(),
        agent_id: "GL-002".into(),
        agent_name: "BoilerEfficiencyOptimizer".into(),
        stage: Stage::Initiated,
        severity: Some("P0".into()),
        text: "rolling back".into(),
        fields: BTreeMap::new(),
    };
    let row = NewOutbox {
        target_key: target.key(),
        target: serde_json::to_value(&target).unwrap(),
        message: serde_json::to_value(&message).unwrap(),
    };
    store.enqueue(&inc.id, &[row], t(3)).await.unwrap();
    let outbox: Arc<dyn OutboxStore> = Arc::new(store.clone());
    let due = outbox.due(t(3), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((&due[0].message, &due[0].target), (&message, &target));
    let thread = ThreadRef {
        key: target.key(),
        data: json!({"id": "T1"}),
    };
    assert_eq!(outbox.thread(&inc.id, &target.key()).await.unwrap(), None);
    // delivered, and the thread it opened saved, in one write
    outbox
        .mark_sent(due[0].id, t(4), Some(&thread))
        .await
        .unwrap();
    assert_eq!(
        outbox.thread(&inc.id, &target.key()).await.unwrap(),
        Some(thread)
    );
    assert!(outbox.due(t(5), 10).await.unwrap().is_empty());
    // a PagerDuty row names its service (never the routing key) and its thread keeps the
    // alert's state between events
    let pagerduty = Target::PagerDuty {
        service: "default".into(),
        severity: PagerDutySeverity::Critical,
        action: rollbackd::notify::pagerduty::EventAction::Trigger,
    };
    let blocked = Message {
        stage: Stage::Blocked,
        ..message.clone()
    };
    let row = NewOutbox {
        target_key: pagerduty.key(),
        target: serde_json::to_value(&pagerduty).unwrap(),
        message: serde_json::to_value(&blocked).unwrap(),
    };
    store.enqueue(&inc.id, &[row], t(6)).await.unwrap();
    let due = outbox.due(t(6), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((&due[0].message, &due[0].target), (&blocked, &pagerduty));
    let alert = ThreadRef {
        key: pagerduty.key(),
        data: json!({"dedup_key": format!("rollbackd/{}", inc.id), "state": "triggered"}),
    };
    outbox
        .mark_sent(due[0].id, t(7), Some(&alert))
        .await
        .unwrap();
    assert_eq!(
        outbox.thread(&inc.id, "pagerduty:default").await.unwrap(),
        Some(alert)
    );
    assert!(outbox.due(t(8), 10).await.unwrap().is_empty());
}

async fn retention_deletes_what_is_old_and_finished_and_keeps_the_rest(store: &dyn StateStore) {
    let open = |agent: &'static str| async move {
        let inc = store
            .create_incident(
                &new_incident(agent),
                Event::Start,
                t(0),
                &[outbox("initiated")],
                None,
            )
            .await
            .unwrap();
        store
            .save_step(&step_row(&inc.id, "done", 1, Some(2)))
            .await
            .unwrap();
        store
            .save_backup(
                &inc.id,
                "Deployment",
                "greenlang",
                "gl-002",
                &json!({}),
                t(1),
            )
            .await
            .unwrap();
        store.audit(&audit_at(&inc.id, t(3))).await.unwrap();
        inc.id
    };
    // old and resolved, its notification delivered: goes with everything it owns
    let old = open("GL-002").await;
    resolve(store, &old, t(100)).await;
    // old and resolved, but a notification still pending: stays until delivered
    let undelivered = open("GL-009").await;
    resolve(store, &undelivered, t(100)).await;
    // old but still rolling back: stays, with its backup and audit
    let in_flight = open("GL-008").await;
    // resolved recently: stays
    let recent = open("GL-001").await;
    resolve(store, &recent, t(2000)).await;
    for row in store.outbox_due(t(10), 100).await.unwrap() {
        if row.incident_id != undelivered {
            store.outbox_sent(row.id, t(10), None).await.unwrap();
        }
    }
    store.audit(&audit_at("global", t(5))).await.unwrap();
    store.audit(&audit_at("global", t(1500))).await.unwrap();
    store
        .record_alerts(&[alert("old", "firing", Some("GL-002"))], t(1))
        .await
        .unwrap();
    store
        .record_alerts(&[alert("new", "firing", Some("GL-002"))], t(1500))
        .await
        .unwrap();

    let pruned = store.prune_older_than(t(1000)).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            incidents: 1,
            backups: 1,
            // the old incident's "initiated"; kept incidents keep their whole record
            outbox: 1,
            // the old incident's approval and the old global entry
            audit: 2,
            alerts: 1,
        }
    );
    assert!(store.incident(&old).await.unwrap().is_none());
    assert!(store.transitions(&old).await.unwrap().is_empty());
    assert!(store.steps(&old).await.unwrap().is_empty());
    assert!(store.backups(&old).await.unwrap().is_empty());
    assert!(store.outbox_for(&old).await.unwrap().is_empty());
    assert!(store.audit_log(Some(&old), 10).await.unwrap().is_empty());
    for kept in [&undelivered, &in_flight, &recent] {
        assert!(store.incident(kept).await.unwrap().is_some(), "{kept}");
        assert_eq!(store.backups(kept).await.unwrap().len(), 1, "{kept}");
        assert_eq!(store.steps(kept).await.unwrap().len(), 1, "{kept}");
        assert_eq!(
            store.audit_log(Some(kept), 10).await.unwrap().len(),
            1,
            "{kept}"
        );
    }
    assert_eq!(
        store.outbox_due(t(2000), 100).await.unwrap().len(),
        1,
        "pending stays"
    );
    let audit = store.audit_log(Some("global"), 10).await.unwrap();
    assert_eq!(audit.iter().map(|a| a.at).collect::<Vec<_>>(), [t(1500)]);
    let alerts = store.alerts_since(None, t(0)).await.unwrap();
    assert_eq!(alerts.len(), 1);
    // a second pass finds nothing more; once delivered, the other old incident goes too
    assert_eq!(store.prune_older_than(t(1000)).await.unwrap().total(), 0);
    for row in store.outbox_due(t(2000), 100).await.unwrap() {
        store.outbox_sent(row.id, t(2000), None).await.unwrap();
    }
    let later = store.prune_older_than(t(1000)).await.unwrap();
    assert_eq!((later.incidents, later.backups), (1, 1));
    assert!(store.incident(&undelivered).await.unwrap().is_none());
}

/// A notice (no data, inconclusive: people are told, no incident opens) has its
/// notifications delivered like an incident's and is never an incident: not listed, not in
/// flight, not found by id. (On the Kubernetes store it once had nowhere to go: its
/// NO DATA message was never sent.)
async fn a_notice_is_told_and_is_not_an_incident(store: &dyn StateStore) {
    let new = new_incident("GL-008");
    let notice = Incident {
        id: "notice-gl-008-20251117T143000.000Z".into(),
        agent: new.agent.clone(),
        namespace: new.namespace.clone(),
        workload: new.workload.clone(),
        revision: new.revision,
        from_image: new.from_image.clone(),
        row: None,
        severity: None,
        method: None,
        trigger: Trigger::Automatic,
        requested_by: None,
        reason: "error_rate: no data".into(),
        decision: json!({"decision": "inconclusive"}),
        state: State::Detected,
        dry_run: false,
        vars: BTreeMap::new(),
        deploy_at: new.deploy_at,
        created_at: t(0),
        updated_at: t(0),
    };
    store
        .enqueue_notice(&notice, &[outbox("no_data")], t(0))
        .await
        .unwrap();
    let due = store.outbox_due(t(1), 10).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].incident_id, notice.id);
    assert_eq!(due[0].message, json!({"stage": "no_data"}));
    assert!(store.incident(&notice.id).await.unwrap().is_none());
    assert!(
        store
            .incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.in_flight().await.unwrap().is_empty());
    store.outbox_sent(due[0].id, t(2), None).await.unwrap();
    assert!(store.outbox_due(t(3), 10).await.unwrap().is_empty());
}

/// Each behaviour as a test of one backend: `$fresh` makes the backend (fresh state).
macro_rules! contract {
    ($fresh:expr) => {
        on_store!($fresh;
            transitions_are_compare_and_set_and_follow_the_lifecycle,
            opening_an_incident_is_one_transaction_once_per_deploy,
            incidents_are_listed_and_looked_up_by_agent_state_and_revision,
            outbox_releases_one_row_per_incident_and_target_in_order,
            alerts_are_recorded_once_and_unmatched_ones_are_kept,
            rollbacks_since_counts_unattended_rollbacks_but_not_dry_runs,
            pauses_are_idempotent_and_a_global_pause_wins,
            steps_are_idempotent_and_audit_and_backups_are_kept,
            retention_deletes_what_is_old_and_finished_and_keeps_the_rest,
            a_notice_is_told_and_is_not_an_incident,
        );
        on_backend!($fresh;
            an_incident_survives_reopening,
            a_failed_write_leaves_nothing_of_its_transaction,
            the_executor_and_the_notifiers_work_on_any_store,
        );
    };
}

/// Behaviours of one store.
macro_rules! on_store {
    ($fresh:expr; $($behaviour:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $behaviour() {
            let backend = $fresh;
            super::$behaviour(backend.open().await.as_ref()).await;
        }
    )*};
}

/// Behaviours that reopen the store or make its writes fail.
macro_rules! on_backend {
    ($fresh:expr; $($behaviour:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $behaviour() {
            let backend = $fresh;
            super::$behaviour(&backend).await;
        }
    )*};
}

// The backends, one line each.
mod sqlite {
    use super::Backend;
    contract!(super::Sqlite::fresh().await);
}
mod kubernetes {
    use super::Backend;
    contract!(super::Kubernetes::fresh().await);
}
